"""Quality and speed of a method over every content x style pair (the AdaIN paper's
sec. 7.1 measures): content loss, mean/std style loss, Gram style loss, time.

All losses use the same VGG-19 encoder, on the output at the content's
stylization size and the style at its style size:

* ``content``: ``||f(out) - f(c)||^2`` at relu3_1 divided by the number of
  elements of ``f(c)`` (a mean squared error);
* ``style``: the AdaIN paper's style loss, sum over relu1_1...relu3_1 of the mean
  squared differences of channel means and of channel stds;
* ``gram``: sum over the same layers of the mean squared difference of
  ``F F^T / (H W)``.

The content image itself is scored as a baseline: a method that stylizes
must cut the style losses well below the content image's own.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from .encoder import VGGEncoder, style_layers_for
from .losses import content_loss, gram_style_loss, mean_std_style_loss
from .pipeline import fit, to_tensor_image

METRICS = ("content", "style", "gram")


@torch.no_grad()
def score(encoder: VGGEncoder, output: torch.Tensor, content: torch.Tensor, style: torch.Tensor, layer: str = "relu3_1") -> dict:
    """Losses of one output (all (3, H, W) tensors in [0, 1])."""
    layers = style_layers_for(layer)
    f_out = encoder(output[None], layers)
    f_content = encoder.encode(content[None], layer)
    f_style = encoder(style[None], layers)
    return {
        "content": content_loss(f_out[layer], f_content).item(),
        "style": mean_std_style_loss(f_out, f_style, layers).item(),
        "gram": gram_style_loss(f_out, f_style, layers).item(),
    }


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
        start = time.perf_counter()
        output = stylizer.stylize(content, style, size=0, style_size=0, **stylize_options)
        seconds = time.perf_counter() - start
        row = {"content_image": content_path.name, "style_image": style_path.name, "seconds": seconds}
        row.update(score(encoder, output, content, style))
        baseline = score(encoder, content, content, style)
        row.update({f"baseline_{k}": v for k, v in baseline.items()})
        rows.append(row)
        if progress is not None:
            progress(row)
    keys = ["seconds", *METRICS, *(f"baseline_{k}" for k in METRICS)]
    mean = {k: statistics.fmean(r[k] for r in rows) for k in keys}
    mean["style_ratio"] = mean["style"] / mean["baseline_style"]
    mean["gram_ratio"] = mean["gram"] / mean["baseline_gram"]
    return {"pairs": rows, "mean": mean, "size": size, "style_size": style_size, "count": len(rows)}


def format_table(result: dict, method: str) -> str:
    lines = [f"{'content':<28} {'style':<28} {'content':>9} {'style':>9} {'gram':>11} {'sec':>7}"]
    for r in result["pairs"]:
        lines.append(
            f"{r['content_image'][:28]:<28} {r['style_image'][:28]:<28} {r['content']:>9.4g} "
            f"{r['style']:>9.4g} {r['gram']:>11.4g} {r['seconds']:>7.3f}"
        )
    m = result["mean"]
    lines.append("")
    lines.append(f"mean over {result['count']} pairs ({method}, content {result['size']} px, style {result['style_size']} px):")
    lines.append(f"  {method:<22} content {m['content']:.4g}  style {m['style']:.4g}  gram {m['gram']:.4g}  {m['seconds']:.3f} s/image")
    lines.append(f"  {'content image itself':<22} content 0  style {m['baseline_style']:.4g}  gram {m['baseline_gram']:.4g}")
    lines.append(f"  style loss ratio (method / content image): {m['style_ratio']:.3f}; Gram: {m['gram_ratio']:.3f}")
    return "\n".join(lines)
