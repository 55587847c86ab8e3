"""A learned covariance transform on top of AdaIN (after the linear transforms
of Li et al., "Learning Linear Transformations for Fast Arbitrary Style
Transfer", CVPR 2019, here as a residual on AdaIN).

AdaIN matches each channel's mean and standard deviation and nothing else: how
channels vary *together* (which strokes go with which colours, the texture's
shapes) stays the content's. Whitening and colouring (WCT) matches the full
covariance but costs an eigendecomposition of a 256 x 256 matrix per image and
is known to distort the content. The transform here learns that correction in
a small subspace:

    x_hat = (x - mu_c) / sigma_c                        (per channel, AdaIN's normalisation)
    z     = P x_hat                                     (P: 1x1 conv, C -> r channels)
    M     = A(cov(P s_hat)) B(cov(z))                   (A, B: linear maps of r x r covariances to r x r matrices)
    t     = sigma_s * (x_hat + Q M z) + mu_s            (Q: 1x1 conv, r -> C channels)

``z`` has zero mean, so ``cov(z)`` is its Gram matrix (:func:`stylekit.losses.gram_matrix`,
over the mask's region when there is one). ``Q`` starts at zero, so an untrained transform *is* AdaIN; training (with the
decoder frozen) moves it only as far as the loss asks. Everything is a 1x1
convolution or an r x r product: the cost beside the encoder and decoder is
negligible. A style is summarised once by :meth:`CovarianceTransform.style_code`
(its mean, std and ``A(cov)``), so a blend of styles, a mask's region and the
pyramid's levels reuse it like AdaIN's statistics.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import StylekitError
from ..files import load_tensors
from ..functional import masked_mean_std
from ..losses import gram_matrix
from ..ops import mean_std_fast


def _working(x: torch.Tensor) -> torch.Tensor:
    """float64 stays float64 (references, gradcheck); anything else is computed in float32."""
    return x if x.dtype == torch.float64 else x.float()


class CovarianceTransform(nn.Module):
    """AdaIN plus a learned correction of the channel covariance (module docstring)."""

    def __init__(self, channels: int = 256, rank: int = 32, eps: float = 1e-5, detail_share: float | None = None):
        """``detail_share``: the photo's share of the finest detail band that the
        coarse-to-fine pyramid should use with this transform (it was measured
        with the trained weights and travels with them); None: the pyramid's default."""
        super().__init__()
        if not 1 <= rank <= channels:
            raise StylekitError(f"rank must be in [1, {channels}], got {rank}")
        if detail_share is not None and not 0 <= detail_share <= 1:
            raise StylekitError(f"detail_share must be in [0, 1], got {detail_share}")
        self.channels, self.rank, self.eps, self.detail_share = channels, rank, eps, detail_share
        self.compress = nn.Conv2d(channels, rank, 1, bias=False)
        self.expand = nn.Conv2d(rank, channels, 1, bias=False)
        self.style_matrix = nn.Linear(rank * rank, rank * rank)
        self.content_matrix = nn.Linear(rank * rank, rank * rank)
        nn.init.zeros_(self.expand.weight)  # an untrained transform is exactly AdaIN
        identity = torch.eye(rank).flatten()
        for linear in (self.style_matrix, self.content_matrix):
            nn.init.zeros_(linear.weight)
            with torch.no_grad():
                linear.bias.copy_(identity)

    def _matrix(self, linear: nn.Linear, cov: torch.Tensor) -> torch.Tensor:
        return linear(cov.flatten(1)).view(-1, self.rank, self.rank)

    def _check(self, x: torch.Tensor, what: str) -> None:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise StylekitError(f"{what} must be (N, {self.channels}, H, W) features, got {tuple(x.shape)}")

    def style_code(self, style_feat: torch.Tensor, mask: torch.Tensor | None = None):
        """What the transform needs of a style: ``(mean, std, A(cov))``, shapes
        (N, C, 1, 1), (N, C, 1, 1), (N, r, r); of the region ``mask`` when given."""
        self._check(style_feat, "style features")
        x = _working(style_feat)
        mean, std = mean_std_fast(x, self.eps) if mask is None else masked_mean_std(x, mask, self.eps)
        z = self.compress((x - mean) / std)
        return mean, std, self._matrix(self.style_matrix, gram_matrix(z, mask))

    def forward(self, content_feat: torch.Tensor, style_code, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The target features for ``content_feat`` (N, C, H, W) and a
        :meth:`style_code`; the content's statistics over ``mask`` (N, 1, H, W)
        when given (the result is meant for that region)."""
        self._check(content_feat, "content features")
        s_mean, s_std, s_matrix = style_code
        x = _working(content_feat)
        mean, std = mean_std_fast(x, self.eps) if mask is None else masked_mean_std(x, mask, self.eps)
        normal = (x - mean) / std
        z = self.compress(normal)
        matrix = s_matrix @ self._matrix(self.content_matrix, gram_matrix(z, mask))
        n, r, h, w = z.shape
        moved = (matrix @ z.reshape(n, r, h * w)).view(n, r, h, w)
        return s_std * (normal + self.expand(moved)) + s_mean


def load_transform(path) -> CovarianceTransform:
    """A trained transform from a safetensors file (``stylekit train adain-transform``'s
    weights, or the shipped ones), computed in float32 whatever the file stores;
    its ``detail_share`` from the file's metadata when recorded there."""
    tensors, metadata = load_tensors(path)
    if metadata.get("kind") != "adain-transform" or "compress.weight" not in tensors:
        raise StylekitError(f"{path} is not a covariance transform's weights (kind {metadata.get('kind')!r})")
    rank, channels = tensors["compress.weight"].shape[:2]
    try:
        detail_share = float(metadata["detail_share"]) if "detail_share" in metadata else None
    except ValueError:
        raise StylekitError(f"{path}: detail_share in the metadata is not a number") from None
    transform = CovarianceTransform(channels, rank, detail_share=detail_share)
    transform.load_state_dict({k: v.float() for k, v in tensors.items()})
    return transform
