"""The README's picture: the example pair and what each shipped network and control makes of it.

    python tools/make_readme_image.py            # writes docs/images/readme_example.jpg

Row 1: content, style, AdaIN, AdaIN with alpha 0.5. Row 2: AdaIN keeping the
content's colours, two styles interpolated, two styles by region (left / right),
style swap with the inverse network. Everything from the package's example
images, at 256 px.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import stylekit
from stylekit.images import image_grid, save_image
from stylekit.pipeline import fit, to_tensor_image

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "src" / "stylekit" / "examples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--inverse-weights", type=Path, help="style-swap inverse network (default: the shipped one)")
    parser.add_argument("-o", "--out", type=Path, default=REPO / "docs" / "images" / "readme_example.jpg")
    args = parser.parse_args()
    square = lambda name: fit(fit(to_tensor_image(EXAMPLES / name, name)[0], args.size, True), args.size, False)  # noqa: E731
    content, swirls, mosaic = square("chelsea.jpg"), square("swirls.jpg"), square("mosaic.jpg")

    adain = stylekit.load("adain", device="cpu")
    swap = stylekit.load("style-swap", device="cpu", weights=args.inverse_weights)
    opts = dict(size=0, style_size=0)
    left = torch.zeros(1, args.size, args.size)
    left[..., : args.size // 2] = 1
    rows = [
        [content, swirls, adain.stylize(content, swirls, **opts), adain.stylize(content, swirls, alpha=0.5, **opts)],
        [adain.stylize(content, swirls, preserve_color="luminance", **opts),
         adain.stylize(content, [swirls, mosaic], style_weights=[0.5, 0.5], **opts),
         adain.stylize(content, [swirls, mosaic], masks=[left, 1 - left], **opts),
         swap.stylize(content, swirls, **opts)],
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_image(image_grid(rows, pad=4), args.out, quality=88)
    print(args.out)


if __name__ == "__main__":
    main()
