"""A compact copy of the training photos and paintings, for a machine that
takes only a small upload (a lent GPU takes 64 MiB with the repository).

    python tools/pack_training_data.py ../shared/data .gpu/data --contents 500

Each image is resized once to the shorter side the fast trainer crops from
(content 320 px, style 256 px: ``stylekit train fast``'s defaults, so the
trainer's own resize leaves it as it is) and re-encoded as JPEG; images
smaller than half a crop are left out, as the trainer would skip them.
``--contents N`` keeps N photos evenly spread over the sorted list.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stylekit.images import is_image_file, load_pil, resize_shorter

MIN_SIDE = 128  # half of the 256 px crop: smaller images are skipped by the trainer


def pack(src: Path, dst: Path, side: int, quality: int, keep: int = 0) -> int:
    files = [f for f in sorted(src.rglob("*")) if is_image_file(f)]
    if keep and keep < len(files):
        files = [files[int(i * len(files) / keep)] for i in range(keep)]
    dst.mkdir(parents=True, exist_ok=True)
    written = 0
    for f in files:
        img = load_pil(f)
        if min(img.size) < MIN_SIDE:
            continue
        resize_shorter(img, side).save(dst / f"{f.stem}.jpg", quality=quality)
        written += 1
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", type=Path, help="a folder with content/ and style/")
    p.add_argument("out", type=Path)
    p.add_argument("--contents", type=int, default=0, help="keep this many photos (0: all)")
    p.add_argument("--content-side", type=int, default=320)
    p.add_argument("--style-side", type=int, default=256)
    p.add_argument("--content-quality", type=int, default=80)
    p.add_argument("--style-quality", type=int, default=85)
    args = p.parse_args(argv)
    n_c = pack(args.data / "content", args.out / "content", args.content_side, args.content_quality, args.contents)
    n_s = pack(args.data / "style", args.out / "style", args.style_side, args.style_quality)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{n_c} photos and {n_s} paintings, {size / 2**20:.1f} MiB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
