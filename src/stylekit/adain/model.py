"""AdaIN stylization: ``g((1 - alpha) f(c) + alpha AdaIN(f(c), f(s)))`` with the
paper's controls (sec. 7.1): style interpolation, spatial masks, and, through
:class:`stylekit.pipeline.Stylizer`, colour preservation and sizes."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch
import torch.nn.functional as F

from ..decoder import MirrorDecoder, load_decoder
from ..devices import autocast, resolve_device, resolve_precision
from ..encoder import LAYER_INDEX, VGGEncoder, pools_before
from ..errors import StylekitError
from ..functional import adain_from_stats, blend_regions, masked_mean_std, mean_std
from ..pipeline import Stylizer, pad_to_multiple
from ..weights import load_encoder, resolve

DEFAULT_DECODER = "adain-decoder-relu3_1"


class _LRU:
    """A small cache of encoder outputs keyed by image content, so repeated
    calls with the same style (an alpha slider, a video) skip the encoder."""

    def __init__(self, capacity: int = 8):
        self.capacity, self.items = capacity, OrderedDict()
        self.lock = threading.Lock()  # one stylizer may serve several threads (the web service)

    @staticmethod
    def key(t: torch.Tensor, tag: str) -> tuple:
        data = t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
        return (tag, tuple(t.shape), hashlib.blake2b(data, digest_size=16).hexdigest())

    def get(self, key):
        if key is not None and key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key, value):
        if key is None or self.capacity <= 0:
            return
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.capacity:
            self.items.popitem(last=False)


class AdaINStylizer(Stylizer):
    method = "adain"

    def __init__(
        self,
        encoder: VGGEncoder,
        decoder: MirrorDecoder,
        device: torch.device | str = "cpu",
        eps: float = 1e-5,
        precision: str = "fp32",
        cache_size: int = 8,
    ):
        self.device = resolve_device(device)
        self.layer = decoder.from_layer
        if LAYER_INDEX[self.layer] > LAYER_INDEX[encoder.last_layer]:
            raise StylekitError(f"the decoder starts at {self.layer}, deeper than the encoder ({encoder.last_layer})")
        self.encoder = encoder.to(self.device).eval()
        self.decoder = decoder.to(self.device).eval()
        self.eps = eps
        self.dtype = resolve_precision(self.device, precision)
        self.multiple = 2 ** pools_before(self.layer)
        self._cache = _LRU(cache_size)

    @classmethod
    def load(
        cls, weights=None, encoder_weights=None, device="auto", precision: str = "fp32", cache_size: int = 8
    ) -> "AdaINStylizer":
        """The shipped decoder (or ``weights``) and the verified VGG-19 encoder.
        ``cache_size`` encoder outputs are cached (0: no cache, no hashing)."""
        device = resolve_device(device)
        decoder = load_decoder(weights if weights is not None else resolve(DEFAULT_DECODER))
        encoder = load_encoder(encoder_weights, last_layer=decoder.from_layer)
        return cls(encoder, decoder, device, precision=precision, cache_size=cache_size)

    def clear_cache(self) -> None:
        with self._cache.lock:
            self._cache.items.clear()

    @torch.no_grad()
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """relu-layer features of a (1, 3, H, W) image, padded to the pool multiple; cached."""
        key = _LRU.key(image, "features") if self._cache.capacity > 0 else None
        cached = self._cache.get(key)
        if cached is None:
            with autocast(self.device, self.dtype):
                cached = self.encoder.encode(pad_to_multiple(image, self.multiple), self.layer).float()
            self._cache.put(key, cached)
        return cached

    @torch.no_grad()
    def style_stats(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Channel mean and std of a style image's features (what AdaIN needs of a style)."""
        key = _LRU.key(style, "stats") if self._cache.capacity > 0 else None
        cached = self._cache.get(key)
        if cached is None:
            with autocast(self.device, self.dtype):
                feat = self.encoder.encode(style, self.layer).float()
            cached = mean_std(feat, self.eps)
            self._cache.put(key, cached)
        return cached

    @torch.no_grad()
    def decode(self, features: torch.Tensor, size_hw) -> torch.Tensor:
        with autocast(self.device, self.dtype):
            out = self.decoder(features).float()
        return out[..., : size_hw[0], : size_hw[1]]

    def target_features(self, content_feat, style_stats, weights, masks, alpha) -> torch.Tensor:
        """The decoder's input for these controls (exposed for tests and evaluation)."""
        if masks is None:
            t = sum(w * adain_from_stats(content_feat, m, s, self.eps) for w, (m, s) in zip(weights, style_stats))
        else:
            h, w = content_feat.shape[-2:]
            feature_masks = []
            for mask in masks:
                padded = pad_to_multiple(mask, self.multiple)
                feature_masks.append(F.interpolate(padded, size=(h, w), mode="area"))
            stylized = []
            for mask, (s_mean, s_std) in zip(feature_masks, style_stats):
                if float(mask.sum()) <= 0:
                    raise StylekitError("a mask's region vanishes at feature resolution; use a larger region")
                c_mean, c_std = masked_mean_std(content_feat, mask, self.eps)
                stylized.append(s_std * (content_feat - c_mean) / c_std + s_mean)
            t = blend_regions(content_feat, stylized, feature_masks)
        return alpha * t + (1 - alpha) * content_feat

    def prepare_style(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A style's encoding for AdaIN: its feature statistics (:meth:`style_stats`)."""
        return self.style_stats(style)

    @torch.no_grad()
    def transfer_prepared(self, content, prepared, weights, masks, alpha) -> torch.Tensor:
        content_feat = self.encode(content)
        target = self.target_features(content_feat, prepared, weights, masks, alpha)
        return self.decode(target, content.shape[-2:])
