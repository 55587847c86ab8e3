"""Time and peak memory of feed-forward style swap with content and style of equal size.

    python benchmarks/measure_style_swap.py --inverse-weights src/stylekit/data/style_swap_inverse_relu3_1.safetensors \
        --sizes 512 1024 --markdown docs/models/style-swap-inverse-relu3_1/timing.md

Each size runs in a fresh process (``perflab.memory.memory_section``): one
stylization of an S x S content with an S x S style, the swap at relu3_1 with
3x3 patches and stride 1, then the inverse network; the peak resident memory
is measured above the process after torch and the models were loaded.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from perflab.memory import memory_section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inverse-weights", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--markdown", type=Path, help="write the table as a Markdown section")
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        result = memory_section(["style-swap-inverse"], [size], style_size=size, adain_extra_sizes=(),
                                untiled_sizes=(), inverse_weights=args.inverse_weights)
        rows.extend(result["rows"])
    lines = ["", "## Speed and memory", "",
             f"One stylization, content and style both S x S, 3x3 patches, stride 1, on {platform.processor() or platform.machine()} "
             f"({torch.get_num_threads()} threads, torch {torch.__version__}); each size in a fresh process:", "",
             "| S | seconds | peak resident MiB | above the loaded, idle process |", "| ---: | ---: | ---: | ---: |"]
    for r in rows:
        if r.get("available"):
            lines.append(f"| {r['size']} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | {r['above_idle_mib']:.0f} |")
        else:
            lines.append(f"| {r['size']} | n/a | {r['reason']} | |")
    weights = f" --inverse-weights {args.inverse_weights}" if args.inverse_weights else ""
    cmd = f"python benchmarks/measure_style_swap.py{weights} --sizes " + " ".join(map(str, args.sizes))
    lines += ["", f"Measured with `{cmd}`.", ""]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
