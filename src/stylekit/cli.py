"""The ``stylekit`` command line: argument parsing and messages only, no math."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .config import add_arguments, from_namespace
from .errors import StylekitError


def _add_train_loop_args(p: argparse.ArgumentParser, default_steps: int) -> None:
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory: checkpoints, logs, samples, weights")
    p.add_argument("--max-steps", type=int, default=default_steps, help=f"train until this step (default: {default_steps})")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its checkpoint")
    p.add_argument("--save-every", type=int, default=0, metavar="STEPS", help="checkpoint every STEPS steps (default: by time)")
    p.add_argument("--save-minutes", type=float, default=5.0, metavar="MIN", help="checkpoint every MIN minutes (default: 5)")
    p.add_argument("--log-every", type=int, default=10, metavar="STEPS", help="log averaged losses every STEPS steps")
    p.add_argument("--sample-every", type=int, default=500, metavar="STEPS", help="write a sample grid every STEPS steps (0: never)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _loop_config(args):
    from .training.loop import LoopConfig

    if args.max_steps < 1:
        raise StylekitError("--max-steps must be at least 1")
    return LoopConfig(
        max_steps=args.max_steps,
        save_every_steps=args.save_every,
        save_every_minutes=args.save_minutes,
        log_every=max(1, args.log_every),
        sample_every=args.sample_every,
        progress=not args.no_progress,
    )


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr)


def cmd_train_adain(args) -> int:
    from dataclasses import asdict

    from .adain.train import AdaINTrainConfig, AdaINTrainTask
    from .training.loop import run_training

    cfg = from_namespace(
        AdaINTrainConfig, args,
        content=str(Path(args.content).resolve()), style=str(Path(args.style).resolve()),
    )
    loop = _loop_config(args)
    task = AdaINTrainTask(cfg, warn=_warn)
    print(
        f"training the AdaIN decoder at {cfg.layer}: {len(task.content)} content and {len(task.style)} style images, "
        f"{task.device} {str(task.dtype).replace('torch.', '')}",
        file=sys.stderr,
    )
    summary = run_training(task, asdict(cfg), args.out, loop, resume=args.resume)
    print(f"step {summary['step']} reached in {summary['elapsed'] / 60:.1f} min of training; weights: "
          f"{Path(args.out) / 'weights.safetensors'}", file=sys.stderr)
    return 0


def _stylize_jobs(args) -> list[tuple[Path, list[Path], Path]]:
    """(content, styles, output) for every output this command writes.

    Outputs are ``<content>_stylized_<style>.<ext>``; contents found in
    sub-folders of a content directory keep those sub-folders under the output
    directory, so equal file names in different folders do not collide.
    """
    from .images import expand_inputs, expand_inputs_with_subdirs

    contents = expand_inputs_with_subdirs(args.content, "content")
    styles = expand_inputs(args.style, "style")
    combine = args.style_weights is not None or args.mask is not None
    if args.mask is not None and len(contents) != 1:
        raise StylekitError("--mask needs exactly one content image (masks have the content's size)")
    groups = [styles] if combine else [[s] for s in styles]
    if args.output is not None:
        if len(contents) * len(groups) != 1:
            raise StylekitError(
                f"-o names one file but there are {len(contents) * len(groups)} outputs; "
                "use --output-dir for content x style pairs"
            )
        return [(contents[0][0], groups[0], Path(args.output))]
    out_dir = Path(args.output_dir)
    ext = args.ext.lstrip(".")
    jobs, seen = [], {}
    for content, subdir in contents:
        for group in groups:
            style_name = "_".join(s.stem for s in group) if len(group) <= 3 else f"{group[0].stem}_and_{len(group) - 1}_more"
            output = out_dir / subdir / f"{content.stem}_stylized_{style_name}.{ext}"
            if output in seen:
                raise StylekitError(
                    f"{seen[output]} and {content} would both be written to {output}; rename one of them"
                )
            seen[output] = content
            jobs.append((content, group, output))
    return jobs


def cmd_stylize(args) -> int:
    from tqdm import tqdm

    from .api import load
    from .images import check_output_path, save_image
    from .pipeline import StylizeOptions

    options = StylizeOptions(
        alpha=args.alpha,
        style_weights=tuple(args.style_weights) if args.style_weights is not None else None,
        preserve_color=args.preserve_color,
        size=args.size,
        style_size=args.style_size,
        crop=args.crop,
    )
    jobs = _stylize_jobs(args)
    for _, styles, output in jobs:
        check_output_path(output)
        if args.style_weights is not None:
            options.normalised_weights(len(styles))
    todo = [job for job in jobs if not (args.skip_existing and job[2].exists())]
    if len(todo) < len(jobs):
        print(f"skipping {len(jobs) - len(todo)} outputs that already exist", file=sys.stderr)
    if not todo:
        return 0
    model = load(args.method, device=args.device, weights=args.weights, encoder_weights=args.encoder_weights)
    failures = 0
    batch = len(todo) > 1
    bar = tqdm(todo, disable=not batch or args.no_progress, unit="image", dynamic_ncols=True)
    for content, styles, output in bar:
        try:
            image = model.stylize(
                content, styles, alpha=options.alpha, style_weights=options.style_weights,
                masks=args.mask, preserve_color=options.preserve_color,
                size=options.size, style_size=options.style_size, crop=options.crop,
            )
            save_image(image, output)
        except StylekitError as exc:
            if not batch:
                raise
            failures += 1
            tqdm.write(f"warning: skipped {content} with {', '.join(map(str, styles))}: {exc}", file=sys.stderr)
            continue
        if not batch:
            print(output)
    if batch:
        print(f"{len(todo) - failures} written, {failures} skipped, to {Path(args.output_dir)}", file=sys.stderr)
    return 2 if failures else 0


def cmd_evaluate(args) -> int:
    import json

    from tqdm import tqdm

    from .api import load
    from .evaluate import evaluate, format_table
    from .images import atomic_write, expand_inputs
    from .weights import load_encoder

    contents = expand_inputs([args.content], "content")
    styles = expand_inputs([args.style], "style")
    model = load(args.method, device=args.device, weights=args.weights, encoder_weights=args.encoder_weights)
    encoder = load_encoder(args.encoder_weights, last_layer="relu3_1", device=model.device)
    bar = tqdm(total=len(contents) * len(styles), disable=args.no_progress, unit="pair", dynamic_ncols=True)
    result = evaluate(model, encoder, contents, styles, size=args.size, style_size=args.style_size,
                      progress=lambda row: bar.update(1), alpha=args.alpha)
    bar.close()
    result.update({"method": args.method, "alpha": args.alpha, "device": str(model.device),
                   "content_dir": str(args.content), "style_dir": str(args.style)})
    print(format_table(result, args.method))
    if args.out:
        atomic_write(args.out, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    return 0


def _add_stylize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", nargs="+", help="content image(s) or directories")
    p.add_argument("--style", nargs="+", required=True, help="style image(s) or directories")
    p.add_argument("--method", default="adain", choices=["adain"], help="stylization method (default: adain)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", help="output file (one output only); .jpg, .png or .webp")
    out.add_argument("--output-dir", default="output", help="directory for <content>_stylized_<style>.<ext> (default: output)")
    p.add_argument("--ext", default="jpg", help="output extension with --output-dir (default: jpg)")
    p.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off in [0, 1] (default: 1)")
    p.add_argument("--style-weights", type=float, nargs="+", metavar="W",
                   help="blend all styles into one output with these weights (normalised to sum 1)")
    p.add_argument("--mask", nargs="+", metavar="MASK",
                   help="one mask per style, the content's size; white = that style's region")
    p.add_argument("--preserve-color", nargs="?", const="luminance", default="none",
                   choices=["none", "luminance", "histogram"],
                   help="keep the content's colours: luminance-only transfer, or match the style's colour histogram "
                        "to the content first (bare flag: luminance)")
    p.add_argument("--size", type=int, default=512, help="content longer side in pixels, 0 = original (default: 512)")
    p.add_argument("--style-size", type=int, default=512, help="style longer side in pixels, 0 = original (default: 512)")
    p.add_argument("--crop", action="store_true", help="centre square crop of content and style first")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--weights", help="decoder weights (default: the shipped decoder)")
    p.add_argument("--encoder-weights", help="VGG-19 weights (default: $STYLEKIT_WEIGHTS, then the cache)")
    p.add_argument("--skip-existing", action="store_true", help="do not redo outputs that exist (resume a batch)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stylekit", description="Arbitrary neural style transfer.")
    parser.add_argument("--version", action="version", version=f"stylekit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    p = commands.add_parser("stylize", help="stylize images", description="Stylize content images with style images.")
    _add_stylize_args(p)
    p.set_defaults(func=cmd_stylize)

    p = commands.add_parser("evaluate", help="content/style losses and time over content x style pairs")
    p.add_argument("--content", required=True, help="content image or directory")
    p.add_argument("--style", required=True, help="style image or directory")
    p.add_argument("--method", default="adain", choices=["adain"], help="method to evaluate (default: adain)")
    p.add_argument("--size", type=int, default=512, help="content longer side (default: 512)")
    p.add_argument("--style-size", type=int, default=512, help="style longer side (default: 512)")
    p.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off (default: 1)")
    p.add_argument("--out", metavar="FILE.json", help="also write the numbers as JSON")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--weights", help="decoder weights (default: the shipped decoder)")
    p.add_argument("--encoder-weights", help="VGG-19 weights")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_evaluate)

    train = commands.add_parser("train", help="train a model")
    trainers = train.add_subparsers(dest="trainer", metavar="METHOD")
    trainers.required = True
    from .adain.train import AdaINTrainConfig

    p = trainers.add_parser("adain", help="train the AdaIN decoder")
    add_arguments(p, AdaINTrainConfig)
    _add_train_loop_args(p, default_steps=160_000)
    p.set_defaults(func=cmd_train_adain)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except StylekitError as exc:
        print(f"stylekit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stylekit: interrupted", file=sys.stderr)
        return 130
