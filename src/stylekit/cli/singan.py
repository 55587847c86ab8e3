"""``stylekit train singan`` and ``stylekit singan sample|paint2image|harmonize|edit|superres|score``:
parsing and messages only; the work is in :mod:`stylekit.singan` (train, apps, sifid)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import add_arguments, from_namespace
from ..errors import StylekitError
from .flags import DEVICE_HELP, ENCODER_HELP
from .parser import add_group, warn


def _set_threads(threads: int) -> None:
    if threads < 0:
        raise StylekitError("--threads must be 0 (torch's default) or more")
    if threads:
        import torch

        torch.set_num_threads(threads)


def add_train_parser(trainers) -> None:
    """``stylekit train singan IMAGE -o RUN``."""
    from ..singan.train import DEFAULT_MAX_SIZE, DEFAULT_STEPS, SinGANTrainConfig

    p = trainers.add_parser(
        "singan", help="SinGAN: a generative model of one image",
        description=f"Train SinGAN (Shaham et al. 2019) on one image, scale by scale from --min-size to --max-size. "
                    f"The defaults ({DEFAULT_MAX_SIZE} px, {DEFAULT_STEPS} iterations per scale) are for a CPU: about "
                    f"40 minutes on one core (docs/singan.md); the paper's 250 px and 2000 iterations are for a GPU. RUN/model.safetensors "
                    f"holds every finished scale; --resume continues at the next scale (or mid-scale).",
    )
    p.add_argument("image", help="the training image")
    p.add_argument("-o", "--out", required=True, metavar="RUN", help="run directory: model, per-scale checkpoints, logs, samples")
    add_arguments(p, SinGANTrainConfig, skip=("image",))
    p.add_argument("--resume", action="store_true", help="continue the run in RUN (next scale, or mid-scale from its checkpoint)")
    p.add_argument("--max-scales", type=int, metavar="K", help="stop once K scales in all are trained (continue later with --resume)")
    p.add_argument("--save-minutes", type=float, default=5.0, metavar="MIN", help="checkpoint the current scale every MIN minutes (default: 5)")
    p.add_argument("--log-every", type=int, default=10, metavar="STEPS", help="log averaged losses every STEPS iterations (default: 10)")
    p.add_argument("--sample-every", type=int, default=200, metavar="STEPS",
                   help="write a sample grid every STEPS iterations of a scale (0: never; default: 200)")
    p.add_argument("--threads", type=int, default=0, metavar="N",
                   help="CPU threads (default 0: torch's choice); 1 is much faster on a machine busy with other work")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train_singan)


def cmd_train_singan(args) -> int:
    from ..singan.train import SinGANTrainConfig, train_singan

    _set_threads(args.threads)
    if args.max_scales is not None and args.max_scales < 1:
        raise StylekitError("--max-scales must be at least 1")
    if not Path(args.image).is_file():
        raise StylekitError(f"image not found: {args.image}" if not Path(args.image).exists() else f"not a file: {args.image}")
    cfg = from_namespace(SinGANTrainConfig, args, image=str(Path(args.image).resolve()))
    result = train_singan(cfg, args.out, resume=args.resume, max_scales=args.max_scales, save_minutes=args.save_minutes,
                          log_every=args.log_every, sample_every=args.sample_every, progress=not args.no_progress,
                          log=warn)
    if result["stopped"]:
        warn(f"stopped in scale {result['scale']} at iteration {result['step']}; continue with --resume")
        return 130
    if result["scales_done"] < result["num_scales"]:
        warn(f"{result['scales_done']} of {result['num_scales']} scales trained; continue with --resume")
    else:
        warn(f"all {result['num_scales']} scales trained in {result['seconds'] / 60:.1f} min; "
             f"model: {result['model']}, samples: {Path(args.out) / 'samples.png'}")
    return 0


def _parse_size(text: str | None) -> tuple[int, int] | None:
    """``WxH`` -> (H, W)."""
    if text is None:
        return None
    parts = text.lower().split("x")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise StylekitError(f"--size must be WxH in pixels, e.g. 200x120; got {text!r}") from None
    if w < 8 or h < 8 or w * h > 16_000_000:
        raise StylekitError(f"--size {text}: each side must be at least 8 pixels, and at most 16 MP in all")
    return h, w


def _common(p: argparse.ArgumentParser, seed: bool = True) -> None:
    p.add_argument("run", metavar="RUN", help="run directory of `stylekit train singan` (or its model.safetensors)")
    if seed:
        p.add_argument("--seed", type=int, default=0, help="noise seed (default: 0)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)


def add_commands(commands) -> None:
    """``stylekit singan sample|paint2image|harmonize|edit|superres|score``."""
    tools = add_group(commands, "singan", "singan_command",
                      help="SinGAN: samples, paint-to-image, harmonisation, editing, super-resolution, score",
                      description="Use a model trained with `stylekit train singan`.")

    p = tools.add_parser("sample", help="random samples, at any size and aspect ratio",
                         description="Random samples; --size scales every scale's noise map (the paper's Fig. 5).")
    _common(p)
    p.add_argument("-n", "--count", type=int, default=8, help="number of samples (default: 8)")
    p.add_argument("--size", metavar="WxH", help="output size (default: the training size)")
    p.add_argument("--start-scale", type=int, default=0, metavar="K",
                   help="keep the training image's layout from the coarser scales and draw noise from scale K up (default: 0)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for sample_000.png, ...")
    p.add_argument("--grid", metavar="FILE", help="also write all samples as one grid image, 4 per row")
    p.set_defaults(func=cmd_sample)

    for name, help_text, what in (
        ("paint2image", "turn a clip-art painting into a realistic image", "the painting (resized to the training size)"),
        ("harmonize", "blend a pasted object into the image's style", "the composite: the image with an object pasted in"),
        ("edit", "make a cut-and-paste edit look natural", "the edited image"),
    ):
        p = tools.add_parser(name, help=help_text, description=f"{help_text[0].upper()}{help_text[1:]}: the input is "
                             "downsampled and injected at --start-scale, the finer scales add the image's detail.")
        _common(p)
        p.add_argument("input", metavar="IMAGE", help=what)
        if name != "paint2image":
            p.add_argument("--mask", metavar="M.png",
                           help="white where the input was changed (the input's size): only there is the output used, "
                                "dilated and feathered")
        p.add_argument("--start-scale", type=int, metavar="K",
                       help="injection scale, 1..N-1 (default: 1 for paint2image, N//2 otherwise)")
        p.add_argument("-o", "--output", required=True, metavar="OUT", help="output image (.png, .jpg, .webp)")
        p.set_defaults(func=cmd_app, app=name)

    p = tools.add_parser("superres", help="super-resolution of the training image (the finest generator, repeatedly)",
                         description="The paper's SR: upsample by about 1/scale-factor and refine with the finest "
                                     "generator, repeatedly, until --factor.")
    _common(p)
    p.add_argument("--factor", type=float, default=4.0, help="total upscaling factor (default: 4)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output image (.png, .jpg, .webp)")
    p.set_defaults(func=cmd_superres)

    p = tools.add_parser("score", help="SIFID-VGG of samples vs the training image, and of baselines",
                         description="SIFID-VGG: the Frechet distance between Gaussians fitted to VGG-19 relu3_1 features "
                                     "(every position) of the real image and of an image. NOT the paper's "
                                     "Inception-based SIFID: not comparable with its numbers. Lower is closer.")
    _common(p)
    p.add_argument("-n", "--count", type=int, default=10, help="samples (and baseline draws) to average (default: 10)")
    p.add_argument("--start-scale", type=int, default=0, metavar="K", help="as for sample (default: 0)")
    p.add_argument("--patch-grid", type=int, default=4, metavar="G",
                   help="shuffled-patch baseline: the real image cut into GxG patches, randomly permuted (default: 4)")
    p.add_argument("--noise-sigma", type=float, default=0.05, metavar="S",
                   help="noisy-real baseline: Gaussian noise of this std on [0, 1] pixels (default: 0.05)")
    p.add_argument("--json", metavar="FILE", help="where to write the numbers (default: RUN/sifid_vgg.json)")
    p.add_argument("--encoder-weights", help=ENCODER_HELP)
    p.set_defaults(func=cmd_score)


def _load(args):
    from ..devices import resolve_device
    from ..singan.train import load_model

    pyramid = load_model(args.run, resolve_device(args.device))
    planned = int(pyramid.meta.get("num_scales", pyramid.num_scales))
    if pyramid.num_scales < planned:
        warn(f"note: {args.run} has {pyramid.num_scales} of {planned} scales trained; outputs are at scale "
             f"{pyramid.num_scales - 1}'s size")
    return pyramid


def cmd_sample(args) -> int:
    from ..images import check_output_path, image_grid, load_pil, pil_to_tensor, save_image
    from ..singan.apps import write_samples

    if args.count < 1:
        raise StylekitError("-n must be at least 1")
    size = _parse_size(args.size)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise StylekitError(f"-o must name a directory: {out} is a file")
    if args.grid is not None:
        check_output_path(args.grid)
    pyramid = _load(args)
    paths = write_samples(pyramid, out, args.count, size_hw=size, start_scale=args.start_scale, seed=args.seed)
    warn(f"{len(paths)} samples in {out}")
    if args.grid is not None:
        tiles = [pil_to_tensor(load_pil(p)) for p in paths]
        save_image(image_grid([tiles[i:i + 4] for i in range(0, len(tiles), 4)]), args.grid)
        warn(f"grid: {args.grid}")
    return 0


def cmd_app(args) -> int:
    from ..images import check_output_path, save_image
    from ..singan.apps import APPLICATIONS

    output = check_output_path(args.output)
    pyramid = _load(args)
    image = APPLICATIONS[args.app](pyramid, args.input, mask=getattr(args, "mask", None), start_scale=args.start_scale,
                                   seed=args.seed)
    save_image(image, output)
    print(output)
    return 0


def cmd_superres(args) -> int:
    from ..images import check_output_path, save_image
    from ..singan.apps import superres

    output = check_output_path(args.output)
    pyramid = _load(args)
    image = superres(pyramid, args.factor, seed=args.seed)
    save_image(image, output)
    print(output)
    return 0


def cmd_score(args) -> int:
    import json

    from ..files import atomic_write
    from ..weights import load_encoder
    from ..singan.sifid import format_score, score

    if args.count < 1:
        raise StylekitError("-n must be at least 1")
    if args.patch_grid < 2:
        raise StylekitError("--patch-grid must be at least 2")
    if not 0 < args.noise_sigma <= 1:
        raise StylekitError("--noise-sigma must be in (0, 1]")
    json_path = Path(args.json) if args.json else Path(args.run) / "sifid_vgg.json"
    if json_path.is_dir():
        raise StylekitError(f"--json names a directory: {json_path}")
    pyramid = _load(args)
    encoder = load_encoder(args.encoder_weights, last_layer="relu3_1", device=pyramid.device)
    result = score(pyramid, encoder, count=args.count, seed=args.seed, start_scale=args.start_scale,
                   patch_grid=args.patch_grid, noise_sigma=args.noise_sigma)
    result["run"] = str(args.run)
    print(format_score(result))
    atomic_write(json_path, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    warn(f"wrote {json_path}")
    return 0
