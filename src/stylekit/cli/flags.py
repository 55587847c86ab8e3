"""The flags several commands share (stylize, evaluate, video, sheet, serve),
defined once: the method and its options, the networks, the style controls."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import StylekitError
from .parser import flag


METHODS = ["adain", "style-swap", "gatys", "fast"]
#: stylize's and video's size default, in words (stylekit.images.DEFAULT_MAX_SIDE)
SIZE_DEFAULT = "at most 512: larger images are reduced, smaller ones keep their size"
OPTIMISATION_FLAGS = ("steps", "optimizer", "tv_weight", "init")
SWAP_FLAGS = ("patch_size", "stride")


#: stylize's, evaluate's and video's device flag
DEVICE_HELP = "auto, cpu or cuda (default: auto)"
ENCODER_HELP = "VGG-19 weights (default: $STYLEKIT_WEIGHTS, the cache, then the shipped encoder)"
ALPHA_HELP = "content-style trade-off in [0, 1] (default: 1)"


def add_model_flags(p: argparse.ArgumentParser, weights_help: str) -> None:
    """--device, --weights and --encoder-weights: which networks run, and where."""
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--weights", help=weights_help)
    p.add_argument("--encoder-weights", help=ENCODER_HELP)


def add_transform(p) -> None:
    """--transform FILE|none: the covariance transform adain runs (:func:`stylekit.adain.model.transform_file`)."""
    p.add_argument("--transform", metavar="FILE",
                   help="adain: a trained covariance transform (stylekit train adain-transform) in place of the "
                        "shipped one; 'none': plain AdaIN (default: the shipped transform with the shipped decoder, "
                        "plain AdaIN with --weights)")


def add_no_progress(p: argparse.ArgumentParser, help: str = "no progress bar") -> None:
    p.add_argument("--no-progress", action="store_true", help=help)


def add_alpha(p: argparse.ArgumentParser, help: str = ALPHA_HELP) -> None:
    p.add_argument("--alpha", type=float, default=1.0, help=help)


def add_style_weights(p: argparse.ArgumentParser, help: str) -> None:
    """--style-weights 0.3 0.7 (or 0.3,0.7): one list of numbers."""
    p.add_argument("--style-weights", type=numbers, nargs="+", action=Flatten, metavar="W", help=help)


def add_preserve_color(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--preserve-color", nargs="?", const="luminance", default="none",
                   choices=["none", "luminance", "histogram"], help=help)


def add_sizes(p: argparse.ArgumentParser, whose: str) -> None:
    """--size and --style-size as stylize and video take them (``whose``: "the content's", ...)."""
    p.add_argument("--size", type=int, metavar="PX",
                   help=f"resize {whose} longer side to PX, up or down; 0: original size (default: {SIZE_DEFAULT})")
    p.add_argument("--style-size", type=int, metavar="PX", help=f"the same for the styles (default: {SIZE_DEFAULT})")


def add_method_args(p: argparse.ArgumentParser) -> None:
    """Flags of the adain, style-swap and gatys methods (rejected where they do not apply)."""
    add_transform(p.add_argument_group("adain options"))
    g = p.add_argument_group("style-swap and gatys options")
    g.add_argument("--optimize", action="store_true",
                   help="style-swap: invert the swapped features by image optimisation instead of the inverse network")
    g.add_argument("--patch-size", type=int, metavar="N", help="style-swap: patch size in feature pixels (default: 3)")
    g.add_argument("--stride", type=int, metavar="N", help="style-swap: patch stride, at most the patch size (default: 1)")
    g.add_argument("--steps", type=int, metavar="N", help="gatys, style-swap --optimize: optimisation steps (default: 100)")
    g.add_argument("--optimizer", choices=["lbfgs", "adam"], help="gatys, style-swap --optimize (default: lbfgs)")
    g.add_argument("--tv-weight", type=float, metavar="W",
                   help="gatys, style-swap --optimize: total-variation weight (default: 0 for gatys, 1e-4 for style-swap)")
    g.add_argument("--init", choices=["content", "noise"], help="gatys, style-swap --optimize: start image (default: content)")


def numbers(text: str) -> list[float]:
    """One command-line word of numbers separated by commas (as the web API takes them)."""
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by spaces or commas, got {text!r}") from None


class Flatten(argparse.Action):
    """Several words of :func:`numbers` as one list: ``0.3 0.7`` and ``0.3,0.7`` are the same."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [number for word in values for number in word])


def method_options(args) -> dict:
    """Keyword options for ``load`` from the method flags; a flag the chosen method does not use is an error."""
    given = [d for d in (*SWAP_FLAGS, *OPTIMISATION_FLAGS) if getattr(args, d) is not None]
    if args.optimize and args.method != "style-swap":
        raise StylekitError("--optimize applies only to --method style-swap"
                            + (" (gatys always optimises)" if args.method == "gatys" else ""))
    if args.method == "adain" and given:
        raise StylekitError(f"{flag(given[0])} does not apply to --method adain")
    if args.method == "gatys" and any(d in SWAP_FLAGS for d in given):
        raise StylekitError(f"{flag(next(d for d in given if d in SWAP_FLAGS))} applies only to --method style-swap")
    optimises = args.method == "gatys" or args.optimize
    if args.method == "style-swap" and not optimises and any(d in OPTIMISATION_FLAGS for d in given):
        name = flag(next(d for d in given if d in OPTIMISATION_FLAGS))
        raise StylekitError(f"{name} needs --optimize with --method style-swap (the inverse network does not optimise)")
    options = {d: getattr(args, d) for d in given}
    if args.transform is not None:
        if args.method != "adain":
            raise StylekitError("--transform applies only to --method adain")
        options["transform_weights"] = args.transform
    if args.method == "style-swap":
        options["optimize"] = args.optimize
    if optimises:
        options["progress"] = not args.no_progress
    return options


def builtin_styles(values: list[str]) -> list[str]:
    """--style values: files and folders as given; a bare name that is neither is a built-in style."""
    from .. import styles

    out = []
    for value in values:
        if not Path(value).exists() and (styles.is_builtin(value) or not Path(value).suffix and "/" not in value):
            try:
                value = str(styles.path(value))
            except StylekitError as exc:
                raise StylekitError(f"style not found: {value} is no file, folder or built-in style "
                                    f"({str(exc).split('; ', 1)[1]}; `stylekit styles` lists them)") from None
        out.append(value)
    return out
