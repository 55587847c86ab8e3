"""Synthesis from a trained SPADE generator, and the per-class colour error.

    from stylekit.spade import Synthesizer
    synth = Synthesizer.load("runs/spade/weights.safetensors")
    image = synth.synthesize("mask.png", style="reference.jpg")   # PIL image

The per-class colour error measures whether a generator paints each class in
its colours: for each class k, the mean colour of the generated pixels
labelled k against the mean colour of the real pixels labelled k (pooled over
a held-out set), ``|difference|`` averaged over R, G, B in 0-255 units; then
averaged over the classes present.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..devices import resolve_device
from ..errors import StylekitError, one_line
from ..files import load_tensors
from ..images import image_grid, load_pil, pil_to_tensor, tensor_to_pil
from .data import LabelledBank, colourise, read_label_map
from .model import SPADEModelConfig, SPADENet, one_hot


class Synthesizer:
    def __init__(self, net: SPADENet, device: torch.device | str = "cpu", source: str = "weights",
                 train_config: dict | None = None):
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.config: SPADEModelConfig = net.config
        self.source = source
        self.train_config = train_config or {}

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto") -> "Synthesizer":
        path = Path(path)
        if not path.is_file():
            raise StylekitError(f"weights file not found: {path}")
        state, metadata = load_tensors(path)
        if metadata.get("kind") != "spade" or "model" not in metadata:
            kind = metadata.get("kind")
            raise StylekitError(f"{path} is not a SPADE generator ({'a ' + kind + ' model' if kind else 'no SPADE metadata'});"
                                " use the weights.safetensors of a `stylekit train spade` run")
        config = SPADEModelConfig.from_json(metadata["model"])
        net = SPADENet(config)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise StylekitError(f"{path} does not match its own SPADE config: {one_line(exc)}") from None
        train_config = json.loads(metadata["config"]) if "config" in metadata else None
        return cls(net, device, source=str(path), train_config=train_config)

    @classmethod
    def untrained(cls, config: SPADEModelConfig, seed: int = 0, device: str | torch.device = "auto") -> "Synthesizer":
        """The generator a training run with this config and seed starts from."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = SPADENet(config)
        return cls(net, device, source="untrained")

    @property
    def has_encoder(self) -> bool:
        return self.net.encoder is not None

    def _labels(self, mask) -> torch.Tensor:
        if isinstance(mask, (str, os.PathLike)):
            mask = torch.from_numpy(read_label_map(mask, self.config.num_classes))
        if not isinstance(mask, torch.Tensor) or mask.is_floating_point() or mask.dim() not in (2, 3):
            raise StylekitError("mask must be a label PNG path or an integer tensor (H, W) or (N, H, W)")
        return mask[None] if mask.dim() == 2 else mask

    @torch.no_grad()
    def style_code(self, style) -> torch.Tensor:
        """The encoder's mean code ``mu`` of a reference image (path, PIL or (3, H, W) tensor in [0, 1])."""
        if not self.has_encoder:
            raise StylekitError(
                f"{self.source} was trained without the image encoder; --style needs a model trained with --vae"
            )
        if isinstance(style, (str, os.PathLike)):
            style = load_pil(style)
        if isinstance(style, Image.Image):
            style = pil_to_tensor(style)
        if style.dim() == 3:
            style = style[None]
        mu, _ = self.net.encoder(style.to(self.device) * 2 - 1)
        return mu

    @torch.no_grad()
    def generate(self, labels: torch.Tensor, style=None, seed: int = 0) -> torch.Tensor:
        """``(N, H, W)`` class indices -> ``(N, 3, H, W)`` images in [0, 1].

        Any size works: the label map is resized (nearest) up to the next
        multiple of ``2**num_upsampling`` and the result back. VAE models use
        the reference image's code when ``style`` is given, else a code drawn
        from the prior with ``seed``.
        """
        labels = self._labels(labels)
        n, h, w = labels.shape
        step = 2**self.config.num_upsampling
        hh, ww = -(-h // step) * step, -(-w // step) * step
        seg = one_hot(labels, self.config.num_classes).to(self.device)
        if (hh, ww) != (h, w):
            seg = F.interpolate(seg, size=(hh, ww), mode="nearest")
        z = None
        if self.has_encoder:
            if style is not None:
                z = self.style_code(style).expand(n, -1)
            else:
                z = torch.randn(n, self.config.z_dim, generator=torch.Generator().manual_seed(seed)).to(self.device)
        elif style is not None:
            self.style_code(style)  # raises the explanation
        out = (self.net.generator(seg, z).float() + 1) / 2
        if (hh, ww) != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return out.clamp(0, 1).cpu()

    def synthesize(self, mask, style=None, seed: int = 0) -> Image.Image:
        """One label PNG (or (H, W) tensor) -> a PIL image of its size."""
        return tensor_to_pil(self.generate(mask, style, seed)[0])


def class_colour_error(fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """Per-class ``|mean generated colour - mean real colour|`` (0-255, averaged
    over RGB) pooled over the batch; ``mean`` averages the classes present."""
    per_class = {}
    for k in range(num_classes):
        mask = labels == k
        count = int(mask.sum())
        if not count:
            continue
        fake_mean = torch.stack([fake[:, c][mask].mean() for c in range(3)])
        real_mean = torch.stack([real[:, c][mask].mean() for c in range(3)])
        per_class[k] = {
            "error": float((fake_mean - real_mean).abs().mean() * 255),
            "generated_rgb": [round(float(v) * 255, 1) for v in fake_mean],
            "real_rgb": [round(float(v) * 255, 1) for v in real_mean],
            "pixels": count,
        }
    mean = float(np.mean([v["error"] for v in per_class.values()])) if per_class else float("nan")
    return {"mean": mean, "per_class": per_class}


def global_mean_baseline(real: torch.Tensor) -> torch.Tensor:
    """Every pixel painted the set's mean colour: what a generator that ignores the labels can reach at best."""
    return real.mean(dim=(0, 2, 3), keepdim=True).expand_as(real)


def evaluate_colour_error(synth: Synthesizer, bank: LabelledBank, crop: int | None = None, seed: int = 0,
                          batch_size: int = 16) -> dict:
    """The per-class colour error of ``synth`` on centre crops of every pair of ``bank``,
    and of the label-blind baseline (the set's mean colour everywhere)."""
    crop = crop or min(min(lab.shape) for lab in bank.labels)
    labels, real = bank.center_crops(crop)
    fakes = [synth.generate(labels[i : i + batch_size], seed=seed + i) for i in range(0, len(labels), batch_size)]
    fake = torch.cat(fakes)
    result = class_colour_error(fake, real, labels, bank.num_classes)
    result["baseline_mean_colour"] = class_colour_error(global_mean_baseline(real), real, labels, bank.num_classes)["mean"]
    result["images"] = len(labels)
    result["size"] = crop
    return result


def format_colour_error(result: dict, names: list[str] | None = None) -> str:
    """A table: one line per class, then the mean and the label-blind baseline."""
    lines = [f"per-class colour error on {result['images']} pairs at {result['size']} px (0-255, mean |dRGB|):",
             f"  {'class':<12} {'error':>7}   {'generated RGB':<20} {'real RGB':<20}"]
    for k, v in result["per_class"].items():
        name = names[int(k)] if names and int(k) < len(names) else str(k)
        gen = " ".join(f"{c:5.1f}" for c in v["generated_rgb"])
        real = " ".join(f"{c:5.1f}" for c in v["real_rgb"])
        lines.append(f"  {name:<12} {v['error']:7.2f}   {gen:<20} {real:<20}")
    lines.append(f"  {'mean':<12} {result['mean']:7.2f}")
    lines.append(f"  (label-blind baseline, the set's mean colour everywhere: {result['baseline_mean_colour']:.2f})")
    return "\n".join(lines)


def comparison_grid(synths: list[Synthesizer], bank: LabelledBank, crop: int, count: int = 8, seed: int = 0,
                    scale: int = 1) -> torch.Tensor:
    """One row per pair (the first ``count``): label map | each generator's image | real."""
    labels, real = bank.center_crops(crop, range(min(count, len(bank))))
    fakes = [s.generate(labels, seed=seed) for s in synths]
    rows = [[colourise(labels[i], bank.num_classes, bank.colours), *(f[i] for f in fakes), real[i]]
            for i in range(len(labels))]
    if scale > 1:
        rows = [[img.repeat_interleave(scale, 1).repeat_interleave(scale, 2) for img in row] for row in rows]
    return image_grid(rows)
