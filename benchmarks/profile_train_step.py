"""Where an AdaIN training step spends its time, and what precision / layout buys.

    python benchmarks/profile_train_step.py --content ../shared/data/content --style ../shared/data/style

Prints seconds per step for fp32 / bf16 autocast (channels_last is always on:
the trainer uses it), the data-loading time per step, and a torch.profiler
table of the bf16 step by operator. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def step_time(task, steps: int) -> float:
    times = []
    for i in range(steps + 2):
        start = time.perf_counter()
        task.train_step(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])  # the first steps warm oneDNN's kernel caches


def main() -> None:
    from stylekit.adain.train import AdaINTrainConfig, AdaINTrainTask

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--content", type=Path, required=True)
    parser.add_argument("--style", type=Path, required=True)
    parser.add_argument("--images", type=int, default=24, help="images per folder to load (speed only)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        dirs = {}
        for name, src in (("content", args.content), ("style", args.style)):
            d = Path(tmp) / name
            d.mkdir()
            for f in sorted(src.glob("*.jpg"))[: args.images]:
                (d / f.name).symlink_to(f.resolve())
            dirs[name] = str(d)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, crop {args.crop}")
        tasks = {}
        for precision in ("fp32", "bf16"):
            cfg = AdaINTrainConfig(content=dirs["content"], style=dirs["style"], crop=args.crop,
                                   batch_size=args.batch_size, precision=precision, device="cpu")
            tasks[precision] = task = AdaINTrainTask(cfg, warn=lambda m: None)
            seconds = step_time(task, args.steps)
            print(f"{precision:>5}: {seconds:.3f} s/step ({1 / seconds:.2f} steps/s)")
        task = tasks["bf16"]
        start = time.perf_counter()
        for _ in range(20):
            task.content.random_crops(args.batch_size, args.crop, task.generator)
            task.style.random_crops(args.batch_size, args.crop, task.generator)
        print(f"data: {(time.perf_counter() - start) / 20 * 1000:.1f} ms/step (crops from decoded images in memory)")
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(3):
                task.train_step(100 + i)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
