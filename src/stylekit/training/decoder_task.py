"""What every "train a decoder on VGG features" task shares (AdaIN decoder,
style-swap inverse network): config fields, the frozen encoder, the seeded
decoder, Adam with the inverse-decay schedule, mixed precision, in-memory
content/style crops, checkpoint state, sample grids and weight export.

A subclass supplies ``kind``, ``losses(content, style) -> (total, {name: value})``
and ``sample_outputs(content, style) -> images``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import distributed
from ..config import device_field, precision_field
from ..decoder import MirrorDecoder
from ..devices import autocast, resolve_device, resolve_precision
from ..encoder import LAYER_INDEX
from ..errors import StylekitError
from ..files import save_tensors
from ..images import image_grid, save_image
from ..weights import load_encoder
from .data import content_style_crops
from .loop import inverse_decay
from .trainable import Trainable


@dataclass(frozen=True)
class DecoderTrainConfig:
    content: str = field(metadata={"help": "directory of content photos (searched recursively)"})
    style: str = field(metadata={"help": "directory of style images (searched recursively)"})
    layer: str = field(default="relu3_1", metadata={"help": "encoder layer the decoder inverts"})
    resize: int = field(
        default=256,
        metadata={"help": "shorter side images are resized to before cropping (paper: 512; 256 here "
                  "because most style images are ~224 px, so 512 would upsample them)"},
    )
    crop: int = field(
        default=128,
        metadata={"help": "random square crop (paper: 256; 128 on CPU gives 4x the steps per hour, "
                  "and relu3_1's receptive field is far smaller than 128 px)"},
    )
    batch_size: int = field(default=8, metadata={"help": "images per step"})
    lr: float = field(default=1e-4, metadata={"help": "Adam learning rate"})
    lr_decay: float = field(default=5e-5, metadata={"help": "inverse decay: lr / (1 + lr_decay * step)"})
    seed: int = field(default=0, metadata={"help": "seed for initialisation and data order"})
    device: str = device_field()
    precision: str = precision_field(
        "auto", "auto (bf16 autocast where the CPU/GPU runs it natively), fp32, bf16, fp16")
    encoder_weights: str | None = field(default=None, metadata={"help": "VGG-19 weight file (default: $STYLEKIT_WEIGHTS, the cache, then "
                                                                    "the encoder shipped in the package)"})

    def __post_init__(self):
        if self.layer not in LAYER_INDEX or not self.layer.startswith("relu"):
            raise StylekitError(f"--layer must be a relu layer such as relu3_1, got {self.layer!r}")
        for name in ("resize", "crop", "batch_size"):
            if getattr(self, name) < 1:
                raise StylekitError(f"--{name.replace('_', '-')} must be positive")
        if self.crop > self.resize:
            raise StylekitError(f"--crop ({self.crop}) cannot exceed --resize ({self.resize})")
        if self.crop % 8:
            raise StylekitError(f"--crop must be a multiple of 8, got {self.crop}")
        if self.lr <= 0 or self.lr_decay < 0:
            raise StylekitError("--lr must be positive and --lr-decay non-negative")


class DecoderTrainTask:
    kind = "decoder"
    state_key = "decoder"  # the trained module's key in a checkpoint
    encoder_layers: tuple[str, ...] = ()  # deepest layer the losses need; set by subclasses

    def __init__(self, cfg: DecoderTrainConfig, warn=None):
        self.cfg = cfg
        device = resolve_device(cfg.device)
        self.ctx = distributed.setup(device)
        self.device = distributed.device_for(device, self.ctx)
        self.ctx.slice(cfg.batch_size)  # fails early unless the batch splits evenly over the processes
        self.dtype = resolve_precision(self.device, cfg.precision)
        self.encoder = load_encoder(cfg.encoder_weights, last_layer=cfg.layer, device=self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.decoder = MirrorDecoder(cfg.layer).to(self.device)
        # channels_last measured 1.4x faster for fp32 and 1.2x for bf16 on this CPU's oneDNN
        self.encoder.to(memory_format=torch.channels_last)
        self.decoder.to(memory_format=torch.channels_last)
        self.trainable = Trainable(self.decoder, torch.optim.Adam(self.decoder.parameters(), lr=cfg.lr), self.ctx,
                                   scale_gradients=self.dtype == torch.float16 and self.device.type == "cuda")
        self.net = self.trainable.net  # what the losses run through (DDP under torchrun)
        self.content, self.style, self.generator, self.sample_content, self.sample_style = content_style_crops(
            cfg.content, cfg.style, cfg.crop, cfg.seed, cfg.resize, cfg.resize, warn=warn)
        self.step_lr = cfg.lr
        self.batch_offset = 0  # global index of this process's first batch slot

    def autocast(self):
        return autocast(self.device, self.dtype)

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)

    def learning_rate(self) -> float:
        return self.step_lr

    def losses(self, content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def sample_outputs(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def backward_step(self, step: int) -> dict[str, float]:
        """Forward and backward for ``step``: gradients (all-reduced under DDP) are
        left in the decoder's ``.grad``; returns the losses averaged over processes."""
        cfg = self.cfg
        self.step_lr = inverse_decay(cfg.lr, cfg.lr_decay, step)
        self.trainable.set_lr(self.step_lr)
        # Every process draws the whole global batch from the same generator and keeps
        # its slice: N processes then train exactly as one process with the same batch,
        # and the generator state (checkpointed) is valid for any number of processes.
        part = self.ctx.slice(cfg.batch_size)
        self.batch_offset = part.start
        content = self.to_device(self.content.random_crops(cfg.batch_size, cfg.crop, self.generator)[part])
        style = self.to_device(self.style.random_crops(cfg.batch_size, cfg.crop, self.generator)[part])
        self.decoder.train()
        loss, parts = self.losses(content, style)
        self.trainable.backward(loss)
        values = {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}
        return distributed.mean_over_ranks(values, self.ctx, self.device)

    def train_step(self, step: int) -> dict[str, float]:
        values = self.backward_step(step)
        self.trainable.apply()
        return values

    def state_dict(self) -> dict:
        # the checkpoint's keys predate Trainable: "decoder" is its module
        state = self.trainable.state_dict()
        return {self.state_key: state["module"], "optimizer": state["optimizer"], "scaler": state["scaler"],
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.trainable.load_state_dict({"module": state[self.state_key], "optimizer": state["optimizer"],
                                        "scaler": state["scaler"]})
        self.generator.set_state(state["generator"])

    @torch.no_grad()
    def write_samples(self, path: Path) -> None:
        """A grid with one row per sample pair: content | style | output."""
        self.decoder.eval()
        output = self.sample_outputs(self.to_device(self.sample_content), self.to_device(self.sample_style))
        rows = [[c, s, o] for c, s, o in zip(self.sample_content, self.sample_style, output.float().cpu())]
        save_image(image_grid(rows), path)

    def export_weights(self, path: Path) -> None:
        save_tensors(path, self.decoder.state_dict(),
                     {"kind": self.kind, "layer": self.cfg.layer, "config": str(asdict(self.cfg))})
