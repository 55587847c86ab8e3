"""An encoder and a decoder run for inference: the runner AdaIN (its decoder)
and feed-forward style swap (its inverse network) both hold
(docs/performance.md measures each setting).

By default the networks run under ``torch.inference_mode`` on channels_last
tensors, take the fused CPU path of :mod:`stylekit.ops`, and images above
``tile_pixels`` pixels are encoded and decoded in overlapping tiles whose
interiors are exactly the whole image's, so memory stays bounded.
:class:`SpeedSettings` holds these choices; ``SpeedSettings(precision="fp32",
channels_last=False, inference_mode=False, fused=False)`` is the reference path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .checks import check_choice, check_int, check_optional_int
from .decoder import MirrorDecoder
from .devices import autocast, resolve_device, resolve_precision
from .encoder import LAYER_INDEX, VGG19_LAYERS, VGGEncoder, pools_before
from .errors import StylekitError
from .ops import fast_inference, fast_padding, tune_allocator

PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: Images with more pixels than this are encoded and decoded in tiles: from
#: about 1450 x 1450 up (2048 x 2048 whole measured over 2 GiB above the idle
#: process, in 1024 px tiles about half; below the threshold whole images are
#: faster and fit easily).
TILE_PIXELS = 2**21
#: Side of a tile's interior, in pixels (a multiple of every pool multiple).
TILE_SIZE = 1024


def encoder_margin(layer: str) -> int:
    """Pixels of real image a tile needs beyond its interior so that the
    interior's features at ``layer`` are exactly the whole image's. A cut edge
    is reflection-padded where the whole image has real neighbours: each 3x3
    conv spreads that error one position further, each max-pool halves the
    reach (rounding up, windows aligned to the tile); the result in input
    pixels. relu3_1: 12."""
    wrong, scale = 0, 1
    for l in VGG19_LAYERS[: LAYER_INDEX[layer] + 1]:
        if l.kind == "conv":
            wrong += 1
        elif l.kind == "pool":
            wrong, scale = -(-wrong // 2), scale * 2
    return wrong * scale


def decoder_margin(decoder: MirrorDecoder) -> int:
    """Feature positions a decoder tile needs beyond its interior (as
    :func:`encoder_margin`: each conv spreads a cut edge's error one position
    at its resolution, each upsampling doubles the reach); relu3_1: 3."""
    wrong = 0
    for kind, _ in decoder.plan:
        if kind == "conv":
            wrong += 1
        elif kind == "up":
            wrong *= 2
    up = 2 ** decoder.num_upsamplings
    return -(-wrong // up)


def _round_up(x: float, multiple: int) -> int:
    return int(-(-x // multiple) * multiple)


@dataclass(frozen=True)
class SpeedSettings:
    """How the encoder and decoder run. Every choice keeps the result within
    rounding of the reference path; docs/performance.md measures each one.

    ``precision``: ``auto`` (bf16 autocast where the CPU or GPU runs it
    natively, else fp32), ``fp32`` (the reference), ``bf16`` or ``fp16``.
    ``decoder_precision``: the decoder's own precision, when it differs from
    the encoder's (None: ``precision`` for both). ``channels_last``: run the
    networks on NHWC tensors (the weights are not touched).
    ``inference_mode``: ``torch.inference_mode`` instead of ``torch.no_grad``
    (outputs are then inference tensors: they cannot join an autograd graph).
    ``fused``: on the CPU with channels_last and inference mode, the encoder
    and decoder take their fused inference path (:func:`stylekit.ops.use_fast_path`:
    conv + ReLU fused, weights cast once; the same arithmetic as the modules
    under autocast). ``fast_pad``: reflection padding by
    :func:`stylekit.ops.reflect_pad1` (one pass in the tensor's layout)
    rather than torch's ``F.pad``. ``tune_malloc``: on the CPU, let glibc keep
    large freed blocks for reuse (:func:`stylekit.ops.tune_allocator`;
    process-wide, so off by default in the library - the ``stylekit`` command
    turns it on for its own process). ``tile_pixels``: images with more
    pixels are processed in ``tile_size`` tiles (None: never).

    >>> SpeedSettings().precision, SpeedSettings(precision="fp32").fused
    ('auto', True)
    """

    precision: str = "auto"
    decoder_precision: str | None = None
    channels_last: bool = True
    inference_mode: bool = True
    fused: bool = True
    fast_pad: bool = True
    tune_malloc: bool = False
    tile_pixels: int | None = TILE_PIXELS
    tile_size: int = TILE_SIZE

    def __post_init__(self):
        check_choice(self.precision, "precision", PRECISIONS)
        if self.decoder_precision is not None:
            check_choice(self.decoder_precision, "decoder_precision", PRECISIONS)
        check_optional_int(self.tile_pixels, "tile_pixels", 1)
        check_int(self.tile_size, "tile_size", 1)


#: The reference path: what every faster setting is compared with.
REFERENCE_SPEED = SpeedSettings(precision="fp32", channels_last=False, inference_mode=False, fused=False)
SPEED_FIELDS = tuple(f.name for f in dataclasses.fields(SpeedSettings))


def speed_settings(speed: SpeedSettings | None = None, **changes) -> SpeedSettings:
    """``speed`` (default: :class:`SpeedSettings`'s defaults) with ``changes``
    applied; an unknown setting is a :class:`StylekitError`."""
    unknown = sorted(set(changes) - set(SPEED_FIELDS))
    if unknown:
        raise StylekitError(f"unknown speed setting {unknown[0]!r}; known: {', '.join(SPEED_FIELDS)}")
    return dataclasses.replace(speed or SpeedSettings(), **changes)


class FeedForwardNetworks:
    """``encoder`` up to ``decoder.from_layer`` (or ``layer`` when there is no
    decoder: encoding only) and ``decoder``, run as ``speed`` says
    (:class:`SpeedSettings`)."""

    def __init__(
        self,
        encoder: VGGEncoder,
        decoder: MirrorDecoder | None,
        device: torch.device | str = "cpu",
        speed: SpeedSettings | None = None,
        *,
        layer: str | None = None,
    ):
        device = resolve_device(device)
        if decoder is None and layer is None:
            raise StylekitError("give a decoder, or the layer to encode to")
        layer = decoder.from_layer if decoder is not None else layer
        if LAYER_INDEX[layer] > LAYER_INDEX[encoder.last_layer]:
            raise StylekitError(f"the decoder starts at {layer}, deeper than the encoder ({encoder.last_layer})")
        self.encoder = encoder.to(device).eval()
        self.decoder = decoder.to(device).eval() if decoder is not None else None
        self._configure(device, layer, speed or SpeedSettings())

    def _configure(self, device: torch.device, layer: str, speed: SpeedSettings) -> None:
        """What follows from the device, the layer and the settings (``self.decoder``
        already set: its architecture gives the decoder's tile margin)."""
        self.device, self.layer, self.speed = device, layer, speed
        self.precision = speed.precision
        self.dtype = resolve_precision(device, speed.precision)
        self.decoder_dtype = self.dtype if speed.decoder_precision is None else resolve_precision(device, speed.decoder_precision)
        self.multiple = 2 ** pools_before(layer)
        self.channels_last = speed.channels_last
        self.inference_mode = speed.inference_mode
        if speed.tile_size < self.multiple:
            raise StylekitError(f"tile_size must be an integer >= {self.multiple}, got {speed.tile_size!r}")
        self.tile_pixels = speed.tile_pixels
        self.tile_size = _round_up(speed.tile_size, self.multiple)
        # margins that make a tile's interior exactly what the whole image gives
        self.encode_margin = _round_up(encoder_margin(layer), self.multiple)
        self.decode_margin = decoder_margin(self.decoder) if self.decoder is not None else None
        self.tune_malloc = speed.tune_malloc and device.type == "cpu"
        if self.tune_malloc:
            tune_allocator()
        self.fused = speed.fused and device.type == "cpu" and self.channels_last and self.inference_mode

    def settings(self) -> dict:
        """The speed settings in force (for benchmarks and logs)."""
        settings = {
            "precision": self.precision, "autocast_dtype": str(self.dtype).replace("torch.", ""),
            "channels_last": self.channels_last, "inference_mode": self.inference_mode,
            "tile_pixels": self.tile_pixels, "tile_size": self.tile_size,
            "tune_malloc": self.tune_malloc, "fused": self.fused, "fast_pad": self.speed.fast_pad,
        }
        if self.decoder_dtype != self.dtype:
            settings["decoder_autocast_dtype"] = str(self.decoder_dtype).replace("torch.", "")
        return settings

    def grad_mode(self):
        """The context the networks run in: ``torch.inference_mode`` or ``torch.no_grad``."""
        return torch.inference_mode() if self.inference_mode else torch.no_grad()

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    # --- the two networks: the only places they run (the ONNX backend overrides these) ---

    def _run_encoder(self, image: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) image -> float32 features at ``self.layer``."""
        with autocast(self.device, self.dtype), fast_inference(self.fused), fast_padding(self.speed.fast_pad):
            return self.encoder.encode(self._layout(image), self.layer).float()

    def _run_decoder(self, features: torch.Tensor) -> torch.Tensor:
        """Features -> float32 (1, 3, H, W) image, unclamped."""
        with autocast(self.device, self.decoder_dtype), fast_inference(self.fused), fast_padding(self.speed.fast_pad):
            return self.decoder(self._layout(features)).to(torch.float32, memory_format=torch.contiguous_format)

    # --- tiling ---

    def tiled(self, height: int, width: int) -> bool:
        """Whether an image of this size is processed in tiles."""
        return self.tile_pixels is not None and height * width > self.tile_pixels

    def _tiles(self, height: int, width: int, size: int):
        """(y0, y1, x0, x1) interiors covering the grid, in steps of ``size``."""
        for y0 in range(0, height, size):
            for x0 in range(0, width, size):
                yield y0, min(y0 + size, height), x0, min(x0 + size, width)

    def _encode_tiled(self, image: torch.Tensor) -> torch.Tensor:
        """The encoder on overlapping tiles: each tile's interior starts at a
        multiple of the pool factor and is encoded with ``encode_margin`` pixels
        of real image around it (the encoder's receptive radius, rounded up), so
        the interior's features are those of the whole image; only interiors are
        kept. Any H x W (the last tiles may be partial)."""
        m, margin = self.multiple, self.encode_margin
        h, w = image.shape[-2:]
        out = None
        for y0, y1, x0, x1 in self._tiles(h, w, self.tile_size):
            iy0, ix0 = max(0, y0 - margin), max(0, x0 - margin)
            iy1, ix1 = min(h, y1 + margin), min(w, x1 + margin)
            f = self._run_encoder(image[..., iy0:iy1, ix0:ix1])
            if out is None:
                out = torch.empty((1, f.shape[1], -(-h // m), -(-w // m)), dtype=f.dtype, device=f.device,
                                  memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
            fy, fx = (y0 - iy0) // m, (x0 - ix0) // m
            fh, fw = -(-(y1 - y0) // m), -(-(x1 - x0) // m)
            out[..., y0 // m : y0 // m + fh, x0 // m : x0 // m + fw] = f[..., fy : fy + fh, fx : fx + fw]
            del f
        return out

    def _decode_tiled(self, features: torch.Tensor) -> torch.Tensor:
        """The decoder on overlapping tiles of the feature map, each with
        ``decode_margin`` feature positions around it (its receptive radius,
        rounded up); the interiors are exactly the whole map's output."""
        up = 2 ** self.decoder.num_upsamplings
        margin = self.decode_margin
        h, w = features.shape[-2:]
        out = None
        for y0, y1, x0, x1 in self._tiles(h, w, max(1, self.tile_size // up)):
            iy0, ix0 = max(0, y0 - margin), max(0, x0 - margin)
            iy1, ix1 = min(h, y1 + margin), min(w, x1 + margin)
            img = self._run_decoder(features[..., iy0:iy1, ix0:ix1])
            if out is None:
                out = img.new_empty((1, img.shape[1], h * up, w * up))
            out[..., y0 * up : y1 * up, x0 * up : x1 * up] = \
                img[..., (y0 - iy0) * up : (y1 - iy0) * up, (x0 - ix0) * up : (x1 - ix0) * up]
            del img
        return out

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Features at ``self.layer`` of a (1, 3, H, W) image of any size, in tiles
        above ``tile_pixels`` (no cache)."""
        with self.grad_mode():
            h, w = image.shape[-2:]
            return self._encode_tiled(image) if self.tiled(h, w) else self._run_encoder(image)

    def decode(self, features: torch.Tensor, size_hw) -> torch.Tensor:
        """The decoder's float32 image of ``features`` (unclamped), cropped to ``size_hw``."""
        if self.decoder is None:
            raise StylekitError("these networks have no decoder (encoding only)")
        with self.grad_mode():
            up = 2 ** self.decoder.num_upsamplings
            h, w = features.shape[-2] * up, features.shape[-1] * up
            out = self._decode_tiled(features) if self.tiled(h, w) else self._run_decoder(features)
        return out[..., : size_hw[0], : size_hw[1]]
