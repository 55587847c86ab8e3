"""``stylekit synthesize`` and ``stylekit spade make-dataset|evaluate``: SPADE's
commands; the work is :mod:`stylekit.spade`."""

from __future__ import annotations

import sys
from pathlib import Path

from .flags import DEVICE_HELP
from .parser import add_group, warn


def add_commands(commands) -> None:
    p = commands.add_parser(
        "synthesize", help="an image from a label map (SPADE)",
        description="Paint a label map (a PNG of class indices) with a generator from `stylekit train spade`.",
    )
    p.add_argument("--mask", required=True, help="label map: PNG of class indices 0..N-1 (mode L or P)")
    p.add_argument("--style", metavar="IMAGE", help="reference image whose look to follow (needs a model trained with --vae)")
    p.add_argument("--weights", required=True, help="RUN/weights.safetensors of `stylekit train spade`")
    p.add_argument("-o", "--output", required=True, help="output image: .png, .jpg or .webp")
    p.add_argument("--seed", type=int, default=0, help="VAE models without --style: seed of the random style code")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(func=cmd_synthesize)

    tools = add_group(commands, "spade", "spade_command",
                      help="SPADE tools: a procedural dataset, the per-class colour error",
                      description="Tools around `stylekit train spade` and `stylekit synthesize`.")
    p = tools.add_parser("make-dataset", help="write a procedural labelled dataset (sky, grass, water, rock)",
                         description="Write OUT/labels/*.png (class indices), OUT/images/*.png and OUT/classes.json.")
    p.add_argument("out", help="output directory")
    p.add_argument("--count", type=int, default=400, help="number of pairs (default: 400)")
    p.add_argument("--size", type=int, default=64, help="side in pixels (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed: another seed, other pictures (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_spade_make_dataset)
    p = tools.add_parser("evaluate", help="per-class colour error of a generator on held-out label maps",
                         description="For each class: |mean colour of the generated pixels of the class - mean colour "
                                     "of the real ones| (0-255, mean over RGB), pooled over centre crops of every pair.")
    p.add_argument("--weights", required=True, help="RUN/weights.safetensors of `stylekit train spade`")
    p.add_argument("--labels", required=True, help="held-out label maps")
    p.add_argument("--images", required=True, help="their images (paired by file stem)")
    p.add_argument("--untrained", action="store_true",
                   help="measure the untrained generator of the same config and seed instead (the run's step 0)")
    p.add_argument("--size", type=int, default=0, help="crop size (default: the training crop)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random style codes of VAE models")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    p.add_argument("--grid", metavar="PNG", help="also write a picture: label map | generated | real, one row per pair")
    p.add_argument("--grid-rows", type=int, default=8, metavar="N", help="pairs in the --grid picture (default: 8)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(func=cmd_spade_evaluate)


def cmd_synthesize(args) -> int:
    from ..images import check_output_path, save_image
    from ..spade.synthesize import Synthesizer

    output = check_output_path(args.output)
    synth = Synthesizer.load(args.weights, device=args.device)
    image = synth.synthesize(args.mask, style=args.style, seed=args.seed)
    save_image(image, output)
    print(output)
    return 0


def cmd_spade_make_dataset(args) -> int:
    from tqdm import tqdm

    from ..spade.synthetic import CLASSES, make_dataset

    bar = tqdm(total=args.count, disable=args.no_progress, unit="pair", dynamic_ncols=True)
    out = make_dataset(args.out, args.count, size=args.size, seed=args.seed, progress=lambda i: bar.update(1))
    bar.close()
    print(f"{args.count} pairs in {out / 'labels'} and {out / 'images'}: --num-classes {len(CLASSES)} "
          f"({', '.join(CLASSES)})", file=sys.stderr)
    return 0


def cmd_spade_evaluate(args) -> int:
    import json

    from ..files import atomic_write
    from ..spade.data import LabelledBank
    from ..spade.synthesize import Synthesizer, evaluate_colour_error, format_colour_error

    synth = Synthesizer.load(args.weights, device=args.device)
    if args.untrained:
        synth = Synthesizer.untrained(synth.config, seed=synth.train_config.get("seed", 0), device=args.device)
    size = args.size or synth.config.size
    bank = LabelledBank.from_dirs(args.labels, args.images, synth.config.num_classes, resize=size, warn=warn)
    result = evaluate_colour_error(synth, bank, crop=size, seed=args.seed)
    result.update({"weights": str(args.weights), "untrained": args.untrained, "labels": str(args.labels)})
    print(format_colour_error(result, class_names_for(args.labels)))
    if args.json:
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    if args.grid:
        from ..images import save_image
        from ..spade.synthesize import comparison_grid

        save_image(comparison_grid([synth], bank, size, count=args.grid_rows, seed=args.seed, scale=2), args.grid)
    return 0


def class_names_for(labels_dir) -> list[str] | None:
    """Class names from a classes.json beside the labels (as make-dataset writes), if any."""
    import json

    path = Path(labels_dir).parent / "classes.json"
    try:
        names = json.loads(path.read_text()).get("classes")
    except (OSError, ValueError, AttributeError):
        return None
    return names if isinstance(names, list) else None
