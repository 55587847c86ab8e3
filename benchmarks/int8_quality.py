"""Would int8 convolutions pay on this CPU, and would they keep the quality?
The evidence behind docs/performance.md's int8 paragraph.

    python benchmarks/int8_quality.py [--data ../shared/data] [--pairs 4] [--size 512] [--min-channels 128 64]

1. Speed: each 3x3 conv of AdaIN at ``--size`` with both channel counts >= 64,
   as oneDNN's int8 convolution (``torch.ops.onednn.qconv2d_pointwise``: uint8
   activations, per-channel int8 weights, bf16 output, ReLU fused; VNNI / AMX
   where the CPU has them) against the bf16 convolution the fast path runs
   (``torch.ops.mkldnn._convolution_pointwise``), best of 10 each.
2. Quality: the fp32 reference path with the inputs and weights of the 3x3
   convs having both channel counts >= each ``--min-channels`` value rounded
   to what that int8 convolution computes (per-output-channel symmetric int8
   weights; per-tensor asymmetric uint8 activations from each input's own
   min and max, the dynamic scheme it accepts), against the unrounded path,
   on the same dev_eval pairs as benchmarks/bf16_quality.py; the rule is mean
   |difference| < 1/255 and style loss change < 1 %.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
import torch.nn as nn

from stylekit.adain.model import AdaINStylizer
from stylekit.bench import bench_image
from stylekit.evaluate import score
from stylekit.images import expand_inputs
from perflab.common import quality
from perflab.flops import conv_layers
from stylekit.timing import timed_runs

REFERENCE_SETTINGS = dict(precision="fp32", channels_last=False, inference_mode=False, fused=False, tune_malloc=False)


def best_ms(fn, runs: int = 10) -> float:
    return timed_runs(fn, runs, warmup=1)["best"] * 1e3


def weight_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = w.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / 127
    return torch.round(w / scale[:, None, None, None]).clamp(-128, 127), scale


def activation_uint8(x: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    lo, hi = min(float(x.amin()), 0.0), max(float(x.amax()), 1e-12)
    scale = (hi - lo) / 255
    zero = round(-lo / scale)
    return (torch.round(x / scale) + zero).clamp(0, 255), scale, zero


def speed(size: int) -> None:
    print(f"| conv at {size} px | bf16 ms | int8 ms | int8 / bf16 speed-up |")
    print("| --- | ---: | ---: | ---: |")
    torch.manual_seed(0)
    with torch.inference_mode():
        for row in conv_layers("relu3_1", size):
            cin, cout, side = row["cin"], row["cout"], row["height"]
            if row["kernel"] != 3 or min(cin, cout) < 64:
                continue
            x = torch.randn(1, cin, side + 2, side + 2).relu().contiguous(memory_format=torch.channels_last)
            w, b = torch.randn(cout, cin, 3, 3) * 0.05, torch.randn(cout)
            xb, wb, bb = x.bfloat16(), w.bfloat16().contiguous(memory_format=torch.channels_last), b.bfloat16()
            bf16 = best_ms(lambda: torch.ops.mkldnn._convolution_pointwise(
                xb, wb, bb, [0, 0], [1, 1], [1, 1], 1, "relu", [], ""))
            qx, x_scale, x_zero = activation_uint8(x)
            qx = qx.to(torch.uint8).contiguous(memory_format=torch.channels_last)
            qw, w_scale = weight_int8(w)
            try:
                packed = torch.ops.onednn.qconv_prepack(qw.to(torch.int8), w_scale, x_scale, x_zero, [1, 1], [0, 0],
                                                        [1, 1], 1, tuple(x.shape))
                zeros = torch.zeros(cout, dtype=torch.int64)
                int8 = best_ms(lambda: torch.ops.onednn.qconv2d_pointwise(
                    qx, x_scale, x_zero, packed, w_scale, zeros, b, [1, 1], [0, 0], [1, 1], 1, 1.0, 0,
                    torch.bfloat16, "relu", [], ""))
            except RuntimeError as exc:  # a build or CPU without oneDNN int8
                print(f"| {row['stage']} {row['name']} {cin}->{cout}@{side} | {bf16:.2f} | n/a ({exc}) | |")
                continue
            print(f"| {row['stage']} {row['name']} {cin}->{cout}@{side} | {bf16:.2f} | {int8:.2f} | {bf16 / int8:.2f}x |")


def fake_int8(model: AdaINStylizer, min_channels: int) -> list:
    """Round the chosen convs' weights now and their inputs on every call; returns what undoes it."""
    undo = []
    for module in list(model.encoder.modules()) + list(model.decoder.modules()):
        if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3) and \
                min(module.in_channels, module.out_channels) >= min_channels:
            original = module.weight.data
            q, scale = weight_int8(original)
            module.weight.data = q * scale[:, None, None, None]

            def hook(_module, args):
                q, s, z = activation_uint8(args[0])
                return ((q - z) * s,)

            undo.append((module, original, module.register_forward_pre_hook(hook)))
    return undo


def quality_rows(data: Path, pairs: int, size: int, min_channels: list[int]) -> None:
    model = AdaINStylizer.load(cache_size=0, **REFERENCE_SETTINGS)
    contents = expand_inputs([data / "dev_eval" / "content"], "content")
    styles = expand_inputs([data / "dev_eval" / "style"], "style")
    print(f"\n| convs in int8 | content | style | mean \\|d\\| /255 | max /255 | style loss | content loss | rule |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
    for minimum in min_channels:
        for i in range(pairs):
            c_path, s_path = contents[i % len(contents)], styles[(i + 4) % len(styles)]
            content, style = bench_image(c_path, size, 1), bench_image(s_path, size, 2)
            with torch.no_grad():
                want = model.transfer(content, [style])
                undo = fake_int8(model, minimum)
                try:
                    got = model.transfer(content, [style])
                finally:
                    for module, original, handle in undo:
                        module.weight.data = original
                        handle.remove()
            q = quality(got, want, lambda img: score(model.encoder, img[0], content[0], style[0]))
            print(f"| {len(undo)} (channels >= {minimum}) | {Path(c_path).name[:24]} | {Path(s_path).name[:24]} | "
                  f"{q['mean_abs_255']:.2f} | {q['max_abs_255']:.1f} | {q['style_change']:+.2%} | "
                  f"{q['content_change']:+.2%} | {'kept' if q['keeps_quality'] else 'broken'} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("STYLEKIT_DATA", "../shared/data")))
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--min-channels", type=int, nargs="+", default=[128, 64])
    args = parser.parse_args()
    speed(args.size)
    quality_rows(args.data, args.pairs, args.size, args.min_channels)


if __name__ == "__main__":
    main()
