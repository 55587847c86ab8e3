"""What the sections share: the quality rule, the machine, the measured pair
of images, the shipped models, and a thread-count context."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from stylekit.adain.model import DEFAULT_DECODER, AdaINStylizer
from stylekit.bench import bench_image, machine_info
from stylekit.decoder import load_decoder
from stylekit.devices import cpu_has_fast_bf16
from stylekit.evaluate import score
from stylekit.onnx_backend import onnx_versions
from stylekit.ops import allocator_tuned
from stylekit.weights import load_encoder, resolve

DEFAULT_SIZE = 512
#: A faster setting keeps the quality when the output moves by less than this
#: mean absolute difference (0-255 scale) from the fp32 reference ...
QUALITY_MEAN_255 = 1.0
#: ... and the style loss by less than this fraction.
QUALITY_STYLE = 0.01
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


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


class Threads:
    """torch's intra-op threads for a block, restored after."""

    def __init__(self, n: int | None):
        self.n, self.before = n, torch.get_num_threads()

    def __enter__(self):
        if self.n:
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


def images(content, style, size: int):
    """The measured (1, 3, S, S) pair: the files' centre squares, or seeded synthetic images."""
    return bench_image(content, size, seed=1), bench_image(style, size, seed=2)


def models(adain_weights, encoder_weights):
    """The encoder and the AdaIN decoder (the shipped one unless given)."""
    decoder = load_decoder(adain_weights if adain_weights is not None else resolve(DEFAULT_DECODER))
    encoder = load_encoder(encoder_weights, last_layer=decoder.from_layer)
    return encoder, decoder


def stylizer(encoder, decoder, **settings) -> AdaINStylizer:
    """AdaIN on the CPU without its feature cache (every call does the whole work)."""
    return AdaINStylizer(encoder, decoder, "cpu", cache_size=0, **settings)


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


def scorer(encoder, content, style):
    """The losses of an output against this content and style (:func:`stylekit.evaluate.score`)."""

    def run(image):
        return score(encoder, image[0], content[0], style[0])

    return run


def as_str(x):
    return None if x is None else str(x)
