"""A decoder's training objective on fixed batches, next to another's.

    python benchmarks/decoder_objective.py training/adain_multiscale \
        src/stylekit/data/adain_decoder_relu3_1.safetensors training/adain_multiscale/weights.safetensors

Draws ``--batches`` batches once, seeded, from the data and crop settings in
the run's ``run.json`` (its losses too: style scales, pyramid, weights), and
prints each decoder's mean loss and loss terms on exactly those batches. The
training log's numbers are each a different batch's; this compares decoders
on the same ones, e.g. a fine-tune against the weights it started from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from stylekit.adain.train import AdaINTrainConfig, AdaINTrainTask
from stylekit.decoder import load_decoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a stylekit train adain run directory (its run.json)")
    p.add_argument("weights", nargs="+", help="decoder weights to compare")
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    saved = json.loads((args.run / "run.json").read_text())["config"]
    fields = {f.name for f in dataclasses.fields(AdaINTrainConfig)}
    cfg = AdaINTrainConfig(**{k: v for k, v in saved.items() if k in fields and k != "init_weights"})
    task = AdaINTrainTask(cfg, warn=lambda m: None)
    g = torch.Generator().manual_seed(args.seed)
    batches = [(task.to_device(task.content.random_crops(args.batch_size, cfg.crop, g)),
                task.to_device(task.style.random_crops(args.batch_size, cfg.crop, g))) for _ in range(args.batches)]
    for path in args.weights:
        task.decoder.load_state_dict(load_decoder(path).state_dict())
        totals: dict[str, float] = {}
        with torch.no_grad():
            for content, style in batches:
                loss, parts = task.losses(content, style)
                for k, v in {"loss": loss, **parts}.items():
                    totals[k] = totals.get(k, 0.0) + float(v) / len(batches)
        print(path, " ".join(f"{k} {v:.3f}" for k, v in totals.items()), flush=True)


if __name__ == "__main__":
    main()
