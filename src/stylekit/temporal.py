"""Temporal consistency of stylized video: the measures and the stabiliser.

Everything here works on ``(3, H, W)`` float frames in [0, 1] and knows
nothing about the stylization method: the stabiliser sees each frame's input
before the stylizer and its output after, so AdaIN, style swap or any other
stylizer go through it unchanged.

Measures (in 0-255 grey levels, averaged over pixels and channels):

* flicker: ``mean |X_t - X_{t-1}|``; the *flicker ratio* is the output's
  flicker over the input's;
* frame-difference error: ``mean |(O_t - O_{t-1}) - (I_t - I_{t-1})|``, the
  output's change that the input's change does not explain (the same formula
  on relu features through :class:`FrameMeter`'s ``features``);
* warping error: ``mean over valid p of |O_t(p) - O_{t-1}(p + F_t(p))|`` with
  ``F_t`` the true backward motion of a clip and ``valid`` the pixels seen in
  both frames (what a generated clip knows exactly);
* frame-difference error along the motion (:func:`motion_difference_error`):
  the frame-difference error with both previous frames moved along ``F_t``
  first, which leaves out the motion itself.

Stabiliser: where the input did not change, a feed-forward stylizer still
changes its output, because the input's sensor and codec noise changes and
because its receptive field and statistics see what moves elsewhere. Two
per-pixel blends, each a pure function, cut both:

    keep = unchanged(I_t, R_{t-1})                          # 1 still, 0 changed
    R_t  = lerp(I_t, R_{t-1}, input_strength * keep)         # stylize R_t, not I_t
    O'_t = lerp(O_t, O'_{t-1}, strength * [keep >= 0.5])     # O_t = stylize(R_t); show O'_t

:func:`stabilise_input` (before the stylizer: the still parts of the scene
reach it as the same pixels every frame, the noise averaged away) and
:func:`stabilise_output` (after it: the still parts of the output follow the
previous output). ``R`` is what was stylized, so a slow change accumulates
against it until it counts instead of being missed frame by frame. These two
are the cheap part, a few array operations a frame, which a webcam page can
run as they are. Optionally (``flow="dis"``) the previous frame's ``R`` and
``O'`` are first moved along OpenCV's DIS optical flow (:func:`warp`), which
extends the blends to pans, zooms and moving objects: ``R`` interpolated,
``O'`` by whole pixels (a held texture stays as sharp as it was painted) and
only from at least as far inside the frame (:func:`from_inside`).
docs/video.md measures both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import StylekitError

FLOWS = ("none", "dis")
WARP_MODES = ("bilinear", "nearest")


@dataclass(frozen=True)
class SmoothConfig:
    """The stabiliser's settings (the defaults are what docs/video.md measures).

    ``input_strength`` / ``strength`` in [0, 1]: how much of the previous
    frame's stylized input / shown output is kept where the input did not
    change (both 0: off, every frame stylized on its own; 1 holds the previous
    one). :func:`unchanged` decides "did not change" per pixel: a box mean of
    the change over ``(2 radius + 1)^2`` pixels below ``low`` ([0, 1] units,
    mean over channels) is still, above ``high`` changed, linear between;
    ``noise`` is the per-pixel change that counts as noise where it does not
    add up over the neighbourhood; ``dilate`` widens each change by that many
    pixels. The defaults sit above the noise of cameras and codecs at the
    sizes video is stylized at (a few grey levels) and below an edge moving by
    a pixel. ``flow``: ``none`` compares pixels in place; ``dis`` warps the
    previous frame along OpenCV's DIS optical flow first (needs
    ``opencv-python-headless``). ``margin`` (pixels, with a flow): output is
    carried along the motion only from at least as far inside the frame as
    where it goes, up to ``margin`` from the edge (:func:`from_inside`).
    """

    strength: float = 1.0
    input_strength: float = 1.0
    low: float = 0.01
    high: float = 0.04
    noise: float = 0.03
    radius: int = 2
    dilate: int = 1
    moving_camera: float = 0.25
    flow: str = "none"
    margin: int = 16

    def __post_init__(self):
        for name in ("strength", "input_strength"):
            s = getattr(self, name)
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or not 0 <= s <= 1:
                raise StylekitError(f"smoothing {name.replace('_', ' ')} must be in [0, 1], got {s!r}")
        for name in ("low", "high", "noise", "moving_camera"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise StylekitError(f"smoothing threshold {name} must be a finite number >= 0, got {v!r}")
        if not self.high > self.low:
            raise StylekitError(f"smoothing threshold high ({self.high}) must exceed low ({self.low})")
        for name in ("radius", "dilate", "margin"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise StylekitError(f"smoothing {name} must be an integer >= 0, got {v!r}")
        if self.flow not in FLOWS:
            raise StylekitError(f"flow must be one of {', '.join(FLOWS)}, got {self.flow!r}")

    @property
    def enabled(self) -> bool:
        return self.strength > 0 or self.input_strength > 0


# --- checks ---


def _check_frame(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise StylekitError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3 or x.shape[0] < 1:
        raise StylekitError(f"{name} must have shape (C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise StylekitError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def _check_same(frames: dict[str, torch.Tensor]) -> None:
    items = [(name, _check_frame(x, name)) for name, x in frames.items()]
    first_name, first = items[0]
    for name, x in items[1:]:
        if x.shape != first.shape:
            raise StylekitError(f"{name} has shape {tuple(x.shape)}, but {first_name} has {tuple(first.shape)}")


def _check_flow(flow, hw) -> torch.Tensor:
    if not isinstance(flow, torch.Tensor) or flow.dim() != 3 or flow.shape[0] != 2 or tuple(flow.shape[1:]) != tuple(hw):
        shape = tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__
        raise StylekitError(f"flow must be a (2, {hw[0]}, {hw[1]}) tensor of (dx, dy) pixels, got {shape}")
    if not bool(torch.isfinite(flow).all()):
        raise StylekitError("flow contains NaN or infinite values")
    return flow


# --- measures ---


def mean_abs_change(current: torch.Tensor, previous: torch.Tensor) -> float:
    """``mean |current - previous|`` in 0-255 grey levels (one pair's flicker)."""
    _check_same({"current": current, "previous": previous})
    return float((current.double() - previous.double()).abs().mean()) * 255.0


def frame_difference_error(out: torch.Tensor, out_prev: torch.Tensor, inp: torch.Tensor, inp_prev: torch.Tensor,
                           scale: float = 255.0) -> float:
    """``mean |(out - out_prev) - (inp - inp_prev)|`` times ``scale`` (255: grey
    levels for images; 1 for features). Output and input need the same shape."""
    _check_same({"out": out, "out_prev": out_prev, "inp": inp, "inp_prev": inp_prev})
    d = (out.double() - out_prev.double()) - (inp.double() - inp_prev.double())
    return float(d.abs().mean()) * scale


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """Backward warp: ``out(p) = image(p + flow(p))``.

    ``flow`` is ``(2, H, W)``: the x and y displacement in pixels from each
    pixel of the current frame to where it was in ``image``. ``mode``:
    ``bilinear`` interpolates; ``nearest`` takes the nearest pixel whole,
    which never averages neighbours (a texture carried along the motion frame
    after frame stays as sharp as it was painted, where repeated bilinear
    sampling blurs it a little more each time). Returns the warped image and
    a ``(1, H, W)`` bool mask of the pixels whose source lies inside
    ``image`` (others are filled from the border)."""
    _check_frame(image, "image")
    if mode not in WARP_MODES:
        raise StylekitError(f"warp mode must be one of {', '.join(WARP_MODES)}, got {mode!r}")
    h, w = image.shape[-2:]
    _, _, sx, sy = _sources(_check_flow(flow, (h, w)).to(image.device))
    tol = 1e-6  # an integer shift lands exactly on the last pixel
    valid = (sx >= -tol) & (sx <= w - 1 + tol) & (sy >= -tol) & (sy <= h - 1 + tol)
    if mode == "nearest":  # an exact copy of whole pixels (outside: the border's, as bilinear)
        ix, iy = sx.round().clamp(0, w - 1).long(), sy.round().clamp(0, h - 1).long()
        return image[:, iy, ix], valid[None]
    # align_corners=True: -1 and 1 are the centres of the first and last pixels
    gx = 2 * sx / max(w - 1, 1) - 1
    gy = 2 * sy / max(h - 1, 1) - 1
    grid = torch.stack([gx, gy], -1)[None].to(image.dtype)
    out = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=True)[0]
    return out, valid[None]


def from_inside(flow: torch.Tensor, margin: int) -> torch.Tensor:
    """``(1, H, W)`` bool: the pixels whose source ``p + flow(p)`` (rounded, as
    :func:`warp`'s ``nearest``) lies at least as far from the frame's edge as
    ``p`` itself, or at least ``margin`` pixels from it.

    A stylizer paints the pixels near the frame's edge differently from the
    same scene inside it (the network's padding). Under a still camera an edge
    pixel stays an edge pixel, but along a pan each frame's newly seen strip
    would be carried inward, and the edge's band would spread across the
    picture, one strip per frame. Pixels that fail are stylized afresh."""
    h, w = flow.shape[-2:]
    xs, ys, sx, sy = _sources(_check_flow(flow, (h, w)))

    def inside(x, y):  # pixels to the nearest edge
        return torch.minimum(torch.minimum(x, w - 1 - x), torch.minimum(y, h - 1 - y))

    return (inside(sx.round(), sy.round()) >= inside(xs, ys).clamp(max=margin))[None]


def _sources(flow: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Float64 x and y of every pixel ``p`` of a (2, H, W) flow, then of ``p + flow(p)``."""
    h, w = flow.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=flow.device),
                            torch.arange(w, dtype=torch.float64, device=flow.device), indexing="ij")
    return xs, ys, xs + flow[0].double(), ys + flow[1].double()


def warping_error(out: torch.Tensor, out_prev: torch.Tensor, flow: torch.Tensor,
                  valid: torch.Tensor | None = None) -> float:
    """``mean over valid p of |out(p) - out_prev(p + flow(p))|`` in 0-255 grey levels.

    ``valid`` (``(1, H, W)`` bool, optional) excludes pixels not seen in both
    frames (disocclusions); the warp's own out-of-frame pixels are always
    excluded. NaN when no pixel is valid."""
    _check_same({"out": out, "out_prev": out_prev})
    warped, inside = warp(out_prev, flow)
    return _masked_mean_abs(out.double() - warped.double(), inside, valid)


def motion_difference_error(out: torch.Tensor, out_prev: torch.Tensor, inp: torch.Tensor, inp_prev: torch.Tensor,
                            flow: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """The frame-difference error along the motion, in 0-255 grey levels:
    ``mean over valid p of |(out(p) - out_prev(p + flow(p))) - (inp(p) - inp_prev(p + flow(p)))|``.

    :func:`frame_difference_error` compares each pixel with the same pixel of
    the previous frame, so where the picture moves it counts the motion of the
    output's texture, which a consistent stylization has too (and more of it
    than the photo: brush strokes have more contrast). Following the motion
    first leaves what a viewer sees as flicker: the output changing where
    the scene point it shows did not. With a zero flow it is
    :func:`frame_difference_error`. ``valid`` as for :func:`warping_error`."""
    _check_same({"out": out, "out_prev": out_prev, "inp": inp, "inp_prev": inp_prev})
    out_warped, inside = warp(out_prev, flow)
    inp_warped, _ = warp(inp_prev, flow)
    d = (out.double() - out_warped.double()) - (inp.double() - inp_warped.double())
    return _masked_mean_abs(d, inside, valid)


def _masked_mean_abs(diff: torch.Tensor, inside: torch.Tensor, valid: torch.Tensor | None) -> float:
    if valid is not None:
        if not isinstance(valid, torch.Tensor) or tuple(valid.shape) != (1, *diff.shape[-2:]):
            raise StylekitError(f"valid must be a (1, {diff.shape[-2]}, {diff.shape[-1]}) mask")
        inside = inside & valid.bool()
    count = int(inside.sum())
    if count == 0:
        return math.nan
    return float(diff.abs().sum(0, keepdim=True)[inside].sum()) / (count * diff.shape[0]) * 255.0


class FrameMeter:
    """Accumulates the measures over a sequence of (input, output) frames.

    ``features`` (optional): a function from a ``(3, H, W)`` frame to a feature
    map, for the frame-difference error in feature space."""

    def __init__(self, features=None):
        self.features = features
        self.pairs = 0
        self._in = self._out = 0.0
        self._fde = self._fde_feat = 0.0
        self._prev = None

    def add(self, inp: torch.Tensor, out: torch.Tensor) -> None:
        _check_same({"input": inp, "output": out})
        feats = (self.features(inp), self.features(out)) if self.features is not None else None
        if self._prev is not None:
            p_in, p_out, p_feats = self._prev
            self._in += mean_abs_change(inp, p_in)
            self._out += mean_abs_change(out, p_out)
            self._fde += frame_difference_error(out, p_out, inp, p_in)
            if feats is not None:
                self._fde_feat += frame_difference_error(feats[1], p_feats[1], feats[0], p_feats[0], scale=1.0)
            self.pairs += 1
        self._prev = (inp, out, feats)

    def result(self) -> "TemporalMeasures":
        n = max(self.pairs, 1)
        return TemporalMeasures(
            input_flicker=self._in / n, output_flicker=self._out / n, frame_difference_error=self._fde / n,
            feature_difference_error=self._fde_feat / n if self.features is not None else None,
        )


@dataclass(frozen=True)
class TemporalMeasures:
    """Averages over consecutive frame pairs (0 for a single frame)."""

    input_flicker: float
    output_flicker: float
    frame_difference_error: float
    feature_difference_error: float | None = None

    @property
    def flicker_ratio(self) -> float:
        return flicker_ratio(self.input_flicker, self.output_flicker)


def flicker_ratio(input_flicker: float, output_flicker: float) -> float:
    """The output's flicker over the input's (infinite for a still input)."""
    return output_flicker / input_flicker if input_flicker > 0 else math.inf


# --- the stabiliser ---


def unchanged(content: torch.Tensor, reference: torch.Tensor, low: float, high: float, noise: float, radius: int,
              dilate: int) -> torch.Tensor:
    """``(1, H, W)`` in [0, 1]: 1 where ``content`` did not change against
    ``reference``, 0 where it changed, linear between (change below ``low``,
    above ``high``).

    Noise changes every pixel independently; a scene changes neighbourhoods.
    So the change of a pixel is the larger of two box means over ``(2 radius
    + 1)^2`` pixels: of the signed difference (where noise cancels and a
    moving edge or object does not), and of the absolute difference less
    ``noise`` (what a moving fine texture leaves, whose signed differences
    cancel too). Both are averaged over channels. A max filter over ``(2
    dilate + 1)^2`` then marks the pixels beside a change as changed, so the
    blur never leaves a moving edge behind."""
    _check_same({"content": content, "reference": reference})
    diff = (content - reference)[None]
    absolute = diff.abs().mean(1, keepdim=True)
    if radius > 0:
        diff, absolute = _box_mean(diff, radius), _box_mean(absolute, radius)
    d = torch.maximum(diff.abs().mean(1, keepdim=True), absolute - noise)
    if dilate > 0:
        d = F.max_pool2d(d, 2 * dilate + 1, stride=1, padding=dilate)
    return ((high - d[0]) / (high - low)).clamp(0, 1)


def _box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over (2 radius + 1)^2 pixels, the border mirrored (which keeps the
    statistics of noise there; replicated on maps too small to mirror)."""
    mode = "reflect" if radius < min(x.shape[-2:]) else "replicate"
    return F.avg_pool2d(F.pad(x, (radius,) * 4, mode=mode), 2 * radius + 1, stride=1)


def stabilise_input(content: torch.Tensor, reference: torch.Tensor, config: SmoothConfig = SmoothConfig(),
                    valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first half of a frame: the input to stylize and the per-pixel
    ``keep`` map for :func:`stabilise_output`.

    ``reference`` is the previous call's stylized input (motion-compensated if
    there is a flow; the first frame has none: stylize it as it is). Where
    ``content`` did not change against it, it is blended towards it by
    ``input_strength``, so the stylizer sees the same pixels where the scene
    stood still instead of fresh sensor and codec noise. ``valid`` (``(1, H,
    W)``, optional) marks the pixels the reference has data for."""
    _check_same({"content": content, "reference": reference})
    keep = unchanged(content, reference, config.low, config.high, config.noise, config.radius, config.dilate)
    if valid is not None:
        keep = keep * valid.to(keep.dtype)
    return torch.lerp(content, reference, config.input_strength * keep), keep


def stabilise_output(output: torch.Tensor, previous_output: torch.Tensor, keep: torch.Tensor,
                     config: SmoothConfig = SmoothConfig()) -> torch.Tensor:
    """The second half: the output to show. Where :func:`stabilise_input`
    found the input unchanged (``keep >= 0.5``), ``output`` moves towards the
    previous shown output (motion-compensated if there is a flow) by
    ``strength``; elsewhere it is shown as it is.

    The choice is per pixel, not a blend weighted by ``keep``: a blend of two
    stylizations averages two different brush textures into a blur the style
    does not have, so at ``strength`` 1 each pixel shows one stylization or
    the other, and a texture is never averaged.

    Without a flow this assumes a still camera: when the camera moves, the
    parts that look unchanged (flat areas) move too, and keeping their previous
    output would drag the style's texture along the screen. So nothing is kept
    in a frame whose changed fraction, ``mean(1 - keep)``, reaches
    ``moving_camera`` (:func:`camera_moving`)."""
    _check_same({"output": output, "previous_output": previous_output})
    if not isinstance(keep, torch.Tensor) or tuple(keep.shape) != (1, *output.shape[-2:]):
        raise StylekitError(f"keep must be a (1, {output.shape[-2]}, {output.shape[-1]}) map from stabilise_input")
    if config.flow == "none" and camera_moving(keep, config):
        return output
    weight = config.strength * (keep >= 0.5).to(output.dtype)
    return torch.lerp(output, previous_output, weight)


def camera_moving(keep: torch.Tensor, config: SmoothConfig = SmoothConfig()) -> bool:
    """Whether at least ``moving_camera`` of the frame changed (``mean(1 - keep)``)."""
    return float(1 - keep.double().mean()) >= config.moving_camera


def dis_flow(current: torch.Tensor, previous: torch.Tensor, preset: str = "medium") -> torch.Tensor:
    """Backward optical flow by OpenCV's DIS (Kroeger et al. 2016) on the grey
    frames: ``(2, H, W)`` with ``current(p) ~ previous(p + flow(p))``. Needs
    ``opencv-python-headless`` (the ``[flow]`` extra)."""
    cv2 = require_opencv()
    presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
    if preset not in presets:
        raise StylekitError(f"DIS preset must be one of {', '.join(presets)}, got {preset!r}")
    _check_same({"current": current, "previous": previous})
    import numpy as np

    def grey(x):
        y = x.mean(0) if x.shape[0] != 3 else 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]
        return np.ascontiguousarray((y.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy())

    flow = cv2.DISOpticalFlow_create(presets[preset]).calc(grey(current), grey(previous), None)
    return torch.from_numpy(flow).permute(2, 0, 1).to(current.dtype).contiguous()


def opencv_available() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def require_opencv():
    try:
        import cv2
    except ImportError:
        raise StylekitError(
            "optical flow needs OpenCV: pip install 'stylekit[flow]' (opencv-python-headless), or use flow='none'"
        ) from None
    return cv2


class Stabilizer:
    """The stabiliser's state across frames, around any stylizer::

        x = stabilizer.before(frame)          # what to stylize
        shown = stabilizer.after(stylize(x))  # what to show

    :attr:`flow` says which motion it follows; ``flow_fn(current, previous)``
    replaces :func:`dis_flow` (e.g. with a known motion)."""

    def __init__(self, config: SmoothConfig = SmoothConfig(), flow_fn=None):
        self.config = config
        self.flow = config.flow if config.enabled else "none"
        if self.flow == "dis" and flow_fn is None:
            require_opencv()
        self._flow_fn = flow_fn if flow_fn is not None else dis_flow
        self.reset()

    def reset(self) -> None:
        self._previous = None  # (shown output, stylized input, raw input) of the previous frame
        self._pending = None  # (raw input, stylized input, keep, previous output) of this frame

    def before(self, content: torch.Tensor) -> torch.Tensor:
        """The input to stylize for this frame (``content`` itself when off or first)."""
        _check_frame(content, "content")
        if not self.config.enabled:
            return content
        if self._previous is None:
            self._pending = (content, content, None, None)
            return content
        prev_out, reference, prev_in = self._previous
        valid = None
        if self.flow == "dis":
            flow = self._flow_fn(content, prev_in)
            # the shown output moves by whole pixels, so a texture held over many frames stays as
            # sharp as it was painted (rounding each frame's flow on its own: a motion under half a
            # pixel a frame leaves it where it is, and flow noise on still parts moves nothing); the
            # reference is compared with the input, so it is interpolated like the scene's own motion
            prev_out, valid = warp(prev_out, flow, mode="nearest")
            valid = valid & from_inside(flow, self.config.margin).to(valid.device)
            reference, _ = warp(reference, flow)
        x, keep = stabilise_input(content, reference, self.config, valid)
        self._pending = (content, x, keep, prev_out)
        return x

    def after(self, output: torch.Tensor) -> torch.Tensor:
        """The output to show for this frame, from the stylization of :meth:`before`'s result."""
        if not self.config.enabled:
            return output
        if self._pending is None:
            raise StylekitError("Stabilizer.after() needs a before() for the same frame first")
        content, x, keep, prev_out = self._pending
        _check_same({"output": output, "content": content})
        shown = output if keep is None else stabilise_output(output, prev_out, keep, self.config)
        self._previous, self._pending = (shown, x, content), None
        return shown

__all__ = [
    "SmoothConfig", "Stabilizer", "FrameMeter", "TemporalMeasures", "FLOWS",
    "mean_abs_change", "flicker_ratio", "frame_difference_error", "motion_difference_error", "warp",
    "warping_error", "WARP_MODES", "from_inside",
    "unchanged", "stabilise_input", "stabilise_output", "camera_moving", "dis_flow", "opencv_available",
]
