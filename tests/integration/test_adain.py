"""AdaIN stylization controls against float64 references of the paper's formulas."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from stylekit import color
from stylekit.adain.model import AdaINStylizer, blend_regions
from stylekit.errors import StylekitError
from stylekit.functional import mean_std
from stylekit.pipeline import Stylizer, pad_to_multiple

from .. import reference


EPS = 1e-5


def ref_stats(x):
    """float64 per-channel mean and sqrt(biased var + eps) (tests/reference.py), as tensors."""
    return tuple(torch.from_numpy(t) for t in reference.mean_std(x, EPS))


def ref_adain(c, s_mean, s_std):
    return torch.from_numpy(reference.adain_from_stats(c, s_mean, s_std, EPS))


@pytest.fixture
def feats():
    g = torch.Generator().manual_seed(3)
    content = torch.rand(1, 8, 6, 10, generator=g, dtype=torch.float64) * 3
    styles = [torch.rand(1, 8, 5, 7, generator=g, dtype=torch.float64) * (i + 1) + i for i in range(3)]
    return content, styles


def test_alpha_and_interpolation_match_the_paper(stylizer, feats):
    content, styles = feats
    stats = [ref_stats(s) for s in styles]
    t1 = stylizer.target_features(content, stats[:1])
    assert torch.allclose(t1, ref_adain(content, *stats[0]), atol=1e-10)
    t0 = stylizer.target_features(content, stats[:1], alpha=0.0)
    assert torch.equal(t0, content)
    alpha, weights = 0.3, [0.5, 0.2, 0.3]
    expected = sum(w * ref_adain(content, *st) for w, st in zip(weights, stats))
    expected = (1 - alpha) * content + alpha * expected
    got = stylizer.target_features(content, stats, weights, None, alpha)
    assert torch.allclose(got, expected, atol=1e-10)


def test_masks_apply_each_style_with_region_statistics(stylizer, feats):
    content, styles = feats
    stats = [ref_stats(s) for s in styles[:2]]
    h, w = content.shape[-2:]
    m = stylizer.multiple
    left = torch.zeros(1, 1, h * m, w * m, dtype=torch.float64)
    left[..., : 4 * m] = 1  # the first 4 feature columns
    masks = [left, 1 - left]
    t = stylizer.target_features(content, stats, None, masks, 1.0)
    for region, (s_mean, s_std) in zip((slice(0, 4), slice(4, w)), stats):
        part = content[..., region]
        expected = ref_adain(part, s_mean, s_std)
        assert torch.allclose(t[..., region], expected, atol=1e-8)
        got_mean, got_std = ref_stats(t[..., region])
        # the region now carries the style's statistics (std up to eps)
        assert torch.allclose(got_mean, s_mean, atol=1e-8)
        assert torch.allclose(got_std, s_std, atol=1e-3)


def test_blend_regions_uncovered_and_overlap():
    content = torch.zeros(1, 1, 1, 3, dtype=torch.float64)
    a = torch.full_like(content, 2.0)
    b = torch.full_like(content, 4.0)
    ma = torch.tensor([[[[1.0, 1.0, 0.0]]]], dtype=torch.float64)
    mb = torch.tensor([[[[0.0, 1.0, 0.0]]]], dtype=torch.float64)
    out = blend_regions(content + 7, [a, b], [ma, mb])
    assert out.flatten().tolist() == [2.0, 3.0, 7.0]  # a only, average of a and b, content
    half = torch.tensor([[[[0.5, 0.0, 0.0]]]], dtype=torch.float64)
    out = blend_regions(content + 7, [a], [half])
    assert out.flatten().tolist() == [4.5, 7.0, 7.0]  # soft edge: half style, half content


def test_pad_to_multiple_reflects():
    x = torch.arange(15.0).view(1, 1, 3, 5)
    y = pad_to_multiple(x, 4)
    assert y.shape == (1, 1, 4, 8)
    assert torch.equal(y[..., :3, :5], x)
    assert y[0, 0, 0, 5] == x[0, 0, 0, 3] and y[0, 0, 3, 0] == x[0, 0, 1, 0]  # reflection, not zeros
    assert pad_to_multiple(x[..., :1, :2], 4).shape == (1, 1, 4, 4)  # too small to reflect: replicate


@pytest.mark.parametrize("hw", [(67, 101), (33, 17), (64, 64)])
def test_output_keeps_any_input_size(stylizer, hw):
    content = torch.rand(3, *hw, generator=torch.Generator().manual_seed(1))
    out = stylizer.stylize(content, torch.rand(3, 40, 30), size=0)
    assert isinstance(out, torch.Tensor) and out.shape == (3, *hw)
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_sizes_crop_and_pil_roundtrip(stylizer):
    content = Image.new("RGB", (120, 80), (200, 30, 30))
    out = stylizer.stylize(content, torch.rand(3, 40, 30), size=60)
    assert isinstance(out, Image.Image) and out.size == (60, 40)
    out = stylizer.stylize(content, torch.rand(3, 40, 30), size=48, crop=True)
    assert out.size == (48, 48)


def test_style_weights_one_hot_equals_single_style(stylizer):
    g = torch.Generator().manual_seed(5)
    content, s1, s2 = torch.rand(3, 40, 48, generator=g), torch.rand(3, 32, 32, generator=g), torch.rand(3, 36, 28, generator=g)
    single = stylizer.stylize(content, s1, size=0, style_size=0)
    blended = stylizer.stylize(content, [s1, s2], style_weights=[3.0, 0.0], size=0, style_size=0)
    assert torch.allclose(single, blended, atol=1e-6)
    mixed = stylizer.stylize(content, [s1, s2], style_weights=[1, 1], size=0, style_size=0)
    assert not torch.allclose(single, mixed, atol=1e-3)


def test_style_features_are_cached(stylizer, monkeypatch):
    content, style = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    stylizer.stylize(content, style, alpha=1.0, size=0)
    calls = []
    original = stylizer.networks.encode_image  # every image the encoder sees goes through here
    monkeypatch.setattr(stylizer.networks, "encode_image", lambda *a, **k: calls.append(1) or original(*a, **k))
    stylizer.stylize(content, style, alpha=0.4, size=0)
    assert calls == []  # both content features and style statistics came from the cache
    stylizer.stylize(content, torch.rand(3, 32, 32), alpha=0.4, size=0)
    assert len(calls) == 1


class RecordingStylizer(Stylizer):
    """A stand-in method: returns a fixed gray ramp and records what it was given."""

    device = torch.device("cpu")

    def transfer(self, content, styles, weights, masks, alpha):
        self.seen = (content, styles, weights, masks, alpha)
        h, w = content.shape[-2:]
        ramp = torch.linspace(0.2, 0.8, w).expand(1, 1, h, w)
        return ramp.expand(1, 3, h, w).clone()


def test_preserve_color_luminance_keeps_content_chroma():
    g = torch.Generator().manual_seed(7)
    content = 0.3 + 0.4 * torch.rand(3, 48, 40, generator=g)
    style = torch.rand(3, 32, 32, generator=g)
    fake = RecordingStylizer()
    out = fake.stylize(content, style, preserve_color="luminance", size=0)
    given_content, given_styles = fake.seen[0][0], fake.seen[1][0][0]
    # the method saw luminance-only images, and the style's luminance was matched to the content's
    assert torch.allclose(given_content[0], color.luminance(content)[0], atol=1e-6)
    assert torch.equal(given_content[0], given_content[1]) and torch.equal(given_styles[0], given_styles[2])
    y_content, y_style = color.luminance(content), given_styles[:1]
    assert abs(float(y_style.mean() - y_content.mean())) < 0.02
    # the output: the method's luminance with the content's chroma
    yiq_out, yiq_in = color.rgb_to_yiq(out.double()), color.rgb_to_yiq(content.double())
    in_gamut = ((out > 0) & (out < 1)).all(0)  # elsewhere the clamp to [0, 1] moves the colour
    assert in_gamut.float().mean() > 0.8
    assert torch.allclose(yiq_out[1:, in_gamut], yiq_in[1:, in_gamut], atol=1e-5)
    ramp = torch.linspace(0.2, 0.8, 40).double().expand(48, 40)
    assert torch.allclose(yiq_out[0, in_gamut], ramp[in_gamut], atol=1e-5)


def test_preserve_color_histogram_recolours_the_style():
    g = torch.Generator().manual_seed(8)
    content = 0.2 + 0.3 * torch.rand(3, 40, 40, generator=g)
    style = torch.rand(3, 32, 32, generator=g)
    fake = RecordingStylizer()
    fake.stylize(content, style, preserve_color="histogram", size=0)
    given = fake.seen[1][0][0].double().reshape(3, -1)
    assert torch.allclose(given.mean(1), content.double().reshape(3, -1).mean(1), atol=1e-4)


def test_pipeline_passes_normalised_weights_alpha_and_masks():
    fake = RecordingStylizer()
    content = torch.rand(3, 40, 60)
    fake.stylize(content, [torch.rand(3, 20, 20)] * 2, style_weights=[1, 3], alpha=0.25, size=30)
    _, styles, weights, masks, alpha = fake.seen
    assert weights == [0.25, 0.75] and alpha == 0.25 and masks is None
    mask = torch.zeros(1, 40, 60)
    mask[..., :30] = 1
    out = fake.stylize(content, [torch.rand(3, 20, 20)] * 2, masks=[mask, 1 - mask], size=30)
    masks = fake.seen[3]
    assert out.shape == (3, 20, 30) and masks[0].shape == (1, 1, 20, 30)
    assert float(masks[0][..., :14].min()) == 1.0 and float(masks[0][..., 16:].max()) == 0.0


def test_color_histogram_matching_matches_mean_and_covariance():
    g = torch.Generator().manual_seed(2)
    source = torch.rand(3, 30, 40, generator=g, dtype=torch.float64) * 0.3 + 0.1
    mix = torch.tensor([[0.8, 0.1, 0.0], [0.2, 0.5, 0.1], [0.0, 0.3, 0.3]], dtype=torch.float64)
    target = (mix @ torch.rand(3, 25 * 25, generator=g, dtype=torch.float64)).view(3, 25, 25) * 0.8 + 0.05
    out = color.match_color_histogram(source, target, eps=0.0)
    flat_o, flat_t = out.reshape(3, -1), target.reshape(3, -1)
    assert torch.allclose(flat_o.mean(1), flat_t.mean(1), atol=1e-6)
    assert torch.allclose(torch.cov(flat_o, correction=0), torch.cov(flat_t, correction=0), atol=1e-6)


def test_yiq_roundtrip_and_luminance_weights():
    x = torch.rand(3, 5, 6, dtype=torch.float64)
    assert torch.allclose(color.yiq_to_rgb(color.rgb_to_yiq(x)), x, atol=1e-12)
    y = color.luminance(x)
    assert torch.allclose(y[0], 0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2])


def test_control_validation(stylizer):
    c, s = torch.rand(3, 32, 32), torch.rand(3, 32, 32)
    for kwargs, message in [
        ({"alpha": 1.5}, "alpha must be in"),
        ({"alpha": float("nan")}, "alpha must be in"),
        ({"style_weights": [-1.0]}, "non-negative"),
        ({"style_weights": [0.0]}, "not all be zero"),
        ({"style_weights": [1.0, 2.0]}, "2 style weights for 1 style"),
        ({"preserve_color": "sepia"}, "preserve_color must be one of"),
        ({"size": 5}, "at least 16"),
        ({"masks": [torch.zeros(1, 32, 32)]}, "all black"),
        ({"masks": [torch.ones(1, 16, 32)]}, "mask 1 is 32x16 but the content image is 32x32: another aspect ratio"),
        ({"masks": [torch.ones(1, 32, 32)] * 2}, "2 masks for 1 style;"),
    ]:
        with pytest.raises(StylekitError, match=message):
            stylizer.stylize(c, s, **{"size": 0, **kwargs})
    with pytest.raises(StylekitError, match="NaN"):
        stylizer.stylize(torch.full((3, 32, 32), float("nan")), s)
    with pytest.raises(StylekitError, match="at least one style"):
        stylizer.stylize(c, [])


def test_stylizer_checks_decoder_depth(encoder):
    from stylekit.decoder import MirrorDecoder

    with pytest.raises(StylekitError, match="deeper than the encoder"):
        AdaINStylizer(encoder, MirrorDecoder("relu4_1"))


def test_region_stats_use_mean_std(stylizer):
    # mean_std in the cache is the same function as the training loss uses
    x = torch.rand(1, 4, 5, 5, dtype=torch.float64)
    m, s = mean_std(x, EPS)
    rm, rs = ref_stats(x)
    assert torch.allclose(m, rm) and torch.allclose(s, rs)
