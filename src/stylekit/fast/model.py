"""The compact arbitrary-style network: no VGG on the content path.

* **Style encoding**, once per style: the channel means and standard
  deviations of the style image's VGG-19 features at relu1_1, relu2_1 and
  relu3_1 (:func:`style_vector`, the statistics AdaIN transfers), computed on
  the style at ``style_size`` px. A small MLP (:class:`ModulationHead`) turns
  that vector and the content/style trade-off ``alpha`` into a scale and
  shift for every modulated layer.
* **Content path** (:class:`FastNet`): three stride-2 convolutions down to 1/8
  of the image, residual blocks there (depthwise-separable, each after a
  style-modulated instance normalisation), and an upsampling decoder that
  adds the encoder's features back at 1/4 and 1/2 resolution (each sum
  style-modulated, then a depthwise-separable conv), then upsamples to full
  resolution (style-modulated, one 3x3 conv to RGB). There is no
  full-resolution skip: an unmodulated path from the input to the output
  lets the network copy the photo and learn the style last (measured: a
  student with that skip still looked like its input after 1,000 steps).
  Convolutions zero-pad (inside the conv primitive: no padded copies), and
  full resolution carries only 16 channels: a few GFLOP and few memory
  passes per 512 x 512 frame.

Several styles blend by their modulation parameters (weighted sums); masks
blend them per position (each region's parameters where its mask is).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import StylekitError
from ..ops import mean_std_fast, mean_std_one_read

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1")
STYLE_CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256}


@dataclass(frozen=True)
class FastNetConfig:
    """The architecture (saved with the weights)."""

    widths: tuple[int, int, int, int] = (16, 32, 64, 128)
    blocks: int = 6
    hidden: int = 256
    style_size: int = 256
    eps: float = 1e-5

    def __post_init__(self):
        widths = tuple(int(w) for w in self.widths)
        if len(widths) != 4 or any(w < 1 for w in widths):
            raise StylekitError(f"widths must be four positive channel counts, got {self.widths!r}")
        object.__setattr__(self, "widths", widths)
        if self.blocks < 0 or self.hidden < 1 or self.style_size < 32:
            raise StylekitError("blocks >= 0, hidden >= 1 and style_size >= 32 are required")

    @property
    def style_dim(self) -> int:
        return 2 * sum(STYLE_CHANNELS[layer] for layer in STYLE_LAYERS)

    def modulated(self) -> list[int]:
        """Channels of each modulated layer, in execution order."""
        a, b, c, d = self.widths
        return [d] * self.blocks + [c, b, a]

    def to_dict(self) -> dict:
        return asdict(self)


def style_vector(features: dict[str, torch.Tensor], eps: float = 1e-5) -> torch.Tensor:
    """``(N, style_dim)``: for each style layer the channel means and
    ``log(std)`` (std = sqrt(biased var + eps)) of VGG features, so every entry
    is of order one."""
    parts = []
    for layer in STYLE_LAYERS:
        f = features[layer].float()
        var, mean = torch.var_mean(f, dim=(2, 3), unbiased=False)
        parts += [torch.log1p(mean), 0.5 * torch.log(var + eps)]
    return torch.cat(parts, dim=1)


def fit_style(style: torch.Tensor, side: int) -> torch.Tensor:
    """A (N, 3, h, w) style image reduced (area averaging) to at most ``side`` px
    on its longer side: the size its statistics are taken at, in training and at inference."""
    h, w = style.shape[-2:]
    if max(h, w) <= side:
        return style
    scale = side / max(h, w)
    return F.interpolate(style, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area")


class ModulationHead(nn.Module):
    """Style vector and alpha -> one (scale, shift) pair per modulated channel.

    ``alpha`` enters as an input, so the network learns AdaIN's content/style
    trade-off rather than an after-the-fact pixel blend."""

    def __init__(self, cfg: FastNetConfig):
        super().__init__()
        self.sizes = cfg.modulated()
        self.net = nn.Sequential(
            nn.Linear(cfg.style_dim + 1, cfg.hidden), nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, cfg.hidden), nn.ReLU(inplace=True),
            nn.Linear(cfg.hidden, 2 * sum(self.sizes)),
        )
        nn.init.zeros_(self.net[-1].weight)  # starts as plain instance normalisation (scale 1, shift 0)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, style: torch.Tensor, alpha: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = self.net(torch.cat([style, alpha.reshape(-1, 1).to(style.dtype)], dim=1))
        params, start = [], 0
        for c in self.sizes:
            scale, shift = out[:, start : start + c], out[:, start + c : start + 2 * c]
            params.append(((1 + scale)[..., None, None], shift[..., None, None]))
            start += 2 * c
        return params


def modulate(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Instance-normalise ``x`` (per sample and channel over H, W), then
    ``* scale + shift``, as one multiply-add over ``x``: ``x * a + b`` with
    ``a = scale / std``, ``b = shift - mean * a``. ``scale`` / ``shift`` are
    (N, C, 1, 1) or per-position (N, C, H, W) maps."""
    if torch.is_grad_enabled() and x.requires_grad:
        mean, std = mean_std_fast(x.float(), eps)
        a = scale / std
        return torch.addcmul(shift - mean * a, x.float(), a).to(x.dtype)
    # inference: the statistics without a temporary full-size map, the multiply-add in x's own dtype
    mean, std = mean_std_one_read(x, eps)
    a = scale / std
    return torch.addcmul((shift - mean * a).to(x.dtype), x, a.to(x.dtype))


class SeparableConv(nn.Module):
    """A 3x3 depthwise conv, ReLU, then a 1x1 conv: the cheap 3x3 of this network."""

    def __init__(self, channels: int, out_channels: int | None = None):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.pointwise = nn.Conv2d(channels, out_channels or channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(F.relu(self.depthwise(x)))


class FastNet(nn.Module):
    def __init__(self, cfg: FastNetConfig = FastNetConfig()):
        super().__init__()
        self.cfg = cfg
        a, b, c, d = cfg.widths
        self.enc1 = nn.Conv2d(3, a, 3, padding=1)
        self.enc2 = nn.Conv2d(a, b, 3, stride=2, padding=1)
        self.enc3 = nn.Conv2d(b, c, 3, stride=2, padding=1)
        self.enc4 = nn.Conv2d(c, d, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList(SeparableConv(d) for _ in range(cfg.blocks))
        self.to3, self.dec3 = nn.Conv2d(d, c, 1), SeparableConv(c)
        self.to2, self.dec2 = nn.Conv2d(c, b, 1), SeparableConv(b)
        self.to1 = nn.Conv2d(b, a, 1)
        self.out = nn.Conv2d(a, 3, 3, padding=1)
        self.head = ModulationHead(cfg)

    #: the content's side must be a multiple of this (three stride-2 convs)
    multiple = 8

    def modulation(self, style_vec: torch.Tensor, alpha) -> list:
        """The per-layer (scale, shift) of a style vector (N, style_dim) at ``alpha``."""
        if not isinstance(alpha, torch.Tensor):
            alpha = torch.full((style_vec.shape[0],), float(alpha), device=style_vec.device)
        return self.head(style_vec, alpha)

    def forward(self, content: torch.Tensor, style_vec: torch.Tensor, alpha) -> torch.Tensor:
        """content (N, 3, H, W) in [0, 1], H and W multiples of 8; style vectors
        (N, style_dim) of :func:`style_vector`; ``alpha`` a number or (N,) ->
        (N, 3, H, W), unclamped."""
        return self.render(content, self.modulation(style_vec, alpha))

    def render(self, content: torch.Tensor, params: list) -> torch.Tensor:
        """:meth:`forward` with the modulation computed already (:meth:`modulation`)."""
        eps = self.cfg.eps
        e1 = F.relu(self.enc1(content))
        e2 = F.relu(self.enc2(e1))
        e3 = F.relu(self.enc3(e2))
        h = F.relu(self.enc4(e3))
        p = iter(params)
        for block in self.blocks:
            scale, shift = next(p)
            h = h + block(F.relu(modulate(h, scale, shift, eps)))
        for to, dec, skip in ((self.to3, self.dec3, e3), (self.to2, self.dec2, e2)):
            scale, shift = next(p)
            h = F.interpolate(to(h), size=skip.shape[-2:], mode="nearest") + skip
            h = F.relu(dec(F.relu(modulate(h, scale, shift, eps))))
        scale, shift = next(p)
        h = F.interpolate(self.to1(h), size=e1.shape[-2:], mode="nearest")
        return self.out(F.relu(modulate(h, scale, shift, eps)))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv_flops(net: FastNet, height: int, width: int) -> int:
    """Multiply-adds x 2 of every convolution and linear layer for one H x W frame (modulation head included)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += 2 * module.weight.numel() * output.shape[-2] * output.shape[-1] * output.shape[0]
        else:
            total += 2 * module.weight.numel() * output.shape[0]

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, height, width), torch.zeros(1, net.cfg.style_dim), 1.0)
    finally:
        for h in handles:
            h.remove()
    return total
