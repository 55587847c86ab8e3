"""Label maps and their photos, held in memory, with seeded random crops and flips.

A label map is a PNG whose pixel values are class indices ``0..N-1`` (mode L,
or mode P whose palette indices are the classes - the palette only colours
them for viewing). Each label map is paired with the image of the same file
stem in the images directory (``a/0001.png`` <-> ``b/0001.jpg``); both are
searched recursively.

All randomness comes from the caller's ``torch.Generator`` (checkpointed by
the training task), so ``--resume`` continues bit for bit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import StylekitError
from ..images import _open, is_image_file, load_pil

LABEL_MODES = ("L", "P")


def read_label_map(path: str | Path, num_classes: int | None = None, with_palette: bool = False):
    """A label PNG as an ``(H, W)`` uint8 array of class indices, checked against ``num_classes``.

    ``with_palette``: also return the file's colours for the classes (mode P) or None.
    """
    path = Path(path)
    img = _open(path)
    if img.format != "PNG":
        raise StylekitError(f"{path}: label maps must be PNG files (lossless), got {img.format or 'an unknown format'}")
    if img.mode not in LABEL_MODES:
        raise StylekitError(
            f"{path}: label map has mode {img.mode}; label maps hold one class index per pixel "
            "(PNG mode L or P) - convert colour-coded labels to class indices first (see docs/spade.md)"
        )
    labels = np.asarray(img, dtype=np.uint8).copy()
    if num_classes is not None and labels.size:
        top = int(labels.max())
        if top >= num_classes:
            count = int((labels >= num_classes).sum())
            raise StylekitError(
                f"{path}: label value {top} is out of range for --num-classes {num_classes} "
                f"(values must be 0..{num_classes - 1}; {count} pixels are >= {num_classes})"
            )
    if not with_palette:
        return labels
    colours = None
    if img.mode == "P" and img.getpalette():
        table = np.asarray(img.getpalette(), dtype=np.uint8)
        colours = table[: len(table) // 3 * 3].reshape(-1, 3)
    return labels, colours


def palette(num_classes: int) -> np.ndarray:
    """``(num_classes, 3)`` uint8 colours to show label maps (the PASCAL VOC colour map)."""
    colours = np.zeros((max(num_classes, 1), 3), dtype=np.uint8)
    for i in range(len(colours)):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours[i] = (r, g, b)
    return colours


def colourise(labels: torch.Tensor, num_classes: int, colours: np.ndarray | None = None) -> torch.Tensor:
    """``(H, W)`` class indices -> ``(3, H, W)`` float image in [0, 1] for sample grids."""
    table = torch.from_numpy(palette(num_classes) if colours is None else colours).float() / 255.0
    return table[labels.long()].permute(2, 0, 1).contiguous()


def _index_by_stem(files: list[Path], what: str, root: Path) -> dict[str, Path]:
    by_stem: dict[str, Path] = {}
    for f in files:
        if f.stem in by_stem:
            raise StylekitError(
                f"two {what} files share the stem {f.stem!r} ({by_stem[f.stem].relative_to(root)} and "
                f"{f.relative_to(root)}): label maps and images are paired by file stem"
            )
        by_stem[f.stem] = f
    return by_stem


class LabelledBank:
    """Pairs of (label map ``(H, W)`` uint8, image ``(3, H, W)`` uint8), resized once."""

    def __init__(self, labels: list[torch.Tensor], images: list[torch.Tensor], names: list[str], num_classes: int,
                 colours: np.ndarray | None = None):
        self.labels, self.images, self.names, self.num_classes = labels, images, names, num_classes
        self.colours = colours if colours is not None and len(colours) >= num_classes else palette(num_classes)

    @classmethod
    def from_dirs(cls, labels_dir: str | Path, images_dir: str | Path, num_classes: int, resize: int,
                  warn=None) -> "LabelledBank":
        """Every label map with a same-stem image; both resized so the shorter
        side is ``resize`` (labels with nearest neighbour). Unpaired files are
        reported on one warning line each way; a bad label map is an error."""
        warn = warn or (lambda msg: print(msg, file=sys.stderr))
        labels_dir, images_dir = Path(labels_dir), Path(images_dir)
        for d, what in ((labels_dir, "labels"), (images_dir, "images")):
            if not d.is_dir():
                raise StylekitError(f"{what} directory not found: {d}")
        label_files = sorted(f for f in labels_dir.rglob("*") if is_image_file(f))
        if not label_files:
            raise StylekitError(f"no label maps (PNG files of class indices) in {labels_dir}")
        not_png = [f for f in label_files if f.suffix.lower() != ".png"]
        if not_png:
            raise StylekitError(f"{not_png[0]}: label maps must be PNG files (lossless class indices)")
        labels_by_stem = _index_by_stem(label_files, "label", labels_dir)
        images_by_stem = _index_by_stem(sorted(f for f in images_dir.rglob("*") if is_image_file(f)), "image", images_dir)
        unpaired = sorted(set(labels_by_stem) - set(images_by_stem))
        if unpaired:
            warn(f"warning: {len(unpaired)} label maps have no image of the same stem in {images_dir} "
                 f"(e.g. {labels_by_stem[unpaired[0]].name}); skipped")
        extra = sorted(set(images_by_stem) - set(labels_by_stem))
        if extra:
            warn(f"warning: {len(extra)} images have no label map (e.g. {images_by_stem[extra[0]].name}); skipped")
        stems = sorted(set(labels_by_stem) & set(images_by_stem))
        if not stems:
            raise StylekitError(f"no label map in {labels_dir} has an image of the same file stem in {images_dir}")
        labels, images, colours = [], [], None
        for stem in stems:
            lab, file_colours = read_label_map(labels_by_stem[stem], num_classes, with_palette=True)
            colours = file_colours if colours is None else colours  # label PNGs' own palette, for pictures
            img = load_pil(images_by_stem[stem])
            if img.size != (lab.shape[1], lab.shape[0]):
                raise StylekitError(
                    f"label map {labels_by_stem[stem].name} is {lab.shape[1]}x{lab.shape[0]} but image "
                    f"{images_by_stem[stem].name} is {img.size[0]}x{img.size[1]}: a pair must have the same size"
                )
            lab_img, img = _resize_pair(Image.fromarray(lab, "L"), img, resize)
            labels.append(torch.from_numpy(np.asarray(lab_img, dtype=np.uint8).copy()))
            images.append(torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous())
        return cls(labels, images, stems, num_classes, colours)

    def __len__(self) -> int:
        return len(self.labels)

    def random_crops(self, count: int, crop: int, generator: torch.Generator, flip: bool = True):
        """``count`` random (crop of a random pair, flipped left-right half the
        time): ``(labels (count, crop, crop) int64, images (count, 3, crop, crop) float in [0, 1])``."""
        indices = torch.randint(len(self.labels), (count,), generator=generator).tolist()
        labels = torch.empty(count, crop, crop, dtype=torch.long)
        images = torch.empty(count, 3, crop, crop)
        for slot, i in enumerate(indices):
            lab, img = self.labels[i], self.images[i]
            h, w = lab.shape
            top = int(torch.randint(h - crop + 1, (1,), generator=generator))
            left = int(torch.randint(w - crop + 1, (1,), generator=generator))
            mirror = bool(torch.randint(2, (1,), generator=generator)) and flip
            lab = lab[top : top + crop, left : left + crop]
            img = img[:, top : top + crop, left : left + crop]
            if mirror:
                lab, img = lab.flip(-1), img.flip(-1)
            labels[slot] = lab.long()
            images[slot] = img.float().div_(255.0)
        return labels, images

    def center_crops(self, crop: int, indices=None):
        """Centre crops of the given pairs (default: all), for evaluation and samples."""
        indices = range(len(self)) if indices is None else indices
        labs, imgs = [], []
        for i in indices:
            lab, img = self.labels[i], self.images[i]
            h, w = lab.shape
            top, left = (h - crop) // 2, (w - crop) // 2
            labs.append(lab[top : top + crop, left : left + crop].long())
            imgs.append(img[:, top : top + crop, left : left + crop].float() / 255.0)
        return torch.stack(labs), torch.stack(imgs)


def _resize_pair(label: Image.Image, image: Image.Image, shorter: int) -> tuple[Image.Image, Image.Image]:
    w, h = label.size
    scale = shorter / min(w, h)
    size = (max(shorter, round(w * scale)), max(shorter, round(h * scale)))
    if size == label.size:
        return label, image
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
    return label.resize(size, Image.Resampling.NEAREST), image.resize(size, resample)
