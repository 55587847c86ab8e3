"""``stylekit stylize DIR --style DIR --output-dir OUT`` over a folder of ~30
tiny images and 2 broken files: one model load, broken files skipped with a
warning each and a summary, and ``--skip-existing`` resumes."""

from __future__ import annotations

import pytest
import torch

import stylekit.api
from stylekit.cli import main

from ..conftest import make_image


N_GOOD = 30
SIZES = ["--size", "32", "--style-size", "32"]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def loads(monkeypatch):
    """Count calls of ``stylekit.api.load`` (the CLI looks it up at call time)."""
    calls = []
    real = stylekit.api.load

    def counting(*args, **kwargs):
        calls.append(args[0] if args else kwargs.get("method"))
        return real(*args, **kwargs)

    monkeypatch.setattr(stylekit.api, "load", counting)
    return calls


@pytest.fixture
def folders(tmp_path):
    contents = tmp_path / "photos"
    for i in range(N_GOOD):
        sub = contents / "trip" if i % 5 == 0 else contents  # some in a sub-folder
        ext = ("png", "jpg", "webp")[i % 3]
        make_image(sub / f"img{i:02d}.{ext}", (24 + i % 7, 20 + i % 5), seed=i)
    (contents / "broken.jpg").write_bytes(b"this is not a JPEG")
    good_png = (contents / "img01.jpg").with_name("img01.png")
    make_image(good_png, (40, 30), seed=99)
    (contents / "truncated.png").write_bytes(good_png.read_bytes()[:60])
    good_png.unlink()
    (contents / "notes.txt").write_text("not an image suffix: ignored, not a failure")
    styles = tmp_path / "paintings"
    make_image(styles / "a.png", (40, 40), seed=100)
    make_image(styles / "b.jpg", (36, 44), seed=101)
    return contents, styles, tmp_path / "out"


def run(capsys, *args) -> tuple[int, str, str]:
    code = main(["stylize", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def outputs(root):
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_batch_one_load_bad_files_skipped_and_resume(capsys, folders, loads, decoder_file):
    contents, styles, out = folders
    w = ["--weights", decoder_file, "--device", "cpu", "--no-progress"]
    expected = N_GOOD * 2

    code, stdout, err = run(capsys, contents, "--style", styles, "--output-dir", out, *SIZES, *w)
    assert code == 2, err  # some inputs failed
    assert loads == ["adain"]  # one model for all 64 pairs
    assert len(outputs(out)) == expected
    assert len(outputs(out / "trip")) == 2 * len(range(0, N_GOOD, 5))  # sub-folders kept
    warnings = [line for line in err.splitlines() if line.startswith("warning: could not stylize")]
    assert len(warnings) == 4, err  # 2 bad files x 2 styles
    assert sum("broken.jpg" in line for line in warnings) == 2
    assert sum("truncated.png" in line for line in warnings) == 2
    assert f"{expected} written, 4 failed, in" in err
    assert "Traceback" not in err

    # resume: delete some outputs; only those (and the still-broken inputs) are redone
    removed = outputs(out)[:5]
    for p in removed:
        p.unlink()
    kept = {p: p.stat().st_mtime_ns for p in outputs(out)}
    code, _, err = run(capsys, contents, "--style", styles, "--output-dir", out, "--skip-existing", *SIZES, *w)
    assert code == 2
    assert loads == ["adain", "adain"]
    assert f"skipping {expected - 5} outputs that already exist" in err
    assert f"5 written, 4 failed, {expected - 5} already existed" in err
    assert all(p.exists() for p in removed)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # the others untouched

    # fixed inputs, everything done: nothing to do, no model load at all
    (contents / "broken.jpg").unlink()
    (contents / "truncated.png").unlink()
    code, _, err = run(capsys, contents, "--style", styles, "--output-dir", out, "--skip-existing", *SIZES, *w)
    assert code == 0, err
    assert loads == ["adain", "adain"]
    assert f"skipping {expected} outputs that already exist" in err
    assert f"0 written, 0 failed, {expected} already existed" in err
    assert len(outputs(out)) == expected
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temp files from the atomic writes
