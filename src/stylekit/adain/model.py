"""AdaIN stylization: ``g((1 - alpha) f(c) + alpha AdaIN(f(c), f(s)))`` with the
paper's controls (sec. 7.1): style interpolation, spatial masks, and, through
:class:`stylekit.pipeline.Stylizer`, colour preservation and sizes. With the
shipped decoder a learned covariance transform (:mod:`stylekit.adain.transform`)
takes AdaIN's place by default: AdaIN plus a correction of how the channels
vary together, with every control the same.

The encoder and decoder run in a :class:`stylekit.networks.FeedForwardNetworks`
(inference mode, channels_last, bf16 autocast where the hardware runs bf16
natively, tiles above ``tile_pixels`` pixels), set by one
:class:`stylekit.networks.SpeedSettings`.

>>> import torch, stylekit
>>> model = stylekit.load("adain", device="cpu")
>>> content, style = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 48, 48)
>>> model.transfer(content, [style]).shape
torch.Size([1, 3, 64, 64])
>>> model.settings()["inference_mode"]
True
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import torch
import torch.nn.functional as F

from ..decoder import MirrorDecoder, load_decoder
from ..devices import resolve_device
from ..encoder import VGGEncoder
from ..errors import StylekitError
from ..functional import blend_regions, masked_mean_std
from ..networks import FeedForwardNetworks, SpeedSettings, speed_settings
from ..ops import mean_std_fast
from ..pipeline import Stylizer, equal_weights, pad_to_multiple
from ..weights import load_encoder, resolve
from .transform import CovarianceTransform, load_transform

DEFAULT_DECODER = "adain-decoder-relu3_1"
#: The covariance transform trained in front of the shipped decoder (used with it by default).
DEFAULT_TRANSFORM = "adain-transform-relu3_1"


def transform_file(weights=None, transform_weights=None):
    """The covariance transform's file AdaIN runs with, or None for plain AdaIN:
    ``transform_weights`` when it names a file (False or ``"none"``: plain
    AdaIN); when it is None, the shipped transform with the shipped decoder
    (``weights`` None: it was trained in front of that decoder) and plain AdaIN
    with a decoder of one's own."""
    if transform_weights is False or transform_weights == "none":
        return None
    if transform_weights is None:
        return resolve(DEFAULT_TRANSFORM) if weights is None else None
    return transform_weights


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
        with self.lock:
            if key is not None and key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
            return None

    def put(self, key, value):
        if key is None or self.capacity <= 0:
            return
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.capacity:
                self.items.popitem(last=False)


class AdaINStylizer(Stylizer):
    method = "adain"
    default_stroke_scale = 1.0

    def __init__(
        self,
        encoder: VGGEncoder,
        decoder: MirrorDecoder,
        device: torch.device | str = "cpu",
        eps: float = 1e-5,
        precision: str | None = None,
        cache_size: int = 8,
        *,
        transform: CovarianceTransform | None = None,
        speed: SpeedSettings | None = None,
        **speed_options,
    ):
        """``eps``: added to the variance in the AdaIN statistics. ``cache_size``
        encoder outputs are cached (0: no cache, no hashing). ``transform``: a
        trained :class:`stylekit.adain.transform.CovarianceTransform` in place
        of plain AdaIN (None: AdaIN). ``speed`` (or its fields as keywords,
        ``precision`` among them) says how the networks run:
        :class:`stylekit.networks.SpeedSettings`."""
        if precision is not None:
            speed_options["precision"] = precision
        networks = FeedForwardNetworks(encoder, decoder, device, speed_settings(speed, **speed_options))
        self._attach(networks, eps, cache_size, transform)

    def _attach(self, networks: FeedForwardNetworks, eps: float, cache_size: int,
                transform: CovarianceTransform | None = None) -> None:
        """Take ``networks`` as this stylizer's encoder and decoder (what every
        constructor ends with: the ONNX backend brings networks of its own)."""
        self.networks = networks
        self.device = networks.device
        self.eps = eps
        self._cache = _LRU(cache_size)
        if transform is not None:
            if transform.channels != networks.decoder.in_channels:
                raise StylekitError(f"the transform works on {transform.channels} channels, the decoder "
                                    f"on {networks.decoder.in_channels}")
            transform = transform.to(self.device).eval().requires_grad_(False)
        self.transform = transform
        if transform is not None and transform.detail_share is not None:
            self.detail_share = transform.detail_share

    @classmethod
    def load(
        cls, weights=None, encoder_weights=None, device="auto", precision: str = "auto", cache_size: int = 8,
        transform_weights=None, **options
    ) -> "AdaINStylizer":
        """The shipped decoder (or ``weights``) and the verified VGG-19 encoder.
        ``transform_weights``: a trained covariance transform
        (:mod:`stylekit.adain.transform`) in place of plain AdaIN; None: the
        shipped transform with the shipped decoder (it was trained for that
        decoder), plain AdaIN with a decoder of your own; False or ``"none"``:
        plain AdaIN (:func:`transform_file`).
        ``cache_size`` encoder outputs are cached (0: no cache, no hashing);
        ``options``: ``speed=`` or the fields of :class:`stylekit.networks.SpeedSettings`."""
        device = resolve_device(device)
        decoder = load_decoder(weights if weights is not None else resolve(DEFAULT_DECODER))
        encoder = load_encoder(encoder_weights, last_layer=decoder.from_layer)
        path = transform_file(weights, transform_weights)
        transform = None if path is None else load_transform(path)
        return cls(encoder, decoder, device, precision=precision, cache_size=cache_size, transform=transform, **options)

    # --- what the networks know ---

    @property
    def encoder(self) -> VGGEncoder:
        return self.networks.encoder

    @property
    def decoder(self) -> MirrorDecoder:
        return self.networks.decoder

    @property
    def multiple(self) -> int:
        """Content sides are padded to a multiple of this (the encoder's pooling factor)."""
        return self.networks.multiple

    @property
    def dtype(self) -> torch.dtype:
        """The encoder's autocast dtype (``precision`` resolved on this device)."""
        return self.networks.dtype

    def settings(self) -> dict:
        """The speed settings in force (for benchmarks and logs)."""
        return self.networks.settings()

    def decode(self, features: torch.Tensor, size_hw) -> torch.Tensor:
        """The decoder's float32 image of ``features`` (unclamped), cropped to ``size_hw``."""
        return self.networks.decode(features, size_hw)

    def clear_cache(self) -> None:
        with self._cache.lock:
            self._cache.items.clear()

    # --- the method ---

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """relu-layer features of a (1, 3, H, W) image, padded to the pool multiple; cached."""
        key = _LRU.key(image, "features") if self._cache.capacity > 0 else None
        cached = self._cache.get(key)
        if cached is None:
            cached = self.networks.encode_image(pad_to_multiple(image, self.multiple))
            self._cache.put(key, cached)
        return cached

    def style_stats(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Channel mean and std of a style image's features (what AdaIN needs of a style)."""
        key = _LRU.key(style, "stats") if self._cache.capacity > 0 else None
        cached = self._cache.get(key)
        if cached is None:
            with self.networks.grad_mode():
                cached = mean_std_fast(self.networks.encode_image(style), self.eps)
            self._cache.put(key, cached)
        return cached

    def target_features(self, content_feat, style_stats, weights=None, masks=None, alpha: float = 1.0) -> torch.Tensor:
        """The decoder's input for these controls (exposed for tests and evaluation):
        ``style_stats`` one :meth:`style_stats` pair per style, ``weights`` their
        blend (default: equal), ``masks`` their regions (1, 1, H, W) instead.

        Without masks every control is a per-channel affine map of the content
        features, ``AdaIN_i(x) = x * (std_i / c_std) + (mean_i - c_mean * std_i / c_std)``,
        and so is their weighted sum and the alpha blend: the scale and shift
        are folded first and the (large) feature map is read once.
        """
        weights = equal_weights(weights, len(style_stats))
        if self.transform is not None:
            return self._transformed(content_feat, style_stats, weights, masks, alpha)
        if masks is None:
            c_mean, c_std = mean_std_fast(content_feat, self.eps)
            scale = shift = 0
            for w, (s_mean, s_std) in zip(weights, style_stats):
                ratio = s_std / c_std
                scale = scale + w * ratio
                shift = shift + w * (s_mean - c_mean * ratio)
            scale = alpha * scale + (1 - alpha)
            shift = alpha * shift
            return torch.addcmul(shift, content_feat, scale)
        feature_masks = self._feature_masks(masks, content_feat.shape[-2:])
        stylized = []
        for mask, (s_mean, s_std) in zip(feature_masks, style_stats):
            c_mean, c_std = masked_mean_std(content_feat, mask, self.eps)
            stylized.append(s_std * (content_feat - c_mean) / c_std + s_mean)
        t = blend_regions(content_feat, stylized, feature_masks)
        return alpha * t + (1 - alpha) * content_feat

    def _feature_masks(self, masks, size_hw) -> list[torch.Tensor]:
        """Each mask at feature resolution; a region that vanishes there is an error."""
        feature_masks = []
        for mask in masks:
            m = F.interpolate(pad_to_multiple(mask, self.multiple), size=size_hw, mode="area")
            if float(m.sum()) <= 0:
                raise StylekitError("a mask's region vanishes at feature resolution; use a larger region")
            feature_masks.append(m)
        return feature_masks

    def _transformed(self, content_feat, codes, weights, masks, alpha) -> torch.Tensor:
        """:meth:`target_features` through the learned transform: the styles' targets
        blended by ``weights``, or each in its mask's region (content statistics
        of that region)."""
        x = content_feat.float()
        if masks is None:
            t = sum(w * self.transform(x, code) for w, code in zip(weights, codes))
        else:
            feature_masks = self._feature_masks(masks, x.shape[-2:])
            t = blend_regions(x, [self.transform(x, code, m) for m, code in zip(feature_masks, codes)], feature_masks)
        return (alpha * t + (1 - alpha) * x).to(content_feat.dtype)

    def style_code(self, style: torch.Tensor):
        """A style's summary for the learned transform
        (:meth:`stylekit.adain.transform.CovarianceTransform.style_code`); cached."""
        key = _LRU.key(style, "code") if self._cache.capacity > 0 else None
        cached = self._cache.get(key)
        if cached is None:
            with self.networks.grad_mode():
                cached = self.transform.style_code(self.networks.encode_image(style).float())
            self._cache.put(key, cached)
        return cached

    def prepare_style(self, style: torch.Tensor):
        """A style's encoding: its feature statistics for AdaIN (:meth:`style_stats`),
        its :meth:`style_code` with a learned transform."""
        return self.style_stats(style) if self.transform is None else self.style_code(style)

    def transfer_prepared(self, content, prepared, weights=None, masks=None, alpha: float = 1.0) -> torch.Tensor:
        weights = equal_weights(weights, len(prepared))
        with self.networks.grad_mode():
            content_feat = self.encode(content)
            target = self.target_features(content_feat, prepared, weights, masks, alpha)
            return self.decode(target, content.shape[-2:])
