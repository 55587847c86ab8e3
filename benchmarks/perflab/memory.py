"""Peak resident memory of each method at several sizes, each run in a fresh
process (:mod:`.memory_child`), minus the idle process (torch imported,
models loaded)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .common import as_str

METHODS = ("adain", "style-swap-inverse", "style-swap-optimize", "gatys")
DEFAULT_SIZES = (512, 1024, 2048)
CHILD = Path(__file__).with_name("memory_child.py")


def run_child(args: dict, timeout: int) -> dict:
    """One :mod:`.memory_child` run: its numbers, or why there are none."""
    try:
        proc = subprocess.run([sys.executable, str(CHILD), json.dumps(args)], capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"available": False, "reason": f"took longer than {timeout} s"}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"available": False, "reason": f"exit {proc.returncode}: {tail[0]}"}
    got = json.loads(lines[-1])
    base = got["idle_rss_kib"] if got["hwm_reset"] else got["idle_hwm_kib"]
    return {"available": True, **got, "idle_mib": got["idle_rss_kib"] / 1024, "peak_mib": got["peak_hwm_kib"] / 1024,
            "above_idle_mib": max(0, got["peak_hwm_kib"] - base) / 1024}


def memory_section(methods=METHODS, sizes=DEFAULT_SIZES, *, steps: int = 2, style_size: int = 512,
                   threads: int | None = None, adain_extra_sizes=(4096,), untiled_sizes=(2048,), adain_weights=None,
                   encoder_weights=None, inverse_weights=None, timeout: int = 3600, say=print) -> dict:
    """Peak resident memory per method and size, each in a fresh process."""
    jobs = [(m, s) for m in methods for s in sizes]
    if "adain" in methods:
        jobs += [("adain", s) for s in adain_extra_sizes if s not in sizes]
        jobs += [("adain-untiled", s) for s in untiled_sizes]
    rows = []
    for method, size in jobs:
        args = dict(method=method, size=size, style_size=style_size, steps=steps, threads=threads,
                    adain_weights=as_str(adain_weights), encoder_weights=as_str(encoder_weights),
                    inverse_weights=as_str(inverse_weights))
        row = {"method": method, "size": size, "style_size": style_size, **run_child(args, timeout)}
        rows.append(row)
        if row["available"]:
            say(f"  {method} {size}px: peak {row['peak_mib']:.0f} MiB, {row['above_idle_mib']:.0f} MiB above idle "
                f"({row['seconds']:.3g} s)")
        else:
            say(f"  {method} {size}px: n/a ({row['reason']})")
    return {"rows": rows, "steps": steps, "style_size": style_size,
            "measured": "VmHWM of a fresh process after one stylization (transfer of S x S content, style "
                        f"{style_size} px), minus the resident size once torch was imported and the models loaded "
                        "(VmHWM reset there through /proc/self/clear_refs where allowed)"}
