"""Gatys et al. by image optimisation: targets, losses, controls and the CLI.

Real VGG weights (relu3_1), tiny images and a handful of steps: these test
the plumbing and that optimisation makes progress, not the look.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from stylekit.cli import main
from stylekit.errors import StylekitError
from stylekit.gatys.model import GatysStylizer, default_layers
from stylekit.losses import gram_matrix

from ..conftest import make_image


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def img(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


def total(terms):
    return float(sum(v.detach() for v in terms.values()))


@pytest.mark.parametrize(
    "depth, content, styles",
    [
        ("relu3_1", "relu3_1", ("relu1_1", "relu2_1", "relu3_1")),
        ("relu4_1", "relu3_1", ("relu1_1", "relu2_1", "relu3_1", "relu4_1")),
        ("relu4_2", "relu4_2", ("relu1_1", "relu2_1", "relu3_1", "relu4_1")),
        ("relu5_4", "relu4_2", ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
    ],
)
def test_default_layers_follow_the_encoder_depth(depth, content, styles):
    assert default_layers(depth) == (content, styles)


def test_default_layers_need_relu3_1():
    with pytest.raises(StylekitError, match="up to relu3_1 at least"):
        default_layers("relu2_1")


def test_optimisation_decreases_the_loss(encoder):
    content, style = img(32, 40, 1), img(36, 36, 2)
    for optimizer in ("lbfgs", "adam"):
        model = GatysStylizer(encoder, steps=8, optimizer=optimizer, tv_weight=1e-3, progress=False)
        content_target, targets, masks = model.targets(content, [style])
        loss = model.loss_fn(content_target, targets, masks)
        start = loss(content)
        assert set(start) == {"content", "style", "tv"}
        assert float(start["content"]) == 0 and float(start["style"]) > 0
        out = model.transfer(content, [style])
        assert out.shape == content.shape
        assert total(loss(out)) < 0.5 * total(start), optimizer


def test_targets_blend_grams_by_weights_and_alpha(encoder):
    model = GatysStylizer(encoder, progress=False)
    content, s1, s2 = img(32, 32, 3), img(24, 40, 4), img(40, 24, 5)
    grams = []
    for image in (content, s1, s2):
        feats = encoder(image, model.style_layers)
        grams.append({l: gram_matrix(feats[l]) for l in model.style_layers})
    _, targets, masks = model.targets(content, [s1, s2], [0.25, 0.75], None, 0.6)
    assert masks is None and len(targets) == 1
    for l in model.style_layers:
        expected = 0.6 * (0.25 * grams[1][l] + 0.75 * grams[2][l]) + 0.4 * grams[0][l]
        assert torch.allclose(targets[0][l], expected, rtol=1e-5, atol=1e-6)
    # alpha = 0: the content's own Grams, so the content image is already optimal
    content_target, targets, masks = model.targets(content, [s1], alpha=0.0)
    start = model.loss_fn(content_target, targets, masks)(content)
    assert total(start) < 1e-8


def test_masks_give_each_style_a_region(encoder):
    model = GatysStylizer(encoder, steps=6, progress=False)
    content, s1, s2 = img(32, 40, 6), img(32, 32, 7), torch.full((1, 3, 32, 32), 0.9)
    left = torch.zeros(1, 1, 32, 40)
    left[..., :20] = 1
    masks = [left, 1 - left]
    content_target, targets, feature_masks = model.targets(content, [s1, s2], [0.5, 0.5], masks, 1.0)
    assert len(targets) == 2 and len(feature_masks) == 2
    for l in model.style_layers:
        feats = encoder(s2, (l,))[l]
        assert torch.allclose(targets[1][l], gram_matrix(feats), rtol=1e-5, atol=1e-6)
        m = feature_masks[0][l]
        assert m.shape[-2:] == encoder(content, (l,))[l].shape[-2:]
        assert bool((m[..., 0] == 1).all()) and bool((m[..., -1] == 0).all())
    loss = model.loss_fn(content_target, targets, feature_masks)
    out = model.stylize(content[0], [s1[0], s2[0]], masks=[left[0], 1 - left[0]], size=0, style_size=0)
    assert out.shape == (3, 32, 40)
    assert total(loss(out[None])) < total(loss(content))
    # a full mask gives the plain Gram matrix
    feats = encoder(content, ("relu2_1",))["relu2_1"]
    assert torch.allclose(gram_matrix(feats, torch.ones_like(feats[:, :1])), gram_matrix(feats), rtol=1e-5)


def test_noise_init_is_seeded_and_sizes_are_kept(encoder):
    content, style = img(29, 37, 8), img(32, 32, 9)
    runs = [
        GatysStylizer(encoder, steps=3, init="noise", seed=seed, progress=False).stylize(
            content[0], style[0], size=0, style_size=0
        )
        for seed in (0, 0, 1)
    ]
    assert runs[0].shape == (3, 29, 37)
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps must be a positive integer"),
        (dict(optimizer="sgd"), "optimizer must be one of"),
        (dict(init="zeros"), "init must be one of"),
        (dict(style_weight=-1.0), "style_weight must be a non-negative number"),
        (dict(tv_weight=float("nan")), "tv_weight must be a non-negative number"),
        (dict(content_layer="relu4_2"), "deeper than the encoder"),
        (dict(style_layers=()), "at least one style layer"),
        (dict(content_layer="conv2_1"), "gatys uses relu layers"),
    ],
)
def test_bad_options(encoder, kwargs, match):
    with pytest.raises(StylekitError, match=match):
        GatysStylizer(encoder, **kwargs)


def test_load_rejects_decoder_weights(tmp_path):
    import stylekit

    with pytest.raises(StylekitError, match="uses no decoder weights"):
        stylekit.load("gatys", weights=tmp_path / "x.safetensors", device="cpu")
    model = stylekit.load("gatys", device="cpu", steps=2, progress=False)
    assert model.content_layer == "relu3_1" and model.style_layers == ("relu1_1", "relu2_1", "relu3_1")


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def run(capsys, *args) -> tuple[int, str, str]:
    try:
        code = main([*map(str, args)])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(code, err, match):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stylekit: error: "), err
    assert match in lines[0], err


@pytest.fixture
def pair(tmp_path):
    return make_image(tmp_path / "in" / "c.png", (48, 36), 1), make_image(tmp_path / "in" / "s.png", (40, 40), 2)


SMALL = ["--size", "48", "--style-size", "40", "--device", "cpu", "--no-progress"]


def test_cli_gatys(capsys, tmp_path, pair):
    content, style = pair
    out = tmp_path / "out.png"
    code, stdout, err = run(capsys, "stylize", content, "--style", style, "--method", "gatys", "--steps", "3",
                            "--optimizer", "adam", "--tv-weight", "0.01", "--init", "noise", "-o", out, *SMALL)
    assert code == 0, err
    assert stdout.strip() == str(out)
    with Image.open(out) as image:
        assert image.size == (48, 36)


@pytest.mark.parametrize("method", [["--method", "gatys"], ["--method", "style-swap", "--optimize"]])
def test_cli_refuses_an_image_too_large_for_the_memory(capsys, tmp_path, pair, monkeypatch, method):
    import stylekit.optimize as optimize

    monkeypatch.setattr(optimize, "available_memory", lambda device: 2**20)  # 1 MiB left
    content, style = pair
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "stylize", content, "--style", style, *method, "--steps", "2", "-o", out, *SMALL)
    assert_error(code, err, "GiB of memory at this size and only 0.0 GiB is available; use a smaller --size")
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--method", "gatys", "--patch-size", "3"], "--patch-size applies only to --method style-swap"),
        (["--method", "gatys", "--optimize"], "--optimize applies only to --method style-swap (gatys always optimises)"),
        (["--method", "adain", "--steps", "3"], "--steps does not apply to --method adain"),
        (["--optimize"], "--optimize applies only to --method style-swap"),
        (["--method", "gatys", "--steps", "0"], "steps must be a positive integer"),
    ],
)
def test_cli_rejects_flags_that_do_not_apply(capsys, tmp_path, pair, flags, match):
    content, style = pair
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "stylize", content, "--style", style, *flags, "-o", out, *SMALL)
    assert_error(code, err, match)
    assert not out.exists()


def test_cli_evaluate_gatys(capsys, tmp_path, pair):
    content, style = pair
    code, stdout, err = run(capsys, "evaluate", "--content", content, "--style", style, "--method", "gatys",
                            "--steps", "2", "--size", "32", "--style-size", "32", "--device", "cpu", "--no-progress")
    assert code == 0, err
    assert "gatys" in stdout and "mean over 1 pairs" in stdout
