"""Pure tensor functions: the normalisation family (mean/std statistics, batch,
instance and conditional instance norm, AdaIN, SPADE's modulation), the
region blend of the masked controls, and style swap's patch search
(:func:`style_swap`, from :mod:`stylekit.patch_swap`).

Conventions shared by every function here:

* feature maps are ``(N, C, H, W)``;
* variance is the *biased* (population) variance, as in the papers' code;
* ``std = sqrt(var + eps)`` - ``eps`` sits inside the square root so the
  gradient stays finite on constant maps.
"""

from __future__ import annotations

import torch

from .checks import check_feature_map
from .errors import StylekitError
from .ops import mean_std_fast
from .patch_swap import style_swap

__all__ = [
    "mean_std",
    "masked_mean_std",
    "batch_norm",
    "instance_norm",
    "conditional_instance_norm",
    "adain",
    "adain_from_stats",
    "spade_modulation",
    "blend_regions",
    "apply_affine",
    "style_swap",
]


def _check_affine(param: torch.Tensor | None, channels: int, name: str) -> None:
    if param is not None and tuple(param.shape) != (channels,):
        raise StylekitError(f"{name} must have shape ({channels},), got {tuple(param.shape)}")


def _check_norm_inputs(x, weight, bias) -> None:
    check_feature_map(x, "x")
    _check_affine(weight, x.shape[1], "weight")
    _check_affine(bias, x.shape[1], "bias")


def apply_affine(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None) -> torch.Tensor:
    """``x * weight + bias`` per channel (either may be None: left out)."""
    if weight is not None:
        x = x * weight.view(1, -1, 1, 1)
    if bias is not None:
        x = x + bias.view(1, -1, 1, 1)
    return x


def mean_std(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and ``sqrt(biased var + eps)`` over (H, W).

    Returns two ``(N, C, 1, 1)`` tensors.
    """
    check_feature_map(x, "x")
    # Two passes over an (N, H*W, C) view: torch.var_mean's one-pass kernel over
    # (H, W) was the slowest op of a decoder training step on channels_last maps.
    return mean_std_fast(x, eps)


def masked_mean_std(
    x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over the spatial positions selected by ``mask``.

    ``mask`` is ``(N, 1, H, W)`` with weights in [0, 1] (soft masks weight each
    position); the statistics are the weighted mean and weighted biased
    variance. A mask that selects nothing is an error.
    """
    check_feature_map(x, "x")
    check_feature_map(mask, "mask")
    if mask.shape[1] != 1 or mask.shape[0] != x.shape[0] or mask.shape[2:] != x.shape[2:]:
        raise StylekitError(
            f"mask must have shape ({x.shape[0]}, 1, {x.shape[2]}, {x.shape[3]}), "
            f"got {tuple(mask.shape)}"
        )
    total = mask.sum(dim=(2, 3), keepdim=True)
    if bool((total <= 0).any()):
        raise StylekitError("mask selects no position (it is all black)")
    mean = (x * mask).sum(dim=(2, 3), keepdim=True) / total
    var = ((x - mean) ** 2 * mask).sum(dim=(2, 3), keepdim=True) / total
    return mean, torch.sqrt(var + eps)


def batch_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Batch normalisation with the statistics of this batch, over (N, H, W)."""
    _check_norm_inputs(x, weight, bias)
    var, mean = torch.var_mean(x, dim=(0, 2, 3), keepdim=True, correction=0)
    return apply_affine((x - mean) / torch.sqrt(var + eps), weight, bias)


def instance_norm(
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Instance normalisation: per sample and channel over (H, W)."""
    _check_norm_inputs(x, weight, bias)
    mean, std = mean_std(x, eps)
    return apply_affine((x - mean) / std, weight, bias)


def conditional_instance_norm(
    x: torch.Tensor,
    style_weights: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Conditional instance norm (Dumoulin et al. 2017).

    ``weight`` and ``bias`` are ``(S, C)`` tables, one row per learned style;
    ``style_weights`` is ``(N, S)``: a one-hot row picks one style, any other row
    blends the affine parameters linearly (the paper's style interpolation).
    """
    check_feature_map(x, "x")
    n, c = x.shape[:2]
    if weight.dim() != 2 or weight.shape[1] != c:
        raise StylekitError(f"weight must have shape (S, {c}), got {tuple(weight.shape)}")
    if bias.shape != weight.shape:
        raise StylekitError(f"bias must have shape {tuple(weight.shape)}, got {tuple(bias.shape)}")
    if tuple(style_weights.shape) != (n, weight.shape[0]):
        raise StylekitError(
            f"style_weights must have shape ({n}, {weight.shape[0]}), got {tuple(style_weights.shape)}"
        )
    gamma = (style_weights @ weight).view(n, c, 1, 1)
    beta = (style_weights @ bias).view(n, c, 1, 1)
    return instance_norm(x, eps=eps) * gamma + beta


def adain_from_stats(
    content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """AdaIN with precomputed style statistics (lets callers cache a style)."""
    check_feature_map(content, "content")
    expected = (content.shape[0], content.shape[1], 1, 1)
    for name, t in (("style_mean", style_mean), ("style_std", style_std)):
        if tuple(t.shape) != expected and tuple(t.shape) != (1,) + expected[1:]:
            raise StylekitError(f"{name} must have shape {expected}, got {tuple(t.shape)}")
    mean, std = mean_std(content, eps)
    return style_std * (content - mean) / std + style_mean


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation (Huang & Belongie 2017, eq. 8).

    ``sigma(y) * (x - mu(x)) / sigma(x) + mu(y)`` with per-sample, per-channel
    statistics over spatial positions. ``content`` and ``style`` must agree in
    N and C; their H x W may differ.
    """
    check_feature_map(content, "content")
    check_feature_map(style, "style")
    if content.shape[:2] != style.shape[:2]:
        raise StylekitError(
            "content and style must have the same batch size and channels, got "
            f"{tuple(content.shape[:2])} and {tuple(style.shape[:2])}"
        )
    style_mean, style_std = mean_std(style, eps)
    return adain_from_stats(content, style_mean, style_std, eps)


def spade_modulation(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """SPADE's formula (Park et al. 2019): parameter-free batch norm, then
    ``normalised * (1 + gamma) + beta`` with spatial ``gamma``/``beta`` maps of
    x's shape."""
    check_feature_map(x, "x")
    if gamma.shape != x.shape or beta.shape != x.shape:
        raise StylekitError(
            f"gamma and beta must have the shape of x {tuple(x.shape)}, "
            f"got {tuple(gamma.shape)} and {tuple(beta.shape)}"
        )
    return batch_norm(x, eps=eps) * (1 + gamma) + beta


def blend_regions(
    content_feat: torch.Tensor, stylized: list[torch.Tensor], masks: list[torch.Tensor]
) -> torch.Tensor:
    """Combine per-region results: each position takes its masks' results,
    weighted by the masks (normalised where they overlap); positions no mask
    covers keep the content features."""
    coverage = torch.stack(masks).sum(0)
    mixed = sum(m * t for m, t in zip(masks, stylized))
    overlap = coverage.clamp_min(1.0)
    return mixed / overlap + (1 - coverage.clamp(max=1.0)) * content_feat
