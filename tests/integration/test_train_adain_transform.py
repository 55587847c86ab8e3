"""The covariance-transform trainer: its loss, a tiny run whose weights the stylizer loads, and resume."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import stylekit
from stylekit.cli import main

from .test_train_adain import (LAYERS, TINY, adain_reference, mean_std_reference, read_log,  # noqa: F401 (a fixture)
                               tiny_data)


def train_args(data, run_dir, *extra):
    content, style = data
    return ["train", "adain-transform", "--content", str(content), "--style", str(style), "--out", str(run_dir),
            *TINY, "--no-progress", *extra]


def test_loss_keeps_the_content_features_and_asks_for_the_styles_statistics_and_gram(tiny_data):
    """At the start the transform is AdaIN: the content term compares the output's
    relu3_1 with the *content's*, the style terms are the mean/std and Gram losses,
    the structure term is 1 - SSIM of the output's luma against the content's."""
    from stylekit.measures import ssim_gray
    from stylekit.adain.train_transform import TransformTrainConfig, TransformTrainTask

    content_dir, style_dir = tiny_data
    cfg = TransformTrainConfig(content=str(content_dir), style=str(style_dir), resize=40, crop=32, batch_size=2,
                               precision="fp32", device="cpu", style_weight=7.0, content_weight=0.5,
                               gram_weight=3.0, ssim_weight=2.0, rank=8)
    task = TransformTrainTask(cfg, warn=lambda m: None)
    g = torch.Generator().manual_seed(0)
    c, s = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    total, parts = task.losses(c, s)

    def gram(x):
        flat = x.flatten(2)
        return flat @ flat.transpose(1, 2) / flat.shape[-1]

    fc, fs, _, out, fo = adain_reference(task, c, s)  # an untrained transform is AdaIN
    ref_ssim = 1 - sum(ssim_gray(o.clamp(0, 1), x) for o, x in zip(out, c)) / 2
    ref_c = F.mse_loss(fo["relu3_1"], fc)
    ref_s = mean_std_reference(fo, fs)
    ref_g = sum(F.mse_loss(gram(fo[l]), gram(fs[l])) for l in LAYERS)
    assert parts["content"].item() == pytest.approx(ref_c.item(), rel=1e-4)
    assert parts["style"].item() == pytest.approx(ref_s.item(), rel=1e-4)
    assert parts["gram"].item() == pytest.approx(ref_g.item(), rel=1e-4)
    assert parts["ssim"].item() == pytest.approx(ref_ssim, rel=1e-4)
    assert total.item() == pytest.approx(0.5 * ref_c.item() + 7.0 * ref_s.item() + 3.0 * ref_g.item() + 2.0 * ref_ssim,
                                         rel=1e-4)
    assert not any(p.requires_grad for p in task.decoder.parameters())


def test_a_short_run_trains_only_the_transform_and_the_stylizer_loads_it(tiny_data, tmp_path):
    run = tmp_path / "run"
    decoder_before = {k: v.clone() for k, v in stylekit.load("adain").decoder.state_dict().items()}
    assert main(train_args(tiny_data, run, "--max-steps", "3", "--log-every", "1", "--rank", "8", "--lr", "1e-3")) == 0
    assert [r["step"] for r in read_log(run)] == ["1", "2", "3"]
    assert {"content", "style", "gram", "ssim"} <= set(read_log(run)[0])
    weights = load_file(str(run / "weights.safetensors"))
    assert weights["compress.weight"].shape == (8, 256, 1, 1) and weights["expand.weight"].abs().sum() > 0
    model = stylekit.load("adain", transform_weights=run / "weights.safetensors", device="cpu")
    assert all(torch.equal(v, decoder_before[k]) for k, v in model.decoder.state_dict().items())
    content, style = torch.rand(3, 40, 56), torch.rand(3, 32, 32)
    out = model.stylize(content, style)
    plain = stylekit.load("adain", device="cpu", transform_weights=False).stylize(content, style)
    assert out.shape == (3, 40, 56) and (out - plain).abs().max() > 0


def test_resume_continues_bit_for_bit_and_paper_decoder_flags_are_refused(tiny_data, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ("--rank", "4", "--lr", "1e-3", "--sample-every", "0")
    assert main(train_args(tiny_data, straight, "--max-steps", "4", *common)) == 0
    assert main(train_args(tiny_data, resumed, "--max-steps", "2", *common)) == 0
    assert main(["train", "adain-transform", "--out", str(resumed), "--resume", "--max-steps", "4", "--no-progress"]) == 0
    a, b = load_file(str(straight / "weights.safetensors")), load_file(str(resumed / "weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert main(train_args(tiny_data, tmp_path / "p", "--max-steps", "1", "--pyramid")) == 2
