"""The image I/O layer (:mod:`stylekit.images`): odd inputs, refusals, atomic writes.

Every odd input is generated in ``tmp_path`` with Pillow/numpy; nothing binary
is committed. A user-input problem must surface as :class:`StylekitError`
(one line), never as another exception type.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ..conftest import make_image
from stylekit import images
from stylekit.errors import StylekitError
from stylekit.images import (
    check_output_path,
    expand_inputs,
    image_grid,
    load_mask,
    load_pil,
    pil_to_tensor,
    resize_longer,
    save_image,
    target_size,
    tensor_to_pil,
)


def loaded(path) -> np.ndarray:
    img = load_pil(path)
    assert img.mode == "RGB"
    return np.asarray(img)


def raises_one_line(fn, *args, match: str | None = None) -> StylekitError:
    """``fn(*args)`` must raise exactly StylekitError with a one-line message."""
    with pytest.raises(StylekitError, match=match) as info:
        fn(*args)
    assert type(info.value) is StylekitError
    assert "\n" not in str(info.value)
    return info.value


# ---------------------------------------------------------------------------
# odd but valid inputs
# ---------------------------------------------------------------------------


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64).round().astype(np.uint16)
    arr = np.tile(ramp, (20, 1))
    arr[:, 10] = 32768  # mid grey: 32768 / 65535 * 255 = 127.5... -> 128
    arr[:, 11] = 1000  # naive clipping to 8 bit would give 255, >> 8 gives 3
    path = tmp_path / "gray16.png"
    Image.fromarray(arr).save(path)
    assert Image.open(path).mode == "I;16"  # the case under test really is 16-bit

    out = loaded(path)
    assert out.shape == (20, 64, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    assert out[0, 0, 0] == 0
    assert out[0, -1, 0] == 255
    assert out[5, 10, 0] == 128
    assert out[5, 11, 0] == 4  # 1000 / 65535 * 255 = 3.89
    expected = np.floor(arr / 65535.0 * 255.0 + 0.5)
    assert np.abs(out[..., 0].astype(int) - expected).max() <= 1


def test_16bit_dark_png_stays_dark(tmp_path):
    path = tmp_path / "dark16.png"
    Image.fromarray(np.full((20, 20), 200, np.uint16)).save(path)
    assert loaded(path)[3, 3, 0] == 1  # 200 / 65535 * 255 = 0.78, not 200


def test_load_mask_scales_16bit_masks(tmp_path):
    """A 16-bit mask must be read like a 16-bit image: 32768 of 65535 is half."""
    arr = np.zeros((20, 20), np.uint16)
    arr[:, 10:] = 32768
    arr[:, 15:] = 65535
    path = tmp_path / "mask16.png"
    Image.fromarray(arr).save(path)
    mask = load_mask(path)
    assert mask.shape == (1, 20, 20)
    assert float(mask[0, 0, 0]) == 0.0
    assert float(mask[0, 0, -1]) == pytest.approx(1.0, abs=1e-6)
    assert float(mask[0, 0, 12]) == pytest.approx(0.5, abs=0.01)


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(path, quality=95)  # pure red in CMYK
    assert Image.open(path).mode == "CMYK"
    out = loaded(path).astype(int)
    assert out.shape == (24, 32, 3)
    assert np.abs(out[10, 10] - [255, 0, 0]).max() <= 10


def test_palette_png_transparency_becomes_white(tmp_path):
    img = Image.new("P", (32, 20), 0)
    img.putpalette([0, 0, 0, 0, 0, 255] + [0] * (254 * 3))  # 0: black, 1: blue
    img.paste(1, (16, 0, 32, 20))
    path = tmp_path / "palette.png"
    img.save(path, transparency=0)
    reopened = Image.open(path)
    assert reopened.mode == "P" and "transparency" in reopened.info

    out = loaded(path)
    assert out[5, 3].tolist() == [255, 255, 255]  # transparent black -> white
    assert out[5, 20].tolist() == [0, 0, 255]  # opaque blue stays


def test_rgba_is_composited_on_white(tmp_path):
    arr = np.zeros((20, 30, 4), np.uint8)
    arr[:, :10] = (255, 0, 0, 0)  # transparent red
    arr[:, 10:20] = (0, 255, 0, 255)  # opaque green
    arr[:, 20:] = (0, 0, 0, 128)  # half-transparent black
    path = tmp_path / "rgba.png"
    Image.fromarray(arr, "RGBA").save(path)
    out = loaded(path).astype(int)
    assert out[5, 5].tolist() == [255, 255, 255]
    assert out[5, 15].tolist() == [0, 255, 0]
    assert np.abs(out[5, 25] - 127).max() <= 1


def test_la_is_composited_on_white(tmp_path):
    arr = np.zeros((20, 20, 2), np.uint8)
    arr[:, :10] = (0, 0)  # transparent black
    arr[:, 10:] = (60, 255)  # opaque grey
    path = tmp_path / "la.png"
    Image.fromarray(arr, "LA").save(path)
    assert Image.open(path).mode == "LA"
    out = loaded(path)
    assert out[5, 5].tolist() == [255, 255, 255]
    assert out[5, 15].tolist() == [60, 60, 60]


def test_grayscale_l(tmp_path):
    path = tmp_path / "gray.png"
    Image.new("L", (20, 18), 77).save(path)
    out = loaded(path)
    assert out.shape == (18, 20, 3)
    assert (out == 77).all()


def test_bilevel_image(tmp_path):
    img = Image.new("1", (20, 20), 0)
    img.paste(1, (10, 0, 20, 20))
    path = tmp_path / "bw.png"
    img.save(path)
    out = loaded(path)
    assert out[3, 3].tolist() == [0, 0, 0] and out[3, 15].tolist() == [255, 255, 255]


def test_animated_gif_uses_first_frame(tmp_path):
    colours = [(0, 0, 255), (255, 0, 0), (0, 255, 0)]
    frames = [Image.new("RGB", (32, 24), c) for c in colours]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 3

    out = loaded(path)
    assert out.shape == (24, 32, 3)
    assert (out == (0, 0, 255)).all(axis=-1).all()


@pytest.mark.parametrize(
    "orientation, marked_corner",
    [(6, "top_right"), (8, "bottom_left"), (3, "bottom_right")],
)
def test_exif_orientation_is_applied(tmp_path, orientation, marked_corner):
    # Stored 48 wide x 32 high, black, with a red block in the stored top-left corner.
    arr = np.zeros((32, 48, 3), np.uint8)
    arr[:8, :8] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"rot{orientation}.jpg"
    Image.fromarray(arr).save(path, exif=exif.tobytes(), quality=95)

    out = loaded(path).astype(int)
    h, w = out.shape[:2]
    assert (w, h) == ((48, 32) if orientation == 3 else (32, 48))  # 6 and 8 swap the sides
    corners = {
        "top_left": out[2, 2],
        "top_right": out[2, w - 3],
        "bottom_left": out[h - 3, 2],
        "bottom_right": out[h - 3, w - 3],
    }
    for name, pixel in corners.items():
        if name == marked_corner:
            assert np.abs(pixel - [255, 0, 0]).max() <= 12, (name, pixel)
        else:
            assert pixel.max() <= 12, (name, pixel)
    # masks follow the same orientation as the images they go with
    assert tuple(load_mask(path).shape) == (1, h, w)


def test_float_and_int_pil_modes_are_scaled():
    f = Image.fromarray(np.full((20, 20), 0.5, np.float32))
    assert f.mode == "F"
    assert pil_to_tensor(f)[:, 3, 3].tolist() == pytest.approx([128 / 255] * 3)
    i = Image.fromarray(np.full((20, 20), 65535, np.int32))
    assert i.mode == "I"
    assert pil_to_tensor(i)[:, 3, 3].tolist() == pytest.approx([1.0] * 3)


def test_minimum_side_boundary_is_accepted(tmp_path):
    path = make_image(tmp_path / "16.png", (16, 16))
    assert load_pil(path).size == (16, 16)


# ---------------------------------------------------------------------------
# refusals: always StylekitError
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (1, 10000), (10000, 1), (15, 100)])
def test_too_small_images_are_refused(tmp_path, size):
    path = tmp_path / "small.png"
    Image.new("RGB", size, (10, 20, 30)).save(path)
    err = raises_one_line(load_pil, path, match="at least 16")
    assert f"{size[0]}x{size[1]}" in str(err)


def _real_bytes(tmp_path, ext: str) -> bytes:
    return make_image(tmp_path / f"real.{ext}", (64, 48), seed=5).read_bytes()


def _bad_file(tmp_path: Path, kind: str) -> Path:
    if kind == "empty":
        p = tmp_path / "empty.png"
        p.write_bytes(b"")
    elif kind == "text_as_jpg":
        p = tmp_path / "notes.jpg"
        p.write_text("this is not a picture\n" * 20)
    elif kind in ("truncated_jpg", "truncated_png", "truncated_gif"):
        ext = kind.split("_")[1]
        data = _real_bytes(tmp_path, ext)
        p = tmp_path / f"half.{ext}"
        p.write_bytes(data[: len(data) // 2])
    elif kind == "directory":
        p = tmp_path / "folder.png"
        p.mkdir()
    elif kind == "missing":
        p = tmp_path / "nope.png"
    else:
        raise AssertionError(kind)
    return p


BAD_FILES = {
    "empty": "empty file",
    "text_as_jpg": "not an image",
    "truncated_jpg": "cannot decode",
    "truncated_png": "cannot decode",
    "truncated_gif": "cannot decode",
    "directory": "directory",
    "missing": "not found",
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_files_are_refused(tmp_path, kind):
    path = _bad_file(tmp_path, kind)
    raises_one_line(load_pil, path, match=BAD_FILES[kind])
    raises_one_line(load_mask, path, match=BAD_FILES[kind])


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning", "ignore:Truncated File Read:UserWarning")
@pytest.mark.parametrize("ext", ["png", "jpg", "gif", "bmp", "webp", "tif"])
def test_truncation_anywhere_gives_stylekit_error(tmp_path, ext):
    data = _real_bytes(tmp_path, ext)
    cuts = sorted({1, 4, 8, 12, 16, 24, 33, 40, 60, 100, len(data) // 3, len(data) // 2, len(data) - 40})
    path = tmp_path / f"cut.{ext}"
    for n in cuts:
        path.write_bytes(data[:n])
        try:
            load_pil(path)
        except StylekitError as exc:
            assert "\n" not in str(exc)
        # any other exception type fails the test with its traceback


def _png_with_declared_size(tmp_path: Path, width: int, height: int) -> Path:
    data = bytearray(make_image(tmp_path / "small.png", (32, 32)).read_bytes())
    assert data[12:16] == b"IHDR"
    chunk = bytearray(data[12:29])  # b"IHDR" + 13 data bytes
    chunk[4:12] = struct.pack(">II", width, height)
    data[12:29] = chunk
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(chunk)))
    path = tmp_path / "bomb.png"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    "width, height, match",
    [
        (9000, 9000, "limit"),  # above MAX_PIXELS, below Pillow's own bomb limit
        (100_000, 100_000, "limit"),  # above Pillow's DecompressionBombError limit
        (2**31 - 1, 2**31 - 1, "limit"),
        (70_000, 1_000, "limit"),
    ],
)
def test_decompression_bomb_header_is_refused(tmp_path, width, height, match):
    path = _png_with_declared_size(tmp_path, width, height)
    try:
        with Image.open(path) as img:
            assert img.size == (width, height)  # the patched header is what Pillow sees
    except Image.DecompressionBombError:
        pass  # Pillow itself refuses this size on open
    raises_one_line(load_pil, path, match=match)
    raises_one_line(load_mask, path, match=match)


def test_max_pixels_is_enforced(tmp_path, monkeypatch):
    big = make_image(tmp_path / "big.png", (40, 30))  # 1200 pixels
    ok = make_image(tmp_path / "ok.png", (30, 30))  # 900 pixels
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    raises_one_line(load_pil, big, match="limit of 1,000")
    assert load_pil(ok).size == (30, 30)


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------


def test_save_image_roundtrip_png(tmp_path):
    t = torch.rand(3, 20, 30)
    path = save_image(t, tmp_path / "out" / "x.png")  # creates the parent directory
    assert path == tmp_path / "out" / "x.png"
    back = pil_to_tensor(Image.open(path))
    assert back.shape == (3, 20, 30)
    assert (back - t).abs().max() <= 0.5 / 255 + 1e-6
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.png"]  # no temp file left


@pytest.mark.parametrize("name", ["x.jpg", "x.JPEG", "x.webp", "x.bmp", "x.tif"])
def test_save_image_formats(tmp_path, name):
    path = save_image(tensor_to_pil(torch.rand(3, 20, 30)), tmp_path / name)
    with Image.open(path) as img:
        assert img.size == (30, 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


class _DiskFull(OSError):
    pass


def _failing_save(self, fp, format=None, **kwargs):
    Path(fp).write_bytes(b"\x89PNG half written")
    raise _DiskFull("no space left on device")


def test_save_image_is_atomic_on_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(Image.Image, "save", _failing_save)
    target = tmp_path / "out.png"
    with pytest.raises(_DiskFull):
        save_image(torch.rand(3, 20, 20), target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # no temp file left behind


def test_save_image_failure_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    save_image(torch.zeros(3, 20, 20), target)
    before = target.read_bytes()
    monkeypatch.setattr(Image.Image, "save", _failing_save)
    with pytest.raises(_DiskFull):
        save_image(torch.ones(3, 20, 20), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


@pytest.mark.parametrize("name", ["out.xyz", "out", "out.gif", "out.jpg.txt"])
def test_unsupported_output_extension(tmp_path, name):
    raises_one_line(save_image, torch.rand(3, 20, 20), tmp_path / name, match="unsupported output format")
    raises_one_line(check_output_path, tmp_path / name, match="unsupported output format")
    assert list(tmp_path.iterdir()) == []


def test_check_output_path_refuses_a_directory(tmp_path):
    (tmp_path / "taken.png").mkdir()
    raises_one_line(check_output_path, tmp_path / "taken.png", match="directory")
    assert check_output_path(tmp_path / "fine.png") == tmp_path / "fine.png"


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA"])
def test_save_image_of_pil_image_any_mode_to_jpeg(tmp_path, mode):
    """save_image takes PIL images: a mode JPEG cannot hold must be converted or
    refused with StylekitError, not crash with Pillow's OSError."""
    img = Image.new(mode, (20, 20))
    target = tmp_path / "x.jpg"
    try:
        save_image(img, target)
    except StylekitError:
        assert not target.exists()
    else:
        assert load_pil(target).size == (20, 20)
    assert [p for p in tmp_path.iterdir() if p.name != "x.jpg"] == []


def test_save_image_parent_is_a_file(tmp_path):
    """An output path through a regular file is a user error: StylekitError."""
    (tmp_path / "file.txt").write_text("x")
    raises_one_line(save_image, torch.rand(3, 20, 20), tmp_path / "file.txt" / "out.png")


# ---------------------------------------------------------------------------
# expand_inputs, sizes, grid
# ---------------------------------------------------------------------------


def test_expand_inputs_directory_sorted_recursive(tmp_path):
    root = tmp_path / "in"
    for rel in ["b.png", "a.jpg", "sub/c.PNG", "sub/deeper/d.webp"]:
        make_image(root / rel, (20, 20))
    (root / "notes.txt").write_text("x")
    (root / "sub" / "readme.md").write_text("x")
    (root / "emptydir").mkdir()
    expected = [root / "a.jpg", root / "b.png", root / "sub" / "c.PNG", root / "sub" / "deeper" / "d.webp"]
    assert expand_inputs([root], "content") == expected
    assert expand_inputs([str(root)], "content") == expected  # strings work too

    single = make_image(tmp_path / "z.png", (20, 20))
    assert expand_inputs([single, root], "style") == [single, *expected]  # files stay, in order


def test_expand_inputs_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    raises_one_line(expand_inputs, [empty], "content", match="content directory .* contains no image files")
    only_text = tmp_path / "text"
    only_text.mkdir()
    (only_text / "a.txt").write_text("x")
    raises_one_line(expand_inputs, [only_text], "style", match="no image files")
    raises_one_line(expand_inputs, [tmp_path / "missing.png"], "style", match="style not found")


@pytest.mark.parametrize(
    "size, longer, expected",
    [
        ((80, 60), 64, (64, 48)),
        ((60, 80), 64, (48, 64)),
        ((100, 100), 50, (50, 50)),
        ((32, 16), 64, (64, 32)),  # upscaling
        ((90, 50), 64, (64, 36)),  # 50 * 64 / 90 = 35.56
        ((1000, 3), 100, (100, 1)),  # never 0
        ((80, 60), 0, (80, 60)),  # 0 keeps the size
        ((80, 60), 80, (80, 60)),
        ((81, 61), -1, (81, 61)),
    ],
)
def test_target_size(size, longer, expected):
    assert target_size(size, longer) == expected


def test_resize_longer():
    img = Image.new("RGB", (80, 60), (1, 2, 3))
    assert resize_longer(img, 64).size == (64, 48)
    assert resize_longer(img, 160).size == (160, 120)
    assert resize_longer(img, 0) is img
    assert resize_longer(img, 80) is img
    assert np.asarray(resize_longer(img, 40))[10, 10].tolist() == [1, 2, 3]


def test_image_grid_shape_and_layout():
    a = torch.zeros(3, 10, 20)
    b = torch.full((3, 12, 8), 0.5)
    c = torch.full((3, 5, 5), 0.25)
    grid = image_grid([[a, b], [c]], pad=2)
    # heights 12 + 5 + one pad; widths max(20 + 2 + 8, 5)
    assert grid.shape == (3, 19, 30)
    assert (grid[:, :10, :20] == 0).all()
    assert (grid[:, 10:12, :20] == 1).all()  # below the shorter image: white
    assert (grid[:, :, 20:22] == 1)[:, :12].all()  # the pad between a and b
    assert (grid[:, :12, 22:30] == 0.5).all()
    assert (grid[:, 12:14] == 1).all()  # the pad between the rows
    assert (grid[:, 14:19, :5] == 0.25).all()
    assert (grid[:, 14:19, 5:] == 1).all()
    assert float(image_grid([[torch.full((3, 4, 4), 2.0)]]).max()) == 1.0  # clamped
    assert image_grid([[a]], pad=4).shape == (3, 10, 20)
    assert image_grid([[a], [a]], pad=4).shape == (3, 24, 20)


def test_tensor_pil_roundtrip():
    t = torch.rand(3, 17, 23)
    img = tensor_to_pil(t)
    assert img.mode == "RGB" and img.size == (23, 17)
    back = pil_to_tensor(img)
    assert back.dtype == torch.float32 and back.shape == (3, 17, 23)
    assert (back - t).abs().max() <= 0.5 / 255 + 1e-6
    assert tensor_to_pil(t[None]).size == (23, 17)
    raises_one_line(tensor_to_pil, torch.rand(2, 3, 17, 23), match="batch")
