"""Image I/O: every odd file users have, read safely; outputs written atomically.

Images become float32 tensors ``(3, H, W)`` in [0, 1]; masks ``(1, H, W)``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import StylekitError
from .files import atomic_write, check_parent

#: Largest image we decode (pixels). Larger declared sizes are refused before
#: decoding, which also defuses decompression bombs.
MAX_PIXELS = 64_000_000
#: Smallest side we accept: the encoder needs a few pixels per side at relu3_1.
MIN_SIDE = 16
#: The longer side images are capped at when no size is asked for: larger images
#: are reduced to it, smaller ones keep their size.
DEFAULT_MAX_SIDE = 512

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise StylekitError(f"file not found: {path}")
    if path.is_dir():
        raise StylekitError(f"expected an image file, got a directory: {path}")
    if path.stat().st_size == 0:
        raise StylekitError(f"empty file: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            try:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise StylekitError(
                        f"{path}: image is {w}x{h} pixels, more than the limit of {MAX_PIXELS:,}"
                    )
                img.seek(0)  # animated images: the first frame
                img.load()
            except BaseException:
                img.close()  # a refused file is closed now, not whenever the garbage collector runs
                raise
    except StylekitError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise StylekitError(f"{path}: image declares a size beyond the decoding limit") from None
    except Image.UnidentifiedImageError:
        raise StylekitError(f"not an image (or an unsupported format): {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise StylekitError(f"cannot decode {path}: {exc}") from None
    return img


def to_rgb(img: Image.Image, what: str = "image") -> Image.Image:
    """RGB with EXIF orientation applied; 16-bit scaled, alpha composited on white."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise StylekitError(f"{what}: floating-point image contains NaN or infinite pixel values")
        img = Image.fromarray(np.clip(arr * (255.0 if arr.max() <= 1 else 1) + 0.5, 0, 255).astype(np.uint8))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def load_pil(path: str | os.PathLike) -> Image.Image:
    path = Path(path)
    img = to_rgb(_open(path), str(path))
    check_size(img.size, str(path))
    return img


def check_size(size: tuple[int, int], what: str) -> None:
    w, h = size
    if min(w, h) < MIN_SIDE:
        raise StylekitError(f"{what}: image is {w}x{h}; both sides must be at least {MIN_SIDE} pixels")


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(to_rgb(img), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise StylekitError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() == 3 and t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    if t.dim() != 3 or t.shape[0] != 3:
        raise StylekitError(f"expected a (3, H, W) image tensor, got {tuple(t.shape)}")
    arr = (t.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def load_mask(path: str | os.PathLike) -> torch.Tensor:
    """A mask file as ``(1, H, W)`` in [0, 1]; white selects."""
    path = Path(path)
    return mask_from_pil(_open(path))


def mask_from_pil(img: Image.Image) -> torch.Tensor:
    """Luminance in [0, 1]; transparent pixels select nothing (white strokes on a
    transparent layer select just the strokes); 16-bit masks are scaled."""
    img = ImageOps.exif_transpose(img)
    alpha = None
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        img = rgba.convert("RGB")
    arr = np.asarray(to_rgb(img).convert("L"), dtype=np.float32) / 255.0
    if alpha is not None:
        arr = arr * alpha
    return torch.from_numpy(arr.copy())[None]


def target_size(size: tuple[int, int], longer_side: int | None) -> tuple[int, int]:
    """(W, H) with the longer side scaled to ``longer_side``, up or down; 0 keeps
    the size; ``None`` caps the longer side at :data:`DEFAULT_MAX_SIDE` (a
    smaller image keeps its size)."""
    w, h = size
    if longer_side is None:
        longer_side = min(max(w, h), DEFAULT_MAX_SIDE)
    if longer_side <= 0 or max(w, h) == longer_side:
        return w, h
    scale = longer_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def resize_longer(img: Image.Image, longer_side: int | None) -> Image.Image:
    size = target_size(img.size, longer_side)
    if size == img.size:
        return img
    return img.resize(size, Image.Resampling.LANCZOS if size[0] < img.size[0] else Image.Resampling.BICUBIC)


def resize_shorter(img: Image.Image, shorter_side: int) -> Image.Image:
    w, h = img.size
    scale = shorter_side / min(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == img.size:
        return img
    return img.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def center_crop_square(img: Image.Image) -> Image.Image:
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s))


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def expand_inputs_with_subdirs(paths, what: str) -> list[tuple[Path, Path]]:
    """Like :func:`expand_inputs`, with each file's folder relative to the
    directory it was found in (``Path(".")`` for files named directly)."""
    out: list[tuple[Path, Path]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if is_image_file(f))
            if not found:
                raise StylekitError(f"{what} directory {p} contains no image files")
            out.extend((f, f.parent.relative_to(p)) for f in found)
        elif p.exists():
            out.append((p, Path(".")))
        else:
            raise StylekitError(f"{what} not found: {p}")
    return out


def expand_inputs(paths, what: str) -> list[Path]:
    """Files stay, directories become their image files (sorted, recursive)."""
    return [f for f, _ in expand_inputs_with_subdirs(paths, what)]


def _format_for(path: Path) -> str:
    ext = path.suffix.lower()
    formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}
    if ext not in formats:
        raise StylekitError(f"unsupported output format {ext or '(none)'!r} for {path}; use .jpg, .png or .webp")
    return formats[ext]


#: The EXIF "Software" tag of every image stylekit writes: how a later run tells
#: its own outputs from the user's pictures in a folder (BMP has no such tag).
SOFTWARE = "stylekit"
_EXIF_SOFTWARE = 0x0131


def save_image(img: Image.Image | torch.Tensor, path: str | os.PathLike, quality: int = 95) -> Path:
    path = Path(path)
    fmt = _format_for(path)
    img = tensor_to_pil(img) if isinstance(img, torch.Tensor) else to_rgb(img)
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if fmt != "BMP":
        exif = Image.Exif()
        exif[_EXIF_SOFTWARE] = SOFTWARE
        options["exif"] = exif
    return atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **options))


def written_by_stylekit(path: str | os.PathLike) -> bool:
    """Whether an image file carries the tag :func:`save_image` writes (only its header is read)."""
    try:
        with Image.open(path) as img:
            return str(img.getexif().get(_EXIF_SOFTWARE, "")).startswith(SOFTWARE)
    except Exception:  # not an image, unreadable: not ours; reading it later says what is wrong
        return False


def check_output_path(path: str | os.PathLike) -> Path:
    """Fail before any work if the output cannot be written."""
    path = Path(path)
    _format_for(path)
    if path.is_dir():
        raise StylekitError(f"output path is a directory: {path}")
    check_parent(path)
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: equal once links are resolved, or the
    same inode (a hard link)."""
    a, b = Path(a), Path(b)
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_not_an_input(output: str | os.PathLike, inputs) -> None:
    """Refuse an output that is (or links to) one of the inputs: writing it
    would destroy the user's file. ``inputs``: ``(what, path)`` pairs."""
    for what, path in inputs:
        if isinstance(path, (str, os.PathLike)) and same_file(output, path):
            where = "" if Path(path) == Path(output) else f" ({path})"
            raise StylekitError(f"the output {output} is the {what}{where}; stylekit never overwrites its inputs: "
                                "choose another output name")


def image_grid(rows: list[list[torch.Tensor]], pad: int = 2) -> torch.Tensor:
    """Tile ``(3, H, W)`` images (each row may mix sizes) on a white canvas."""
    heights = [max(img.shape[1] for img in row) for row in rows]
    widths = [sum(img.shape[2] for img in row) + pad * (len(row) - 1) for row in rows]
    canvas = torch.ones(3, sum(heights) + pad * (len(rows) - 1), max(widths))
    top = 0
    for row, h in zip(rows, heights):
        left = 0
        for img in row:
            canvas[:, top : top + img.shape[1], left : left + img.shape[2]] = img.detach().float().clamp(0, 1).cpu()
            left += img.shape[2] + pad
        top += h + pad
    return canvas
