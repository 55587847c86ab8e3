"""Coarse-to-fine stylization: the painting's strokes and shapes at every resolution.

relu3_1 sees about 40 px, so one pass transfers only fine texture, and its
size relative to the picture shrinks as the picture grows. Here a method runs
at a pyramid of resolutions, coarsest first, with the style scaled like the
picture (the style pattern keeps its size *relative to the picture*):

* the coarsest level stylizes the content; its output takes the painting's
  palette (the ``draft`` step);
* level ``k`` stylizes the previous level's output, upsampled, blended with
  the content at that resolution (``content_mix``);
* from that result it keeps only the detail band (the result minus its own
  2x-blurred copy), raised to the style's own detail contrast at that scale
  where it is weaker (thin strokes keep their contrast through the blend
  with the content), and adds it to the previous output, upsampled: each level
  adds the structure one octave finer, and the coarse structure laid down by
  the coarser levels survives (a Laplacian pyramid of passes);
* the style at level ``k`` is the style image scaled by ``side_k / (reference
  * stroke_scale)`` (never enlarged): ``stroke_scale`` 2 makes the
  patterns twice as large relative to the picture.

At 2048 px the levels up to 512 px are the 512 px output's levels (the photo's
own edges mixed in from 512 px up, as in the 512 px output), and the levels
above add only finer detail: the look is the same at every size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .errors import StylekitError

#: The output side at which the style is used at its own size (stroke scale 1).
REFERENCE_SIDE = 512
#: The coarsest level's longer side.
COARSEST_SIDE = 128
#: A style scaled below this (shorter side) stops shrinking.
MIN_STYLE_SIDE = 64
#: Share of the content blended into each finer level's input (keeps the photo recognisable).
CONTENT_MIX = 0.5
#: Share of the finest detail band taken from the content's luma.
DETAIL = 0.5
#: The most a level's stylized detail band is raised toward the style's own detail contrast.
BAND_GAIN_MAX = 2.0


@dataclass(frozen=True)
class Level:
    size: tuple[int, int]  # (H, W) of the content at this level
    style_scale: float  # factor applied to the style image


def plan_levels(height: int, width: int, stroke_scale: float = 1.0, *, reference: int = REFERENCE_SIDE,
                coarsest: int = COARSEST_SIDE) -> list[Level]:
    """The pyramid for an ``height x width`` output, coarsest level first; the
    last level is the output size. Each level halves the one above; there is
    one level when the output's longer side is at most ``coarsest``."""
    if not (isinstance(stroke_scale, (int, float)) and math.isfinite(stroke_scale) and stroke_scale > 0):
        raise StylekitError(f"stroke_scale must be a positive number, got {stroke_scale!r}")
    longer = max(height, width)
    count = 1
    while longer / 2**count >= coarsest - 1e-9 and min(height, width) / 2**count >= 16:
        count += 1
    levels = []
    for k in reversed(range(count)):
        h, w = max(1, round(height / 2**k)), max(1, round(width / 2**k))
        side = max(h, w)
        levels.append(Level((h, w), min(1.0, side / (reference * stroke_scale))))
    return levels


def resize_image(x: torch.Tensor, size_hw) -> torch.Tensor:
    """(N, 3, H, W) to ``size_hw``: area averaging down, bicubic up (clamped to [0, 1])."""
    size_hw = tuple(int(v) for v in size_hw)
    if tuple(x.shape[-2:]) == size_hw:
        return x
    if size_hw[0] <= x.shape[-2] and size_hw[1] <= x.shape[-1]:
        return F.interpolate(x, size=size_hw, mode="area")
    return F.interpolate(x, size=size_hw, mode="bicubic", align_corners=False).clamp(0, 1)


def scale_style(style: torch.Tensor, factor: float, min_side: int = MIN_STYLE_SIDE) -> torch.Tensor:
    """The style image scaled by ``factor`` <= 1, its shorter side kept at least ``min_side``."""
    h, w = style.shape[-2:]
    factor = max(factor, min(1.0, min_side / min(h, w)))
    if factor >= 1.0:
        return style
    return resize_image(style, (max(1, round(h * factor)), max(1, round(w * factor))))


def detail_band(x: torch.Tensor) -> torch.Tensor:
    """``x`` minus its copy averaged to half resolution and brought back up
    (bilinear): the finest octave of a (N, C, H, W) image."""
    h, w = x.shape[-2:]
    low = F.interpolate(x, size=(max(1, h // 2), max(1, w // 2)), mode="area")
    return x - F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)


def band_gain(band: torch.Tensor, target_std: torch.Tensor, max_gain: float = BAND_GAIN_MAX) -> torch.Tensor:
    """(N, C, 1, 1) factors that bring each channel's standard deviation of
    ``band`` (N, C, H, W) up to ``target_std`` (N or 1, C, 1, 1): never below 1
    (a band is never flattened), at most ``max_gain``."""
    have = band.std(dim=(2, 3), keepdim=True, correction=0).clamp_min(1e-6)
    return (target_std / have).clamp(1.0, max_gain)


def luma(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) BT.601 luma of (N, 3, H, W) RGB."""
    return 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def coarse_to_fine(stylize: Callable[[torch.Tensor, int], torch.Tensor], content: torch.Tensor,
                   levels: list[Level], *, content_mix: float = CONTENT_MIX, detail: float = DETAIL,
                   draft: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   style_contrast: Callable[[int], torch.Tensor] | None = None) -> torch.Tensor:
    """Run ``stylize(image, level_index) -> stylized image`` over ``levels`` as
    the module docstring says. ``content`` is (N, 3, H, W) in [0, 1] at the
    last level's size. ``draft`` (optional) post-processes the coarsest
    level's output (the palette step). At the finest level, and at every
    level where the style is used at its own size (``style_scale`` 1), a
    share ``detail`` of the detail band is the content's own luma detail,
    which keeps the photo's edges sharp while the coarser bands carry the
    painting's shapes. ``style_contrast(i)`` (optional) is the standard
    deviation per channel (N or 1, C, 1, 1) of the style's own detail band at
    level ``i``'s scale: a stylized band weaker than that is raised to it
    (:func:`band_gain`), because the level's input is half content and a
    style's thin strokes (a pen drawing's lines) would otherwise come out as
    grey shading. With one level this is ``stylize(content, 0)`` (then
    ``draft``)."""
    for name, value in (("content_mix", content_mix), ("detail", detail)):
        if not 0 <= value <= 1:
            raise StylekitError(f"{name} must be in [0, 1], got {value}")
    out = None
    for i, level in enumerate(levels):
        c = resize_image(content, level.size)
        if out is None:
            out = stylize(c, i)
            if draft is not None:
                out = draft(out)
            continue
        up = F.interpolate(out, size=level.size, mode="bilinear", align_corners=False)
        y = stylize(((1 - content_mix) * up + content_mix * c).clamp(0, 1), i)
        band = detail_band(y)
        if style_contrast is not None:
            band = band * band_gain(band, style_contrast(i))
        # the photo's detail joins every band at or above the reference scale, not only the finest: a
        # larger output then holds, at the reference scale, what the reference-sized output holds there
        if detail > 0 and (i == len(levels) - 1 or level.style_scale >= 1.0):
            band = (1 - detail) * band + detail * detail_band(luma(c))
        out = (up + band).clamp(0, 1)
    return out
