"""torchrun with 2 CPU processes (gloo on loopback): DDP training equals
single-process training with the same global batch; resume works on another
world size; sharded batch stylization writes every pair exactly once."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from stylekit.distributed import Context

from ..conftest import PROBE_EXIT, make_image

pytestmark = pytest.mark.slow

TINY = ["--resize", "40", "--crop", "32", "--batch-size", "4", "--precision", "fp32", "--device", "cpu",
        "--log-every", "1", "--sample-every", "0", "--no-progress", "--lr", "1e-3"]


def torchrun(*args, processes=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
           "-m", "stylekit", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env())


def single(*args):
    return subprocess.run([sys.executable, "-m", "stylekit", *args], capture_output=True, text=True, timeout=300, env=_env())


def _env():
    import os

    env = dict(os.environ, OMP_NUM_THREADS="1")
    return env


@pytest.fixture
def data(tmp_path):
    for i in range(4):
        make_image(tmp_path / "content" / f"c{i}.png", (44 + 4 * i, 40), seed=i)
        make_image(tmp_path / "style" / f"s{i}.png", (40, 44), seed=30 + i)
    return tmp_path / "content", tmp_path / "style"


def losses(run_dir):
    with open(run_dir / "log.csv") as fh:
        return [(r["step"], float(r["loss"])) for r in csv.DictReader(fh)]


def assert_same_training(a, b):
    """Same losses at every step, and the same weights up to float noise.

    Adam's first steps move each weight by about lr * sign(gradient), so a
    gradient entry at float-noise level (summed in another order across two
    processes) can flip one weight by ~2 lr: compare weights by their mean
    difference and the share of entries that differ, not the maximum.
    """
    wa, wb = load_file(str(a / "weights.safetensors")), load_file(str(b / "weights.safetensors"))
    diff = torch.cat([(wa[k] - wb[k]).abs().flatten() for k in wa])
    assert diff.mean().item() < 1e-6  # weights moved ~3e-3 in these 3 steps (lr 1e-3)
    assert (diff > 1e-5).float().mean().item() < 0.02
    la, lb = losses(a), losses(b)
    assert [s for s, _ in la] == [s for s, _ in lb]
    assert [v for _, v in la] == pytest.approx([v for _, v in lb], rel=1e-5)


def test_shards_cover_every_item_once():
    items = list(range(11))
    for world in (1, 2, 3, 5):
        shards = [Context(rank=r, world_size=world).shard(items) for r in range(world)]
        assert sorted(x for shard in shards for x in shard) == items
    with pytest.raises(ValueError, match="divisible"):
        Context(rank=0, world_size=3).slice(8)
    assert Context(rank=1, world_size=2).slice(8) == slice(4, 8)


PROBE = """
import sys, torch
from stylekit.{module} import {config}, {task}
cfg = {config}(content=sys.argv[1], style=sys.argv[2], resize=40, crop=32, batch_size=4, precision="fp32", device="cpu")
task = {task}(cfg, warn=lambda m: None)
values = task.backward_step(0)
if task.ctx.is_main:
    torch.save({{"grads": {{n: p.grad for n, p in task.decoder.named_parameters()}}, "loss": values["loss"]}}, sys.argv[3])
""" + PROBE_EXIT
TASKS = {"adain": ("adain.train", "AdaINTrainConfig", "AdaINTrainTask"),
         "style-swap": ("style_swap.train", "StyleSwapTrainConfig", "StyleSwapTrainTask")}


@pytest.mark.parametrize("trainer", ["adain", "style-swap"])
def test_one_ddp_step_has_the_single_process_gradient(data, tmp_path, trainer):
    """The all-reduced gradient of 2 processes x 2 images equals the gradient of one process x 4 images."""
    module, config, task = TASKS[trainer]
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE.format(module=module, config=config, task=task))
    content, style = data
    args = [str(probe), str(content), str(style)]
    one = subprocess.run([sys.executable, *args, str(tmp_path / "one.pt")], capture_output=True, text=True, env=_env())
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          *args, str(tmp_path / "two.pt")], capture_output=True, text=True, env=_env())
    assert two.returncode == 0, two.stderr
    a = torch.load(tmp_path / "one.pt", weights_only=True)
    b = torch.load(tmp_path / "two.pt", weights_only=True)
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    for name, grad in a["grads"].items():
        scale = grad.abs().max().item()
        assert torch.allclose(grad, b["grads"][name], rtol=1e-4, atol=1e-5 * scale), name


@pytest.mark.parametrize("trainer", ["adain", "style-swap"])
def test_ddp_step_equals_single_process(data, tmp_path, trainer):
    content, style = data
    common = ["train", trainer, "--content", str(content), "--style", str(style), *TINY, "--max-steps", "3"]
    one = single(*common, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    two = torchrun(*common, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    assert "2 processes" in two.stderr
    assert_same_training(tmp_path / "one", tmp_path / "two")


def test_resume_on_another_world_size(data, tmp_path):
    content, style = data
    common = ["train", "adain", "--content", str(content), "--style", str(style), *TINY, "--save-every", "2"]
    assert single(*common, "--max-steps", "4", "--out", str(tmp_path / "straight")).returncode == 0
    assert single(*common, "--max-steps", "2", "--out", str(tmp_path / "moved")).returncode == 0
    resumed = torchrun(*common, "--max-steps", "4", "--out", str(tmp_path / "moved"), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_training(tmp_path / "straight", tmp_path / "moved")


def test_sharded_batch_stylization(tmp_path, decoder_file):
    for i in range(3):
        make_image(tmp_path / "c" / f"c{i}.png", (40, 32), seed=i)
    for i in range(2):
        make_image(tmp_path / "s" / f"s{i}.png", (32, 32), seed=10 + i)
    out = tmp_path / "out"
    run = torchrun("stylize", str(tmp_path / "c"), "--style", str(tmp_path / "s"), "--output-dir", str(out),
                   "--weights", str(decoder_file), "--size", "32", "--no-progress")
    assert run.returncode == 0, run.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"c{i}_stylized_s{j}.jpg" for i in range(3) for j in range(2))
    # each process wrote its own share: 3 + 3, nothing twice
    assert run.stderr.count("3 written, 0 failed, in") == 2, run.stderr
