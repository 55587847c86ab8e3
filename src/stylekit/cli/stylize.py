"""``stylekit stylize``: which outputs a command line asks for (never an
input overwritten, never a stylekit output taken as an input) and the loop
that writes them; the work is :meth:`stylekit.pipeline.Stylizer.stylize`."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import StylekitError, plural
from .flags import (METHODS, add_alpha, add_method_args, add_model_flags, add_no_progress, add_preserve_color,
                    add_sizes, add_style_weights, builtin_styles, method_options)
from .parser import warn

#: stylize's and evaluate's --weights
WEIGHTS_HELP = "decoder weights: adain's decoder or style-swap's inverse network (default: the shipped one)"


def add_commands(commands) -> None:
    p = commands.add_parser("stylize", help="stylize images", description="Stylize content images with style images.")
    p.add_argument("content", nargs="+", help="content image(s) or directories")
    p.add_argument("--style", nargs="+", required=True,
                   help="style image(s), directories or built-in style names (stylekit styles lists them)")
    p.add_argument("--method", default="adain", choices=METHODS, help="stylization method (default: adain)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", help="output file (one output only); .jpg, .png or .webp")
    out.add_argument("--output-dir", default="output", help="directory for <content>_stylized_<style>.<ext> (default: output)")
    p.add_argument("--ext", default="jpg", help="output extension with --output-dir (default: jpg)")
    add_alpha(p)
    add_style_weights(p, "blend all styles into one output with these weights (normalised to sum 1), "
                         "e.g. 0.3 0.7 or 0.3,0.7")
    p.add_argument("--mask", nargs="+", metavar="MASK",
                   help="one mask per style, the content's size; white = that style's region")
    add_preserve_color(p, "keep the content's colours: luminance-only transfer, or match the style's colour histogram "
                          "to the content first (bare flag: luminance; default: none)")
    add_sizes(p, "the content's")
    p.add_argument("--crop", action="store_true", help="centre square crop of content and style first")
    p.add_argument("--stroke-scale", type=float, metavar="S",
                   help="size of the painting's strokes and shapes relative to the picture, 0.25 to 4: the method "
                        "runs coarse to fine with the style scaled like the picture, so the look does not change "
                        "with --size; 0: one pass at the output size (default: 1 for adain, 0 for the others)")
    add_model_flags(p, WEIGHTS_HELP)
    p.add_argument("--skip-existing", action="store_true", help="do not redo outputs that exist (resume a batch)")
    add_no_progress(p)
    add_method_args(p)
    p.set_defaults(func=cmd_stylize)


def cmd_stylize(args) -> int:
    from tqdm import tqdm

    from ..api import load
    from ..images import check_output_path, save_image
    from ..pipeline import StylizeOptions

    load_options = method_options(args)
    options = StylizeOptions(
        alpha=args.alpha,
        style_weights=tuple(args.style_weights) if args.style_weights is not None else None,
        preserve_color=args.preserve_color,
        size=args.size,
        style_size=args.style_size,
        crop=args.crop,
        stroke_scale=args.stroke_scale,
    )
    jobs = _stylize_jobs(args)
    for _, styles, output in jobs:
        check_output_path(output)
        if args.style_weights is not None:
            options.normalised_weights(len(styles))
    from .. import distributed
    from ..devices import resolve_device

    # Under torchrun each process takes every world_size-th job: together they
    # write every output exactly once.
    device = resolve_device(args.device)
    ctx = distributed.setup(device)
    batch = len(jobs) > 1  # judged on the whole job: a rank's shard may hold one item
    jobs = ctx.shard(jobs)
    device = distributed.device_for(device, ctx)
    todo = [job for job in jobs if not (args.skip_existing and job[2].exists())]
    existing = len(jobs) - len(todo)
    if existing:
        print(f"skipping {plural(existing, 'output')} that already exist{'s' if existing == 1 else ''}",
              file=sys.stderr)
    failures = 0
    if not todo:
        _batch_summary(args, ctx, batch, 0, failures, existing)
        distributed.teardown(ctx)
        return 0
    model = load(args.method, device=device, weights=args.weights, encoder_weights=args.encoder_weights,
                 **load_options)
    bar = tqdm(todo, disable=not batch or args.no_progress or not ctx.is_main, unit="image", dynamic_ncols=True)
    for content, styles, output in bar:
        try:
            image = model.stylize(
                content, styles, alpha=options.alpha, style_weights=options.style_weights,
                masks=args.mask, preserve_color=options.preserve_color,
                size=options.size, style_size=options.style_size, crop=options.crop,
                stroke_scale=options.stroke_scale,
            )
            save_image(image, output)
        except StylekitError as exc:
            if not batch:
                raise
            failures += 1
            tqdm.write(f"warning: could not stylize {content} with {', '.join(map(str, styles))}: {exc}",
                       file=sys.stderr)
            continue
        if not batch:
            print(output)
    _batch_summary(args, ctx, batch, len(todo) - failures, failures, existing)
    distributed.teardown(ctx)
    return 2 if failures else 0


def _batch_summary(args, ctx, batch: bool, written: int, failed: int, existing: int) -> None:
    """The last line of a batch: every job counted once, in the words the lines before it used."""
    if not batch:
        return
    where = f" (process {ctx.rank} of {ctx.world_size})" if ctx.distributed else ""
    already = f", {existing} already existed" if args.skip_existing else ""
    print(f"{written} written, {failed} failed{already}, in {Path(args.output_dir)}{where}", file=sys.stderr)


def _stylize_jobs(args) -> list[tuple[Path, list[Path], Path]]:
    """(content, styles, output) for every output this command writes.

    Outputs are ``<content>_stylized_<style>.<ext>``; contents found in
    sub-folders of a content directory keep those sub-folders under the output
    directory, so equal file names in different folders do not collide. Files
    found in a directory that this command would itself write (outputs of an
    earlier run into an input folder) are never taken as inputs, and no output
    may be one of the inputs.
    """
    from ..images import check_not_an_input

    contents = _found(args.content, "content")
    styles = _found(builtin_styles(args.style), "style")
    if args.mask is not None and len(contents) != 1:
        raise StylekitError("--mask needs exactly one content image (masks have the content's size)")
    if args.output is not None:
        groups = _style_groups(args, [s for s, _, _ in styles])
        if len(contents) * len(groups) != 1:
            raise StylekitError(_one_output_hint(len(contents), len(groups)))
        jobs = [(contents[0][0], groups[0], Path(args.output))]
    else:
        jobs = _output_dir_jobs(args, contents, styles)
    inputs = [("content image", c) for c, _, _ in jobs] + [("style image", s) for _, group, _ in jobs for s in group]
    inputs += [("mask", m) for m in args.mask or []]
    for _, _, output in jobs:
        check_not_an_input(output, inputs)
    return jobs


def _found(paths, what: str) -> list[tuple[Path, Path, bool]]:
    """(file, its folder relative to the directory it was found in, whether it was found in a directory)."""
    from ..images import expand_inputs_with_subdirs

    return [(f, sub, Path(raw).is_dir()) for raw in paths for f, sub in expand_inputs_with_subdirs([raw], what)]


def _style_groups(args, styles: list[Path]) -> list[list[Path]]:
    """One group per output: all styles together when they are blended or masked, else one each."""
    combine = args.style_weights is not None or args.mask is not None
    return [styles] if combine else [[s] for s in styles]


def _one_output_hint(contents: int, groups: int) -> str:
    message = f"-o names one file but there are {contents * groups} outputs"
    if contents == 1:
        return (f"{message} (one per style); add --style-weights to blend the {groups} styles into one image "
                "(e.g. --style-weights " + " ".join(["1"] * groups) + "), or use --output-dir for one image per style")
    return f"{message} ({plural(contents, 'content image')} x {plural(groups, 'style')}); use --output-dir"


def _output_dir_jobs(args, contents, styles) -> list[tuple[Path, list[Path], Path]]:
    from ..images import written_by_stylekit

    out_dir = Path(args.output_dir)
    ext = args.ext.lstrip(".")

    def plan(contents, styles):
        jobs, seen = [], {}
        for content, subdir, _ in contents:
            for group in _style_groups(args, [s for s, _, _ in styles]):
                style_name = ("_".join(s.stem for s in group) if len(group) <= 3
                              else f"{group[0].stem}_and_{len(group) - 1}_more")
                output = out_dir / subdir / f"{content.stem}_stylized_{style_name}.{ext}"
                if output in seen:
                    raise StylekitError(
                        f"{seen[output]} and {content} would both be written to {output}; rename one of them"
                    )
                seen[output] = content
                jobs.append((content, group, output))
        return jobs

    # Images stylekit wrote (tagged, or named as this command would name them) are left out of
    # the inputs found in folders: a run into its own input folder must not stylize its outputs.
    ours = {output.resolve() for _, _, output in plan(contents, styles)}
    kept = {what: [item for item in found if not (item[2] and (item[0].resolve() in ours or written_by_stylekit(item[0])))]
            for what, found in (("content", contents), ("style", styles))}
    left_out = len(contents) + len(styles) - len(kept["content"]) - len(kept["style"])
    if left_out:
        warn(f"note: left out {plural(left_out, 'image')} found in the input folders that stylekit wrote "
              "(name such a file itself to stylize it again)")
    for what, found in kept.items():
        if not found:
            raise StylekitError(f"no {what} images left: every one found in the input folders is a stylekit output")
    return plan(kept["content"], kept["style"])
