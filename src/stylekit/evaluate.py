"""Quality and speed of a method over every content x style pair (the AdaIN paper's
sec. 7.1 measures and the bolder-style measures of :mod:`stylekit.measures`).

All losses use the same VGG-19 encoder, on the output at the content's
stylization size and the style at its style size:

* ``content``: ``||f(out) - f(c)||^2`` at relu3_1 divided by the number of
  elements of ``f(c)`` (a mean squared error);
* ``style``: the AdaIN paper's style loss, sum over relu1_1...relu3_1 of the mean
  squared differences of channel means and of channel stds; ``style_2x`` /
  ``style_4x`` the same on the output and the style downsampled 2x / 4x
  (strokes and shapes larger than relu3_1's receptive field);
* ``gram``: sum over the same layers of the mean squared difference of
  ``F F^T / (H W)``;
* ``colour``: sliced Wasserstein distance of the RGB pixels to the style's;
* ``ssim``: grayscale SSIM of the output against the content;
* ``cfsd``: StyleID's content feature structural distance at relu3_1 (<= 256 px).

These are relu3_1 variants (the deepest pretrained layer stylekit has), not
comparable with papers' relu4_1 / relu5_1 numbers.

The content image itself is scored as a baseline: a method that stylizes
must cut the style losses well below the content image's own.

:func:`loss_curve` is the paper's Fig. 3: the same losses for Gatys et al.
after each of a list of optimisation steps, next to the feed-forward methods'
(flat lines, they do not iterate); :func:`plot_curve` draws it.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from .checks import check_int
from .encoder import VGGEncoder, style_layers_for
from .errors import StylekitError
from .losses import content_loss, gram_style_loss, mean_std_style_loss
from .measures import measure
from .pipeline import fit, to_tensor_image
from .timing import time_call

METRICS = ("content", "style", "gram")
#: every measure of a stylized image, in table order (:func:`stylekit.measures.measure`)
MEASURES = ("style", "style_2x", "style_4x", "gram", "colour", "content", "ssim", "cfsd")


@torch.no_grad()
def score(encoder: VGGEncoder, output: torch.Tensor, content: torch.Tensor, style: torch.Tensor, layer: str = "relu3_1") -> dict:
    """The paper's losses of one output (all (3, H, W) tensors in [0, 1]):
    ``{"content": ..., "style": ..., "gram": ...}``, the content loss at
    ``layer`` against the content's features, AdaIN's mean/std style loss and
    Gatys's Gram loss over the layers up to ``layer``.

    >>> import torch
    >>> from stylekit.weights import load_encoder
    >>> encoder = load_encoder(last_layer="relu3_1")
    >>> image = torch.rand(3, 32, 32)
    >>> losses = score(encoder, image, content=image, style=image)
    >>> sorted(losses), losses["content"], losses["style"], losses["gram"]
    (['content', 'gram', 'style'], 0.0, 0.0, 0.0)
    """
    layers = style_layers_for(layer)
    device = next(encoder.parameters()).device
    output, content, style = (t.to(device) for t in (output, content, style))
    f_out = encoder(output[None], layers)
    f_content = encoder.encode(content[None], layer)
    f_style = encoder(style[None], layers)
    return {
        "content": content_loss(f_out[layer], f_content).item(),
        "style": mean_std_style_loss(f_out, f_style, layers).item(),
        "gram": gram_style_loss(f_out, f_style, layers).item(),
    }


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def evaluate(
    stylizer,
    encoder: VGGEncoder,
    contents: list[Path],
    styles: list[Path],
    size: int = 512,
    style_size: int = 512,
    progress=None,
    **stylize_options,
) -> dict:
    """Score ``stylizer`` on every pair; returns per-pair rows and averages."""
    rows = []
    pairs = [(c, s) for c in contents for s in styles]
    for content_path, style_path in pairs:
        content = fit(to_tensor_image(content_path, str(content_path))[0], size, False)
        style = fit(to_tensor_image(style_path, str(style_path))[0], style_size, False)
        stylizer.clear_cache()  # time the whole job, style encoding included
        seconds, output = time_call(lambda: stylizer.stylize(content, style, size=0, style_size=0, **stylize_options))
        row = {"content_image": content_path.name, "style_image": style_path.name, "seconds": seconds}
        row.update(measure(encoder, output, content, style))
        baseline = measure(encoder, content, content, style)
        row.update({f"baseline_{k}": v for k, v in baseline.items()})
        rows.append(row)
        if progress is not None:
            progress(row)
    keys = ["seconds", *MEASURES, *(f"baseline_{k}" for k in MEASURES)]
    mean = {k: _mean(r[k] for r in rows) for k in keys}
    mean["style_ratio"] = mean["style"] / mean["baseline_style"]
    mean["gram_ratio"] = mean["gram"] / mean["baseline_gram"]
    return {"pairs": rows, "mean": mean, "size": size, "style_size": style_size, "count": len(rows)}


def _cell(value, width: int) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.4g}"


def format_row(label: str, values: dict, width: int = 28) -> str:
    """One table line: ``label`` and each of :data:`MEASURES` (and seconds when given)."""
    cells = "".join(" " + _cell(values.get(k), 9) for k in MEASURES)
    seconds = f" {values['seconds']:>7.3f}" if values.get("seconds") is not None else ""
    return f"{label[:width]:<{width}}{cells}{seconds}"


def table_header(first: str = "", width: int = 28) -> str:
    return f"{first:<{width}}" + "".join(f" {k:>9}" for k in MEASURES) + f" {'sec':>7}"


def format_table(result: dict, method: str) -> str:
    lines = [table_header("content / style", 40)]
    for r in result["pairs"]:
        lines.append(format_row(f"{r['content_image'][:19]} / {r['style_image'][:18]}", r, 40))
    m = result["mean"]
    lines.append("")
    lines.append(f"mean over {result['count']} pairs (content {result['size']} px, style {result['style_size']} px):")
    lines.append(table_header("", 40))
    lines.append(format_row(method, m, 40))
    lines.append(format_row("content image itself", {k: m[f"baseline_{k}"] for k in MEASURES}, 40))
    lines.append(f"style loss ratio (method / content image): {m['style_ratio']:.3f}; Gram: {m['gram_ratio']:.3f}")
    lines.append("style_2x / style_4x: the style loss on output and style downsampled 2x / 4x; colour: sliced "
                 "Wasserstein of RGB pixels; ssim: grayscale, vs the content; cfsd: content feature structural distance "
                 "(relu3_1 variants, not comparable with papers' relu4_1/5_1 numbers)")
    return "\n".join(lines)


# --- loss curves (the AdaIN paper's Fig. 3) ---

#: Gatys iterations at which the losses are recorded (a log-spaced x axis).
CURVE_STEPS = (0, 1, 2, 5, 10, 20, 50, 100, 200)
CURVE_BASELINE = "content-image"
OPTIMIZER_NAMES = {"lbfgs": "L-BFGS", "adam": "Adam"}


def check_curve_steps(steps) -> list[int]:
    """Sorted, distinct, non-negative integers, at least one of them positive."""
    steps = sorted(set(check_int(s, "a curve step", 0) for s in steps))
    if not steps or steps[-1] < 1:
        raise StylekitError("curve steps need at least one positive step count")
    return steps


def _summary(rows: list[dict]) -> tuple[dict, dict]:
    """(mean, std over pairs) of each metric; values may be numbers or per-step lists."""
    mean, std = {}, {}
    for metric in METRICS:
        values = [r[metric] for r in rows]
        if isinstance(values[0], list):
            columns = list(zip(*values))
            mean[metric] = [statistics.fmean(c) for c in columns]
            std[metric] = [statistics.pstdev(c) for c in columns]
        else:
            mean[metric], std[metric] = statistics.fmean(values), statistics.pstdev(values)
    return mean, std


def loss_curve(
    gatys,
    encoder: VGGEncoder,
    contents: list[Path],
    styles: list[Path],
    *,
    steps=CURVE_STEPS,
    others: dict | None = None,
    unavailable: dict | None = None,
    size: int = 512,
    style_size: int = 512,
    alpha: float = 1.0,
    progress=None,
) -> dict:
    """The losses of :func:`score`, for every content x style pair, of Gatys et
    al. after each of ``steps`` iterations (one optimisation per pair, its
    images taken at those steps), of each stylizer in ``others``
    (``{key: (label, stylizer)}``, run once per pair) and of the content image
    itself (key ``"content-image"``); then the mean and the standard deviation
    over pairs. ``gatys`` must run at least ``max(steps)`` steps: its result
    after exactly that many is recorded. ``unavailable`` (``{key: reason}``)
    is recorded as is, for methods that could not run.
    """
    steps = check_curve_steps(steps)
    if gatys.steps != steps[-1]:
        raise StylekitError(f"the Gatys stylizer runs {gatys.steps} steps; the curve needs exactly {steps[-1]}")
    others = dict(others or {})
    pairs = []
    for content_path, style_path in [(c, s) for c in contents for s in styles]:
        content = fit(to_tensor_image(content_path, str(content_path))[0], size, False)
        style = fit(to_tensor_image(style_path, str(style_path))[0], style_size, False)
        row = {"content_image": content_path.name, "style_image": style_path.name}

        at_step = {}

        def record(step, image, content=content, style=style, at_step=at_step):
            at_step[step] = score(encoder, image[0].float().clamp(0, 1), content, style)

        gatys.clear_cache()
        prepared = gatys.prepare_style(style[None].to(gatys.device))
        gatys.transfer_prepared(content[None].to(gatys.device), [prepared], alpha=alpha,
                                callback=record, callback_steps=steps)
        row["gatys"] = {m: [at_step[s][m] for s in steps] for m in METRICS}
        for key, (_, stylizer) in others.items():
            stylizer.clear_cache()
            output = stylizer.stylize(content, style, size=0, style_size=0, alpha=alpha)
            row[key] = score(encoder, output, content, style)
        row[CURVE_BASELINE] = score(encoder, content, content, style)
        pairs.append(row)
        if progress is not None:
            progress(row)

    mean, std = _summary([r["gatys"] for r in pairs])
    gatys_entry = {
        "label": f"Gatys et al. ({OPTIMIZER_NAMES.get(gatys.optimizer, gatys.optimizer)} from the {gatys.init} image)",
        "mean": mean, "std": std,
        "options": {
            "optimizer": gatys.optimizer, "init": gatys.init, "content_layer": gatys.content_layer,
            "style_layers": list(gatys.style_layers), "content_weight": gatys.content_weight,
            "style_weight": gatys.style_weight, "tv_weight": gatys.tv_weight,
        },
    }
    lines = {}
    for key, label in [*((k, lbl) for k, (lbl, _) in others.items()), (CURVE_BASELINE, "content image")]:
        mean, std = _summary([r[key] for r in pairs])
        lines[key] = {"label": label, "mean": mean, "std": std}
    return {
        "steps": steps, "count": len(pairs), "size": size, "style_size": style_size, "alpha": alpha,
        "metrics": {"style": "mean/std style loss, relu1_1..relu3_1", "content": "content MSE at relu3_1",
                    "gram": "Gram style loss, relu1_1..relu3_1"},
        "gatys": gatys_entry, "lines": lines, "unavailable": dict(unavailable or {}), "pairs": pairs,
    }


def format_curve(result: dict) -> str:
    """The curve's averages as a table: Gatys per step, then each flat line."""
    g = result["gatys"]
    width = max([34] + [len(e["label"]) for e in result["lines"].values()])
    lines = [f"mean (std) over {result['count']} pairs, content {result['size']} px, style {result['style_size']} px:",
             f"{'':<{width}} {'style':>20} {'content':>20}"]

    def cell(entry, metric, i=None):
        m, sd = entry["mean"][metric], entry["std"][metric]
        if i is not None:
            m, sd = m[i], sd[i]
        return f"{m:.4g} ({sd:.2g})"

    for i, step in enumerate(result["steps"]):
        lines.append(f"{'Gatys et al., step ' + str(step):<{width}} {cell(g, 'style', i):>20} {cell(g, 'content', i):>20}")
    for entry in result["lines"].values():
        lines.append(f"{entry['label']:<{width}} {cell(entry, 'style'):>20} {cell(entry, 'content'):>20}")
    for key, reason in result["unavailable"].items():
        lines.append(f"{key:<{width}} n/a ({reason})")
    return "\n".join(lines)


def require_matplotlib():
    """matplotlib's Figure class, or a StylekitError saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise StylekitError("the loss-curve plot needs matplotlib: pip install 'stylekit[plots]'") from None
    return Figure


def plot_curve(result: dict, path) -> Path:
    """Two panels (style loss, content loss) against Gatys iterations; written atomically as PNG."""
    from .files import atomic_write

    Figure = require_matplotlib()
    from matplotlib.ticker import FuncFormatter, NullLocator
    steps, g = result["steps"], result["gatys"]
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    dashes = ["--", "-.", (0, (3, 1, 1, 1)), (0, (5, 1))]
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    # minor ticks of a log axis: label 2x and 5x each power of ten only
    sparse = FuncFormatter(lambda v, _: f"{v:g}" if v > 0 and f"{v:e}"[0] in "25" and f"{v:e}"[1:4] == ".00" else "")
    titles = ("Style loss (feature mean/std, relu1_1..relu3_1)", "Content loss (feature MSE, relu3_1)")
    for ax, metric, title in zip(axes, ("style", "content"), titles):
        mean, std = g["mean"][metric], g["std"][metric]
        ax.plot(steps, mean, marker="o", markersize=3, color="C0", label=g["label"])
        # the band is mean +- std over pairs; a log axis cannot show values <= 0
        floor = min(m for m in mean if m > 0) * 1e-2 if metric == "style" and any(m > 0 for m in mean) else None
        low = [m - s if floor is None else max(m - s, floor) for m, s in zip(mean, std)]
        ax.fill_between(steps, low, [m + s for m, s in zip(mean, std)], color="C0", alpha=0.2, linewidth=0)
        for i, (key, entry) in enumerate(result["lines"].items()):
            look = dict(color="0.3", linestyle=":") if key == CURVE_BASELINE else \
                dict(color=f"C{i + 1}", linestyle=dashes[i % len(dashes)])
            ax.axhline(entry["mean"][metric], label=entry["label"], **look)
        ax.set_xscale("symlog", linthresh=1)  # log scale that still shows step 0
        ax.set_xlim(steps[0], steps[-1])
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.xaxis.set_minor_locator(NullLocator())
        if metric == "style":
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(sparse)
        ax.set_xlabel("Gatys et al.: optimisation iterations (log scale)")
        ax.set_ylabel(metric + " loss")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"mean over {result['count']} content x style pairs, {result['size']} px "
                 f"(band: +-1 std over pairs); flat lines do not iterate", fontsize=10)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
