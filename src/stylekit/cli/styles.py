"""``stylekit styles`` (the built-in paintings, listed without importing torch)
and ``stylekit sheet`` (a photo in all of them); the work is
:mod:`stylekit.styles` and :mod:`stylekit.sheet`."""

from __future__ import annotations

import sys

from ..errors import plural
from .flags import METHODS, add_alpha, add_model_flags, add_no_progress, add_preserve_color


def add_commands(commands) -> None:
    p = commands.add_parser("styles", help="list the built-in styles",
                            description="The public-domain paintings that ship with stylekit: --style NAME takes "
                                        "one, stylekit sheet shows a photo in all of them.")
    p.add_argument("--json", action="store_true", help="everything about each (title, painter, year, source, "
                   "licence, path) as JSON")
    p.set_defaults(func=cmd_styles, torch=False)

    p = commands.add_parser("sheet", help="a photo in every built-in style, on one labelled sheet",
                            description="Stylize a photo with each built-in style and lay the results out in a grid, "
                                        "the photo first, each captioned with the style's name, painter and year.")
    p.add_argument("content", help="the photo")
    p.add_argument("-o", "--output", required=True, help="the sheet: .jpg, .png or .webp")
    p.add_argument("--styles", nargs="+", metavar="NAME", help="these built-in styles only (default: all)")
    p.add_argument("--size", type=int, metavar="PX",
                   help="the photo's longer side on the sheet, up or down (default: at most 256)")
    p.add_argument("--columns", type=int, default=4, help="tiles per row (default: 4)")
    add_alpha(p)
    add_preserve_color(p, "keep the photo's colours (bare flag: luminance; default: none)")
    p.add_argument("--method", default="adain", choices=METHODS, help="stylization method (default: adain)")
    add_model_flags(p, "decoder weights (default: the shipped one)")
    add_no_progress(p)
    p.set_defaults(func=cmd_sheet)


def cmd_styles(args) -> int:
    import json

    from .. import styles

    if args.json:
        print(json.dumps([s.as_dict() | {"path": str(s.path)} for s in styles.available()], indent=2,
                         ensure_ascii=False))
        return 0
    chosen = styles.available()
    width = max(len(s.name) for s in chosen)
    for s in chosen:
        print(f"{s.name:<{width}}  {s.label}")
    print(f"\n{plural(len(chosen), 'built-in style')} (public domain; sources: stylekit/styles/README.md). "
          "Use one: stylekit stylize photo.jpg --style NAME -o out.jpg; all of them: stylekit sheet photo.jpg "
          "-o sheet.jpg", file=sys.stderr)
    return 0


def cmd_sheet(args) -> int:
    from tqdm import tqdm

    from ..api import load
    from ..images import check_not_an_input, check_output_path, save_image
    from ..sheet import style_sheet

    output = check_output_path(args.output)
    check_not_an_input(output, [("content image", args.content)])
    names = args.styles
    from .. import styles

    for name in names or []:
        styles.get(name)
    model = load(args.method, device=args.device, weights=args.weights, encoder_weights=args.encoder_weights)
    count = len(names or styles.names())
    bar = tqdm(total=count, disable=args.no_progress, unit="style", dynamic_ncols=True)
    sheet = style_sheet(model, args.content, names, size=args.size, columns=args.columns, alpha=args.alpha,
                        preserve_color=args.preserve_color, progress=lambda name: bar.update(1))
    bar.close()
    save_image(sheet, output)
    print(output)
    return 0
