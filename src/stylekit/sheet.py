"""A style sheet: one photo stylized in every built-in style, in a labelled grid."""

from __future__ import annotations

import unicodedata
from typing import Callable, Sequence

from PIL import Image, ImageDraw, ImageFont

from . import styles as builtin
from .checks import check_int
from .errors import StylekitError
from .images import tensor_to_pil, to_rgb
from .pipeline import ImageLike, Stylizer, StylizeOptions, fit, load_fitted

#: the photo's longer side on the sheet unless one is asked for (a smaller photo keeps its size)
DEFAULT_TILE = 256
GAP = 8


def _font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except (TypeError, OSError):  # Pillow < 10.1 or without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def style_sheet(
    model: Stylizer,
    content: ImageLike,
    names: Sequence[str] | None = None,
    *,
    size: int | None = None,
    columns: int = 4,
    alpha: float = 1.0,
    preserve_color: str = "none",
    progress: Callable[[str], None] | None = None,
) -> Image.Image:
    """``content`` as it is, then stylized with each built-in style (``names``,
    default all), in a grid of ``columns`` tiles, each captioned with the
    style's name and its painter and year. ``size`` is the photo's longer side
    on the sheet (default: at most 256 px, never enlarged).

    >>> import stylekit
    >>> from stylekit import styles
    >>> sheet = style_sheet(stylekit.load("adain", device="cpu"), styles.path("castle_tale"),
    ...                     ["composition_xiii", "contrast_of_forms"], size=48, columns=3)
    >>> sheet.mode, sheet.width > 3 * 48
    ('RGB', True)
    """
    StylizeOptions(alpha=alpha, preserve_color=preserve_color, size=size)  # checks them before any work
    names = list(builtin.names() if names is None else names)
    chosen = [builtin.get(n) for n in names]
    if not chosen:
        raise StylekitError("no styles for the sheet")
    check_int(columns, "columns", 1)
    photo, _, (h, w) = load_fitted(content, "content", 0 if size is None else size, False)
    if size is None and max(h, w) > DEFAULT_TILE:
        photo = fit(photo, DEFAULT_TILE, False)
    tiles = [("original", "the photo", tensor_to_pil(photo))]
    for style in chosen:
        if progress is not None:
            progress(style.name)
        out = model.stylize(photo, style.path, alpha=alpha, preserve_color=preserve_color, size=0)
        tiles.append((style.name, f"{style.painter}, {style.year}", tensor_to_pil(out)))
    return _grid(tiles, columns)


def _grid(tiles: list[tuple[str, str, Image.Image]], columns: int) -> Image.Image:
    tw, th = tiles[0][2].size
    font_px = max(10, min(18, tw // 14))
    name_font, note_font = _font(font_px), _font(max(9, font_px - 3))
    caption = font_px * 2 + 10
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (GAP + columns * (tw + GAP), GAP + rows * (th + caption + GAP)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (name, note, image) in enumerate(tiles):
        x, y = GAP + (i % columns) * (tw + GAP), GAP + (i // columns) * (th + caption + GAP)
        sheet.paste(to_rgb(image), (x, y))
        draw.text((x, y + th + 3), _fit(draw, name, name_font, tw), fill=(0, 0, 0), font=name_font)
        draw.text((x, y + th + 5 + font_px), _fit(draw, note, note_font, tw), fill=(90, 90, 90), font=note_font)
    return sheet


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` in plain letters (Pillow's built-in font has no accents or dashes:
    Léger -> Leger), shortened with dots to fit ``width`` pixels."""
    text = unicodedata.normalize("NFKD", text.replace("–", "-").replace("—", "-"))
    text = "".join(c for c in text if c.isascii())
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."
