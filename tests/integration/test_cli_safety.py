"""The command line never replaces or consumes a user's file: an output that is
(or links to) an input is refused, and a run into its own input folder leaves
its earlier outputs out of the inputs. Through the real ``stylekit`` process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from ..conftest import make_image, run_stylekit as stylekit


def assert_refused(proc, *words) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stylekit: error: "), proc.stderr
    for word in words:
        assert word in lines[0], proc.stderr


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    make_image(d / "me.jpg", (64, 48), seed=1)
    make_image(d / "swirls.jpg", (48, 48), seed=2)
    make_image(d / "other.png", (48, 48), seed=3)
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (0, 0, 32, 48))
    mask.save(d / "mask.png")
    return d


def test_output_that_is_an_input_is_refused(photos):
    os.symlink(photos / "me.jpg", photos / "link.jpg")
    os.link(photos / "me.jpg", photos / "hard.jpg")
    before = snapshot(photos)
    cases = [
        (["me.jpg", "--style", "swirls.jpg", "-o", "me.jpg"], "the output me.jpg is the content image"),
        (["me.jpg", "--style", "swirls.jpg", "-o", "./me.jpg"], "is the content image"),
        (["me.jpg", "--style", "swirls.jpg", "-o", "link.jpg"], "is the content image (me.jpg)"),
        (["me.jpg", "--style", "swirls.jpg", "-o", "hard.jpg"], "is the content image (me.jpg)"),
        (["me.jpg", "--style", "swirls.jpg", "-o", "swirls.jpg"], "is the style image"),
        (["me.jpg", "--style", "swirls.jpg", "other.png", "--mask", "mask.png", "-o", "mask.png"], "is the mask"),
    ]
    for args, words in cases:
        assert_refused(stylekit("stylize", *args, cwd=photos), words, "never overwrites")
    assert snapshot(photos) == before


def test_video_output_that_is_its_input_is_refused(tmp_path):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"the user's only copy")
    style = make_image(tmp_path / "s.jpg", (48, 48), seed=2)
    os.symlink(clip, tmp_path / "alias.mp4")
    for output, words in ((clip, "is the input video"), (tmp_path / "alias.mp4", "is the input video (")):
        assert_refused(stylekit("video", clip, "--style", style, "-o", output), words)
    assert clip.read_bytes() == b"the user's only copy"


def test_output_dir_inside_the_input_folder_never_takes_its_outputs(photos):
    (photos / "mask.png").unlink()
    (photos / "other.png").unlink()
    first = stylekit("stylize", ".", "--style", "swirls.jpg", "--output-dir", ".", "--size", "32", "--no-progress",
                     cwd=photos)
    assert first.returncode == 0, first.stderr
    names = sorted(snapshot(photos))
    assert names == ["me.jpg", "me_stylized_swirls.jpg", "swirls.jpg", "swirls_stylized_swirls.jpg"]
    outputs = {n: (photos / n).stat().st_mtime_ns for n in names if "_stylized_" in n}
    # again, and with the folder as styles too: the same two outputs rewritten, nothing stylized twice
    second = stylekit("stylize", ".", "--style", "swirls.jpg", "--output-dir", ".", "--size", "32", "--no-progress",
                      cwd=photos)
    assert second.returncode == 0, second.stderr
    assert "left out 2 images found in the input folders that stylekit wrote" in second.stderr
    assert "2 written, 0 failed" in second.stderr
    assert sorted(snapshot(photos)) == names
    assert all((photos / n).stat().st_mtime_ns != t for n, t in outputs.items())  # rewritten, so the run happened
    third = stylekit("stylize", "me.jpg", "--style", ".", "--output-dir", "out", "--size", "32", "--no-progress",
                     cwd=photos)
    assert third.returncode == 0, third.stderr
    assert sorted(p.name for p in (photos / "out").iterdir()) == ["me_stylized_me.jpg", "me_stylized_swirls.jpg"]


def test_outputs_of_another_run_are_recognised_by_their_tag(photos, tmp_path):
    """Named by another command (another style), an earlier output still is not an input."""
    (photos / "mask.png").unlink()
    made = stylekit("stylize", "me.jpg", "--style", "other.png", "-o", "me_painted.png", "--size", "32", cwd=photos)
    assert made.returncode == 0, made.stderr
    run = stylekit("stylize", ".", "--style", "swirls.jpg", "--output-dir", tmp_path / "out", "--size", "32",
                   "--no-progress", cwd=photos)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "me_stylized_swirls.jpg", "other_stylized_swirls.jpg", "swirls_stylized_swirls.jpg"]
    # named on the command line it is the user's choice: stylized
    again = stylekit("stylize", "me_painted.png", "--style", "swirls.jpg", "-o", tmp_path / "twice.png", "--size", "32",
                     cwd=photos)
    assert again.returncode == 0, again.stderr
