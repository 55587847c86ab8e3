"""The roofline: AdaIN's conv FLOPs over the throughput of one large 3x3
convolution (the floor), against the measured time; each stage and each conv
layer timed alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stylekit.adain.model import AdaINStylizer
from stylekit.ops import conv2d_reflect_borders, conv2d_relu
from stylekit.pipeline import pad_to_multiple
from stylekit.timing import timed_runs

from .common import Threads
from .flops import ADAIN_FLOPS_PER_ELEMENT, adain_flops, conv_flops, conv_layers

#: The roofline ratio the optimisations aim at: measured time / floor.
TARGET_RATIO = 1.3


def conv_throughput(dtype: torch.dtype, cin: int = 256, cout: int = 256, size: int = 128, repeats: int = 5) -> dict:
    """GFLOP/s of one 3x3 convolution (padding 1, channels_last) in ``dtype``, best of ``repeats``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, cin, size, size, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    w = (torch.randn(cout, cin, 3, 3, generator=g) * 0.05).to(dtype).contiguous(memory_format=torch.channels_last)
    b = torch.zeros(cout, dtype=dtype)
    flops = conv_flops(cin, cout, size, size)
    with torch.inference_mode():
        run = timed_runs(lambda: F.conv2d(x, w, b, padding=1), max(repeats, 3), 1)
    return {"shape": f"{cin}->{cout} channels at {size}x{size}", "flops": flops, **run,
            "gflops_per_s": flops / run["best"] / 1e9}


def layer_times(layer: str, size: int, dtype: torch.dtype, repeats: int) -> list[dict]:
    """Each conv of the AdaIN table alone, as the fast path runs it (ReLU fused
    where the network has one), best of ``repeats``: the 1x1 preprocess is
    folded into conv1_1 (time 0), conv1_1 reads the image padded by 2 and
    writes conv1_2's padded input, the decoder's last conv zero-pads inside
    oneDNN and recomputes its border ring, every other conv reads a pre-padded input."""
    rows = []
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for r in conv_layers(layer, size):
            if r["name"] == "preprocess":
                rows.append({**r, "best": 0.0, "gflops_per_s": None, "note": "folded into conv1_1"})
                continue
            first = r["stage"] == "encoder" and r["name"] == "conv1_1"
            last = r["stage"] == "decoder" and r["cout"] == 3
            pad = 0 if last else 2 if first else 1
            x = torch.randn(1, r["cin"], r["height"] + 2 * pad, r["width"] + 2 * pad, generator=g)
            x = x.to(dtype).contiguous(memory_format=torch.channels_last)
            w = (torch.randn(r["cout"], r["cin"], r["kernel"], r["kernel"], generator=g) * 0.05)
            w = w.to(dtype).contiguous(memory_format=torch.channels_last)
            b = torch.zeros(r["cout"], dtype=torch.float32 if first else dtype)
            conv = conv2d_reflect_borders if last else conv2d_relu
            run = timed_runs(lambda: conv(x, w, b, relu=not last), repeats, 1)
            rows.append({**r, "best": run["best"], "gflops_per_s": r["flops"] / run["best"] / 1e9})
    return rows


def stage_times(model, content, style, repeats: int, warmup: int) -> dict:
    """Encoder, AdaIN and decoder of ``model`` timed separately (style prepared)."""
    prepared = model.prepare_style(style)
    padded = pad_to_multiple(content, model.multiple)
    networks = model.networks
    with networks.grad_mode():
        feat = networks.encode_image(padded)
        target = model.target_features(feat, [prepared])
        return {
            "encoder": timed_runs(lambda: networks.encode_image(padded), repeats, warmup),
            "adain": timed_runs(lambda: model.target_features(feat, [prepared]), repeats, warmup),
            "decoder": timed_runs(lambda: model.decode(target, content.shape[-2:]), repeats, warmup),
            "whole": timed_runs(lambda: model.transfer_prepared(content, [prepared]), repeats, warmup),
        }


def roofline_section(encoder, decoder, content, style, *, repeats: int, warmup: int, threads: int | None,
                     say=print) -> dict:
    size = content.shape[-1]
    layer = decoder.from_layer
    flops = adain_flops(layer, content.shape[-2], size)
    out = {"flops": flops, "layers": conv_layers(layer, content.shape[-2], size),
           "counted": "2*Cin*Cout*k*k*H*W per conv (3x3 VGG convs and the 1x1 preprocess, encoder and decoder); "
                      f"AdaIN: {ADAIN_FLOPS_PER_ELEMENT} FLOPs per {layer} element; ReLU, reflection padding, "
                      "max-pooling and upsampling not counted", "configs": {}}
    with Threads(threads):
        peak = {name: conv_throughput(dt, repeats=max(repeats, 5)) for name, dt in (("fp32", torch.float32),
                                                                                    ("bf16", torch.bfloat16))}
        out["conv_peak"] = peak
        say(f"  3x3 conv {peak['fp32']['shape']}: {peak['fp32']['gflops_per_s']:.0f} GFLOP/s fp32, "
            f"{peak['bf16']['gflops_per_s']:.0f} GFLOP/s bf16")
        default = AdaINStylizer(encoder, decoder, "cpu", cache_size=0)
        configs = {"default": default}
        if default.dtype != torch.float32:
            configs["fp32 (other defaults)"] = AdaINStylizer(encoder, decoder, "cpu", cache_size=0, precision="fp32")
        for name, model in configs.items():
            dt = "bf16" if model.dtype == torch.bfloat16 else "fp32"
            floor = flops["convs"] / (peak[dt]["gflops_per_s"] * 1e9)
            layers = layer_times(layer, content.shape[-2], model.dtype, max(repeats, 3))
            layer_floor = sum(r["best"] for r in layers)
            stages = stage_times(model, content, style, repeats, warmup)
            measured = stages["whole"]["best"]
            gflops = {k: flops[k] / stages[k]["best"] / 1e9 for k in ("encoder", "adain", "decoder")}
            out["configs"][name] = {
                "settings": model.settings(), "dtype": dt, "floor_s": floor, "layer_floor_s": layer_floor,
                "measured_s": measured, "measured_median_s": stages["whole"]["median"],
                "ratio_to_floor": measured / floor, "ratio_to_layer_floor": measured / layer_floor,
                "layer_floor_ratio": layer_floor / floor, "stages": stages, "stage_gflops_per_s": gflops,
                "achieved_gflops_per_s": flops["convs"] / measured / 1e9, "layer_times": layers,
            }
            say(f"  AdaIN {name} ({dt}): {measured:.4g} s vs floor {floor:.4g} s = {measured / floor:.2f}x "
                f"(convs alone at their shapes: {layer_floor:.4g} s)")
    out["target_ratio"] = TARGET_RATIO
    return out
