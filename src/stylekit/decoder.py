"""The decoder: a mirror image of the VGG-19 encoder from a chosen layer back to RGB.

Each encoder conv ``in -> out`` becomes a decoder conv ``out -> in`` (reflection
padding, ReLU after every conv but the last), each max-pool becomes a 2x
nearest-neighbour upsampling, and there are no normalisation layers - exactly
the decoder of the AdaIN paper, generalised to any depth. For ``relu4_1`` it is
layer for layer the official decoder.
"""

from __future__ import annotations

import re
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from .encoder import LAYER_INDEX, VGG19_LAYERS, check_layer_name
from .errors import StylekitError
from .files import load_state_file
from .ops import (compute_dtype, conv2d_reflect_borders, conv2d_relu, prepared_weights, reflect_pad1,
                  upsample2_reflect_pad1, use_fast_path)


class MirrorDecoder(nn.Module):
    def __init__(self, from_layer: str = "relu3_1"):
        super().__init__()
        layer = check_layer_name(from_layer)
        if layer.kind != "relu":
            raise StylekitError(f"the decoder starts from a relu layer, got {from_layer!r}")
        self.from_layer = from_layer
        encoder_part = VGG19_LAYERS[: LAYER_INDEX[from_layer] + 1]
        self.plan: list[tuple[str, str]] = []  # (kind, module name) in execution order
        self.convs = nn.ModuleDict()
        convs = [l for l in encoder_part if l.kind == "conv"]
        for l in reversed(encoder_part):
            if l.kind == "conv":
                self.convs[l.name] = nn.Conv2d(l.out_channels, l.in_channels, 3)
                self.plan.append(("conv", l.name))
                if l is not convs[0]:
                    self.plan.append(("relu", l.name))
            elif l.kind == "pool":
                self.plan.append(("up", l.name))
        self.in_channels = convs[-1].out_channels
        self.num_upsamplings = sum(1 for kind, _ in self.plan if kind == "up")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if use_fast_path(features):
            return self._fast_forward(features)
        h = features
        for kind, name in self.plan:
            if kind == "conv":
                h = self.convs[name](reflect_pad1(h))
            elif kind == "relu":
                h = F.relu(h, inplace=True)  # on the conv's fresh output
            else:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return h

    def _fast_forward(self, features: torch.Tensor) -> torch.Tensor:
        """Inference on the CPU (:func:`stylekit.ops.use_fast_path`): the same
        arithmetic as :meth:`forward` in the conv dtype, weights cast once, each
        conv fused with its ReLU, each upsampling written straight into the
        next conv's padded input."""
        dtype = compute_dtype(features)
        cache = self.__dict__.setdefault("_inference_weights", {})
        h, pending_up = features.to(dtype).contiguous(memory_format=torch.channels_last), False
        for i, (kind, name) in enumerate(self.plan):
            if kind == "up":
                pending_up = True
            elif kind == "conv":
                fuse = i + 1 < len(self.plan) and self.plan[i + 1][0] == "relu"
                weight, bias = prepared_weights(cache, name, self.convs[name], dtype)
                if not pending_up and weight.shape[0] == 3:  # the last conv: a padded copy of its input costs more
                    h = conv2d_reflect_borders(h, weight, bias, relu=fuse)
                    continue
                padded = upsample2_reflect_pad1(h) if pending_up else reflect_pad1(h, any_layout=True)
                pending_up = False
                h = conv2d_relu(padded, weight, bias, relu=fuse)
        if pending_up:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        return h

    def load_weights(self, state: dict[str, torch.Tensor], source: str = "weights") -> None:
        """Load our own layout (``convs.conv3_1.weight``) or the numeric
        ``nn.Sequential`` layout of the official PyTorch AdaIN decoder."""
        if any(re.fullmatch(r"\d+\.(weight|bias)", k) for k in state):
            numeric = sorted({int(k.split(".")[0]) for k in state})
            names = [name for kind, name in self.plan if kind == "conv"]
            if len(numeric) != len(names):
                raise StylekitError(
                    f"{source} has {len(numeric)} convs, a decoder from {self.from_layer} has {len(names)}"
                )
            state = {
                f"convs.{name}.{part}": state[f"{idx}.{part}"]
                for idx, name in zip(numeric, names)
                for part in ("weight", "bias")
            }
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        if missing:
            raise StylekitError(
                f"{source} is not a decoder from {self.from_layer}: it lacks {missing[0]}"
            )
        for key, value in own.items():
            if tuple(state[key].shape) != tuple(value.shape):
                raise StylekitError(
                    f"{source}: {key} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}"
                )
        self.load_state_dict(OrderedDict((k, state[k].float()) for k in own))


# Convs in a mirror decoder from each relu*_1 layer: identifies numeric layouts.
_CONVS_TO_LAYER = {1: "relu1_1", 3: "relu2_1", 5: "relu3_1", 9: "relu4_1", 13: "relu5_1"}


def infer_layer(state: dict[str, torch.Tensor]) -> str:
    """The encoder layer a decoder state dict starts from."""
    ours = [k for k in state if re.fullmatch(r"convs\.conv\d_\d\.weight", k)]
    if ours:
        deepest = max((k.split(".")[1] for k in ours), key=lambda n: LAYER_INDEX[n])
        return "relu" + deepest[len("conv"):]
    numeric = {k.split(".")[0] for k in state if re.fullmatch(r"\d+\.weight", k)}
    if len(numeric) in _CONVS_TO_LAYER:
        return _CONVS_TO_LAYER[len(numeric)]
    raise StylekitError("cannot tell which encoder layer these decoder weights start from")


def load_decoder(path, device="cpu") -> MirrorDecoder:
    """A decoder from a safetensors or .pth file (ours, or the official AdaIN decoder.pth)."""
    state = load_state_file(path)
    decoder = MirrorDecoder(infer_layer(state))
    decoder.load_weights(state, source=str(path))
    return decoder.to(device).eval()
