"""SinGAN's applications (the paper's Section 4), on a trained :class:`SinGANPyramid`.

* random samples at any size (noise maps scaled per axis);
* paint-to-image, harmonisation, editing: the input is resized to the training
  size, downsampled to scale ``K - 1`` and upsampled to scale ``K`` (which keeps
  its layout and colours but none of its fine detail), then injected at scale
  ``K``: the generators from ``K`` up add the training image's patches.
  Harmonisation and editing then paste the result back inside a dilated,
  feathered ``--mask`` (the authors' code: a disk of 7 / 20 px and a Gaussian
  of sigma 5 at 250 px; scaled here to the model's size);
* super-resolution: upsample by ``F ** (1 / k)`` and refine with the finest
  generator, ``k`` times (``k`` the number of model scale steps in ``F``).

Every function returns a ``(3, H, W)`` tensor in [0, 1].
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import StylekitError
from ..images import load_mask, load_pil, pil_to_tensor, save_image
from .model import SinGANPyramid, sample_generator, to_image_range, to_model_range, upsample

#: Largest aspect-ratio difference (relative) between an input and the training image.
ASPECT_TOLERANCE = 0.05


def _generator(seed: int) -> torch.Generator:
    return sample_generator(seed)


def write_samples(pyramid: SinGANPyramid, out_dir: str | Path, count: int, size_hw=None, start_scale: int = 0,
                  seed: int = 0) -> list[Path]:
    """``count`` random samples as ``out_dir/sample_000.png``, ...; one at a time (bounded memory)."""
    out_dir = Path(out_dir)
    gen = _generator(seed)
    paths = []
    for i in range(count):
        x = pyramid.generate(1, size_hw=size_hw, start_scale=start_scale, generator=gen)
        paths.append(save_image(to_image_range(x)[0].cpu(), out_dir / f"sample_{i:03d}.png"))
    return paths


def load_input(pyramid: SinGANPyramid, path: str | Path, what: str) -> tuple[torch.Tensor, tuple[int, int]]:
    """An input image resized to the model's finest size, ``(1, 3, H, W)`` in [-1, 1], and its own (W, H)."""
    img = load_pil(path)
    h, w = pyramid.scales[-1].size
    aspect, model_aspect = img.width / img.height, w / h
    if abs(aspect / model_aspect - 1) > ASPECT_TOLERANCE:
        raise StylekitError(
            f"{what} {path} is {img.width}x{img.height} (aspect {aspect:.2f}) but the model's image is {w}x{h} "
            f"(aspect {model_aspect:.2f}): crop or pad it to the model's aspect ratio"
        )
    x = to_model_range(pil_to_tensor(img))[None]
    return upsample(x, (h, w)).clamp(-1, 1).to(pyramid.device), (img.width, img.height)


def injection(pyramid: SinGANPyramid, image: torch.Tensor, start_scale: int) -> torch.Tensor:
    """The paper's injection: ``image`` at scale ``K - 1``'s size, upsampled to scale ``K``'s."""
    coarse = upsample(image, pyramid.scales[start_scale - 1].size)
    return upsample(coarse, pyramid.scales[start_scale].size)


def _check_injection_scale(pyramid: SinGANPyramid, start_scale: int | None, default: int) -> int:
    n = pyramid.num_scales
    if n < 2:
        raise StylekitError("this model has one scale: injection needs at least 2 (train more scales)")
    k = default if start_scale is None else start_scale
    if not 1 <= k <= n - 1:
        raise StylekitError(f"--start-scale must be in 1..{n - 1} for this model ({n} scales), got {k}")
    return k


def soft_mask(mask: torch.Tensor, radius: float, sigma: float) -> torch.Tensor:
    """Binarise at 0.5, dilate by a disk of ``radius`` px, blur with a Gaussian of ``sigma`` px:
    the authors' ``dilate_mask`` (``(1, 1, H, W)`` in, same out, in [0, 1])."""
    m = (mask > 0.5).float()
    r = max(0, int(round(radius)))
    if r:
        yy, xx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
        disk = ((xx**2 + yy**2) <= r * r).float()[None, None].to(m)
        m = (F.conv2d(m, disk, padding=r) > 0).float()
    if sigma > 0:
        k = int(math.ceil(3 * sigma))
        t = torch.arange(-k, k + 1, dtype=torch.float32, device=m.device)
        g = torch.exp(-(t**2) / (2 * sigma**2))
        g = (g / g.sum()).to(m)
        m = F.pad(m, [k, k, k, k], mode="replicate")
        m = F.conv2d(m, g.view(1, 1, 1, -1))
        m = F.conv2d(m, g.view(1, 1, -1, 1))
    return m.clamp(0, 1)


def _load_mask_for(pyramid: SinGANPyramid, mask_path, input_size: tuple[int, int], radius_250: float):
    mask = load_mask(mask_path)
    if (mask.shape[2], mask.shape[1]) != tuple(input_size):
        raise StylekitError(f"mask {mask_path} is {mask.shape[2]}x{mask.shape[1]}, the input {input_size[0]}x{input_size[1]}: "
                            "they must be the same size")
    if mask.max() <= 0.5:
        raise StylekitError(f"mask {mask_path} selects nothing (no pixel is brighter than 50% grey)")
    h, w = pyramid.scales[-1].size
    mask = F.interpolate(mask[None], size=(h, w), mode="bilinear", align_corners=False).to(pyramid.device)
    scale = max(h, w) / 250.0  # the authors' radii and sigma are for 250 px images
    return soft_mask(mask, radius_250 * scale, 5.0 * scale)


def _inject_and_generate(pyramid, path, what, start_scale, default_scale, seed):
    image, input_size = load_input(pyramid, path, what)
    k = _check_injection_scale(pyramid, start_scale, default_scale)
    out = pyramid.generate(1, start_scale=k, inject=injection(pyramid, image, k), generator=_generator(seed))
    return image, out, input_size


def paint2image(pyramid: SinGANPyramid, paint, mask=None, start_scale: int | None = None, seed: int = 0) -> torch.Tensor:
    """A clip-art painting of the image's layout -> an image with the training image's textures."""
    if mask is not None:
        raise StylekitError("paint2image takes no --mask")
    _, out, _ = _inject_and_generate(pyramid, paint, "painting", start_scale, 1, seed)
    return to_image_range(out)[0].cpu()


def _blend(pyramid, path, what, mask, start_scale, seed, radius_250):
    image, out, input_size = _inject_and_generate(pyramid, path, what, start_scale, pyramid.num_scales // 2, seed)
    if mask is not None:
        m = _load_mask_for(pyramid, mask, input_size, radius_250)
        out = (1 - m) * image + m * out
    return to_image_range(out)[0].cpu()


def harmonize(pyramid: SinGANPyramid, composite, mask=None, start_scale: int | None = None, seed: int = 0) -> torch.Tensor:
    """A pasted object takes on the image's look; outside ``mask`` the composite is kept."""
    return _blend(pyramid, composite, "composite", mask, start_scale, seed, radius_250=7)


def edit(pyramid: SinGANPyramid, edited, mask=None, start_scale: int | None = None, seed: int = 0) -> torch.Tensor:
    """A cut-and-paste edit made seamless; outside ``mask`` the edited image is kept."""
    return _blend(pyramid, edited, "edited image", mask, start_scale, seed, radius_250=20)


APPLICATIONS = {"paint2image": paint2image, "harmonize": harmonize, "edit": edit}


def superres_steps(factor: float, model_factor: float) -> int:
    """How many upsampling steps make ``factor``: as many as the model's scale steps fit in it."""
    return max(1, round(math.log(factor) / math.log(1 / model_factor)))


@torch.no_grad()
def superres(pyramid: SinGANPyramid, factor: float = 4.0, seed: int = 0, max_pixels: int = 16_000_000) -> torch.Tensor:
    """The training image (at the model's finest size) upsampled ``factor`` times, the paper's way."""
    if not math.isfinite(factor) or factor <= 1 or factor > 16:
        raise StylekitError(f"--factor must be more than 1 and at most 16, got {factor}")
    h, w = pyramid.scales[-1].size
    target = (round(h * factor), round(w * factor))
    if target[0] * target[1] > max_pixels:
        raise StylekitError(f"--factor {factor} would make a {target[1]}x{target[0]} image, more than {max_pixels:,} pixels")
    steps = superres_steps(factor, pyramid.factor)
    step = factor ** (1 / steps)
    g, amp = pyramid.generators[-1], pyramid.scales[-1].noise_amp
    gen = _generator(seed)
    x = pyramid.real().to(pyramid.device)
    for i in range(1, steps + 1):
        size = target if i == steps else (round(h * step**i), round(w * step**i))
        x = upsample(x, size)
        z = torch.randn(1, 3, *size, generator=gen).to(pyramid.device)
        x = g(amp * z + x, x)
    return to_image_range(x)[0].cpu()
