"""Frames per second on a GPU: the fast network and adain at 512^2 and 1024^2,
in fp32 and under bf16 / fp16 autocast, next to the AdaIN paper's 15 FPS
(Titan X, 512 x 512); and training steps per second read from runs' logs.

    python benchmarks/gpu.py --fast-weights training/fast/weights.safetensors \
        --train-log training/fast/log.csv --out benchmarks/results/gpu_h200.json

Timed with the device synchronised around each call (median of ``--repeats``):

* ``fast``, style prepared: one frame through the content network, as
  ``stylekit video`` runs it (the style's modulation computed once);
* ``fast``, with style encoding: the style's VGG statistics and the frame;
* ``adain one pass``, style prepared: VGG encoder, AdaIN, decoder;
* ``adain``: the default coarse-to-fine stylization, style encoding included
  (every level encodes the style at its own scale).
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
from pathlib import Path

import torch

import stylekit
from stylekit.images import load_pil, pil_to_tensor, resize_longer
from stylekit.styles import path as style_path
from stylekit.timing import timed_runs

from perflab.gpu import PAPER_FPS
from perflab.report import save_report


def training_speed(log: Path) -> dict:
    """Steps per second of a run's log (``step`` and ``elapsed_s`` columns), after its first logged row
    (the start-up and the first steps' warm-up left out)."""
    with log.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    first = rows[0] if len(rows) > 1 else {"step": 0, "elapsed_s": 0.0}  # one row: from the start (start-up included)
    last = rows[-1]
    steps, seconds = int(last["step"]) - int(first["step"]), float(last["elapsed_s"]) - float(first["elapsed_s"])
    return {"log": str(log), "steps": int(last["step"]), "seconds": float(last["elapsed_s"]), "steps_per_s": steps / seconds}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fast-weights", help="fast-network weights (default: the shipped ones)")
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--train-log", nargs="*", default=[], help="runs' log.csv files to read training speed from")
    p.add_argument("--device", default="cuda", help="cuda (cpu only to try the script out)")
    p.add_argument("--out", help="write the figures as JSON")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to measure", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    style = pil_to_tensor(resize_longer(load_pil(style_path("composition_xiii")), 512))[None]
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    result = {"gpu": name, "torch": torch.__version__, "machine": platform.machine(),
              "paper_fps": PAPER_FPS, "frames": []}
    lines = [f"{result['gpu']}, torch {torch.__version__}, median of {args.repeats} runs"]

    def record(method, size, precision, what, fn):
        t = timed_runs(fn, args.repeats, warmup=3, device=device)
        entry = {"method": method, "size": size, "precision": precision, "what": what, "seconds": t["median"],
                 "fps": 1 / t["median"]}
        result["frames"].append(entry)
        lines.append(f"  {method:<15} {size:>5}^2 {precision:<5} {what:<20} {t['median'] * 1e3:8.2f} ms  "
                     f"{1 / t['median']:8.1f} fps")

    for precision in args.precisions:
        fast = stylekit.load("fast", device=args.device, weights=args.fast_weights, precision=precision)
        adain = stylekit.load("adain", device=args.device, precision=precision, cache_size=0)
        for size in args.sizes:
            frame = torch.rand(1, 3, size, size, device=device)
            s = style.to(device)
            prepared = [fast.prepare_style(s)]
            record("fast", size, precision, "style prepared", lambda: fast.transfer_prepared(frame, prepared))
            record("fast", size, precision, "with style encoding",
                   lambda: fast.transfer_prepared(frame, [fast.prepare_style(s)]))
            stats = [adain.prepare_style(s)]
            record("adain one pass", size, precision, "style prepared", lambda: adain.transfer_prepared(frame, stats))
            record("adain", size, precision, "with style encoding",
                   lambda: adain.transfer_coarse_to_fine(frame, [s]))
    result["training"] = [training_speed(Path(log)) for log in args.train_log if Path(log).exists()]
    for t in result["training"]:
        lines.append(f"  training {t['log']}: {t['steps_per_s']:.2f} steps/s over {t['steps']} steps")
    lines.append(f"  the AdaIN paper: {PAPER_FPS:.0f} fps at 512^2 on a Titan X")
    save_report(args.out, result, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
