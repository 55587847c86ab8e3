"""Training images held in memory, and seeded random crops from them.

Each image is decoded and resized once, then kept as uint8 - a few hundred MB
for thousands of images - so a training step never waits for JPEG decoding.
All randomness comes from a ``torch.Generator`` whose state is checkpointed,
which is what makes ``--resume`` continue bit for bit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import StylekitError
from ..images import is_image_file, load_pil, resize_shorter


class ImageBank:
    def __init__(self, images: list[torch.Tensor], paths: list[Path]):
        self.images = images  # uint8 (3, H, W)
        self.paths = paths

    @classmethod
    def from_dir(cls, directory: str | Path, resize: int, min_side: int, what: str, warn=None) -> "ImageBank":
        warn = warn or (lambda msg: print(msg, file=sys.stderr))
        directory = Path(directory)
        if not directory.is_dir():
            raise StylekitError(f"{what} directory not found: {directory}")
        files = sorted(f for f in directory.rglob("*") if is_image_file(f))
        images, paths = [], []
        for f in files:
            try:
                img = load_pil(f)
            except StylekitError as exc:
                warn(f"warning: skipping {what} image: {exc}")
                continue
            if min(img.size) < min_side:
                warn(f"warning: skipping {what} image {f}: {img.size[0]}x{img.size[1]} is smaller than {min_side} px")
                continue
            img = resize_shorter(img, resize)
            images.append(torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous())
            paths.append(f)
        if not images:
            raise StylekitError(f"no usable {what} images in {directory}")
        return cls(images, paths)

    def __len__(self) -> int:
        return len(self.images)

    def random_crops(self, count: int, crop: int, generator: torch.Generator, indices=None) -> torch.Tensor:
        """``count`` random crops (float32 in [0, 1]) of random images."""
        if indices is None:
            indices = torch.randint(len(self.images), (count,), generator=generator).tolist()
        batch = torch.empty(count, 3, crop, crop)
        for slot, i in enumerate(indices):
            img = self.images[i]
            h, w = img.shape[1:]
            top = int(torch.randint(h - crop + 1, (1,), generator=generator))
            left = int(torch.randint(w - crop + 1, (1,), generator=generator))
            batch[slot] = img[:, top : top + crop, left : left + crop].float().div_(255.0)
        return batch


def content_style_crops(content_dir, style_dir, crop: int, seed: int, content_resize: int, style_resize: int,
                        warn=None) -> tuple[ImageBank, ImageBank, torch.Generator, torch.Tensor, torch.Tensor]:
    """What a content/style trainer draws from: the two folders in memory
    (shorter sides resized), the seeded generator of its training crops, and
    up to four fixed ``crop`` x ``crop`` sample pairs drawn from another seed:
    ``(content, style, generator, sample_content, sample_style)``."""
    content = ImageBank.from_dir(content_dir, content_resize, min_side=crop // 2, what="content", warn=warn)
    style = ImageBank.from_dir(style_dir, style_resize, min_side=crop // 2, what="style", warn=warn)
    sample_gen = torch.Generator().manual_seed(seed + 1)
    n = min(4, len(content), len(style))
    sample_content = content.random_crops(n, crop, sample_gen)
    return content, style, torch.Generator().manual_seed(seed), sample_content, style.random_crops(n, crop, sample_gen)
