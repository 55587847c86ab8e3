"""Build the built-in style pictures (src/stylekit/styles/*.jpg) from their sources.

    python tools/make_builtin_styles.py --repos DIR     # git clones: DIR/<owner>+<name> or DIR/<owner>/<name>
    python tools/make_builtin_styles.py                 # or download each file from raw.githubusercontent.com

Every picture is listed in src/stylekit/styles/styles.json with the GitHub
repository, path and commit it comes from, and an optional crop (fractions
left, top, right, bottom; it takes off a stock-photo site's watermark). Each
is cropped, reduced to 512 px on its longer side and saved as a JPEG of at
most 80 KB; src/stylekit/styles/README.md, the table of them, is written
from the same list. The sources' sha256 are printed for the record.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import urllib.request
from pathlib import Path

from PIL import Image

STYLES = Path(__file__).resolve().parents[1] / "src" / "stylekit" / "styles"
LONGER_SIDE = 512
MAX_BYTES = 80_000


def source_bytes(entry: dict, repos: Path | None) -> bytes:
    if repos is None:
        url = f"https://raw.githubusercontent.com/{entry['repository']}/{entry['commit']}/{entry['path']}"
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    owner, name = entry["repository"].split("/")
    clone = next(p for p in (repos / f"{owner}+{name}", repos / owner / name) if p.exists())
    clone = clone / "repo" if (clone / "repo").exists() else clone  # a mirror's layout
    return subprocess.run(["git", "-C", str(clone), "show", f"{entry['commit']}:{entry['path']}"],
                          check=True, capture_output=True).stdout


def build(entry: dict, data: bytes) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if "crop" in entry:
        w, h = img.size
        left, top, right, bottom = entry["crop"]
        img = img.crop((round(left * w), round(top * h), round(right * w), round(bottom * h)))
    scale = min(1.0, LONGER_SIDE / max(img.size))
    if scale < 1:
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    for quality in range(90, 40, -4):
        out = io.BytesIO()
        img.save(out, format="JPEG", quality=quality, optimize=True)
        if out.tell() <= MAX_BYTES:
            return out.getvalue()
    return out.getvalue()


TABLE_HEAD = """# Built-in styles

Public-domain paintings for `--style NAME`, `stylekit sheet` and `stylekit.styles`.
Every painter died before 1956 and every work dates from before 1931: public
domain in the United States and in the countries where copyright lasts 70 years
after the author's death. The pictures are photographs of these two-dimensional
works, which add no copyright of their own (US: Bridgeman v. Corel, 1999; EU:
article 14 of Directive 2019/790). None is a copy of an image of stylekit's
training or evaluation data (checked by name and by content). Each was
cropped (where a stock-photo watermark was), reduced to 512 px and re-encoded
by `tools/make_builtin_styles.py`.

| name | title | painter (lived) | year | source: repository, path @ commit | licence |
| --- | --- | --- | --- | --- | --- |
"""


def write_table() -> None:
    import sys

    sys.path.insert(0, str(STYLES.parents[1]))
    from stylekit.styles import available

    rows = [f"| `{s.name}` | {s.title} | {s.painter} ({s.lived}) | {s.year} | `{s.repository}`, `{s.source_path}` "
            f"@ `{s.commit}` | public domain (painter d. {s.lived.split('–')[-1]}) |" for s in available()]
    (STYLES / "README.md").write_text(TABLE_HEAD + "\n".join(rows) + "\n", encoding="utf-8")


def write_gallery(path: Path) -> None:
    """The paintings themselves, captioned, for the README (docs/images/builtin_styles.jpg)."""
    from stylekit.images import save_image
    from stylekit.sheet import _grid
    from stylekit.styles import available

    tiles = []
    for s in available():
        img = s.load()
        img.thumbnail((160, 160))
        tile = Image.new("RGB", (160, 160), "white")
        tile.paste(img, ((160 - img.width) // 2, (160 - img.height) // 2))
        tiles.append((s.name, f"{s.painter}, {s.year}", tile))
    save_image(_grid(tiles, 7), path, quality=85)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=Path, help="folder of git clones (default: download)")
    parser.add_argument("--gallery", type=Path, help="also write the paintings as one captioned picture")
    args = parser.parse_args()
    for entry in json.loads((STYLES / "styles.json").read_text()):
        data = source_bytes(entry, args.repos)
        jpeg = build(entry, data)
        (STYLES / f"{entry['name']}.jpg").write_bytes(jpeg)
        with Image.open(io.BytesIO(jpeg)) as img:
            size = img.size
        print(f"{entry['name']:<22} {size[0]}x{size[1]} {len(jpeg) / 1000:.0f} KB  source sha256 "
              f"{hashlib.sha256(data).hexdigest()}")
    write_table()
    if args.gallery is not None:
        write_gallery(args.gallery)


if __name__ == "__main__":
    main()
