"""The shared image-optimisation loop, on losses with known minima (no VGG)."""

from __future__ import annotations

import pytest
import torch

from stylekit.errors import StylekitError
from stylekit.optimize import initial_image, optimize_image


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def target(seed=0, shape=(1, 3, 12, 10)):
    g = torch.Generator().manual_seed(seed)
    return 0.1 + 0.8 * torch.rand(shape, generator=g)


def quadratic(goal, seen=None):
    def loss(image):
        if seen is not None:
            seen.append(image.detach().clone())
        return {"mse": ((image - goal) ** 2).sum(), "half": 0.5 * ((image - goal) ** 2).mean()}

    return loss


@pytest.mark.parametrize("optimizer, steps, tol", [("lbfgs", 30, 1e-4), ("adam", 150, 0.05)])
def test_reaches_the_minimum(optimizer, steps, tol):
    goal = target()
    start = torch.full_like(goal, 0.5)
    seen = []
    out = optimize_image(quadratic(goal, seen), start, steps=steps, optimizer=optimizer, progress=False)
    before = float(((seen[0] - goal) ** 2).sum())
    after = float(((out - goal) ** 2).sum())
    assert after < before / 20
    assert (out - goal).abs().max() < tol
    assert not out.requires_grad and out.shape == goal.shape


def test_pixels_stay_in_range():
    goal = torch.full((1, 3, 6, 6), 2.0)
    goal[..., :3] = -1.0  # unreachable targets on both sides
    seen = []
    out = optimize_image(quadratic(goal, seen), torch.rand(1, 3, 6, 6), steps=20, progress=False)
    for image in seen:  # every evaluated image, line-search trials included
        assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert float(out[..., :3].max()) < 0.05 and float(out[..., 3:].min()) > 0.95


def test_content_init_starts_at_the_content_squeezed_by_the_margin():
    content = torch.rand(1, 3, 5, 7)
    content[0, 0, 0, 0], content[0, 0, 0, 1] = 0.0, 1.0
    seen = []
    optimize_image(quadratic(content, seen), content, steps=1, margin=0.01, progress=False)
    assert torch.allclose(seen[0], content * 0.98 + 0.01, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_non_contiguous_init(optimizer):
    """Images decoded from (H, W, C) pixels arrive as permuted views."""
    goal = target(3)
    start = torch.full((1, 12, 10, 3), 0.5).permute(0, 3, 1, 2)
    assert not start.is_contiguous()
    out = optimize_image(quadratic(goal), start, steps=5, optimizer=optimizer, progress=False)
    assert out.shape == goal.shape


def test_runs_under_no_grad():
    goal = target(1)
    with torch.no_grad():
        out = optimize_image(quadratic(goal), torch.full_like(goal, 0.5), steps=10, progress=False)
    assert (out - goal).abs().max() < 0.05


def test_progress_bar_shows_every_term(capsys):
    goal = target(2)
    optimize_image(quadratic(goal), torch.full_like(goal, 0.5), steps=3, progress=True, desc="unit")
    err = capsys.readouterr().err
    assert "unit" in err and "mse=" in err and "half=" in err
    optimize_image(quadratic(goal), torch.full_like(goal, 0.5), steps=3, progress=False)
    assert capsys.readouterr().err == ""


def test_initial_image():
    content = torch.rand(1, 3, 8, 9)
    same = initial_image(content, "content")
    assert torch.equal(same, content) and same is not content
    a, b = initial_image(content, "noise", seed=3), initial_image(content, "noise", seed=3)
    assert torch.equal(a, b) and not torch.equal(a, initial_image(content, "noise", seed=4))
    assert a.shape == content.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    with pytest.raises(StylekitError, match="init must be one of content, noise"):
        initial_image(content, "zeros")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps must be a positive integer"),
        (dict(steps=2.5), "steps must be a positive integer"),
        (dict(optimizer="sgd"), "optimizer must be one of lbfgs, adam"),
        (dict(lr=-1.0), "lr must be a positive number"),
        (dict(margin=0.5), r"margin must be in \(0, 0.5\)"),
        (dict(history_size=0), "history_size must be a positive integer"),
    ],
)
def test_bad_options(kwargs, match):
    goal = target()
    with pytest.raises(StylekitError, match=match):
        optimize_image(quadratic(goal), goal, progress=False, **kwargs)


def test_bad_init_and_diverging_loss():
    with pytest.raises(StylekitError, match=r"init must be a float \(N, 3, H, W\) image tensor"):
        optimize_image(quadratic(target()), torch.rand(3, 4, 4), progress=False)
    with pytest.raises(StylekitError, match="the loss became nan"):
        optimize_image(lambda image: {"bad": image.sum() * float("nan")}, target(), steps=2, progress=False)


def test_refuses_up_front_when_the_estimate_exceeds_available_memory(monkeypatch):
    import stylekit.optimize as optimize

    goal = target()
    calls = []
    loss = quadratic(goal, calls)
    pixels = 12 * 10
    # L-BFGS with 10 pairs adds 4 * 3 * (2 * 10 + 4) = 288 bytes per pixel of its own
    monkeypatch.setattr(optimize, "available_memory", lambda device: pixels * (1000 + 288) - 1)
    with pytest.raises(StylekitError, match=r"optimising needs about .* GiB of memory .* use a smaller --size"):
        optimize_image(loss, goal.clone(), steps=2, progress=False, bytes_per_pixel=1000)
    assert not calls  # refused before the first evaluation
    monkeypatch.setattr(optimize, "available_memory", lambda device: pixels * (1000 + 288))
    optimize_image(loss, goal.clone(), steps=2, progress=False, bytes_per_pixel=1000)
    assert calls
    monkeypatch.setattr(optimize, "available_memory", lambda device: None)  # unknown: never refused
    optimize_image(loss, goal.clone(), steps=1, progress=False, bytes_per_pixel=1e30)


def test_available_memory_on_this_machine():
    from stylekit.optimize import available_memory

    from pathlib import Path

    got = available_memory("cpu")
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():  # not Linux: unknown, never a guess
        assert got is None
    else:  # MemAvailable, read here independently; memory moves a little between the two reads
        kib = next(int(line.split()[1]) for line in meminfo.read_text().splitlines() if line.startswith("MemAvailable:"))
        assert abs(got - kib * 1024) <= max(0.05 * kib * 1024, 64 * 2**20)
    assert available_memory("meta") is None  # a device it cannot ask
