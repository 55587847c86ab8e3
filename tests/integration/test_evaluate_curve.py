"""stylekit evaluate --curve (the AdaIN paper's Fig. 3) and the optimiser's callback it uses."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from PIL import Image

from stylekit.cli import main
from stylekit.errors import StylekitError
from stylekit.evaluate import check_curve_steps, loss_curve
from stylekit.optimize import optimize_image

from ..conftest import make_image


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rugged(goal):
    """Not a quadratic, so L-BFGS's history and line search both matter."""

    def loss(image):
        d = image - goal
        return {"quartic": (d**4).sum() * 50, "square": (d**2).sum(), "coupled": (d[..., 1:] * d[..., :-1]).sum()}

    return loss


def start_and_goal():
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 8, 6, generator=g), 0.1 + 0.8 * torch.rand(1, 3, 8, 6, generator=g)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_callback_sees_the_iterates_and_changes_nothing(optimizer):
    start, goal = start_and_goal()
    plain = optimize_image(rugged(goal), start, steps=12, optimizer=optimizer, progress=False)
    seen = {}
    out = optimize_image(rugged(goal), start, steps=12, optimizer=optimizer, progress=False,
                         callback=lambda step, image: seen.setdefault(step, image.clone()), callback_steps=[7, 0, 3, 12])
    assert torch.equal(out, plain)  # pausing L-BFGS keeps its history, line searches and budget
    assert list(seen) == [0, 3, 7, 12]
    assert torch.equal(seen[12], out)
    assert torch.allclose(seen[0], start * 0.98 + 0.01, atol=1e-6)  # the start, squeezed by the margin
    for k in (3, 7):  # the image after k iterations is what a k-step run returns
        alone = optimize_image(rugged(goal), start, steps=k, optimizer=optimizer, progress=False)
        assert torch.allclose(seen[k], alone, atol=1e-6), k
    assert not torch.allclose(seen[3], seen[7], atol=1e-4)


def test_callback_every_step_by_default():
    start, goal = start_and_goal()
    steps = []
    optimize_image(rugged(goal), start, steps=4, progress=False, callback=lambda step, image: steps.append(step))
    assert steps == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(callback=print, callback_steps=[0, 6]), "a callback step must be an integer from 0 to 5, got 6"),
        (dict(callback=print, callback_steps=[-1]), "a callback step must be an integer from 0 to 5, got -1"),
        (dict(callback_steps=[1]), "callback_steps needs a callback"),
        (dict(callback="no"), "callback must be callable"),
    ],
)
def test_bad_callbacks(kwargs, match):
    start, goal = start_and_goal()
    with pytest.raises(StylekitError, match=match):
        optimize_image(rugged(goal), start, steps=5, progress=False, **kwargs)


def test_check_curve_steps():
    assert check_curve_steps([10, 0, 5, 10]) == [0, 5, 10]
    with pytest.raises(StylekitError, match="at least one positive"):
        check_curve_steps([0])
    with pytest.raises(StylekitError, match="a curve step must be a non-negative integer, got -2"):
        check_curve_steps([0, -2, 5])


@pytest.fixture
def pairs(tmp_path):
    for i in range(2):
        make_image(tmp_path / "c" / f"c{i}.png", (40, 32), seed=i)
    make_image(tmp_path / "s" / "s0.jpg", (36, 36), seed=5)
    return tmp_path / "c", tmp_path / "s"


def curve_args(pairs, prefix, *extra):
    content, style = pairs
    return ["evaluate", "--curve", "--content", str(content), "--style", str(style), "--size", "32",
            "--style-size", "32", "--curve-steps", "0", "2", "5", "10", "--steps", "2", "--device", "cpu",
            "--curve-out", str(prefix), "--no-progress", *extra]


def test_curve_command_writes_json_and_png(pairs, tmp_path, decoder_file, capsys):
    prefix = tmp_path / "out" / "fig3"
    code = main(curve_args(pairs, prefix, "--weights", str(decoder_file), "--inverse-weights", str(decoder_file)))
    assert code == 0
    table = capsys.readouterr().out
    assert "Gatys et al., step 10" in table and "content image" in table and "Style swap, inverse network" in table

    result = json.loads((tmp_path / "out" / "fig3.json").read_text())
    steps = result["steps"]
    assert steps == [0, 2, 5, 10] and result["count"] == 2 and result["size"] == 32
    assert set(result["lines"]) == {"adain", "style-swap-optimize", "style-swap-inverse", "content-image"}
    assert result["unavailable"] == {} and result["style_swap_steps"] == 2
    gatys = result["gatys"]
    assert gatys["options"]["optimizer"] == "lbfgs" and gatys["options"]["init"] == "content"
    for stat in ("mean", "std"):
        for metric in ("style", "content", "gram"):
            assert len(gatys[stat][metric]) == 4
            for line in result["lines"].values():
                assert isinstance(line[stat][metric], float)
    assert len(result["pairs"]) == 2
    for metric in ("style", "content"):
        per_pair = [p["gatys"][metric] for p in result["pairs"]]
        assert gatys["mean"][metric] == pytest.approx([sum(v) / 2 for v in zip(*per_pair)])
        assert gatys["std"][metric] == pytest.approx([abs(a - b) / 2 for a, b in zip(*per_pair)])

    # Gatys starts at the content image and lowers the style loss step after step
    style = gatys["mean"]["style"]
    baseline = result["lines"]["content-image"]["mean"]
    assert style[0] == pytest.approx(baseline["style"], rel=0.2)
    assert gatys["mean"]["content"][0] < 0.05 * gatys["mean"]["content"][-1]
    assert baseline["content"] == 0
    assert style[-1] < 0.5 * style[0]
    assert all(later <= 1.05 * earlier for earlier, later in zip(style, style[1:]))
    assert sum(p["gatys"]["style"][-1] < p["gatys"]["style"][0] for p in result["pairs"]) == 2

    png = tmp_path / "out" / "fig3.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as img:
        width, height = img.size
        assert width > 1.5 * height > 600  # two panels side by side
        assert len(img.convert("RGB").getcolors(1 << 16) or range(1 << 16)) > 50  # something was drawn


def test_curve_without_an_inverse_network_leaves_it_out(pairs, tmp_path, decoder_file, capsys, no_shipped_inverse):
    prefix = tmp_path / "fig3.png"  # a suffix on the prefix is dropped
    code = main(curve_args(pairs, prefix, "--weights", str(decoder_file), "--curve-steps", "0", "1"))
    captured = capsys.readouterr()
    assert code == 0
    assert "left out (no style-swap inverse network is available" in captured.err
    result = json.loads((tmp_path / "fig3.json").read_text())
    assert set(result["lines"]) == {"adain", "style-swap-optimize", "content-image"}
    assert "style-swap-inverse" in result["unavailable"]
    assert (tmp_path / "fig3.png").is_file()


def test_curve_needs_matplotlib(pairs, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code = main(curve_args(pairs, tmp_path / "fig3"))
    assert code == 2
    assert "stylekit: error: the loss-curve plot needs matplotlib: pip install 'stylekit[plots]'" in capsys.readouterr().err
    assert not list(tmp_path.glob("fig3*"))


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--method", "adain"], "--method does not apply with --curve"),
        (["--optimize"], "--optimize does not apply with --curve"),
        (["--transform", "t.safetensors"], "--transform does not apply with --curve"),
        (["--out", "x.json"], "use --curve-out PREFIX, not --out"),
        (["--curve-steps", "0"], "at least one positive step count"),
    ],
)
def test_curve_flag_errors(pairs, tmp_path, extra, match, capsys):
    assert main(curve_args(pairs, tmp_path / "fig3", *extra)) == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--curve-steps", "0", "5"], ["--curve-out", "x"], ["--inverse-weights", "w"]])
def test_curve_flags_need_curve(pairs, flag, capsys):
    content, style = pairs
    assert main(["evaluate", "--content", str(content), "--style", str(style), *flag]) == 2
    assert f"{flag[0]} applies only with --curve" in capsys.readouterr().err


def test_loss_curve_needs_gatys_to_run_to_the_last_step(encoder, pairs):
    from stylekit.gatys.model import GatysStylizer

    gatys = GatysStylizer(encoder, steps=5, progress=False)
    content, style = pairs
    with pytest.raises(StylekitError, match="runs 5 steps; the curve needs exactly 10"):
        loss_curve(gatys, encoder, sorted(content.iterdir()), sorted(style.iterdir()), steps=[0, 10], size=32)
