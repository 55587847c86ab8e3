"""stylekit.color: the mean-colour offset against values worked out by hand."""

import pytest
import torch

from stylekit.color import mean_colour_shift
from stylekit.errors import StylekitError


def test_mean_colour_shift_by_hand():
    # channel 0: pixels 0.2, 0.4, 0.6, 1.5 (shown as 1.0) -> mean 0.55; channel 1: all 0.5; channel 2: -1, 0, 0, 0 -> 0
    image = torch.tensor([[[[0.2, 0.4], [0.6, 1.5]], [[0.5, 0.5], [0.5, 0.5]], [[-1.0, 0.0], [0.0, 0.0]]]])
    target = torch.tensor([[0.75, 0.1, 0.3]])
    shift = mean_colour_shift(image, target, 0.5)
    assert shift.shape == (1, 3, 1, 1)
    assert torch.allclose(shift.flatten(), torch.tensor([0.1, -0.2, 0.15]), atol=1e-7)
    # over a region: the left column (weights 1, 1) and half of the right (0.5, 0.5)
    weight = torch.tensor([[[[1.0, 0.5], [1.0, 0.5]]]])
    # weighted means: ch0 (0.2 + 0.2 + 0.6 + 0.5) / 3 = 0.5, ch1 0.5, ch2 0
    region = mean_colour_shift(image, target, 1.0, weight=weight)
    expected = weight * torch.tensor([0.25, -0.4, 0.3])[:, None, None]
    assert torch.allclose(region, expected, atol=1e-6)
    assert torch.equal(mean_colour_shift(image, target, 0.0), torch.zeros(1, 3, 1, 1))
    with pytest.raises(StylekitError, match="mean_colour_shift"):
        mean_colour_shift(image, torch.zeros(2, 3), 1.0)
