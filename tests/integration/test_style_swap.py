"""Style swap: :func:`stylekit.functional.style_swap` against a brute-force
float64 reference, and :class:`stylekit.style_swap.model.StyleSwapStylizer`.

The reference loops over every content patch and every style patch in plain
Python; it shares no code with stylekit. Ties go to the lowest style-patch
index (row-major over the style's patch grid), as documented.
"""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from stylekit import patch_swap
from stylekit.errors import StylekitError
from stylekit.functional import style_swap

from .. import reference
from ..conftest import make_image

EPS = 1e-8


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    # a training run shares this machine: one thread is both kinder and faster here
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# the brute-force reference: tests/reference.py
ref_style_swap, rand = reference.style_swap, reference.rand


# ---------------------------------------------------------------------------
# against the reference
# ---------------------------------------------------------------------------

CASES = [
    # content (N, C, H, W), style (1, C, Hs, Ws), patch_size, stride
    ((1, 4, 7, 9), (1, 4, 6, 5), 3, 1),
    ((2, 3, 5, 8), (1, 3, 9, 4), 3, 1),  # batch of two, non-square, style taller than content
    ((1, 2, 6, 6), (1, 2, 5, 7), 1, 1),
    ((2, 5, 9, 11), (1, 5, 7, 8), 5, 1),
    ((1, 3, 8, 10), (1, 3, 9, 9), 3, 2),  # (8 - 3) % 2 != 0: the content is padded
    ((1, 3, 11, 7), (1, 3, 8, 12), 5, 3),
    ((1, 2, 5, 5), (1, 2, 5, 5), 5, 5),  # one patch each
    ((1, 6, 3, 4), (1, 6, 3, 3), 3, 1),  # content exactly one patch high
]


@pytest.mark.parametrize("content_shape, style_shape, p, s", CASES)
def test_matches_brute_force(content_shape, style_shape, p, s):
    content, style = rand(*content_shape, seed=1), rand(*style_shape, seed=2)
    expected, _ = ref_style_swap(content, style, p, s)
    got = style_swap(content, style, p, s)
    assert got.shape == content.shape
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    for chunk in (1, 2, 5):
        assert torch.equal(style_swap(content, style, p, s, chunk_size=chunk), got)


@pytest.mark.parametrize("p, s", [(1, 1), (3, 1), (3, 2)])
def test_float32_matches_brute_force(p, s):
    content, style = rand(1, 8, 9, 10, seed=3, dtype=torch.float32), rand(1, 8, 8, 7, seed=4, dtype=torch.float32)
    expected, _ = ref_style_swap(content, style, p, s)
    got = style_swap(content, style, p, s)
    assert got.dtype == torch.float32
    assert torch.allclose(got.double(), expected, rtol=0, atol=1e-6)


def test_style_gradient_and_no_content_gradient():
    content, style = rand(2, 3, 7, 8, seed=5), rand(1, 3, 6, 6, seed=6)
    _, expected_grad = ref_style_swap(content, style, 3, 2)
    c = content.clone().requires_grad_()
    assert not style_swap(c, style, 3, 2).requires_grad  # the argmax carries no gradient to the content
    st = style.clone().requires_grad_()
    out = style_swap(c, st, 3, 2)
    assert out.requires_grad
    out.sum().backward()
    assert c.grad is None
    assert torch.allclose(st.grad, expected_grad, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# ties
# ---------------------------------------------------------------------------


def _columns(*vectors, dtype=torch.float64):
    """A (1, C, 1, K) style map whose 1x1 patches are the given vectors, in order."""
    return torch.tensor(vectors, dtype=dtype).T[None, :, None, :].contiguous()


@pytest.mark.parametrize("chunk", [None, 1, 2, 3])
def test_exact_ties_go_to_the_lowest_index(chunk):
    # against content (1, 1) the patches (0, 3), (2, 0) and (0, 1) all score exactly
    # dot / norm = 1 and (-1, 0) scores -1; the tied patches all differ
    content = torch.tensor([1.0, 1.0], dtype=torch.float64).view(1, 2, 1, 1)
    style = _columns([0.0, 3.0], [-1.0, 0.0], [2.0, 0.0], [0.0, 1.0])
    got = style_swap(content, style, 1, 1, chunk_size=chunk)
    assert got.flatten().tolist() == [0.0, 3.0]
    # with the order reversed the winner is the other (scaled) patch
    got = style_swap(content, style.flip(-1), 1, 1, chunk_size=chunk)
    assert got.flatten().tolist() == [0.0, 1.0]


@pytest.mark.parametrize("chunk", [None, 1, 4])
def test_scaled_patches_tie_exactly(chunk):
    """s and 2s have the same normalised correlation with anything: the first listed wins."""
    a = rand(3, seed=7).tolist()
    content = rand(1, 3, 2, 3, seed=8)
    twice = [2 * v for v in a]
    first = style_swap(content, _columns(twice, [0.0, 0.0, 0.0], a), 1, 1, chunk_size=chunk)
    second = style_swap(content, _columns(a, [0.0, 0.0, 0.0], twice), 1, 1, chunk_size=chunk)
    used_twice = (first == torch.tensor(twice, dtype=torch.float64).view(1, 3, 1, 1)).all(1)
    used_a = (second == torch.tensor(a, dtype=torch.float64).view(1, 3, 1, 1)).all(1)
    assert torch.equal(used_twice, used_a)  # the same positions pick the pair, and the first of it
    assert bool(used_twice.any())


def test_integer_data_with_many_ties_matches_reference():
    """Small integer features: many exact ties between different patches."""
    g = torch.Generator().manual_seed(9)
    content = torch.randint(-1, 2, (2, 3, 6, 7), generator=g).double()
    style = torch.randint(-1, 2, (1, 3, 6, 6), generator=g).double()
    style[..., :3, :3] = style[..., 3:, 3:]  # duplicated regions as well
    for p, s in [(1, 1), (2, 1), (3, 1), (3, 2)]:
        expected, _ = ref_style_swap(content, style, p, s)
        for chunk in (None, 1, 3, 7):
            assert torch.allclose(style_swap(content, style, p, s, chunk_size=chunk), expected, rtol=0, atol=1e-12)


def test_zero_patches():
    content = rand(1, 2, 4, 4, seed=10)
    content[..., :3, :3] = 0  # one all-zero 3x3 content patch: every style patch scores 0
    style = rand(1, 2, 5, 5, seed=11)
    style[..., 2:, 2:] = 0  # all-zero style patches score 0, not NaN
    got = style_swap(content, style, 3, 1)
    assert bool(torch.isfinite(got).all())
    expected, _ = ref_style_swap(content, style, 3, 1)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------
# chunking
# ---------------------------------------------------------------------------


def test_chunked_equals_unchunked_bit_for_bit():
    """float32, a realistic channel count, duplicated style patches split over chunks."""
    content = rand(1, 32, 20, 23, seed=12, dtype=torch.float32).relu()
    style = rand(1, 32, 18, 17, seed=13, dtype=torch.float32).relu()
    style[..., 12:, 10:] = style[..., :6, :7]  # duplicates far apart in patch order
    num_patches = 16 * 15
    whole = style_swap(content, style, 3, 1, chunk_size=num_patches)
    assert torch.equal(style_swap(content, style, 3, 1), whole)  # default budget: one chunk here
    for chunk in (1, 7, 16, 64, 239, 10_000):
        assert torch.equal(style_swap(content, style, 3, 1, chunk_size=chunk), whole), chunk
    assert torch.equal(style_swap(content, style, 3, 1, max_bytes=1), whole)  # below one patch: chunks of 1


def test_budget_sets_the_chunk(monkeypatch):
    content, style = rand(2, 4, 6, 7, seed=14, dtype=torch.float32), rand(1, 4, 5, 5, seed=15, dtype=torch.float32)
    # float32 scores over 2 x 4 x 5 positions (held twice by the convolution) + one 4x3x3 filter
    per_patch = 4 * (2 * (2 * 4 * 5) + 4 * 9)
    seen = []
    conv2d = F.conv2d

    def spy(x, weight, *args, **kwargs):
        if weight.shape[1] == 4:  # the score convolution, not the norm one
            seen.append(weight.shape[0])
        return conv2d(x, weight, *args, **kwargs)

    monkeypatch.setattr(patch_swap.F, "conv2d", spy)
    style_swap(content, style, 3, 1, max_bytes=4 * per_patch, impl="conv")
    assert seen == [4, 4, 1]  # 9 style patches
    seen.clear()
    style_swap(content, style, 3, 1, max_bytes=4 * per_patch, chunk_size=2, impl="conv")  # an explicit chunk wins
    assert seen == [2, 2, 2, 2, 1]


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_shape, style_shape, kwargs, match",
    [
        ((1, 3, 8, 8), (1, 3, 4, 6), dict(patch_size=5), "larger than the style feature map (6x4)"),
        ((1, 3, 2, 8), (1, 3, 8, 8), dict(patch_size=3), "larger than the content feature map"),
        ((1, 3, 8, 8), (1, 3, 8, 8), dict(stride=0), "stride must be a positive integer"),
        ((1, 3, 8, 8), (1, 3, 8, 8), dict(patch_size=3, stride=4), "must not exceed patch_size"),
        ((1, 3, 8, 8), (1, 3, 8, 8), dict(patch_size=0), "patch_size must be a positive integer"),
        ((1, 3, 8, 8), (1, 3, 8, 8), dict(patch_size=2.0), "patch_size must be a positive integer"),
        ((1, 3, 8, 8), (1, 4, 8, 8), {}, "same channels, got 3 and 4"),
        ((1, 3, 8, 8), (2, 3, 8, 8), {}, "batch size 1"),
        ((1, 3, 8, 8), (1, 3, 8, 8), dict(chunk_size=0), "chunk_size must be a positive integer"),
        ((1, 3, 8, 8), (1, 3, 8, 8), dict(eps=0.0), "eps must be a positive number"),
        ((1, 3, 8, 8), (1, 3, 8, 8), dict(max_bytes=0), "max_bytes must be a positive integer"),
    ],
)
def test_errors(content_shape, style_shape, kwargs, match):
    with pytest.raises(StylekitError, match=match.replace("(", r"\(").replace(")", r"\)")):
        style_swap(torch.rand(*content_shape), torch.rand(*style_shape), **kwargs)


def test_errors_on_tensors():
    good = torch.rand(1, 3, 8, 8)
    with pytest.raises(StylekitError, match="content_feat must have shape"):
        style_swap(torch.rand(3, 8, 8), good)
    with pytest.raises(StylekitError, match="share dtype"):
        style_swap(good, good.double())
    bad = good.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(StylekitError, match="style_feat contains NaN"):
        style_swap(good, bad)


# ---------------------------------------------------------------------------
# StyleSwapStylizer
# ---------------------------------------------------------------------------


def img(h, w, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


@pytest.fixture
def feed_forward(encoder, random_decoder):
    from stylekit.style_swap.model import StyleSwapStylizer

    return StyleSwapStylizer(encoder, random_decoder, device="cpu", precision="fp32")  # the float32 reference


@pytest.mark.parametrize("hw", [(37, 45), (32, 32), (17, 50)])
def test_feed_forward_keeps_the_size(feed_forward, hw):
    out = feed_forward.stylize(img(*hw, 1)[0], img(40, 36, 2)[0], size=0, style_size=0)
    assert out.shape == (3, *hw)
    assert bool(torch.isfinite(out).all())


def test_feed_forward_equals_the_plain_modules(feed_forward, encoder, random_decoder):
    """The shared runner (fp32, channels_last, fused CPU path) computes what the
    modules compute: encoder -> swap -> inverse network, in plain float32."""
    content, style = img(40, 36, 6), img(36, 44, 7)
    with torch.no_grad():
        target = style_swap(encoder.encode(content), encoder.encode(style))
        expected = random_decoder(target)
    got = feed_forward.transfer(content, [style])
    assert feed_forward.networks.settings()["autocast_dtype"] == "float32"
    assert got.shape == expected.shape and torch.allclose(got, expected, rtol=0, atol=1e-4)


def test_tiled_equals_untiled(encoder, random_decoder):
    """Above tile_pixels the encoder and the inverse network run in overlapping
    tiles; their interiors are the whole image's, so the swap sees the same
    features and picks the same patches."""
    from stylekit.style_swap.model import StyleSwapStylizer

    whole = StyleSwapStylizer(encoder, random_decoder, tile_pixels=None, precision="fp32")
    tiled = StyleSwapStylizer(encoder, random_decoder, tile_pixels=1000, tile_size=40, precision="fp32")
    content, style = img(150, 118, 8), img(90, 70, 9)  # neither a multiple of the tiles nor of 4
    assert tiled.networks.tiled(150, 118) and not whole.networks.tiled(150, 118)
    assert torch.allclose(whole.prepare_style(style), tiled.prepare_style(style), rtol=0, atol=1e-5)
    a = whole.transfer(content, [style])
    b = tiled.transfer(content, [style])
    assert a.shape == b.shape == content.shape
    assert torch.allclose(a, b, rtol=0, atol=1e-5)


def test_target_features_controls(feed_forward, encoder):
    content_feat = encoder.encode(img(32, 40, 3))
    s1, s2 = encoder.encode(img(36, 28, 4)), encoder.encode(img(28, 36, 5))
    swap1, swap2 = style_swap(content_feat, s1), style_swap(content_feat, s2)
    t = feed_forward.target_features
    assert torch.equal(t(content_feat, [s1]), swap1)
    assert torch.equal(t(content_feat, [s1], alpha=0.0), content_feat)
    expected = 0.7 * (0.25 * swap1 + 0.75 * swap2) + 0.3 * content_feat
    assert torch.allclose(t(content_feat, [s1, s2], [0.25, 0.75], None, 0.7), expected, atol=1e-5)
    # masks: each style's swap in its region (image-resolution masks, 4 pixels per feature)
    left = torch.zeros(1, 1, 32, 40)
    left[..., :16] = 1
    got = t(content_feat, [s1, s2], None, [left, 1 - left], 1.0)
    assert torch.equal(got[..., :4], swap1[..., :4]) and torch.equal(got[..., 4:], swap2[..., 4:])


def test_optimisation_moves_features_toward_the_swap(encoder):
    from stylekit.losses import content_loss
    from stylekit.style_swap.model import StyleSwapStylizer

    model = StyleSwapStylizer(encoder, optimize=True, steps=10, progress=False)
    content, style = img(32, 40, 6), img(36, 36, 7)  # a multiple of 4: no padding to undo
    target = model.target_features(encoder.encode(content), [encoder.encode(style)])
    out = model.transfer(content, [style])
    assert out.shape == content.shape
    before = float(content_loss(encoder.encode(content), target))
    after = float(content_loss(encoder.encode(out), target))
    assert after < 0.5 * before
    # the objective as a whole went down too (TV included)
    loss = model.loss_fn(target)
    assert float(sum(loss(out).values())) < float(sum(loss(content).values()))


def test_optimisation_with_masks_and_odd_size(encoder):
    from stylekit.style_swap.model import StyleSwapStylizer

    model = StyleSwapStylizer(encoder, optimize=True, steps=2, optimizer="adam", init="noise", progress=False)
    left = torch.zeros(1, 30, 43)
    left[:, :, :20] = 1
    out = model.stylize(img(30, 43, 8)[0], [img(32, 32, 9)[0], img(24, 40, 10)[0]], masks=[left, 1 - left],
                        size=0, style_size=0)
    assert out.shape == (3, 30, 43)


def test_load(decoder_file):
    import stylekit

    model = stylekit.load("style-swap", weights=decoder_file, device="cpu", patch_size=5, stride=2)
    assert model.inverse is not None and (model.patch_size, model.stride) == (5, 2)
    model = stylekit.load("style-swap", optimize=True, device="cpu", steps=3, tv_weight=0.0)
    assert model.inverse is None and model.steps == 3 and model.tv_weight == 0
    with pytest.raises(StylekitError, match="uses no inverse network"):
        stylekit.load("style-swap", weights=decoder_file, optimize=True, device="cpu")
    shipped = stylekit.load("style-swap", device="cpu")  # the inverse network in the package
    assert shipped.inverse is not None and shipped.inverse.from_layer == "relu3_1"


def test_load_without_a_shipped_inverse_network(no_shipped_inverse):
    import stylekit

    with pytest.raises(StylekitError, match="no style-swap inverse network is available"):
        stylekit.load("style-swap", device="cpu")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=5), "steps applies only to style swap with optimize=True"),
        (dict(inverse=None), "needs an inverse network"),
        (dict(optimize=True), "either an inverse network or optimize=True"),
        (dict(patch_size=3, stride=4), "must not exceed patch_size"),
        (dict(patch_size=0), "patch_size must be a positive integer"),
        (dict(layer="relu2_1"), "the inverse network starts at relu3_1"),
        (dict(colour=1), "unknown style-swap option 'colour'"),
    ],
)
def test_bad_options(encoder, random_decoder, kwargs, match):
    from stylekit.style_swap.model import StyleSwapStylizer

    inverse = kwargs.pop("inverse", random_decoder)
    with pytest.raises(StylekitError, match=match):
        StyleSwapStylizer(encoder, inverse, **kwargs)


def test_bad_optimisation_options(encoder):
    from stylekit.style_swap.model import StyleSwapStylizer

    with pytest.raises(StylekitError, match="tv_weight must be a non-negative number"):
        StyleSwapStylizer(encoder, optimize=True, tv_weight=-1)
    with pytest.raises(StylekitError, match="optimizer must be one of"):
        StyleSwapStylizer(encoder, optimize=True, optimizer="sgd")
    with pytest.raises(StylekitError, match="needs an encoder that deep"):
        StyleSwapStylizer(encoder, optimize=True, layer="relu4_1")


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def run(capsys, *args) -> tuple[int, str, str]:
    from stylekit.cli import main

    try:
        code = main([*map(str, args)])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def pair(tmp_path):
    return make_image(tmp_path / "in" / "c.png", (48, 36), 1), make_image(tmp_path / "in" / "s.png", (40, 40), 2)


SMALL = ["--size", "48", "--style-size", "40", "--device", "cpu", "--no-progress"]


def test_cli_optimize(capsys, tmp_path, pair):
    from PIL import Image

    content, style = pair
    out = tmp_path / "out.png"
    code, stdout, err = run(capsys, "stylize", content, "--style", style, "--method", "style-swap", "--optimize",
                            "--steps", "3", "--patch-size", "3", "--stride", "2", "--tv-weight", "0.001", "-o", out,
                            *SMALL)
    assert code == 0, err
    assert stdout.strip() == str(out)
    with Image.open(out) as image:
        assert image.size == (48, 36)


def test_cli_feed_forward_with_given_inverse(capsys, tmp_path, pair, decoder_file):
    content, style = pair
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "stylize", content, "--style", style, "--method", "style-swap",
                       "--weights", decoder_file, "-o", out, *SMALL)
    assert code == 0, err
    assert out.is_file()


def test_cli_uses_the_shipped_inverse_network(capsys, tmp_path, pair):
    content, style = pair
    out = tmp_path / "out.png"
    code, _, err = run(capsys, "stylize", content, "--style", style, "--method", "style-swap", "-o", out, *SMALL)
    assert code == 0, err
    with Image.open(out) as img:
        assert img.size == (48, 36)


def test_cli_without_an_inverse_network_says_what_to_do(capsys, tmp_path, pair, no_shipped_inverse):
    content, style = pair
    out = tmp_path / "out.png"
    code, stdout, err = run(capsys, "stylize", content, "--style", style, "--method", "style-swap", "-o", out, *SMALL)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no style-swap inverse network is available" in lines[0]
    assert "--optimize" in lines[0] and not out.exists()


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--steps", "3"], "--steps needs --optimize with --method style-swap"),
        (["--tv-weight", "0.1"], "--tv-weight needs --optimize"),
        (["--optimize", "--patch-size", "2", "--stride", "3"], "--stride (3) must not exceed --patch-size (2)"),
        (["--optimize", "--weights", "w.safetensors"], "uses no inverse network"),
    ],
)
def test_cli_errors(capsys, tmp_path, pair, flags, match):
    content, style = pair
    out = tmp_path / "out.png"
    code, stdout, err = run(capsys, "stylize", content, "--style", style, "--method", "style-swap", *flags,
                            "-o", out, *SMALL)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stylekit: error: "), err
    assert match in lines[0]
    assert stdout == "" and not out.exists()
