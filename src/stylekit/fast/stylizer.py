"""``stylekit.load("fast")``: the compact network as a stylizer, with every
control of :class:`stylekit.pipeline.Stylizer`.

A style is prepared once (its VGG statistics at ``style_size`` px, turned
into modulation parameters at each alpha, and its mean colour); the content
never meets VGG. Several styles blend their modulation parameters by weight
(as AdaIN blends its affine maps); masks give each region its style's
parameters. With ``mean_colour`` (the default) the output's mean RGB is then
moved ``alpha`` of the way to the style's (:func:`~stylekit.color.mean_colour_shift`;
a blend's weighted mean, each masked region its own style's).
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F

from ..color import mean_colour_shift
from ..devices import autocast, resolve_device, resolve_precision
from ..encoder import VGGEncoder
from ..errors import StylekitError
from ..pipeline import Stylizer, equal_weights, pad_to_multiple
from ..weights import load_encoder, resolve
from .model import STYLE_LAYERS, FastNet, FastNetConfig, fit_style, style_vector

DEFAULT_WEIGHTS = "fast-relu3_1"


def load_fast_net(path) -> FastNet:
    """A :class:`FastNet` from a safetensors file written by its trainer."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:  # a missing, truncated or foreign file
        raise StylekitError(f"cannot read fast-network weights {path}: {exc}") from None
    if meta.get("kind") != "fast" or "model" not in meta:
        raise StylekitError(f"{path} is not a fast-network weight file (kind {meta.get('kind')!r})")
    net = FastNet(FastNetConfig(**json.loads(meta["model"])))
    missing = sorted(set(net.state_dict()) - set(state))
    if missing:
        raise StylekitError(f"{path} lacks {missing[0]}")
    net.load_state_dict({k: state[k].float() for k in net.state_dict()})
    return net.eval()


class FastStylizer(Stylizer):
    method = "fast"

    def __init__(self, net: FastNet, encoder: VGGEncoder, device="cpu", precision: str = "auto",
                 channels_last: bool = True, mean_colour: bool = True):
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.encoder = encoder.to(self.device).eval()
        self.precision = precision
        self.dtype = resolve_precision(self.device, precision)
        self.channels_last = bool(channels_last)
        self.mean_colour = bool(mean_colour)
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        self._styles: dict = {}

    @classmethod
    def load(cls, weights=None, encoder_weights=None, device="auto", precision: str = "auto", **options) -> "FastStylizer":
        net = load_fast_net(weights if weights is not None else resolve(DEFAULT_WEIGHTS))
        encoder = load_encoder(encoder_weights, last_layer="relu3_1")
        return cls(net, encoder, resolve_device(device), precision=precision, **options)

    def clear_cache(self) -> None:
        self._styles.clear()

    @torch.inference_mode()
    def prepare_style(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The style's statistics vector (1, style_dim) and mean colour (1, 3), from
        the style at ``style_size`` px (longer side; area averaging keeps the mean)."""
        style = fit_style(style, self.net.cfg.style_size).to(self.device)
        with autocast(self.device, self.dtype):
            feats = self.encoder(style, STYLE_LAYERS)
        return style_vector(feats), style.float().mean(dim=(2, 3))

    def _params(self, prepared: list[tuple[torch.Tensor, torch.Tensor]], weights: list[float], masks, alpha: float, size_hw):
        """Modulation parameters of the blend (weights) or the regions (masks) at ``alpha``."""
        per_style = [self.net.modulation(v, alpha) for v, _ in prepared]
        if masks is None:
            return [(sum(w * p[i][0] for w, p in zip(weights, per_style)),
                     sum(w * p[i][1] for w, p in zip(weights, per_style))) for i in range(len(per_style[0]))]
        shapes = self._layer_sizes(size_hw)
        params = []
        for i, hw in enumerate(shapes):
            ms = [F.interpolate(m, size=hw, mode="area") for m in masks]
            total = sum(ms).clamp_min(1e-6)
            params.append((sum(m / total * p[i][0] for m, p in zip(ms, per_style)),
                           sum(m / total * p[i][1] for m, p in zip(ms, per_style))))
        return params

    def _layer_sizes(self, size_hw) -> list[tuple[int, int]]:
        """(H, W) of each modulated layer for a padded input of ``size_hw``."""
        h, w = size_hw
        sizes = [(h // 8, w // 8)] * self.net.cfg.blocks
        return sizes + [(h // 4, w // 4), (h // 2, w // 2), (h, w)]

    @torch.inference_mode()
    def transfer_prepared(self, content, prepared, weights=None, masks=None, alpha: float = 1.0) -> torch.Tensor:
        h, w = content.shape[-2:]
        weights = equal_weights(weights, len(prepared))
        x = pad_to_multiple(content.to(self.device), FastNet.multiple)
        if masks is not None:
            masks = [pad_to_multiple(m.to(self.device), FastNet.multiple) for m in masks]
        params = self._params(prepared, weights, masks, alpha, x.shape[-2:])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.dtype):
            out = self.net.render(x, params)
        out = out[..., :h, :w].float().contiguous()  # the colour means reduce fastest over contiguous planes
        if self.mean_colour and alpha:
            out += self._colour_shift(out, [mean for _, mean in prepared], weights, masks, alpha)
        return out

    @staticmethod
    def _colour_shift(out, means, weights, masks, alpha) -> torch.Tensor:
        """The offset taking the output's mean colour ``alpha`` of the way to the styles' (the
        blend's weighted mean; with masks, each region's to its own style's)."""
        if masks is None:
            return mean_colour_shift(out, sum(w * m for w, m in zip(weights, means)), alpha)
        ms = [m[..., : out.shape[-2], : out.shape[-1]] for m in masks]
        total = sum(ms).clamp_min(1e-6)
        return sum(mean_colour_shift(out, mean, alpha, weight=m / total) for m, mean in zip(ms, means))
