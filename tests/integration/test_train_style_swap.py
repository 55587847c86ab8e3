"""The style-swap inverse-network trainer: its training targets, a tiny run, fine-tuning."""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

from stylekit.cli import main
from stylekit.functional import style_swap

from ..conftest import make_image

TINY = ["--resize", "40", "--crop", "32", "--batch-size", "3", "--precision", "fp32", "--device", "cpu"]


@pytest.fixture
def tiny_data(tmp_path):
    for i in range(3):
        make_image(tmp_path / "content" / f"c{i}.png", (44, 40), seed=i)
        make_image(tmp_path / "style" / f"s{i}.png", (40, 48), seed=20 + i)
    return tmp_path / "content", tmp_path / "style"


def test_targets_mix_content_style_and_swap(tiny_data):
    from stylekit.style_swap.train import StyleSwapTrainConfig, StyleSwapTrainTask

    content_dir, style_dir = tiny_data
    cfg = StyleSwapTrainConfig(content=str(content_dir), style=str(style_dir), resize=40, crop=32,
                               batch_size=3, precision="fp32", device="cpu")
    task = StyleSwapTrainTask(cfg)
    g = torch.Generator().manual_seed(0)
    c, s = torch.rand(3, 3, 32, 32, generator=g), torch.rand(3, 3, 32, 32, generator=g)
    target = task.targets(c, s)
    fc, fs = task.encoder.encode(c), task.encoder.encode(s)
    assert torch.allclose(target[0], fc[0]) and torch.allclose(target[1], fs[1])
    assert torch.allclose(target[2:3], style_swap(fc[2:3], fs[2:3]), atol=1e-6)
    total, terms = task.losses(c, s)
    assert set(terms) == {"feature", "tv"} and total.item() == pytest.approx(sum(t.item() for t in terms.values()))


def test_tiny_run_and_fine_tuning_start(tiny_data, tmp_path, decoder_file):
    content, style = tiny_data
    run = tmp_path / "run"
    args = ["train", "style-swap", "--content", str(content), "--style", str(style), "--out", str(run), *TINY,
            "--init-weights", str(decoder_file), "--log-every", "1", "--sample-every", "0", "--no-progress"]
    assert main([*args, "--max-steps", "1", "--lr", "1e-12"]) == 0
    # with a vanishing learning rate one step leaves the fine-tuning start (the given weights) in place
    start, after = load_file(str(decoder_file)), load_file(str(run / "weights.safetensors"))
    assert all(torch.allclose(start[k], after[k], atol=1e-6) for k in start)
    with open(run / "log.csv") as fh:
        row = next(csv.DictReader(fh))
    assert {"feature", "tv"} <= set(row)
    # resuming does not need the start weights any more
    moved = decoder_file.with_name("moved.safetensors")
    decoder_file.rename(moved)
    try:
        assert main([*args, "--max-steps", "2", "--lr", "1e-12", "--resume"]) == 0
    finally:
        moved.rename(decoder_file)
