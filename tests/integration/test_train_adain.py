"""The AdaIN trainer: the paper's loss, a tiny run, and kill -9 / resume equality."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from stylekit.cli import main
from stylekit.errors import StylekitError

from ..conftest import make_image, run_stylekit

TINY = ["--resize", "40", "--crop", "32", "--batch-size", "2", "--precision", "fp32", "--device", "cpu"]


@pytest.fixture
def tiny_data(tmp_path):
    for i in range(4):
        make_image(tmp_path / "content" / f"c{i}.jpg", (48 + 8 * i, 44), seed=i)
        make_image(tmp_path / "style" / "nested" / f"s{i}.png", (40, 52), seed=10 + i)
    (tmp_path / "content" / "broken.jpg").write_bytes(b"not a jpeg")
    make_image(tmp_path / "style" / "tiny.png", (8, 8), seed=99)
    return tmp_path / "content", tmp_path / "style"


def read_log(run_dir: Path) -> list[dict]:
    with open(run_dir / "log.csv") as fh:
        return list(csv.DictReader(fh))


def train_args(data, run_dir, *extra):
    content, style = data
    return ["train", "adain", "--content", str(content), "--style", str(style), "--out", str(run_dir), *TINY, *extra]


def test_two_steps_write_weights_log_samples(tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--max-steps", "2", "--log-every", "1", "--sample-every", "2", "--no-progress")) == 0
    err = capsys.readouterr().err
    assert err.count("warning: skipping") == 2  # the broken file and the 8x8 image, one line each
    rows = read_log(run)
    assert [r["step"] for r in rows] == ["1", "2"]
    assert {"loss", "content", "style", "lr", "steps_per_s"} <= set(rows[0])
    weights = load_file(str(run / "weights.safetensors"))
    assert "convs.conv3_1.weight" in weights
    assert (run / "samples" / "step_0000002.png").exists() and (run / "checkpoint.pt").exists()
    # a second run into the same directory must not silently overwrite it
    assert main(train_args(tiny_data, run, "--max-steps", "2", "--no-progress")) == 2


def feature_stats(x):
    """float64 per-channel mean and sqrt(biased var + 1e-5) over (H, W): (N, C) each."""
    m = x.mean(dim=(2, 3))
    return m, ((x - m[..., None, None]) ** 2).mean(dim=(2, 3)).add(1e-5).sqrt()


LAYERS = ("relu1_1", "relu2_1", "relu3_1")


def adain_reference(task, c, s):
    """float64, through ``task``'s encoder and decoder: the content's relu3_1
    features, the style's features, the AdaIN target ``t``, the decoder's image
    of ``t`` and that image's features."""
    with torch.no_grad():
        fc = task.encoder(c, LAYERS)["relu3_1"].double()
        fs = {k: v.double() for k, v in task.encoder(s, LAYERS).items()}
        cm, cs = feature_stats(fc)
        sm, ss = feature_stats(fs["relu3_1"])
        t = ss[..., None, None] * (fc - cm[..., None, None]) / cs[..., None, None] + sm[..., None, None]
        out = task.decoder(t.float())
        fo = {k: v.double() for k, v in task.encoder(out, LAYERS).items()}
    return fc, fs, t, out, fo


def mean_std_reference(fo, fs):
    """The mean/std style loss summed over ``LAYERS``, from :func:`feature_stats`."""
    return sum(F.mse_loss(feature_stats(fo[l])[0], feature_stats(fs[l])[0])
               + F.mse_loss(feature_stats(fo[l])[1], feature_stats(fs[l])[1]) for l in LAYERS)


def test_loss_is_the_papers(tiny_data):
    """Content loss against the AdaIN target t (not the content features), mean/std style loss."""
    from stylekit.adain.train import AdaINTrainConfig, AdaINTrainTask

    content_dir, style_dir = tiny_data
    cfg = AdaINTrainConfig(content=str(content_dir), style=str(style_dir), resize=40, crop=32, batch_size=2,
                           precision="fp32", device="cpu", style_weight=7.0, content_weight=0.5)
    task = AdaINTrainTask(cfg, warn=lambda m: None)
    g = torch.Generator().manual_seed(0)
    c, s = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    total, parts = task.losses(c, s)
    loss_c, loss_s = parts["content"], parts["style"]

    _, fs, t, _, fo = adain_reference(task, c, s)
    ref_c = F.mse_loss(fo["relu3_1"], t)
    ref_s = mean_std_reference(fo, fs)
    assert loss_c.item() == pytest.approx(ref_c.item(), rel=1e-4)
    assert loss_s.item() == pytest.approx(ref_s.item(), rel=1e-4)
    assert total.item() == pytest.approx(0.5 * ref_c.item() + 7.0 * ref_s.item(), rel=1e-4)


def test_style_loss_at_several_scales_is_the_sum_over_area_downsampled_copies(tiny_data):
    from stylekit.adain.train import AdaINTrainConfig, AdaINTrainTask
    from stylekit.losses import mean_std_style_loss

    content_dir, style_dir = tiny_data
    cfg = AdaINTrainConfig(content=str(content_dir), style=str(style_dir), resize=64, crop=64, batch_size=2,
                           precision="fp32", device="cpu", style_scales="1,2")
    task = AdaINTrainTask(cfg, warn=lambda m: None)
    g = torch.Generator().manual_seed(1)
    out, s = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    layers = ("relu1_1", "relu2_1", "relu3_1")

    def halve(x):  # the mean of each 2x2 block
        return (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2]) / 4

    with torch.no_grad():
        expected = sum(mean_std_style_loss(task.encoder(a, layers), task.encoder(b, layers), layers).item()
                       for a, b in ((out, s), (halve(out), halve(s))))
        assert task.style_loss(out, s).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(StylekitError, match="too small"):
        AdaINTrainConfig(content=str(content_dir), style=str(style_dir), crop=64, style_scales="1,4")


def test_pyramid_training_runs_and_holds_both_levels_to_their_targets(tiny_data, tmp_path):
    """Two steps through the two-level pyramid; its content loss is the mean of
    both levels' (a decoder that inverted AdaIN exactly would have zero)."""
    from stylekit.adain.train import AdaINTrainConfig, AdaINTrainTask

    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--pyramid", "--style-scales", "1", "--max-steps", "2", "--log-every", "1",
                           "--no-progress")) == 0
    rows = read_log(run)
    assert [r["step"] for r in rows] == ["1", "2"] and all(float(r["content"]) > 0 for r in rows)

    content_dir, style_dir = tiny_data
    cfg = AdaINTrainConfig(content=str(content_dir), style=str(style_dir), resize=64, crop=64, batch_size=2,
                           precision="fp32", device="cpu", pyramid=True)
    task = AdaINTrainTask(cfg, warn=lambda m: None)
    g = torch.Generator().manual_seed(2)
    c, s = torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)
    total, parts = task.losses(c, s)
    assert torch.isfinite(total)
    assert parts["content"].item() == pytest.approx((parts["content_coarse"] + parts["content_fine"]).item() / 2)

    # the coarse level by hand: half-size copies, the AdaIN formula in float64, the decoder, the MSE
    from stylekit.pyramid import resize_image

    enc, dec = task.encoder, task.decoder
    with torch.no_grad():
        fc = enc.encode(resize_image(c, (32, 32)), "relu3_1").double()
        fs = enc.encode(resize_image(s, (32, 32)), "relu3_1").double()
        cm, sm = fc.mean((2, 3), keepdim=True), fs.mean((2, 3), keepdim=True)
        cs = ((fc - cm) ** 2).mean((2, 3), keepdim=True).add(1e-5).sqrt()
        ss = ((fs - sm) ** 2).mean((2, 3), keepdim=True).add(1e-5).sqrt()
        t = ss * (fc - cm) / cs + sm
        ref = F.mse_loss(enc.encode(dec(t.float()), "relu3_1").double(), t)
    assert parts["content_coarse"].item() == pytest.approx(ref.item(), rel=1e-4)


def test_inverse_lr_decay(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--max-steps", "3", "--log-every", "1", "--lr", "1e-3",
                           "--lr-decay", "0.5", "--sample-every", "0", "--no-progress")) == 0
    lrs = [float(r["lr"]) for r in read_log(run)]
    assert lrs == pytest.approx([1e-3 / (1 + 0.5 * s) for s in range(3)])


def test_resume_rejects_changed_config(tiny_data, tmp_path):
    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--max-steps", "1", "--sample-every", "0", "--no-progress")) == 0
    assert main(train_args(tiny_data, run, "--max-steps", "2", "--resume", "--style-weight", "3", "--no-progress")) == 2


def test_resume_of_a_checkpoint_saved_before_a_setting_existed_takes_its_default(tiny_data, tmp_path):
    """A checkpoint without a later setting was trained with its default: it resumes,
    and asking for another value is still refused."""
    from stylekit.training.loop import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    assert main(train_args(tiny_data, run, "--max-steps", "1", "--sample-every", "0", "--no-progress")) == 0
    payload = load_checkpoint(run / "checkpoint.pt")
    del payload["config"]["style_scales"], payload["config"]["pyramid"], payload["config"]["log_every"]
    save_checkpoint(run / "checkpoint.pt", payload)
    assert main(["train", "adain", "--out", str(run), "--resume", "--max-steps", "2", "--no-progress"]) == 0
    assert load_checkpoint(run / "checkpoint.pt")["step"] == 2
    assert main(["train", "adain", "--out", str(run), "--resume", "--max-steps", "3", "--style-weight", "3",
                 "--no-progress"]) == 2


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "stylekit", *args]


@pytest.mark.slow
def test_kill_9_and_resume_equals_uninterrupted_run(tiny_data, tmp_path):
    """kill -9 a run several times at random moments; the resumed run ends with the
    same weights and the same logged losses as a run never interrupted."""
    steps = 36
    common = ["--max-steps", str(steps), "--save-every", "3", "--log-every", "3", "--sample-every", "0", "--no-progress"]
    reference = tmp_path / "reference"
    subprocess.run(_cli(*train_args(tiny_data, reference, *common)), check=True, capture_output=True)

    # The delay before a kill is scaled to this machine's speed (one logging
    # interval of the uninterrupted run): a fixed delay lets a fast machine
    # finish the whole run before any kill lands.
    ref_log = read_log(reference)
    interval_s = (float(ref_log[-1]["elapsed_s"]) - float(ref_log[0]["elapsed_s"])) / (len(ref_log) - 1)

    run = tmp_path / "killed"
    rng = torch.Generator().manual_seed(1)
    kills = 0
    # Kill only after the run has logged progress since it (re)started, then at a
    # random moment within the next logging interval: every attempt moves the run
    # on, however slow the machine is, and the kills land at varied points.
    for attempt in range(30):
        proc = subprocess.Popen(_cli(*train_args(tiny_data, run, *common, "--resume")),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kills < 3:
            rows_before = len(read_log(run)) if (run / "log.csv").exists() else 0
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline:
                if (run / "log.csv").exists() and len(read_log(run)) > rows_before:
                    break
                time.sleep(0.05)
            time.sleep(torch.rand(1, generator=rng).item() * interval_s)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        assert proc.wait(timeout=300) == 0
        break
    else:
        pytest.fail("the run never finished")
    assert kills >= 2, "the test did not interrupt the run; lower the delays"
    assert read_log(run)[-1]["step"] == str(steps)
    ref_rows, rows = read_log(reference), read_log(run)
    assert [(r["step"], r["loss"], r["content"], r["style"]) for r in rows] == [
        (r["step"], r["loss"], r["content"], r["style"]) for r in ref_rows
    ]
    a, b = load_file(str(reference / "weights.safetensors")), load_file(str(run / "weights.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list(run.glob(".*.tmp")), "a temp file was left behind"


def test_short_run_logs_and_samples_and_resume_needs_only_the_run(tiny_data, tmp_path):
    """A run shorter than --log-every and --sample-every still logs its losses and writes
    a sample grid; --resume alone continues it with the run's data folders, sizes and
    --max-steps; a changed value is named."""
    run = tmp_path / "run"
    first = run_stylekit(*train_args(tiny_data, run, "--max-steps", "3", "--log-every", "10", "--sample-every", "500",
                                  "--no-progress"))
    assert first.returncode == 0, first.stderr
    rows = read_log(run)
    assert [r["step"] for r in rows] == ["3"]
    # the logged total is the weighted sum of the logged parts (content weight 1, style weight 10)
    row = {k: float(v) for k, v in rows[0].items() if k in ("loss", "content", "style")}
    assert row["content"] > 0 and row["loss"] == pytest.approx(row["content"] + 10 * row["style"], rel=1e-5)
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000003.png"]

    again = run_stylekit("train", "adain", "--out", run, "--resume", "--no-progress")
    assert again.returncode == 0, again.stderr
    assert "already at step 3 of its --max-steps 3" in again.stderr

    more = run_stylekit("train", "adain", "--out", run, "--resume", "--max-steps", "5", "--no-progress")
    assert more.returncode == 0, more.stderr
    assert "step 5 reached" in more.stderr
    # the shorter interval's row gives way to the one that covers it, as in a run never stopped
    assert [r["step"] for r in read_log(run)] == ["5"]
    config = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)["config"]
    content, style = tiny_data
    assert (config["content"], config["style"]) == (str(content.resolve()), str(style.resolve()))
    assert (config["resize"], config["crop"], config["batch_size"], config["max_steps"]) == (40, 32, 2, 5)

    changed = run_stylekit("train", "adain", "--out", run, "--resume", "--max-steps", "6", "--batch-size", "3")
    assert changed.returncode == 2
    assert changed.stderr.strip().splitlines()[-1].endswith("(--batch-size: 2 -> 3)"), changed.stderr
    fresh = run_stylekit("train", "adain", "--out", tmp_path / "none", "--resume")
    assert fresh.returncode == 2 and "--content is required" in fresh.stderr and "holds no run" in fresh.stderr


def test_log_header_is_written_at_the_first_step(tmp_path):
    from stylekit.training.loop import LoopConfig, run_training

    class Task:
        kind = "probe"
        seen: list = []

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

        def train_step(self, step):
            Task.seen.append((tmp_path / "run" / "log.csv").read_text() if step else None)
            return {"loss": float(step)}

        def learning_rate(self):
            return 0.1

        def write_samples(self, path):
            pass

        def export_weights(self, path):
            Path(path).write_bytes(b"")

    run_training(Task(), {}, tmp_path / "run", LoopConfig(max_steps=3, log_every=100, sample_every=0, progress=False))
    assert Task.seen[1] == "step,elapsed_s,lr,loss,steps_per_s\n"  # after one step, before any row
    rows = read_log(tmp_path / "run")
    assert [(r["step"], float(r["loss"])) for r in rows] == [("3", 1.0)]  # (0 + 1 + 2) / 3
