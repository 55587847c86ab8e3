"""Quality measures of a stylized image, all offline (our relu3_1 VGG-19 and pixels).

* :func:`multiscale_style_losses`: the AdaIN style loss (relu1_1...relu3_1) of
  the output against the style, on the images as they are and after
  downsampling both by 2 and 4, so the statistics see structure 2x and 4x
  larger than relu3_1's ~40 px receptive field: strokes and shapes, not only
  fine texture.
* :func:`colour_distance`: the sliced Wasserstein distance between the output's
  and the style's RGB pixel distributions (palette, independent of layout).
* :func:`ssim_gray`: SSIM of the output's and the content's luminance.
* :func:`cfsd`: StyleID's content feature structural distance: the KL
  divergence between the softmax self-similarity rows of the content's and the
  output's relu3_1 features, on images of at most 256 px.

These are relu3_1 variants, chosen because relu3_1 is the deepest pretrained
layer stylekit has; they are not comparable with numbers papers report on
relu4_1/relu5_1 features or ImageNet-normalised VGGs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import StylekitError
from .losses import content_loss, gram_style_loss, mean_std_style_loss

SCALES = (1, 2, 4)
CFSD_MAX_SIDE = 256
COLOUR_DIRECTIONS = 64
#: ITU-R BT.601 luma, as Pillow's "L" conversion
LUMA = (0.299, 0.587, 0.114)


def downsample(image: torch.Tensor, factor: int) -> torch.Tensor:
    """(N, C, H, W) averaged over ``factor`` x ``factor`` blocks (area resampling);
    sides that do not divide are rounded down."""
    if factor == 1:
        return image
    h, w = image.shape[-2:]
    size = (max(1, h // factor), max(1, w // factor))
    return F.interpolate(image, size=size, mode="area")


def _check_image(t: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.dim() not in (3, 4) or t.shape[-3] != 3:
        raise StylekitError(f"{what}: expected a (3, H, W) or (N, 3, H, W) image tensor")
    return t[None] if t.dim() == 3 else t


#: The smallest side, after downsampling, at which a style loss is taken (relu3_1 is then 4 x 4).
MIN_MEASURE_SIDE = 16


@torch.no_grad()
def multiscale_style_losses(encoder, output: torch.Tensor, style: torch.Tensor, scales=SCALES,
                            layers=("relu1_1", "relu2_1", "relu3_1")) -> dict[int, float | None]:
    """``{scale: AdaIN style loss of downsample(output, scale) against
    downsample(style, scale)}``; None at a scale where either image falls
    below :data:`MIN_MEASURE_SIDE` px."""
    output, style = _check_image(output, "output"), _check_image(style, "style")
    result = {}
    for s in scales:
        o, st = downsample(output, s), downsample(style, s)
        if min(*o.shape[-2:], *st.shape[-2:]) < MIN_MEASURE_SIDE:
            result[s] = None
            continue
        result[s] = mean_std_style_loss(encoder(o, layers), encoder(st, layers), layers).item()
    return result


def colour_distance(a: torch.Tensor, b: torch.Tensor, directions: int = COLOUR_DIRECTIONS, quantiles: int = 256,
                    seed: int = 0) -> float:
    """Sliced Wasserstein-2 distance between the RGB pixel distributions of two
    images (any sizes): the root mean square, over ``directions`` fixed random
    unit directions, of the L2 distance between the two projections' quantile
    functions (sampled at ``quantiles`` midpoints). In [0, sqrt(3)] for images in [0, 1]."""
    a, b = _check_image(a, "image"), _check_image(b, "image")
    pa = a.double().permute(1, 0, 2, 3).reshape(3, -1)
    pb = b.double().permute(1, 0, 2, 3).reshape(3, -1)
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(directions, 3, generator=gen, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    q = (torch.arange(quantiles, dtype=torch.float64) + 0.5) / quantiles
    qa = torch.quantile(dirs @ pa.to(dirs.device), q, dim=1)
    qb = torch.quantile(dirs @ pb.to(dirs.device), q, dim=1)
    return float(((qa - qb) ** 2).mean().sqrt())


def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float64) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_luma(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5, k1: float = 0.01,
              k2: float = 0.03) -> torch.Tensor:
    """SSIM (Wang et al. 2004: Gaussian window, ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``,
    ``L = 1``) of the luma of two batches (N, 3, H, W) in [0, 1], averaged over the
    valid window positions: (N,), differentiable, in the inputs' dtype (a
    training loss uses it as it is; :func:`ssim_gray` measures in float64)."""
    luma = torch.tensor(LUMA, dtype=a.dtype, device=a.device).view(1, 3, 1, 1)
    x, y = (a * luma).sum(1, keepdim=True), (b * luma).sum(1, keepdim=True)
    g = _gaussian_window(window, sigma, a.dtype).to(a.device)
    kernel = (g[:, None] * g[None, :])[None, None]

    def blur(t):
        return F.conv2d(t, kernel)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = k1**2, k2**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))


def ssim_gray(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5, k1: float = 0.01,
              k2: float = 0.03) -> float:
    """:func:`ssim_luma` of two same-sized images (3, H, W) in [0, 1] (or batches: their mean), in float64."""
    a, b = _check_image(a, "image"), _check_image(b, "image")
    if a.shape[-2:] != b.shape[-2:]:
        raise StylekitError(f"SSIM needs images of one size, got {tuple(a.shape[-2:])} and {tuple(b.shape[-2:])}")
    return float(ssim_luma(a.double().cpu(), b.double().cpu(), window, sigma, k1, k2).mean())


def _fit_side(image: torch.Tensor, max_side: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


@torch.no_grad()
def cfsd(encoder, output: torch.Tensor, content: torch.Tensor, max_side: int = CFSD_MAX_SIDE,
         layer: str = "relu3_1") -> float:
    """Content feature structural distance (StyleID, Chung et al. 2024), at ``layer``.

    Both images are brought to at most ``max_side`` px (bounding the
    ``(HW)^2`` similarity matrices); for features ``f`` (positions x channels,
    divided by the channel count) the rows of ``softmax(f f^T)`` are
    distributions over positions, and CFSD is ``sum_rows KL(P_content || P_output)``."""
    output, content = _check_image(output, "output"), _check_image(content, "content")
    if output.shape[-2:] != content.shape[-2:]:
        raise StylekitError("CFSD needs the output and the content at one size")
    return cfsd_from_features(encoder.encode(_fit_side(output, max_side), layer),
                              encoder.encode(_fit_side(content, max_side), layer))


def cfsd_from_features(output_feat: torch.Tensor, content_feat: torch.Tensor) -> float:
    """CFSD of two (N, C, H, W) feature maps (see :func:`cfsd`), in float64,
    summed over rows and averaged over the batch."""
    rows = []
    for f in (content_feat, output_feat):
        f = f.double()
        n, c = f.shape[:2]
        rows.append(f.reshape(n, c, -1).transpose(1, 2) / c)
    log_p_content = torch.log_softmax(rows[0] @ rows[0].transpose(1, 2), dim=-1)
    log_p_output = torch.log_softmax(rows[1] @ rows[1].transpose(1, 2), dim=-1)
    kl = (log_p_content.exp() * (log_p_content - log_p_output)).sum()
    return float(kl / output_feat.shape[0])


@torch.no_grad()
def measure(encoder, output: torch.Tensor, content: torch.Tensor, style: torch.Tensor, layer: str = "relu3_1") -> dict:
    """Every measure of one output ((3, H, W) tensors in [0, 1]; output and content of one size):
    ``content`` (relu3_1 MSE), ``style`` / ``style_2x`` / ``style_4x`` (None
    where the images are too small for that scale), ``gram``, ``colour``,
    ``ssim``, ``cfsd``."""
    device = next(encoder.parameters()).device
    output, content, style = (_check_image(t, what).to(device).float()
                              for t, what in ((output, "output"), (content, "content"), (style, "style")))
    layers = ("relu1_1", "relu2_1", "relu3_1")
    f_out, f_style = encoder(output, layers), encoder(style, layers)
    multi = multiscale_style_losses(encoder, output, style, scales=(2, 4), layers=layers)
    return {
        "content": content_loss(f_out[layer], encoder.encode(content, layer)).item(),
        "style": mean_std_style_loss(f_out, f_style, layers).item(),
        "style_2x": multi[2],
        "style_4x": multi[4],
        "gram": gram_style_loss(f_out, f_style, layers).item(),
        "colour": colour_distance(output, style),
        "ssim": ssim_gray(output, content),
        "cfsd": cfsd(encoder, output, content),
    }
