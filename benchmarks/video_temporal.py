"""Temporal consistency of stylized video, with and without the stabiliser.

    python benchmarks/video_temporal.py --real CLIP.avi CLIP2.mp4 \
        --out benchmarks/results/video_temporal

writes ``video_temporal.md`` (the table of docs/video.md) and
``video_temporal.json`` beside it, and with ``--strip`` the frame strip.

Clips: four generated from the package's example photo, whose motion is
known exactly (still frames with noise, a pan by whole pixels, a zoom about
the centre, an object moving over a still background), and the real clips
given with ``--real`` (no known motion: no warping error). Each frame is
stylized once per method exactly as ``stylekit video`` does (the stylizer's
``stylize`` at the frame's size); each stabiliser variant then runs over
those same outputs, as ``stylekit video`` runs it after the stylizer:

* ``off``: no stabiliser (``--no-smooth``, frame-by-frame stylization);
* ``smooth``: the default (``stylekit video`` as it is, ``--smooth 1``);
* ``smooth-0.5``: ``--smooth 0.5``;
* ``dis``: the default after warping along OpenCV's DIS flow (``--flow dis``).

Measures (stylekit.temporal), on 8-bit frames as written: flicker ratio,
frame-difference error in pixels (0-255) and in relu2_1 features, warping
error and frame-difference error along the true motion (0-255, generated
clips), and the per-frame change of the AdaIN paper's style loss
(relu1_1-relu3_1 mean/std) against ``off``. ``--references`` instead
measures perfectly consistent outputs of the pan and of the moving object:
what the measures say of no flicker at all when the picture moves.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

import stylekit
from stylekit.encoder import style_layers_for
from stylekit.images import image_grid, save_image
from stylekit.losses import mean_std_style_loss
from stylekit.pipeline import fit, to_tensor_image
from stylekit.temporal import FrameMeter, SmoothConfig, Stabilizer, motion_difference_error, warp, warping_error
from stylekit.video import read_frames, to_u8
from stylekit.weights import load_encoder

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "src" / "stylekit" / "examples"
FEATURE_LAYER = "relu2_1"


@dataclass
class Clip:
    name: str
    frames: list  # (3, H, W) in [0, 1], 8-bit values
    flows: list | None = None  # flows[t - 1]: backward flow of frame t, (2, H, W) pixels
    valid: list | None = None  # valid[t - 1]: (1, H, W) pixels seen in frames t - 1 and t


def quantise(x: torch.Tensor) -> torch.Tensor:
    return to_u8(x).float() / 255.0


def photo(name: str, width: int, height: int) -> torch.Tensor:
    """An example photo, centre-cropped to width:height and resized."""
    t = to_tensor_image(EXAMPLES / name, name)[0]
    h, w = t.shape[1:]
    if w * height > h * width:
        cw = h * width // height
        t = t[:, :, (w - cw) // 2 : (w - cw) // 2 + cw]
    else:
        ch = w * height // width
        t = t[:, (h - ch) // 2 : (h - ch) // 2 + ch]
    return F.interpolate(t[None], size=(height, width), mode="bicubic", antialias=True, align_corners=False)[0].clamp(0, 1)


def still_noise(w: int, h: int, n: int, sigma: float = 3.0, seed: int = 0) -> Clip:
    """One photo, fresh Gaussian noise of ``sigma`` grey levels each frame; motion 0."""
    base = photo("chelsea.jpg", w, h)
    g = torch.Generator().manual_seed(seed)
    frames = [quantise(base + torch.randn(base.shape, generator=g) * sigma / 255) for _ in range(n)]
    zero = torch.zeros(2, h, w)
    return Clip("still + noise", frames, [zero] * (n - 1), None)


def pan_source(w: int, n: int, h: int, step: int) -> torch.Tensor:
    return quantise(photo("coffee.jpg", w + step * n, h))


def pan(w: int, h: int, n: int, step: int = 2) -> Clip:
    """A window sliding right by ``step`` whole pixels a frame over a wider photo:
    frame_t(x) = frame_{t-1}(x + step)."""
    wide = pan_source(w, n, h, step)
    frames = [wide[:, :, step * t : step * t + w] for t in range(n)]
    flow = torch.zeros(2, h, w)
    flow[0] = step
    return Clip("pan", frames, [flow] * (n - 1), None)


def zoom(w: int, h: int, n: int, rate: float = 1.015) -> Clip:
    """Zooming in by ``rate`` a frame about the centre c: frame_t(p) = S(c + (p - c) / rate**t),
    S the bicubic interpolation of the photo, so frame_t(p) = frame_{t-1}(c + (p - c) / rate)."""
    base = photo("chelsea.jpg", w, h)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    cx, cy = (w - 1) / 2, (h - 1) / 2
    frames = []
    for t in range(n):
        s = rate**t
        gx = 2 * (cx + (xs - cx) / s) / (w - 1) - 1
        gy = 2 * (cy + (ys - cy) / s) / (h - 1) - 1
        grid = torch.stack([gx, gy], -1)[None].float()
        frames.append(quantise(F.grid_sample(base[None], grid, mode="bicubic", align_corners=True)[0]))
    flow = torch.stack([(xs - cx) * (1 / rate - 1), (ys - cy) * (1 / rate - 1)]).float()
    return Clip("zoom", frames, [flow] * (n - 1), None)


def moving_object(w: int, h: int, n: int, side: int = 48, step=(3, 1)) -> Clip:
    """A square cut from another photo moving by ``step`` whole pixels a frame over
    a still photo. Backward flow: -step inside the square, 0 outside; the
    background the square uncovers was not seen in the previous frame."""
    background = quantise(photo("chelsea.jpg", w, h))
    sprite = quantise(photo("mosaic.jpg", side, side))
    x0, y0 = 8, (h - side) // 3
    frames, flows, valid = [], [], []
    prev_mask = None
    for t in range(n):
        x, y = x0 + step[0] * t, y0 + step[1] * t
        frame = background.clone()
        frame[:, y : y + side, x : x + side] = sprite
        mask = torch.zeros(1, h, w, dtype=torch.bool)
        mask[:, y : y + side, x : x + side] = True
        frames.append(frame)
        if prev_mask is not None:
            flow = torch.zeros(2, h, w)
            flow[0][mask[0]] = -step[0]
            flow[1][mask[0]] = -step[1]
            flows.append(flow)
            valid.append(~(prev_mask & ~mask))
        prev_mask = mask
    return Clip("moving object", frames, flows, valid)


def real(path: Path, size: int, n: int, skip: int) -> Clip:
    frames, _ = read_frames(path, size=size, max_frames=n, skip=skip)
    return Clip(path.name, [quantise(f) for f in frames])


def _reference_measures(model, style, clip: Clip, outputs: list, style_loss) -> dict:
    """A consistent output's measures, against the frame-by-frame output of the same frames."""
    meter = FrameMeter()
    for inp, o in zip(clip.frames, outputs):
        meter.add(inp, o)
    m = meter.result()
    valid = clip.valid or [None] * len(clip.flows)
    off = [style_loss(quantise(model.stylize(f, style, size=0, style_size=0).clamp(0, 1))) for f in clip.frames]
    changes = [abs(style_loss(o) - b) / b for o, b in zip(outputs, off)]
    n = len(outputs)
    return {"flicker_ratio": m.flicker_ratio, "fde": m.frame_difference_error,
            "warping_error": statistics.fmean(warping_error(outputs[t], outputs[t - 1], clip.flows[t - 1], valid[t - 1])
                                              for t in range(1, n)),
            "style_loss_change_mean": statistics.fmean(changes), "style_loss_change_max": max(changes),
            "off_style_loss_step": statistics.fmean(abs(off[t] - off[t - 1]) / off[t - 1] for t in range(1, n))}


def consistent_pan(model, style, w: int, h: int, n: int, style_loss, step: int = 2) -> dict:
    """A perfectly consistent output of the pan: the wide photo stylized once and
    cut into the pan's windows (what no flicker at all looks like when the
    picture moves)."""
    wide = pan_source(w, n, h, step)
    out = quantise(model.stylize(wide, style, size=0, style_size=0).clamp(0, 1))
    return _reference_measures(model, style, pan(w, h, n, step), [out[:, :, step * t : step * t + w] for t in range(n)],
                               style_loss)


def consistent_object(model, style, w: int, h: int, n: int, style_loss) -> dict:
    """A perfectly consistent output of the moving object: the background stylized
    once without the square, and the square as the first frame's stylization
    painted it, pasted where the square is in each frame."""
    clip = moving_object(w, h, n)
    background = quantise(photo("chelsea.jpg", w, h))
    painted_background = quantise(model.stylize(background, style, size=0, style_size=0).clamp(0, 1))
    first = quantise(model.stylize(clip.frames[0], style, size=0, style_size=0).clamp(0, 1))
    masks = [(f != background).any(0) for f in clip.frames]  # where the square is (the sprite differs there)
    ys, xs = masks[0].nonzero(as_tuple=True)
    y0, x0, side = int(ys.min()), int(xs.min()), int(xs.max()) - int(xs.min()) + 1
    square = first[:, y0 : y0 + side, x0 : x0 + side]
    outputs = []
    for mask in masks:
        ys, xs = mask.nonzero(as_tuple=True)
        y, x = int(ys.min()), int(xs.min())
        o = painted_background.clone()
        o[:, y : y + side, x : x + side] = square
        outputs.append(o)
    return _reference_measures(model, style, clip, outputs, style_loss)


def run_variant(model, style, clip: Clip, config: SmoothConfig, features, style_loss) -> tuple[dict, list]:
    """Stylize the clip through the stabiliser as ``stylekit video`` does, and measure."""
    stabilizer = Stabilizer(config)
    meter = FrameMeter(features=features)
    shown = []
    t0 = time.perf_counter()
    for frame in clip.frames:
        x = stabilizer.before(frame)
        out = model.stylize(x, style, size=0, style_size=0).clamp(0, 1)
        o = quantise(stabilizer.after(out))
        meter.add(frame, o)
        shown.append(o)
    seconds = time.perf_counter() - t0
    m = meter.result()
    row = {
        "flicker_ratio": m.flicker_ratio,
        "output_flicker": m.output_flicker,
        "input_flicker": m.input_flicker,
        "fde": m.frame_difference_error,
        "fde_features": m.feature_difference_error,
        "flow": stabilizer.flow,
        "seconds_per_frame": seconds / len(clip.frames),
        "style_losses": [style_loss(o) for o in shown],
    }
    losses = row["style_losses"]
    row["style_loss_mean"] = statistics.fmean(losses)
    # how much the style loss moves from one frame to the next on its own
    row["style_loss_step"] = statistics.fmean(abs(losses[t] - losses[t - 1]) / losses[t - 1] for t in range(1, len(losses)))
    if clip.flows is not None:
        valid = clip.valid or [None] * len(clip.flows)
        row["warping_error"] = statistics.fmean(
            warping_error(shown[t], shown[t - 1], clip.flows[t - 1], valid[t - 1]) for t in range(1, len(shown)))
        row["input_warping_error"] = statistics.fmean(
            warping_error(clip.frames[t], clip.frames[t - 1], clip.flows[t - 1], valid[t - 1])
            for t in range(1, len(shown)))
        row["motion_fde"] = statistics.fmean(
            motion_difference_error(shown[t], shown[t - 1], clip.frames[t], clip.frames[t - 1], clip.flows[t - 1],
                                    valid[t - 1]) for t in range(1, len(shown)))
    return row, shown


def parse_variant(text: str, base: SmoothConfig) -> tuple[str, SmoothConfig]:
    """``NAME`` or ``NAME:field=value,...`` (SmoothConfig fields) over ``base``."""
    name, _, spec = text.partition(":")
    changes = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        changes[key] = value if key == "flow" else (int(value) if key in ("radius", "dilate") else float(value))  # noqa: E501
    return name, replace(base, **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, nargs="*", default=[], help="real clips (any ffmpeg-readable video)")
    parser.add_argument("--real-skip", type=int, default=0, help="frames skipped at the start of each real clip")
    parser.add_argument("--methods", nargs="+", default=["adain", "style-swap"])
    parser.add_argument("--style", type=Path, default=EXAMPLES / "swirls.jpg")
    parser.add_argument("--width", type=int, default=256, help="generated clips' width; real clips' longer side")
    parser.add_argument("--height", type=int, default=144)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--style-size", type=int, default=256)
    parser.add_argument("--variants", nargs="+", default=[
                            "off:strength=0,input_strength=0", "smooth", "smooth-0.5:strength=0.5,input_strength=0.5",
                            "dis:flow=dis"],
                        help="NAME:field=value,... over the default SmoothConfig; the first is the baseline")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--strip", type=Path, help="also write the frame strip (input and each variant, first method)")
    parser.add_argument("--strip-clip", default="moving object")
    parser.add_argument("--strip-variants", nargs="+", default=["off", "smooth", "dis"])
    parser.add_argument("--references", action="store_true",
                        help="only measure perfectly consistent outputs of the pan (one stylization cut into its "
                             "windows) and of the moving object (background and square each stylized once)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "video_temporal")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    w, h, n = args.width, args.height, args.frames
    style = fit(to_tensor_image(args.style, "style")[0], args.style_size, False)
    encoder = load_encoder(last_layer="relu3_1")
    layers = style_layers_for("relu3_1")
    with torch.inference_mode():
        style_feats = encoder(style[None], layers)

    # channels_last in inference mode: the encoder's fused path, the same float32 arithmetic, faster
    def features(x):
        with torch.inference_mode():
            return encoder.encode(x[None].contiguous(memory_format=torch.channels_last), FEATURE_LAYER)[0]

    def style_loss(x):
        with torch.inference_mode():
            feats = encoder(x[None].contiguous(memory_format=torch.channels_last), layers)
            return float(mean_std_style_loss(feats, style_feats, layers))

    if args.references:
        lines = [f"`python benchmarks/video_temporal.py {' '.join(_argv())}` ({torch.__version__})", "",
                 "| method | consistent output of | flicker ratio | FDE px | warping error | style loss change against "
                 "frame by frame, mean / max | frame by frame: style loss frame to frame |", "|---|---|---|---|---|---|---|"]
        for method in args.methods:
            model = stylekit.load(method, device="cpu")
            for name, reference in (("pan", consistent_pan), ("moving object", consistent_object)):
                r = reference(model, style, w, h, n, style_loss)
                lines.append(f"| {method} | {name} | {r['flicker_ratio']:.2f} | {r['fde']:.2f} | {r['warping_error']:.2f} "
                             f"| {100 * r['style_loss_change_mean']:.1f} % / {100 * r['style_loss_change_max']:.1f} % "
                             f"| {100 * r['off_style_loss_step']:.1f} % |")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_name(args.out.name + "_references.md").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        return
    clips = [still_noise(w, h, n), pan(w, h, n), zoom(w, h, n), moving_object(w, h, n)]
    clips += [real(p, w, n, args.real_skip) for p in args.real]
    base = SmoothConfig()
    variants = dict(parse_variant(v, base) for v in args.variants)
    baseline = next(iter(variants))
    rows, strip = [], None
    started = time.perf_counter()
    for method in args.methods:
        model = stylekit.load(method, device="cpu")
        for clip in clips:
            cache = {}

            def cached_features(x):  # the input frames are the same tensors in every variant
                if any(x is f for f in clip.frames):
                    return cache.setdefault(id(x), features(x))
                return features(x)

            results = {}
            for name, config in variants.items():
                results[name], shown = run_variant(model, style, clip, config, cached_features, style_loss)
                if args.strip and method == args.methods[0] and clip.name == args.strip_clip and name in args.strip_variants:
                    strip = strip or {"input": clip.frames}
                    strip[name] = shown
            base_losses = results[baseline]["style_losses"]
            for name, r in results.items():
                signed = [(a - b) / b for a, b in zip(r["style_losses"], base_losses)]
                changes = [abs(c) for c in signed]
                rows.append({"method": method, "clip": clip.name, "variant": name, "config": asdict(variants[name]),
                             "frames": len(clip.frames), "size": [clip.frames[0].shape[2], clip.frames[0].shape[1]],
                             "style_loss_change_mean": statistics.fmean(changes),
                             "style_loss_change_max": max(changes),
                             # the style loss is a distance to the style: a rise is a frame further from it
                             "style_loss_rise_max": max(signed), **r})
            print(f"{method:10s} {clip.name:22s} " + "  ".join(
                f"{v}: x{results[v]['flicker_ratio']:.2f} fde {results[v]['fde']:.2f} "
                f"w {results[v].get('warping_error', math.nan):.2f}" for v in variants), flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"command": "python benchmarks/video_temporal.py " + " ".join(_argv()), "config": asdict(base),
            "baseline": baseline,
            "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
            "threads": args.threads, "style": args.style.name, "seconds": time.perf_counter() - started}
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(format_table(rows, meta))
    print(format_table(rows, meta))
    if strip is not None:
        write_strip(strip, args.strip, next(c for c in clips if c.name == args.strip_clip))


def _argv():
    import sys

    return sys.argv[1:]


def _fmt(x, digits=2):
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def format_table(rows: list[dict], meta: dict) -> str:
    """One line per clip, method and variant; the ``vs off`` columns are the
    variant's flicker ratio and frame-difference error over ``off``'s."""
    off = {(r["method"], r["clip"]): r for r in rows if r["variant"] == meta["baseline"]}
    lines = [
        f"`{meta['command']}` ({meta['torch']}, {meta['threads']} threads, style {meta['style']}, "
        f"defaults {meta['config']})",
        "",
        "| method | clip | smoothing | flicker ratio | vs off | FDE px | vs off | FDE relu2_1 | vs off "
        "| warping error (input) | vs off | FDE along the motion | vs off "
        "| style loss change mean / max | style loss frame to frame |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        o = off[(r["method"], r["clip"])]
        rel = lambda k: _fmt(r[k] / o[k]) if o[k] else "—"  # noqa: E731
        moving = "warping_error" in r
        warp = f"{r['warping_error']:.2f} ({r['input_warping_error']:.2f})" if moving else "—"
        along = f"{warp} | {rel('warping_error')} | {_fmt(r['motion_fde'])} | {rel('motion_fde')}" if moving else \
            "— | — | — | —"
        lines.append(
            f"| {r['method']} | {r['clip']} | {r['variant']} | {_fmt(r['flicker_ratio'])} | {rel('flicker_ratio')} "
            f"| {_fmt(r['fde'])} | {rel('fde')} | {_fmt(r['fde_features'], 4)} | {rel('fde_features')} | {along} "
            f"| {100 * r['style_loss_change_mean']:.1f} % / {100 * r['style_loss_change_max']:.1f} % "
            f"| {100 * r['style_loss_step']:.1f} % |"
        )
    return "\n".join(lines) + "\n"


def write_strip(strip: dict, path: Path, clip: Clip, frames=(8, 9, 10), gain: float = 4.0) -> None:
    """One row for the input and one per variant. Columns: three consecutive
    frames, then the change between the last two times ``gain`` (what changed
    shows light): in place, and along the clip's true motion where it is known
    (what a viewer sees as flicker: change that does not follow the scene;
    pixels not seen in both frames black)."""
    t = frames[-1]
    rows = []
    for seq in strip.values():
        def light(d):
            return (d.abs().mean(0, keepdim=True) * gain).clamp(0, 1).expand(3, -1, -1)

        row = [seq[i] for i in frames] + [light(seq[t] - seq[t - 1])]
        if clip.flows is not None:
            moved, inside = warp(seq[t - 1], clip.flows[t - 1])
            if clip.valid is not None:
                inside = inside & clip.valid[t - 1]
            row.append(light((seq[t] - moved) * inside))
        rows.append(row)
    save_image(image_grid(rows), path)


if __name__ == "__main__":
    main()
