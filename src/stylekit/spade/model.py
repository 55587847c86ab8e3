"""SPADE networks (Park et al., CVPR 2019, and the authors' code NVlabs/SPADE).

* :class:`SPADEResBlock` - two ``SPADE -> leaky ReLU(0.2) -> 3x3 conv`` stages
  and a shortcut, learned (``SPADE -> 1x1 conv`` without bias) when the
  channel count changes; spectral norm on the three convs.
* :class:`SPADEGenerator` - from the label map downsampled to the coarsest
  grid through a 3x3 conv, or from a latent vector ``z`` through a linear
  layer (the paper's VAE mode); a head block, two middle blocks and one block
  per further scale, 2x nearest upsampling between scales, each block's
  SPADE layers see the label map resized to their own size; then leaky ReLU,
  3x3 conv and tanh. Its width and number of upsamplings are configurable,
  so the same code is the paper's 256 px generator and a CPU-sized one.
* :class:`ImageEncoder` - the VAE's convolutional encoder, image -> (mu, logvar).
* :class:`MultiscaleDiscriminator` - PatchGANs at full and half resolution on
  ``concat(one-hot label map, image)``, returning every intermediate feature map
  for the feature-matching loss.

Images here are in [-1, 1] (tanh's range); the rest of stylekit uses [0, 1].
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import StylekitError
from ..nn import SPADE, BatchNorm

__all__ = [
    "SPADEModelConfig",
    "SyncBatchNorm",
    "SPADEResBlock",
    "SPADEGenerator",
    "ImageEncoder",
    "SPADENet",
    "PatchDiscriminator",
    "MultiscaleDiscriminator",
    "one_hot",
]

LEAK = 0.2  # every leaky ReLU of the paper's code


def one_hot(labels: torch.Tensor, num_classes: int, dtype=torch.float32) -> torch.Tensor:
    """``(N, H, W)`` integer class indices -> ``(N, num_classes, H, W)`` one-hot maps."""
    if labels.dim() != 3 or labels.is_floating_point():
        raise StylekitError(f"labels must be an integer tensor (N, H, W), got {labels.dtype} {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise StylekitError(f"label values must be in [0, {num_classes}), got {int(labels.min())}..{int(labels.max())}")
    return F.one_hot(labels.long(), num_classes).permute(0, 3, 1, 2).to(dtype)


# ---------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SPADEModelConfig:
    """What rebuilds a generator (and its encoder) from weights: stored in the
    safetensors metadata."""

    num_classes: int
    size: int = 256  # training crop: the coarsest grid of the z path is size / 2**num_upsampling
    width: int = 64  # channels at the output scale (the paper's ngf)
    num_upsampling: int = 5  # the paper's "normal": 5 for 256 px
    max_width: int = 1024  # channel cap at coarse scales (the paper: 16 * ngf)
    spade_hidden: int = 128  # channels of SPADE's shared conv (the paper's nhidden)
    vae: bool = False  # generator starts from z; an image encoder is trained alongside
    z_dim: int = 256

    def __post_init__(self):
        if not 1 <= self.num_classes <= 256:
            raise StylekitError(f"the number of classes must be in 1..256, got {self.num_classes}")
        for name in ("size", "width", "max_width", "spade_hidden", "z_dim"):
            if getattr(self, name) < 1:
                raise StylekitError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not 1 <= self.num_upsampling <= 8:
            raise StylekitError(f"the number of upsamplings must be in 1..8, got {self.num_upsampling}")
        if self.size % 2**self.num_upsampling:
            raise StylekitError(
                f"the crop size ({self.size}) must be a multiple of 2**num_upsampling = {2**self.num_upsampling}"
            )

    @property
    def base(self) -> int:
        return self.size // 2**self.num_upsampling

    def channels(self, level: int) -> int:
        """Channels of the blocks at ``level`` (0: the coarsest grid, num_upsampling: the output)."""
        return min(self.width * 2 ** (self.num_upsampling - level), self.max_width)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SPADEModelConfig":
        try:
            data = json.loads(text)
        except (TypeError, ValueError):
            raise StylekitError("the weights' SPADE model config is not valid JSON") from None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ---------------------------------------------------------------------------
# normalisation: batch statistics over every process
# ---------------------------------------------------------------------------


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over processes: the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx, t):
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class SyncBatchNorm(BatchNorm):
    """:class:`stylekit.nn.BatchNorm` whose training statistics are those of the
    *global* batch under torchrun (the paper's synchronised batch norm), so N
    processes train exactly as one process with the whole batch. In a single
    process it is :class:`BatchNorm` itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype in (torch.float16, torch.bfloat16):  # autocast: statistics in fp32, as torch's batch norm does
            return self.forward(x.to(self.running_mean.dtype)).to(x.dtype)
        if not self.training or _world_size() == 1:
            return super().forward(x)
        if x.shape[1] != self.num_features:
            raise StylekitError(f"expected {self.num_features} channels, got {x.shape[1]}")
        xf = x
        count = torch.tensor([x.numel() // x.shape[1]], dtype=torch.float32, device=x.device)
        total = _AllReduceSum.apply(torch.cat([xf.sum(dim=(0, 2, 3)), count]))
        n = total[-1].detach()
        mean = total[:-1] / n
        centred = xf - mean.view(1, -1, 1, 1)
        var = _AllReduceSum.apply((centred * centred).sum(dim=(0, 2, 3))) / n  # biased, as BatchNorm
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach() * n / max(float(n) - 1, 1.0), self.momentum)
        return centred / torch.sqrt(var + self.eps).view(1, -1, 1, 1)


def _spade(channels: int, label_channels: int, hidden: int) -> SPADE:
    layer = SPADE(channels, label_channels, hidden=hidden)
    layer.norm = SyncBatchNorm(channels, affine=False, eps=layer.eps)  # same buffers, same state-dict keys
    return layer


# ---------------------------------------------------------------------------
# generator
# ---------------------------------------------------------------------------


class SPADEResBlock(nn.Module):
    """The SPADE residual block (paper Fig. 4 right, ``SPADEResnetBlock`` of the code)."""

    def __init__(self, fin: int, fout: int, label_channels: int, hidden: int = 128, spectral: bool = True):
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        wrap = spectral_norm if spectral else (lambda m: m)
        self.conv_0 = wrap(nn.Conv2d(fin, fmiddle, 3, padding=1))
        self.conv_1 = wrap(nn.Conv2d(fmiddle, fout, 3, padding=1))
        self.norm_0 = _spade(fin, label_channels, hidden)
        self.norm_1 = _spade(fmiddle, label_channels, hidden)
        if self.learned_shortcut:
            self.conv_s = wrap(nn.Conv2d(fin, fout, 1, bias=False))
            self.norm_s = _spade(fin, label_channels, hidden)

    def shortcut(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        if self.learned_shortcut:
            return self.conv_s(self.norm_s(x, label_map))
        return x

    def forward(self, x: torch.Tensor, label_map: torch.Tensor) -> torch.Tensor:
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, label_map), LEAK))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, label_map), LEAK))
        return self.shortcut(x, label_map) + dx


class SPADEGenerator(nn.Module):
    """Label map (one-hot, any size whose sides divide by ``2**num_upsampling``)
    -> image in [-1, 1] of the label map's size.

    Blocks: ``head`` at the coarsest grid, ``middle_0`` and ``middle_1`` one
    scale up, then ``up_0``, ``up_1``, ... one per further scale; channels halve
    per scale from ``max_width`` down to ``width`` at the output. With the
    defaults this is the paper's 256 px generator block for block.
    """

    def __init__(self, config: SPADEModelConfig):
        super().__init__()
        self.config = c = config
        n, label_nc, hidden = c.num_upsampling, c.num_classes, c.spade_hidden
        head = c.channels(0)
        if c.vae:
            self.fc = nn.Linear(c.z_dim, head * c.base * c.base)
        else:
            self.fc = nn.Conv2d(label_nc, head, 3, padding=1)
        self.head = SPADEResBlock(head, head, label_nc, hidden)
        self.middle_0 = SPADEResBlock(head, c.channels(1), label_nc, hidden)
        self.middle_1 = SPADEResBlock(c.channels(1), c.channels(1), label_nc, hidden)
        self.up = nn.ModuleList(SPADEResBlock(c.channels(level - 1), c.channels(level), label_nc, hidden)
                                for level in range(2, n + 1))
        self.conv_img = nn.Conv2d(c.channels(n), 3, 3, padding=1)

    def base_grid(self, label_map: torch.Tensor) -> tuple[int, int]:
        h, w = label_map.shape[2:]
        step = 2**self.config.num_upsampling
        if h % step or w % step:
            raise StylekitError(f"label map is {w}x{h}; this generator needs sides that are multiples of {step}")
        return h // step, w // step

    def forward(self, label_map: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        if label_map.dim() != 4 or label_map.shape[1] != c.num_classes:
            raise StylekitError(f"label map must be one-hot (N, {c.num_classes}, H, W), got {tuple(label_map.shape)}")
        sh, sw = self.base_grid(label_map)
        if c.vae:
            if z is None:
                raise StylekitError("this generator starts from a latent vector z (VAE mode)")
            x = self.fc(z).view(-1, c.channels(0), c.base, c.base)
            if (sh, sw) != (c.base, c.base):  # another output size than trained: stretch the coarse grid
                x = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False)
        else:
            if z is not None:
                raise StylekitError("this generator starts from the label map; it takes no z")
            x = self.fc(F.interpolate(label_map, size=(sh, sw), mode="nearest"))
        x = self.head(x, label_map)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.middle_0(x, label_map)
        x = self.middle_1(x, label_map)
        for block in self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = block(x, label_map)
        return torch.tanh(self.conv_img(F.leaky_relu(x, LEAK)))


class ImageEncoder(nn.Module):
    """The VAE encoder (``ConvEncoder`` of the code): stride-2 3x3 convs with
    spectral and instance norm down to a grid of at most 4x4, then two linear
    layers to ``mu`` and ``logvar``. Images are resized to the training size first."""

    def __init__(self, config: SPADEModelConfig):
        super().__init__()
        self.size = config.size
        steps = max(1, math.ceil(math.log2(config.size / 4)))
        layers, fin = [], 3
        for i in range(steps):
            fout = config.width * min(2**i, 8)
            conv = nn.Conv2d(fin, fout, 3, stride=2, padding=1)
            layers += [spectral_norm(conv), nn.InstanceNorm2d(fout), nn.LeakyReLU(LEAK)]
            fin = fout
        self.convs = nn.Sequential(*layers)
        side = config.size
        for _ in range(steps):
            side = (side + 1) // 2
        self.fc_mu = nn.Linear(fin * side * side, config.z_dim)
        self.fc_var = nn.Linear(fin * side * side, config.z_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.shape[2:] != (self.size, self.size):
            image = F.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = self.convs(image).flatten(1)
        return self.fc_mu(x), self.fc_var(x)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``z = mu + noise * exp(logvar / 2)`` with the caller's standard-normal ``noise``."""
    return mu + noise * torch.exp(0.5 * logvar)


class SPADENet(nn.Module):
    """What the generator optimiser trains: the generator and, in VAE mode, the image encoder."""

    def __init__(self, config: SPADEModelConfig):
        super().__init__()
        self.config = config
        self.generator = SPADEGenerator(config)
        self.encoder = ImageEncoder(config) if config.vae else None

    def forward(self, label_map: torch.Tensor, image: torch.Tensor | None = None, noise: torch.Tensor | None = None):
        """Returns ``(fake, mu, logvar)``; ``mu``/``logvar`` are None without the encoder.

        VAE mode: ``z`` from the encoded ``image`` (reparameterised with
        ``noise``), or ``noise`` itself as a sample of the prior when no image is given.
        """
        mu = logvar = None
        z = None
        if self.encoder is not None:
            if noise is None:
                raise StylekitError("VAE mode needs standard-normal noise for z")
            if image is not None:
                mu, logvar = self.encoder(image)
                z = reparameterize(mu, logvar, noise)
            else:
                z = noise
        return self.generator(label_map, z), mu, logvar


# ---------------------------------------------------------------------------
# discriminator
# ---------------------------------------------------------------------------


class PatchDiscriminator(nn.Module):
    """PatchGAN (``NLayerDiscriminator`` of the code): 4x4 convs, stride 2 but
    the last two, spectral + instance norm after the first, leaky ReLU. Returns
    the output of every stage; the last is the real/fake score map."""

    def __init__(self, in_channels: int, width: int = 64, layers: int = 4):
        super().__init__()
        pad = 2  # ceil((4 - 1) / 2), as the code
        stages = [nn.Sequential(nn.Conv2d(in_channels, width, 4, stride=2, padding=pad), nn.LeakyReLU(LEAK))]
        fin = width
        for n in range(1, layers):
            fout = min(fin * 2, 512)
            stride = 1 if n == layers - 1 else 2
            stages.append(nn.Sequential(
                spectral_norm(nn.Conv2d(fin, fout, 4, stride=stride, padding=pad)),
                nn.InstanceNorm2d(fout), nn.LeakyReLU(LEAK),
            ))
            fin = fout
        stages.append(nn.Sequential(nn.Conv2d(fin, 1, 4, stride=1, padding=pad)))
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out


class MultiscaleDiscriminator(nn.Module):
    """``scales`` PatchGANs, each on the input average-pooled once more than the last."""

    def __init__(self, num_classes: int, width: int = 64, layers: int = 4, scales: int = 2):
        super().__init__()
        if scales < 1 or layers < 1 or width < 1:
            raise StylekitError("the discriminator needs at least one scale, one layer and one channel")
        self.num_classes = num_classes
        self.nets = nn.ModuleList(PatchDiscriminator(num_classes + 3, width, layers) for _ in range(scales))

    def forward(self, label_map: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
        """One list per scale of every stage's output (the last: the scores)."""
        x = torch.cat([label_map, image], dim=1)
        results = []
        for i, net in enumerate(self.nets):
            if i:
                x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
            results.append(net(x))
        return results


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
