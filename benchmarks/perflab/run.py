"""The whole run: every section asked for, on one measured pair of images,
with the thread count the ladder found best; returns the numbers."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch

import stylekit
from stylekit.checks import check_int
from stylekit.errors import StylekitError
from stylekit.images import MIN_SIDE

from .common import DEFAULT_SIZE, as_str, images, models, perf_machine
from .gpu import gpu_section
from .ladder import ladder_section
from .memory import DEFAULT_SIZES as DEFAULT_MEMORY_SIZES, memory_section
from .peer import peer_section
from .roofline import roofline_section
from .swap import swap_section

SECTIONS = ("ladder", "roofline", "peer", "swap", "memory", "gpu")


def calibration_pairs() -> list[tuple[Path, Path]]:
    """int8 calibration images other than the measured pair: the package's examples."""
    files = sorted((Path(stylekit.__file__).parent / "examples").glob("*.jpg"))
    return [(files[i], files[(i + 1) % len(files)]) for i in range(0, len(files), 2)] if len(files) >= 2 else []


def check_run(size, repeats, warmup, threads, sections, content, style, peer_python) -> list[str]:
    """The arguments' errors as :class:`StylekitError`; the sections, duplicates dropped."""
    check_int(size, "size", MIN_SIDE)
    check_int(repeats, "repeats", 1)
    check_int(warmup, "warmup", 0)
    if threads is not None:
        check_int(threads, "threads", 1)
    sections = list(dict.fromkeys(sections))
    for s in sections:
        if s not in SECTIONS:
            raise StylekitError(f"unknown perf section {s!r}; choose from {', '.join(SECTIONS)}")
    for path, what in ((content, "content"), (style, "style")):
        if path is not None and not Path(path).is_file():
            raise StylekitError(f"{what} image not found: {path}")
    if peer_python is not None and not Path(peer_python).exists():
        raise StylekitError(f"--peer-python not found: {peer_python}")
    return sections


def run_perf(*, size: int = DEFAULT_SIZE, sections=SECTIONS, repeats: int = 5, warmup: int = 1,
             threads: int | None = None, content=None, style=None, adain_weights=None, encoder_weights=None,
             inverse_weights=None, peer_python=None, memory_sizes=DEFAULT_MEMORY_SIZES, memory_steps: int = 2,
             memory_extra_sizes=(4096,), memory_untiled_sizes=(2048,), swap_size: int | None = None,
             swap_repeats: int = 1, onnx: bool = True, int8: bool = True, gpu_frames: int = 50,
             gpu_train_steps: int = 20, progress: Callable[[str], None] | None = None) -> dict:
    """Every section of the performance report in ``sections``; returns the numbers."""
    say = progress or (lambda message: None)
    sections = check_run(size, repeats, warmup, threads, sections, content, style, peer_python)
    result = {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "settings": {"size": size, "sections": sections, "repeats": repeats, "warmup": warmup,
                           "threads": threads, "content": str(content) if content else "synthetic (seeded)",
                           "style": str(style) if style else "synthetic (seeded)",
                           "adain_weights": as_str(adain_weights) or "shipped decoder",
                           "statistic": "best (min) and median of the timed runs"}}
    encoder, decoder = models(adain_weights, encoder_weights)
    c, s = images(content, style, size)
    chosen_threads = threads
    if "ladder" in sections:
        say(f"optimisation ladder (AdaIN {size}x{size}, style prepared):")
        calibration = [(c, s)] + [images(str(p1), str(p2), size) for p1, p2 in calibration_pairs()]
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
        sc, ss = images(content, style, n)
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
