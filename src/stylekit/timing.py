"""Wall-clock timing of a callable: the one timing helper of stylekit and its benchmarks.

>>> seconds, result = time_call(lambda: sum(range(1000)))
>>> result, seconds >= 0
(499500, True)
>>> runs = timed_runs(lambda: None, repeats=3, warmup=1)
>>> len(runs["runs"]), runs["best"] <= runs["median"]
(3, True)
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, TypeVar

import torch

T = TypeVar("T")


def synchronize(device) -> None:
    """Wait for queued GPU work (a no-op on the CPU), so a timer measures the work."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_call(fn: Callable[[], T], device="cpu") -> tuple[float, T]:
    """Seconds one call of ``fn`` takes (with the device's queued work finished
    before and after), and what it returned."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def timed_runs(fn: Callable[[], object], repeats: int, warmup: int = 1, device="cpu") -> dict:
    """``warmup`` untimed calls, then ``repeats`` timed: best, median and all runs (s)."""
    for _ in range(warmup):
        fn()
    runs = [time_call(fn, device)[0] for _ in range(repeats)]
    return summary(runs)


def summary(runs: list[float]) -> dict:
    """Best, median and all of ``runs`` (seconds): what :func:`timed_runs` returns."""
    return {"best": min(runs), "median": statistics.median(runs), "runs": runs}
