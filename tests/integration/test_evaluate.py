"""stylekit evaluate: per-pair losses, baselines, averages, JSON."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from stylekit.cli import main
from stylekit.evaluate import score

from ..conftest import make_image


def test_score_matches_definitions(encoder):
    g = torch.Generator().manual_seed(0)
    out, content, style = (torch.rand(3, 40, 48, generator=g) for _ in range(3))
    got = score(encoder, out, content, style)
    layers = ("relu1_1", "relu2_1", "relu3_1")
    fo, fs = encoder(out[None], layers), encoder(style[None], layers)
    fc = encoder.encode(content[None])
    assert got["content"] == pytest.approx(((fo["relu3_1"] - fc) ** 2).sum().item() / fc.numel(), rel=1e-5)

    def stats(x):
        return x.mean((2, 3)), (x.var((2, 3), correction=0) + 1e-5).sqrt()

    style_loss = sum(F.mse_loss(stats(fo[l])[0], stats(fs[l])[0]) + F.mse_loss(stats(fo[l])[1], stats(fs[l])[1]) for l in layers)
    assert got["style"] == pytest.approx(style_loss.item(), rel=1e-5)

    def gram(x):
        f = x.reshape(x.shape[1], -1)
        return f @ f.T / f.shape[1]

    gram_loss = sum(F.mse_loss(gram(fo[l]), gram(fs[l])) for l in layers)
    assert got["gram"] == pytest.approx(gram_loss.item(), rel=1e-4)
    assert score(encoder, content, content, style)["content"] == 0


def test_evaluate_command_table_and_json(tmp_path, decoder_file, capsys):
    for i in range(2):
        make_image(tmp_path / "c" / f"c{i}.png", (40, 32), seed=i)
        make_image(tmp_path / "s" / f"s{i}.jpg", (36, 36), seed=5 + i)
    out = tmp_path / "eval.json"
    code = main(["evaluate", "--content", str(tmp_path / "c"), "--style", str(tmp_path / "s"), "--weights",
                 str(decoder_file), "--size", "32", "--style-size", "32", "--out", str(out), "--no-progress"])
    assert code == 0
    table = capsys.readouterr().out
    assert "content image itself" in table and "style loss ratio" in table
    result = json.loads(out.read_text())
    assert result["count"] == 4 and len(result["pairs"]) == 4
    pair = result["pairs"][0]
    assert {"content", "style", "gram", "seconds", "baseline_style"} <= set(pair)
    mean = result["mean"]
    assert mean["style"] == pytest.approx(sum(p["style"] for p in result["pairs"]) / 4)
    assert mean["style_ratio"] == pytest.approx(mean["style"] / mean["baseline_style"])
    assert result["transform"] is None  # a decoder of one's own runs plain AdaIN


def test_evaluate_with_a_transform_records_it(tmp_path, decoder_file, capsys):
    from stylekit.adain.transform import CovarianceTransform
    from stylekit.files import save_tensors

    make_image(tmp_path / "c" / "c.png", (40, 32), seed=1)
    make_image(tmp_path / "s" / "s.jpg", (36, 36), seed=2)
    transform = CovarianceTransform(256, 4)
    with torch.no_grad():
        transform.expand.weight.normal_(0, 0.2, generator=torch.Generator().manual_seed(0))
    save_tensors(tmp_path / "t.safetensors", transform.state_dict(), {"kind": "adain-transform"})
    common = ["evaluate", "--content", str(tmp_path / "c"), "--style", str(tmp_path / "s"), "--weights",
              str(decoder_file), "--size", "32", "--style-size", "32", "--no-progress"]
    results = {}
    for name, extra in (("plain", []), ("transform", ["--transform", str(tmp_path / "t.safetensors")])):
        assert main([*common, "--out", str(tmp_path / f"{name}.json"), *extra]) == 0
        results[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert results["transform"]["transform"] == str(tmp_path / "t.safetensors")
    assert results["transform"]["mean"]["style"] != results["plain"]["mean"]["style"]
    # the shipped decoder runs the shipped transform unless told "none"
    shipped = [a for a in common if a not in ("--weights", str(decoder_file))]
    for name, extra, recorded in (("shipped", [], "shipped"), ("none", ["--transform", "none"], None)):
        assert main([*shipped, "--out", str(tmp_path / f"{name}.json"), *extra]) == 0
        assert json.loads((tmp_path / f"{name}.json").read_text())["transform"] == recorded
