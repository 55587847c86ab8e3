"""stylekit.measures against hand-computed values and independent float64 formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stylekit.errors import StylekitError
from stylekit.measures import (cfsd_from_features, colour_distance, downsample, measure, multiscale_style_losses,
                               ssim_gray, ssim_luma)



def test_downsample_is_the_block_mean():
    x = torch.arange(2 * 4 * 6, dtype=torch.float64).reshape(1, 2, 4, 6)
    got = downsample(x, 2)
    expected = x.reshape(1, 2, 2, 2, 3, 2).mean(dim=(3, 5))
    assert got.shape == (1, 2, 2, 3)
    assert torch.equal(got, expected)
    assert downsample(x, 1) is x


def test_colour_distance_of_an_image_to_itself_is_zero_and_symmetric():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 20, 30, generator=g), torch.rand(3, 17, 11, generator=g)
    assert colour_distance(a, a) == pytest.approx(0, abs=1e-12)
    assert colour_distance(a, b) == pytest.approx(colour_distance(b, a), rel=1e-12)


def test_colour_distance_of_two_flat_images_is_their_colour_difference_over_sqrt3():
    # every projection of a flat image is one value: W2 along unit direction d is |d . (p - q)|;
    # averaged over many random directions E[(d . v)^2] = |v|^2 / 3
    p, q = torch.tensor([0.9, 0.2, 0.4]), torch.tensor([0.1, 0.5, 0.3])
    a, b = p.view(3, 1, 1).expand(3, 8, 8), q.view(3, 1, 1).expand(3, 5, 7)
    got = colour_distance(a, b, directions=20000)
    assert got == pytest.approx(float((p - q).norm()) / math.sqrt(3), rel=0.02)


def test_colour_distance_ignores_layout_but_not_palette():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, 16, 16, generator=g)
    shuffled = a.reshape(3, -1)[:, torch.randperm(256, generator=g)].reshape(3, 16, 16)
    assert colour_distance(a, shuffled) == pytest.approx(0, abs=1e-9)
    assert colour_distance(a, (a * 0.5).clamp(0, 1)) > 0.1


def _ssim_reference(x: np.ndarray, y: np.ndarray, size=11, sigma=1.5, c1=0.01**2, c2=0.03**2) -> float:
    """SSIM by its definition, window by window, in float64 (Wang et al. 2004)."""
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    w = np.outer(g, g)
    w /= w.sum()
    values = []
    for i in range(x.shape[0] - size + 1):
        for j in range(x.shape[1] - size + 1):
            px, py = x[i : i + size, j : j + size], y[i : i + size, j : j + size]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cov = (w * (px - mx) * (py - my)).sum()
            values.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_the_definition_on_luma():
    g = torch.Generator().manual_seed(2)
    a = torch.rand(3, 16, 19, generator=g, dtype=torch.float64)
    b = (a * 0.7 + 0.3 * torch.rand(3, 16, 19, generator=g, dtype=torch.float64)).clamp(0, 1)
    luma = lambda t: (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]).numpy()  # noqa: E731
    assert ssim_gray(a, b) == pytest.approx(_ssim_reference(luma(a), luma(b)), rel=1e-9)
    assert ssim_gray(a, a) == pytest.approx(1.0, abs=1e-12)


def test_batched_ssim_is_each_images_and_has_a_gradient():
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(2, 3, 20, 24, generator=g, dtype=torch.float64), torch.rand(2, 3, 20, 24, generator=g, dtype=torch.float64)
    a.requires_grad_()
    values = ssim_luma(a, b)
    for i in range(2):
        x, y = ((0.299 * t[i, 0] + 0.587 * t[i, 1] + 0.114 * t[i, 2]).detach().numpy() for t in (a, b))
        assert values[i].item() == pytest.approx(_ssim_reference(x, y), rel=1e-9)
    assert torch.autograd.gradcheck(lambda x: ssim_luma(x, b[:, :, :14, :14]), (a[:1, :, :14, :14].detach().requires_grad_(),))


def test_ssim_needs_one_size():
    with pytest.raises(StylekitError, match="one size"):
        ssim_gray(torch.rand(3, 16, 16), torch.rand(3, 16, 17))


def test_cfsd_matches_a_row_by_row_kl_divergence():
    g = torch.Generator().manual_seed(3)
    fc, fo = torch.rand(1, 4, 2, 3, generator=g), torch.rand(1, 4, 2, 3, generator=g)
    c, n = 4, 6
    xc = fc.double().reshape(c, n).T.numpy() / c
    xo = fo.double().reshape(c, n).T.numpy() / c
    total = 0.0
    for i in range(n):
        sc = np.array([xc[i] @ xc[j] for j in range(n)])
        so = np.array([xo[i] @ xo[j] for j in range(n)])
        p = np.exp(sc) / np.exp(sc).sum()
        q = np.exp(so) / np.exp(so).sum()
        total += float((p * np.log(p / q)).sum())
    assert cfsd_from_features(fo, fc) == pytest.approx(total, rel=1e-9)
    assert cfsd_from_features(fc, fc) == pytest.approx(0, abs=1e-15)


def test_multiscale_style_loss_is_the_style_loss_of_the_downsampled_pair(encoder):
    from stylekit.losses import mean_std_style_loss

    g = torch.Generator().manual_seed(4)
    out, style = torch.rand(3, 64, 72, generator=g), torch.rand(3, 80, 64, generator=g)
    layers = ("relu1_1", "relu2_1", "relu3_1")
    got = multiscale_style_losses(encoder, out, style, scales=(1, 2, 4, 8))
    for s in (1, 2, 4):
        o = out.reshape(3, 64 // s, s, 72 // s, s).mean(dim=(2, 4))
        t = style.reshape(3, 80 // s, s, 64 // s, s).mean(dim=(2, 4))
        expected = mean_std_style_loss(encoder(o[None], layers), encoder(t[None], layers), layers).item()
        assert got[s] == pytest.approx(expected, rel=1e-5)
    assert got[8] is None  # 8 x 9 px after downsampling: too small to measure


def test_measure_of_the_content_itself(encoder):
    g = torch.Generator().manual_seed(5)
    content, style = torch.rand(3, 64, 64, generator=g), torch.rand(3, 64, 64, generator=g)
    m = measure(encoder, content, content, style)
    assert m["content"] == 0 and m["ssim"] == pytest.approx(1) and m["cfsd"] == pytest.approx(0, abs=1e-12)
    other = measure(encoder, style, content, style)
    assert other["style"] == 0 and other["gram"] == 0 and other["colour"] == pytest.approx(0, abs=1e-9)
    assert other["style_2x"] == 0 and other["style_4x"] == 0
    assert other["content"] > 0 and other["ssim"] < 0.5
