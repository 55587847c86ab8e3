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


# name -> (module, config class, task class, help); each trainer is one line here
TRAINERS = {
    "adain": ("stylekit.adain.train", "AdaINTrainConfig", "AdaINTrainTask", "train the AdaIN decoder"),
    "style-swap": ("stylekit.style_swap.train", "StyleSwapTrainConfig", "StyleSwapTrainTask",
                   "train the style-swap inverse network"),
}


def _trainer(name: str):
    import importlib

    module_name, config_name, task_name, _ = TRAINERS[name]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, task_name)


def cmd_train(args) -> int:
    from dataclasses import asdict

    from .training.loop import run_training

    config_cls, task_cls = _trainer(args.trainer)
    cfg = from_namespace(config_cls, args, content=str(Path(args.content).resolve()), style=str(Path(args.style).resolve()))
    loop = _loop_config(args)
    from . import distributed

    task = task_cls(cfg, warn=_warn)
    ctx = task.ctx
    if ctx.is_main:
        processes = f", {ctx.world_size} processes" if ctx.distributed else ""
        print(
            f"training {args.trainer} at {cfg.layer}: {len(task.content)} content and {len(task.style)} style images, "
            f"{task.device} {str(task.dtype).replace('torch.', '')}{processes}",
            file=sys.stderr,
        )
    try:
        summary = run_training(task, asdict(cfg), args.out, loop, resume=args.resume)
    finally:
        distributed.teardown(ctx)
    if ctx.is_main:
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

    method_options = _method_options(args)
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
    from . import distributed
    from .devices import resolve_device

    # Under torchrun each process takes every world_size-th job: together they
    # write every output exactly once.
    device = resolve_device(args.device)
    ctx = distributed.setup(device)
    batch = len(jobs) > 1  # judged on the whole job: a rank's shard may hold one item
    jobs = ctx.shard(jobs)
    device = distributed.device_for(device, ctx)
    todo = [job for job in jobs if not (args.skip_existing and job[2].exists())]
    if len(todo) < len(jobs):
        print(f"skipping {len(jobs) - len(todo)} outputs that already exist", file=sys.stderr)
    if not todo:
        return 0
    model = load(args.method, device=device, weights=args.weights, encoder_weights=args.encoder_weights,
                 **method_options)
    failures = 0
    bar = tqdm(todo, disable=not batch or args.no_progress or not ctx.is_main, unit="image", dynamic_ncols=True)
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
        where = f" (process {ctx.rank} of {ctx.world_size})" if ctx.distributed else ""
        print(f"{len(todo) - failures} written, {failures} skipped, to {Path(args.output_dir)}{where}", file=sys.stderr)
    distributed.teardown(ctx)
    return 2 if failures else 0


def cmd_evaluate(args) -> int:
    import json

    from tqdm import tqdm

    from .api import load
    from .evaluate import evaluate, format_table
    from .images import atomic_write, expand_inputs
    from .weights import load_encoder

    method_options = _method_options(args)
    contents = expand_inputs([args.content], "content")
    styles = expand_inputs([args.style], "style")
    model = load(args.method, device=args.device, weights=args.weights, encoder_weights=args.encoder_weights,
                 **method_options)
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


METHODS = ["adain", "style-swap", "gatys"]
_OPTIMISATION_FLAGS = ("steps", "optimizer", "tv_weight", "init")
_SWAP_FLAGS = ("patch_size", "stride")


def _add_method_args(p: argparse.ArgumentParser) -> None:
    """Flags of the style-swap and gatys methods (rejected where they do not apply)."""
    g = p.add_argument_group("style-swap and gatys options")
    g.add_argument("--optimize", action="store_true",
                   help="style-swap: invert the swapped features by image optimisation instead of the inverse network")
    g.add_argument("--patch-size", type=int, metavar="N", help="style-swap: patch size in feature pixels (default: 3)")
    g.add_argument("--stride", type=int, metavar="N", help="style-swap: patch stride, at most the patch size (default: 1)")
    g.add_argument("--steps", type=int, metavar="N", help="gatys, style-swap --optimize: optimisation steps (default: 100)")
    g.add_argument("--optimizer", choices=["lbfgs", "adam"], help="gatys, style-swap --optimize (default: lbfgs)")
    g.add_argument("--tv-weight", type=float, metavar="W",
                   help="gatys, style-swap --optimize: total-variation weight (default: 0 for gatys, 1e-4 for style-swap)")
    g.add_argument("--init", choices=["content", "noise"], help="gatys, style-swap --optimize: start image (default: content)")


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _method_options(args) -> dict:
    """Keyword options for ``load`` from the method flags; a flag the chosen method does not use is an error."""
    given = [d for d in (*_SWAP_FLAGS, *_OPTIMISATION_FLAGS) if getattr(args, d) is not None]
    if args.optimize and args.method != "style-swap":
        raise StylekitError("--optimize applies only to --method style-swap"
                            + (" (gatys always optimises)" if args.method == "gatys" else ""))
    if args.method == "adain" and given:
        raise StylekitError(f"{_flag(given[0])} does not apply to --method adain")
    if args.method == "gatys" and any(d in _SWAP_FLAGS for d in given):
        raise StylekitError(f"{_flag(next(d for d in given if d in _SWAP_FLAGS))} applies only to --method style-swap")
    optimises = args.method == "gatys" or args.optimize
    if args.method == "style-swap" and not optimises and any(d in _OPTIMISATION_FLAGS for d in given):
        flag = _flag(next(d for d in given if d in _OPTIMISATION_FLAGS))
        raise StylekitError(f"{flag} needs --optimize with --method style-swap (the inverse network does not optimise)")
    options = {d: getattr(args, d) for d in given}
    if args.method == "style-swap":
        options["optimize"] = args.optimize
    if optimises:
        options["progress"] = not args.no_progress
    return options


def _add_stylize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("content", nargs="+", help="content image(s) or directories")
    p.add_argument("--style", nargs="+", required=True, help="style image(s) or directories")
    p.add_argument("--method", default="adain", choices=METHODS, help="stylization method (default: adain)")
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
    p.add_argument("--weights", help="decoder weights: adain's decoder or style-swap's inverse network (default: the shipped one)")
    p.add_argument("--encoder-weights", help="VGG-19 weights (default: $STYLEKIT_WEIGHTS, then the cache)")
    p.add_argument("--skip-existing", action="store_true", help="do not redo outputs that exist (resume a batch)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_method_args(p)


# --- serve and video (issue 7): parsing here, the work in stylekit.server / stylekit.video ---


def cmd_serve(args) -> int:
    try:
        from .server import Limits, serve
    except ImportError:
        raise StylekitError("stylekit serve needs the [serve] extra: pip install 'stylekit[serve]'") from None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        _warn(f"warning: serving on {args.host}: anyone who can reach it can use it (there is no authentication)")
    limits = Limits(
        max_body_bytes=int(args.max_body_mb * 2**20), max_concurrency=args.concurrency,
        request_timeout_s=args.timeout, max_side=args.max_side,
    )
    serve(args.host, args.port, methods=args.methods, device=args.device, weights=args.weights,
          encoder_weights=args.encoder_weights, limits=limits, log_level=args.log_level)
    return 0


def cmd_video(args) -> int:
    from .video import stylize_video

    result = stylize_video(
        args.input, args.style, args.output, method=args.method, alpha=args.alpha, style_weights=args.style_weights,
        preserve_color=args.preserve_color, size=args.size, style_size=args.style_size, device=args.device,
        weights=args.weights, encoder_weights=args.encoder_weights, max_frames=args.max_frames,
        progress=not args.no_progress,
    )
    print(result.summary())
    return 0


def _add_serve_and_video(commands) -> None:
    p = commands.add_parser("serve", help="web service with a browser page",
                            description="Serve POST /v1/stylize, a browser page at / and the API docs at /docs.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--methods", nargs="+", default=["adain"], choices=METHODS, metavar="METHOD",
                   help=f"methods to load at start-up, of {', '.join(METHODS)} (default: adain)")
    p.add_argument("--weights", help="adain decoder weights (default: the shipped one)")
    p.add_argument("--encoder-weights", help="VGG-19 weights (default: $STYLEKIT_WEIGHTS, then the cache)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--concurrency", type=int, default=1, help="stylizations at once; others queue (default: 1)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="per request (default: 120)")
    p.add_argument("--max-body-mb", type=float, default=32.0, metavar="MB", help="largest request body (default: 32)")
    p.add_argument("--max-side", type=int, default=2048, metavar="PX", help="largest size/style_size (default: 2048)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)

    p = commands.add_parser("video", help="stylize a video frame by frame",
                            description="Stylize every frame of a video (same fps, no audio); prints the flicker figures.")
    p.add_argument("input", help="input video (anything ffmpeg reads)")
    p.add_argument("--style", nargs="+", required=True, help="style image(s)")
    p.add_argument("-o", "--output", required=True, help="output video: .mp4, .mkv, .mov, .webm or .avi")
    p.add_argument("--method", default="adain", choices=METHODS, help="stylization method (default: adain)")
    p.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off in [0, 1] (default: 1)")
    p.add_argument("--style-weights", type=float, nargs="+", metavar="W", help="blend several styles with these weights")
    p.add_argument("--preserve-color", nargs="?", const="luminance", default="none",
                   choices=["none", "luminance", "histogram"], help="keep the video's colours (bare flag: luminance)")
    p.add_argument("--size", type=int, default=512, help="frames' longer side in pixels, 0 = original (default: 512)")
    p.add_argument("--style-size", type=int, default=512, help="style longer side, 0 = original (default: 512)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--weights", help="decoder weights (default: the shipped one)")
    p.add_argument("--encoder-weights", help="VGG-19 weights (default: $STYLEKIT_WEIGHTS, then the cache)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_video)


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
    p.add_argument("--method", default="adain", choices=METHODS, help="method to evaluate (default: adain)")
    p.add_argument("--size", type=int, default=512, help="content longer side (default: 512)")
    p.add_argument("--style-size", type=int, default=512, help="style longer side (default: 512)")
    p.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off (default: 1)")
    p.add_argument("--out", metavar="FILE.json", help="also write the numbers as JSON")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--weights", help="decoder weights: adain's decoder or style-swap's inverse network (default: the shipped one)")
    p.add_argument("--encoder-weights", help="VGG-19 weights")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_method_args(p)
    p.set_defaults(func=cmd_evaluate)
    _add_serve_and_video(commands)

    train = commands.add_parser("train", help="train a model")
    trainers = train.add_subparsers(dest="trainer", metavar="METHOD")
    trainers.required = True
    for name, (_, _, _, help_text) in TRAINERS.items():
        p = trainers.add_parser(name, help=help_text)
        add_arguments(p, _trainer(name)[0])
        _add_train_loop_args(p, default_steps=160_000)
        p.set_defaults(func=cmd_train)
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
