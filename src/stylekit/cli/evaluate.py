"""``stylekit evaluate``: the AdaIN paper's measures over content x style
pairs, and with ``--curve`` Gatys's losses along its iterations (Fig. 3);
the work is :mod:`stylekit.evaluate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import StylekitError
from .flags import METHODS, SWAP_FLAGS, add_alpha, add_method_args, add_model_flags, add_no_progress, method_options
from .parser import flag, warn
from .stylize import WEIGHTS_HELP


def add_commands(commands) -> None:
    p = commands.add_parser("evaluate", help="content/style losses and time over content x style pairs",
                            description="Stylize every content x style pair and score it: content loss, mean/std "
                                        "and Gram style losses, seconds (the AdaIN paper's sec. 7.1); --curve draws "
                                        "Gatys's losses along its iterations (Fig. 3).")
    p.add_argument("--content", required=True, help="content image or directory")
    p.add_argument("--style", required=True, help="style image or directory")
    p.add_argument("--method", choices=METHODS, help="method to evaluate (default: adain)")
    p.add_argument("--size", type=int, default=512, metavar="PX",
                   help="content's longer side, exactly: smaller images are enlarged, so every pair is scored at "
                        "one scale (default: 512)")
    p.add_argument("--style-size", type=int, default=512, metavar="PX", help="style's longer side, exactly (default: 512)")
    add_alpha(p, "content-style trade-off (default: 1)")
    p.add_argument("--stroke-scale", type=float, metavar="S",
                   help="as for stylize: 0 is one pass at the output size (default: the method's)")
    p.add_argument("--out", metavar="FILE.json", help="also write the numbers as JSON")
    add_model_flags(p, WEIGHTS_HELP)
    add_no_progress(p)
    add_method_args(p)
    add_curve_args(p)
    p.set_defaults(func=cmd_evaluate)


def add_curve_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("loss curves (the AdaIN paper's Fig. 3)")
    g.add_argument("--curve", action="store_true",
                   help="record Gatys's losses along its optimisation, next to adain and style-swap; "
                        "writes PREFIX.png and PREFIX.json (needs the [plots] extra)")
    g.add_argument("--curve-steps", type=int, nargs="+", metavar="N",
                   help="Gatys iterations to record (default: 0 1 2 5 10 20 50 100 200)")
    g.add_argument("--curve-out", metavar="PREFIX", help="write PREFIX.png and PREFIX.json (default: loss_curve)")
    g.add_argument("--inverse-weights", metavar="FILE",
                   help="with --curve: the style-swap inverse network (default: the shipped one, if any)")


def cmd_evaluate(args) -> int:
    import json

    from tqdm import tqdm

    from ..api import load
    from ..evaluate import evaluate, format_table
    from ..files import atomic_write
    from ..images import expand_inputs
    from ..weights import load_encoder

    if args.curve:
        return evaluate_curve(args)
    for dest in ("curve_steps", "curve_out", "inverse_weights"):
        if getattr(args, dest) is not None:
            raise StylekitError(f"{flag(dest)} applies only with --curve")
    args.method = args.method or "adain"
    load_options = method_options(args)
    contents = expand_inputs([args.content], "content")
    styles = expand_inputs([args.style], "style")
    model = load(args.method, device=args.device, weights=args.weights, encoder_weights=args.encoder_weights,
                 **load_options)
    encoder = load_encoder(args.encoder_weights, last_layer="relu3_1", device=model.device)
    bar = tqdm(total=len(contents) * len(styles), disable=args.no_progress, unit="pair", dynamic_ncols=True)
    result = evaluate(model, encoder, contents, styles, size=args.size, style_size=args.style_size,
                      progress=lambda row: bar.update(1), alpha=args.alpha, stroke_scale=args.stroke_scale)
    bar.close()
    result.update({"method": args.method, "alpha": args.alpha, "stroke_scale": args.stroke_scale, "device": str(model.device),
                   "content_dir": str(args.content), "style_dir": str(args.style)})
    if args.method == "adain":  # which transform ran: a file, the shipped one, or none (plain AdaIN)
        shipped = "shipped" if model.transform is not None else None
        result["transform"] = shipped if args.transform is None else None if args.transform == "none" else str(args.transform)
    print(format_table(result, args.method))
    if args.out:
        atomic_write(args.out, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    return 0


def evaluate_curve(args) -> int:
    import json

    from tqdm import tqdm

    from ..bench import load_method, method_label
    from ..devices import resolve_device
    from ..evaluate import CURVE_STEPS, check_curve_steps, format_curve, loss_curve, plot_curve, require_matplotlib
    from ..files import atomic_write
    from ..images import check_output_path, expand_inputs
    from ..style_swap.model import DEFAULT_STEPS as SWAP_STEPS
    from ..weights import load_encoder

    if args.out is not None:
        raise StylekitError("with --curve the numbers go to PREFIX.json: use --curve-out PREFIX, not --out")
    for dest in ("method", "optimize", *SWAP_FLAGS, "optimizer", "tv_weight", "init", "transform"):
        if getattr(args, dest) not in (None, False):
            raise StylekitError(f"{flag(dest)} does not apply with --curve (it runs gatys, style-swap and adain "
                                "with their defaults; --steps sets style-swap's optimisation steps)")
    require_matplotlib()  # before any of the (long) optimisation
    steps = check_curve_steps(args.curve_steps or CURVE_STEPS)
    swap_steps = SWAP_STEPS if args.steps is None else args.steps
    prefix = args.curve_out or "loss_curve"
    for suffix in (".png", ".json"):
        if prefix.endswith(suffix):
            prefix = prefix[: -len(suffix)]
    png, js = check_output_path(prefix + ".png"), Path(prefix + ".json")
    if js.is_dir():
        raise StylekitError(f"output path is a directory: {js}")
    contents = expand_inputs([args.content], "content")
    styles = expand_inputs([args.style], "style")
    device = resolve_device(args.device)
    common = dict(device=device, encoder_weights=args.encoder_weights)
    gatys = load_method("gatys", steps=steps[-1], **common)
    others, unavailable = {}, {}
    for name, options in (("adain", {"adain_weights": args.weights}), ("style-swap-optimize", {"steps": swap_steps}),
                          ("style-swap-inverse", {"inverse_weights": args.inverse_weights})):
        label = method_label(name, swap_steps)
        try:
            others[name] = (label, load_method(name, **options, **common))
        except StylekitError as exc:
            if name != "style-swap-inverse" or args.inverse_weights is not None:
                raise
            unavailable[name] = str(exc)
            warn(f"{label}: left out ({exc})")
    encoder = load_encoder(args.encoder_weights, last_layer="relu3_1", device=device)
    bar = tqdm(total=len(contents) * len(styles), disable=args.no_progress, unit="pair", dynamic_ncols=True)
    result = loss_curve(gatys, encoder, contents, styles, steps=steps, others=others, unavailable=unavailable,
                        size=args.size, style_size=args.style_size, alpha=args.alpha, progress=lambda row: bar.update(1))
    bar.close()
    result.update({"device": str(device), "style_swap_steps": swap_steps,
                   "content_dir": str(args.content), "style_dir": str(args.style)})
    print(format_curve(result))
    atomic_write(js, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    plot_curve(result, png)
    print(f"wrote {png} and {js}", file=sys.stderr)
    return 0
