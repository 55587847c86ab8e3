"""stylekit.temporal: the measures against hand-computed values and clips whose
motion is constructed exactly; the stabiliser with stand-in stylizers whose
ideal output is known (no network: these run in milliseconds)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

import stylekit
from stylekit.errors import StylekitError
from stylekit.temporal import (
    FrameMeter,
    SmoothConfig,
    Stabilizer,
    dis_flow,
    flicker_ratio,
    frame_difference_error,
    from_inside,
    mean_abs_change,
    motion_difference_error,
    opencv_available,
    camera_moving,
    stabilise_input,
    stabilise_output,
    unchanged,
    warp,
    warping_error,
)

needs_opencv = pytest.mark.skipif(not opencv_available(), reason="opencv-python-headless is not installed")


def texture(h=24, w=32, seed=0) -> torch.Tensor:
    """A smooth random texture in [0.1, 0.9] (no flat regions, no clipping)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 4 + 2, w // 4 + 2, generator=g, dtype=torch.float64)
    up = torch.nn.functional.interpolate(low, size=(h + 8, w + 8), mode="bicubic", align_corners=True)[0]
    return (0.1 + 0.8 * up[:, 4 : 4 + h, 4 : 4 + w].clamp(0, 1)).float()


# --- measures ---


def test_mean_abs_change_and_frame_difference_error_by_hand():
    a = torch.zeros(3, 2, 2)
    b = a.clone()
    b[0, 0, 0] = 0.6  # one element of 12 changes by 0.6
    assert mean_abs_change(b, a) == pytest.approx(0.6 / 12 * 255)
    # output changes by +0.2 everywhere, input by +0.1 everywhere: the unexplained change is 0.1
    o0, i0 = torch.full((3, 2, 2), 0.3), torch.full((3, 2, 2), 0.5)
    assert frame_difference_error(o0 + 0.2, o0, i0 + 0.1, i0) == pytest.approx(0.1 * 255)
    # output follows the input exactly: no error, whatever the motion
    assert frame_difference_error(b, a, b, a) == 0
    # features: scale 1
    assert frame_difference_error(o0 + 0.2, o0, i0 + 0.1, i0, scale=1.0) == pytest.approx(0.1)
    assert flicker_ratio(2.0, 3.0) == 1.5 and flicker_ratio(0.0, 1.0) == math.inf


def test_warp_whole_pixel_shift_and_its_valid_mask():
    img = texture()
    flow = torch.zeros(2, 24, 32)
    flow[0], flow[1] = 3, -2  # out(x, y) = img(x + 3, y - 2)
    out, valid = warp(img, flow)
    assert torch.allclose(out[:, 2:, :29], img[:, :22, 3:], atol=1e-6)
    expected = torch.zeros(1, 24, 32, dtype=torch.bool)
    expected[:, 2:, :29] = True
    assert torch.equal(valid, expected)


def test_warp_half_pixel_is_the_neighbours_mean():
    img = texture()
    flow = torch.zeros(2, 24, 32)
    flow[0] = 0.5
    out, valid = warp(img, flow)
    assert torch.allclose(out[:, :, :31], (img[:, :, :31] + img[:, :, 1:]) / 2, atol=1e-6)
    assert not valid[..., 31].any() and valid[..., :31].all()


def test_warping_error_of_a_constructed_pan():
    """Frames cut from a wider image, 2 pixels further right each: frame_t(x) = frame_{t-1}(x + 2)."""
    wide = texture(24, 40)
    frames = [wide[:, :, 2 * t : 2 * t + 32] for t in range(4)]
    flow = torch.zeros(2, 24, 32)
    flow[0] = 2
    for t in range(1, 4):
        assert warping_error(frames[t], frames[t - 1], flow) == pytest.approx(0, abs=1e-4)
    # an output that follows the pan but brightens by 0.1 each frame: 25.5 grey levels everywhere valid
    assert warping_error(frames[1] + 0.1, frames[0], flow) == pytest.approx(25.5, rel=1e-5)
    # the wrong motion is not free
    assert warping_error(frames[1], frames[0], torch.zeros(2, 24, 32)) > 5


def test_warp_nearest_moves_whole_pixels():
    img = texture()
    flow = torch.zeros(2, 24, 32)
    flow[0, :, :16], flow[0, :, 16:] = 0.4, 1.6  # rounds to 0 and to 2
    out, valid = warp(img, flow, mode="nearest")
    assert torch.equal(out[:, :, :16], img[:, :, :16])
    assert torch.equal(out[:, :, 16:30], img[:, :, 18:32])
    assert valid[..., :30].all() and not valid[..., 31].any()


def test_from_inside_by_hand():
    """A pan: each pixel's source is 2 to its right. Margin 4: a pixel may take its
    output from a source at least min(its own distance to the edge, 4) inside."""
    flow = torch.zeros(2, 21, 40)
    flow[0] = 2
    row = from_inside(flow, margin=4)[0, 10]  # row 10: far from the top and bottom edges
    # x = 33: 6 from the right edge (counts as 4), source 35 is 4 from it: kept;
    # x = 34: source 36 is 3 from it: not; x >= 38: the source is outside the frame
    assert row[:34].all() and not row[34:].any()
    # the left edge takes from further inside: kept
    assert row[0]
    # a still camera: every pixel is its own source
    assert from_inside(torch.zeros(2, 21, 40), margin=4).all()


def test_motion_difference_error_by_hand():
    """Frames cut from a wider image, 2 pixels further right each; the output is a
    pointwise map of the input, so it follows the motion exactly."""
    wide = texture(24, 40)
    frames = [wide[:, :, 2 * t : 2 * t + 32] for t in range(3)]
    outs = [1 - f for f in frames]
    flow = torch.zeros(2, 24, 32)
    flow[0] = 2
    # in place, the texture's own motion counts; along the motion nothing is left
    assert frame_difference_error(outs[1], outs[0], frames[1], frames[0]) > 5
    assert motion_difference_error(outs[1], outs[0], frames[1], frames[0], flow) == pytest.approx(0, abs=1e-4)
    # an output that brightens by 0.1 more than its input: 25.5 grey levels
    assert motion_difference_error(outs[1] + 0.1, outs[0], frames[1], frames[0], flow) == pytest.approx(25.5, rel=1e-5)
    # with no motion it is the frame-difference error
    a, b = texture(seed=1), texture(seed=2)
    zero = torch.zeros(2, 24, 32)
    assert motion_difference_error(a, b, b, a, zero) == pytest.approx(frame_difference_error(a, b, b, a), rel=1e-6)
    valid = torch.zeros(1, 24, 32, dtype=torch.bool)
    assert math.isnan(motion_difference_error(a, b, b, a, zero, valid))


def test_warping_error_respects_the_valid_mask():
    prev, cur = torch.zeros(3, 4, 4), torch.zeros(3, 4, 4)
    cur[:, 0, 0] = 1.0  # one pixel differs: 1 of 16 pixels -> 255 / 16
    zero = torch.zeros(2, 4, 4)
    assert warping_error(cur, prev, zero) == pytest.approx(255 / 16)
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    valid[0, 0, 0] = False  # a disoccluded pixel is not counted
    assert warping_error(cur, prev, zero, valid) == 0
    assert math.isnan(warping_error(cur, prev, zero, torch.zeros(1, 4, 4, dtype=torch.bool)))


def test_frame_meter_averages_over_pairs_and_features():
    frames = [torch.full((3, 2, 2), v) for v in (0.0, 0.1, 0.3)]
    outs = [torch.full((3, 2, 2), v) for v in (0.0, 0.3, 0.3)]
    meter = FrameMeter(features=lambda x: 2 * x)
    for f, o in zip(frames, outs):
        meter.add(f, o)
    m = meter.result()
    assert m.input_flicker == pytest.approx((0.1 + 0.2) / 2 * 255)
    assert m.output_flicker == pytest.approx((0.3 + 0.0) / 2 * 255)
    assert m.flicker_ratio == pytest.approx(1.0)
    assert m.frame_difference_error == pytest.approx((0.2 + 0.2) / 2 * 255)
    assert m.feature_difference_error == pytest.approx((0.4 + 0.4) / 2)
    assert FrameMeter().result().feature_difference_error is None


@pytest.mark.parametrize("call, match", [
    (lambda: mean_abs_change(torch.zeros(3, 2, 2), torch.zeros(3, 2, 3)), "shape"),
    (lambda: mean_abs_change(torch.zeros(2, 2), torch.zeros(2, 2)), r"\(C, H, W\)"),
    (lambda: mean_abs_change(torch.zeros(3, 2, 2, dtype=torch.uint8), torch.zeros(3, 2, 2)), "floating"),
    (lambda: warp(torch.zeros(3, 4, 4), torch.zeros(2, 4, 5)), "flow must be"),
    (lambda: warp(torch.zeros(3, 4, 4), torch.full((2, 4, 4), math.nan)), "NaN"),
    (lambda: warp(torch.zeros(3, 4, 4), torch.zeros(2, 4, 4), mode="bicubic"), "warp mode"),
    (lambda: SmoothConfig(margin=-1), "margin"),
    (lambda: warping_error(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4), torch.zeros(2, 4, 4), torch.ones(4, 4)), "valid"),
    (lambda: SmoothConfig(strength=1.5), "strength"),
    (lambda: SmoothConfig(input_strength=-0.1), "input strength"),
    (lambda: SmoothConfig(low=0.2, high=0.1), "must exceed"),
    (lambda: SmoothConfig(noise=math.inf), "noise"),
    (lambda: SmoothConfig(moving_camera=-0.5), "moving_camera"),
    (lambda: SmoothConfig(radius=-1), "radius"),
    (lambda: SmoothConfig(dilate=1.5), "dilate"),
    (lambda: SmoothConfig(flow="farneback"), "flow must be one of"),
    (lambda: Stabilizer().after(torch.zeros(3, 4, 4)), "before"),
    (lambda: stabilise_output(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4), torch.ones(4, 4)), "keep must be"),
])
def test_bad_inputs_are_one_line_errors(call, match):
    with pytest.raises(StylekitError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


# --- the stabiliser's pure parts ---


def test_unchanged_ramp_by_hand():
    ref = torch.zeros(3, 1, 4)
    cur = torch.tensor([0.0, 0.03, 0.065, 0.2]).expand(3, 1, 4)  # the change per pixel, the same in each channel
    keep = unchanged(cur, ref, low=0.03, high=0.10, noise=0.5, radius=0, dilate=0)
    assert torch.allclose(keep, torch.tensor([[[1.0, 1.0, 0.5, 0.0]]]), atol=1e-6)
    # channels are averaged: +0.2, -0.2, 0 is a mean absolute change of 0.4 / 3
    mixed = torch.tensor([0.2, -0.2, 0.0]).view(3, 1, 1).expand(3, 1, 4)
    k = unchanged(mixed, ref, low=0.03, high=0.23, noise=0.5, radius=0, dilate=0)
    assert torch.allclose(k, torch.full((1, 1, 4), (0.23 - 0.4 / 3) / 0.2), atol=1e-6)


def checkerboard(n: int, amplitude: float) -> torch.Tensor:
    return (amplitude * ((torch.arange(n)[:, None] + torch.arange(n)[None]) % 2 * 2 - 1)).float().expand(3, n, n)


def test_unchanged_tells_noise_from_a_change():
    zero = torch.zeros(3, 9, 9)
    args = dict(low=0.01, high=0.04, noise=0.05)
    # +-0.04 alternating pixels (noise-like): the signed 5x5 mean is 0.04 / 25, the absolute mean
    # 0.04 is below the noise allowance: unchanged everywhere
    assert unchanged(checkerboard(9, 0.04), zero, radius=2, dilate=0, **args).min() == 1.0
    # without the box mean the same pattern is a change
    assert unchanged(checkerboard(9, 0.04), zero, radius=0, dilate=0, **args).max() == 0.0
    # a uniform change of 0.04 (a scene change) is a change at any radius
    assert unchanged(torch.full((3, 9, 9), 0.04), zero, radius=2, dilate=0, **args).max() == 0.0
    # a moving fine texture: +-0.2 alternating, signed mean ~0 but absolute 0.2 - 0.05 > high
    assert unchanged(checkerboard(9, 0.2), zero, radius=2, dilate=0, **args).max() == 0.0
    # one pixel changing by 0.5 is a speck (0.5 / 25 = 0.02 signed; 0.02 - 0.05 absolute): partly kept
    speck = zero.clone()
    speck[:, 4, 4] = 0.5
    assert unchanged(speck, zero, radius=2, dilate=0, **args)[0, 4, 4] == pytest.approx((0.04 - 0.02) / 0.03)


def test_unchanged_dilation_is_a_max_filter_of_the_change():
    zero = torch.zeros(3, 9, 9)
    patch = zero.clone()
    patch[:, 3:6, 3:6] = 0.1
    args = dict(low=0.01, high=0.04, noise=0.5, radius=1)
    blurred = unchanged(patch, zero, dilate=0, **args)
    dilated = unchanged(patch, zero, dilate=1, **args)
    # the keep map is decreasing in the change, so a max filter of the change is a min filter of keep
    expected = -torch.nn.functional.max_pool2d(-blurred[None], 3, stride=1, padding=1)[0]
    assert torch.allclose(dilated, expected)
    # two pixels above the patch the 3x3 mean sees no change, one pixel above it a third of the patch's
    assert blurred[0, 1, 4] == 1.0 and dilated[0, 1, 4] == blurred[0, 2, 4] == pytest.approx((0.04 - 0.1 / 3) / 0.03)


def test_stabilise_input_and_output_are_the_documented_blends():
    g = torch.Generator().manual_seed(1)
    content, reference = torch.rand(3, 5, 6, generator=g), torch.rand(3, 5, 6, generator=g)
    reference[:, :, :3] = content[:, :, :3] + 0.01  # the left half unchanged
    # half the frame changes: a camera this still is not a moving one here (test_output_keeps_nothing...)
    cfg = SmoothConfig(strength=0.6, input_strength=0.9, low=0.03, high=0.10, noise=1.0, radius=0, dilate=0,
                       moving_camera=0.9)
    x, keep = stabilise_input(content, reference, cfg)
    c64, r64 = content.double(), reference.double()
    d = (c64 - r64).abs().mean(0, keepdim=True)
    k64 = ((0.10 - d) / 0.07).clamp(0, 1)
    assert torch.allclose(keep.double(), k64, atol=1e-6)
    assert torch.allclose(x.double(), c64 + 0.9 * k64 * (r64 - c64), atol=1e-6)
    out, prev = torch.rand(3, 5, 6, generator=g), torch.rand(3, 5, 6, generator=g)
    shown = stabilise_output(out, prev, keep, cfg)
    chosen = (k64 >= 0.5).double()  # a per-pixel choice, not a keep-weighted blend
    assert 0 < chosen.mean() < 1
    assert torch.allclose(shown.double(), out.double() + 0.6 * chosen * (prev.double() - out.double()), atol=1e-6)
    # where the reference has no data, nothing is kept
    valid = torch.zeros(1, 5, 6, dtype=torch.bool)
    x, keep = stabilise_input(content, reference, cfg, valid)
    assert torch.equal(x, content) and not keep.any()


def test_output_keeps_nothing_when_the_camera_moves():
    cfg = SmoothConfig(strength=1.0, moving_camera=0.3)
    keep = torch.ones(1, 10, 10)
    keep[:, :2] = 0  # 20 % of the frame changed: a still camera
    out, prev = torch.zeros(3, 10, 10), torch.ones(3, 10, 10)
    assert not camera_moving(keep, cfg)
    assert torch.equal(stabilise_output(out, prev, keep, cfg), keep.expand(3, -1, -1))
    keep[:, 2] = 0  # 30 %: a moving camera, the output as it is
    assert camera_moving(keep, cfg)
    assert torch.equal(stabilise_output(out, prev, keep, cfg), out)
    # with a flow the motion is followed instead
    dis = SmoothConfig(strength=1.0, moving_camera=0.3, flow="dis")
    assert torch.equal(stabilise_output(out, prev, keep, dis), keep.expand(3, -1, -1))


# --- the stabiliser on clips, with stand-in stylizers ---


def amplifying(x: torch.Tensor) -> torch.Tensor:
    """A stand-in stylizer that flickers as networks do: a pointwise colour map
    that triples every change of its input (so its ideal output is known)."""
    return (0.5 + 3 * (x.flip(0) - 0.5)).clamp(0, 1)


def run(clip, config, stylize=amplifying, flow_fn=None):
    stabilizer = Stabilizer(config, flow_fn=flow_fn)
    return [stabilizer.after(stylize(stabilizer.before(f))) for f in clip]


def measures(clip, outs):
    meter = FrameMeter()
    for f, o in zip(clip, outs):
        meter.add(f, o)
    return meter.result()


def still_with_noise(n=12, sigma=0.01, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = texture(24, 32, seed=3) * 0.3 + 0.35  # mid-grey, the amplifier does not clip
    return [base + sigma * torch.randn(base.shape, generator=g) for _ in range(n)]


def moving_square(n=10, step=2):
    """A bright square moving right by ``step`` whole pixels a frame over a still texture:
    backward flow -step inside the square, 0 outside; the uncovered background is invalid."""
    background = texture(24, 40, seed=4) * 0.3 + 0.35
    frames, flows, valid = [], [], []
    for t in range(n):
        f = background.clone()
        f[:, 8:16, 4 + step * t : 12 + step * t] = 0.95
        frames.append(f)
        if t:
            flow = torch.zeros(2, 24, 40)
            flow[0, 8:16, 4 + step * t : 12 + step * t] = -step
            flows.append(flow)
            v = torch.ones(1, 24, 40, dtype=torch.bool)
            v[:, 8:16, 4 + step * (t - 1) : 4 + step * t] = False
            valid.append(v)
    return frames, flows, valid


def test_off_returns_the_stylizer_output_itself():
    clip = still_with_noise(3)
    stabilizer = Stabilizer(SmoothConfig(strength=0, input_strength=0))
    for f in clip:
        assert stabilizer.before(f) is f
        out = amplifying(f)
        assert stabilizer.after(out) is out
    assert stabilizer.flow == "none"


@pytest.mark.parametrize("cfg", [
    SmoothConfig(flow="none"),
    SmoothConfig(flow="none", strength=0),  # the input half alone
    SmoothConfig(flow="none", input_strength=0),  # the output half alone
])
def test_still_clip_with_noise_flickers_far_less(cfg):
    clip = still_with_noise()
    off = measures(clip, [amplifying(f) for f in clip])
    assert off.flicker_ratio == pytest.approx(3, rel=0.05)  # the stand-in triples the noise
    on = measures(clip, run(clip, cfg))
    assert on.flicker_ratio < off.flicker_ratio / 3
    assert on.frame_difference_error < off.frame_difference_error / 2


@pytest.mark.parametrize("flow", ["none", "known"])
def test_moving_object_leaves_no_trail(flow):
    """The stand-in is pointwise, so its own output is perfectly consistent (warping error 0):
    a trail of the square behind it would show as warping error and as a difference from the
    stylization of the current frame where the square has just left."""
    frames, flows, valid = moving_square()
    flow_fn = None
    if flow == "known":
        lookup = {id(f): fl for f, fl in zip(frames[1:], flows)}

        def flow_fn(current, previous):  # noqa: F811  (the constructed motion instead of DIS)
            return lookup[id(current)]

    cfg = SmoothConfig(flow="none" if flow == "none" else "dis")
    outs = run(frames, cfg, flow_fn=flow_fn)
    ideal = [amplifying(f) for f in frames]
    for t in range(1, len(frames)):
        assert warping_error(ideal[t], ideal[t - 1], flows[t - 1], valid[t - 1]) == pytest.approx(0, abs=1e-4)
        assert warping_error(outs[t], outs[t - 1], flows[t - 1], valid[t - 1]) < 0.5  # grey levels
        # where the square just left (the background it uncovered), the background is shown
        uncovered = ~valid[t - 1].expand(3, -1, -1)
        assert (outs[t] - ideal[t])[uncovered].abs().max() < 2 / 255


def test_held_texture_stays_sharp_along_a_sub_pixel_motion():
    """A photo panning by 0.7 pixels a frame, and a stand-in stylizer that paints a
    fine checker texture fixed to the scene (so the texture the flow carries along
    is the texture it would paint). Whatever the stabiliser holds must keep that
    texture's contrast: averaging neighbours at every step would flatten it."""
    n, step, w = 10, 0.7, 40
    wide = texture(24, 56, seed=6) * 0.3 + 0.35
    xs = torch.arange(w, dtype=torch.float64)

    def window(t):  # frame_t(x) = wide(x + step t), by linear interpolation
        sx = xs + step * t
        i = sx.floor().long()
        f = (sx - i).float()
        return wide[:, :, i] * (1 - f) + wide[:, :, i + 1] * f

    frames = [window(t) for t in range(n)]
    scene_x = {id(f): xs + step * t for t, f in enumerate(frames)}

    def painter(x):  # the checker sits on the scene's own pixel grid
        sx = scene_x[id(x)] if id(x) in scene_x else xs
        checker = ((sx.floor().long() % 2) * 2 - 1).float() * 0.1
        return (x + checker).clamp(0, 1)

    flow = torch.zeros(2, 24, w)
    flow[0] = step
    lookup = {id(f): flow for f in frames[1:]}
    stabilizer = Stabilizer(SmoothConfig(flow="dis"), flow_fn=lambda current, previous: lookup[id(current)])
    shown = []
    for f in frames:
        x = stabilizer.before(f)
        shown.append(stabilizer.after(painter(x if x is f else f)))

    def contrast(img):
        return float((img[:, :, 1:] - img[:, :, :-1]).abs().mean())

    painted = contrast(painter(frames[-1]))
    assert contrast(shown[-1]) > 0.9 * painted
    # and interpolating the held output at every step would have lost much of it
    blurred = painter(frames[0])
    for _ in range(n - 1):
        blurred, _ = warp(blurred, flow)
    assert contrast(blurred) < 0.7 * painted


@needs_opencv
def test_dis_flow_finds_a_whole_pixel_shift():
    wide = texture(64, 96, seed=5)
    prev, cur = wide[:, :, :80], wide[:, :, 3:83]  # cur(x) = prev(x + 3)
    flow = dis_flow(cur, prev)
    assert flow.shape == (2, 64, 80)
    inner = flow[:, 8:-8, 8:-16]
    assert inner[0].median() == pytest.approx(3, abs=0.1) and inner[1].abs().median() < 0.1


# --- the JavaScript port for a webcam page ---

TEMPORAL_JS = Path(stylekit.__file__).resolve().parent / "server" / "static" / "temporal.js"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("moving", [False, True])
def test_javascript_port_matches_the_python_functions(moving, tmp_path):
    """server/static/temporal.js on RGBA 0-255 frames against stabilise_input / stabilise_output."""
    g = torch.Generator().manual_seed(7)
    h, w = 24, 32
    reference = (texture(h, w, seed=6) * 255).round()
    content = reference + torch.randn(reference.shape, generator=g) * 2  # noise
    content[:, 2:6, 3:8] += 60  # and a change
    if moving:
        content[:, :, :] = torch.roll(reference, 3, dims=2)  # everything moves
    content = content.clamp(0, 255)
    output, previous = (torch.rand(3, h, w, generator=g) * 255).round(), (torch.rand(3, h, w, generator=g) * 255).round()
    cfg = SmoothConfig(strength=0.7, input_strength=0.9)

    def rgba(t):
        return torch.cat([t, torch.full((1, h, w), 255.0)]).permute(1, 2, 0).reshape(-1).tolist()

    script = tmp_path / "run.js"
    script.write_text(
        f"const t = require({json.dumps(str(TEMPORAL_JS))});\n"
        "const a = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "const cfg = {strength: a.cfg.strength, inputStrength: a.cfg.input_strength};\n"
        "const s = t.stabiliseInput(a.content, a.reference, a.w, a.h, cfg);\n"
        "const shown = t.stabiliseOutput(a.output, a.previous, s.keep, a.w, a.h, cfg);\n"
        "process.stdout.write(JSON.stringify({input: Array.from(s.input), keep: Array.from(s.keep), "
        "shown: Array.from(shown), moving: t.cameraMoving(s.keep, cfg)}));\n"
    )
    payload = {"w": w, "h": h, "content": rgba(content), "reference": rgba(reference), "output": rgba(output),
               "previous": rgba(previous), "cfg": {"strength": 0.7, "input_strength": 0.9}}
    run = subprocess.run(["node", str(script)], input=json.dumps(payload), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    js = json.loads(run.stdout)

    def planes(values):
        return torch.tensor(values, dtype=torch.float64).reshape(h, w, 4).permute(2, 0, 1)[:3]

    x, keep = stabilise_input(content / 255, reference / 255, cfg)
    shown = stabilise_output(output / 255, previous / 255, keep, cfg)
    assert torch.allclose(torch.tensor(js["keep"], dtype=torch.float64).reshape(1, h, w), keep.double(), atol=1e-5)
    assert torch.allclose(planes(js["input"]) / 255, x.double(), atol=1e-5)
    assert torch.allclose(planes(js["shown"]) / 255, shown.double(), atol=1e-5)
    assert camera_moving(keep, cfg) == moving == js["moving"]
