"""One memory measurement in a fresh process, run by :mod:`.memory`:
``python memory_child.py JSON`` loads the method, notes the idle memory, runs
one stylization and prints the peak (VmHWM) as one JSON line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from stylekit.adain.model import DEFAULT_DECODER, AdaINStylizer
from stylekit.bench import load_method, synthetic_image
from stylekit.weights import resolve


def status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def measure(args: dict) -> dict:
    if args.get("threads"):
        torch.set_num_threads(args["threads"])
    method = args["method"]
    if method.startswith("adain"):
        tile = {} if method == "adain" else {"tile_pixels": None}
        model = AdaINStylizer.load(weights=args.get("adain_weights"), encoder_weights=args.get("encoder_weights"),
                                   device="cpu", cache_size=0, **tile)
    else:
        inverse = args.get("inverse_weights")
        if method == "style-swap-inverse" and inverse is None:
            inverse = str(resolve(DEFAULT_DECODER))  # the same architecture as an inverse network
        model = load_method(method, device="cpu", steps=args["steps"], inverse_weights=inverse,
                            encoder_weights=args.get("encoder_weights"))
    content = synthetic_image(args["size"], 1)[None]
    style = synthetic_image(args["style_size"], 2)[None]
    idle_hwm, idle_rss = status_kib("VmHWM"), status_kib("VmRSS")
    reset = False
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
        reset = True
    except OSError:
        pass
    start = time.perf_counter()
    model.transfer(content, [style])
    seconds = time.perf_counter() - start
    return {"idle_hwm_kib": idle_hwm, "idle_rss_kib": idle_rss, "peak_hwm_kib": status_kib("VmHWM"),
            "hwm_reset": reset, "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
