"""The "normalised" VGG-19 encoder of AdaIN / WCT, with layers addressed by name.

The network is described once, in :data:`VGG19_LAYERS`; the encoder and the
mirrored decoder (:mod:`stylekit.decoder`) are both built from that table.
Inputs are RGB images in [0, 1]; the weights' own 1x1 ``preprocess`` conv turns
them into the mean-subtracted BGR*255 the original Caffe/Torch model expects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import StylekitError
from .ops import (compute_dtype, conv2d_relu, folded_weights, max_pool2, prepared_weights, reflect_border_,
                  reflect_pad1, use_fast_path)


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str  # "conv", "relu" or "pool"
    in_channels: int = 0
    out_channels: int = 0


def _vgg19_layers() -> tuple[Layer, ...]:
    blocks = [(1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512)]
    layers, channels = [], 3
    for block, n_convs, width in blocks:
        for i in range(1, n_convs + 1):
            layers.append(Layer(f"conv{block}_{i}", "conv", channels, width))
            layers.append(Layer(f"relu{block}_{i}", "relu"))
            channels = width
        if block < 5:
            layers.append(Layer(f"pool{block}", "pool"))
    return tuple(layers)


#: Every layer of VGG-19 up to relu5_4, in order (the classifier is never used).
VGG19_LAYERS: tuple[Layer, ...] = _vgg19_layers()
LAYER_INDEX = {layer.name: i for i, layer in enumerate(VGG19_LAYERS)}
CONV_LAYERS = tuple(layer for layer in VGG19_LAYERS if layer.kind == "conv")

# Index of each conv in the nn.Sequential of the public PyTorch AdaIN port
# (naoto0804/pytorch-AdaIN, models/vgg_normalised.pth): index 0 is the 1x1
# preprocessing conv, then (pad, conv, relu) triples with a pool after each block.
_PORT_INDEX = {"preprocess": 0}


def _fill_port_index() -> None:
    index = 1
    for layer in VGG19_LAYERS:
        if layer.kind == "conv":
            _PORT_INDEX[layer.name] = index + 1  # the reflection pad sits at `index`
            index += 2
        else:
            index += 1


_fill_port_index()

#: The layers whose tensors identify the encoder weights (see stylekit.weights).
IDENTITY_LAYERS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1")


def check_layer_name(name: str) -> Layer:
    if name not in LAYER_INDEX:
        known = ", ".join(l.name for l in VGG19_LAYERS if l.kind == "relu")
        raise StylekitError(f"unknown VGG-19 layer {name!r}; known layers: {known}")
    return VGG19_LAYERS[LAYER_INDEX[name]]


def pools_before(name: str) -> int:
    """Max-pools between the image and layer ``name``: features are 2**this smaller."""
    check_layer_name(name)
    return sum(1 for l in VGG19_LAYERS[: LAYER_INDEX[name]] if l.kind == "pool")


def style_layers_for(layer: str) -> tuple[str, ...]:
    """relu1_1, relu2_1, ... up to and including the block of ``layer`` (the AdaIN paper's style layers)."""
    check_layer_name(layer)
    return tuple(l.name for l in VGG19_LAYERS[: LAYER_INDEX[layer] + 1] if l.kind == "relu" and l.name.endswith("_1"))


def deepest(names) -> str:
    names = list(names)
    for n in names:
        check_layer_name(n)
    return max(names, key=LAYER_INDEX.__getitem__)


def canonical_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map any supported key layout onto ``preprocess.*`` / ``convX_Y.*``.

    Supported: our own layout; the pytorch-AdaIN ``vgg_normalised.pth``
    (numeric ``nn.Sequential`` indices, possibly truncated); the ``encoderN``
    layout of LinearStyleTransfer / stylescene (``conv1`` = preprocess,
    ``conv2`` = conv1_1, ...).
    """
    keys = set(state)
    if "preprocess.weight" in keys:
        return dict(state)
    out: dict[str, torch.Tensor] = {}
    if any(re.fullmatch(r"\d+\.(weight|bias)", k) for k in keys):
        for name, idx in _PORT_INDEX.items():
            for part in ("weight", "bias"):
                key = f"{idx}.{part}"
                if key in state:
                    out[f"{name}.{part}"] = state[key]
        return out
    numbered = [k for k in keys if re.fullmatch(r"conv\d+\.(weight|bias)", k)]
    if numbered:
        names = ("preprocess",) + tuple(l.name for l in CONV_LAYERS)
        for key in numbered:
            number, part = re.fullmatch(r"conv(\d+)\.(weight|bias)", key).groups()
            number = int(number)
            if 1 <= number <= len(names):
                out[f"{names[number - 1]}.{part}"] = state[key]
        return out
    raise StylekitError(
        "unrecognised VGG-19 weight layout (expected keys like 'conv1_1.weight', "
        "'0.weight' or 'conv1.weight')"
    )


def available_convs(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the consecutive convs (from conv1_1) present in a canonical state dict."""
    found = []
    for layer in CONV_LAYERS:
        if f"{layer.name}.weight" not in state:
            break
        found.append(layer.name)
    return found


class VGGEncoder(nn.Module):
    """Frozen normalised VGG-19, truncated at ``last_layer``.

    ``forward(x, layers)`` returns ``{name: feature}`` for the requested layer
    names and runs only as deep as the deepest of them.
    """

    def __init__(self, state: dict[str, torch.Tensor], last_layer: str = "relu3_1", source: str = "weights"):
        super().__init__()
        check_layer_name(last_layer)
        state = canonical_state_dict(state)
        present = available_convs(state)
        needed = [l.name for l in VGG19_LAYERS[: LAYER_INDEX[last_layer] + 1] if l.kind == "conv"]
        if "preprocess.weight" not in state:
            raise StylekitError(f"{source} has no preprocessing conv (the 1x1 conv before conv1_1)")
        missing = [n for n in needed if n not in present]
        if missing:
            deepest_present = present[-1] if present else "nothing"
            raise StylekitError(
                f"layer {last_layer!r} needs {missing[0]}, which {source} does not contain "
                f"(it stops at {deepest_present}); use weights that go deeper, e.g. the full vgg_normalised.pth"
            )
        self.last_layer = last_layer
        self.preprocess = nn.Conv2d(3, 3, 1)
        self.preprocess.weight.data.copy_(self._checked(state, "preprocess.weight", (3, 3, 1, 1), source))
        self.preprocess.bias.data.copy_(self._checked(state, "preprocess.bias", (3,), source))
        self.layers = nn.ModuleDict()
        self.order: list[Layer] = list(VGG19_LAYERS[: LAYER_INDEX[last_layer] + 1])
        for layer in self.order:
            if layer.kind != "conv":
                continue
            conv = nn.Conv2d(layer.in_channels, layer.out_channels, 3)
            shape = (layer.out_channels, layer.in_channels, 3, 3)
            conv.weight.data.copy_(self._checked(state, f"{layer.name}.weight", shape, source))
            conv.bias.data.copy_(self._checked(state, f"{layer.name}.bias", (layer.out_channels,), source))
            self.layers[layer.name] = conv
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _checked(state, key, shape, source):
        if key not in state:
            raise StylekitError(f"{source} lacks {key}")
        t = state[key]
        if tuple(t.shape) != shape:
            raise StylekitError(f"{source}: {key} has shape {tuple(t.shape)}, expected {shape}")
        return t.float()

    def train(self, mode: bool = True):
        # The encoder is a fixed feature extractor: keep it in eval mode always.
        return super().train(False)

    def forward(self, x: torch.Tensor, layers=None) -> dict[str, torch.Tensor]:
        if layers is None:
            layers = (self.last_layer,)
        layers = tuple(layers)
        stop = deepest(layers)
        if LAYER_INDEX[stop] > LAYER_INDEX[self.last_layer]:
            raise StylekitError(f"layer {stop!r} is deeper than this encoder's last layer {self.last_layer!r}")
        wanted = set(layers)
        if use_fast_path(x) and all(VGG19_LAYERS[LAYER_INDEX[n]].kind != "conv" for n in wanted):
            return self._fast_forward(x, wanted, stop)
        out: dict[str, torch.Tensor] = {}
        h = self.preprocess(x)
        for layer in self.order:
            if layer.kind == "conv":
                h = self.layers[layer.name](reflect_pad1(h))
            elif layer.kind == "relu":
                # in place unless the conv output it overwrites was asked for
                h = F.relu(h, inplace=VGG19_LAYERS[LAYER_INDEX[layer.name] - 1].name not in wanted)
            else:
                h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            if layer.name in wanted:
                out[layer.name] = h
            if layer.name == stop:
                break
        return out

    def encode(self, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        layer = layer or self.last_layer
        return self(x, (layer,))[layer]

    def _fast_forward(self, x: torch.Tensor, wanted: set, stop: str) -> dict[str, torch.Tensor]:
        """Inference on the CPU (:func:`stylekit.ops.use_fast_path`): the same
        arithmetic as :meth:`forward` in the conv dtype (autocast's or the
        input's), with weights cast once, each conv fused with its ReLU, the
        pad written once and the max-pool without indices (stylekit.ops)."""
        dtype = compute_dtype(x)
        cache = self.__dict__.setdefault("_inference_weights", {})
        out: dict[str, torch.Tensor] = {}
        order = self.order
        padded, start = None, 0  # padded: the next conv's input, already reflection-padded
        first = order[0].name
        if (len(order) > 2 and order[2].kind == "conv" and stop not in (first, order[1].name)
                and x.shape[-2] > 2 and x.shape[-1] > 2):
            # conv1_1 with the 1x1 preprocessing folded into its weights (they commute with the
            # padding), on the image reflection-padded by 2: its output then has the ring of
            # border pixels conv1_2 reads, refilled by reflecting the interior. This replaces
            # a padded copy of 64 channels at full resolution by one of the 3-channel image.
            weight, bias = folded_weights(cache, self.preprocess, self.layers[first], dtype)
            image = F.pad(x.float(), (2, 2, 2, 2), mode="reflect").to(dtype).contiguous(memory_format=torch.channels_last)
            padded = reflect_border_(conv2d_relu(image, weight, bias, relu=True))
            for name in (first, order[1].name):
                if name in wanted:
                    out[name] = padded[..., 1:-1, 1:-1].contiguous(memory_format=torch.channels_last)
            start = 2
        else:
            h = x.to(dtype).contiguous(memory_format=torch.channels_last)
            h = conv2d_relu(h, *prepared_weights(cache, "preprocess", self.preprocess, dtype), relu=False)
        for i in range(start, len(order)):
            layer = order[i]
            if layer.kind == "conv":
                fuse = i + 1 < len(order) and order[i + 1].kind == "relu"
                source = padded if padded is not None else reflect_pad1(h, any_layout=True)
                padded = None
                h = conv2d_relu(source, *prepared_weights(cache, layer.name, self.layers[layer.name], dtype), relu=fuse)
            elif layer.kind == "pool":
                h = max_pool2(h)
            if layer.name in wanted:
                out[layer.name] = h
            if layer.name == stop:
                break
        return out
