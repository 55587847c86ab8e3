"""The default (fast, bf16 where native) AdaIN path against the fp32 reference
path on real dev_eval pairs: the quality evidence of docs/performance.md.

    python benchmarks/bf16_quality.py [--data ../shared/data] [--pairs 4] [--sizes 256 512]

Pair i is the i-th content image with the (i + 4)-th style image, in name
order. Prints, per pair and size, the mean and max |difference| of the
outputs (0-255) and the change of the style and content losses
(``perflab.common.quality``); the rule is mean |difference| < 1/255 and style
loss change < 1 %.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from stylekit.adain.model import AdaINStylizer
from stylekit.bench import bench_image
from stylekit.evaluate import score
from stylekit.images import expand_inputs
from perflab.common import quality

#: The reference path (docs/performance.md): plain fp32 modules, contiguous tensors, no_grad.
REFERENCE_SETTINGS = dict(precision="fp32", channels_last=False, inference_mode=False, fused=False, tune_malloc=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("STYLEKIT_DATA", "../shared/data")))
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--modules", action="store_true",
                        help="measure the plain modules under bf16 autocast (fused=False) instead of the default path")
    args = parser.parse_args()
    reference = AdaINStylizer.load(cache_size=0, **REFERENCE_SETTINGS)
    default = AdaINStylizer.load(cache_size=0, **({"fused": False} if args.modules else {}))
    contents = expand_inputs([args.data / "dev_eval" / "content"], "content")
    styles = expand_inputs([args.data / "dev_eval" / "style"], "style")
    print(f"default settings: {default.settings()}")
    print("| size | content | style | mean \\|d\\| /255 | max /255 | style loss | content loss |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: |")
    for size in args.sizes:
        for i in range(args.pairs):
            c_path, s_path = contents[i % len(contents)], styles[(i + 4) % len(styles)]
            content, style = bench_image(c_path, size, 1), bench_image(s_path, size, 2)
            want = reference.transfer(content, [style])
            got = default.transfer(content, [style])
            q = quality(got, want, lambda img: score(reference.encoder, img[0], content[0], style[0]))
            print(f"| {size} | {Path(c_path).name[:28]} | {Path(s_path).name[:28]} | {q['mean_abs_255']:.2f} | "
                  f"{q['max_abs_255']:.1f} | {q['style_change']:+.2%} | {q['content_change']:+.2%} |")


if __name__ == "__main__":
    main()
