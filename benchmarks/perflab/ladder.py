"""The ladder: AdaIN's optimisations switched on one after another, each
step timed (style prepared, cache off) and its output checked against the
fp32 baseline's."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from stylekit.adain.model import AdaINStylizer
from stylekit.errors import StylekitError
from stylekit.files import save_tensors
from stylekit.onnx_backend import OnnxAdaINStylizer, export_adain_onnx, quantize_adain_onnx, require_onnx
from stylekit.ops import allocator_tuned
from stylekit.timing import time_call, timed_runs

from .common import QUALITY_MEAN_255, QUALITY_STYLE, Threads, physical_cores, quality, scorer, stylizer


def thread_candidates() -> list[int]:
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return sorted({1, physical_cores(), logical, torch.get_num_threads()})


def ladder_section(encoder, decoder, content, style, *, repeats: int, warmup: int, onnx: bool = True,
                   int8: bool = True, calibration=None, say=print) -> dict:
    """The cumulative optimisation steps, each timed (transfer_prepared, style
    prepared, cache off) and checked against the fp32 reference output."""
    score_of = scorer(encoder, content, style)
    default_threads = torch.get_num_threads()
    steps, reference = [], None
    tuned_before = allocator_tuned()

    def measure(name: str, change: str, model, threads: int, extra: dict | None = None):
        nonlocal reference
        with Threads(threads):
            prepared = model.prepare_style(style)
            run = timed_runs(lambda: model.transfer_prepared(content, [prepared]), repeats, warmup)
            output = model.transfer_prepared(content, [prepared])
        if reference is None:
            reference = output
        row = {"step": name, "change": change, "threads": threads, **run,
               "settings": model.settings(), "quality": quality(output, reference, score_of)}
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
    measure("baseline", "fp32, contiguous tensors, torch.no_grad, torch's default threads", stylizer(encoder, decoder, **slow),
            default_threads)
    slow["inference_mode"] = True
    measure("+ inference_mode", "torch.inference_mode instead of torch.no_grad", stylizer(encoder, decoder, **slow),
            default_threads)
    slow["channels_last"] = True
    model = stylizer(encoder, decoder, **slow, fast_pad=False)  # the same step with torch's padding
    prepared = model.prepare_style(style)
    pad_row = timed_runs(lambda: model.transfer_prepared(content, [prepared]), repeats, warmup)
    measure("+ channels_last", "NHWC activations (stylekit's reflection pad; with torch's F.pad(reflect) it took "
            f"{pad_row['best']:.4g} s)", stylizer(encoder, decoder, **slow), default_threads,
            {"with_torch_reflection_pad": pad_row})
    slow["fused"] = True
    measure("+ fused kernels", "conv + ReLU as one oneDNN primitive, weights cast once, pad written once "
            "(with the upsampling in the decoder), max-pool without indices", stylizer(encoder, decoder, **slow),
            default_threads)
    slow["tune_malloc"] = True
    measure("+ allocator", "glibc malloc keeps large freed blocks (no page faults on every new tensor)",
            stylizer(encoder, decoder, **slow), default_threads, {"allocator_tuned_before_ladder": tuned_before})

    by_threads = {}
    for n in thread_candidates():
        with Threads(n):
            model = stylizer(encoder, decoder, **slow)
            prepared = model.prepare_style(style)
            by_threads[n] = timed_runs(lambda: model.transfer_prepared(content, [prepared]),
                                       repeats, warmup)
    best_threads = min(by_threads, key=lambda n: by_threads[n]["best"])
    measure("+ threads", f"torch.set_num_threads({best_threads}), the best of {sorted(by_threads)}",
            stylizer(encoder, decoder, **slow), best_threads,
            {"by_threads": {str(n): r for n, r in by_threads.items()}})
    bf16 = dict(slow, precision="bf16")
    measure("+ bf16 autocast", "bf16 weights and activations (fp32 statistics and AdaIN)",
            stylizer(encoder, decoder, **bf16), best_threads)

    if onnx:
        _onnx_steps(steps, measure, encoder, decoder, content, style, best_threads, int8, calibration, say)

    measured = [s for s in steps if s.get("available", True)]
    keeping = [s for s in measured if s["quality"]["keeps_quality"]]
    fastest = min(keeping, key=lambda s: s["best"])
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
        require_onnx()
    except StylekitError as exc:
        steps.append({"step": "ONNX Runtime", "available": False, "reason": str(exc)})
        say(f"  ONNX Runtime: n/a ({exc})")
        return
    with tempfile.TemporaryDirectory(prefix="stylekit-onnx-") as tmp:
        with tempfile.NamedTemporaryFile(suffix=".safetensors", dir=tmp, delete=False) as f:
            weights = f.name
        save_tensors(weights, decoder.state_dict())
        export_s, _ = time_call(lambda: export_adain_onnx(tmp, weights=weights, encoder_weights=_encoder_file(encoder, tmp)))
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
    path = Path(tmp) / "vgg19_normalised_relu3_1.safetensors"
    state = {"preprocess.weight": encoder.preprocess.weight, "preprocess.bias": encoder.preprocess.bias}
    for name, conv in encoder.layers.items():
        state[f"{name}.weight"], state[f"{name}.bias"] = conv.weight, conv.bias
    return str(save_tensors(path, state))
