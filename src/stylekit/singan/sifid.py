"""SIFID-VGG: a single-image FID on stylekit's VGG-19 relu3_1 features.

For two images, the feature vectors at *every spatial position* of VGG-19's
relu3_1 (256 channels, 1/4 resolution) are each summarised by a Gaussian
(mean, covariance with the ``N - 1`` denominator, like FID), and the score is
the Frechet distance between the two Gaussians::

    d^2 = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

**This is NOT the paper's SIFID.** Shaham et al. use Inception-v3 features
before its second pooling layer (64 channels); we use the VGG-19 encoder
stylekit already ships (relu3_1, 256 channels) - the idea is the same, the
numbers are not comparable with the paper's. Lower is closer; 0 for
identical feature statistics.

``Tr (S_1 S_2)^(1/2)`` is computed in float64 as the sum of the square roots of
the eigenvalues of the symmetric ``S_1^(1/2) S_2 S_1^(1/2)`` (same eigenvalues
as ``S_1 S_2``), which needs no scipy and never goes complex.
"""

from __future__ import annotations

import torch

from ..errors import StylekitError
from .model import SinGANPyramid, sample_generator, to_image_range

METRIC = "SIFID-VGG (VGG-19 relu3_1 features; NOT the paper's Inception SIFID)"


def feature_vectors(encoder, image: torch.Tensor) -> torch.Tensor:
    """``(N, C)`` float64: the relu3_1 feature vector at every position of a ``(3, H, W)`` / ``(1, 3, H, W)``
    image in [0, 1]."""
    x = image if image.dim() == 4 else image[None]
    with torch.no_grad():
        f = encoder.encode(x.to(next(encoder.parameters()).device).float(), "relu3_1")
    return f[0].flatten(1).T.double()


def gaussian(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance (``N - 1`` denominator) of ``(N, C)`` vectors, in float64."""
    if features.dim() != 2 or features.shape[0] < 2:
        raise StylekitError("SIFID needs at least 2 feature vectors (the image is too small)")
    x = features.double()
    mu = x.mean(0)
    centred = x - mu
    return mu, centred.T @ centred / (x.shape[0] - 1)


def _sqrt_psd(s: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(s)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(mu1: torch.Tensor, s1: torch.Tensor, mu2: torch.Tensor, s2: torch.Tensor) -> float:
    """The Frechet (2-Wasserstein) distance squared between N(mu1, s1) and N(mu2, s2), in float64."""
    mu1, s1, mu2, s2 = (t.double() for t in (mu1, s1, mu2, s2))
    r1 = _sqrt_psd(s1)
    m = r1 @ s2 @ r1
    tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    d = (mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * tr_covmean
    return max(float(d), 0.0)


def sifid(encoder, real: torch.Tensor, fake: torch.Tensor, real_stats=None) -> float:
    """SIFID-VGG of ``fake`` against ``real`` (both in [0, 1]); pass ``real_stats`` to reuse them."""
    mu1, s1 = real_stats if real_stats is not None else gaussian(feature_vectors(encoder, real))
    mu2, s2 = gaussian(feature_vectors(encoder, fake))
    return frechet_distance(mu1, s1, mu2, s2)


def shuffled_patches(image: torch.Tensor, grid: int, generator: torch.Generator) -> torch.Tensor:
    """``(3, H, W)`` cut into ``grid x grid`` tiles (the remainder cropped), randomly permuted."""
    _, h, w = image.shape
    th, tw = h // grid, w // grid
    if th < 1 or tw < 1:
        raise StylekitError(f"the image ({w}x{h}) is too small for a {grid}x{grid} patch grid")
    tiles = [image[:, i * th:(i + 1) * th, j * tw:(j + 1) * tw] for i in range(grid) for j in range(grid)]
    order = torch.randperm(len(tiles), generator=generator).tolist()
    rows = [torch.cat([tiles[order[i * grid + j]] for j in range(grid)], 2) for i in range(grid)]
    return torch.cat(rows, 1)


def _summary(values: list[float]) -> dict:
    t = torch.tensor(values, dtype=torch.float64)
    return {"mean": float(t.mean()), "std": float(t.std()) if len(values) > 1 else 0.0, "values": values}


def score(pyramid: SinGANPyramid, encoder, count: int = 10, seed: int = 0, start_scale: int = 0, patch_grid: int = 4,
          noise_sigma: float = 0.05) -> dict:
    """SIFID-VGG against the training image (at the model's finest size) of: ``count`` random
    samples, the reconstruction, ``count`` shuffled-patch images and ``count`` noisy copies."""
    real = to_image_range(pyramid.real())[0]
    stats = gaussian(feature_vectors(encoder, real))
    gen = sample_generator(seed)
    samples = [to_image_range(pyramid.generate(1, start_scale=start_scale, generator=gen))[0] for _ in range(count)]
    rows = {
        "samples": _summary([sifid(encoder, real, s, stats) for s in samples]),
        "reconstruction": _summary([sifid(encoder, real, to_image_range(pyramid.reconstruct()[-1])[0], stats)]),
        f"shuffled {patch_grid}x{patch_grid} patches": _summary(
            [sifid(encoder, real, shuffled_patches(real.cpu(), patch_grid, gen), stats) for _ in range(count)]),
        f"real + noise (sigma {noise_sigma:g})": _summary(
            [sifid(encoder, real, (real + noise_sigma * torch.randn(real.shape, generator=gen).to(real)).clamp(0, 1),
                   stats) for _ in range(count)]),
    }
    h, w = pyramid.scales[-1].size
    return {"metric": METRIC, "image": pyramid.meta.get("image"), "size": [w, h], "count": count, "seed": seed,
            "start_scale": start_scale, "rows": rows}


def format_score(result: dict) -> str:
    w, h = result["size"]
    lines = [f"{result['metric']}", f"vs the training image at {w}x{h}, lower is closer; mean +- std over draws", ""]
    width = max(len(k) for k in result["rows"])
    lines.append(f"{'':<{width}}  {'SIFID-VGG':>10}  {'std':>8}  draws")
    for name, row in result["rows"].items():
        lines.append(f"{name:<{width}}  {row['mean']:>10.3f}  {row['std']:>8.3f}  {len(row['values'])}")
    return "\n".join(lines)
