"""``stylekit bench``: seconds per image of every method (the AdaIN paper's
Table 1); the work is :mod:`stylekit.bench`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import StylekitError
from .flags import ENCODER_HELP
from .parser import warn


def add_commands(commands) -> None:
    commands.add_parser(
        "bench", help="seconds per image of every method (the AdaIN paper's Table 1)",
        description="Time each method with and without style encoding at square sizes: the median of --repeats "
                    "runs after --warmup runs, from image tensors already on the device. See docs/benchmarks.md.",
        build=bench_args,
    )


def bench_args(p: argparse.ArgumentParser) -> None:
    from ..bench import DEFAULT_SIZES, DEFAULT_STEPS, METHODS as BENCH_METHODS

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
    p.add_argument("--encoder-weights", metavar="FILE", help=ENCODER_HELP)
    p.add_argument("--json", metavar="FILE", help="also write the numbers and the machine as JSON")
    p.add_argument("--no-progress", action="store_true", help="no per-measurement lines on stderr")
    p.add_argument("--perf", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    import json

    from ..bench import format_table, run_bench
    from ..files import atomic_write

    if args.json is not None and Path(args.json).is_dir():
        raise StylekitError(f"--json names a directory: {args.json}")
    if args.perf:
        raise StylekitError("the performance report moved out of the package: run python benchmarks/perf.py "
                            "from a checkout (docs/performance.md)")
    result = run_bench(
        sizes=args.sizes, methods=args.methods, devices=args.device, steps=args.steps, repeats=args.repeats,
        warmup=args.warmup, adain_weights=args.adain_weights, inverse_weights=args.inverse_weights,
        encoder_weights=args.encoder_weights, content=args.content, style=args.style, threads=args.threads,
        progress=None if args.no_progress else warn,
    )
    print(format_table(result))
    if args.json is not None:
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    if not any(r["available"] for r in result["results"]):
        raise StylekitError("no method could be timed (see the reasons above)")
    return 0
