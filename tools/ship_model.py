"""Ship a trained network (AdaIN decoder or style-swap inverse network):
package the weights, measure them, write the model card.

    python tools/ship_model.py adain training/adain_relu3_1 --data ../shared/data
    python tools/ship_model.py style-swap training/style_swap_relu3_1 --data ../shared/data --eval-size 256

1. converts the run's weights to fp16 if that costs no quality (measured on
   dev_eval: pixel difference and loss change against fp32), else keeps fp32;
2. writes src/stylekit/data/<file>.safetensors and its sha256 into
   src/stylekit/data/weights.json;
3. runs ``stylekit evaluate`` on dev_eval with the shipped file (the command is
   quoted in the card), draws the loss curve and a result grid, and writes
   docs/models/<name>/ (card, figures, training log, numbers).
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

from dataclasses import dataclass

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "src" / "stylekit" / "data"


@dataclass(frozen=True)
class Model:
    method: str  # stylekit method name
    name: str  # weights name (stylekit.weights) and card folder
    file: str
    title: str
    what: str  # one paragraph: what the network does
    loss: str
    run_dir: str  # the conventional run directory quoted in the card
    init_note: str = ""  # where the starting weights came from, when the run had --init-weights

    @property
    def card_dir(self) -> Path:
        return REPO / "docs" / "models" / self.name

    def stylizer(self, encoder, network):
        if self.method == "adain":
            from stylekit.adain.model import AdaINStylizer

            return AdaINStylizer(encoder, network)
        from stylekit.style_swap.model import StyleSwapStylizer

        return StyleSwapStylizer(encoder, network)


MODELS = {
    "adain": Model(
        "adain", "adain-decoder-relu3_1", "adain_decoder_relu3_1.safetensors", "AdaIN decoder",
        "The default decoder of `stylekit.load(\"adain\")`: it inverts AdaIN-normalised relu3_1 features of the "
        "normalised VGG-19 back to an image (Huang & Belongie 2017, with the encoder cut at relu3_1 because that "
        "is the depth of the encoder weights we have).",
        "content `‖f(g(t)) − t‖²` + {style_weight:g} x mean/std style loss at relu1_1, relu2_1, relu3_1",
        "training/adain_relu3_1",
    ),
    "style-swap": Model(
        "style-swap", "style-swap-inverse-relu3_1", "style_swap_inverse_relu3_1.safetensors", "style-swap inverse network",
        "The inverse network of `stylekit.load(\"style-swap\")` (Chen & Schmidt 2016): it maps relu3_1 "
        "activations - of photos, of paintings, and of their style-swapped mixtures - back to an image, so a "
        "style swap needs one forward pass instead of an optimisation.",
        "`‖Φ(f(H)) − H‖²` (mean squared) + {tv_weight:g} x TV(f(H)), H = content / style / style-swapped activations in turn",
        "training/style_swap_relu3_1",
        "the AdaIN decoder's weights at step 3,000 of its run (`training/adain_relu3_1`, same architecture; "
        "exported as `adain_init_for_swap.safetensors`, not kept): see docs/training.md",
    ),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compare_precisions(model: Model, weights32: dict, data: Path, size: int = 512, pairs: int = 12) -> dict:
    """Outputs of fp16-rounded vs fp32 weights on dev_eval pairs."""
    from stylekit.decoder import MirrorDecoder
    from stylekit.weights import load_encoder

    encoder = load_encoder()
    stylizers = {}
    for name, cast in (("fp32", torch.float32), ("fp16", torch.float16)):
        network = MirrorDecoder("relu3_1")
        network.load_weights({k: v.to(cast).float() for k, v in weights32.items()})
        stylizers[name] = model.stylizer(encoder, network.eval())
    return compare_outputs(stylizers, encoder, data, size, pairs)


def compare_outputs(stylizers: dict, encoder, data: Path, size: int = 512, pairs: int = 12) -> dict:
    """Pixel and style-loss differences between ``stylizers["fp32"]`` and
    ``stylizers["fp16"]`` on dev_eval pairs: the evidence for fp16 storage."""
    from stylekit.evaluate import score
    from stylekit.images import expand_inputs
    from stylekit.pipeline import fit, to_tensor_image

    contents = expand_inputs([data / "dev_eval" / "content"], "content")
    styles = expand_inputs([data / "dev_eval" / "style"], "style")
    worst, total, count, style_change = 0.0, 0.0, 0, []
    for i in range(pairs):
        c = fit(to_tensor_image(contents[i % len(contents)], "c")[0], size, False)
        s = fit(to_tensor_image(styles[(3 * i) % len(styles)], "s")[0], size, False)
        outs = {k: m.stylize(c, s, size=0, style_size=0) for k, m in stylizers.items()}
        diff = (outs["fp32"] - outs["fp16"]).abs() * 255
        worst, total, count = max(worst, float(diff.max())), total + float(diff.sum()), count + diff.numel()
        l32, l16 = score(encoder, outs["fp32"], c, s)["style"], score(encoder, outs["fp16"], c, s)["style"]
        style_change.append(abs(l16 - l32) / l32)
    return {"pairs": pairs, "size": size, "max_abs_diff_255": worst, "mean_abs_diff_255": total / count,
            "max_rel_style_loss_change": max(style_change)}


def loss_curve(log: Path, out: Path) -> list[str]:
    """Every loss column of the training log, raw and smoothed; returns the columns drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log) as fh:
        rows = list(csv.DictReader(fh))
    keys = [k for k in rows[0] if k not in ("step", "elapsed_s", "lr", "steps_per_s", "loss")]
    steps = [int(r["step"]) for r in rows]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        values = [float(r[key]) for r in rows]
        ax.plot(steps, values, lw=0.6, alpha=0.35, color="C0")
        k = max(1, len(values) // 60)
        smooth = [sum(values[max(0, i - k): i + 1]) / len(values[max(0, i - k): i + 1]) for i in range(len(values))]
        ax.plot(steps, smooth, lw=1.6, color="C1", label=f"moving mean ({k} points)")
        ax.set_xlabel("step")
        ax.set_title(f"{key} loss")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return keys


def result_grid(model: Model, weights: Path, data: Path, out: Path, n: int = 5, size: int = 256) -> None:
    """First row: styles; first column: contents; cells: stylized outputs."""
    import stylekit
    from stylekit.images import expand_inputs, image_grid, save_image
    from stylekit.pipeline import fit, to_tensor_image

    stylizer = stylekit.load(model.method, weights=weights, device="cpu")
    contents = expand_inputs([data / "dev_eval" / "content"], "content")[:n]
    styles = expand_inputs([data / "dev_eval" / "style"], "style")[:n]
    thumb = lambda p: fit(fit(to_tensor_image(p, str(p))[0], size, True), size, False)  # noqa: E731
    style_thumbs = [thumb(s) for s in styles]
    rows = [[torch.ones(3, size, size)] + style_thumbs]
    for c in contents:
        ct = fit(to_tensor_image(c, str(c))[0], size, True)
        rows.append([thumb(c)] + [stylizer.stylize(ct, s, size=size, style_size=size) for s in style_thumbs])
    save_image(image_grid(rows, pad=4), out, quality=90)


def write_card(model: Model, step: int, elapsed: float, run: dict, precision: dict, dtype: torch.dtype,
               evaluation: dict, eval_cmd: list[str], size_bytes: int, extra: str, ship_cmd: str) -> None:
    cfg = run["config"]
    sessions = run.get("sessions", [])
    hardware = sorted({f"{s.get('processor', '?')} ({s.get('threads', '?')} threads, torch {s.get('torch', '?')})" for s in sessions})
    m = evaluation["mean"]
    card = model.card_dir
    first = sessions[0]["command"] if sessions else "?"
    train_cmd = first.split("stylekit ", 1)[-1] if "stylekit " in first else first
    train_cmd = train_cmd.replace(str(REPO.parent / "shared"), "../shared")
    first_out = train_cmd.split("--out ", 1)[1].split(" ")[0] if "--out " in train_cmd else ""
    moved = f" The run started in `{first_out}` and now lives in `{model.run_dir}`." if first_out and first_out != model.run_dir else ""
    init_row = f"| initialisation | {model.init_note} |\n" if cfg.get("init_weights") and model.init_note else ""
    with open(card / "training_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    last = rows[-20:]
    loss_keys = [k for k in rows[0] if k not in ("step", "elapsed_s", "lr", "steps_per_s", "loss")]
    finals = ", ".join(f"{k} {sum(float(r[k]) for r in last) / len(last):.4g}" for k in loss_keys)
    text = f"""# Model card: `{model.name}`

{model.what}

| | |
| --- | --- |
| file | `src/stylekit/data/{model.file}` ({size_bytes / 1e6:.2f} MB, {str(dtype).replace('torch.', '')}) |
| architecture | mirror of VGG-19 conv1_1…conv3_1: 5 convs, nearest upsampling, reflection padding, no normalisation |
| training data | `../shared/data/content` (photos) x `../shared/data/style` (paintings); see `SOURCES.tsv` there |
{init_row}| steps | {step:,} (batch {cfg['batch_size']}, {cfg['crop']} px random crops after resizing the shorter side to {cfg['resize']} px) |
| loss | {model.loss.format(**cfg)} |
| optimiser | Adam, lr {cfg['lr']:g} with inverse decay {cfg['lr_decay']:g}, precision {cfg['precision']} (bf16 autocast on this CPU) |
| wall time | {elapsed / 3600:.2f} h of training |
| hardware | {'; '.join(hardware)} |
| final losses | {finals} (mean of the last {len(last)} logged intervals) |

Trained with the command below, continued across sessions with `--resume` (`run.json` lists each session's command).{moved}

```bash
stylekit {train_cmd}
```

![loss curve](loss_curve.png)

## Quality on dev_eval

Measured with the shipped file, on all {evaluation['count']} content x style pairs of
`../shared/data/dev_eval` at {evaluation['size']} px:

```bash
{' '.join(eval_cmd).replace(str(REPO.parent / 'shared'), '../shared').replace(str(REPO) + '/', '')}
```

| | content loss | style loss (mean/std) | Gram loss | s/image |
| --- | ---: | ---: | ---: | ---: |
| {model.method} (this network) | {m['content']:.3f} | {m['style']:.3f} | {m['gram']:.2f} | {m['seconds']:.2f} |
| content image itself | 0 | {m['baseline_style']:.3f} | {m['baseline_gram']:.2f} | |

The network cuts the mean/std style loss to **{m['style_ratio']:.2f}x** the content image's own
(Gram loss: {m['gram_ratio']:.2f}x). Per-pair numbers: [evaluate.json](evaluate.json).

![dev_eval results](dev_eval_grid.jpg)

First row: styles; first column: contents (all from dev_eval, 256 px).
{extra}
## Precision

fp16 storage was kept only if it costs no quality: on {precision['pairs']} dev_eval pairs at {precision['size']} px the
fp16-rounded weights changed output pixels by {precision['mean_abs_diff_255']:.3f}/255 on average
(at most {precision['max_abs_diff_255']:.1f}/255) and the style loss by at most
{100 * precision['max_rel_style_loss_change']:.3f}% (thresholds 0.5/255 and 0.5%), so the file
holds {'float16 (within both thresholds)' if dtype == torch.float16 else 'float32 (fp16 missed a threshold)'}.

Reproduce this card: `{ship_cmd}`.
"""
    (card / "MODEL_CARD.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("STYLEKIT_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--eval-size", type=int, default=512)
    parser.add_argument("--extra", type=Path, help="a Markdown file appended to the quality section (e.g. timings)")
    parser.add_argument("--card-only", action="store_true",
                        help="rewrite MODEL_CARD.md from the numbers already in the card's folder (no measuring)")
    args = parser.parse_args()
    model = MODELS[args.model]
    if args.card_only:
        write_card_from_folder(model, args)
        return

    weights32 = load_file(str(args.run_dir / "weights.safetensors"))
    with safe_open(str(args.run_dir / "weights.safetensors"), "pt") as fh:
        run_meta = fh.metadata() or {}
    checkpoint = torch.load(args.run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    step, elapsed = int(checkpoint["step"]), float(checkpoint["elapsed"])

    precision = compare_precisions(model, weights32, args.data, size=args.eval_size)
    # fp16 "costs no quality" if output pixels move by less than 0.5/255 on average and the style loss by < 0.5%
    use_fp16 = precision["mean_abs_diff_255"] < 0.5 and precision["max_rel_style_loss_change"] < 0.005
    dtype = torch.float16 if use_fp16 else torch.float32
    DATA.mkdir(parents=True, exist_ok=True)
    target = DATA / model.file
    metadata = {"kind": model.method, "layer": "relu3_1", "step": str(step), "dtype": str(dtype).replace("torch.", ""),
                "config": run_meta.get("config", "")}
    save_file({k: v.to(dtype).contiguous() for k, v in weights32.items()}, str(target), metadata=metadata)
    index_path = DATA / "weights.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    index[model.name] = {"file": model.file, "sha256": sha256(target),
                         "description": f"{model.title} from relu3_1, trained {step} steps (see docs/models/{model.name})"}
    index_path.write_text(json.dumps(index, indent=2) + "\n")

    card = model.card_dir
    card.mkdir(parents=True, exist_ok=True)
    shutil.copy(args.run_dir / "log.csv", card / "training_log.csv")
    shutil.copy(args.run_dir / "run.json", card / "run.json")
    loss_curve(args.run_dir / "log.csv", card / "loss_curve.png")
    result_grid(model, target, args.data, card / "dev_eval_grid.jpg")
    eval_cmd = evaluate_command(model, args)
    subprocess.run([sys.executable, "-m", "stylekit", *eval_cmd[1:]], check=True, stdout=subprocess.DEVNULL)
    evaluation = json.loads((card / "evaluate.json").read_text())
    (card / "ship.json").write_text(json.dumps(
        {"step": step, "train_seconds": elapsed, "precision_check": precision, "shipped_dtype": str(dtype)}, indent=2))
    write_card_from_folder(model, args)
    print(json.dumps({"step": step, "hours": elapsed / 3600, "fp16": use_fp16, **precision,
                      "eval_mean": evaluation["mean"]}, indent=2))


def evaluate_command(model: Model, args: argparse.Namespace) -> list[str]:
    return ["stylekit", "evaluate", "--content", str(args.data / "dev_eval" / "content"),
            "--style", str(args.data / "dev_eval" / "style"), "--method", model.method,
            "--size", str(args.eval_size), "--style-size", str(args.eval_size),
            "--out", str(model.card_dir / "evaluate.json"), "--no-progress",
            # the network itself: one pass (the default stylization of adain runs it coarse to fine)
            "--stroke-scale", "0"]


def write_card_from_folder(model: Model, args: argparse.Namespace) -> None:
    card = model.card_dir
    shipped = json.loads((card / "ship.json").read_text())
    evaluation = json.loads((card / "evaluate.json").read_text())
    dtype = torch.float16 if shipped["shipped_dtype"] == str(torch.float16) else torch.float32
    eval_cmd = evaluate_command(model, args)
    extra = args.extra.read_text() if args.extra else ""
    ship_cmd = f"python tools/ship_model.py {model.method} {model.run_dir} --data ../shared/data"
    if args.eval_size != 512:
        ship_cmd += f" --eval-size {args.eval_size}"
    if args.extra:
        ship_cmd += f" --extra {args.extra}"
    write_card(model, shipped["step"], shipped["train_seconds"], json.loads((card / "run.json").read_text()),
               shipped["precision_check"], dtype, evaluation, eval_cmd, (DATA / model.file).stat().st_size, extra, ship_cmd)


if __name__ == "__main__":
    main()
