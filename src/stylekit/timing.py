"""Wall-clock timing of a callable: the one timing helper of stylekit and its benchmarks."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def synchronize(device) -> None:
    """Wait for queued GPU work (a no-op on the CPU), so a timer measures the work."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed_runs(fn: Callable[[], object], repeats: int, warmup: int = 1, device="cpu") -> dict:
    """``warmup`` untimed calls, then ``repeats`` timed: best, median and all runs (s)."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        runs.append(time.perf_counter() - start)
    return {"best": min(runs), "median": statistics.median(runs), "runs": runs}
