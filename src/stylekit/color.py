"""Colour preservation (Gatys et al. 2017, "Controlling Perceptual Factors in
Neural Style Transfer"): luminance-only transfer and colour histogram matching;
palette transfer, and the mean-colour offset of the fast network.

Images are ``(3, H, W)`` or ``(N, 3, H, W)`` RGB tensors in [0, 1].
"""

from __future__ import annotations

import torch

from .errors import StylekitError

# NTSC YIQ: Y is the luminance, I and Q carry the chroma.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    dtype=torch.float64,
)


def _check_rgb(img: torch.Tensor, name: str) -> None:
    if img.dim() not in (3, 4) or img.shape[-3] != 3:
        raise StylekitError(f"{name} must be an RGB image tensor (3, H, W) or (N, 3, H, W), got {tuple(img.shape)}")


def rgb_to_yiq(img: torch.Tensor) -> torch.Tensor:
    _check_rgb(img, "img")
    m = _RGB_TO_YIQ.to(img.dtype).to(img.device)
    return torch.einsum("ij,...jhw->...ihw", m, img)


def yiq_to_rgb(img: torch.Tensor) -> torch.Tensor:
    _check_rgb(img, "img")
    m = torch.linalg.inv(_RGB_TO_YIQ).to(img.dtype).to(img.device)
    return torch.einsum("ij,...jhw->...ihw", m, img)


def luminance(img: torch.Tensor) -> torch.Tensor:
    """The Y channel, shape (..., 1, H, W)."""
    return rgb_to_yiq(img)[..., :1, :, :]


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Shift and scale the style's luminance to the content's mean and std
    (Gatys et al. 2017, sec. 5.1, so the two luminance histograms line up)."""
    s_mean, s_std = style_y.mean(), style_y.std(correction=0)
    c_mean, c_std = content_y.mean(), content_y.std(correction=0)
    return (style_y - s_mean) / (s_std + eps) * c_std + c_mean


def replace_luminance(image: torch.Tensor, new_y: torch.Tensor) -> torch.Tensor:
    """``image``'s chroma (I, Q) with luminance ``new_y``: the result of a luminance-only transfer."""
    yiq = rgb_to_yiq(image)
    yiq = torch.cat([new_y, yiq[..., 1:, :, :]], dim=-3)
    return yiq_to_rgb(yiq).clamp(0, 1)


def _sqrt_and_inv_sqrt(cov: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    values, vectors = torch.linalg.eigh(cov)
    values = values.clamp_min(0) + eps
    root = vectors @ torch.diag(values.sqrt()) @ vectors.T
    inv_root = vectors @ torch.diag(values.rsqrt()) @ vectors.T
    return root, inv_root


def match_color_histogram(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Affinely recolour ``source`` so its pixel mean and 3x3 colour covariance equal ``target``'s.

    ``x' = C_t^{1/2} C_s^{-1/2} (x - mu_s) + mu_t`` (the symmetric "3D colour
    matching" of Gatys et al. 2017); the result is clamped to [0, 1].
    """
    _check_rgb(source, "source")
    _check_rgb(target, "target")
    if source.dim() != 3 or target.dim() != 3:
        raise StylekitError("match_color_histogram takes single images (3, H, W)")
    src = source.reshape(3, -1).double()
    tgt = target.reshape(3, -1).double()
    mu_s, mu_t = src.mean(1, keepdim=True), tgt.mean(1, keepdim=True)
    cov_s = torch.cov(src, correction=0)
    cov_t = torch.cov(tgt, correction=0)
    _, inv_root_s = _sqrt_and_inv_sqrt(cov_s, eps)
    root_t, _ = _sqrt_and_inv_sqrt(cov_t, eps)
    out = root_t @ inv_root_s @ (src - mu_s) + mu_t
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)


def transfer_palette(source: torch.Tensor, target: torch.Tensor, iterations: int = 8, samples: int = 8192,
                     quantiles: int = 256, seed: int = 0) -> torch.Tensor:
    """Give ``source`` the RGB pixel distribution of ``target`` (the painting's
    palette, whatever its layout): iterative distribution transfer (Pitié,
    Kokaram & Dahyot 2005). Each iteration rotates the colour space by a random
    orthonormal basis and maps each rotated channel of ``source`` through its
    own quantile function onto ``target``'s (quantiles estimated from at most
    ``samples`` pixels of each image, piecewise linear between them); the
    rotations and samples are seeded, so the result is deterministic.
    Single images (3, H, W) of any two sizes, or a batch (N, 3, H, W) with
    targets (N, 3, h, w), image ``i`` taking target ``i``'s palette (each as
    it would alone); computed in float32 on ``source``'s device; the result is
    clamped to [0, 1]."""
    _check_rgb(source, "source")
    _check_rgb(target, "target")
    if source.dim() != target.dim() or (source.dim() == 4 and source.shape[0] != target.shape[0]):
        raise StylekitError("transfer_palette takes two single images (3, H, W), or batches (N, 3, H, W) of one N")
    device, gen = source.device, torch.Generator().manual_seed(seed)
    n = source.shape[0] if source.dim() == 4 else 1
    x = source.reshape(n, 3, -1).float()
    y = target.reshape(n, 3, -1).to(device, torch.float32)
    xs = x[..., torch.randperm(x.shape[-1], generator=gen)[:samples].to(device)]
    ys = y[..., torch.randperm(y.shape[-1], generator=gen)[:samples].to(device)]
    for _ in range(iterations):
        basis = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))[0].float().to(device)
        qx, qy = _quantiles(basis.T @ xs, quantiles), _quantiles(basis.T @ ys, quantiles)
        x = basis @ _piecewise_linear(basis.T @ x, qx, qy)
        xs = basis @ _piecewise_linear(basis.T @ xs, qx, qy)
    return x.reshape(source.shape).to(source.dtype).clamp(0, 1)


def _quantiles(rows: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` evenly spaced quantiles (0 to 1, linear interpolation between
    order statistics, as ``torch.quantile``) along the last dimension; one sort per row."""
    ordered = rows.sort(dim=-1).values
    pos = torch.linspace(0, rows.shape[-1] - 1, count, dtype=torch.float64)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=rows.shape[-1] - 1)
    frac = (pos - lo).to(rows.dtype).to(rows.device)
    lo, hi = lo.to(rows.device), hi.to(rows.device)
    return ordered[..., lo] * (1 - frac) + ordered[..., hi] * frac


def _piecewise_linear(values: torch.Tensor, knots_x: torch.Tensor, knots_y: torch.Tensor) -> torch.Tensor:
    """Each row of ``values`` (..., P) through the piecewise-linear map of its
    row of knots (..., K) (knots_x ascending), extended by the end segments'
    values outside the knots (clamped)."""
    knots_x, knots_y = knots_x.contiguous(), knots_y.contiguous()
    idx = torch.searchsorted(knots_x, values.contiguous()).clamp(1, knots_x.shape[-1] - 1)
    lo, hi = knots_x.gather(-1, idx - 1), knots_x.gather(-1, idx)
    y_lo, y_hi = knots_y.gather(-1, idx - 1), knots_y.gather(-1, idx)
    t = ((values - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1)
    return y_lo + t * (y_hi - y_lo)


def mean_colour_shift(image: torch.Tensor, target: torch.Tensor, strength, weight: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """The RGB offset that moves the mean colour of ``image`` (N, 3, H, W),
    taken on the image clamped to [0, 1] as it will be shown, ``strength`` of
    the way to ``target`` (N, 3): ``strength * (target - mean)``, shaped
    (N, 3, 1, 1) to add to every pixel. With ``weight`` (N, 1, H, W) the mean
    is the weighted one over a region and the offset is ``weight`` times it
    (N, 3, H, W), so regions shifted one by one add up.

    The network learns a style's palette only through its losses and misses
    its mean colour by a few percent; the style's mean is known exactly, and
    moving the output there lowers every style measure (the relu1_1
    statistics follow the mean colour) at almost no cost to the content."""
    if image.dim() != 4 or image.shape[1] != 3 or target.shape != (image.shape[0], 3):
        raise StylekitError(f"mean_colour_shift takes images (N, 3, H, W) and targets (N, 3), "
                            f"got {tuple(image.shape)} and {tuple(target.shape)}")
    strength = torch.as_tensor(strength, dtype=torch.float32, device=image.device).reshape(-1, 1)  # a number or (N,)
    shown = image.float().clamp(0, 1)
    if weight is None:
        mean = shown.mean(dim=(2, 3))
        return (strength * (target.float() - mean))[..., None, None]
    mean = (shown * weight).sum(dim=(2, 3)) / weight.sum(dim=(2, 3)).clamp_min(1e-6)
    return weight * (strength * (target.float() - mean))[..., None, None]
