"""Video stylization, frame by frame, with imageio's ffmpeg plugin.

Needs the ``[video]`` extra (``pip install 'stylekit[video]'``: imageio and
imageio-ffmpeg, whose wheel carries an ffmpeg binary).

The style images are decoded and resized once; the stylizer's feature cache
then serves their statistics to every frame, so only the frames go through
the encoder. The temporal stabiliser (:mod:`stylekit.temporal`, on by default;
``smooth=0`` is plain frame-by-frame stylization) works on each frame before
the stylizer and after it, and the measures of temporal consistency are taken
on the frames as written. The output keeps the input's frame rate, has no audio, and
is written to a temporary file beside it and renamed at the end.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .errors import StylekitError, plural
from .images import check_not_an_input
from .pipeline import ImageLike, Stylizer, StylizeOptions, fit, to_tensor_image
from .temporal import FrameMeter, SmoothConfig, Stabilizer, flicker_ratio

#: output containers we write (ffmpeg picks the muxer from the extension)
VIDEO_SUFFIXES = {".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264", ".avi": "mpeg4", ".webm": "libvpx-vp9"}


@dataclass
class VideoResult:
    """What :func:`stylize_video` did, with its measures of temporal consistency
    (:mod:`stylekit.temporal`), taken on the frames as written:

    * flicker: the mean absolute change between consecutive frames, in 0-255
      grey levels, of the input (at the stylized size) and of the output; a
      stylization that flickers raises the output's, ``flicker_ratio`` is
      output over input;
    * ``frame_difference_error``: ``mean |(O_t - O_{t-1}) - (I_t - I_{t-1})|``
      in grey levels, the output's change that the input's does not explain;
    * ``feature_difference_error``: the same on the relu features of
      ``feature_layer`` (None unless asked for: it costs an encoder pass a frame).

    ``smooth`` is the stabiliser's strength (0: off) and ``flow`` the motion it
    followed (``dis`` or ``none``)."""

    output: Path
    frames: int
    fps: float
    size: tuple[int, int]
    input_flicker: float
    output_flicker: float
    seconds: float
    frame_difference_error: float = 0.0
    smooth: float = 0.0
    flow: str = "none"
    feature_layer: str | None = None
    feature_difference_error: float | None = None

    @property
    def flicker_ratio(self) -> float:
        return flicker_ratio(self.input_flicker, self.output_flicker)

    def summary(self) -> str:
        ratio = f" (x{self.flicker_ratio:.2f})" if math.isfinite(self.flicker_ratio) else ""
        smoothing = f"strength {self.smooth:g}, flow {self.flow}" if self.smooth > 0 else "off"
        lines = [
            f"{plural(self.frames, 'frame')} at {self.fps:g} fps, {self.size[0]}x{self.size[1]}, in {self.seconds:.1f} s "
            f"({self.frames / max(self.seconds, 1e-9):.2f} frames/s) -> {self.output}",
            f"smoothing: {smoothing}",
            f"flicker (mean |frame - previous frame|, 0-255): input {self.input_flicker:.2f}, "
            f"output {self.output_flicker:.2f}{ratio}",
            f"frame-difference error (mean |output change - input change|, 0-255): {self.frame_difference_error:.2f}",
        ]
        if self.feature_difference_error is not None:
            lines.append(f"frame-difference error in {self.feature_layer} features: {self.feature_difference_error:.4f}")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["output"] = str(self.output)
        return d


def _imageio():
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (the plugin's binary)
    except ImportError:
        raise StylekitError("video needs imageio and its ffmpeg plugin: pip install 'stylekit[video]'") from None
    return imageio


def check_video_output(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise StylekitError(
            f"unsupported video format {path.suffix or '(none)'!r} for {path}; use {', '.join(sorted(VIDEO_SUFFIXES))}"
        )
    if path.is_dir():
        raise StylekitError(f"output path is a directory: {path}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise StylekitError(f"cannot write {path}: {parent} is a file, not a directory")
            break
    return path


def _open_reader(imageio, path: Path):
    if not path.exists():
        raise StylekitError(f"file not found: {path}")
    if path.is_dir():
        raise StylekitError(f"expected a video file, got a directory: {path}")
    try:
        reader = imageio.get_reader(path, format="FFMPEG")
        meta = reader.get_meta_data()
    except Exception as exc:  # imageio / ffmpeg say "could not find a backend", "invalid data", ...
        raise StylekitError(f"cannot read video {path}: {_first_line(exc)}") from None
    fps = meta.get("fps")
    if not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        reader.close()
        raise StylekitError(f"{path}: the video declares no usable frame rate ({fps!r})")
    return reader, float(fps), meta


def _frame_count(reader, meta) -> int | None:
    n = meta.get("nframes")
    if isinstance(n, (int, float)) and math.isfinite(n) and n > 0:
        return int(n)
    try:
        return int(reader.count_frames())
    except Exception:
        return None


def _even(t: torch.Tensor) -> torch.Tensor:
    """Pad (3, H, W) by one edge row/column where a side is odd (yuv420p needs even sides)."""
    h, w = t.shape[-2:]
    ph, pw = h % 2, w % 2
    if ph or pw:
        t = torch.nn.functional.pad(t[None], (0, pw, 0, ph), mode="replicate")[0]
    return t


def stylize_video(
    input: str | os.PathLike,
    styles: ImageLike | Sequence[ImageLike],
    output: str | os.PathLike,
    *,
    model: Stylizer | None = None,
    method: str = "adain",
    alpha: float = 1.0,
    style_weights: Sequence[float] | None = None,
    preserve_color: str = "none",
    size: int | None = None,
    style_size: int | None = None,
    device: str = "auto",
    weights=None,
    encoder_weights=None,
    transform_weights=None,
    quality: float = 8,
    max_frames: int | None = None,
    progress: bool = True,
    on_frame: Callable[[int], None] | None = None,
    smooth: SmoothConfig | float = SmoothConfig(),
    feature_layer: str | None = None,
) -> VideoResult:
    """Stylize every frame of ``input`` and write ``output`` (same fps, no audio).

    ``model`` is a ready stylizer (else ``stylekit.load(method, ...)`` once,
    with ``transform_weights`` for adain: :meth:`stylekit.adain.model.AdaINStylizer.load`);
    ``size`` is the frames' longer side, up or down (0: unchanged; the default
    ``None``: reduced to 512 if larger, else unchanged; an odd side is padded by
    one pixel for the codec); ``style_size`` likewise for the styles. ``smooth``
    is the temporal stabiliser's :class:`~stylekit.temporal.SmoothConfig`, or
    just its strength in [0, 1] (0: off, every frame stylized on its own).
    ``feature_layer`` (e.g. ``"relu2_1"``) also measures the frame-difference
    error in that layer's features. Returns a :class:`VideoResult` with the
    measures, which are also what :meth:`VideoResult.summary` prints.
    """
    imageio = _imageio()
    output = check_video_output(output)
    input = Path(input)
    smooth = smooth_config(smooth)
    stabilizer = Stabilizer(smooth)
    meter = FrameMeter(features=_feature_fn(feature_layer, encoder_weights) if feature_layer else None)
    options = StylizeOptions(
        alpha=alpha, style_weights=tuple(style_weights) if style_weights is not None else None,
        preserve_color=preserve_color, size=size, style_size=style_size,
    )
    if isinstance(styles, (str, os.PathLike, torch.Tensor)) or not isinstance(styles, Sequence):
        styles = [styles]
    if not styles:
        raise StylekitError("at least one style image is needed")
    options.normalised_weights(len(styles))
    check_not_an_input(output, [("input video", input), *(("style image", style) for style in styles)])
    if max_frames is not None and max_frames < 1:
        raise StylekitError(f"max_frames must be at least 1, got {max_frames}")
    if transform_weights is not None and (model is not None or method != "adain"):
        raise StylekitError("a transform applies only to method adain loaded here (not to a ready model)")
    # the styles once: decoded and resized here, their features cached by the stylizer after frame 1
    style_ts = [fit(to_tensor_image(s, f"style {i}")[0], options.style_size, False) for i, s in enumerate(styles, 1)]
    reader, fps, meta = _open_reader(imageio, input)
    if model is None:
        from .api import load

        try:
            extra = {} if transform_weights is None else {"transform_weights": transform_weights}
            model = load(method, device=device, weights=weights, encoder_weights=encoder_weights, **extra)
        except BaseException:
            reader.close()
            raise
    total = _frame_count(reader, meta)
    if max_frames is not None:
        total = min(total, max_frames) if total else max_frames

    from tqdm import tqdm

    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=output.parent, prefix=f".{output.stem}.", suffix=output.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    start = time.perf_counter()
    frames = 0
    out_size = (0, 0)
    writer = None
    bar = tqdm(total=total, disable=not progress, unit="frame", dynamic_ncols=True, file=sys.stderr)
    try:
        writer = _io(lambda: imageio.get_writer(
            tmp, format="FFMPEG", mode="I", fps=fps, codec=VIDEO_SUFFIXES[output.suffix.lower()],
            quality=quality, macro_block_size=1, pixelformat="yuv420p", ffmpeg_log_level="error",
        ), f"cannot write {output}")
        for content in iter_frames(reader, input, options.size, max_frames):
            result = model.stylize(
                stabilizer.before(content), style_ts, alpha=options.alpha, style_weights=options.style_weights,
                preserve_color=options.preserve_color, size=0, style_size=0,
            )
            result = stabilizer.after(result.clamp(0, 1))
            content, result = _even(content), _even(result)
            out_u8 = to_u8(result)
            meter.add(to_u8(content).float().div_(255.0), out_u8.float().div_(255.0))
            frame_out = out_u8.permute(1, 2, 0).contiguous().numpy()
            _io(lambda: writer.append_data(frame_out), f"cannot write {output}")
            out_size = (out_u8.shape[2], out_u8.shape[1])
            frames += 1
            bar.update(1)
            if on_frame is not None:
                on_frame(frames)
        if frames == 0:
            raise StylekitError(f"{input}: the video has no frames")
        _io(writer.close, f"cannot write {output}")
        writer = None
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, output)
    finally:
        bar.close()
        reader.close()
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass
        tmp.unlink(missing_ok=True)
    measures = meter.result()
    return VideoResult(
        output=output, frames=frames, fps=fps, size=out_size,
        input_flicker=measures.input_flicker, output_flicker=measures.output_flicker,
        seconds=time.perf_counter() - start, frame_difference_error=measures.frame_difference_error,
        smooth=smooth.strength, flow=stabilizer.flow,
        feature_layer=feature_layer, feature_difference_error=measures.feature_difference_error,
    )


def smooth_config(smooth: SmoothConfig | float, flow: str | None = None) -> SmoothConfig:
    """A :class:`SmoothConfig` from itself or from one strength in [0, 1], which
    sets both halves of the stabiliser (0: off); ``flow`` overrides its flow."""
    if not isinstance(smooth, SmoothConfig):
        if isinstance(smooth, bool) or not isinstance(smooth, (int, float)):
            raise StylekitError(f"smooth must be a strength in [0, 1] or a SmoothConfig, got {smooth!r}")
        smooth = SmoothConfig(strength=float(smooth), input_strength=float(smooth))
    return smooth if flow is None else replace(smooth, flow=flow)


def to_u8(frame: torch.Tensor) -> torch.Tensor:
    """A [0, 1] float frame as the 8-bit frame the codec gets (rounded, clamped)."""
    return (frame.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)


def _feature_fn(layer: str, encoder_weights):
    from .encoder import check_layer_name
    from .weights import load_encoder

    if check_layer_name(layer).kind != "relu":
        raise StylekitError(f"feature_layer must be a relu layer (e.g. relu2_1), got {layer!r}")
    encoder = load_encoder(encoder_weights, last_layer=layer)

    def features(frame: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return encoder.encode(frame[None], layer)[0]

    return features


def iter_frames(reader, path: Path, size: int, max_frames: int | None = None):
    """The reader's frames as (3, H, W) float tensors in [0, 1], longer side
    ``size`` (0: unchanged)."""
    for frame in _frames(reader, path, max_frames):
        arr = np.asarray(frame)
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, -1)
        content = torch.from_numpy(np.ascontiguousarray(arr[..., :3])).permute(2, 0, 1).float().div_(255.0)
        yield fit(content, size, False)


def read_frames(
    path: str | os.PathLike, size: int = 0, max_frames: int | None = None, skip: int = 0
) -> tuple[list[torch.Tensor], float]:
    """A video's frames (after ``skip`` frames, at most ``max_frames``) as
    :func:`iter_frames` gives them, and its frame rate."""
    if skip < 0 or (max_frames is not None and max_frames < 1):
        raise StylekitError(f"need skip >= 0 and max_frames >= 1, got {skip} and {max_frames}")
    imageio = _imageio()
    path = Path(path)
    reader, fps, _ = _open_reader(imageio, path)
    try:
        frames = list(iter_frames(reader, path, size, None if max_frames is None else max_frames + skip))
    finally:
        reader.close()
    return frames[skip:], fps


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _io(fn, what: str):
    """Run a reader/writer call; its errors (ffmpeg, codec, disk) become one-line StylekitErrors."""
    try:
        return fn()
    except StylekitError:
        raise
    except Exception as exc:
        raise StylekitError(f"{what}: {_first_line(exc)}") from None


def _frames(reader, path: Path, max_frames: int | None):
    """The reader's frames; a decoding error names the frame."""
    index = 0
    iterator = iter(reader)
    while max_frames is None or index < max_frames:
        try:
            frame = next(iterator)
        except StopIteration:
            return
        except Exception as exc:
            raise StylekitError(f"cannot decode frame {index + 1} of {path}: {_first_line(exc)}") from None
        yield frame
        index += 1


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = ["VideoResult", "stylize_video", "check_video_output", "read_frames", "smooth_config", "VIDEO_SUFFIXES"]
