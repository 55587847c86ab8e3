"""Perceptual losses on encoder features, shared by training, optimisation and evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .functional import mean_std


def content_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error: the paper's ``||f(g(t)) - t||^2`` normalised by its size."""
    return F.mse_loss(pred.float(), target.float())


def mean_std_style_loss(
    pred: dict[str, torch.Tensor], style: dict[str, torch.Tensor], layers, eps: float = 1e-5
) -> torch.Tensor:
    """AdaIN's style loss: sum over layers of ``||mu(a)-mu(b)||^2 + ||sigma(a)-sigma(b)||^2``
    (each a mean squared error over batch and channels)."""
    return statistics_style_loss(feature_statistics(pred, layers, eps), feature_statistics(style, layers, eps))


def feature_statistics(features: dict[str, torch.Tensor], layers, eps: float = 1e-5) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's per-sample, per-channel ``(mean, sqrt(biased var + eps))``, (N, C, 1, 1) each."""
    return {layer: mean_std(features[layer].float(), eps) for layer in layers}


def statistics_style_loss(pred: dict[str, tuple], style: dict[str, tuple]) -> torch.Tensor:
    """:func:`mean_std_style_loss` on statistics already taken (:func:`feature_statistics`);
    one style's statistics serve a whole batch."""
    total = 0.0
    for layer, (pm, ps) in pred.items():
        sm, ss = style[layer]
        if sm.shape[0] != pm.shape[0]:  # one style for a batch
            sm, ss = sm.expand_as(pm), ss.expand_as(ps)
        total = total + F.mse_loss(pm, sm) + F.mse_loss(ps, ss)
    return total


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``F F^T / (H W)`` per sample: (N, C, C).

    With a ``(N, 1, H, W)`` ``mask`` in [0, 1], the Gram matrix of the masked
    region: ``sum_x m(x) f(x) f(x)^T / sum_x m(x)`` (a soft mask weights each
    position, as :func:`stylekit.functional.masked_mean_std` does). Computed
    in float32, or in float64 for float64 features (references, gradcheck).
    """
    n, c, h, w = features.shape
    flat = (features if features.dtype == torch.float64 else features.float()).reshape(n, c, h * w)
    if mask is None:
        return flat @ flat.transpose(1, 2) / (h * w)
    weights = mask.to(flat.dtype).reshape(n, 1, h * w)
    return (flat * weights) @ flat.transpose(1, 2) / weights.sum(dim=2, keepdim=True)


def gram_loss(
    pred: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], layers, masks: dict[str, torch.Tensor] | None = None
) -> torch.Tensor:
    """Sum over layers of the mean squared difference between the Gram matrices
    of ``pred`` (of the region ``masks[layer]`` when given) and precomputed
    target Gram matrices (so targets can be blended, or cached)."""
    total = 0.0
    for layer in layers:
        gp = gram_matrix(pred[layer], None if masks is None else masks[layer])
        gt = targets[layer]
        if gt.shape[0] != gp.shape[0]:
            gt = gt.expand_as(gp)
        total = total + F.mse_loss(gp, gt)
    return total


def gram_style_loss(pred: dict[str, torch.Tensor], style: dict[str, torch.Tensor], layers) -> torch.Tensor:
    """Gatys et al.'s style loss: sum over layers of the mean squared Gram difference."""
    return gram_loss(pred, {layer: gram_matrix(style[layer]) for layer in layers}, layers)


def total_variation(img: torch.Tensor) -> torch.Tensor:
    """Squared total variation: the sum of squared differences between neighbouring pixels."""
    dh = img[..., 1:, :] - img[..., :-1, :]
    dw = img[..., :, 1:] - img[..., :, :-1]
    return (dh**2).sum() + (dw**2).sum()


def inversion_terms(output_feat: torch.Tensor, target: torch.Tensor, image: torch.Tensor, tv_weight: float) -> dict:
    """Style-swap's feature-inversion objective as named terms:
    ``||Phi(I) - H||^2`` (a mean squared error) and ``tv_weight * TV(I)`` per image.

    Shared by the optimisation mode and the inverse network's training, so
    both minimise the same thing with the same weights.
    """
    terms = {"feature": content_loss(output_feat, target)}
    if tv_weight > 0:
        terms["tv"] = tv_weight * total_variation(image.float()) / image.shape[0]
    return terms


def sliced_wasserstein_colour_loss(output: torch.Tensor, style: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Squared sliced Wasserstein-2 distance between the RGB pixel distributions
    of each ``output`` (N, 3, H, W) and its ``style`` (N, 3, h, w), along the unit
    ``directions`` (D, 3): the mean over samples, directions and the output's
    pixels of ``(sorted projection of the output - the style's projection at the
    same quantile)^2``. The style's quantiles are read at the output's pixel
    midpoints (nearest order statistic), so the two images may differ in size."""
    n, p = output.shape[0], output.shape[-2] * output.shape[-1]
    q = style.shape[-2] * style.shape[-1]
    d = directions.to(output.device, torch.float32)
    out = torch.einsum("dc,ncp->ndp", d, output.float().reshape(n, 3, p)).sort(dim=-1).values
    with torch.no_grad():
        ref = torch.einsum("dc,ncp->ndp", d, style.float().reshape(n, 3, q)).sort(dim=-1).values
        at = ((torch.arange(p, device=output.device, dtype=torch.float64) + 0.5) * q / p).long().clamp(max=q - 1)
        ref = ref[..., at]
    return F.mse_loss(out, ref)
