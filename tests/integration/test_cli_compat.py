"""Out of the box and compatible with the official AdaIN, through the real
``stylekit`` process: the README's first command offline with nothing set up,
sizes that never enlarge unasked, the official mask conventions, comma weights,
batch counts."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from ..conftest import REPO, make_image, pixels, run_stylekit as stylekit


def test_readme_first_command_offline_on_a_fresh_machine(tmp_path):
    """No STYLEKIT_WEIGHTS, an empty cache, downloads forbidden: the shipped encoder and decoder do it."""
    assert "STYLEKIT_WEIGHTS" not in os.environ  # the tests' conftest drops it
    proc = stylekit("stylize", "examples/chelsea.jpg", "--style", "examples/swirls.jpg", "-o",
                    tmp_path / "chelsea_swirls.jpg", cwd=REPO,
                    env={"XDG_CACHE_HOME": str(tmp_path / "empty_cache"), "HOME": str(tmp_path), "STYLEKIT_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "chelsea_swirls.jpg") as out, Image.open(REPO / "examples" / "chelsea.jpg") as src:
        assert out.size == src.size  # 451x300: under 512, kept
    assert not (tmp_path / "empty_cache").exists()  # nothing downloaded or cached


@pytest.mark.parametrize("size, flags, expected", [
    ((40, 30), [], (40, 30)),  # small: kept
    ((700, 350), [], (512, 256)),  # large: reduced to 512
    ((40, 30), ["--size", "64"], (64, 48)),  # asked for: enlarged
    ((700, 350), ["--size", "0"], (700, 350)),  # 0: the original size
])
def test_sizes_cap_by_default_and_obey_when_asked(tmp_path, size, flags, expected):
    content = make_image(tmp_path / "c.png", size, seed=1)
    style = make_image(tmp_path / "s.png", (48, 48), seed=2)
    proc = stylekit("stylize", content, "--style", style, "-o", tmp_path / "out.png", *flags)
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "out.png") as img:
        assert img.size == expected


def test_style_size_default_keeps_a_small_style(tmp_path):
    """The style's own scale decides the strokes: a 48 px style stylized at its size by default
    is the same picture as with --style-size 48, and not the one enlarged to 512."""
    content = make_image(tmp_path / "c.png", (64, 48), seed=1)
    style = make_image(tmp_path / "s.png", (48, 48), seed=2)
    outs = {}
    for name, flags in (("default", []), ("own", ["--style-size", "48"]), ("enlarged", ["--style-size", "512"])):
        proc = stylekit("stylize", content, "--style", style, "-o", tmp_path / f"{name}.png", *flags)
        assert proc.returncode == 0, proc.stderr
        outs[name] = pixels(tmp_path / f"{name}.png")
    assert np.array_equal(outs["default"], outs["own"])
    assert np.abs(outs["default"] - outs["enlarged"]).max() > 3


def test_style_weights_with_commas_or_spaces(tmp_path):
    content = make_image(tmp_path / "c.png", (64, 48), seed=1)
    a, b = make_image(tmp_path / "a.png", (48, 48), seed=2), make_image(tmp_path / "b.png", (48, 48), seed=3)
    outs = {}
    for name, weights in (("commas", ["0.3,0.7"]), ("spaces", ["0.3", "0.7"]), ("other", ["0.7,0.3"])):
        proc = stylekit("stylize", content, "--style", a, b, "--style-weights", *weights, "-o", tmp_path / f"{name}.png")
        assert proc.returncode == 0, proc.stderr
        outs[name] = pixels(tmp_path / f"{name}.png")
    assert np.array_equal(outs["commas"], outs["spaces"])
    assert np.abs(outs["commas"] - outs["other"]).max() > 3


def _left_mask(path, size, fraction=0.5):
    w, h = size
    arr = np.zeros((h, w), np.uint8)
    arr[:, : int(w * fraction)] = 255
    Image.fromarray(arr).save(path)
    return path


def test_official_mask_conventions(tmp_path):
    """The official example: a 600x800 mask for a 384x512 photo, one mask with two styles
    (the mask for the first, its complement for the second)."""
    content = make_image(tmp_path / "photo.jpg", (384, 512), seed=1)
    a, b = make_image(tmp_path / "a.png", (48, 48), seed=2), make_image(tmp_path / "b.png", (48, 48), seed=3)
    big = _left_mask(tmp_path / "mask_600x800.png", (600, 800))
    left = _left_mask(tmp_path / "left.png", (384, 512))
    right = tmp_path / "right.png"
    Image.fromarray(255 - np.asarray(Image.open(left))).save(right)
    runs = {
        "official": [big],  # one mask, another resolution
        "explicit": [left, right],  # one mask per style, the content's size, made by hand
    }
    for name, masks in runs.items():
        # one pass: the pyramid's per-region palettes would amplify the masks' resampling at the seam
        proc = stylekit("stylize", content, "--style", a, b, "--mask", *masks, "-o", tmp_path / f"{name}.png",
                        "--size", "128", "--stroke-scale", "0")
        assert proc.returncode == 0, proc.stderr
    assert np.abs(pixels(tmp_path / "official.png") - pixels(tmp_path / "explicit.png")).max() <= 2
    wrong = _left_mask(tmp_path / "square.png", (800, 800))
    proc = stylekit("stylize", content, "--style", a, b, "--mask", wrong, "-o", tmp_path / "x.png")
    assert proc.returncode == 2
    assert "mask 1 is 800x800 but the content image is 384x512: another aspect ratio" in proc.stderr
    assert not (tmp_path / "x.png").exists()


def test_skip_existing_counts_agree(tmp_path):
    contents = tmp_path / "contents"
    for i in range(3):
        make_image(contents / f"c{i}.png", (40, 30), seed=i)
    style = make_image(tmp_path / "s.png", (32, 32), seed=9)
    (contents / "broken.png").write_text("not an image")
    out = tmp_path / "out"
    out.mkdir()
    make_image(out / "c0_stylized_s.jpg", (40, 30), seed=5)  # done already
    proc = stylekit("stylize", contents, "--style", style, "--output-dir", out, "--skip-existing", "--no-progress")
    assert proc.returncode == 2, proc.stderr  # the broken file
    assert "skipping 1 output that already exists" in proc.stderr
    assert sum(line.startswith("warning: could not stylize") for line in proc.stderr.splitlines()) == 1
    assert f"2 written, 1 failed, 1 already existed, in {out}" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["c0_stylized_s.jpg", "c1_stylized_s.jpg", "c2_stylized_s.jpg"]
