"""``stylekit video`` / :func:`stylekit.video.stylize_video` on tiny generated
clips (8 frames of 48x48 moving gradient), with the seeded test decoder."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

imageio = pytest.importorskip("imageio.v2", reason="the [video] extra is not installed")
pytest.importorskip("imageio_ffmpeg", reason="the [video] extra is not installed")

import stylekit  # noqa: E402
from stylekit.cli import main  # noqa: E402
from stylekit.errors import StylekitError  # noqa: E402
from stylekit.temporal import SmoothConfig  # noqa: E402
from stylekit.video import VideoResult, stylize_video  # noqa: E402

from ..conftest import make_image  # noqa: E402



@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_clip(path: Path, frames: int = 8, size=(48, 48), fps: float = 12.0) -> Path:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    writer = imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1,
                                ffmpeg_log_level="error")
    for t in range(frames):
        arr = np.stack([(xx * 5 + t * 6) % 256, (yy * 5 + t * 2) % 256, ((xx + yy) * 3 + t * 10) % 256], -1)
        writer.append_data(arr.astype(np.uint8))
    writer.close()
    return path


def probe(path: Path) -> tuple[int, float, tuple[int, int]]:
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        meta = reader.get_meta_data()
        return reader.count_frames(), float(meta["fps"]), tuple(meta["size"])
    finally:
        reader.close()


@pytest.fixture(scope="module")
def model(decoder_file):
    return stylekit.load("adain", device="cpu", weights=decoder_file)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.fixture
def style(tmp_path):
    return make_image(tmp_path / "style.png", (64, 64), seed=2)


def test_same_frame_count_and_fps(clip, style, model, tmp_path):
    assert probe(clip) == (8, 12.0, (48, 48))
    out = tmp_path / "out" / "styled.mp4"
    result = stylize_video(clip, style, out, model=model, size=0, style_size=64, progress=False)
    assert isinstance(result, VideoResult)
    assert probe(out) == (8, 12.0, (48, 48))
    assert (result.frames, result.fps, result.size, result.output) == (8, 12.0, (48, 48), out)
    # the flicker figures: finite, positive (the gradient moves), and in grey levels
    assert 0 < result.input_flicker < 255 and 0 < result.output_flicker < 255
    assert math.isfinite(result.flicker_ratio)
    assert "flicker" in result.summary() and f"{result.output_flicker:.2f}" in result.summary()
    assert [p.name for p in out.parent.iterdir()] == ["styled.mp4"]  # no temp file left behind


def test_style_features_computed_once(clip, style, model, tmp_path):
    model.clear_cache()
    calls = []
    original = model.encoder.encode

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    model.encoder.encode = counting
    try:
        stylize_video(clip, style, tmp_path / "o.mp4", model=model, size=0, style_size=64, progress=False)
    finally:
        del model.encoder.encode
    assert len(calls) == 8 + 1  # each frame once, the style once (then from the stylizer's cache)
    assert sum(1 for shape in calls if tuple(shape[-2:]) == (64, 64)) == 1


def test_frames_match_single_image_stylization(clip, style, model, tmp_path):
    out = tmp_path / "o.mp4"
    stylize_video(clip, style, out, model=model, size=0, style_size=64, alpha=0.6, progress=False, quality=10)
    first_in = imageio.get_reader(clip, format="FFMPEG").get_data(0)
    expected = model.stylize(torch.from_numpy(first_in).permute(2, 0, 1).float() / 255, style, alpha=0.6,
                             size=0, style_size=64)
    got = imageio.get_reader(out, format="FFMPEG").get_data(0).astype(float) / 255
    # lossy codec: close, not equal
    assert np.abs(got - expected.permute(1, 2, 0).numpy()).mean() < 0.06


def test_size_and_odd_sides(clip, style, model, tmp_path):
    out = tmp_path / "small.mkv"
    result = stylize_video(clip, style, out, model=model, size=33, style_size=32, progress=False)
    assert result.size == (34, 34)  # 33 padded to even for yuv420p
    assert probe(out)[:2] == (8, 12.0)


def test_max_frames(clip, style, model, tmp_path):
    out = tmp_path / "short.mp4"
    assert stylize_video(clip, style, out, model=model, size=0, style_size=32, max_frames=3, progress=False).frames == 3
    assert probe(out)[0] == 3


def test_fractional_fps_is_kept(style, model, tmp_path):
    src = write_clip(tmp_path / "ntsc.mp4", frames=5, size=(32, 32), fps=30000 / 1001)
    out = tmp_path / "ntsc_out.mp4"
    stylize_video(src, style, out, model=model, size=0, style_size=32, progress=False)
    frames, fps, _ = probe(out)
    assert frames == 5 and fps == pytest.approx(29.97, abs=0.01)


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing.mp4", "file not found"),
    (lambda d: (d / "junk.mp4").write_bytes(b"not a video at all") and d / "junk.mp4", "cannot read video"),
    (lambda d: d, "directory"),
])
def test_bad_input(style, model, tmp_path, make, match):
    out = tmp_path / "out.mp4"
    with pytest.raises(StylekitError, match=match):
        stylize_video(make(tmp_path), style, out, model=model, progress=False)
    assert not out.exists()


def test_bad_output_and_controls(clip, style, model, tmp_path):
    with pytest.raises(StylekitError, match="unsupported video format"):
        stylize_video(clip, style, tmp_path / "out.gif", model=model, progress=False)
    with pytest.raises(StylekitError, match="alpha"):
        stylize_video(clip, style, tmp_path / "out.mp4", model=model, alpha=2, progress=False)
    with pytest.raises(StylekitError, match="not an image"):
        stylize_video(clip, clip, tmp_path / "out.mp4", model=model, progress=False)
    assert not list(tmp_path.glob("*.mp4"))


def test_failure_leaves_no_partial_output(clip, style, model, tmp_path, monkeypatch):
    out = tmp_path / "videos" / "out.mp4"
    out.parent.mkdir()
    out.write_bytes(b"previous result")
    calls = []
    original = model.stylize

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise StylekitError("simulated failure on frame 4")
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "stylize", failing)
    with pytest.raises(StylekitError, match="frame 4"):
        stylize_video(clip, style, out, model=model, size=0, style_size=32, progress=False)
    assert out.read_bytes() == b"previous result"  # untouched: the new video was never renamed over it
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.mp4"]


def test_cli(clip, style, decoder_file, tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    code = main(["video", str(clip), "--style", str(style), "-o", str(out), "--size", "32", "--style-size", "32",
                 "--alpha", "0.8", "--weights", str(decoder_file), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert probe(out) == (8, 12.0, (32, 32))
    assert "flicker" in captured.out and "input" in captured.out and "output" in captured.out
    assert "frame" in captured.err  # the progress bar


def test_transform_is_loaded_for_adain_only(clip, style, decoder_file, tmp_path, capsys, monkeypatch):
    from stylekit import api
    from stylekit.adain.transform import CovarianceTransform
    from stylekit.files import save_tensors

    transform = CovarianceTransform(256, 4)
    with torch.no_grad():
        transform.expand.weight.normal_(0, 0.2, generator=torch.Generator().manual_seed(0))
    save_tensors(tmp_path / "t.safetensors", transform.state_dict(), {"kind": "adain-transform"})
    loaded, real_load = [], api.load
    monkeypatch.setattr(api, "load", lambda *a, **k: loaded.append(real_load(*a, **k)) or loaded[-1])
    code = main(["video", str(clip), "--style", str(style), "-o", str(tmp_path / "t.mp4"), "--size", "32",
                 "--style-size", "32", "--max-frames", "2", "--weights", str(decoder_file), "--device", "cpu",
                 "--transform", str(tmp_path / "t.safetensors"), "--no-progress"])
    assert code == 0 and len(loaded) == 1
    torch.testing.assert_close(loaded[0].transform.expand.weight, transform.expand.weight)
    capsys.readouterr()
    code = main(["video", str(clip), "--style", str(style), "-o", str(tmp_path / "f.mp4"), "--method", "fast",
                 "--transform", "none"])
    err = capsys.readouterr().err
    assert code == 2 and "--transform applies only to --method adain" in err and not (tmp_path / "f.mp4").exists()


def test_cli_errors_are_one_line(clip, style, decoder_file, tmp_path, capsys):
    code = main(["video", str(tmp_path / "nope.mp4"), "--style", str(style), "-o", str(tmp_path / "o.mp4"),
                 "--weights", str(decoder_file)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("stylekit: error: file not found") and "Traceback" not in err


# --- temporal smoothing and its measures ---


def write_still_clip(path: Path, frames: int = 8, size=(48, 48), sigma: float = 6.0, seed: int = 0) -> Path:
    """One picture with fresh noise each frame (losslessly encoded, so the noise is what the reader sees)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 4 + 40, yy * 4 + 40, (xx + yy) * 2 + 60], -1).astype(float)
    rng = np.random.default_rng(seed)
    writer = imageio.get_writer(path, format="FFMPEG", fps=12, codec="libx264rgb", macro_block_size=1,
                                ffmpeg_log_level="error", pixelformat="rgb24", output_params=["-qp", "0"])
    for _ in range(frames):
        writer.append_data(np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).round().astype(np.uint8))
    writer.close()
    return path


@pytest.fixture(scope="module")
def still_clip(tmp_path_factory):
    return write_still_clip(tmp_path_factory.mktemp("still") / "still.mkv")


def captured_frames(monkeypatch) -> list:
    """The frames stylize_video hands to the encoder, captured as uint8 arrays."""
    frames = []
    real_get_writer = imageio.get_writer

    def get_writer(*args, **kwargs):
        writer = real_get_writer(*args, **kwargs)
        append = writer.append_data

        def capture(frame, *a, **k):
            frames.append(np.array(frame))
            return append(frame, *a, **k)

        writer.append_data = capture
        return writer

    monkeypatch.setattr(imageio, "get_writer", get_writer)
    return frames


def test_no_smooth_is_frame_by_frame_stylization_bit_for_bit(clip, style, model, tmp_path, monkeypatch):
    frames = captured_frames(monkeypatch)
    result = stylize_video(clip, style, tmp_path / "o.mp4", model=model, size=0, style_size=64, alpha=0.7,
                           smooth=0, progress=False)
    assert result.smooth == 0 and result.flow == "none" and "smoothing: off" in result.summary()
    reader = imageio.get_reader(clip, format="FFMPEG")
    expected = []
    for arr in reader:  # each frame stylized on its own, rounded to 8 bits
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float() / 255
        out = model.stylize(x, style, alpha=0.7, size=0, style_size=64)
        expected.append((out.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy())
    reader.close()
    assert len(frames) == len(expected) == 8
    for got, want in zip(frames, expected):
        assert np.array_equal(got, want)


def test_measures_match_the_written_frames(still_clip, style, model, tmp_path, monkeypatch):
    """flicker and frame-difference error recomputed in float64 from the frames as written and as read."""
    frames = captured_frames(monkeypatch)
    result = stylize_video(still_clip, style, tmp_path / "o.mp4", model=model, size=0, style_size=32,
                           smooth=0.5, progress=False)
    inputs = [f.astype(np.float64) for f in imageio.get_reader(still_clip, format="FFMPEG")]
    outs = [f.astype(np.float64) for f in frames]
    d_in = [np.abs(inputs[t] - inputs[t - 1]).mean() for t in range(1, 8)]
    d_out = [np.abs(outs[t] - outs[t - 1]).mean() for t in range(1, 8)]
    fde = [np.abs((outs[t] - outs[t - 1]) - (inputs[t] - inputs[t - 1])).mean() for t in range(1, 8)]
    assert result.input_flicker == pytest.approx(np.mean(d_in), rel=1e-6)
    assert result.output_flicker == pytest.approx(np.mean(d_out), rel=1e-6)
    assert result.frame_difference_error == pytest.approx(np.mean(fde), rel=1e-6)
    assert result.smooth == 0.5


@pytest.mark.parametrize("method", ["adain", "style-swap"])
def test_smoothing_cuts_the_flicker_of_a_still_noisy_clip(method, still_clip, style, tmp_path):
    """With the shipped networks, whose output changes with the input's noise."""
    stylizer = stylekit.load(method, device="cpu")
    kwargs = dict(model=stylizer, size=0, style_size=32, progress=False)
    off = stylize_video(still_clip, style, tmp_path / "off.mp4", smooth=0, **kwargs)
    on = stylize_video(still_clip, style, tmp_path / "on.mp4", smooth=SmoothConfig(flow="none"), **kwargs)
    assert off.input_flicker == on.input_flicker > 3  # the noise
    assert on.flicker_ratio < off.flicker_ratio / 2
    assert on.frame_difference_error < off.frame_difference_error
    assert on.flow == "none" and off.flow == "none"


def test_feature_layer_measure(still_clip, style, model, tmp_path):
    result = stylize_video(still_clip, style, tmp_path / "o.mp4", model=model, size=0, style_size=32,
                           feature_layer="relu1_1", max_frames=3, progress=False)
    assert result.feature_layer == "relu1_1" and result.feature_difference_error > 0
    assert "relu1_1 features" in result.summary()
    with pytest.raises(StylekitError, match="relu layer"):
        stylize_video(still_clip, style, tmp_path / "o.mp4", model=model, feature_layer="conv1_1", progress=False)
    with pytest.raises(StylekitError, match="smooth must be"):
        stylize_video(still_clip, style, tmp_path / "o.mp4", model=model, smooth="strong", progress=False)
    with pytest.raises(StylekitError, match="strength must be in"):
        stylize_video(still_clip, style, tmp_path / "o.mp4", model=model, smooth=1.5, progress=False)


def run_cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, STYLEKIT_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "stylekit", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_smooth_and_no_smooth_print_the_measures(still_clip, style, tmp_path):
    # the shipped decoder: it amplifies the noise, as trained networks do
    common = ["--style", style, "--size", "0", "--style-size", "32", "--device", "cpu", "--no-progress", "--flow", "none"]
    on = run_cli("video", still_clip, "-o", tmp_path / "on.mp4", "--smooth", "0.6", *common)
    off = run_cli("video", still_clip, "-o", tmp_path / "off.mp4", "--no-smooth", *common)
    assert on.returncode == 0 and off.returncode == 0, on.stderr + off.stderr
    assert "smoothing: strength 0.6, flow none" in on.stdout and "smoothing: off" in off.stdout
    ratios = []
    for out in (on.stdout, off.stdout):
        assert "frame-difference error" in out
        ratios.append(float(re.search(r"output [\d.]+ \(x([\d.]+)\)", out).group(1)))
    assert ratios[0] < ratios[1] / 2
    assert probe(tmp_path / "on.mp4")[0] == 8


def test_cli_smoothing_errors_are_one_line(clip, style, decoder_file, tmp_path):
    common = ["--style", style, "--weights", decoder_file, "--device", "cpu", "--no-progress"]
    bad = run_cli("video", clip, "-o", tmp_path / "o.mp4", "--smooth", "2", *common)
    assert bad.returncode == 2 and bad.stderr.startswith("stylekit: error: smoothing strength must be in [0, 1]")
    both = run_cli("video", clip, "-o", tmp_path / "o.mp4", "--smooth", "0.5", "--no-smooth", *common)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_cli_help_states_the_default_strength():
    from stylekit.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["video"].format_help()
    assert f"default: {SmoothConfig().strength:g}" in " ".join(text.split())


@pytest.mark.parametrize("method", ["adain", "style-swap"])
def test_moving_object_leaves_no_trail_with_the_shipped_networks(method, style):
    """A square moving 2 whole pixels a frame over a still picture, stylized through the
    stabiliser: the warping error along the constructed motion is no worse than frame by
    frame, and where the square has just left, the stylizer got the background there."""
    from stylekit.temporal import Stabilizer, warping_error

    stylizer = stylekit.load(method, device="cpu")
    yy, xx = torch.meshgrid(torch.arange(40.0), torch.arange(56.0), indexing="ij")
    background = torch.stack([0.3 + 0.4 * xx / 55, 0.3 + 0.4 * yy / 39, 0.5 + 0.2 * torch.sin(xx / 3)])
    frames, flows, valid = [], [], []
    for t in range(6):
        f = background.clone()
        f[:, 12:24, 4 + 2 * t : 16 + 2 * t] = torch.tensor([0.95, 0.2, 0.1])[:, None, None]
        frames.append(f)
        if t:
            flow = torch.zeros(2, 40, 56)
            flow[0, 12:24, 4 + 2 * t : 16 + 2 * t] = -2
            flows.append(flow)
            v = torch.ones(1, 40, 56, dtype=torch.bool)
            v[:, 12:24, 4 + 2 * (t - 1) : 4 + 2 * t] = False
            valid.append(v)

    def stylize(x):
        return stylizer.stylize(x, style, size=0, style_size=32).clamp(0, 1)

    off = [stylize(f) for f in frames]
    stabilizer = Stabilizer(SmoothConfig(flow="none"))
    inputs, on = [], []
    for f in frames:
        inputs.append(stabilizer.before(f))
        on.append(stabilizer.after(stylize(inputs[-1])))
    for t in range(1, 6):
        assert warping_error(on[t], on[t - 1], flows[t - 1], valid[t - 1]) <= \
            warping_error(off[t], off[t - 1], flows[t - 1], valid[t - 1]) + 0.5
        # the stylizer saw the uncovered background, not a remembered square
        uncovered = ~valid[t - 1].expand(3, -1, -1)
        assert torch.equal(inputs[t][uncovered], frames[t][uncovered])


def test_flow_dis_runs_and_is_reported(still_clip, style, model, tmp_path):
    pytest.importorskip("cv2", reason="opencv-python-headless is not installed")
    result = stylize_video(still_clip, style, tmp_path / "o.mp4", model=model, size=0, style_size=32, max_frames=4,
                           smooth=SmoothConfig(flow="dis"), progress=False)
    assert result.flow == "dis" and "flow dis" in result.summary() and result.frames == 4


def test_flow_dis_without_opencv_is_a_one_line_error(still_clip, style, model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    with pytest.raises(StylekitError, match=r"optical flow needs OpenCV: pip install 'stylekit\[flow\]'"):
        stylize_video(still_clip, style, tmp_path / "o.mp4", model=model, smooth=SmoothConfig(flow="dis"),
                      progress=False)
    assert not (tmp_path / "o.mp4").exists()


def test_read_frames(clip):
    from stylekit.video import read_frames

    frames, fps = read_frames(clip, size=24, max_frames=3, skip=2)
    assert fps == 12.0 and len(frames) == 3 and frames[0].shape == (3, 24, 24)
    all_frames, _ = read_frames(clip)
    assert len(all_frames) == 8 and torch.allclose(all_frames[2], read_frames(clip, skip=2)[0][0])
    with pytest.raises(StylekitError, match="skip"):
        read_frames(clip, skip=-1)
