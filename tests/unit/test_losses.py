"""stylekit.losses against the float64 formulas of tests/reference.py."""

from __future__ import annotations

import pytest
import torch

from stylekit import losses

from .. import reference
from ..reference import rand

LAYERS = ("relu1_1", "relu2_1")


def features(seed: int, batch: int = 2) -> dict[str, torch.Tensor]:
    return {"relu1_1": rand(batch, 3, 6, 5, seed=seed), "relu2_1": rand(batch, 4, 3, 3, seed=seed + 1) * 2 + 1}


def test_content_loss_is_the_mean_squared_error():
    a, b = rand(2, 3, 4, 5, seed=1), rand(2, 3, 4, 5, seed=2)
    assert losses.content_loss(a, b).item() == pytest.approx(reference.mse(a, b), rel=1e-6)
    assert losses.content_loss(a, a).item() == 0.0


def test_gram_matrix_with_and_without_a_mask():
    x = rand(2, 3, 4, 5, seed=3)
    reference.close(losses.gram_matrix(x), reference.gram_matrix(x), **reference.F32)
    mask = torch.rand(2, 1, 4, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    reference.close(losses.gram_matrix(x, mask), reference.gram_matrix(x, mask), **reference.F32)
    # by hand: one channel, values 1 and 3, the second weighted 3 times the first
    x = torch.tensor([[[[1.0, 3.0]]]])
    assert losses.gram_matrix(x, torch.tensor([[[[1.0, 3.0]]]])).item() == pytest.approx((1 + 3 * 9) / 4)


def test_mean_std_style_loss_sums_the_layers_and_broadcasts_one_style():
    pred, style = features(5), features(7)
    got = losses.mean_std_style_loss(pred, style, LAYERS)
    assert got.item() == pytest.approx(reference.mean_std_style_loss(pred, style, LAYERS), rel=1e-5)
    one = {k: v[:1] for k, v in style.items()}  # one style for the batch
    got = losses.mean_std_style_loss(pred, one, LAYERS)
    assert got.item() == pytest.approx(reference.mean_std_style_loss(pred, one, LAYERS), rel=1e-5)
    assert losses.mean_std_style_loss(pred, pred, LAYERS).item() == 0.0


def test_style_loss_from_statistics_taken_apart():
    """Statistics taken once (per style, in any batch) give the same loss as the features."""
    pred, style = features(13), features(15)
    stats = [losses.feature_statistics({k: v[i : i + 1] for k, v in style.items()}, LAYERS) for i in range(2)]
    stacked = {k: (torch.cat([s[k][0] for s in stats]), torch.cat([s[k][1] for s in stats])) for k in LAYERS}
    got = losses.statistics_style_loss(losses.feature_statistics(pred, LAYERS), stacked)
    assert got.item() == pytest.approx(reference.mean_std_style_loss(pred, style, LAYERS), rel=1e-5)
    # by hand: one channel holding 1 and 3 (mean 2, std sqrt(1 + eps)) against a constant 2
    one = {"relu1_1": torch.tensor([[[[1.0, 3.0]]]])}
    flat = losses.feature_statistics({"relu1_1": torch.full((1, 1, 1, 2), 2.0)}, ("relu1_1",), eps=0.0)
    got = losses.statistics_style_loss(losses.feature_statistics(one, ("relu1_1",), eps=0.0), flat)
    assert got.item() == pytest.approx(1.0)


def test_gram_losses():
    pred, style = features(9), features(11)
    want = reference.gram_style_loss(pred, style, LAYERS)
    assert losses.gram_style_loss(pred, style, LAYERS).item() == pytest.approx(want, rel=1e-5)
    targets = {layer: losses.gram_matrix(style[layer]) for layer in LAYERS}
    assert losses.gram_loss(pred, targets, LAYERS).item() == pytest.approx(want, rel=1e-5)
    one = {layer: t[:1] for layer, t in targets.items()}  # one target for the batch
    want_one = reference.gram_style_loss(pred, {k: v[:1] for k, v in style.items()}, LAYERS)
    assert losses.gram_loss(pred, one, LAYERS).item() == pytest.approx(want_one, rel=1e-5)


def test_total_variation_by_hand_and_against_the_reference():
    img = torch.tensor([[[[0.0, 1.0], [3.0, 1.0]]]])
    assert losses.total_variation(img).item() == (1 + 4) + (9 + 0)  # horizontal, then vertical pairs
    x = rand(2, 3, 5, 6, seed=13)
    assert losses.total_variation(x).item() == pytest.approx(reference.total_variation(x), rel=1e-10)


def test_inversion_terms_weigh_the_variation_per_image():
    feat, target, image = rand(2, 4, 3, 3, seed=14), rand(2, 4, 3, 3, seed=15), rand(2, 3, 8, 8, seed=16)
    terms = losses.inversion_terms(feat, target, image, tv_weight=0.5)
    assert terms["feature"].item() == pytest.approx(reference.mse(feat, target), rel=1e-6)
    assert terms["tv"].item() == pytest.approx(0.5 * reference.total_variation(image) / 2, rel=1e-6)
    assert set(losses.inversion_terms(feat, target, image, tv_weight=0.0)) == {"feature"}


def test_sliced_wasserstein_colour_loss_by_hand():
    red = torch.tensor([[1.0, 0.0, 0.0]])
    out = torch.zeros(1, 3, 2, 2)
    out[0, 0] = torch.tensor([[0.1, 0.5], [0.3, 0.9]])
    style = torch.zeros(1, 3, 2, 2)
    style[0, 0] = torch.tensor([[0.2, 0.2], [0.8, 0.6]])
    # sorted 0.1 0.3 0.5 0.9 against 0.2 0.2 0.6 0.8: differences of 0.1 each
    assert losses.sliced_wasserstein_colour_loss(out, style, red).item() == pytest.approx(0.01)
    # a style of 8 pixels: the output's 4 midpoint quantiles are its order statistics 1, 3, 5, 7
    big = torch.zeros(1, 3, 2, 4)
    big[0, 0] = torch.tensor([[0.0, 0.1, 0.2, 0.3], [0.4, 0.5, 0.6, 0.7]])
    expected = ((torch.tensor([0.1, 0.3, 0.5, 0.9]) - torch.tensor([0.1, 0.3, 0.5, 0.7])) ** 2).mean()
    assert losses.sliced_wasserstein_colour_loss(out, big, red).item() == pytest.approx(expected.item())
    # a direction's sign and a permutation of the pixels change nothing; the grey axis sees the sum
    flipped = out.flip(-1)
    assert losses.sliced_wasserstein_colour_loss(flipped, style, -red).item() == pytest.approx(0.01)
    grey = torch.full((1, 3), 3 ** -0.5)
    a, b = torch.rand(1, 3, 3, 3, dtype=torch.float64), torch.rand(1, 3, 3, 3, dtype=torch.float64)
    pa, pb = sorted(a.sum(1).flatten().tolist()), sorted(b.sum(1).flatten().tolist())
    hand = sum((x - y) ** 2 for x, y in zip(pa, pb)) / 3 / 9
    assert losses.sliced_wasserstein_colour_loss(a, b, grey).item() == pytest.approx(hand, rel=1e-5)
