"""What every stylization method shares: inputs, sizes, colour control, masks.

A method implements :meth:`Stylizer.transfer` on prepared tensors; the base
class turns paths / PIL images / tensors into those tensors, applies the
size, crop and colour-preservation controls, checks every control, and
converts the result back (PIL in -> PIL out, tensor in -> tensor out).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from . import color, pyramid
from .checks import is_int
from .errors import StylekitError, plural
from .images import MIN_SIDE, center_crop_square, check_size, load_mask, load_pil, mask_from_pil, resize_longer, to_rgb, pil_to_tensor, target_size, tensor_to_pil

PRESERVE_COLOR = ("none", "luminance", "histogram")


@dataclass(frozen=True)
class StylizeOptions:
    """The user controls common to all methods (CLI flags map onto these)."""

    alpha: float = 1.0
    style_weights: tuple[float, ...] | None = None
    preserve_color: str = "none"
    size: int | None = None
    style_size: int | None = None
    crop: bool = False
    stroke_scale: float | None = None

    def __post_init__(self):
        if self.stroke_scale is not None and (
            isinstance(self.stroke_scale, bool) or not isinstance(self.stroke_scale, (int, float))
            or not math.isfinite(self.stroke_scale) or not (self.stroke_scale == 0 or 0.25 <= self.stroke_scale <= 4)
        ):
            raise StylekitError(f"stroke scale must be 0 (one pass) or a number from 0.25 to 4, got {self.stroke_scale!r}")
        if not isinstance(self.alpha, (int, float)) or not math.isfinite(self.alpha) or not 0 <= self.alpha <= 1:
            raise StylekitError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.preserve_color not in PRESERVE_COLOR:
            raise StylekitError(f"preserve_color must be one of {', '.join(PRESERVE_COLOR)}, got {self.preserve_color!r}")
        for name in ("size", "style_size"):
            value = getattr(self, name)
            if value is None:  # the default: at most DEFAULT_MAX_SIDE, never enlarged
                continue
            if not is_int(value) or value < 0:
                raise StylekitError(f"{name} must be a non-negative integer (0 keeps the original size), got {value!r}")
            if 0 < value < MIN_SIDE:
                raise StylekitError(f"{name} must be 0 or at least {MIN_SIDE}, got {value}")
        if self.style_weights is not None:
            weights = tuple(float(w) for w in self.style_weights)
            if any(not math.isfinite(w) for w in weights):
                raise StylekitError("style weights must be finite numbers")
            if any(w < 0 for w in weights):
                raise StylekitError(f"style weights must be non-negative, got {list(weights)}")
            if sum(weights) <= 0:
                raise StylekitError("style weights must not all be zero")
            object.__setattr__(self, "style_weights", weights)

    def normalised_weights(self, count: int) -> list[float]:
        if self.style_weights is None:
            return [1.0 / count] * count
        if len(self.style_weights) != count:
            raise StylekitError(f"got {plural(len(self.style_weights), 'style weight')} for {plural(count, 'style')}")
        total = sum(self.style_weights)
        return [w / total for w in self.style_weights]


ImageLike = str | os.PathLike | Image.Image | torch.Tensor


def equal_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """``weights`` as given, or (None) ``count`` equal weights summing to 1: the
    default blend of :meth:`Stylizer.transfer` and its kin.

    >>> equal_weights(None, 4), equal_weights([0.3, 0.7], 2)
    ([0.25, 0.25, 0.25, 0.25], [0.3, 0.7])
    """
    return [1.0 / count] * count if weights is None else list(weights)


def to_tensor_image(x: ImageLike, what: str) -> tuple[torch.Tensor, bool]:
    """``(3, H, W)`` float tensor in [0, 1], and whether the input was a tensor."""
    if isinstance(x, torch.Tensor):
        t = x
        if t.dim() == 4:
            if t.shape[0] != 1:
                raise StylekitError(f"{what}: expected one image, got a batch of {t.shape[0]}")
            t = t[0]
        if t.dim() != 3 or t.shape[0] not in (1, 3):
            raise StylekitError(f"{what}: expected a (3, H, W) tensor, got {tuple(x.shape)}")
        if not t.is_floating_point():
            raise StylekitError(f"{what}: expected a float tensor in [0, 1], got {t.dtype}")
        if not bool(torch.isfinite(t).all()):
            raise StylekitError(f"{what}: tensor contains NaN or infinite values")
        if t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        check_size((t.shape[2], t.shape[1]), what)
        return t.float().clamp(0, 1), True
    if isinstance(x, Image.Image):
        img = x
        check_size(img.size, what)
        return pil_to_tensor(img), False
    if isinstance(x, (str, os.PathLike)):
        return pil_to_tensor(load_pil(x)), False
    raise StylekitError(f"{what}: expected a path, PIL image or tensor, got {type(x).__name__}")


def load_fitted(x: ImageLike, what: str, longer_side: int | None, crop: bool) -> tuple[torch.Tensor, bool, tuple[int, int]]:
    """``to_tensor_image`` then :func:`fit`; files and PIL images are cropped and
    resized by Pillow *before* becoming float tensors, so a large photo never
    exists as a full-resolution float copy. Returns the tensor, whether the
    input was a tensor, and the original (H, W)."""
    if isinstance(x, torch.Tensor):
        t, _ = to_tensor_image(x, what)
        return fit(t, longer_side, crop), True, tuple(t.shape[1:])
    if isinstance(x, (str, os.PathLike)):
        img = load_pil(x)
    elif isinstance(x, Image.Image):
        img = to_rgb(x)
        check_size(img.size, what)
    else:
        raise StylekitError(f"{what}: expected a path, PIL image or tensor, got {type(x).__name__}")
    original_hw = (img.size[1], img.size[0])
    if crop:
        img = center_crop_square(img)
    check_size(target_size(img.size, longer_side), f"{what} after resizing")
    return pil_to_tensor(resize_longer(img, longer_side)), False, original_hw


def center_crop(t: torch.Tensor) -> torch.Tensor:
    h, w = t.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return t[..., top : top + s, left : left + s]


def resize(t: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    if tuple(t.shape[-2:]) == tuple(size_hw):
        return t
    x = t[None] if t.dim() == 3 else t
    out = F.interpolate(x, size=size_hw, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    return out[0] if t.dim() == 3 else out


def fit(t: torch.Tensor, longer_side: int | None, crop: bool) -> torch.Tensor:
    if crop:
        t = center_crop(t)
    w, h = target_size((t.shape[-1], t.shape[-2]), longer_side)
    check_size((w, h), "image after resizing")
    return resize(t, (h, w))


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad (N, C, H, W) on the bottom/right up to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    # reflection needs the pad to be smaller than the side; tiny maps fall back to replication
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def masks_at(masks: list[torch.Tensor], size_hw) -> list[torch.Tensor]:
    """(1, 1, H, W) masks averaged down to a feature map's size; a region that
    vanishes there is an error (it could not be stylized)."""
    out = []
    for mask in masks:
        m = F.interpolate(mask, size=tuple(size_hw), mode="area")
        if float(m.sum()) <= 0:
            raise StylekitError("a mask's region vanishes at feature resolution; use a larger region")
        out.append(m)
    return out


def prepare_masks(masks, content_size_hw, styles_count: int, crop: bool, out_hw) -> list[torch.Tensor]:
    """Load masks, check them against the content, and bring them to ``out_hw``.

    One mask per style; or one mask for two styles, meaning the mask (first
    style) and its complement (second), as the official AdaIN's ``-mask``. A
    mask of another resolution with the content's aspect ratio is resized to
    the content first."""
    if len(masks) == 1 and styles_count == 2:
        first = _mask_tensor(masks[0], 1)
        loaded = [first, 1 - first]
    elif len(masks) != styles_count:
        raise StylekitError(f"got {plural(len(masks), 'mask')} for {plural(styles_count, 'style')}; give one mask "
                            "per style (or one mask for two styles: the mask and its complement)")
    else:
        loaded = [_mask_tensor(m, i) for i, m in enumerate(masks, 1)]
    out = []
    for i, t in enumerate(loaded, 1):
        t = _mask_to_content(t, i, content_size_hw)
        if crop:
            t = center_crop(t)
        t = F.interpolate(t[None], size=tuple(out_hw), mode="bilinear", align_corners=False, antialias=True)[0]
        if float(t.max()) <= 0:
            if len(masks) < len(loaded):
                raise StylekitError("the mask is all white: its complement leaves no region for the second style")
            raise StylekitError(f"mask {i} is all black: it selects no region")
        out.append(t.clamp(0, 1))
    return out


def _blend_pixels(styles: list[torch.Tensor], weights: list[float], count: int = 2**16, seed: int = 0) -> torch.Tensor:
    """(3, 1, M) pixels drawn from the (1, 3, h, w) styles in proportion to
    ``weights`` (seeded): the palette of a blend of styles."""
    used = [(s, w) for s, w in zip(styles, weights) if w > 0]
    if len(used) == 1:
        return used[0][0][0]
    gen = torch.Generator().manual_seed(seed)
    parts = []
    for s, w in used:
        pixels = s[0].reshape(3, -1).float().cpu()
        n = max(1, round(w * count))
        parts.append(pixels[:, torch.randint(pixels.shape[1], (n,), generator=gen)])
    return torch.cat(parts, dim=1)[:, None, :]


def _mask_tensor(m, i: int) -> torch.Tensor:
    """A mask (path, PIL image or tensor) as a (1, H, W) float tensor in [0, 1]."""
    if isinstance(m, torch.Tensor):
        t = m.float()
        if t.dim() == 2:
            t = t[None]
        if t.dim() != 3 or t.shape[0] != 1:
            raise StylekitError(f"mask {i}: expected a (1, H, W) or (H, W) tensor, got {tuple(m.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise StylekitError(f"mask {i}: contains NaN or infinite values")
        return t.clamp(0, 1)
    if isinstance(m, Image.Image):
        return mask_from_pil(m)
    return load_mask(m)


def _mask_to_content(t: torch.Tensor, i: int, content_size_hw) -> torch.Tensor:
    """The mask at the content's size: as it is, or resized when only the resolution differs
    (its aspect ratio within a pixel of the content's)."""
    (mh, mw), (ch, cw) = t.shape[1:], tuple(content_size_hw)
    if (mh, mw) == (ch, cw):
        return t
    if abs(mh * cw / mw - ch) > 1 and abs(ch * mw / cw - mh) > 1:
        raise StylekitError(
            f"mask {i} is {mw}x{mh} but the content image is {cw}x{ch}: another aspect ratio "
            f"({mw / mh:.3g} vs {cw / ch:.3g}); a mask must have the content's shape (any resolution)"
        )
    return F.interpolate(t[None], size=(ch, cw), mode="bilinear", align_corners=False, antialias=True)[0].clamp(0, 1)


class Stylizer:
    """Base class: ``stylize`` for every method; subclasses implement ``transfer``."""

    method = "base"
    device: torch.device
    #: the stroke scale used when the caller gives none: a number runs the
    #: coarse-to-fine pyramid (:mod:`stylekit.pyramid`), None a single pass
    default_stroke_scale: float | None = None
    #: the photo's share of the finest detail band in the pyramid (:func:`stylekit.pyramid.coarse_to_fine`'s ``detail``)
    detail_share: float = pyramid.DETAIL

    def clear_cache(self) -> None:
        """Forget cached encoder outputs (methods that cache override this)."""

    def prepare_style(self, style: torch.Tensor):
        """Everything the method computes from a (1, 3, h, w) style image alone
        (its "style encoding": AdaIN's feature statistics, style swap's
        features, Gatys's Gram matrices), for :meth:`transfer_prepared`.
        Prepare a style once to stylize many contents with it."""
        raise NotImplementedError

    def transfer_prepared(
        self,
        content: torch.Tensor,
        prepared: list,
        weights: list[float] | None = None,
        masks: list[torch.Tensor] | None = None,
        alpha: float = 1.0,
    ) -> torch.Tensor:
        """:meth:`transfer` with styles already through :meth:`prepare_style`."""
        raise NotImplementedError

    def transfer(
        self,
        content: torch.Tensor,
        styles: list[torch.Tensor],
        weights: list[float] | None = None,
        masks: list[torch.Tensor] | None = None,
        alpha: float = 1.0,
    ) -> torch.Tensor:
        """The method on tensors, none of :meth:`stylize`'s checks or conversions:
        content (1, 3, H, W), styles [(1, 3, h, w)] blended by ``weights``
        (default: equal; they should sum to 1), or each in its region of
        ``masks`` [(1, 1, H, W)], at strength ``alpha`` -> (1, 3, H, W) float."""
        weights = equal_weights(weights, len(styles))
        return self.transfer_prepared(content, [self.prepare_style(s) for s in styles], weights, masks, alpha)

    def transfer_coarse_to_fine(self, content, styles, weights=None, masks=None, alpha=1.0,
                                stroke_scale: float = 1.0, palette: bool = True) -> torch.Tensor:
        """:meth:`transfer` run over the pyramid of :func:`stylekit.pyramid.plan_levels`
        (the styles scaled like the picture at each level, the masks resized);
        with ``palette`` the coarsest output takes the styles' palette first
        (:func:`stylekit.color.transfer_palette`; for a blend, the styles' pixels
        in proportion to their weights; with masks, each region its own
        style's), in proportion to ``alpha``. Tensors as :meth:`transfer`, or a
        batch of pairs: content (N, 3, H, W) with styles (N, 3, h, w) stylizes
        content ``i`` with style ``i``, and ``alpha`` may then be an
        (N, 1, 1, 1) tensor (a training teacher's batch in one pass)."""
        weights = equal_weights(weights, len(styles))
        levels = pyramid.plan_levels(*content.shape[-2:], stroke_scale)
        scaled = [[pyramid.scale_style(s, level.style_scale) for s in styles] for level in levels]
        prepared = [[self.prepare_style(s) for s in level_styles] for level_styles in scaled]

        def style_contrast(i: int) -> torch.Tensor:
            """The styles' detail contrast at level ``i`` (weighted like the styles), in proportion to ``alpha``."""
            return alpha * sum(w * pyramid.detail_band(s.float()).std(dim=(2, 3), keepdim=True, correction=0)
                               for w, s in zip(weights, scaled[i]))

        def run(image: torch.Tensor, i: int) -> torch.Tensor:
            level_masks = None if masks is None else [pyramid.resize_image(m, levels[i].size) for m in masks]
            return self.transfer_prepared(image, prepared[i], weights, level_masks, alpha).float()

        def matched_palette(x: torch.Tensor, pair: list[torch.Tensor]) -> torch.Tensor:
            """Image ``x`` (3, H, W) with the palette of its styles ``pair`` [(1, 3, h, w)]."""
            if masks is None:
                return color.transfer_palette(x, _blend_pixels(pair, weights))
            level_masks = [pyramid.resize_image(m, x.shape[-2:])[0] for m in masks]
            total = sum(level_masks).clamp_min(1e-6)
            return sum(m / total * color.transfer_palette(x, s[0]) for m, s in zip(level_masks, pair))

        def draft(image: torch.Tensor) -> torch.Tensor:
            if masks is None and len(styles) == 1 and len(styles[0]) == len(image):  # a style per image: one batched call
                matched = color.transfer_palette(image, styles[0])
            else:
                matched = torch.stack([matched_palette(x, [s[i : i + 1] if len(s) > 1 else s for s in styles])
                                       for i, x in enumerate(image)])
            return image + alpha * (matched - image)

        return pyramid.coarse_to_fine(run, content, levels, detail=self.detail_share, draft=draft if palette else None,
                                      style_contrast=style_contrast)

    def stylize(
        self,
        content: ImageLike,
        styles: ImageLike | Sequence[ImageLike],
        *,
        alpha: float = 1.0,
        style_weights: Sequence[float] | None = None,
        masks: Sequence | None = None,
        preserve_color: str = "none",
        size: int | None = None,
        style_size: int | None = None,
        crop: bool = False,
        stroke_scale: float | None = None,
    ):
        """Stylize ``content`` with one or more ``styles``.

        ``alpha`` trades content for style; ``style_weights`` interpolates
        between several styles; ``masks`` (one per style, the content's size,
        white = that style's region) applies each style to its own region;
        ``preserve_color`` is ``"none"``, ``"luminance"`` or ``"histogram"``;
        ``size`` / ``style_size`` are the longer sides in pixels the content
        and the styles are resized to, up or down (0: unchanged; the default
        ``None``: reduced to 512 if larger, a smaller image keeps its size);
        ``crop`` takes the centre square first. ``stroke_scale`` (0.25 to 4)
        is the size of the painting's patterns relative to the picture: the
        method runs coarse to fine (:mod:`stylekit.pyramid`) with the style
        scaled like the picture, so the look is the same at every output
        size, and 2 makes strokes and shapes twice as large (0: one pass at
        the output size; None: the method's default, :attr:`default_stroke_scale`).
        Returns a PIL image, or a ``(3, H, W)`` tensor when ``content`` is a tensor.
        """
        if isinstance(styles, (str, os.PathLike, Image.Image, torch.Tensor)):
            styles = [styles]
        styles = list(styles)
        if not styles:
            raise StylekitError("at least one style image is needed")
        options = StylizeOptions(
            alpha=alpha,
            style_weights=tuple(style_weights) if style_weights is not None else None,
            preserve_color=preserve_color,
            size=size,
            style_size=style_size,
            crop=crop,
            stroke_scale=stroke_scale,
        )
        if masks is not None and style_weights is not None:
            raise StylekitError("give either masks (one region per style) or style weights (a blend), not both")
        weights = options.normalised_weights(len(styles))
        content_t, tensor_in, original_hw = load_fitted(content, "content", options.size, options.crop)
        style_ts = [load_fitted(s, f"style {i}", options.style_size, options.crop)[0] for i, s in enumerate(styles, 1)]
        mask_ts = None
        if masks is not None:
            mask_ts = [m[None].to(self.device) for m in prepare_masks(list(masks), original_hw, len(styles), options.crop, content_t.shape[1:])]

        if options.preserve_color == "histogram":
            style_ts = [color.match_color_histogram(s, content_t) for s in style_ts]
        if options.preserve_color == "luminance":
            content_y = color.luminance(content_t)
            style_in = [color.match_luminance(color.luminance(s), content_y).clamp(0, 1).expand(3, -1, -1) for s in style_ts]
            content_in = content_y.expand(3, -1, -1)
        else:
            content_in, style_in = content_t, style_ts

        scale = options.stroke_scale if options.stroke_scale is not None else self.default_stroke_scale
        content_dev, style_dev = content_in[None].to(self.device), [s[None].to(self.device) for s in style_in]
        if not scale:  # None or 0: one pass at the output size
            out = self.transfer(content_dev, style_dev, weights, mask_ts, options.alpha)
        else:
            palette = options.preserve_color != "luminance"
            out = self.transfer_coarse_to_fine(content_dev, style_dev, weights, mask_ts, options.alpha, scale, palette)
        out = out[0].float().cpu()
        if options.preserve_color == "luminance":
            out = color.replace_luminance(content_t, color.luminance(out.clamp(0, 1)))
        out = out.clamp(0, 1)
        return out if tensor_in else tensor_to_pil(out)
