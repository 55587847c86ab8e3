"""The fast network in ONNX: ``stylekit export onnx --method fast --out DIR``.

Two models with dynamic sizes:

* ``style.onnx``: style image (1, 3, h, w) RGB in [0, 1] -> style vector
  (1, D) (VGG-19 statistics to relu3_1) and style mean colour (1, 3); run
  once per style, on the style resized to ``style_size`` px as
  :class:`~stylekit.fast.stylizer.FastStylizer` does;
* ``fast.onnx``: content (1, 3, H, W) with H and W multiples of 8, style
  vector (1, D), style mean colour (1, 3) and alpha (1,) -> image (1, 3, H, W),
  unclamped, its mean colour moved ``alpha`` of the way to the style's as the
  stylizer does (clamp it to [0, 1] to show it).

``stylekit_fast_onnx.json`` says the sizes and the source weights.
"""

from __future__ import annotations

import json

import torch

from ..color import mean_colour_shift
from ..files import atomic_write, output_directory
from ..onnx_backend import OPSET, _quiet, require_onnx
from ..weights import load_encoder, resolve
from .model import STYLE_LAYERS, FastNet, style_vector
from .stylizer import DEFAULT_WEIGHTS, load_fast_net

STYLE_FILE, NET_FILE, MANIFEST = "style.onnx", "fast.onnx", "stylekit_fast_onnx.json"


class _StyleGraph(torch.nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, style):
        return style_vector(self.encoder(style, STYLE_LAYERS)), style.mean(dim=(2, 3))


class _NetGraph(torch.nn.Module):
    """The network and the mean-colour step of :class:`~stylekit.fast.stylizer.FastStylizer`."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, content, style_vec, style_mean, alpha):
        image = self.net(content, style_vec, alpha)
        return image + mean_colour_shift(image, style_mean, alpha)


def export_fast_onnx(out_dir, weights=None, encoder_weights=None, opset: int = OPSET) -> dict:
    """Write ``style.onnx`` and ``fast.onnx`` into ``out_dir``; returns the manifest."""
    require_onnx()
    import onnx

    out = output_directory(out_dir)
    path = weights if weights is not None else resolve(DEFAULT_WEIGHTS)
    net = load_fast_net(path).float().eval()
    encoder = load_encoder(encoder_weights, last_layer="relu3_1").float().eval()
    style = torch.rand(1, 3, 64, 80)
    content = torch.rand(1, 3, 8 * FastNet.multiple, 12 * FastNet.multiple)
    with torch.no_grad():
        vec = style_vector(encoder(style, STYLE_LAYERS))
    alpha = torch.ones(1)
    with _quiet(), torch.no_grad():
        torch.onnx.export(_StyleGraph(encoder), (style,), str(out / STYLE_FILE), input_names=["style"],
                          output_names=["style_vector", "style_mean"], dynamic_axes={"style": {2: "height", 3: "width"}},
                          opset_version=opset, dynamo=False)
        torch.onnx.export(_NetGraph(net), (content, vec, style.mean(dim=(2, 3)), alpha), str(out / NET_FILE),
                          input_names=["content", "style_vector", "style_mean", "alpha"],
                          output_names=["image"], opset_version=opset, dynamo=False,
                          dynamic_axes={"content": {2: "height", 3: "width"}, "image": {2: "height", 3: "width"}})
    for f in (STYLE_FILE, NET_FILE):
        onnx.checker.check_model(str(out / f))
    manifest = {
        "format": "stylekit-fast-onnx", "version": 2, "opset": opset, "style": STYLE_FILE, "network": NET_FILE,
        "style_size": net.cfg.style_size, "multiple": FastNet.multiple, "style_dim": net.cfg.style_dim,
        "weights": str(path), "torch": torch.__version__, "onnx": onnx.__version__,
        "usage": "v, m = style.onnx(style resized to style_size px, longer side); "
                 "image = fast.onnx(content padded to a multiple of 8, v, m, alpha), clamped to [0, 1]",
    }
    atomic_write(out / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=2)))
    return {**manifest, "dir": str(out)}
