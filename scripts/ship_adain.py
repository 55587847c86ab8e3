"""Ship a trained AdaIN decoder: package weights, measure them, write the model card.

    python scripts/ship_adain.py runs/adain_relu3_1 --data ../shared/data

1. converts the run's weights to fp16 if that costs no quality (measured on
   dev_eval: pixel difference and loss change against fp32), else keeps fp32;
2. writes src/stylekit/data/adain_decoder_relu3_1.safetensors and its sha256
   into src/stylekit/data/weights.json;
3. runs ``stylekit evaluate`` on dev_eval with the shipped file (the command is
   quoted in the card), draws the loss curve and a result grid, and writes
   docs/models/adain-decoder-relu3_1/ (card, figures, training log, numbers).
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
NAME = "adain-decoder-relu3_1"
FILE = "adain_decoder_relu3_1.safetensors"
DATA = REPO / "src" / "stylekit" / "data"
CARD_DIR = REPO / "docs" / "models" / NAME


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare_precisions(weights32: dict, data: Path, size: int = 512, pairs: int = 12) -> dict:
    """Outputs of fp16-rounded vs fp32 weights on dev_eval pairs."""
    from stylekit.adain.model import AdaINStylizer
    from stylekit.decoder import MirrorDecoder
    from stylekit.evaluate import score
    from stylekit.images import expand_inputs
    from stylekit.pipeline import fit, to_tensor_image
    from stylekit.weights import load_encoder

    encoder = load_encoder()
    models = {}
    for name, cast in (("fp32", torch.float32), ("fp16", torch.float16)):
        decoder = MirrorDecoder("relu3_1")
        decoder.load_weights({k: v.to(cast).float() for k, v in weights32.items()})
        models[name] = AdaINStylizer(encoder, decoder)
    contents = expand_inputs([data / "dev_eval" / "content"], "content")
    styles = expand_inputs([data / "dev_eval" / "style"], "style")
    worst, total, count, style_change = 0.0, 0.0, 0, []
    for i in range(pairs):
        c = fit(to_tensor_image(contents[i % len(contents)], "c")[0], size, False)
        s = fit(to_tensor_image(styles[(3 * i) % len(styles)], "s")[0], size, False)
        outs = {k: m.stylize(c, s, size=0, style_size=0) for k, m in models.items()}
        diff = (outs["fp32"] - outs["fp16"]).abs() * 255
        worst, total, count = max(worst, float(diff.max())), total + float(diff.sum()), count + diff.numel()
        l32, l16 = score(encoder, outs["fp32"], c, s)["style"], score(encoder, outs["fp16"], c, s)["style"]
        style_change.append(abs(l16 - l32) / l32)
    return {"pairs": pairs, "max_abs_diff_255": worst, "mean_abs_diff_255": total / count,
            "max_rel_style_loss_change": max(style_change)}


def loss_curve(log: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log) as fh:
        rows = list(csv.DictReader(fh))
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((axes[0], "content", "content loss"), (axes[1], "style", "style loss (mean/std)")):
        values = [float(r[key]) for r in rows]
        ax.plot(steps, values, lw=0.6, alpha=0.35, color="C0")
        k = max(1, len(values) // 60)
        smooth = [sum(values[max(0, i - k): i + 1]) / len(values[max(0, i - k): i + 1]) for i in range(len(values))]
        ax.plot(steps, smooth, lw=1.6, color="C1", label=f"moving mean ({k} points)")
        ax.set_xlabel("step")
        ax.set_title(label)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def result_grid(weights: Path, data: Path, out: Path, n: int = 5, size: int = 256) -> None:
    """First row: styles; first column: contents; cells: stylized outputs."""
    from stylekit.adain.model import AdaINStylizer
    from stylekit.images import expand_inputs, image_grid, save_image
    from stylekit.pipeline import fit, to_tensor_image

    model = AdaINStylizer.load(weights=weights, device="cpu")
    contents = expand_inputs([data / "dev_eval" / "content"], "content")[:n]
    styles = expand_inputs([data / "dev_eval" / "style"], "style")[:n]
    thumb = lambda p: fit(fit(to_tensor_image(p, str(p))[0], size, True), size, False)  # noqa: E731
    style_thumbs = [thumb(s) for s in styles]
    rows = [[torch.ones(3, size, size)] + style_thumbs]
    for c in contents:
        ct = fit(to_tensor_image(c, str(c))[0], size, True)
        rows.append([thumb(c)] + [model.stylize(ct, s, size=size, style_size=size) for s in style_thumbs])
    save_image(image_grid(rows, pad=4), out, quality=90)


def write_card(step: int, elapsed: float, run: dict, precision: dict, dtype: torch.dtype, evaluation: dict,
               eval_cmd: list[str], size_bytes: int) -> None:
    cfg = run["config"]
    sessions = run.get("sessions", [])
    hardware = sorted({f"{s.get('processor', '?')} ({s.get('threads', '?')} threads, torch {s.get('torch', '?')})" for s in sessions})
    m = evaluation["mean"]
    ship_cmd = "python scripts/ship_adain.py runs/adain_relu3_1 --data ../shared/data"
    train_cmd = (f"stylekit train adain --content ../shared/data/content --style ../shared/data/style "
                 f"--out runs/adain_relu3_1 --max-steps {cfg['max_steps']} --save-minutes {cfg['save_every_minutes']:g} "
                 f"--sample-every {cfg['sample_every']} --log-every {cfg['log_every']}")
    with open(CARD_DIR / "training_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    last = rows[-20:]
    final_c = sum(float(r["content"]) for r in last) / len(last)
    final_s = sum(float(r["style"]) for r in last) / len(last)
    text = f"""# Model card: `{NAME}`

The default decoder of `stylekit.load("adain")`: it inverts AdaIN-normalised
relu3_1 features of the normalised VGG-19 back to an image (Huang & Belongie
2017, with the encoder cut at relu3_1 because that is the depth of the
encoder weights we have).

| | |
| --- | --- |
| file | `src/stylekit/data/{FILE}` ({size_bytes / 1e6:.2f} MB, {str(dtype).replace('torch.', '')}) |
| architecture | mirror of VGG-19 conv1_1…conv3_1: 5 convs, nearest upsampling, reflection padding, no normalisation |
| training data | `../shared/data/content` (photos) x `../shared/data/style` (paintings); see `SOURCES.tsv` there |
| steps | {step:,} (batch {cfg['batch_size']}, {cfg['crop']} px random crops after resizing the shorter side to {cfg['resize']} px) |
| loss | content `‖f(g(t)) − t‖²` + {cfg['style_weight']:g} x mean/std style loss at relu1_1, relu2_1, relu3_1 |
| optimiser | Adam, lr {cfg['lr']:g} with inverse decay {cfg['lr_decay']:g}, precision {cfg['precision']} (bf16 autocast on this CPU) |
| wall time | {elapsed / 3600:.2f} h of training |
| hardware | {'; '.join(hardware)} |
| final losses | content {final_c:.3f}, style {final_s:.3f} (mean of the last {len(last)} logged intervals) |

Trained with (resumed across sessions with `--resume`; `run.json` lists each session's command):

```bash
{train_cmd}
```

![loss curve](loss_curve.png)

## Quality on dev_eval

Measured with the shipped file, on all {evaluation['count']} content x style pairs of
`../shared/data/dev_eval` at {evaluation['size']} px:

```bash
{' '.join(eval_cmd).replace(str(REPO.parent / 'shared'), '../shared')}
```

| | content loss | style loss (mean/std) | Gram loss | s/image |
| --- | ---: | ---: | ---: | ---: |
| AdaIN (this decoder) | {m['content']:.3f} | {m['style']:.3f} | {m['gram']:.2f} | {m['seconds']:.2f} |
| content image itself | 0 | {m['baseline_style']:.3f} | {m['baseline_gram']:.2f} | |

The decoder cuts the mean/std style loss to **{m['style_ratio']:.2f}x** the content image's own
(Gram loss: {m['gram_ratio']:.2f}x). Full per-pair numbers: [evaluate.json](evaluate.json).

![dev_eval results](dev_eval_grid.jpg)

First row: styles; first column: contents (all from dev_eval, 256 px).

## Precision

fp16 storage was kept only if it costs no quality: on {precision['pairs']} dev_eval pairs at 512 px the
fp16-rounded weights changed output pixels by {precision['mean_abs_diff_255']:.3f}/255 on average
(at most {precision['max_abs_diff_255']:.1f}/255) and the style loss by at most
{100 * precision['max_rel_style_loss_change']:.3f}% (threshold 0.5/255 and 0.5%).

Reproduce this card: `{ship_cmd}`.
"""
    (CARD_DIR / "MODEL_CARD.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("STYLEKIT_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--eval-size", type=int, default=512)
    args = parser.parse_args()

    weights32 = load_file(str(args.run_dir / "weights.safetensors"))
    with safe_open(str(args.run_dir / "weights.safetensors"), "pt") as fh:
        run_meta = fh.metadata() or {}
    checkpoint = torch.load(args.run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    step, elapsed = int(checkpoint["step"]), float(checkpoint["elapsed"])

    precision = compare_precisions(weights32, args.data)
    # fp16 "costs no quality" if no output pixel moves by more than 1/255 on average and the style loss by < 0.5%
    use_fp16 = precision["mean_abs_diff_255"] < 0.5 and precision["max_rel_style_loss_change"] < 0.005
    dtype = torch.float16 if use_fp16 else torch.float32
    DATA.mkdir(parents=True, exist_ok=True)
    target = DATA / FILE
    metadata = {"kind": "adain-decoder", "layer": "relu3_1", "step": str(step), "dtype": str(dtype).replace("torch.", ""),
                "config": run_meta.get("config", "")}
    save_file({k: v.to(dtype).contiguous() for k, v in weights32.items()}, str(target), metadata=metadata)
    index_path = DATA / "weights.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[NAME] = {"file": FILE, "sha256": sha256(target),
                   "description": f"AdaIN decoder from relu3_1, trained {step} steps (see docs/models/{NAME})"}
    index_path.write_text(json.dumps(index, indent=2) + "\n")

    CARD_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.run_dir / "log.csv", CARD_DIR / "training_log.csv")
    shutil.copy(args.run_dir / "run.json", CARD_DIR / "run.json")
    loss_curve(args.run_dir / "log.csv", CARD_DIR / "loss_curve.png")
    result_grid(target, args.data, CARD_DIR / "dev_eval_grid.jpg")
    eval_cmd = ["stylekit", "evaluate", "--content", str(args.data / "dev_eval" / "content"),
                "--style", str(args.data / "dev_eval" / "style"), "--method", "adain",
                "--size", str(args.eval_size), "--out", str(CARD_DIR / "evaluate.json"), "--no-progress"]
    subprocess.run([sys.executable, "-m", "stylekit", *eval_cmd[1:]], check=True, stdout=subprocess.DEVNULL)
    evaluation = json.loads((CARD_DIR / "evaluate.json").read_text())
    json.dump({"step": step, "train_seconds": elapsed, "precision_check": precision, "shipped_dtype": str(dtype)},
              open(CARD_DIR / "ship.json", "w"), indent=2)
    write_card(step, elapsed, json.loads((args.run_dir / "run.json").read_text()), precision, dtype, evaluation,
               eval_cmd, target.stat().st_size)
    print(json.dumps({"step": step, "hours": elapsed / 3600, "fp16": use_fp16, **precision,
                      "eval_mean": evaluation["mean"]}, indent=2))


if __name__ == "__main__":
    main()
