"""``stylekit stylize`` driven in-process through :func:`stylekit.cli.main`.

Uses the real VGG encoder and the seeded untrained decoder saved as
safetensors (``decoder_file``), with tiny images. Every bad input must give
exit code 2, one ``stylekit: error:`` line on stderr, no traceback, and no
output file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylekit.cli import main
from stylekit.errors import StylekitError

from ..conftest import REPO, make_image


SIZES = ["--size", "64", "--style-size", "64"]


def run(capsys, *args) -> tuple[int, str, str]:
    """``stylekit stylize ARGS``: (exit code, stdout, stderr). Other exceptions propagate."""
    try:
        code = main(["stylize", *map(str, args)])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def files_under(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_error(code, err, match: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stylekit: error: "), err
    assert match in lines[0], err


def pixels(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).astype(int)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    # a training run shares this machine: one thread is both kinder and faster here
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def content(tmp_path):
    return make_image(tmp_path / "in" / "content.png", (80, 60), seed=1)


@pytest.fixture
def style(tmp_path):
    return make_image(tmp_path / "in" / "style.png", (64, 64), seed=2)


@pytest.fixture
def style2(tmp_path):
    return make_image(tmp_path / "in" / "style2.jpg", (48, 64), seed=3)


@pytest.fixture
def vivid_style(tmp_path):
    """Blue-heavy noise: far from the content's colours, so colour matching changes a lot."""
    rng = np.random.default_rng(0)
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[..., 0] = rng.integers(0, 40, (64, 64))
    arr[..., 2] = rng.integers(100, 256, (64, 64))
    path = tmp_path / "in" / "vivid.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture
def w(decoder_file):
    """Common flags: our decoder, CPU, no progress bar."""
    return ["--weights", decoder_file, "--device", "cpu", "--no-progress"]


# ---------------------------------------------------------------------------
# what works
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, flag, expected",
    [
        ((80, 60), "64", (64, 48)),
        ((60, 80), "64", (48, 64)),
        ((90, 50), "64", (64, 36)),
        ((81, 61), "0", (81, 61)),  # 0 keeps the size, even one not a multiple of 4
        ((40, 30), "64", (64, 48)),  # upscaling
    ],
)
def test_single_output_size(capsys, tmp_path, style, w, size, flag, expected):
    content = make_image(tmp_path / "c.png", size, seed=4)
    out = tmp_path / "out" / "result.png"
    code, stdout, err = run(capsys, content, "--style", style, "-o", out, "--size", flag, "--style-size", "64", *w)
    assert code == 0, err
    assert stdout.strip() == str(out)
    with Image.open(out) as img:
        assert img.size == expected
        assert img.format == "PNG"
    assert files_under(tmp_path / "out") == [out]  # no temp file left


@pytest.mark.parametrize("name, fmt", [("r.jpg", "JPEG"), ("r.webp", "WEBP"), ("R.JPEG", "JPEG")])
def test_output_format_follows_extension(capsys, tmp_path, content, style, w, name, fmt):
    out = tmp_path / name
    code, _, err = run(capsys, content, "--style", style, "-o", out, *SIZES, *w)
    assert code == 0, err
    with Image.open(out) as img:
        assert img.format == fmt and img.size == (64, 48)


def test_cli_matches_python_api(capsys, tmp_path, content, style, stylizer, w):
    out = tmp_path / "r.png"
    code, _, err = run(capsys, content, "--style", style, "-o", out, "--alpha", "0.3", *SIZES, *w)
    assert code == 0, err
    expected = np.asarray(stylizer.stylize(content, style, alpha=0.3, size=64, style_size=64)).astype(int)
    assert np.abs(pixels(out) - expected).max() <= 1
    other = np.asarray(stylizer.stylize(content, style, alpha=1.0, size=64, style_size=64)).astype(int)
    assert np.abs(other - expected).max() >= 3  # alpha changes the picture beyond the tolerance


def test_transform_flag_runs_the_trained_transform(capsys, tmp_path, content, style, stylizer, w):
    from stylekit.adain.model import AdaINStylizer
    from stylekit.adain.transform import CovarianceTransform
    from stylekit.files import save_tensors

    transform = CovarianceTransform(256, 4)
    with torch.no_grad():
        for p in transform.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.2)
    save_tensors(tmp_path / "t.safetensors", transform.state_dict(), {"kind": "adain-transform"})
    out = tmp_path / "r.png"
    code, _, err = run(capsys, content, "--style", style, "-o", out, "--transform", tmp_path / "t.safetensors", *SIZES, *w)
    assert code == 0, err
    with_transform = AdaINStylizer(stylizer.encoder, stylizer.decoder, device="cpu", transform=transform)
    expected = np.asarray(with_transform.stylize(content, style, size=64, style_size=64)).astype(int)
    assert np.abs(pixels(out) - expected).max() <= 1
    plain = np.asarray(stylizer.stylize(content, style, size=64, style_size=64)).astype(int)
    assert np.abs(plain - expected).max() >= 3
    for args, message in ((["--method", "style-swap"], "--transform applies only to --method adain"),
                          ([], "cannot read")):
        missing = tmp_path / "none.safetensors"
        code, _, err = run(capsys, content, "--style", style, "-o", tmp_path / "x.png", "--transform",
                           tmp_path / "t.safetensors" if args else missing, *args, *SIZES, *w)
        assert_error(code, err, message)
    assert not (tmp_path / "x.png").exists()


def test_shipped_decoder_runs_the_shipped_transform_unless_told_none(capsys, tmp_path, content, style):
    import stylekit

    outputs = {}
    for name, extra, transform in (("default", [], None), ("none", ["--transform", "none"], False)):
        out = tmp_path / f"{name}.png"
        code, _, err = run(capsys, content, "--style", style, "-o", out, *extra, *SIZES)
        assert code == 0, err
        model = stylekit.load("adain", device="cpu", transform_weights=transform)
        assert (model.transform is None) == (transform is False)
        expected = np.asarray(model.stylize(content, style, size=64, style_size=64)).astype(int)
        assert np.abs(pixels(out) - expected).max() <= 1
        outputs[name] = expected
    assert np.abs(outputs["default"] - outputs["none"]).max() >= 3


def test_output_dir_content_x_style(capsys, tmp_path, w):
    contents, styles, out = tmp_path / "contents", tmp_path / "styles", tmp_path / "out"
    make_image(contents / "c1.png", (80, 60), 1)
    make_image(contents / "c2.jpg", (60, 80), 2)
    make_image(styles / "s1.png", (64, 64), 3)
    make_image(styles / "s2.jpg", (48, 64), 4)
    code, _, err = run(capsys, contents, "--style", styles, "--output-dir", out, *SIZES, *w)
    assert code == 0, err
    names = [p.name for p in files_under(out)]
    assert names == ["c1_stylized_s1.jpg", "c1_stylized_s2.jpg", "c2_stylized_s1.jpg", "c2_stylized_s2.jpg"]
    for p in files_under(out):
        with Image.open(p) as img:
            assert img.format == "JPEG"
            assert img.size == ((64, 48) if p.name.startswith("c1") else (48, 64))
    assert "4 written, 0 failed, in" in err
    assert "warning" not in err


def test_output_dir_ext(capsys, tmp_path, content, style, w):
    out = tmp_path / "out"
    code, _, err = run(capsys, content, "--style", style, "--output-dir", out, "--ext", ".png", *SIZES, *w)
    assert code == 0, err
    assert [p.name for p in files_under(out)] == ["content_stylized_style.png"]


def test_style_weights_blend(capsys, tmp_path, content, style, style2, stylizer, w):
    out = tmp_path / "blend.png"
    code, stdout, err = run(
        capsys, content, "--style", style, style2, "--style-weights", "1", "3", "-o", out, *SIZES, *w
    )
    assert code == 0, err
    assert stdout.strip() == str(out)
    got = pixels(out)
    assert got.shape == (48, 64, 3)
    expected = np.asarray(
        stylizer.stylize(content, [style, style2], style_weights=[1, 3], size=64, style_size=64)
    ).astype(int)
    assert np.abs(got - expected).max() <= 1
    reversed_ = np.asarray(
        stylizer.stylize(content, [style, style2], style_weights=[3, 1], size=64, style_size=64)
    ).astype(int)
    assert np.abs(got - reversed_).max() >= 3  # the weights matter beyond the tolerance


def test_style_weights_with_output_dir_names_all_styles(capsys, tmp_path, content, style, style2, w):
    out = tmp_path / "out"
    code, _, err = run(
        capsys, content, "--style", style, style2, "--style-weights", "1", "1", "--output-dir", out, *SIZES, *w
    )
    assert code == 0, err
    assert [p.name for p in files_under(out)] == ["content_stylized_style_style2.jpg"]


def _masks(tmp_path, size=(80, 60)):
    w, h = size
    left = np.zeros((h, w), np.uint8)
    left[:, : w // 2] = 255
    m1, m2 = tmp_path / "m1.png", tmp_path / "m2.png"
    Image.fromarray(left).save(m1)
    Image.fromarray(255 - left).save(m2)
    return m1, m2


def test_masks(capsys, tmp_path, content, style, style2, stylizer, w):
    m1, m2 = _masks(tmp_path)
    out = tmp_path / "masked.png"
    code, _, err = run(capsys, content, "--style", style, style2, "--mask", m1, m2, "-o", out, *SIZES, *w)
    assert code == 0, err
    got = pixels(out)
    assert got.shape == (48, 64, 3)
    expected = np.asarray(stylizer.stylize(content, [style, style2], masks=[m1, m2], size=64, style_size=64))
    assert np.abs(got - expected.astype(int)).max() <= 1
    blend = np.asarray(stylizer.stylize(content, [style, style2], size=64, style_size=64)).astype(int)
    assert np.abs(got - blend).max() >= 3  # the masks matter beyond the tolerance


@pytest.mark.parametrize("mode", ["luminance", "histogram"])
def test_preserve_color(capsys, tmp_path, content, vivid_style, stylizer, w, mode):
    style = vivid_style
    out = tmp_path / "pc.png"
    code, _, err = run(capsys, content, "--style", style, "--preserve-color", mode, "-o", out, *SIZES, *w)
    assert code == 0, err
    got = pixels(out)
    assert got.shape == (48, 64, 3)
    expected = np.asarray(stylizer.stylize(content, style, preserve_color=mode, size=64, style_size=64))
    assert np.abs(got - expected.astype(int)).max() <= 1
    plain = np.asarray(stylizer.stylize(content, style, size=64, style_size=64)).astype(int)
    assert np.abs(got - plain).max() >= 3  # the option changes the picture beyond the tolerance


def test_bare_preserve_color_flag_means_luminance(capsys, tmp_path, content, style, w):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert run(capsys, content, "--style", style, "--preserve-color", "-o", a, *SIZES, *w)[0] == 0
    assert run(capsys, content, "--style", style, "--preserve-color", "luminance", "-o", b, *SIZES, *w)[0] == 0
    assert np.array_equal(pixels(a), pixels(b))


@pytest.mark.parametrize("flag, expected", [("64", (64, 64)), ("0", (60, 60))])
def test_crop_gives_square(capsys, tmp_path, content, style, w, flag, expected):
    out = tmp_path / "sq.png"
    code, _, err = run(capsys, content, "--style", style, "--crop", "-o", out, "--size", flag, "--style-size", "64", *w)
    assert code == 0, err
    with Image.open(out) as img:
        assert img.size == expected


def test_crop_with_masks(capsys, tmp_path, content, style, style2, w):
    """--crop crops the masks like the content: same as cropping all files first."""
    left = np.zeros((60, 80), np.uint8)
    left[:, :20] = 255  # asymmetric, so an uncropped mask would put the boundary elsewhere
    m1, m2 = tmp_path / "m1.png", tmp_path / "m2.png"
    Image.fromarray(left).save(m1)
    Image.fromarray(255 - left).save(m2)
    out = tmp_path / "sq.png"
    code, _, err = run(
        capsys, content, "--style", style, style2, "--mask", m1, m2, "--crop", "-o", out, *SIZES, *w
    )
    assert code == 0, err
    got = pixels(out)
    assert got.shape == (64, 64, 3)

    box = (10, 0, 70, 60)  # the centre 60x60 square of 80x60
    pre = tmp_path / "pre"
    pre.mkdir()
    for src in (content, m1, m2):
        with Image.open(src) as img:
            img.crop(box).save(pre / src.name)
    with Image.open(style) as img:  # styles are cropped too
        assert img.size[0] == img.size[1]
    s2 = pre / "style2.png"
    with Image.open(style2) as img:
        sw, sh = img.size
        side = min(sw, sh)
        img.crop(((sw - side) // 2, (sh - side) // 2, (sw - side) // 2 + side, (sh - side) // 2 + side)).save(s2)
    ref = tmp_path / "ref.png"
    code, _, err = run(
        capsys, pre / content.name, "--style", style, s2, "--mask", pre / "m1.png", pre / "m2.png", "-o", ref,
        *SIZES, *w,
    )
    assert code == 0, err
    assert np.abs(got - pixels(ref)).max() <= 1


def test_skip_existing(capsys, tmp_path, content, style, w):
    out = tmp_path / "r.png"
    assert run(capsys, content, "--style", style, "-o", out, *SIZES, *w)[0] == 0
    os.utime(out, (1_000_000_000, 1_000_000_000))
    code, stdout, err = run(capsys, content, "--style", style, "-o", out, "--skip-existing", *SIZES, *w)
    assert code == 0, err
    assert "skipping 1 output that already exists" in err
    assert stdout == ""
    assert out.stat().st_mtime == 1_000_000_000
    # without the flag the output is rewritten (so the check above can fail)
    assert run(capsys, content, "--style", style, "-o", out, *SIZES, *w)[0] == 0
    assert out.stat().st_mtime != 1_000_000_000


def test_skip_existing_in_a_batch_does_only_the_rest(capsys, tmp_path, content, style, style2, w):
    out = tmp_path / "out"
    done = out / "content_stylized_style.jpg"
    done.parent.mkdir()
    done.write_bytes(b"keep me")
    code, _, err = run(capsys, content, "--style", style, style2, "--output-dir", out, "--skip-existing", *SIZES, *w)
    assert code == 0, err
    assert done.read_bytes() == b"keep me"
    assert [p.name for p in files_under(out)] == ["content_stylized_style.jpg", "content_stylized_style2.jpg"]
    assert "skipping 1 output that already exists" in err
    assert "1 written, 0 failed, 1 already existed" in err


def _python(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    return subprocess.run([sys.executable, "-m", "stylekit", *args], capture_output=True, text=True, env=env, timeout=120)


def test_module_help_via_subprocess():
    top = _python("--help")
    assert top.returncode == 0, top.stderr
    assert "stylize" in top.stdout
    sub = _python("stylize", "--help")
    assert sub.returncode == 0, sub.stderr
    for flag in ("--style", "--output-dir", "--style-weights", "--mask", "--preserve-color", "--skip-existing"):
        assert flag in sub.stdout


# ---------------------------------------------------------------------------
# bad inputs: exit 2, one line, nothing written
# ---------------------------------------------------------------------------


def _bad_content(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "in" / "nope.png"
    if kind == "text_as_jpg":
        p = tmp_path / "in" / "notes.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("not an image\n" * 10)
        return p
    if kind == "truncated_jpg":
        real = make_image(tmp_path / "in" / "real.jpg", (80, 60), seed=7).read_bytes()
        p = tmp_path / "in" / "half.jpg"
        p.write_bytes(real[: len(real) // 2])
        return p
    if kind == "tiny":
        p = tmp_path / "in" / "tiny.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (1, 1)).save(p)
        return p
    if kind == "empty":
        p = tmp_path / "in" / "empty.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
        return p
    raise AssertionError(kind)


BAD_CONTENT = {
    "missing": "content not found",
    "text_as_jpg": "not an image",
    "truncated_jpg": "cannot decode",
    "tiny": "at least 16",
    "empty": "empty file",
}


@pytest.mark.parametrize("kind", sorted(BAD_CONTENT))
def test_bad_content(capsys, tmp_path, style, w, kind):
    bad = _bad_content(tmp_path, kind)
    out = tmp_path / "out" / "r.png"
    code, stdout, err = run(capsys, bad, "--style", style, "-o", out, *SIZES, *w)
    assert_error(code, err, BAD_CONTENT[kind])
    assert stdout == ""
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize("kind", ["text_as_jpg", "tiny"])
def test_bad_style(capsys, tmp_path, content, w, kind):
    bad = _bad_content(tmp_path, kind)
    out = tmp_path / "out" / "r.png"
    code, _, err = run(capsys, content, "--style", bad, "-o", out, *SIZES, *w)
    assert_error(code, err, BAD_CONTENT[kind])
    assert files_under(tmp_path / "out") == []


def test_o_with_several_pairs(capsys, tmp_path, content, style, style2, w):
    out = tmp_path / "out" / "r.png"
    code, _, err = run(capsys, content, "--style", style, style2, "-o", out, *SIZES, *w)
    assert_error(code, err, "-o names one file but there are 2 outputs")
    assert files_under(tmp_path / "out") == []


def test_o_with_content_directory(capsys, tmp_path, style, w):
    contents = tmp_path / "contents"
    make_image(contents / "a.png", (40, 30), 1)
    make_image(contents / "b.png", (40, 30), 2)
    out = tmp_path / "out" / "r.png"
    code, _, err = run(capsys, contents, "--style", style, "-o", out, *SIZES, *w)
    assert_error(code, err, "use --output-dir")
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize("name, match", [("taken.png", "is a directory"), ("folder", "unsupported output format")])
def test_o_is_an_existing_directory(capsys, tmp_path, content, style, w, name, match):
    target = tmp_path / name
    target.mkdir()
    code, _, err = run(capsys, content, "--style", style, "-o", target, *SIZES, *w)
    assert_error(code, err, match)
    assert files_under(target) == []


def test_o_through_a_regular_file(capsys, tmp_path, content, style, w):
    """The output's parent is a file: a user error, so exit 2 and one line."""
    (tmp_path / "file.txt").write_text("x")
    code, _, err = run(capsys, content, "--style", style, "-o", tmp_path / "file.txt" / "r.png", *SIZES, *w)
    assert_error(code, err, "file.txt")


def test_output_dir_is_a_regular_file(capsys, tmp_path, content, style, style2, w):
    (tmp_path / "file.txt").write_text("x")
    code, _, err = run(capsys, content, "--style", style, style2, "--output-dir", tmp_path / "file.txt", *SIZES, *w)
    assert_error(code, err, "file.txt")
    assert (tmp_path / "file.txt").read_text() == "x"


def test_mask_of_another_aspect_ratio(capsys, tmp_path, content, style, style2, w):
    m1, m2 = _masks(tmp_path, size=(80, 80))
    out = tmp_path / "out" / "r.png"
    code, _, err = run(capsys, content, "--style", style, style2, "--mask", m1, m2, "-o", out, *SIZES, *w)
    assert_error(code, err, "mask 1 is 80x80 but the content image is 80x60: another aspect ratio")
    assert files_under(tmp_path / "out") == []


def test_mask_of_another_resolution_is_resized(capsys, tmp_path, content, style, style2, w):
    """The official AdaIN's example gives a 600x800 mask for a 384x512 photo: same shape, another size."""
    small = tmp_path / "small"
    small.mkdir()
    s1, s2 = _masks(small, size=(40, 30))
    f1, f2 = _masks(tmp_path, size=(80, 60))
    got, want, swapped = (tmp_path / n for n in ("got.png", "want.png", "swapped.png"))
    for masks, out in (((s1, s2), got), ((f1, f2), want), ((f2, f1), swapped)):
        # one pass: the pyramid's per-region palettes would spread the grey edge column's effect
        code, _, err = run(capsys, content, "--style", style, style2, "--mask", *masks, "-o", out, *SIZES, *w,
                           "--stroke-scale", "0")
        assert code == 0, err
    # the only difference: the upsampled masks' edge column is grey, not black or white
    assert np.abs(pixels(got) - pixels(want)).mean() < 1.0
    assert np.abs(pixels(got) - pixels(swapped)).mean() > 5 * np.abs(pixels(got) - pixels(want)).mean()


def test_resized_mask_matches_a_hand_made_one():
    from stylekit.pipeline import prepare_masks

    mask = torch.zeros(1, 800, 600)  # 600x800, white left third
    mask[:, :, :200] = 1
    (got,) = prepare_masks([mask], (512, 384), 1, crop=False, out_hw=(64, 48))
    assert got.shape == (1, 64, 48)
    assert bool((got[:, :, :15] > 0.99).all()) and bool((got[:, :, 17:] < 0.01).all())


def test_one_mask_for_two_styles_is_the_mask_and_its_complement(capsys, tmp_path, content, style, style2, w):
    m1, m2 = _masks(tmp_path)  # m2 = 255 - m1, made by hand
    one, two = tmp_path / "one.png", tmp_path / "two.png"
    code, _, err = run(capsys, content, "--style", style, style2, "--mask", m1, "-o", one, *SIZES, *w)
    assert code == 0, err
    code, _, err = run(capsys, content, "--style", style, style2, "--mask", m1, m2, "-o", two, *SIZES, *w)
    assert code == 0, err
    assert np.abs(pixels(one) - pixels(two)).max() <= 1


def test_one_white_mask_for_two_styles_leaves_the_second_nothing(capsys, tmp_path, content, style, style2, w):
    white = tmp_path / "white.png"
    Image.new("L", (80, 60), 255).save(white)
    out = tmp_path / "out" / "r.png"
    code, _, err = run(capsys, content, "--style", style, style2, "--mask", white, "-o", out, *SIZES, *w)
    assert_error(code, err, "the mask is all white: its complement leaves no region for the second style")
    assert files_under(tmp_path / "out") == []


def test_all_black_mask(capsys, tmp_path, content, style, style2, w):
    m1, _ = _masks(tmp_path)
    black = tmp_path / "black.png"
    Image.new("L", (80, 60), 0).save(black)
    out = tmp_path / "out" / "r.png"
    code, _, err = run(capsys, content, "--style", style, style2, "--mask", m1, black, "-o", out, *SIZES, *w)
    assert_error(code, err, "mask 2 is all black")
    assert files_under(tmp_path / "out") == []


def test_mask_count_must_match_styles(capsys, tmp_path, content, style, style2, w):
    m1, _ = _masks(tmp_path)
    out = tmp_path / "out" / "r.png"
    code, _, err = run(capsys, content, "--style", style, style2, style, "--mask", m1, "-o", out, *SIZES, *w)
    assert_error(code, err, "got 1 mask for 3 styles; give one mask per style")
    assert files_under(tmp_path / "out") == []


def test_mask_that_is_not_an_image(capsys, tmp_path, content, style, style2, w):
    m1, _ = _masks(tmp_path)
    bad = _bad_content(tmp_path, "text_as_jpg")
    out = tmp_path / "out" / "r.png"
    code, _, err = run(capsys, content, "--style", style, style2, "--mask", m1, bad, "-o", out, *SIZES, *w)
    assert_error(code, err, "not an image")


def test_masks_need_one_content(capsys, tmp_path, style, w):
    c1 = make_image(tmp_path / "c1.png", (80, 60), 1)
    c2 = make_image(tmp_path / "c2.png", (80, 60), 2)
    m1, _ = _masks(tmp_path)
    code, _, err = run(capsys, c1, c2, "--style", style, "--mask", m1, "--output-dir", tmp_path / "out", *SIZES, *w)
    assert_error(code, err, "--mask needs exactly one content image")
    assert files_under(tmp_path / "out") == []


def test_masks_and_weights_together(capsys, tmp_path, content, style, style2, w):
    m1, m2 = _masks(tmp_path)
    out = tmp_path / "out" / "r.png"
    code, _, err = run(
        capsys, content, "--style", style, style2, "--mask", m1, m2, "--style-weights", "1", "1", "-o", out, *SIZES, *w
    )
    assert_error(code, err, "not both")
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize(
    "weights, match",
    [
        (["-1", "2"], "non-negative"),
        (["0", "0"], "must not all be zero"),
        (["1", "2", "3"], "got 3 style weights for 2 styles"),
        (["1"], "got 1 style weight for 2 styles"),
        (["nan", "1"], "finite"),
        (["inf", "1"], "finite"),
    ],
)
def test_bad_style_weights(capsys, tmp_path, content, style, style2, w, weights, match):
    out = tmp_path / "out" / "r.png"
    code, _, err = run(capsys, content, "--style", style, style2, "--style-weights", *weights, "-o", out, *SIZES, *w)
    assert_error(code, err, match)
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize("alpha", ["1.5", "-0.1", "nan", "inf"])
def test_alpha_out_of_range(capsys, tmp_path, content, style, w, alpha):
    out = tmp_path / "out" / "r.png"
    code, _, err = run(capsys, content, "--style", style, "--alpha", alpha, "-o", out, *SIZES, *w)
    assert_error(code, err, "alpha must be in [0, 1]")
    assert files_under(tmp_path / "out") == []


@pytest.mark.parametrize("flag, value, match", [("--size", "8", "at least 16"), ("--size", "-5", "non-negative"),
                                                ("--style-size", "3", "at least 16")])
def test_bad_sizes(capsys, tmp_path, content, style, w, flag, value, match):
    out = tmp_path / "out" / "r.png"
    code, _, err = run(capsys, content, "--style", style, "-o", out, flag, value, *w)
    assert_error(code, err, match)
    assert files_under(tmp_path / "out") == []


def test_unknown_preserve_color_value(capsys, tmp_path, content, style, w):
    out = tmp_path / "out" / "r.png"
    code, stdout, err = run(capsys, content, "--style", style, "--preserve-color", "sepia", "-o", out, *SIZES, *w)
    assert code == 2
    assert "invalid choice: 'sepia'" in err
    assert "Traceback" not in err
    assert files_under(tmp_path / "out") == []


def test_unknown_output_extension(capsys, tmp_path, content, style, w):
    out = tmp_path / "out" / "r.xyz"
    code, _, err = run(capsys, content, "--style", style, "-o", out, *SIZES, *w)
    assert_error(code, err, "unsupported output format '.xyz'")
    assert files_under(tmp_path / "out") == []


def test_unknown_ext_with_output_dir(capsys, tmp_path, content, style, w):
    out = tmp_path / "out"
    code, _, err = run(capsys, content, "--style", style, "--output-dir", out, "--ext", "xyz", *SIZES, *w)
    assert_error(code, err, "unsupported output format '.xyz'")
    assert files_under(out) == []


@pytest.mark.parametrize("name", ["garbage.safetensors", "garbage.pth"])
def test_garbage_weights_file(capsys, tmp_path, content, style, name):
    weights = tmp_path / name
    weights.write_bytes(os.urandom(64) + b"\x00" * 100)
    out = tmp_path / "out" / "r.png"
    code, _, err = run(capsys, content, "--style", style, "-o", out, "--weights", weights, "--device", "cpu", *SIZES)
    assert_error(code, err, "cannot read")
    assert files_under(tmp_path / "out") == []


def test_weights_file_not_a_decoder(capsys, tmp_path, content, style):
    from safetensors.torch import save_file

    weights = tmp_path / "other.safetensors"
    save_file({"something.weight": torch.zeros(3, 3)}, str(weights))
    code, _, err = run(capsys, content, "--style", style, "-o", tmp_path / "r.png", "--weights", weights, *SIZES)
    assert_error(code, err, "")
    assert not (tmp_path / "r.png").exists()


def test_missing_weights_file(capsys, tmp_path, content, style):
    code, _, err = run(
        capsys, content, "--style", style, "-o", tmp_path / "r.png", "--weights", tmp_path / "nope.safetensors", *SIZES
    )
    assert_error(code, err, "nope.safetensors")
    assert not (tmp_path / "r.png").exists()


# ---------------------------------------------------------------------------
# Python API: non-finite tensors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_tensors_are_refused(stylizer, value):
    good = torch.rand(3, 32, 32)
    bad = torch.full((3, 32, 32), value)
    with pytest.raises(StylekitError, match="NaN or infinite"):
        stylizer.stylize(bad, good, size=32, style_size=32)
    with pytest.raises(StylekitError, match="NaN or infinite"):
        stylizer.stylize(good, bad, size=32, style_size=32)
    one_nan = good.clone()
    one_nan[1, 5, 5] = value
    with pytest.raises(StylekitError, match="NaN or infinite"):
        stylizer.stylize(one_nan, good, size=32, style_size=32)
    mask = torch.ones(1, 32, 32)
    mask[0, 0, 0] = value
    with pytest.raises(StylekitError, match="NaN or infinite"):
        stylizer.stylize(good, [good], masks=[mask], size=32, style_size=32)
    out = stylizer.stylize(good, good, size=32, style_size=32)  # the good case works, tensor in -> tensor out
    assert isinstance(out, torch.Tensor) and out.shape == (3, 32, 32) and bool(torch.isfinite(out).all())


# ---------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------


def test_batch_skips_bad_content_and_reports(capsys, tmp_path, style, w):
    contents = tmp_path / "contents"
    make_image(contents / "good.png", (80, 60), 1)
    (contents / "bad.jpg").write_text("not an image")
    Image.new("RGB", (1, 1)).save(contents / "tiny.png")
    out = tmp_path / "out"
    code, _, err = run(capsys, contents, "--style", style, "--output-dir", out, *SIZES, *w)
    assert code == 2
    assert "Traceback" not in err
    assert [p.name for p in files_under(out)] == ["good_stylized_style.jpg"]
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, err
    assert any("bad.jpg" in line and "not an image" in line for line in warnings)
    assert any("tiny.png" in line and "at least 16" in line for line in warnings)
    assert f"1 written, 2 failed, in {out}" in err


def test_batch_all_good_exit_zero(capsys, tmp_path, style, style2, w):
    contents = tmp_path / "contents"
    make_image(contents / "a.png", (40, 30), 1)
    out = tmp_path / "out"
    code, _, err = run(capsys, contents, "--style", style, style2, "--output-dir", out, *SIZES, *w)
    assert code == 0, err
    assert "2 written, 0 failed, in" in err


@pytest.mark.parametrize("layout", [("a/photo.png", "b/photo.png"), ("photo.png", "photo.jpg")])
def test_batch_same_stem_does_not_overwrite(capsys, tmp_path, style, w, layout):
    """Two contents with the same stem must not silently share one output file."""
    contents = tmp_path / "contents"
    for i, rel in enumerate(layout):
        make_image(contents / rel, (40, 30), seed=10 + i)
    out = tmp_path / "out"
    code, _, err = run(capsys, contents, "--style", style, "--output-dir", out, *SIZES, *w)
    written = files_under(out)
    if code == 0:
        assert len(written) == 2, (err, written)
    else:
        assert_error(code, err, "")
        assert written == []
