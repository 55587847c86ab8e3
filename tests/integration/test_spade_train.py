"""SPADE training and synthesis end to end on tiny models: the run directory,
bit-exact resume, `stylekit synthesize` and `stylekit spade evaluate`, that a
short run learns each class's colour, and torchrun (synchronised batch norm +
DDP) against one process."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from stylekit.cli import main
from stylekit.spade.synthetic import make_dataset

from ..conftest import PROBE_EXIT

# a generator of 8 channels at 32 px from a 4x4 grid, a 2-layer discriminator, no VGG loss
TINY = ["--resize", "32", "--crop", "32", "--batch-size", "2", "--width", "8", "--num-upsampling", "3",
        "--max-width", "32", "--spade-hidden", "8", "--d-width", "8", "--d-layers", "2", "--vgg-weight", "0",
        "--precision", "fp32", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("spade_data")
    make_dataset(root / "train", count=12, size=32, seed=0)
    make_dataset(root / "held", count=6, size=32, seed=1)
    return root


def train_args(dataset, run_dir, *extra, data="train"):
    return ["train", "spade", "--labels", str(dataset / data / "labels"), "--images", str(dataset / data / "images"),
            "--num-classes", "4", "--out", str(run_dir), *TINY, *extra]


def read_log(run_dir: Path) -> list[dict]:
    with open(run_dir / "log.csv") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def tiny_run(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(train_args(dataset, run, "--max-steps", "2", "--log-every", "1", "--sample-every", "2")) == 0
    return run


@pytest.fixture(scope="module")
def vae_run(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "vae"
    assert main(train_args(dataset, run, "--vae", "--z-dim", "8", "--max-steps", "2", "--sample-every", "2")) == 0
    return run


def test_run_writes_weights_log_samples(tiny_run, dataset, capsys):
    rows = read_log(tiny_run)
    assert [r["step"] for r in rows] == ["1", "2"]
    assert {"loss_g", "loss_d", "g_gan", "g_feat", "d_real", "d_fake", "lr", "steps_per_s"} <= set(rows[0])
    assert "g_vgg" not in rows[0] and "g_kl" not in rows[0]
    assert float(rows[0]["lr"]) == 1e-4
    with safe_open(str(tiny_run / "weights.safetensors"), framework="pt") as fh:
        meta = fh.metadata()
        keys = set(fh.keys())
    assert meta["kind"] == "spade" and json.loads(meta["model"])["num_classes"] == 4
    assert json.loads(meta["config"])["lr_d"] == 4e-4
    assert "generator.conv_img.weight" in keys and not any(k.startswith("encoder.") for k in keys)
    grid = Image.open(tiny_run / "samples" / "step_0000002.png")
    assert grid.size[0] > 3 * 32  # label map | generated | real
    assert (tiny_run / "checkpoint.pt").exists()
    # a second run into the same directory must not silently overwrite it
    assert main(train_args(dataset, tiny_run, "--max-steps", "2")) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_resume_is_bit_exact(dataset, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ("--log-every", "1", "--sample-every", "0", "--vae", "--z-dim", "8")  # VAE: the noise is resumed too
    assert main(train_args(dataset, straight, "--max-steps", "4", *common)) == 0
    assert main(train_args(dataset, resumed, "--max-steps", "2", *common)) == 0
    assert main(train_args(dataset, resumed, "--max-steps", "4", "--resume", *common)) == 0
    a, b = load_file(str(straight / "weights.safetensors")), load_file(str(resumed / "weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    drop = ("elapsed_s", "steps_per_s")
    assert [{k: v for k, v in r.items() if k not in drop} for r in read_log(straight)] == \
           [{k: v for k, v in r.items() if k not in drop} for r in read_log(resumed)]
    # the checkpoint holds both networks and both optimisers
    state = torch.load(resumed / "checkpoint.pt", weights_only=True)["task"]
    assert {"g", "d", "generator"} <= set(state) and state["d"]["optimizer"]["param_groups"][0]["lr"] == 4e-4
    assert state["g"]["optimizer"]["param_groups"][0]["betas"] == (0.0, 0.9)


def test_training_errors(dataset, tmp_path, capsys):
    assert main(train_args(dataset, tmp_path / "a", "--max-steps", "1") + ["--num-classes", "3"]) == 2
    assert "label value 3 is out of range for --num-classes 3" in capsys.readouterr().err
    assert main(train_args(dataset, tmp_path / "b", "--max-steps", "1") + ["--crop", "20"]) == 2
    assert "multiple of 2**num_upsampling" in capsys.readouterr().err
    assert main(train_args(dataset, tmp_path / "c", "--max-steps", "1") + ["--labels", str(tmp_path / "none")]) == 2
    assert "labels directory not found" in capsys.readouterr().err


def test_one_step_in_bf16_autocast(dataset, tmp_path):
    args = train_args(dataset, tmp_path / "bf16", "--max-steps", "1", "--log-every", "1", "--sample-every", "1")
    assert main(args + ["--precision", "bf16"]) == 0
    row = read_log(tmp_path / "bf16")[0]
    assert all(np.isfinite(float(row[k])) for k in ("loss_g", "loss_d"))


def _mask(path: Path, size=(30, 20), classes=4) -> Path:
    w, h = size
    labels = (np.arange(w)[None, :] * classes // w).repeat(h, 0).astype(np.uint8)
    Image.fromarray(labels, "L").save(path)
    return path


def test_synthesize_end_to_end(tiny_run, tmp_path, capsys):
    weights = str(tiny_run / "weights.safetensors")
    mask = _mask(tmp_path / "mask.png", (30, 20))  # not a multiple of 8: resized there and back
    out = tmp_path / "out" / "synth.png"
    assert main(["synthesize", "--mask", str(mask), "--weights", weights, "-o", str(out), "--device", "cpu"]) == 0
    assert Image.open(out).size == (30, 20)
    assert capsys.readouterr().out.strip() == str(out)
    again = tmp_path / "again.png"
    assert main(["synthesize", "--mask", str(mask), "--weights", weights, "-o", str(again), "--device", "cpu"]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(again)))  # eval mode: deterministic


def test_synthesize_errors(tiny_run, tmp_path, capsys, decoder_file):
    weights = str(tiny_run / "weights.safetensors")
    mask, out = _mask(tmp_path / "mask.png", (32, 32)), str(tmp_path / "o.png")
    ref = tmp_path / "ref.png"
    Image.new("RGB", (40, 40), (10, 200, 30)).save(ref)
    cases = [
        (["--style", str(ref)], "trained without the image encoder; --style needs a model trained with --vae"),
        (["--mask", str(_mask(tmp_path / "big.png", (32, 32), classes=6))], "label value 5 is out of range"),
        (["--weights", str(decoder_file)], "is not a SPADE generator"),
        (["--weights", str(tmp_path / "missing.safetensors")], "weights file not found"),
        (["-o", str(tmp_path / "o.gif")], "unsupported output format"),
    ]
    for extra, message in cases:
        args = ["synthesize", "--mask", str(mask), "--weights", weights, "-o", out, "--device", "cpu"]
        for flag, value in zip(extra[::2], extra[1::2]):
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        assert main(args) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("stylekit: error:") and message in err, (extra, err)
    assert not Path(out).exists()


def test_vae_synthesis_with_and_without_reference(vae_run, dataset, tmp_path):
    weights = str(vae_run / "weights.safetensors")
    with safe_open(weights, framework="pt") as fh:
        assert any(k.startswith("encoder.") for k in fh.keys())
    mask = dataset / "held" / "labels" / "00000.png"
    ref = dataset / "held" / "images" / "00001.png"
    outs = {}
    for name, extra in {"ref": ["--style", str(ref)], "ref2": ["--style", str(ref)],
                        "seed0": [], "seed1": ["--seed", "1"]}.items():
        outs[name] = tmp_path / f"{name}.png"
        assert main(["synthesize", "--mask", str(mask), "--weights", weights, "-o", str(outs[name]),
                     "--device", "cpu", *extra]) == 0
    img = {k: np.asarray(Image.open(v), dtype=np.int16) for k, v in outs.items()}
    assert img["ref"].shape == (32, 32, 3)
    assert np.array_equal(img["ref"], img["ref2"])  # the reference's mean code: deterministic
    assert not np.array_equal(img["seed0"], img["seed1"])  # random codes from the prior differ


def test_spade_evaluate_cli(tiny_run, dataset, tmp_path, capsys):
    held = dataset / "held"
    out = tmp_path / "eval.json"
    args = ["spade", "evaluate", "--weights", str(tiny_run / "weights.safetensors"), "--labels", str(held / "labels"),
            "--images", str(held / "images"), "--device", "cpu"]
    assert main([*args, "--json", str(out), "--grid", str(tmp_path / "grid.png"), "--grid-rows", "3"]) == 0
    text = capsys.readouterr().out
    assert "per-class colour error on 6 pairs at 32 px" in text and "water" in text and "label-blind" in text
    result = json.loads(out.read_text())
    assert result["images"] == 6 and set(result["per_class"]) <= {"0", "1", "2", "3"} and result["mean"] > 0
    grid = Image.open(tmp_path / "grid.png")  # 3 rows of label map | generated | real, at twice the size
    assert grid.size == (3 * 64 + 2 * 2, 3 * 64 + 2 * 2)
    assert main([*args, "--untrained"]) == 0
    assert "mean" in capsys.readouterr().out


@pytest.mark.slow
def test_short_run_learns_the_colour_of_each_class(dataset, tmp_path):
    """A few dozen steps of a tiny model: the per-class colour error on held-out
    masks falls well below that of the same generator untrained, and below the
    label-blind baseline (the set's mean colour everywhere)."""
    from stylekit.spade.data import LabelledBank
    from stylekit.spade.synthesize import Synthesizer, evaluate_colour_error

    run = tmp_path / "learn"
    steps = "60"
    assert main(train_args(dataset, run, "--max-steps", steps, "--batch-size", "4", "--lr-g", "4e-4",
                           "--sample-every", "0", "--log-every", "20")) == 0
    held = LabelledBank.from_dirs(dataset / "held" / "labels", dataset / "held" / "images", 4, resize=32)
    trained = Synthesizer.load(run / "weights.safetensors", device="cpu")
    untrained = Synthesizer.untrained(trained.config, seed=0, device="cpu")
    after, before = evaluate_colour_error(trained, held), evaluate_colour_error(untrained, held)
    print(f"colour error: untrained {before['mean']:.1f}, trained {after['mean']:.1f}, "
          f"baseline {after['baseline_mean_colour']:.1f}")
    assert after["mean"] < 0.5 * before["mean"]
    assert after["mean"] < 0.5 * after["baseline_mean_colour"]


PROBE = """
import sys, torch
from stylekit.spade.train import SPADETrainConfig, SPADETrainTask
cfg = SPADETrainConfig(labels=sys.argv[1], images=sys.argv[2], num_classes=4, resize=32, crop=32, batch_size=4,
                       width=8, num_upsampling=3, max_width=32, spade_hidden=8, d_width=8, d_layers=2,
                       vgg_weight=0.0, vae=True, z_dim=8, device="cpu", precision="fp32")
task = SPADETrainTask(cfg, warn=lambda m: None)
task.g.module.train(); task.d.module.train()
seg, real, noise = task.batch()
loss_g, parts, fake = task.generator_losses(seg, real, noise)
task.g.optimizer.zero_grad(); loss_g.backward()
loss_d, _ = task.discriminator_losses(seg, real, fake)
task.d.optimizer.zero_grad(); loss_d.backward()
from stylekit import distributed
values = distributed.mean_over_ranks({"g": loss_g.item(), "d": loss_d.item()}, task.ctx, task.device)
if task.ctx.is_main:
    grads = {f"g.{n}": p.grad for n, p in task.g.module.named_parameters()}
    grads.update({f"d.{n}": p.grad for n, p in task.d.module.named_parameters()})
    stats = {n: b for n, b in task.g.module.named_buffers() if "running" in n}
    torch.save({"grads": grads, "stats": stats, **values}, sys.argv[3])
""" + PROBE_EXIT


@pytest.mark.slow
def test_one_ddp_step_has_the_single_process_gradients(dataset, tmp_path):
    """2 processes x 2 pairs = 1 process x 4 pairs: the losses, every gradient of
    G, the encoder and D, and the batch-norm running statistics (synchronised)."""
    import os

    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    args = [str(probe), str(dataset / "train" / "labels"), str(dataset / "train" / "images")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, *args, str(tmp_path / "one.pt")], capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                          *args, str(tmp_path / "two.pt")], capture_output=True, text=True, env=env)
    assert two.returncode == 0, two.stderr
    a = torch.load(tmp_path / "one.pt", weights_only=True)
    b = torch.load(tmp_path / "two.pt", weights_only=True)
    assert a["g"] == pytest.approx(b["g"], rel=1e-5) and a["d"] == pytest.approx(b["d"], rel=1e-5)
    # a conv bias just before batch norm has a zero gradient up to float noise: compare
    # against the scale of the whole network's gradient, not of each tensor's
    scale = {net: max(g.abs().max().item() for n, g in a["grads"].items() if n.startswith(net)) for net in ("g.", "d.")}
    for name, grad in a["grads"].items():
        assert torch.allclose(grad, b["grads"][name], rtol=1e-3, atol=1e-5 * scale[name[:2]]), name
    for name, stat in a["stats"].items():
        assert torch.allclose(stat, b["stats"][name], rtol=1e-4, atol=1e-6), name
