"""``stylekit train METHOD``: every trainer's flags come from its config
dataclass (:mod:`stylekit.config`), the loop's from :func:`add_train_loop_args`;
``--resume`` takes what the command line leaves out from the run. The work
is :func:`stylekit.training.loop.run_training`."""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from ..config import add_arguments, from_namespace
from ..errors import StylekitError, plural
from .parser import Parser, flag, warn


# name -> (module, config class, task class, help); each trainer is one line here
TRAINERS = {
    "adain": ("stylekit.adain.train", "AdaINTrainConfig", "AdaINTrainTask", "train the AdaIN decoder"),
    "adain-transform": ("stylekit.adain.train_transform", "TransformTrainConfig", "TransformTrainTask",
                        "train the covariance transform in front of the frozen AdaIN decoder"),
    "style-swap": ("stylekit.style_swap.train", "StyleSwapTrainConfig", "StyleSwapTrainTask",
                   "train the style-swap inverse network"),
    "spade": ("stylekit.spade.train", "SPADETrainConfig", "SPADETrainTask", "train SPADE (semantic image synthesis)"),
    "fast": ("stylekit.fast.train", "FastTrainConfig", "FastTrainTask",
             "train the compact real-time network by distillation from adain"),
}


def add_commands(commands) -> None:
    commands.add_parser("train", help="train a model", build=add_trainers,
                        description="Train a network; RUN_DIR keeps checkpoints, so --resume continues a run.")


def add_trainers(train: argparse.ArgumentParser) -> None:
    trainers = train.add_subparsers(dest="trainer", metavar="METHOD")
    trainers.required = True
    for name, (_, _, _, help_text) in TRAINERS.items():
        trainers.add_parser(name, help=help_text, description=f"{help_text[0].upper()}{help_text[1:]}.",
                            build=lambda p, name=name: train_args(p, name))
    teacher_set = trainers.add_parser(
        "fast-teacher-set", help="write a teacher set for `train fast --teacher-set`",
        description="Run the teacher (adain's default stylization) once on random content/style crops and store "
                    "them for `stylekit train fast --teacher-set DIR`, which then trains on views of the stored pairs "
                    "without running the teacher. Writes only the shards DIR lacks, so it continues when stopped; "
                    "--part K/N writes every N-th shard from K (N processes write one set together).",
        build=teacher_set_args)
    # SinGAN: its own flags (one image, per-scale steps); parsing in stylekit.singan.commands
    from .singan import add_train_parser as add_singan_trainer

    add_singan_trainer(trainers)


def teacher_set_args(p: argparse.ArgumentParser) -> None:
    from ..fast.teacher_set import TeacherSetConfig

    p.add_argument("--out", required=True, metavar="DIR", help="the teacher set's directory")
    add_arguments(p, TeacherSetConfig)
    p.add_argument("--part", default="0/1", metavar="K/N", help="write the shards k with k %% N == K (default: 0/1, all)")
    p.set_defaults(func=cmd_teacher_set)


def cmd_teacher_set(args) -> int:
    from ..fast.teacher_set import TeacherSetConfig, write_teacher_set

    try:
        index, parts = (int(v) for v in args.part.split("/"))
    except ValueError:
        raise StylekitError(f"--part must be K/N, got {args.part!r}") from None
    paths = {k: str(Path(getattr(args, k)).resolve()) for k in ("content", "style")}
    cfg = from_namespace(TeacherSetConfig, args, **paths)
    written = write_teacher_set(cfg, args.out, (index, parts), warn=warn,
                                report=lambda line: print(line, file=sys.stderr, flush=True))
    print(f"{plural(len(written), 'shard')} written to {args.out}", file=sys.stderr)
    return 0


def train_args(p: argparse.ArgumentParser, name: str) -> None:
    add_arguments(p, _trainer(name)[0])
    add_train_loop_args(p, default_steps=160_000)
    for action in p._actions:  # --resume takes them from the run: checked in cmd_train
        if action.required and action.dest != "out":
            action.required = False
            action.help += " (required; with --resume: the run's)"
    p.set_defaults(func=cmd_train)


def add_train_loop_args(p: argparse.ArgumentParser, default_steps: int) -> None:
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
    from ..training.loop import LoopConfig

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


def _trainer(name: str):
    import importlib

    module_name, config_name, task_name, _ = TRAINERS[name]
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, task_name)


def cmd_train(args) -> int:
    from dataclasses import asdict

    from ..training.loop import config_defaults, run_training

    config_cls, task_cls = _trainer(args.trainer)
    resumed_from = _settings_from_run(args, config_cls)
    # directories are kept resolved, so --resume compares them from any working directory
    paths = {k: str(Path(getattr(args, k)).resolve())
             for k in getattr(config_cls, "PATH_FIELDS", ("content", "style")) if getattr(args, k) is not None}
    cfg = from_namespace(config_cls, args, **paths)
    loop = _loop_config(args)
    from .. import distributed

    task = task_cls(cfg, warn=warn)
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
        summary = run_training(task, asdict(cfg), args.out, loop, resume=args.resume, defaults=config_defaults(type(cfg)))
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

    from ..training.loop import saved_settings

    saved = saved_settings(args.out, args.trainer) if args.resume else None
    fields = [f.name for f in dataclasses.fields(config_cls) if f.metadata.get("flag") is not False]
    if saved is not None:
        config, step = saved
        given = _given_on_command_line(Parser.deepest)
        for dest in [*fields, *_LOOP_SETTINGS]:
            key = _LOOP_SETTINGS.get(dest, dest)
            if dest not in given and key in config:
                setattr(args, dest, config[key])
    for dest in fields:
        if getattr(args, dest) is None and not _optional(config_cls, dest):
            why = f"{args.out} holds no run to resume" if args.resume else "or --resume a run that has it"
            raise StylekitError(f"{flag(dest)} is required ({why})")
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
