"""SinGAN's networks and the frozen multi-scale pyramid (Shaham et al., ICCV 2019).

Every scale ``n`` has a generator ``G_n`` and a critic ``D_n``, both five 3x3
convs with no padding of their own. As in the authors' code, the generator
zero-pads its input by 5 pixels (one per conv) so its output has the input's
size, and it is residual::

    x_n = G_n(z_n, up(x_{n-1})) = up(x_{n-1}) + tanh(convs(pad(a_n * z_n + up(x_{n-1}))))

where ``a_n`` is the scale's noise amplitude (1 at the coarsest scale, where
``up(x_{-1}) = 0``; ``0.1 x`` the RMSE of the upsampled reconstruction at the
others). At the coarsest scale the noise is one grey channel repeated on RGB,
above it three channels, as in the authors' code.

The critic is a PatchGAN of five convs with LeakyReLU(0.2) and *no* batch
norm (the authors' code has batch norm in the critic; WGAN-GP's gradient
penalty is defined per sample and Gulrajani et al. advise against it), whose
input is zero-padded by 5 pixels like the generator's, so border pixels are
judged as often as inner ones (without it we saw a blurred frame on samples).
Images live in [-1, 1] inside the model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import StylekitError

KIND = "singan"


def scale_channels(scale: int, channels: int = 32, max_channels: int = 128) -> int:
    """The paper's widths: ``channels``, doubled every 4 scales, at most ``max_channels``."""
    return min(channels * 2 ** (scale // 4), max_channels)


def pyramid_sizes(width: int, height: int, max_size: int, min_size: int, factor: float) -> tuple[list[tuple[int, int]], float]:
    """``[(H, W)]`` from the coarsest scale to the finest, and the factor actually used.

    As the authors' code: the image is first shrunk so its longer side is at most
    ``max_size`` (never enlarged); the number of scales is the least that takes its
    shorter side down to ``min_size`` by steps of ``factor``; the factor is then
    adjusted (a little closer to 1) so the coarsest scale's shorter side is
    ``min_size`` exactly.
    """
    if not 0 < factor < 1:
        raise StylekitError(f"--scale-factor must be in (0, 1), got {factor}")
    if min_size < 8:
        raise StylekitError(f"--min-size must be at least 8 pixels, got {min_size}")
    shrink = min(max_size / max(width, height), 1.0)
    w, h = max(1, round(width * shrink)), max(1, round(height * shrink))
    short = min(w, h)
    if short <= min_size:
        raise StylekitError(
            f"the image is {w}x{h} at --max-size {max_size}: its shorter side must be more than --min-size {min_size} "
            "(use a larger --max-size or a smaller --min-size)"
        )
    steps = max(1, math.ceil(math.log(min_size / short) / math.log(factor) - 1e-9))
    actual = (min_size / short) ** (1.0 / steps)
    sizes = [(max(1, round(h * actual ** (steps - i))), max(1, round(w * actual ** (steps - i)))) for i in range(steps + 1)]
    sizes[-1] = (h, w)
    return sizes, actual


def _init_weights(module: nn.Module) -> None:
    """The authors' init: conv weights N(0, 0.02), batch-norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ScaleGenerator(nn.Module):
    """4 x (3x3 conv, batch norm, LeakyReLU 0.2) + 3x3 conv, tanh; residual on ``prev``."""

    def __init__(self, channels: int, layers: int = 5):
        super().__init__()
        if layers < 2:
            raise StylekitError("a SinGAN generator needs at least 2 conv layers")
        blocks, c_in = [], 3
        for _ in range(layers - 1):
            blocks += [nn.Conv2d(c_in, channels, 3), nn.BatchNorm2d(channels), nn.LeakyReLU(0.2)]
            c_in = channels
        blocks += [nn.Conv2d(channels, 3, 3), nn.Tanh()]
        self.body = nn.Sequential(*blocks)
        self.pad = layers  # each unpadded 3x3 conv trims one pixel per side
        _init_weights(self)

    def forward(self, z_in: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """``z_in = amplitude * noise + prev``; returns ``prev + residual`` (same size)."""
        return prev + self.body(F.pad(z_in, [self.pad] * 4))


class PatchCritic(nn.Module):
    """WGAN critic: 4 x (3x3 conv, LeakyReLU 0.2) + 3x3 conv to one score per patch (no norm)."""

    def __init__(self, channels: int, layers: int = 5):
        super().__init__()
        blocks, c_in = [], 3
        for _ in range(layers - 1):
            blocks += [nn.Conv2d(c_in, channels, 3), nn.LeakyReLU(0.2)]
            c_in = channels
        blocks.append(nn.Conv2d(channels, 1, 3))
        self.body = nn.Sequential(*blocks)
        self.pad = layers
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # zero-padded like the generator's input, so every pixel (the border too) is the centre of a
        # scored patch; unpadded (the authors' code) the border pixels are seen by few patches and the
        # samples grow a frame of unsupervised, blurred pixels (docs/singan.md)
        return self.body(F.pad(x, [self.pad] * 4))


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize to exactly ``size`` (antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=shrinking)


def scale_noise(batch: int, scale: int, size: tuple[int, int], generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
    """N(0, 1) noise maps: one grey channel repeated on RGB at the coarsest scale, RGB above."""
    channels = 1 if scale == 0 else 3
    z = torch.randn(batch, channels, *size, generator=generator)
    return z.expand(batch, 3, *size).contiguous().to(device) if channels == 1 else z.to(device)


def sample_generator(seed: int) -> torch.Generator:
    """The noise stream of the sampling commands for ``--seed``. Mixed, so that no small seed replays
    a training stream: ``z*`` is the first draw of ``manual_seed(training seed)``, and sampling from
    that same stream would hand back the reconstruction as a "random" sample."""
    return torch.Generator().manual_seed((seed * 6364136223846793005 + 1442695040888963407) % 2**63)


@dataclass
class ScaleInfo:
    size: tuple[int, int]  # (H, W)
    channels: int
    noise_amp: float
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"size": list(self.size), "channels": self.channels, "noise_amp": self.noise_amp, "seconds": self.seconds}

    @classmethod
    def from_json(cls, d: dict) -> "ScaleInfo":
        return cls(tuple(d["size"]), int(d["channels"]), float(d["noise_amp"]), float(d.get("seconds", 0.0)))


class SinGANPyramid(nn.Module):
    """The trained (frozen) generators, their noise amplitudes, the fixed
    reconstruction noise ``z*`` and the training image: everything sampling and
    the applications need. Generators run in eval mode (batch-norm running
    statistics), as in the authors' code once a scale is trained."""

    def __init__(self, scales: list[ScaleInfo], generators: list[ScaleGenerator], z_opt: torch.Tensor,
                 reals: list[torch.Tensor], meta: dict | None = None):
        super().__init__()
        if not (len(scales) == len(generators) <= len(reals)):
            raise StylekitError("inconsistent SinGAN model: scales, generators and images differ in number")
        self.scales = list(scales)
        self.generators = nn.ModuleList(generators)
        self.register_buffer("z_opt", z_opt)
        self.reals = list(reals)  # (1, 3, H, W) in [-1, 1], coarsest first: the whole pyramid
        self.meta = dict(meta or {})
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)

    @property
    def num_scales(self) -> int:
        return len(self.scales)

    @property
    def factor(self) -> float:
        return float(self.meta.get("factor", 0.75))

    @property
    def device(self) -> torch.device:
        return self.z_opt.device

    def real(self, scale: int | None = None) -> torch.Tensor:
        return self.reals[self.num_scales - 1 if scale is None else scale]

    def sizes_for(self, size_hw: tuple[int, int] | None) -> list[tuple[int, int]]:
        """Each scale's size for a finest output of ``size_hw`` (default: the training size),
        keeping the pyramid's ratios per axis (the paper's scaled noise maps)."""
        train = [s.size for s in self.scales]
        if size_hw is None or tuple(size_hw) == tuple(train[-1]):
            return train
        fh, fw = size_hw[0] / train[-1][0], size_hw[1] / train[-1][1]
        sizes = [(max(1, round(h * fh)), max(1, round(w * fw))) for h, w in train]
        sizes[-1] = tuple(size_hw)
        return sizes

    @torch.no_grad()
    def reconstruct(self, upto: int | None = None) -> list[torch.Tensor]:
        """The reconstruction path (``z*`` at the coarsest scale, no noise above): every scale's output."""
        upto = self.num_scales - 1 if upto is None else upto
        outs, prev = [], None
        for n in range(upto + 1):
            size = self.scales[n].size
            prev = torch.zeros(1, 3, *size, device=self.device) if prev is None else upsample(prev, size)
            z = self.z_opt if n == 0 else torch.zeros_like(prev)
            prev = self.generators[n](self.scales[n].noise_amp * z + prev, prev)
            outs.append(prev)
        return outs

    @torch.no_grad()
    def generate(self, count: int = 1, size_hw: tuple[int, int] | None = None, start_scale: int = 0,
                 inject: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``count`` images in [-1, 1] at the finest scale.

        * ``start_scale = 0``, no ``inject``: random samples (fresh noise at every scale).
        * ``start_scale = K`` without ``inject``: scales below ``K`` follow the
          reconstruction (the training image's layout), fresh noise from ``K`` up.
        * ``inject`` (an image at scale ``K``'s size, in [-1, 1]): it replaces the
          upsampled output of scale ``K - 1``; scales ``K`` and above add noise and
          detail (paint-to-image, harmonisation, editing).
        """
        if not 0 <= start_scale < self.num_scales:
            raise StylekitError(f"--start-scale must be in 0..{self.num_scales - 1} (this model has {self.num_scales} scales)")
        sizes = self.sizes_for(size_hw)
        if inject is not None:
            prev = inject.to(self.device).expand(count, -1, -1, -1)
            first = start_scale
        elif start_scale > 0:
            prev = self.reconstruct(start_scale - 1)[-1].expand(count, -1, -1, -1)
            first = start_scale
        else:
            prev, first = None, 0
        for n in range(first, self.num_scales):
            size = sizes[n]
            prev = torch.zeros(count, 3, *size, device=self.device) if prev is None else upsample(prev, size)
            z = scale_noise(count, n, size, generator, self.device)
            prev = self.generators[n](self.scales[n].noise_amp * z + prev, prev)
        return prev

    # --- files -------------------------------------------------------------------------------

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {"z_opt": self.z_opt.detach().cpu().contiguous()}
        for n, real in enumerate(self.reals):
            out[f"real.{n}"] = real.detach().cpu().contiguous()
        for n, g in enumerate(self.generators):
            for k, v in g.state_dict().items():
                out[f"g.{n}.{k}"] = v.detach().cpu().contiguous()
        return out

    def metadata(self) -> dict[str, str]:
        return {"kind": KIND, "scales": json.dumps([s.to_json() for s in self.scales]),
                "meta": json.dumps(self.meta, sort_keys=True, default=str)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], metadata: dict[str, str], layers: int = 5,
                     source: str = "model") -> "SinGANPyramid":
        if metadata.get("kind") != KIND:
            raise StylekitError(f"{source} is not a SinGAN model (kind {metadata.get('kind')!r})")
        try:
            scales = [ScaleInfo.from_json(d) for d in json.loads(metadata["scales"])]
            meta = json.loads(metadata.get("meta", "{}"))
            layers = int(meta.get("layers", layers))
            generators = []
            for n, info in enumerate(scales):
                g = ScaleGenerator(info.channels, layers)
                prefix = f"g.{n}."
                g.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
                generators.append(g)
            reals = []
            while f"real.{len(reals)}" in tensors:
                reals.append(tensors[f"real.{len(reals)}"])
            return cls(scales, generators, tensors["z_opt"], reals, meta)
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise StylekitError(f"{source}: not a readable SinGAN model ({str(exc).splitlines()[0][:200]})") from None


def to_model_range(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> [-1, 1]."""
    return x * 2 - 1


def to_image_range(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)
