"""Thin ``nn.Module`` twins of :mod:`stylekit.functional`."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import functional as SF
from .checks import check_feature_map
from .errors import StylekitError

__all__ = ["BatchNorm", "InstanceNorm", "ConditionalInstanceNorm", "AdaIN", "SPADE"]


class _AffineNorm(nn.Module):
    def __init__(self, num_features: int, affine: bool = True, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, affine={self.weight is not None}"


class BatchNorm(_AffineNorm):
    """Batch norm. Training: this batch's statistics, and running averages are
    updated; eval: the running averages (as ``nn.BatchNorm2d``)."""

    def __init__(self, num_features: int, affine: bool = True, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__(num_features, affine, eps)
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, "x")
        if x.shape[1] != self.num_features:
            raise StylekitError(f"expected {self.num_features} channels, got {x.shape[1]}")
        if self.training:
            if x.numel() // x.shape[1] < 2:
                raise StylekitError("batch norm in training mode needs more than one value per channel")
            with torch.no_grad():  # running statistics stay in their own dtype (fp32 under autocast)
                var, mean = torch.var_mean(x.to(self.running_mean.dtype), dim=(0, 2, 3), correction=1)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var, self.momentum)
            return SF.batch_norm(x, self.weight, self.bias, self.eps)
        out = (x - self.running_mean.view(1, -1, 1, 1)) / torch.sqrt(self.running_var.view(1, -1, 1, 1) + self.eps)
        return SF.apply_affine(out, self.weight, self.bias)


class InstanceNorm(_AffineNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return SF.instance_norm(x, self.weight, self.bias, self.eps)


class ConditionalInstanceNorm(nn.Module):
    """Instance norm with one learned (gamma, beta) row per style."""

    def __init__(self, num_features: int, num_styles: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_styles, num_features))
        self.bias = nn.Parameter(torch.zeros(num_styles, num_features))

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        """``style_weights``: (N, S) blend weights, or (N,) integer style indices."""
        if not style_weights.is_floating_point():
            num_styles = self.weight.shape[0]
            if style_weights.dim() != 1:
                raise StylekitError("integer style indices must have shape (N,)")
            if bool(((style_weights < 0) | (style_weights >= num_styles)).any()):
                raise StylekitError(f"style indices must be in [0, {num_styles}), got {style_weights.tolist()}")
            style_weights = F.one_hot(style_weights.long(), num_styles).to(x.dtype)
        return SF.conditional_instance_norm(x, style_weights, self.weight, self.bias, self.eps)


class AdaIN(nn.Module):
    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return SF.adain(content, style, self.eps)


class SPADE(nn.Module):
    """Spatially-adaptive normalisation (Park et al. 2019).

    Parameter-free batch norm of ``x`` (batch statistics in training, running
    averages in eval, as the paper's code), then ``(1 + gamma) * x_hat + beta``
    with ``gamma``/``beta`` predicted per position from the label map (resized
    to x's size, nearest neighbour) by a shared conv + ReLU and two 3x3 convs.
    """

    def __init__(self, num_features: int, label_channels: int, hidden: int = 128, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.norm = BatchNorm(num_features, affine=False, eps=eps)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, num_features, 3, padding=1)
        self.beta = nn.Conv2d(hidden, num_features, 3, padding=1)

    def modulation(self, label_map: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        if label_map.dim() != 4:
            raise StylekitError(f"label map must have shape (N, L, H, W), got {tuple(label_map.shape)}")
        label_map = F.interpolate(label_map, size=size, mode="nearest")
        hidden = self.shared(label_map)
        return self.gamma(hidden), self.beta(hidden)

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        check_feature_map(x, "x")
        gamma, beta = self.modulation(label_map, tuple(x.shape[2:]))
        if gamma.shape != x.shape:
            raise StylekitError(f"x has {x.shape[1]} channels, this SPADE layer expects {self.norm.num_features}")
        # self.norm is SF.batch_norm in training (spade_modulation's formula) and keeps running stats for eval
        return self.norm(x) * (1 + gamma) + beta
