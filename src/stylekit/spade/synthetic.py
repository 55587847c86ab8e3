"""A procedural labelled dataset: landscapes of sky, grass, water and rock.

No labelled dataset ships with stylekit, so this draws one: each label map is
layered horizons (sky above a wavy horizon; below it bands of grass and water
split by another wavy line) with smooth rock blobs and ridges on top; its
"photo" paints every class with its own colour and texture - sky: a vertical
gradient with soft clouds; grass: vertical blades and speckle; water:
horizontal ripples with glints; rock: grey speckles - under a random global
lighting. Everything is drawn from ``numpy.random.default_rng([seed, index])``,
so a dataset is reproducible file by file.

    stylekit spade make-dataset data/landscapes --count 400 --size 64 --seed 0
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..checks import check_int
from ..errors import StylekitError
from ..files import atomic_write

CLASSES = ("sky", "grass", "water", "rock")
SKY, GRASS, WATER, ROCK = range(4)
#: How label maps are coloured for viewing (the PNG palette).
LABEL_COLOURS = np.array([(120, 180, 250), (40, 160, 60), (20, 60, 200), (150, 120, 100)], dtype=np.uint8)
#: Base colour of each class in the photos (before texture and lighting).
BASE_COLOURS = np.array([(110, 160, 230), (70, 140, 50), (30, 80, 140), (125, 118, 110)], dtype=np.float64)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """``(size, size)`` smooth noise, about unit variance, with ``cells`` features per side."""
    grid = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((size, size), Image.Resampling.BICUBIC), dtype=np.float64)


def _wavy_line(rng: np.random.Generator, size: int, level: float, amplitude: float) -> np.ndarray:
    """A height for every column: ``level`` plus a few random sines."""
    x = np.arange(size) / size
    y = np.full(size, level * size)
    for _ in range(3):
        freq = rng.uniform(0.5, 3.0)
        y += amplitude * size * rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * (freq * x + rng.uniform()))
    return y


def _blob(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray, top: float) -> np.ndarray:
    """A smooth blob: an ellipse whose radius wobbles with the angle."""
    cy, cx = rng.uniform(top, size), rng.uniform(0, size)
    ry, rx = rng.uniform(0.06, 0.2) * size, rng.uniform(0.08, 0.28) * size
    angle = np.arctan2(yy - cy, xx - cx)
    wobble = 1 + 0.25 * np.sin(3 * angle + rng.uniform(0, 2 * np.pi)) + 0.15 * np.sin(5 * angle + rng.uniform(0, 2 * np.pi))
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= wobble**2


def label_map(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size)`` uint8 class indices of one landscape."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    horizon = _wavy_line(rng, size, rng.uniform(0.3, 0.5), 0.04)
    labels = np.full((size, size), SKY, dtype=np.uint8)
    below = yy >= horizon[None, :]
    # the ground: one or two bands, grass and water in a random order
    bands = [GRASS, WATER] if rng.uniform() < 0.5 else [WATER, GRASS]
    if rng.uniform() < 0.25:
        bands = bands[:1]
    labels[below] = bands[0]
    if len(bands) == 2:
        split = _wavy_line(rng, size, rng.uniform(0.55, 0.8), 0.05)
        labels[below & (yy >= split[None, :])] = bands[1]
    # rock: a ridge on the horizon, and blobs on the ground
    if rng.uniform() < 0.4:
        ridge = horizon - np.abs(_wavy_line(rng, size, 0.0, 0.12))
        labels[(yy >= ridge[None, :]) & (yy < horizon[None, :] + 2)] = ROCK
    for _ in range(rng.integers(0, 4)):
        labels[_blob(rng, size, yy, xx, top=horizon.mean()) & below] = ROCK
    return labels


def paint(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 "photo" of a label map."""
    size = labels.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    out = np.zeros((size, size, 3))
    pixel_noise = rng.standard_normal((size, size))
    # sky: lighter towards the horizon, soft white clouds
    sky = BASE_COLOURS[SKY] + 70 * yy[..., None] * np.array([0.6, 0.5, 0.2])
    sky += 35 * np.clip(_smooth_noise(rng, size, 4), 0, None)[..., None]
    # grass: vertical blades (per-column noise, stretched vertically) and speckle
    blades = np.asarray(Image.fromarray(rng.standard_normal((max(size // 8, 2), size)).astype(np.float32), "F")
                        .resize((size, size), Image.Resampling.BILINEAR), dtype=np.float64)
    grass = BASE_COLOURS[GRASS] + (22 * blades + 10 * pixel_noise)[..., None] * np.array([0.6, 1.0, 0.5])
    # water: horizontal ripples, bright glints
    phase = 2 * np.pi * (rng.uniform(10, 16) * yy + 0.6 * _smooth_noise(rng, size, 3))
    glints = (rng.uniform(size=(size, size)) < 0.03) * 70.0
    water = BASE_COLOURS[WATER] + (18 * np.sin(phase) + glints)[..., None] * np.array([0.7, 0.9, 1.0])
    # rock: grey with dark and light speckles
    speckle = np.where(rng.uniform(size=(size, size)) < 0.12, rng.choice([-60.0, 50.0], size=(size, size)), 0.0)
    rock = BASE_COLOURS[ROCK] + (14 * pixel_noise + speckle + 15 * _smooth_noise(rng, size, 6))[..., None]
    for k, layer in enumerate((sky, grass, water, rock)):
        out[labels == k] = layer[labels == k]
    out *= rng.uniform(0.85, 1.15)  # lighting
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def make_example(seed: int, index: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(label map (H, W) uint8, photo (H, W, 3) uint8) number ``index`` of dataset ``seed``."""
    rng = np.random.default_rng([seed, index])
    labels = label_map(rng, size)
    return labels, paint(rng, labels)


def label_image(labels: np.ndarray) -> Image.Image:
    """A mode-P PNG image: pixel values are the class indices, the palette shows them."""
    img = Image.fromarray(labels, "P")
    table = np.zeros((256, 3), dtype=np.uint8)
    table[: len(LABEL_COLOURS)] = LABEL_COLOURS
    img.putpalette(table.flatten().tolist())
    return img


def make_dataset(out: str | Path, count: int, size: int = 64, seed: int = 0, progress=None) -> Path:
    """Write ``out/labels/NNNNN.png`` (class indices), ``out/images/NNNNN.png`` and ``out/classes.json``."""
    check_int(count, "--count", 1)
    check_int(size, "--size", 16, 4096)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StylekitError(f"{out} is a file, not a directory")
    width = max(5, len(str(count - 1)))
    for i in range(count):
        labels, photo = make_example(seed, i, size)
        name = f"{i:0{width}d}.png"
        atomic_write(out / "labels" / name, lambda tmp: label_image(labels).save(tmp, format="PNG"))
        atomic_write(out / "images" / name, lambda tmp: Image.fromarray(photo, "RGB").save(tmp, format="PNG"))
        if progress is not None:
            progress(i + 1)
    info = {"classes": list(CLASSES), "num_classes": len(CLASSES), "count": count, "size": size, "seed": seed,
            "generator": "stylekit.spade.synthetic"}
    atomic_write(out / "classes.json", lambda tmp: tmp.write_text(json.dumps(info, indent=2) + "\n"))
    return out
