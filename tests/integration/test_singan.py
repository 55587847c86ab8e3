"""SinGAN: the scale pyramid, SIFID-VGG against float64 references, and a tiny
end-to-end run through the CLI (train, stop and resume bit for bit, sample, applications, score)."""

from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from stylekit.cli import main
from stylekit.errors import StylekitError
from stylekit.singan.model import pyramid_sizes, scale_channels
from stylekit.singan.sifid import frechet_distance, gaussian, shuffled_patches, sifid

from ..conftest import make_image

@pytest.fixture(autouse=True)
def one_thread():
    """One thread: SinGAN's tiny convolutions gain nothing from more, and on a machine busy with
    other work extra threads wait for cores (10x slower here); the bit-exact resume comparisons
    also want the same kernels in every run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# 3 scales of 8 channels from a 48x32 image: milliseconds per iteration
TINY = ["--max-size", "40", "--min-size", "16", "--steps", "4", "--channels", "8", "--max-channels", "8",
        "--device", "cpu", "--no-progress", "--sample-every", "2", "--log-every", "1"]


# --- the pyramid ---------------------------------------------------------------------------------


def test_pyramid_sizes_follow_the_paper():
    sizes, factor = pyramid_sizes(512, 307, max_size=128, min_size=25, factor=0.75)
    assert sizes[-1] == (77, 128) and min(sizes[0]) == 25
    assert len(sizes) == 5 and 0.75 <= factor < 0.8  # adjusted towards 1 so the coarsest side is 25 exactly
    ratios = [sizes[i][0] / sizes[i + 1][0] for i in range(len(sizes) - 1)]
    assert all(abs(r - factor) < 0.03 for r in ratios)
    # the paper's 250 px image: 8 scales, never enlarged
    sizes, _ = pyramid_sizes(250, 188, max_size=250, min_size=25, factor=0.75)
    assert sizes[-1] == (188, 250) and len(sizes) == 9
    sizes, _ = pyramid_sizes(100, 60, max_size=250, min_size=25, factor=0.75)
    assert sizes[-1] == (60, 100)
    with pytest.raises(StylekitError, match="--min-size"):
        pyramid_sizes(40, 24, max_size=40, min_size=25, factor=0.75)
    assert [scale_channels(k) for k in range(10)] == [32] * 4 + [64] * 4 + [128] * 2


# --- SIFID-VGG -----------------------------------------------------------------------------------


def _sqrtm_2x2(m: np.ndarray) -> np.ndarray:
    """The principal square root of a 2x2 matrix with positive eigenvalues, in closed form."""
    s = math.sqrt(np.linalg.det(m))
    return (m + s * np.eye(2)) / math.sqrt(np.trace(m) + 2 * s)


def test_frechet_distance_matches_a_float64_reference():
    # non-commuting 2-D covariances: d = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrtm(S1 S2))
    mu1, mu2 = np.array([0.5, -1.0]), np.array([2.0, 0.25])
    s1 = np.array([[2.0, 0.6], [0.6, 1.0]])
    s2 = np.array([[0.5, -0.2], [-0.2, 3.0]])
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * _sqrtm_2x2(s1 @ s2))
    got = frechet_distance(*(torch.from_numpy(a) for a in (mu1, s1, mu2, s2)))
    assert got == pytest.approx(expected, rel=1e-10)
    # diagonal covariances (commuting): sum (sqrt(a) - sqrt(b))^2, in 64 dimensions
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 4, 64), rng.uniform(0.1, 4, 64)
    m1, m2 = rng.normal(size=64), rng.normal(size=64)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(torch.from_numpy(m1), torch.diag(torch.from_numpy(a)), torch.from_numpy(m2),
                           torch.diag(torch.from_numpy(b)))
    assert got == pytest.approx(expected, rel=1e-10)


def test_gaussian_fit_and_identical_features():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64) @ torch.randn(16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mu, s = gaussian(x)
    assert np.allclose(mu.numpy(), x.numpy().mean(0)) and np.allclose(s.numpy(), np.cov(x.numpy(), rowvar=False))
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)
    # a rank-deficient covariance (fewer vectors than channels, as for small images) too
    # (its zero eigenvalues come out as +-1e-15, whose square roots cost ~1e-7 each)
    mu, s = gaussian(x[:10])
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-5)
    assert frechet_distance(mu, s, mu + 1, s) == pytest.approx(16.0, rel=1e-6)


def test_shuffled_patches_permute_tiles():
    img = torch.arange(3 * 8 * 12, dtype=torch.float32).view(3, 8, 12)
    out = shuffled_patches(img, 4, torch.Generator().manual_seed(0))
    assert out.shape == img.shape and not torch.equal(out, img)
    assert torch.equal(out.flatten().sort().values, img.flatten().sort().values)


def test_sifid_vgg_of_an_image_with_itself_is_zero(encoder):
    img = torch.rand(3, 48, 64, generator=torch.Generator().manual_seed(0))
    assert sifid(encoder, img, img) == pytest.approx(0.0, abs=1e-6)
    assert sifid(encoder, img, img.flip(-1)) > 0


# --- end to end ----------------------------------------------------------------------------------


@pytest.fixture
def tiny_image(tmp_path):
    return make_image(tmp_path / "scene.png", (48, 32), seed=3)


def _tensors(run):
    return load_file(str(run / "model.safetensors"))


def _same_models(a, b):
    ta, tb = _tensors(a), _tensors(b)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_tiny_run_end_to_end(tiny_image, tmp_path, monkeypatch, capsys):
    straight, staged, killed = tmp_path / "straight", tmp_path / "staged", tmp_path / "killed"
    assert main(["train", "singan", str(tiny_image), "-o", str(straight), *TINY]) == 0
    model = _tensors(straight)
    meta = json.loads((straight / "singan.json").read_text())
    assert [tuple(s["size"]) for s in meta["scales"]] == [(16, 24), (21, 31), (27, 40)]
    assert meta["scales"][0]["noise_amp"] == 1.0 and 0 < meta["scales"][1]["noise_amp"] < 0.5
    assert {k.split(".")[1] for k in model if k.startswith("g.")} == {"0", "1", "2"}
    assert (straight / "samples.png").exists() and (straight / "scales" / "2" / "samples" / "step_0000004.png").exists()

    # stop after the first scale, resume at the next: the same model bit for bit
    assert main(["train", "singan", str(tiny_image), "-o", str(staged), *TINY, "--max-scales", "1"]) == 0
    assert {k.split(".")[1] for k in _tensors(staged) if k.startswith("g.")} == {"0"}
    assert main(["train", "singan", str(tiny_image), "-o", str(staged), *TINY, "--resume"]) == 0
    assert _same_models(straight, staged)

    # Ctrl-C in the middle of scale 1: checkpointed there, resumed from it, the same model again
    from stylekit.singan.train import SinGANScaleTask

    original = SinGANScaleTask.train_step

    def interrupted(self, step):
        if self.scale == 1 and step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, step)

    monkeypatch.setattr(SinGANScaleTask, "train_step", interrupted)
    assert main(["train", "singan", str(tiny_image), "-o", str(killed), *TINY]) == 130
    monkeypatch.setattr(SinGANScaleTask, "train_step", original)
    assert "stopped in scale 1 at iteration 2" in capsys.readouterr().err
    assert main(["train", "singan", str(tiny_image), "-o", str(killed), *TINY, "--resume"]) == 0
    assert _same_models(straight, killed)
    with open(killed / "scales" / "1" / "log.csv") as fh:
        assert [int(row.split(",")[0]) for row in fh.read().splitlines()[1:]] == [1, 2, 3, 4]

    # samples at another size and aspect ratio, and from a later start scale
    out = tmp_path / "samples"
    assert main(["singan", "sample", str(straight), "-n", "3", "--size", "70x20", "-o", str(out), "--device", "cpu",
                 "--grid", str(tmp_path / "grid.png")]) == 0
    assert Image.open(tmp_path / "grid.png").size == (3 * 70 + 2 * 2, 20)
    files = sorted(out.glob("sample_*.png"))
    assert len(files) == 3 and all(Image.open(f).size == (70, 20) for f in files)
    a, b = (np.asarray(Image.open(f), dtype=np.float32) for f in files[:2])
    assert np.abs(a - b).mean() > 0.5  # different noise, different samples
    # no seed replays the training stream of z*: sample 0 is not the reconstruction
    from stylekit.singan.model import sample_generator
    from stylekit.singan.train import load_model

    pyramid = load_model(straight)
    for seed in (0, 1):
        sample = pyramid.generate(1, generator=sample_generator(seed))
        assert (sample - pyramid.reconstruct()[-1]).abs().mean() > 1e-3
    assert main(["singan", "sample", str(straight), "-n", "1", "--start-scale", "2", "-o", str(out / "k2")]) == 0
    assert Image.open(out / "k2" / "sample_000.png").size == (40, 27)

    # the applications
    composite = make_image(tmp_path / "composite.png", (60, 40), seed=5)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:25, 20:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    for app, extra in (("paint2image", []), ("harmonize", ["--mask", str(tmp_path / "mask.png")]),
                       ("edit", ["--mask", str(tmp_path / "mask.png"), "--start-scale", "2"])):
        result = tmp_path / f"{app}.png"
        assert main(["singan", app, str(straight), str(composite), *extra, "-o", str(result)]) == 0
        assert Image.open(result).size == (40, 27)
    # outside the (dilated, feathered) mask the composite is kept
    edited = np.asarray(Image.open(tmp_path / "edit.png"), dtype=np.float32)
    resized = np.asarray(Image.open(composite).convert("RGB").resize((40, 27), Image.Resampling.BICUBIC), np.float32)
    assert np.abs(edited[:, :3] - resized[:, :3]).mean() < 12
    assert main(["singan", "superres", str(straight), "--factor", "2", "-o", str(tmp_path / "sr.png")]) == 0
    assert Image.open(tmp_path / "sr.png").size == (80, 54)


def test_bad_inputs_exit_2(tiny_image, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "singan", str(tiny_image), "-o", str(run), *TINY, "--max-scales", "2"]) == 0
    capsys.readouterr()
    wide = make_image(tmp_path / "wide.png", (90, 30), seed=1)
    make_image(tmp_path / "composite.png", (60, 40), seed=5)
    Image.new("L", (30, 20), 255).save(tmp_path / "small_mask.png")
    Image.new("L", (60, 40), 0).save(tmp_path / "black_mask.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    cases = [
        (["train", "singan", str(tmp_path / "missing.png"), "-o", str(tmp_path / "r2"), *TINY], "not found"),
        (["train", "singan", str(tmp_path / "broken.png"), "-o", str(tmp_path / "r2"), *TINY], "not an image"),
        (["train", "singan", str(tiny_image), "-o", str(run), *TINY], "--resume"),
        (["train", "singan", str(tiny_image), "-o", str(run), *TINY, "--resume", "--steps", "5"], "different configuration"),
        (["train", "singan", str(tiny_image), "-o", str(tmp_path / "r3"), *TINY, "--scale-factor", "1.5"], "--scale-factor"),
        (["train", "singan", str(tiny_image), "-o", str(tmp_path / "r3"), *TINY[4:], "--max-size", "20", "--min-size", "16"],
         "--min-size"),
        (["singan", "sample", str(tmp_path / "nowhere"), "-o", str(tmp_path / "s")], "not found"),
        (["singan", "sample", str(tmp_path), "-o", str(tmp_path / "s")], "no SinGAN model"),
        (["singan", "sample", str(run), "-o", str(tmp_path / "s"), "--size", "big"], "WxH"),
        (["singan", "sample", str(run), "-o", str(tmp_path / "s"), "--start-scale", "7"], "--start-scale"),
        (["singan", "paint2image", str(run), str(wide), "-o", str(tmp_path / "p.png")], "aspect"),
        (["singan", "paint2image", str(run), str(tmp_path / "composite.png"), "-o", str(tmp_path / "p.gif")], "format"),
        (["singan", "harmonize", str(run), str(tmp_path / "composite.png"), "--mask", str(tmp_path / "small_mask.png"),
          "-o", str(tmp_path / "h.png")], "same size"),
        (["singan", "harmonize", str(run), str(tmp_path / "composite.png"), "--mask", str(tmp_path / "black_mask.png"),
          "-o", str(tmp_path / "h.png")], "selects nothing"),
        (["singan", "edit", str(run), str(tmp_path / "composite.png"), "--start-scale", "0", "-o", str(tmp_path / "e.png")],
         "--start-scale"),
        (["singan", "superres", str(run), "--factor", "0.5", "-o", str(tmp_path / "sr.png")], "--factor"),
        (["singan", "score", str(run), "-n", "0"], "-n"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("note: ")]
        assert len(lines) == 1 and lines[0].startswith("stylekit: error:") and message in lines[0], (argv, lines)
    # a model with 2 of its 3 scales still samples, at scale 1's size, and says so
    assert main(["singan", "sample", str(run), "-n", "1", "-o", str(tmp_path / "partial")]) == 0
    assert "2 of 3 scales" in capsys.readouterr().err
    assert Image.open(tmp_path / "partial" / "sample_000.png").size == (31, 21)


def test_score_writes_a_table_and_json(tiny_image, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "singan", str(tiny_image), "-o", str(run), *TINY]) == 0
    capsys.readouterr()
    assert main(["singan", "score", str(run), "-n", "2", "--patch-grid", "2"]) == 0
    out = capsys.readouterr().out
    assert "NOT the paper's Inception SIFID" in out and "shuffled 2x2 patches" in out
    result = json.loads((run / "sifid_vgg.json").read_text())
    rows = result["rows"]
    assert set(rows) == {"samples", "reconstruction", "shuffled 2x2 patches", "real + noise (sigma 0.05)"}
    assert all(len(rows[k]["values"]) == 2 for k in ("samples", "shuffled 2x2 patches"))
    assert all(v >= 0 for row in rows.values() for v in row["values"])
