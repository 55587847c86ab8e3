"""The built-in styles: the package's public-domain paintings, ``--style NAME``,
``stylekit styles``, ``stylekit sheet`` and the ``stylekit.styles`` API."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from stylekit import styles
from stylekit.errors import StylekitError

from ..conftest import DATA_DIR, make_image, needs_data, pixels, run_stylekit as stylekit


def _years(text: str) -> list[int]:
    return [int(y) for y in re.findall(r"\d{4}", text)]


def test_styles_command_lists_every_picture_with_its_source():
    listed = stylekit("styles")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert 12 <= len(names) <= 20 and names == sorted(names) == styles.names()
    assert "13 built-in styles" in listed.stderr or f"{len(names)} built-in styles" in listed.stderr
    entries = json.loads(stylekit("styles", "--json").stdout)
    table = (styles.FOLDER / "README.md").read_text(encoding="utf-8")
    for entry in entries:
        assert entry["title"] and entry["painter"] and entry["year"], entry
        assert re.fullmatch(r"[0-9a-f]{40}", entry["source"]["commit"]) and "/" in entry["source"]["repository"]
        assert f"`{entry['name']}`" in table and entry["source"]["commit"] in table
        # public domain everywhere: the painter died before 1956, the work is from before 1931
        assert max(_years(entry["lived"])) < 1956 and max(_years(entry["year"])) < 1931, entry
        with Image.open(entry["path"]) as img:
            assert img.format == "JPEG" and max(img.size) <= 512
        assert os.path.getsize(entry["path"]) <= 100_000


def test_style_by_name_is_the_shipped_file(tmp_path):
    content = make_image(tmp_path / "me.png", (64, 48), seed=1)
    by_name = stylekit("stylize", content, "--style", "night_cafe", "-o", tmp_path / "name.png")
    by_path = stylekit("stylize", content, "--style", styles.path("night_cafe"), "-o", tmp_path / "path.png")
    other = stylekit("stylize", content, "--style", "mona_lisa", "-o", tmp_path / "other.png")
    assert by_name.returncode == by_path.returncode == other.returncode == 0, by_name.stderr
    assert np.array_equal(pixels(tmp_path / "name.png"), pixels(tmp_path / "path.png"))
    assert np.abs(pixels(tmp_path / "name.png") - pixels(tmp_path / "other.png")).max() > 10
    batch = stylekit("stylize", content, "--style", "night_cafe", "olive_trees", "--output-dir", tmp_path / "out",
                     "--no-progress")
    assert batch.returncode == 0, batch.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["me_stylized_night_cafe.jpg",
                                                                    "me_stylized_olive_trees.jpg"]
    wrong = stylekit("stylize", content, "--style", "nite_cafe", "-o", tmp_path / "x.png")
    assert wrong.returncode == 2 and "did you mean night_cafe?" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.png").exists()


def test_sheet_renders_the_photo_in_every_style_with_labels(tmp_path, stylizer, decoder_file):
    photo = make_image(tmp_path / "photo.png", (80, 60), seed=4)
    out = tmp_path / "sheet.png"
    proc = stylekit("sheet", photo, "-o", out, "--size", "64", "--columns", "5", "--no-progress",
                    "--weights", decoder_file)
    assert proc.returncode == 0, proc.stderr
    names = styles.names()
    tiles, columns, (tw, th), caption, gap = len(names) + 1, 5, (64, 48), 30, 8  # 10 px captions, two lines
    rows = -(-tiles // columns)
    sheet = pixels(out)
    assert sheet.shape == (gap + rows * (th + caption + gap), gap + columns * (tw + gap), 3)
    with Image.open(photo) as img:
        small = np.asarray(img.convert("RGB").resize((tw, th), Image.Resampling.LANCZOS))
    photo_t = torch.from_numpy(small.copy()).permute(2, 0, 1).float() / 255
    expected = [photo_t] + [stylizer.stylize(photo_t, styles.path(n), size=0) for n in names]
    for i, want in enumerate(expected):
        x, y = gap + (i % columns) * (tw + gap), gap + (i // columns) * (th + caption + gap)
        got = sheet[y:y + th, x:x + tw]
        want = (want.permute(1, 2, 0).numpy() * 255 + 0.5).astype(int)
        assert np.abs(got - want).max() <= 1, f"tile {i} ({(['original'] + names)[i]})"
        label = sheet[y + th:y + th + caption, x:x + tw]
        assert (label < 128).any(), f"tile {i} has no caption"
    assert not np.array_equal(sheet[gap + th:gap + th + caption, gap:gap + tw],
                              sheet[gap + th:gap + th + caption, 2 * gap + tw:2 * gap + 2 * tw])


def test_python_api():
    night = styles.get("night_cafe")
    assert night.path == styles.path("night_cafe") and night.path.is_file()
    assert night.label == "The Night Café — Vincent van Gogh, 1888"
    assert styles.load("night_cafe").size == Image.open(night.path).size
    assert [s.name for s in styles.available()] == styles.names()
    assert night.as_dict()["source"]["path"] == "data/style-images/vg_la_cafe.jpg"
    with pytest.raises(StylekitError, match="did you mean mona_lisa"):
        styles.get("mona_lis")


@needs_data
def test_no_builtin_style_is_an_image_of_the_training_data():
    """By the data's own rule for "the same image": 16x16 grey thumbnails closer than 4/255."""
    def thumb(path):
        with Image.open(path) as img:
            return np.asarray(img.convert("L").resize((16, 16), Image.Resampling.BILINEAR), dtype=np.float32) / 255

    shared = np.stack([thumb(p) for p in sorted(DATA_DIR.rglob("*.jpg"))])
    for s in styles.available():
        closest = np.abs(shared - thumb(s.path)).mean(axis=(1, 2)).min()
        assert closest * 255 > 4, s.name
