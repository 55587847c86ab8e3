"""Speed of every method on this machine: the AdaIN paper's Table 1.

Seconds per image at square sizes (256 and 512 px by default; style and
content the same size, as in the paper), for Gatys et al. (a fixed number of
L-BFGS steps), style swap inverted by optimisation (the same fixed steps),
style swap with its inverse network, and AdaIN, in two columns each:

* **with style encoding**: the whole job from the two image tensors,
  ``stylizer.transfer(content, [style], ...)``: encoding the content and the
  style, the method's own work (AdaIN / style swap / the Gram targets), and
  the decoder or the image optimisation;
* **without style encoding**: the style prepared once beforehand,
  ``prepared = stylizer.prepare_style(style)`` (AdaIN: the feature mean and
  std; style swap: the relu3_1 features; Gatys: the Gram matrices), then
  ``stylizer.transfer_prepared(content, [prepared], ...)`` timed: everything
  that still depends on the content.

Both start from ``(1, 3, S, S)`` tensors already on the device and end when the
output is computed there (CUDA is synchronised before the clock stops):
image files, resizing and copies to and from the device are not timed.
AdaIN runs with its feature cache off, so every timed call does the full work
(and none pays for the cache's content hashing). Each number is the median of
``repeats`` timed runs after ``warmup`` untimed ones; the two columns'
runs alternate, and so does which of them goes first.
"""

from __future__ import annotations

import os
import platform
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from . import __version__
from .checks import check_int
from .devices import resolve_device
from .errors import StylekitError
from .timing import time_call

#: Benchmarked methods, in the order of the table, with their labels.
METHODS = ("gatys", "style-swap-optimize", "style-swap-inverse", "adain")
DEFAULT_SIZES = (256, 512)
DEFAULT_STEPS = 100
MODES = ("without_style_encoding", "with_style_encoding")


def method_label(name: str, steps: int) -> str:
    return {
        "gatys": f"Gatys et al. ({steps} L-BFGS steps)",
        "style-swap-optimize": f"Style swap, optimisation ({steps} L-BFGS steps)",
        "style-swap-inverse": "Style swap, inverse network",
        "adain": "AdaIN",
    }[name]


def load_method(
    name: str,
    *,
    device="cpu",
    steps: int = DEFAULT_STEPS,
    adain_weights=None,
    inverse_weights=None,
    encoder_weights=None,
    progress: bool = False,
):
    """One compared method's stylizer; a :class:`StylekitError` says why it cannot run.

    ``steps``: L-BFGS steps of Gatys and of style swap's optimisation mode.
    AdaIN's feature cache is off (every call does the whole work).
    """
    if name == "gatys":
        from .gatys.model import GatysStylizer

        return GatysStylizer.load(encoder_weights=encoder_weights, device=device, steps=steps, progress=progress)
    if name == "style-swap-optimize":
        from .style_swap.model import StyleSwapStylizer

        return StyleSwapStylizer.load(encoder_weights=encoder_weights, device=device, optimize=True, steps=steps,
                                      progress=progress)
    if name == "style-swap-inverse":
        from .style_swap.model import INVERSE_WEIGHTS, StyleSwapStylizer
        from .weights import resolve

        if inverse_weights is None:
            try:
                resolve(INVERSE_WEIGHTS)
            except StylekitError as exc:
                raise StylekitError(
                    f"no style-swap inverse network is available ({exc}); pass one with --inverse-weights"
                ) from None
        return StyleSwapStylizer.load(weights=inverse_weights, encoder_weights=encoder_weights, device=device)
    if name == "adain":
        from .adain.model import AdaINStylizer

        return AdaINStylizer.load(weights=adain_weights, encoder_weights=encoder_weights, device=device, cache_size=0)
    raise StylekitError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info(devices) -> dict:
    info = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "stylekit": __version__,
    }
    if any(d.type == "cuda" for d in devices):
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def bench_devices(names) -> list[torch.device]:
    """``auto`` is the CPU, and the GPU too when CUDA is available."""
    devices = []
    for name in names:
        if name == "auto":
            found = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
        else:
            found = [resolve_device(name)]
        devices += [d for d in found if d not in devices]
    return devices


def synthetic_image(size: int, seed: int) -> torch.Tensor:
    """A seeded (3, S, S) image with structure at several scales (smooth blobs and noise)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, size // 32), max(2, size // 32), generator=g)
    smooth = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0]
    return (0.8 * smooth + 0.2 * torch.rand(3, size, size, generator=g)).clamp(0, 1)


def bench_image(path, size: int, seed: int) -> torch.Tensor:
    """(1, 3, S, S): the centre square of ``path`` resized to S, or a synthetic image."""
    if path is None:
        return synthetic_image(size, seed)[None]
    from .pipeline import fit, resize, to_tensor_image

    t = fit(to_tensor_image(path, str(path))[0], size, crop=True)
    return resize(t, (size, size))[None]  # fit leaves S x S; exact in any case


def time_method(model, content: torch.Tensor, style: torch.Tensor, repeats: int, warmup: int) -> dict:
    """Both columns for one stylizer on one (content, style) pair on its device."""
    def with_encoding():
        model.clear_cache()
        return model.transfer(content, [style])  # one style, no masks, alpha 1

    prepared = model.prepare_style(style)

    def without_encoding():
        model.clear_cache()
        return model.transfer_prepared(content, [prepared])

    runs = {mode: [] for mode in MODES}
    order = [("with_style_encoding", with_encoding), ("without_style_encoding", without_encoding)]
    for i in range(warmup + repeats):
        for mode, fn in order if i % 2 == 0 else order[::-1]:  # alternate: neither column always goes first
            seconds, _ = time_call(fn, model.device)
            if i >= warmup:
                runs[mode].append(seconds)
    return {mode: {"median": statistics.median(r), "runs": r} for mode, r in runs.items()}


def run_bench(
    *,
    sizes=DEFAULT_SIZES,
    methods=METHODS,
    devices=("auto",),
    steps: int = DEFAULT_STEPS,
    repeats: int = 3,
    warmup: int = 1,
    adain_weights=None,
    inverse_weights=None,
    encoder_weights=None,
    content=None,
    style=None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Time ``methods`` at ``sizes`` on ``devices``; returns the numbers, the
    machine and the settings (what :func:`format_table` prints).

    ``content`` / ``style``: image files (centre square, resized), else seeded
    synthetic images. ``threads``: torch's CPU threads for the run (default:
    torch's own choice). A method that cannot be loaded (missing weights, ...)
    gets ``{"available": False, "reason": ...}`` instead of times.
    """
    if threads is not None:
        check_int(threads, "threads", 1)
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        return _run_bench(sizes, methods, devices, steps, repeats, warmup, adain_weights, inverse_weights,
                          encoder_weights, content, style, progress)
    finally:
        torch.set_num_threads(before)


def _run_bench(sizes, methods, devices, steps, repeats, warmup, adain_weights, inverse_weights, encoder_weights,
               content, style, progress) -> dict:
    from .images import MIN_SIDE

    sizes = [check_int(s, "size", MIN_SIDE) for s in sizes]
    if not sizes:
        raise StylekitError("give at least one size")
    methods = list(dict.fromkeys(methods))
    for m in methods:
        if m not in METHODS:
            raise StylekitError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    check_int(steps, "steps", 1)
    check_int(repeats, "repeats", 1)
    check_int(warmup, "warmup", 0)
    for path, what in ((content, "content"), (style, "style")):
        if path is not None and not Path(path).is_file():
            raise StylekitError(f"{what} image not found: {path}")
    devices = bench_devices(devices)
    say = progress or (lambda message: None)

    results = []
    for device in devices:
        for name in methods:
            label = method_label(name, steps)
            try:
                model = load_method(name, device=device, steps=steps, adain_weights=adain_weights,
                                    inverse_weights=inverse_weights, encoder_weights=encoder_weights)
            except StylekitError as exc:
                say(f"{label} on {device.type}: n/a ({exc})")
                for size in sizes:
                    results.append({"device": device.type, "method": name, "label": label, "size": size,
                                    "available": False, "reason": str(exc)})
                continue
            for size in sizes:
                c = bench_image(content, size, seed=1).to(device)
                s = bench_image(style, size, seed=2).to(device)
                times = time_method(model, c, s, repeats, warmup)
                say(f"{label} on {device.type} at {size} px: "
                    f"{times['without_style_encoding']['median']:.4g} s without style encoding, "
                    f"{times['with_style_encoding']['median']:.4g} s with")
                results.append({"device": device.type, "method": name, "label": label, "size": size,
                                "available": True, **times})
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()

    for row in results:  # ratio of each method to AdaIN, same device, size and column
        adain = next((r for r in results if r["method"] == "adain" and r["available"]
                      and r["device"] == row["device"] and r["size"] == row["size"]), None)
        if row["available"] and adain is not None:
            row["ratio_to_adain"] = {mode: row[mode]["median"] / adain[mode]["median"] for mode in MODES}

    from .gatys.model import default_layers
    from .weights import encoder_depth

    try:
        content_layer, style_layers = default_layers(encoder_depth(encoder_weights))
        gatys_layers = {"content": content_layer, "style": list(style_layers)}
    except StylekitError:
        gatys_layers = None
    return {
        "machine": machine_info(devices),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": {
            "sizes": sizes, "methods": methods, "devices": [d.type for d in devices], "steps": steps,
            "optimizer": "lbfgs", "repeats": repeats, "warmup": warmup, "statistic": "median",
            "content": str(content) if content is not None else "synthetic (seeded)",
            "style": str(style) if style is not None else "synthetic (seeded)",
            "adain_weights": str(adain_weights) if adain_weights is not None else "shipped decoder",
            "adain_speed_settings": "AdaINStylizer defaults (precision auto: bf16 autocast where native; "
                                    "channels_last; inference_mode; see docs/performance.md)",
            "inverse_weights": str(inverse_weights) if inverse_weights is not None else None,
            "gatys_layers": gatys_layers,
        },
        "timed": {
            "with_style_encoding": "transfer(content, [style]): content and style encoding, the method, the "
                                   "decoder or the image optimisation; tensors already on the device",
            "without_style_encoding": "transfer_prepared(content, [prepare_style(style)]) with the style "
                                      "prepared beforehand (AdaIN: feature mean/std; style swap: relu3_1 "
                                      "features; Gatys: Gram matrices)",
        },
        "results": results,
    }


def _seconds(x: float) -> str:
    return f"{x:#.3g}" if x < 100 else f"{x:.0f}"


def _ratio(x: float) -> str:
    return f"{x:#.3g}x" if x < 100 else f"{x:.0f}x"


def format_table(result: dict) -> str:
    """The tables for a terminal: seconds per image, then each method's ratio to AdaIN."""
    settings, machine = result["settings"], result["machine"]
    sizes = settings["sizes"]
    label_width = max([len(r["label"]) for r in result["results"]] + [24])
    cell = 11
    lines = [
        f"seconds per image (median of {settings['repeats']} after {settings['warmup']} warm-up), "
        f"content and style both S x S; 'without' = style encoding precomputed",
        f"machine: {machine['cpu']}, {machine['torch_threads']} torch thread{'s' if machine['torch_threads'] != 1 else ''}, "
        f"torch {machine['torch']}"
        + (f"; GPU: {machine['gpu']}" if "gpu" in machine else ""),
    ]
    optimising = [m for m in ("gatys", "style-swap-optimize") if m in settings["methods"]]
    if optimising:
        names = " and ".join({"gatys": "Gatys", "style-swap-optimize": "style-swap optimisation"}[m] for m in optimising)
        lines.append(f"{names}: {settings['steps']} L-BFGS steps from the content image")
    if settings.get("gatys_layers") and "gatys" in settings["methods"]:
        g = settings["gatys_layers"]
        lines.append(f"Gatys layers: content {g['content']}, style {', '.join(g['style'])} (as deep as the encoder weights reach)")
    for device in settings["devices"]:
        rows = [r for r in result["results"] if r["device"] == device]
        for title, cell_of in (
            (f"[{device}] seconds per image", lambda r, mode: _seconds(r[mode]["median"])),
            (f"[{device}] times AdaIN's time", lambda r, mode: _ratio(r["ratio_to_adain"][mode]) if "ratio_to_adain" in r else "n/a"),
        ):
            lines.append("")
            head1 = f"{title:<{label_width}}" + "".join(f"  {f'{s} px':^{2 * cell + 1}}" for s in sizes)
            head2 = f"{'':<{label_width}}" + "".join(f"  {'without':>{cell}} {'with':>{cell}}" for _ in sizes)
            lines += [head1, head2]
            for name in settings["methods"]:
                by_size = {r["size"]: r for r in rows if r["method"] == name}
                if not by_size:
                    continue
                first = next(iter(by_size.values()))
                line = f"{first['label']:<{label_width}}"
                if not first["available"]:
                    lines.append(line + f"  n/a ({first['reason']})")
                    continue
                for s in sizes:
                    r = by_size[s]
                    line += f"  {cell_of(r, 'without_style_encoding'):>{cell}} {cell_of(r, 'with_style_encoding'):>{cell}}"
                lines.append(line)
    return "\n".join(lines)
