"""``stylekit video`` / :func:`stylekit.video.stylize_video` on tiny generated
clips (8 frames of 48x48 moving gradient), with the seeded test decoder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

imageio = pytest.importorskip("imageio.v2", reason="the [video] extra is not installed")
pytest.importorskip("imageio_ffmpeg", reason="the [video] extra is not installed")

import stylekit  # noqa: E402
from stylekit.cli import main  # noqa: E402
from stylekit.errors import StylekitError  # noqa: E402
from stylekit.video import VideoResult, stylize_video  # noqa: E402

from .conftest import make_image  # noqa: E402



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


def test_cli_errors_are_one_line(clip, style, decoder_file, tmp_path, capsys):
    code = main(["video", str(tmp_path / "nope.mp4"), "--style", str(style), "-o", str(tmp_path / "o.mp4"),
                 "--weights", str(decoder_file)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("stylekit: error: file not found") and "Traceback" not in err
