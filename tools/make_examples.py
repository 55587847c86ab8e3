"""Make the example pictures in examples/ (run once; the outputs are committed).

Content photos come from scikit-image's wheel (both CC0, see examples/README.md);
the two style pictures are painted here, procedurally and deterministically:
swirling brush strokes, and a stained-glass mosaic.

    pip download scikit-image --no-deps -d /tmp/skimage
    python tools/make_examples.py /tmp/skimage/scikit_image-*.whl
"""

import io
import math
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

OUT = Path(__file__).resolve().parents[1] / "src" / "stylekit" / "examples"


def swirl_painting(size=(512, 384), seed=0) -> Image.Image:
    """Thick curved strokes along a swirling flow field, night-sky palette."""
    rng = np.random.default_rng(seed)
    w, h = size
    palette = np.array([(22, 38, 92), (38, 72, 150), (74, 118, 196), (150, 190, 230), (240, 216, 96), (226, 160, 48), (18, 24, 48)])
    img = Image.new("RGB", size, (30, 50, 110))
    draw = ImageDraw.Draw(img)
    centres = [(w * 0.3, h * 0.35, 1.0), (w * 0.72, h * 0.55, -1.0), (w * 0.5, h * 0.15, 1.0)]

    def flow(x, y):
        vx, vy = 1.0, 0.15 * math.sin(y / 40)
        for cx, cy, spin in centres:
            dx, dy = x - cx, y - cy
            r2 = dx * dx + dy * dy + 400
            k = 6000 / r2
            vx += -dy * k * spin / 40
            vy += dx * k * spin / 40
        n = math.hypot(vx, vy) + 1e-9
        return vx / n, vy / n

    for _ in range(5200):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        near_centre = min(math.hypot(x - cx, y - cy) for cx, cy, _ in centres)
        weights = np.array([3, 4, 3, 2, 1 + 4 * (near_centre < 60), 1 + 2 * (near_centre < 40), 1.5 * (y > h * 0.75)])
        colour = palette[rng.choice(len(palette), p=weights / weights.sum())] + rng.integers(-18, 18, 3)
        points = [(x, y)]
        for _ in range(int(rng.integers(4, 10))):
            vx, vy = flow(x, y)
            x, y = x + 5 * vx, y + 5 * vy
            points.append((x, y))
        draw.line(points, fill=tuple(int(c) for c in np.clip(colour, 0, 255)), width=int(rng.integers(3, 7)), joint="curve")
    return img.filter(ImageFilter.SMOOTH)


def mosaic(size=(448, 448), cells=150, seed=1) -> Image.Image:
    """Stained glass: Voronoi cells in a warm palette with dark leading."""
    rng = np.random.default_rng(seed)
    w, h = size
    points = rng.uniform(0, 1, (cells, 2)) * (w, h)
    palette = np.array([(196, 48, 40), (232, 150, 40), (246, 210, 90), (40, 110, 70), (36, 80, 160), (120, 40, 110), (230, 230, 210)])
    colours = palette[rng.integers(0, len(palette), cells)] + rng.integers(-25, 25, (cells, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    d = (xx[..., None] - points[:, 0]) ** 2 + (yy[..., None] - points[:, 1]) ** 2
    order = np.argsort(d, axis=-1)
    nearest, second = order[..., 0], order[..., 1]
    d1 = np.sqrt(np.take_along_axis(d, nearest[..., None], -1)[..., 0])
    d2 = np.sqrt(np.take_along_axis(d, second[..., None], -1)[..., 0])
    img = colours[nearest].astype(np.float64)
    img *= (0.85 + 0.15 * rng.uniform(0, 1, (h, w, 1)))  # glass texture
    edge = np.clip((d2 - d1) / 4.0, 0, 1)[..., None]
    img = img * edge + np.array([25, 20, 20]) * (1 - edge)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def main(wheel: str) -> None:
    OUT.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name in ("chelsea", "coffee"):
            img = Image.open(io.BytesIO(z.read(f"skimage/data/{name}.png"))).convert("RGB")
            img.save(OUT / f"{name}.jpg", quality=90)
    swirl_painting().save(OUT / "swirls.jpg", quality=92)
    mosaic().save(OUT / "mosaic.jpg", quality=92)


if __name__ == "__main__":
    main(sys.argv[1])
