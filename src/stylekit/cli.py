"""The ``stylekit`` command line: argument parsing and messages only, no math."""

from __future__ import annotations

import argparse
import difflib
import gc
import itertools
import re
import sys
from pathlib import Path

from . import __version__
from .config import add_arguments, from_namespace
from .errors import StylekitError, plural


def _add_train_loop_args(p: argparse.ArgumentParser, default_steps: int) -> None:
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory: checkpoints, logs, samples, weights")
    p.add_argument("--max-steps", type=int, default=default_steps,
                   help=f"train until this step (default: {default_steps}; with --resume: the run's)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in RUN_DIR from its checkpoint; settings not given are the run's")
    p.add_argument("--save-every", type=int, default=0, metavar="STEPS", help="checkpoint every STEPS steps (default: by time)")
    p.add_argument("--save-minutes", type=float, default=5.0, metavar="MIN", help="checkpoint every MIN minutes (default: 5)")
    p.add_argument("--log-every", type=int, default=10, metavar="STEPS", help="log averaged losses every STEPS steps (default: 10)")
    p.add_argument("--sample-every", type=int, default=500, metavar="STEPS", help="write a sample grid every STEPS steps, and one at the end (0: never; default: 500)")
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
    "spade": ("stylekit.spade.train", "SPADETrainConfig", "SPADETrainTask", "train SPADE (semantic image synthesis)"),
    "fast": ("stylekit.fast.train", "FastTrainConfig", "FastTrainTask",
             "train the compact real-time network by distillation from adain"),
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
    resumed_from = _settings_from_run(args, config_cls)
    # directories are kept resolved, so --resume compares them from any working directory
    paths = {k: str(Path(getattr(args, k)).resolve()) for k in getattr(config_cls, "PATH_FIELDS", ("content", "style"))}
    cfg = from_namespace(config_cls, args, **paths)
    loop = _loop_config(args)
    from . import distributed

    task = task_cls(cfg, warn=_warn)
    ctx = task.ctx
    if ctx.is_main and hasattr(task, "describe"):  # a task that says what it trains
        print(task.describe(), file=sys.stderr)
    elif ctx.is_main:
        processes = f", {ctx.world_size} processes" if ctx.distributed else ""
        print(
            f"training {args.trainer} at {cfg.layer}: {plural(len(task.content), 'content image')} and "
            f"{plural(len(task.style), 'style image')}, "
            f"{task.device} {str(task.dtype).replace('torch.', '')}{processes}",
            file=sys.stderr,
        )
    try:
        summary = run_training(task, asdict(cfg), args.out, loop, resume=args.resume)
    finally:
        # the DDP models (and their reducers' pending work) go before the process group they use
        del task
        gc.collect()
        distributed.teardown(ctx)
    if ctx.is_main:
        if resumed_from is not None and resumed_from >= loop.max_steps:
            print(f"the run is already at step {resumed_from} of its --max-steps {loop.max_steps}; "
                  "give a larger --max-steps to train it further", file=sys.stderr)
        print(f"step {summary['step']} reached in {summary['elapsed'] / 60:.1f} min of training; weights: "
              f"{Path(args.out) / 'weights.safetensors'}", file=sys.stderr)
    return 0


#: train's loop flags (their dests) -> the names the run's checkpoint keeps them under
_LOOP_SETTINGS = {"max_steps": "max_steps", "save_every": "save_every_steps", "save_minutes": "save_every_minutes",
                  "log_every": "log_every", "sample_every": "sample_every"}


def _settings_from_run(args, config_cls) -> int | None:
    """With --resume, every setting the command line leaves out comes from the run
    (data folders, sizes, --max-steps, ...); one given is kept, and the loop names
    it if the run was trained otherwise. Returns the run's step (None: a new run)."""
    import dataclasses

    from .training.loop import saved_settings

    saved = saved_settings(args.out, args.trainer) if args.resume else None
    fields = [f.name for f in dataclasses.fields(config_cls) if f.metadata.get("flag") is not False]
    if saved is not None:
        config, step = saved
        given = _given_on_command_line(_Parser.deepest)
        for dest in [*fields, *_LOOP_SETTINGS]:
            key = _LOOP_SETTINGS.get(dest, dest)
            if dest not in given and key in config:
                setattr(args, dest, config[key])
    for dest in fields:
        if getattr(args, dest) is None and not _optional(config_cls, dest):
            why = f"{args.out} holds no run to resume" if args.resume else "or --resume a run that has it"
            raise StylekitError(f"{_flag(dest)} is required ({why})")
    return saved[1] if saved is not None else None


def _optional(config_cls, name: str) -> bool:
    import dataclasses

    field = next(f for f in dataclasses.fields(config_cls) if f.name == name)
    return field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING


def _given_on_command_line(parser: argparse.ArgumentParser) -> set[str]:
    """The dests the command line set itself, not by their defaults: parsed again with no defaults."""
    defaults = [(action, action.default) for action in parser._actions]
    kept = dict(parser._defaults)
    try:
        for action, _ in defaults:
            action.default = argparse.SUPPRESS
        parser._defaults.clear()
        given, _ = parser.parse_known_args(parser._words, argparse.Namespace())
    finally:
        for action, default in defaults:
            action.default = default
        parser._defaults.update(kept)
    return set(vars(given))


def _stylize_jobs(args) -> list[tuple[Path, list[Path], Path]]:
    """(content, styles, output) for every output this command writes.

    Outputs are ``<content>_stylized_<style>.<ext>``; contents found in
    sub-folders of a content directory keep those sub-folders under the output
    directory, so equal file names in different folders do not collide. Files
    found in a directory that this command would itself write (outputs of an
    earlier run into an input folder) are never taken as inputs, and no output
    may be one of the inputs.
    """
    from .images import check_not_an_input

    contents = _found(args.content, "content")
    styles = _found(_builtin_styles(args.style), "style")
    if args.mask is not None and len(contents) != 1:
        raise StylekitError("--mask needs exactly one content image (masks have the content's size)")
    if args.output is not None:
        groups = _style_groups(args, [s for s, _, _ in styles])
        if len(contents) * len(groups) != 1:
            raise StylekitError(_one_output_hint(len(contents), len(groups)))
        jobs = [(contents[0][0], groups[0], Path(args.output))]
    else:
        jobs = _output_dir_jobs(args, contents, styles)
    inputs = [("content image", c) for c, _, _ in jobs] + [("style image", s) for _, group, _ in jobs for s in group]
    inputs += [("mask", m) for m in args.mask or []]
    for _, _, output in jobs:
        check_not_an_input(output, inputs)
    return jobs


def _builtin_styles(values: list[str]) -> list[str]:
    """--style values: files and folders as given; a bare name that is neither is a built-in style."""
    from . import styles

    out = []
    for value in values:
        if not Path(value).exists() and (styles.is_builtin(value) or not Path(value).suffix and "/" not in value):
            try:
                value = str(styles.path(value))
            except StylekitError as exc:
                raise StylekitError(f"style not found: {value} is no file, folder or built-in style "
                                    f"({str(exc).split('; ', 1)[1]}; `stylekit styles` lists them)") from None
        out.append(value)
    return out


def _found(paths, what: str) -> list[tuple[Path, Path, bool]]:
    """(file, its folder relative to the directory it was found in, whether it was found in a directory)."""
    from .images import expand_inputs_with_subdirs

    return [(f, sub, Path(raw).is_dir()) for raw in paths for f, sub in expand_inputs_with_subdirs([raw], what)]


def _style_groups(args, styles: list[Path]) -> list[list[Path]]:
    """One group per output: all styles together when they are blended or masked, else one each."""
    combine = args.style_weights is not None or args.mask is not None
    return [styles] if combine else [[s] for s in styles]


def _one_output_hint(contents: int, groups: int) -> str:
    message = f"-o names one file but there are {contents * groups} outputs"
    if contents == 1:
        return (f"{message} (one per style); add --style-weights to blend the {groups} styles into one image "
                "(e.g. --style-weights " + " ".join(["1"] * groups) + "), or use --output-dir for one image per style")
    return f"{message} ({plural(contents, 'content image')} x {plural(groups, 'style')}); use --output-dir"


def _output_dir_jobs(args, contents, styles) -> list[tuple[Path, list[Path], Path]]:
    from .images import written_by_stylekit

    out_dir = Path(args.output_dir)
    ext = args.ext.lstrip(".")

    def plan(contents, styles):
        jobs, seen = [], {}
        for content, subdir, _ in contents:
            for group in _style_groups(args, [s for s, _, _ in styles]):
                style_name = ("_".join(s.stem for s in group) if len(group) <= 3
                              else f"{group[0].stem}_and_{len(group) - 1}_more")
                output = out_dir / subdir / f"{content.stem}_stylized_{style_name}.{ext}"
                if output in seen:
                    raise StylekitError(
                        f"{seen[output]} and {content} would both be written to {output}; rename one of them"
                    )
                seen[output] = content
                jobs.append((content, group, output))
        return jobs

    # Images stylekit wrote (tagged, or named as this command would name them) are left out of
    # the inputs found in folders: a run into its own input folder must not stylize its outputs.
    ours = {output.resolve() for _, _, output in plan(contents, styles)}
    kept = {what: [item for item in found if not (item[2] and (item[0].resolve() in ours or written_by_stylekit(item[0])))]
            for what, found in (("content", contents), ("style", styles))}
    left_out = len(contents) + len(styles) - len(kept["content"]) - len(kept["style"])
    if left_out:
        _warn(f"note: left out {plural(left_out, 'image')} found in the input folders that stylekit wrote "
              "(name such a file itself to stylize it again)")
    for what, found in kept.items():
        if not found:
            raise StylekitError(f"no {what} images left: every one found in the input folders is a stylekit output")
    return plan(kept["content"], kept["style"])


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
        stroke_scale=args.stroke_scale,
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
    existing = len(jobs) - len(todo)
    if existing:
        print(f"skipping {plural(existing, 'output')} that already exist{'s' if existing == 1 else ''}",
              file=sys.stderr)
    failures = 0
    if not todo:
        _batch_summary(args, ctx, batch, 0, failures, existing)
        distributed.teardown(ctx)
        return 0
    model = load(args.method, device=device, weights=args.weights, encoder_weights=args.encoder_weights,
                 **method_options)
    bar = tqdm(todo, disable=not batch or args.no_progress or not ctx.is_main, unit="image", dynamic_ncols=True)
    for content, styles, output in bar:
        try:
            image = model.stylize(
                content, styles, alpha=options.alpha, style_weights=options.style_weights,
                masks=args.mask, preserve_color=options.preserve_color,
                size=options.size, style_size=options.style_size, crop=options.crop,
                stroke_scale=options.stroke_scale,
            )
            save_image(image, output)
        except StylekitError as exc:
            if not batch:
                raise
            failures += 1
            tqdm.write(f"warning: could not stylize {content} with {', '.join(map(str, styles))}: {exc}",
                       file=sys.stderr)
            continue
        if not batch:
            print(output)
    _batch_summary(args, ctx, batch, len(todo) - failures, failures, existing)
    distributed.teardown(ctx)
    return 2 if failures else 0


def _batch_summary(args, ctx, batch: bool, written: int, failed: int, existing: int) -> None:
    """The last line of a batch: every job counted once, in the words the lines before it used."""
    if not batch:
        return
    where = f" (process {ctx.rank} of {ctx.world_size})" if ctx.distributed else ""
    already = f", {existing} already existed" if args.skip_existing else ""
    print(f"{written} written, {failed} failed{already}, in {Path(args.output_dir)}{where}", file=sys.stderr)


def cmd_evaluate(args) -> int:
    import json

    from tqdm import tqdm

    from .api import load
    from .evaluate import evaluate, format_table
    from .files import atomic_write
    from .images import expand_inputs
    from .weights import load_encoder

    if args.curve:
        return _evaluate_curve(args)
    for dest in ("curve_steps", "curve_out", "inverse_weights"):
        if getattr(args, dest) is not None:
            raise StylekitError(f"{_flag(dest)} applies only with --curve")
    args.method = args.method or "adain"
    method_options = _method_options(args)
    contents = expand_inputs([args.content], "content")
    styles = expand_inputs([args.style], "style")
    model = load(args.method, device=args.device, weights=args.weights, encoder_weights=args.encoder_weights,
                 **method_options)
    encoder = load_encoder(args.encoder_weights, last_layer="relu3_1", device=model.device)
    bar = tqdm(total=len(contents) * len(styles), disable=args.no_progress, unit="pair", dynamic_ncols=True)
    result = evaluate(model, encoder, contents, styles, size=args.size, style_size=args.style_size,
                      progress=lambda row: bar.update(1), alpha=args.alpha, stroke_scale=args.stroke_scale)
    bar.close()
    result.update({"method": args.method, "alpha": args.alpha, "stroke_scale": args.stroke_scale, "device": str(model.device),
                   "content_dir": str(args.content), "style_dir": str(args.style)})
    print(format_table(result, args.method))
    if args.out:
        atomic_write(args.out, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    return 0


# --- evaluate --curve and bench (issue 6): parsing here, the work in stylekit.evaluate / stylekit.bench ---


def _add_curve_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("loss curves (the AdaIN paper's Fig. 3)")
    g.add_argument("--curve", action="store_true",
                   help="record Gatys's losses along its optimisation, next to adain and style-swap; "
                        "writes PREFIX.png and PREFIX.json (needs the [plots] extra)")
    g.add_argument("--curve-steps", type=int, nargs="+", metavar="N",
                   help="Gatys iterations to record (default: 0 1 2 5 10 20 50 100 200)")
    g.add_argument("--curve-out", metavar="PREFIX", help="write PREFIX.png and PREFIX.json (default: loss_curve)")
    g.add_argument("--inverse-weights", metavar="FILE",
                   help="with --curve: the style-swap inverse network (default: the shipped one, if any)")


def _evaluate_curve(args) -> int:
    import json

    from tqdm import tqdm

    from .bench import load_method, method_label
    from .devices import resolve_device
    from .evaluate import CURVE_STEPS, check_curve_steps, format_curve, loss_curve, plot_curve, require_matplotlib
    from .files import atomic_write
    from .images import check_output_path, expand_inputs
    from .style_swap.model import DEFAULT_STEPS as SWAP_STEPS
    from .weights import load_encoder

    if args.out is not None:
        raise StylekitError("with --curve the numbers go to PREFIX.json: use --curve-out PREFIX, not --out")
    for dest in ("method", "optimize", *_SWAP_FLAGS, "optimizer", "tv_weight", "init"):
        if getattr(args, dest) not in (None, False):
            raise StylekitError(f"{_flag(dest)} does not apply with --curve (it runs gatys, style-swap and adain "
                                "with their defaults; --steps sets style-swap's optimisation steps)")
    require_matplotlib()  # before any of the (long) optimisation
    steps = check_curve_steps(args.curve_steps or CURVE_STEPS)
    swap_steps = SWAP_STEPS if args.steps is None else args.steps
    prefix = args.curve_out or "loss_curve"
    for suffix in (".png", ".json"):
        if prefix.endswith(suffix):
            prefix = prefix[: -len(suffix)]
    png, js = check_output_path(prefix + ".png"), Path(prefix + ".json")
    if js.is_dir():
        raise StylekitError(f"output path is a directory: {js}")
    contents = expand_inputs([args.content], "content")
    styles = expand_inputs([args.style], "style")
    device = resolve_device(args.device)
    common = dict(device=device, encoder_weights=args.encoder_weights)
    gatys = load_method("gatys", steps=steps[-1], **common)
    others, unavailable = {}, {}
    for name, options in (("adain", {"adain_weights": args.weights}), ("style-swap-optimize", {"steps": swap_steps}),
                          ("style-swap-inverse", {"inverse_weights": args.inverse_weights})):
        label = method_label(name, swap_steps)
        try:
            others[name] = (label, load_method(name, **options, **common))
        except StylekitError as exc:
            if name != "style-swap-inverse" or args.inverse_weights is not None:
                raise
            unavailable[name] = str(exc)
            _warn(f"{label}: left out ({exc})")
    encoder = load_encoder(args.encoder_weights, last_layer="relu3_1", device=device)
    bar = tqdm(total=len(contents) * len(styles), disable=args.no_progress, unit="pair", dynamic_ncols=True)
    result = loss_curve(gatys, encoder, contents, styles, steps=steps, others=others, unavailable=unavailable,
                        size=args.size, style_size=args.style_size, alpha=args.alpha, progress=lambda row: bar.update(1))
    bar.close()
    result.update({"device": str(device), "style_swap_steps": swap_steps,
                   "content_dir": str(args.content), "style_dir": str(args.style)})
    print(format_curve(result))
    atomic_write(js, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    plot_curve(result, png)
    print(f"wrote {png} and {js}", file=sys.stderr)
    return 0


def cmd_bench(args) -> int:
    import json

    from .bench import format_table, run_bench
    from .files import atomic_write

    if args.json is not None and Path(args.json).is_dir():
        raise StylekitError(f"--json names a directory: {args.json}")
    if args.perf:
        raise StylekitError("the performance report moved out of the package: run python benchmarks/perf.py "
                            "from a checkout (docs/performance.md)")
    result = run_bench(
        sizes=args.sizes, methods=args.methods, devices=args.device, steps=args.steps, repeats=args.repeats,
        warmup=args.warmup, adain_weights=args.adain_weights, inverse_weights=args.inverse_weights,
        encoder_weights=args.encoder_weights, content=args.content, style=args.style, threads=args.threads,
        progress=None if args.no_progress else _warn,
    )
    print(format_table(result))
    if args.json is not None:
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    if not any(r["available"] for r in result["results"]):
        raise StylekitError("no method could be timed (see the reasons above)")
    return 0


def _add_bench(commands) -> None:
    commands.add_parser(
        "bench", help="seconds per image of every method (the AdaIN paper's Table 1)",
        description="Time each method with and without style encoding at square sizes: the median of --repeats "
                    "runs after --warmup runs, from image tensors already on the device. See docs/benchmarks.md.",
        build=_bench_args,
    )


def _bench_args(p: argparse.ArgumentParser) -> None:
    from .bench import DEFAULT_SIZES, DEFAULT_STEPS, METHODS as BENCH_METHODS

    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), metavar="PX",
                   help="square sizes of content and style (default: 256 512)")
    p.add_argument("--methods", nargs="+", default=list(BENCH_METHODS), choices=BENCH_METHODS, metavar="METHOD",
                   help=f"of {', '.join(BENCH_METHODS)} (default: all)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"L-BFGS steps of gatys and style-swap-optimize (default: {DEFAULT_STEPS})")
    p.add_argument("--repeats", type=int, default=3, help="timed runs; the median is reported (default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default: 1)")
    p.add_argument("--device", nargs="+", default=["auto"],
                   help="auto (the CPU, and the GPU too when CUDA is available), cpu, cuda (default: auto)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--content", metavar="IMAGE", help="content image, centre square (default: a synthetic one)")
    p.add_argument("--style", metavar="IMAGE", help="style image, centre square (default: a synthetic one)")
    p.add_argument("--adain-weights", metavar="FILE", help="AdaIN decoder (default: the shipped one)")
    p.add_argument("--inverse-weights", metavar="FILE", help="style-swap inverse network (default: the shipped one, if any)")
    p.add_argument("--encoder-weights", metavar="FILE", help="VGG-19 weights")
    p.add_argument("--json", metavar="FILE", help="also write the numbers and the machine as JSON")
    p.add_argument("--no-progress", action="store_true", help="no per-measurement lines on stderr")
    p.add_argument("--perf", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bench)


# --- export onnx: parsing here, the work in stylekit.onnx_backend ---


def cmd_export_onnx(args) -> int:
    if args.method == "fast":
        from .fast.onnx import export_fast_onnx

        manifest = export_fast_onnx(args.out, weights=args.weights, encoder_weights=args.encoder_weights,
                                    opset=args.opset)
        print(f"wrote {Path(manifest['dir']) / manifest['style']} and {Path(manifest['dir']) / manifest['network']} "
              f"(the fast network, opset {manifest['opset']}, dynamic height and width)")
        return 0
    from .onnx_backend import export_adain_onnx

    manifest = export_adain_onnx(args.out, weights=args.weights, encoder_weights=args.encoder_weights,
                                 opset=args.opset)
    print(f"wrote {Path(manifest['dir']) / manifest['encoder']} and {Path(manifest['dir']) / manifest['decoder']} "
          f"(AdaIN at {manifest['layer']}, opset {manifest['opset']}, dynamic height and width)")
    return 0


def _add_export(commands) -> None:
    commands.add_parser("export", help="export a model to another format",
                        description="Export models for other runtimes. See docs/performance.md.", build=_export_args)


def _export_args(p: argparse.ArgumentParser) -> None:
    from .onnx_backend import OPSET

    formats = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    o = formats.add_parser("onnx", help="a method's networks as ONNX models (needs the [onnx] extra)",
                           description="adain: DIR/encoder.onnx (image -> features), DIR/decoder.onnx (features -> "
                                       "image), both with dynamic height and width, and DIR/stylekit_onnx.json; run "
                                       "them with stylekit.onnx_backend.OnnxAdaINStylizer(DIR). fast: DIR/style.onnx "
                                       "(style image -> style vector) and DIR/fast.onnx (content, style vector, alpha "
                                       "-> image), and DIR/stylekit_fast_onnx.json.")
    o.add_argument("--method", choices=["adain", "fast"], default="adain", help="the method to export (default: adain)")
    o.add_argument("--out", required=True, metavar="DIR", help="output directory (created)")
    o.add_argument("--weights", metavar="FILE", help="the method's trained network (default: the shipped one)")
    o.add_argument("--encoder-weights", metavar="FILE", help="VGG-19 weights")
    o.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default: {OPSET})")
    o.set_defaults(func=cmd_export_onnx)


METHODS = ["adain", "style-swap", "gatys", "fast"]
#: stylize's and video's size default, in words (stylekit.images.DEFAULT_MAX_SIDE)
SIZE_DEFAULT = "at most 512: larger images are reduced, smaller ones keep their size"
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


def _numbers(text: str) -> list[float]:
    """One command-line word of numbers separated by commas (as the web API takes them)."""
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by spaces or commas, got {text!r}") from None


class _Flatten(argparse.Action):
    """Several words of :func:`_numbers` as one list: ``0.3 0.7`` and ``0.3,0.7`` are the same."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [number for word in values for number in word])


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
    p.add_argument("--style", nargs="+", required=True,
                   help="style image(s), directories or built-in style names (stylekit styles lists them)")
    p.add_argument("--method", default="adain", choices=METHODS, help="stylization method (default: adain)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", help="output file (one output only); .jpg, .png or .webp")
    out.add_argument("--output-dir", default="output", help="directory for <content>_stylized_<style>.<ext> (default: output)")
    p.add_argument("--ext", default="jpg", help="output extension with --output-dir (default: jpg)")
    p.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off in [0, 1] (default: 1)")
    p.add_argument("--style-weights", type=_numbers, nargs="+", action=_Flatten, metavar="W",
                   help="blend all styles into one output with these weights (normalised to sum 1), "
                        "e.g. 0.3 0.7 or 0.3,0.7")
    p.add_argument("--mask", nargs="+", metavar="MASK",
                   help="one mask per style, the content's size; white = that style's region")
    p.add_argument("--preserve-color", nargs="?", const="luminance", default="none",
                   choices=["none", "luminance", "histogram"],
                   help="keep the content's colours: luminance-only transfer, or match the style's colour histogram "
                        "to the content first (bare flag: luminance; default: none)")
    p.add_argument("--size", type=int, metavar="PX",
                   help="resize the content's longer side to PX, up or down; 0: original size "
                        f"(default: {SIZE_DEFAULT})")
    p.add_argument("--style-size", type=int, metavar="PX",
                   help=f"the same for the styles (default: {SIZE_DEFAULT})")
    p.add_argument("--crop", action="store_true", help="centre square crop of content and style first")
    p.add_argument("--stroke-scale", type=float, metavar="S",
                   help="size of the painting's strokes and shapes relative to the picture, 0.25 to 4: the method "
                        "runs coarse to fine with the style scaled like the picture, so the look does not change "
                        "with --size; 0: one pass at the output size (default: 1 for adain, 0 for the others)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--weights", help="decoder weights: adain's decoder or style-swap's inverse network (default: the shipped one)")
    p.add_argument("--encoder-weights", help="VGG-19 weights (default: $STYLEKIT_WEIGHTS, the cache, then the shipped encoder)")
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
          encoder_weights=args.encoder_weights, fast_weights=args.fast_weights, limits=limits,
          log_level=args.log_level)
    return 0


def cmd_video(args) -> int:
    from .temporal import SmoothConfig
    from .video import smooth_config, stylize_video

    strength = 0.0 if args.no_smooth else args.smooth
    smooth = smooth_config(SmoothConfig() if strength is None else strength, flow=args.flow)
    result = stylize_video(
        args.input, _builtin_styles(args.style), args.output, method=args.method, alpha=args.alpha, style_weights=args.style_weights,
        preserve_color=args.preserve_color, size=args.size, style_size=args.style_size, device=args.device,
        weights=args.weights, encoder_weights=args.encoder_weights, max_frames=args.max_frames,
        progress=not args.no_progress, smooth=smooth, feature_layer=args.feature_layer,
    )
    print(result.summary())
    return 0


def cmd_styles(args) -> int:
    import json

    from . import styles

    if args.json:
        print(json.dumps([s.as_dict() | {"path": str(s.path)} for s in styles.available()], indent=2,
                         ensure_ascii=False))
        return 0
    chosen = styles.available()
    width = max(len(s.name) for s in chosen)
    for s in chosen:
        print(f"{s.name:<{width}}  {s.label}")
    print(f"\n{plural(len(chosen), 'built-in style')} (public domain; sources: stylekit/styles/README.md). "
          "Use one: stylekit stylize photo.jpg --style NAME -o out.jpg; all of them: stylekit sheet photo.jpg "
          "-o sheet.jpg", file=sys.stderr)
    return 0


def cmd_sheet(args) -> int:
    from tqdm import tqdm

    from .api import load
    from .images import check_not_an_input, check_output_path, save_image
    from .sheet import style_sheet

    output = check_output_path(args.output)
    check_not_an_input(output, [("content image", args.content)])
    names = args.styles
    from . import styles

    for name in names or []:
        styles.get(name)
    model = load(args.method, device=args.device, weights=args.weights, encoder_weights=args.encoder_weights)
    count = len(names or styles.names())
    bar = tqdm(total=count, disable=args.no_progress, unit="style", dynamic_ncols=True)
    sheet = style_sheet(model, args.content, names, size=args.size, columns=args.columns, alpha=args.alpha,
                        preserve_color=args.preserve_color, progress=lambda name: bar.update(1))
    bar.close()
    save_image(sheet, output)
    print(output)
    return 0


def _add_styles(commands) -> None:
    p = commands.add_parser("styles", help="list the built-in styles",
                            description="The public-domain paintings that ship with stylekit: --style NAME takes "
                                        "one, stylekit sheet shows a photo in all of them.")
    p.add_argument("--json", action="store_true", help="everything about each (title, painter, year, source, "
                   "licence, path) as JSON")
    p.set_defaults(func=cmd_styles, torch=False)

    p = commands.add_parser("sheet", help="a photo in every built-in style, on one labelled sheet",
                            description="Stylize a photo with each built-in style and lay the results out in a grid, "
                                        "the photo first, each captioned with the style's name, painter and year.")
    p.add_argument("content", help="the photo")
    p.add_argument("-o", "--output", required=True, help="the sheet: .jpg, .png or .webp")
    p.add_argument("--styles", nargs="+", metavar="NAME", help="these built-in styles only (default: all)")
    p.add_argument("--size", type=int, metavar="PX",
                   help="the photo's longer side on the sheet, up or down (default: at most 256)")
    p.add_argument("--columns", type=int, default=4, help="tiles per row (default: 4)")
    p.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off in [0, 1] (default: 1)")
    p.add_argument("--preserve-color", nargs="?", const="luminance", default="none",
                   choices=["none", "luminance", "histogram"],
                   help="keep the photo's colours (bare flag: luminance; default: none)")
    p.add_argument("--method", default="adain", choices=METHODS, help="stylization method (default: adain)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--weights", help="decoder weights (default: the shipped one)")
    p.add_argument("--encoder-weights",
                   help="VGG-19 weights (default: $STYLEKIT_WEIGHTS, the cache, then the shipped encoder)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sheet)


def _add_serve_and_video(commands) -> None:
    p = commands.add_parser("serve", help="web service with a browser page",
                            description="Serve POST /v1/stylize, a browser page at / and the API docs at /docs.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--methods", nargs="+", default=["adain"], choices=METHODS, metavar="METHOD",
                   help=f"methods to load at start-up, of {', '.join(METHODS)} (default: adain)")
    p.add_argument("--weights", help="adain decoder weights (default: the shipped one)")
    p.add_argument("--fast-weights", help="fast network weights, for --methods fast: the page's instant previews "
                                          "and webcam mode (default: the shipped one)")
    p.add_argument("--encoder-weights", help="VGG-19 weights (default: $STYLEKIT_WEIGHTS, the cache, then the shipped encoder)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--concurrency", type=int, default=1, help="stylizations at once; others queue (default: 1)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="per request (default: 120)")
    p.add_argument("--max-body-mb", type=float, default=32.0, metavar="MB", help="largest request body (default: 32)")
    p.add_argument("--max-side", type=int, default=2048, metavar="PX", help="largest size/style_size (default: 2048)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="server log detail (default: info)")
    p.set_defaults(func=cmd_serve)

    p = commands.add_parser("video", help="stylize a video frame by frame",
                            description="Stylize every frame of a video (same fps, no audio), temporally smoothed unless "
                                        "--no-smooth; prints the flicker and frame-difference measures.")
    p.add_argument("input", help="input video (anything ffmpeg reads)")
    p.add_argument("--style", nargs="+", required=True, help="style image(s) or built-in style names")
    p.add_argument("-o", "--output", required=True, help="output video: .mp4, .mkv, .mov, .webm or .avi")
    p.add_argument("--method", default="adain", choices=METHODS, help="stylization method (default: adain)")
    p.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off in [0, 1] (default: 1)")
    p.add_argument("--style-weights", type=_numbers, nargs="+", action=_Flatten, metavar="W",
                   help="blend several styles with these weights, e.g. 0.3 0.7 or 0.3,0.7")
    p.add_argument("--preserve-color", nargs="?", const="luminance", default="none",
                   choices=["none", "luminance", "histogram"], help="keep the video's colours (bare flag: luminance; default: none)")
    p.add_argument("--size", type=int, metavar="PX",
                   help=f"resize the frames' longer side to PX, up or down; 0: original size (default: {SIZE_DEFAULT})")
    p.add_argument("--style-size", type=int, metavar="PX", help=f"the same for the styles (default: {SIZE_DEFAULT})")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    smooth = p.add_mutually_exclusive_group()
    smooth.add_argument("--smooth", type=float, metavar="STRENGTH",
                        help="temporal smoothing in [0, 1]: how much of the previous frame is kept where the picture "
                             "did not change (default: 1, keep it; 0 = off)")
    smooth.add_argument("--no-smooth", action="store_true", help="no temporal smoothing: each frame stylized on its own")
    p.add_argument("--flow", default="none", choices=["none", "dis"],
                   help="motion the smoothing follows: none = it smooths where the picture stands still; dis = "
                        "OpenCV's DIS optical flow, also along pans and zooms, at a cost in texture (needs "
                        "opencv-python-headless; default: none)")
    p.add_argument("--feature-layer", metavar="LAYER",
                   help="also measure the frame-difference error in this relu layer's features (e.g. relu2_1)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--weights", help="decoder weights (default: the shipped one)")
    p.add_argument("--encoder-weights", help="VGG-19 weights (default: $STYLEKIT_WEIGHTS, the cache, then the shipped encoder)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_video)


# --- spade (issue 10): parsing here, the work in stylekit.spade ---


def cmd_synthesize(args) -> int:
    from .images import check_output_path, save_image
    from .spade.synthesize import Synthesizer

    output = check_output_path(args.output)
    synth = Synthesizer.load(args.weights, device=args.device)
    image = synth.synthesize(args.mask, style=args.style, seed=args.seed)
    save_image(image, output)
    print(output)
    return 0


def cmd_spade_make_dataset(args) -> int:
    from tqdm import tqdm

    from .spade.synthetic import CLASSES, make_dataset

    bar = tqdm(total=args.count, disable=args.no_progress, unit="pair", dynamic_ncols=True)
    out = make_dataset(args.out, args.count, size=args.size, seed=args.seed, progress=lambda i: bar.update(1))
    bar.close()
    print(f"{args.count} pairs in {out / 'labels'} and {out / 'images'}: --num-classes {len(CLASSES)} "
          f"({', '.join(CLASSES)})", file=sys.stderr)
    return 0


def cmd_spade_evaluate(args) -> int:
    import json

    from .files import atomic_write
    from .spade.data import LabelledBank
    from .spade.synthesize import Synthesizer, evaluate_colour_error, format_colour_error

    synth = Synthesizer.load(args.weights, device=args.device)
    if args.untrained:
        synth = Synthesizer.untrained(synth.config, seed=synth.train_config.get("seed", 0), device=args.device)
    size = args.size or synth.config.size
    bank = LabelledBank.from_dirs(args.labels, args.images, synth.config.num_classes, resize=size, warn=_warn)
    result = evaluate_colour_error(synth, bank, crop=size, seed=args.seed)
    result.update({"weights": str(args.weights), "untrained": args.untrained, "labels": str(args.labels)})
    print(format_colour_error(result, class_names_for(args.labels)))
    if args.json:
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    if args.grid:
        from .images import save_image
        from .spade.synthesize import comparison_grid

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


def _add_spade(commands) -> None:
    p = commands.add_parser(
        "synthesize", help="an image from a label map (SPADE)",
        description="Paint a label map (a PNG of class indices) with a generator from `stylekit train spade`.",
    )
    p.add_argument("--mask", required=True, help="label map: PNG of class indices 0..N-1 (mode L or P)")
    p.add_argument("--style", metavar="IMAGE", help="reference image whose look to follow (needs a model trained with --vae)")
    p.add_argument("--weights", required=True, help="RUN/weights.safetensors of `stylekit train spade`")
    p.add_argument("-o", "--output", required=True, help="output image: .png, .jpg or .webp")
    p.add_argument("--seed", type=int, default=0, help="VAE models without --style: seed of the random style code")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.set_defaults(func=cmd_synthesize)

    spade = commands.add_parser("spade", help="SPADE tools: a procedural dataset, the per-class colour error",
                                description="Tools around `stylekit train spade` and `stylekit synthesize`.")
    tools = spade.add_subparsers(dest="spade_command", metavar="COMMAND")
    tools.required = True
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
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.set_defaults(func=cmd_spade_evaluate)


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors (an unknown choice, a missing argument) take
    the same one-line form as every other error: ``stylekit: error: ...``, exit 2.
    Sub-command parsers inherit it (``add_subparsers`` uses the parent's class).

    ``build(parser)``, if given, adds the arguments when the parser is first
    used (parsing or help): building some sub-commands imports torch, which
    ``stylekit --help`` and the other sub-commands never need.

    Messages lead to the fix: an unknown option is reported by the sub-command
    that was given it, with the nearest option it has ("did you mean") and its
    help; an invalid choice suggests the nearest choice; a missing positional
    argument swallowed by ``--style`` says so."""

    #: the sub-command parser of the command line being parsed (its flags name the errors)
    deepest: "_Parser | None" = None

    def __init__(self, *args, build=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._build = build
        self._words: list[str] = []  # what this parser was last given, for the messages

    def built(self) -> "_Parser":
        if self._build is not None:
            build, self._build = self._build, None
            build(self)
        return self

    def parse_known_args(self, args=None, namespace=None):
        self._words = list(sys.argv[1:] if args is None else args)
        _Parser.deepest = self  # sub-command parsers run inside their parent's call: the last one is the deepest
        return super(_Parser, self.built()).parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            _Parser.deepest.error("unrecognized arguments: " + " ".join(extras))
        return namespace

    def format_help(self) -> str:
        return super(_Parser, self.built()).format_help()

    def format_usage(self) -> str:
        return super(_Parser, self.built()).format_usage()

    def error(self, message: str):
        message = self._unknown_option() or self._missing_positional(message) or self._nearest_choice(message)
        self.exit(2, f"stylekit: error: {message} (see '{self.prog} --help')\n")

    def _known(self, word: str) -> bool:
        name = word.split("=", 1)[0]
        return name in self._option_string_actions or (
            name.startswith("--") and any(o.startswith(name) for o in self._option_string_actions))

    def _unknown_option(self) -> str | None:
        words = self._words[: self._words.index("--")] if "--" in self._words else self._words
        for word in words:
            if word.startswith("-") and not self._negative_number_matcher.match(word) and not self._known(word):
                name = word.split("=", 1)[0]
                options = [o for o in self._option_string_actions if o.startswith("--")]
                near = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
                return f"unknown option {name}" + (f"; did you mean {near[0]}?" if near else "")
        return None

    def _missing_positional(self, message: str) -> str | None:
        """``--style a.jpg photo.jpg`` with nothing before it: --style took the content too."""
        if not message.startswith("the following arguments are required") or "--style" not in self._words:
            return None
        start = self._words.index("--style") + 1
        taken = list(itertools.takewhile(lambda w: not w.startswith("-"), self._words[start:]))
        missing = message.split(":", 1)[1].strip().split(", ")[0]
        if len(taken) < 2 or missing.startswith("-"):
            return None
        return (f"no {missing} given: --style took {' '.join(taken)}; if {taken[-1]} is the {missing}, "
                f"put it before --style ({self.prog} {taken[-1]} --style {' '.join(taken[:-1])} ...)")

    @staticmethod
    def _nearest_choice(message: str) -> str:
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found:
            near = difflib.get_close_matches(found.group(1), re.findall(r"'([^']*)'", found.group(2)), n=1)
            if near:
                return f"{message}; did you mean '{near[0]}'?"
        return message


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stylekit", description="Arbitrary neural style transfer.")
    parser.add_argument("--version", action="version", version=f"stylekit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    p = commands.add_parser("stylize", help="stylize images", description="Stylize content images with style images.")
    _add_stylize_args(p)
    p.set_defaults(func=cmd_stylize)

    p = commands.add_parser("evaluate", help="content/style losses and time over content x style pairs",
                            description="Stylize every content x style pair and score it: content loss, mean/std "
                                        "and Gram style losses, seconds (the AdaIN paper's sec. 7.1); --curve draws "
                                        "Gatys's losses along its iterations (Fig. 3).")
    p.add_argument("--content", required=True, help="content image or directory")
    p.add_argument("--style", required=True, help="style image or directory")
    p.add_argument("--method", choices=METHODS, help="method to evaluate (default: adain)")
    p.add_argument("--size", type=int, default=512, metavar="PX",
                   help="content's longer side, exactly: smaller images are enlarged, so every pair is scored at "
                        "one scale (default: 512)")
    p.add_argument("--style-size", type=int, default=512, metavar="PX", help="style's longer side, exactly (default: 512)")
    p.add_argument("--alpha", type=float, default=1.0, help="content-style trade-off (default: 1)")
    p.add_argument("--stroke-scale", type=float, metavar="S",
                   help="as for stylize: 0 is one pass at the output size (default: the method's)")
    p.add_argument("--out", metavar="FILE.json", help="also write the numbers as JSON")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--weights", help="decoder weights: adain's decoder or style-swap's inverse network (default: the shipped one)")
    p.add_argument("--encoder-weights", help="VGG-19 weights")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_method_args(p)
    _add_curve_args(p)
    p.set_defaults(func=cmd_evaluate)
    _add_serve_and_video(commands)
    _add_styles(commands)
    _add_bench(commands)
    _add_export(commands)
    _add_spade(commands)

    commands.add_parser("train", help="train a model", build=_add_trainers,
                        description="Train a network; RUN_DIR keeps checkpoints, so --resume continues a run.")
    from .singan.commands import add_commands as add_singan_commands

    add_singan_commands(commands)
    return parser


def _add_trainers(train: argparse.ArgumentParser) -> None:
    trainers = train.add_subparsers(dest="trainer", metavar="METHOD")
    trainers.required = True
    for name, (_, _, _, help_text) in TRAINERS.items():
        trainers.add_parser(name, help=help_text, description=f"{help_text[0].upper()}{help_text[1:]}.",
                            build=lambda p, name=name: _train_args(p, name))
    # SinGAN: its own flags (one image, per-scale steps); parsing in stylekit.singan.commands
    from .singan.commands import add_train_parser as add_singan_trainer

    add_singan_trainer(trainers)


def _train_args(p: argparse.ArgumentParser, name: str) -> None:
    add_arguments(p, _trainer(name)[0])
    _add_train_loop_args(p, default_steps=160_000)
    for action in p._actions:  # --resume takes them from the run: checked in cmd_train
        if action.required and action.dest != "out":
            action.required = False
            action.help += " (required; with --resume: the run's)"
    p.set_defaults(func=cmd_train)


def _as_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """The Python API's parameter names in a message (``patch_size must ...``) as the
    command's flags (``--patch-size must ...``)."""
    actions = parser._actions if parser is not None else []
    flags = {a.dest: max(a.option_strings, key=len) for a in actions if a.option_strings and a.dest != "help"}
    for dest, flag in flags.items():
        message = re.sub(rf"(?<![\w-]){re.escape(dest)}(?= must\b| \(-?\d|:)", flag, message)
    return message


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "torch", True):  # `stylekit styles` answers without importing torch
        from .ops import tune_allocator

        tune_allocator()  # our own process: reuse large freed blocks (measured 1.35x at 512 px; see docs/performance.md)
    try:
        return args.func(args)
    except StylekitError as exc:
        print(f"stylekit: error: {_as_flags(str(exc), _Parser.deepest)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stylekit: interrupted", file=sys.stderr)
        return 130
