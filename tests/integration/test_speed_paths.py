"""The fast paths of the library (docs/performance.md measures them):

* the fast kernels (reflection pad, pooling, upsampling, statistics) against
  torch's own ops, values and gradients;
* the fast AdaIN path (the stylizer's defaults) against the fp32 reference
  path, within the tolerance the performance report uses;
* tiling against the whole image;
* the GEMM and bf16 style-swap searches against the brute-force reference.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stylekit import ops
from stylekit.adain.model import AdaINStylizer
from stylekit.networks import decoder_margin, encoder_margin
from stylekit.decoder import MirrorDecoder
from stylekit.errors import StylekitError
from stylekit.functional import mean_std, style_swap

from .. import reference
from .test_style_swap import CASES

rand, ref_style_swap = reference.rand, reference.style_swap


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------
# fast kernels
# ---------------------------------------------------------------------------


def _cl(x):
    return x.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("hw", [(5, 7), (2, 2), (8, 6)])
def test_reflect_pad1_equals_f_pad_values_and_gradient(dtype, hw):
    x = torch.randn(2, 5, *hw, generator=torch.Generator().manual_seed(0)).to(dtype)
    for t in (x, _cl(x)):
        a = t.detach().clone().requires_grad_()
        b = t.detach().clone().requires_grad_()
        got, want = ops.reflect_pad1(a), F.pad(b, (1, 1, 1, 1), mode="reflect")
        assert torch.equal(got, want)
        assert got.is_contiguous(memory_format=torch.channels_last) == ops.is_channels_last(t)
        g = torch.randn(got.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
        (got * g).sum().backward()
        (want * g).sum().backward()
        assert torch.allclose(a.grad.double(), b.grad.double(), rtol=0, atol=6e-2 if dtype == torch.bfloat16 else 1e-5)  # bf16: summation order


@pytest.mark.parametrize("hw", [(3, 4), (2, 2), (2, 5)])
def test_reflect_pad1_gradcheck(hw):
    x = _cl(torch.randn(2, 3, *hw, dtype=torch.float64, generator=torch.Generator().manual_seed(3))).requires_grad_()
    assert torch.autograd.gradcheck(ops.reflect_pad1, (x,))
    assert torch.autograd.gradcheck(lambda t: ops.reflect_pad1(t, any_layout=True), (x.detach().contiguous().requires_grad_(),))


@pytest.mark.parametrize("hw", [(8, 6), (7, 5), (2, 4)])
def test_max_pool2_and_upsample_pad(hw):
    x = _cl(torch.randn(1, 4, *hw, generator=torch.Generator().manual_seed(2)).to(torch.bfloat16))
    got = ops.max_pool2(x)
    assert torch.equal(got, F.max_pool2d(x, 2, 2, ceil_mode=True))
    assert got.is_contiguous(memory_format=torch.channels_last)
    up = ops.upsample2_reflect_pad1(x)
    assert torch.equal(up, F.pad(F.interpolate(x, scale_factor=2, mode="nearest"), (1, 1, 1, 1), mode="reflect"))
    plain = x.contiguous()
    assert torch.equal(ops.upsample2_reflect_pad1(plain), up)


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_mean_std_fast_matches_mean_std(layout):
    x = torch.randn(2, 6, 9, 11, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3 + 1
    if layout == "channels_last":
        x = _cl(x)
    (m1, s1), (m2, s2) = ops.mean_std_fast(x), mean_std(x)
    assert m1.shape == m2.shape == (2, 6, 1, 1)
    assert torch.allclose(m1, m2, rtol=0, atol=1e-12) and torch.allclose(s1, s2, rtol=0, atol=1e-12)



@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_mean_std_one_read_matches_the_two_pass_statistics(layout, dtype):
    g = torch.Generator().manual_seed(5)
    x64 = torch.rand(2, 16, 40, 36, generator=g, dtype=torch.float64) * 3 + 0.5
    x = x64.to(dtype)
    if layout == "channels_last":
        x = _cl(x)
    mean, std = ops.mean_std_one_read(x, eps=1e-5)
    ref = x.double()  # the values as stored, in float64
    ref_mean = ref.mean(dim=(2, 3), keepdim=True)
    ref_std = torch.sqrt(((ref - ref_mean) ** 2).mean(dim=(2, 3), keepdim=True) + 1e-5)
    assert mean.dtype == std.dtype == torch.float32 and mean.shape == (2, 16, 1, 1)
    rtol = 1e-5 if dtype == torch.float32 else 1e-3  # bf16 maps reduce in float32 blocks of their own order
    assert torch.allclose(mean.double(), ref_mean, rtol=rtol, atol=0) and torch.allclose(std.double(), ref_std, rtol=rtol)
    # a constant channel: the variance is eps alone, never negative
    _, flat = ops.mean_std_one_read(torch.full((1, 2, 8, 8), 0.7, dtype=dtype), eps=1e-5)
    assert torch.allclose(flat, torch.full_like(flat, 1e-5**0.5), rtol=1e-2)

def test_conv2d_relu_is_conv_then_relu():
    g = torch.Generator().manual_seed(4)
    x = _cl(torch.randn(1, 8, 10, 9, generator=g))
    w = _cl(torch.randn(5, 8, 3, 3, generator=g))
    b = torch.randn(5, generator=g)
    want = F.conv2d(x, w, b)
    assert torch.allclose(ops.conv2d_relu(x, w, b, relu=False), want, atol=1e-5)
    assert torch.allclose(ops.conv2d_relu(x, w, b, padding=1), F.conv2d(x, w, b, padding=1).relu(), atol=1e-5)


def test_tune_allocator_is_idempotent():
    first = ops.tune_allocator()
    assert ops.tune_allocator() == first == ops.allocator_tuned()


# ---------------------------------------------------------------------------
# the fast AdaIN path against the reference
# ---------------------------------------------------------------------------


def test_tile_margins():
    assert encoder_margin("relu3_1") == 12 and encoder_margin("relu1_1") == 1
    assert decoder_margin(MirrorDecoder("relu3_1")) == 3 and decoder_margin(MirrorDecoder("relu4_1")) == 4


@pytest.fixture(scope="module")
def real_models(encoder):
    from stylekit.adain.model import DEFAULT_DECODER
    from stylekit.decoder import load_decoder
    from stylekit.weights import resolve

    return encoder, load_decoder(resolve(DEFAULT_DECODER))


def _pair(size):
    from stylekit.bench import bench_image
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "src" / "stylekit" / "examples"
    return bench_image(examples / "chelsea.jpg", size, 1), bench_image(examples / "swirls.jpg", size, 2)


REFERENCE = dict(precision="fp32", channels_last=False, inference_mode=False, fused=False, tune_malloc=False)


def _quality(output, reference, scorer) -> dict:
    """docs/performance.md's quality rule, measured: the mean and max absolute
    difference in 0-255 and the style loss's relative change."""
    out, ref = output.clamp(0, 1), reference.clamp(0, 1)
    diff = (out - ref).abs() * 255
    got, want = scorer(out)["style"], scorer(ref)["style"]
    return {"mean_abs_255": diff.mean().item(), "max_abs_255": diff.max().item(), "style_change": (got - want) / want}


def test_fp32_fast_path_equals_reference(real_models):
    encoder, decoder = real_models
    content, style = _pair(96)
    ref = AdaINStylizer(encoder, decoder, cache_size=0, **REFERENCE)
    fast = AdaINStylizer(encoder, decoder, cache_size=0, precision="fp32")
    assert fast.networks.fused and fast.networks.channels_last and fast.networks.inference_mode
    want, got = ref.transfer(content, [style]), fast.transfer(content, [style])
    assert got.shape == want.shape and got.is_contiguous()
    assert torch.allclose(got, want, rtol=0, atol=1e-4)


def test_fused_path_equals_the_modules_under_autocast(real_models):
    """The fused path computes what the modules compute: in fp32 to rounding;
    in bf16 the folded first conv and the zero-padded last conv round
    differently, so both are held to the fp32 reference instead, and the fused
    path must be at least as close to it."""
    encoder, decoder = real_models
    content, style = _pair(72)
    run = lambda model: model.transfer(content, [style])  # noqa: E731
    reference = run(AdaINStylizer(encoder, decoder, cache_size=0, **REFERENCE))
    a = run(AdaINStylizer(encoder, decoder, cache_size=0, precision="fp32", fused=False))
    b = run(AdaINStylizer(encoder, decoder, cache_size=0, precision="fp32"))
    assert torch.allclose(a, b, rtol=0, atol=1e-4)
    a = run(AdaINStylizer(encoder, decoder, cache_size=0, precision="bf16", fused=False))
    b = run(AdaINStylizer(encoder, decoder, cache_size=0, precision="bf16"))
    err_modules, err_fused = (a - reference).abs().mean() * 255, (b - reference).abs().mean() * 255
    assert err_fused < 1.0 and err_fused <= 1.1 * err_modules, (float(err_fused), float(err_modules))
    assert float((a - b).abs().max()) * 255 < 16


@pytest.mark.parametrize("shape", [(1, 8, 9, 11), (2, 5, 3, 3), (1, 4, 2, 7), (1, 6, 7, 2)])
@pytest.mark.parametrize("relu", [True, False])
def test_conv_with_recomputed_borders_equals_pad_and_conv(shape, relu):
    g = torch.Generator().manual_seed(8)
    x = torch.randn(*shape, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(3, shape[1], 3, 3, generator=g).contiguous(memory_format=torch.channels_last)
    b = torch.randn(3, generator=g)
    with torch.inference_mode():
        want = ops.conv2d_relu(ops.reflect_pad1(x, any_layout=True), w, b, relu=relu)
        got = ops.conv2d_reflect_borders(x, w, b, relu=relu)
    assert got.shape == want.shape and torch.allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("hw", [(40, 52), (8, 13)])
def test_fused_encoder_layers_equal_the_modules(encoder, hw):
    """Every layer the fused encoder returns (the folded first conv's relu1_1
    included) equals the plain modules' in fp32."""
    image = torch.rand(1, 3, *hw, generator=torch.Generator().manual_seed(5))
    layers = ("relu1_1", "relu1_2", "relu2_1", "relu3_1")
    with torch.inference_mode():
        want = encoder(image, layers)
        got = encoder(image.contiguous(memory_format=torch.channels_last), layers)
    for name in layers:
        assert got[name].is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(got[name], want[name], rtol=1e-5, atol=1e-4), name


def test_default_path_keeps_quality_against_fp32(real_models):
    """The defaults (bf16 where the CPU runs it natively) within the perf report's quality rule."""
    from stylekit.evaluate import score

    encoder, decoder = real_models
    content, style = _pair(128)
    ref = AdaINStylizer(encoder, decoder, cache_size=0, **REFERENCE)
    fast = AdaINStylizer(encoder, decoder, cache_size=0)
    want, got = ref.transfer(content, [style]), fast.transfer(content, [style])
    q = _quality(got, want, lambda img: score(encoder, img[0], content[0], style[0]))
    assert q["mean_abs_255"] < 1.0 and abs(q["style_change"]) < 0.01, q
    assert q["max_abs_255"] < 16


def test_style_swap_inverse_network_precision_keeps_quality(encoder):
    """Style swap's defaults: float32 features for the exact swap, the shipped
    inverse network in bf16 where native - within the same quality rule."""
    from stylekit.decoder import load_decoder
    from stylekit.evaluate import score
    from stylekit.style_swap.model import INVERSE_WEIGHTS, StyleSwapStylizer
    from stylekit.weights import resolve

    inverse = load_decoder(resolve(INVERSE_WEIGHTS))
    content, style = _pair(128)
    ref = StyleSwapStylizer(encoder, inverse, precision="fp32")
    fast = StyleSwapStylizer(encoder, inverse)
    assert ref.networks.settings()["autocast_dtype"] == fast.networks.settings()["autocast_dtype"] == "float32"
    want, got = ref.transfer(content, [style]), fast.transfer(content, [style])
    q = _quality(got, want, lambda img: score(encoder, img[0], content[0], style[0]))
    assert q["mean_abs_255"] < 1.0 and abs(q["style_change"]) < 0.01, q
    with pytest.raises(StylekitError, match="precision"):
        StyleSwapStylizer(encoder, inverse, precision="int4")


def test_settings_are_validated(encoder, random_decoder):
    with pytest.raises(StylekitError, match="tile_pixels"):
        AdaINStylizer(encoder, random_decoder, tile_pixels=0)
    with pytest.raises(StylekitError, match="tile_size"):
        AdaINStylizer(encoder, random_decoder, tile_size=2)
    with pytest.raises(StylekitError, match="precision"):
        AdaINStylizer(encoder, random_decoder, precision="int4")
    s = AdaINStylizer(encoder, random_decoder, precision="fp32", channels_last=False).settings()
    assert s["precision"] == "fp32" and not s["channels_last"] and not s["fused"]


# ---------------------------------------------------------------------------
# tiling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_tiled_equals_untiled(real_models, precision):
    encoder, decoder = real_models
    g = torch.Generator().manual_seed(5)
    content = torch.rand(1, 3, 150, 118, generator=g)  # not a multiple of the tiles, nor of 4
    style = torch.rand(1, 3, 90, 70, generator=g)
    whole = AdaINStylizer(encoder, decoder, cache_size=0, precision=precision, tile_pixels=None)
    tiled = AdaINStylizer(encoder, decoder, cache_size=0, precision=precision, tile_pixels=1000, tile_size=40)
    assert tiled.networks.tiled(150, 118) and not whole.networks.tiled(150, 118)
    f_whole, f_tiled = whole.encode(content), tiled.encode(content)
    assert f_whole.shape == f_tiled.shape
    (m1, s1), (m2, s2) = whole.style_stats(style), tiled.style_stats(style)  # odd style size: ceil pools in tiles
    a = whole.transfer(content, [style], alpha=0.8)
    b = tiled.transfer(content, [style], alpha=0.8)
    assert a.shape == b.shape == content.shape
    if precision == "fp32":  # the margins make tiles exact: bit-identical here, allow for other conv kernels
        assert torch.allclose(f_whole, f_tiled, rtol=0, atol=1e-5)
        assert torch.allclose(m1, m2, atol=1e-6) and torch.allclose(s1, s2, atol=1e-6)
        assert torch.allclose(a, b, rtol=0, atol=1e-5)
    else:  # bf16: a conv of another shape may round an element differently (measured: 0.15% of them, by 1 ulp)
        assert (f_whole - f_tiled).abs().mean() < 1e-3
        assert torch.allclose(m1, m2, atol=5e-3) and torch.allclose(s1, s2, atol=5e-3)
        assert (a - b).abs().max() < 3 / 255 and (a - b).abs().mean() < 0.5 / 255


def test_tiling_is_automatic_above_the_threshold(real_models, monkeypatch):
    encoder, decoder = real_models
    model = AdaINStylizer(encoder, decoder, cache_size=0, tile_pixels=64 * 64, tile_size=32)
    calls = []
    original = model.networks._run_encoder
    monkeypatch.setattr(model.networks, "_run_encoder", lambda x: calls.append(tuple(x.shape[-2:])) or original(x))
    model.encode(torch.rand(1, 3, 64, 64))
    assert calls == [(64, 64)]  # at the threshold: whole
    calls.clear()
    model.encode(torch.rand(1, 3, 68, 64))
    assert len(calls) == 6 and max(h for h, _ in calls) <= 32 + 2 * model.networks.encode_margin  # 3 x 2 tiles


# ---------------------------------------------------------------------------
# style swap: GEMM and bf16 paths
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("content_shape, style_shape, p, s", CASES)
def test_gemm_and_conv_match_brute_force(content_shape, style_shape, p, s):
    content, style = rand(*content_shape, seed=1), rand(*style_shape, seed=2)
    expected, _ = ref_style_swap(content, style, p, s)
    for impl in ("gemm", "conv"):
        got = style_swap(content, style, p, s, impl=impl)
        assert torch.allclose(got, expected, rtol=0, atol=1e-12), impl


def test_gemm_is_chunk_invariant_across_blocks(monkeypatch):
    from stylekit import patch_swap as SF

    monkeypatch.setattr(SF, "SWAP_BLOCK", 128)  # small blocks, so a small style spans several
    content = rand(1, 16, 22, 25, seed=12, dtype=torch.float32).relu()
    style = rand(1, 16, 24, 21, seed=13, dtype=torch.float32).relu()  # 22 x 19 = 418 patches: 4 GEMM blocks
    style[..., 16:, 12:] = style[..., :8, :9]  # duplicates in different blocks
    whole = style_swap(content, style, 3, 1, impl="gemm")
    for chunk in (1, 100, 129, 256, 10_000):
        assert torch.equal(style_swap(content, style, 3, 1, chunk_size=chunk, impl="gemm"), whole), chunk
    assert torch.equal(style_swap(content, style, 3, 1, max_bytes=1, impl="gemm"), whole)


@pytest.mark.parametrize("content_shape, style_shape, p, s", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_bf16_screening_matches_brute_force(content_shape, style_shape, p, s, dtype):
    content, style = rand(*content_shape, seed=1, dtype=dtype), rand(*style_shape, seed=2, dtype=dtype)
    expected, _ = ref_style_swap(content, style, p, s)
    got = style_swap(content, style, p, s, scores="bf16")
    assert got.dtype == dtype
    assert torch.allclose(got.double(), expected, rtol=0, atol=1e-12 if dtype == torch.float64 else 1e-6)


def _argmax_reference(content, style, p, s):
    """The float64 brute-force argmax of tests/reference.py, flattened (one content image)."""
    return reference.swap_argmax(content, style, p, s).flatten()


def test_bf16_screening_is_exact_where_bf16_cannot_separate(monkeypatch):
    """Style patches a hair apart (far below bf16's resolution): the screening
    keeps them all as candidates, and float64 picks the true best."""
    from stylekit import patch_swap as SF

    g = torch.Generator().manual_seed(21)
    base = torch.rand(1, 8, 3, 3, generator=g, dtype=torch.float64)
    style = base.repeat(1, 1, 1, 6)  # six copies side by side: 16 patches, 6 of them equal to `base`
    for k in range(6):  # then nudge copy k by k * 1e-6: every copy scores differently, all within bf16 rounding
        style[..., 3 * k : 3 * k + 3] += k * 1e-6 * base.flip(-1)
    content = base.repeat(1, 1, 3, 3) + 1e-3 * torch.rand(1, 8, 9, 9, generator=g, dtype=torch.float64)
    want = _argmax_reference(content, style, 3, 1)
    got = SF._argmax_screened(content, style, 3, 1, None, 1e-8, 512 * 2**20)[0].flatten()
    assert torch.equal(got, want)
    for dtype in (torch.float32,):  # the same on float32 inputs
        got = SF._argmax_screened(content.to(dtype), style.to(dtype), 3, 1, None, 1e-8, 512 * 2**20)[0]
        assert torch.equal(got.flatten(), _argmax_reference(content.to(dtype), style.to(dtype), 3, 1))
    # with room for one candidate only, the rows fall back to float64 against every style patch: same answer
    monkeypatch.setattr(SF, "SCREEN_MAX_CANDIDATES", 1)
    got = SF._argmax_screened(content, style, 3, 1, None, 1e-8, 512 * 2**20)[0].flatten()
    assert torch.equal(got, want)


def test_bf16_screening_on_real_looking_features_and_chunks(monkeypatch):
    """ReLU'd features with duplicated regions (exact ties) and all-zero
    patches: equal to the float64 argmax for every chunking and budget, with
    and without the cached screening patches, and through the fallback."""
    from stylekit import patch_swap as SF

    monkeypatch.setattr(SF, "SCREEN_COLUMNS", 64)  # several screening GEMMs per chunk
    monkeypatch.setattr(SF, "SCREEN_BUILD_ROWS", 40)  # and several pieces per chunk of screening rows
    content = rand(1, 16, 20, 23, seed=31, dtype=torch.float32).relu()
    content[..., :5, :6] = 0  # all-zero content patches: patch 0
    style = rand(1, 16, 19, 21, seed=32, dtype=torch.float32).relu()
    style[..., 12:, 10:] = style[..., :7, :11]  # duplicated patches: the lower index wins
    want = _argmax_reference(content, style, 3, 1)
    ho, wo = 18, 21
    assert torch.equal(want.view(ho, wo)[:3, :4], torch.zeros(3, 4, dtype=torch.long))
    for kwargs in (dict(), dict(chunk_size=1), dict(chunk_size=40), dict(chunk_size=10_000), dict(max_bytes=1)):
        chunk = kwargs.get("chunk_size")
        got = SF._argmax_screened(content, style, 3, 1, chunk, 1e-8, kwargs.get("max_bytes", 512 * 2**20))
        assert torch.equal(got[0].flatten(), want), kwargs
    monkeypatch.setattr(SF, "SCREEN_MAX_CANDIDATES", 1)
    got = SF._argmax_screened(content, style, 3, 1, None, 1e-8, 512 * 2**20)
    assert torch.equal(got[0].flatten(), want)


@pytest.mark.parametrize("seed", range(40))
def test_bf16_screening_random_problems(seed):
    """Random shapes, strides, dtypes, signs (negative scores included), ties
    and chunkings: always a patch of the highest float64 score."""
    import random

    from stylekit import patch_swap as SF

    rng = random.Random(seed)
    c, p = rng.choice([1, 2, 5, 16, 33]), rng.choice([1, 2, 3, 5])
    s = rng.randint(1, p)
    h, w, hs, ws = rng.randint(p, 14), rng.randint(p, 14), rng.randint(p, 12), rng.randint(p, 12)
    dtype = rng.choice([torch.float32, torch.float64])
    g = torch.Generator().manual_seed(seed)
    content = torch.randn(rng.choice([1, 2]), c, h, w, generator=g, dtype=dtype)
    style = torch.randn(1, c, hs, ws, generator=g, dtype=dtype)
    if rng.random() < 0.5:
        content, style = content.relu(), style.relu()
    if rng.random() < 0.3:
        style = (style * 4).round() / 4  # many exact ties
    if rng.random() < 0.3:
        style[..., : hs // 2, :] = style[..., :1, :1]  # a flat region
    chunk, budget = rng.choice([None, 1, 7, 100]), rng.choice([512 * 2**20, 1])
    got = SF._argmax_screened(content, style, p, s, chunk, 1e-8, budget)[0]
    # an independent brute force in float64; equal true scores may round apart there
    reference.assert_best_patches(got, content, style, p, s)


def test_flat_style_goes_to_the_lowest_index():
    """A flat style: every patch is the same, so every content patch ties
    everywhere (all candidates: the float64 fallback) and takes patch 0."""
    style = torch.full((1, 4, 8, 9), 0.5)
    content = torch.rand(1, 4, 7, 6, generator=torch.Generator().manual_seed(3))
    exact = style_swap(content, style, 3, 1, scores="exact")
    assert torch.equal(style_swap(content, style, 3, 1, scores="bf16"), exact)


def test_auto_scores_pick_the_screening_where_bf16_is_native(monkeypatch):
    from stylekit import devices
    from stylekit import patch_swap as SF

    calls = []
    original = SF._argmax_screened
    monkeypatch.setattr(SF, "_argmax_screened", lambda *a: calls.append(1) or original(*a))
    content, style = rand(1, 4, 7, 9, seed=1, dtype=torch.float32), rand(1, 4, 6, 5, seed=2, dtype=torch.float32)
    monkeypatch.setattr(SF, "SCREEN_MIN_PAIRS", 1)
    for native in (True, False):
        monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: native)
        assert SF.search_method(content, style) == ("gemm", "bf16" if native else "exact")
        calls.clear()
        style_swap(content, style, 3, 1)
        assert bool(calls) == native
        calls.clear()
        style_swap(content, style, 3, 1, impl="gemm")  # an implementation by name: its exact scores
        assert not calls
        assert SF.search_method(content, style, impl="gemm") == ("gemm", "exact")
    monkeypatch.setattr(SF, "SCREEN_MIN_PAIRS", 10**9)  # small problems: the exact GEMM
    style_swap(content, style, 3, 1)
    assert not calls


@pytest.mark.parametrize("kwargs, match", [(dict(impl="fft"), "impl must be"), (dict(scores="fp8"), "scores must be one of auto, exact, bf16")])
def test_swap_option_errors(kwargs, match):
    with pytest.raises(StylekitError, match=match):
        style_swap(torch.rand(1, 2, 5, 5), torch.rand(1, 2, 5, 5), **kwargs)


# ---------------------------------------------------------------------------
