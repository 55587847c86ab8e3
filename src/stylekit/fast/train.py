"""Training the compact network (:mod:`stylekit.fast.model`) by distillation.

The teacher is stylekit's AdaIN stylizer as it runs by default (the
coarse-to-fine pyramid of :mod:`stylekit.pyramid` with the palette step),
applied on the fly to random content and style crops at a random
content/style trade-off ``alpha``. The student sees the content crop, the
style's VGG statistics and ``alpha``, and learns

    L = distill_weight * |student - teacher|_1
      + feature_weight * ||VGG(student) - VGG(teacher)||^2 at relu3_1
      + style_weight   * sum over scales 1, 2 of the mean/std style loss against the style

A teacher makes the small network converge far faster than the perceptual
losses alone (it is given an answer, not only a criterion); the VGG terms
keep its outputs sharp where an L1 fit alone blurs. Everything random comes
from one checkpointed generator, so ``--resume`` continues bit for bit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from .. import distributed
from ..config import device_field, precision_field
from ..adain.model import AdaINStylizer
from ..decoder import load_decoder
from ..devices import autocast, resolve_device, resolve_precision
from ..errors import StylekitError
from ..files import atomic_write
from ..images import image_grid, save_image
from ..losses import content_loss, mean_std_style_loss
from ..measures import downsample
from ..pyramid import REFERENCE_SIDE
from ..training.data import content_style_crops
from ..training.loop import inverse_decay
from ..training.trainable import Trainable
from ..weights import load_encoder, resolve
from .model import STYLE_LAYERS, FastNet, FastNetConfig, count_parameters, fit_style, style_vector

KIND = "fast"


@dataclass(frozen=True)
class FastTrainConfig:
    content: str = field(metadata={"help": "directory of content photos (searched recursively)"})
    style: str = field(metadata={"help": "directory of style images (searched recursively)"})
    content_resize: int = field(default=320, metadata={"help": "shorter side content images are resized to before cropping"})
    style_resize: int = field(default=256, metadata={"help": "shorter side style images are resized to before cropping"})
    crop: int = field(default=256, metadata={"help": "random square crop of both (a multiple of 8)"})
    style_size: int = field(default=128, metadata={"help": "longer side the student takes a style's statistics at, at most "
                                                           "--crop (the style encoding's cost at inference grows with its square)"})
    batch_size: int = field(default=4, metadata={"help": "pairs per step (the global batch under torchrun)"})
    widths: str = field(default="16,32,64,128", metadata={"help": "channels at full, 1/2, 1/4 and 1/8 resolution"})
    blocks: int = field(default=6, metadata={"help": "modulated residual blocks at 1/8 resolution"})
    hidden: int = field(default=256, metadata={"help": "width of the modulation MLP"})
    distill_weight: float = field(default=1.0, metadata={"help": "weight of the L1 distance to the teacher's output"})
    feature_weight: float = field(default=0.05, metadata={"help": "weight of the relu3_1 distance to the teacher's output"})
    feature_scale: int = field(default=2, metadata={"help": "the relu3_1 distance on both images downsampled this much "
                                                            "(1: full size; 2 costs a quarter of the VGG passes)"})
    style_weight: float = field(default=0.0, metadata={"help": "weight of the mean/std style loss against the style "
                                                             "(scales 1 and 2; the teacher's outputs carry the style already)"})
    alpha_share: float = field(default=0.3, metadata={"help": "share of pairs trained at a random alpha in [0, 1] (the rest at 1)"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    lr_decay: float = field(default=2e-5, metadata={"help": "inverse decay: lr / (1 + lr_decay * step)"})
    teacher_weights: str | None = field(default=None, metadata={"help": "the teacher's AdaIN decoder (default: the shipped one)"})
    seed: int = field(default=0, metadata={"help": "seed for initialisation and data order"})
    device: str = device_field()
    precision: str = precision_field(
        "fp32", "fp32, or autocast in bf16 / fp16 for the student and the losses (the teacher runs in bf16 "
                  "where native)")
    encoder_weights: str | None = field(default=None, metadata={"help": "VGG-19 weight file (default: see stylekit.weights)"})

    def __post_init__(self):
        for name in ("content_resize", "style_resize", "crop", "batch_size", "hidden"):
            if getattr(self, name) < 1:
                raise StylekitError(f"--{name.replace('_', '-')} must be positive")
        if self.crop % FastNet.multiple:
            raise StylekitError(f"--crop must be a multiple of {FastNet.multiple}, got {self.crop}")
        if self.style_size < 32:
            raise StylekitError(f"--style-size must be at least 32, got {self.style_size}")
        if self.crop > min(self.content_resize, self.style_resize):
            raise StylekitError(f"--crop ({self.crop}) cannot exceed --content-resize or --style-resize")
        for name in ("distill_weight", "feature_weight", "style_weight"):
            if getattr(self, name) < 0:
                raise StylekitError(f"--{name.replace('_', '-')} must be non-negative")
        if self.feature_scale < 1 or self.crop // self.feature_scale < 32:
            raise StylekitError("--feature-scale must be at least 1 and leave 32 px of the crop")
        if not 0 <= self.alpha_share <= 1:
            raise StylekitError("--alpha-share must be in [0, 1]")
        if self.lr <= 0 or self.lr_decay < 0:
            raise StylekitError("--lr must be positive and --lr-decay non-negative")
        self.model_config()

    def model_config(self) -> FastNetConfig:
        try:
            widths = tuple(int(w) for w in str(self.widths).split(","))
        except ValueError:
            raise StylekitError(f"--widths must be four comma-separated integers, got {self.widths!r}") from None
        return FastNetConfig(widths=widths, blocks=self.blocks, hidden=self.hidden, style_size=min(self.style_size, self.crop))


class FastTrainTask:
    kind = KIND

    def __init__(self, cfg: FastTrainConfig, warn=None):
        self.cfg = cfg
        device = resolve_device(cfg.device)
        self.ctx = distributed.setup(device)
        self.device = distributed.device_for(device, self.ctx)
        self.ctx.slice(cfg.batch_size)
        self.dtype = resolve_precision(self.device, cfg.precision)
        self.encoder = load_encoder(cfg.encoder_weights, last_layer="relu3_1", device=self.device)
        decoder = load_decoder(cfg.teacher_weights or resolve("adain-decoder-relu3_1"))
        self.teacher = AdaINStylizer(self.encoder, decoder, self.device, cache_size=0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            net = FastNet(cfg.model_config()).to(self.device)
        self.student = Trainable(net, torch.optim.Adam(net.parameters(), lr=cfg.lr), self.ctx,
                                 scale_gradients=self.dtype == torch.float16 and self.device.type == "cuda")
        self.content, self.style, self.generator, self.sample_content, self.sample_style = content_style_crops(
            cfg.content, cfg.style, cfg.crop, cfg.seed, cfg.content_resize, cfg.style_resize, warn=warn)
        self.step_lr = cfg.lr

    def describe(self) -> str:
        net = self.student.module
        processes = f", {self.ctx.world_size} processes" if self.ctx.distributed else ""
        return (f"training fast: {len(self.content)} content and {len(self.style)} style images, {self.cfg.crop} px crops; "
                f"student {count_parameters(net) / 1e6:.3f}M parameters; teacher adain; "
                f"{self.device} {str(self.dtype).replace('torch.', '')}{processes}")

    def learning_rate(self) -> float:
        return self.step_lr

    @torch.no_grad()
    def teach(self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """The teacher's outputs for a batch: adain's default coarse-to-fine
        stylization of content ``i`` with style ``i`` at ``alpha[i]``, the whole
        batch in one pass (every crop has the same size, so the pyramid's levels are shared)."""
        # a crop is a part of a picture at the reference size: the style keeps the scale it has there
        scale = self.cfg.crop / REFERENCE_SIDE
        out = self.teacher.transfer_coarse_to_fine(content, [style], alpha=alpha.reshape(-1, 1, 1, 1).to(content.dtype),
                                                   stroke_scale=scale)
        return out.clamp(0, 1).to(self.device).clone()  # a normal tensor: the losses save it

    def style_features(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        """The style crops' VGG features at the size the student takes its statistics at."""
        with torch.no_grad(), autocast(self.device, self.dtype):
            return {k: v.float() for k, v in self.encoder(fit_style(style, self.student.module.cfg.style_size), STYLE_LAYERS).items()}

    def batch(self):
        """This process's slice of the global batch: content, style, alpha."""
        cfg = self.cfg
        part = self.ctx.slice(cfg.batch_size)
        content = self.content.random_crops(cfg.batch_size, cfg.crop, self.generator)
        style = self.style.random_crops(cfg.batch_size, cfg.crop, self.generator)
        random_alpha = torch.rand(cfg.batch_size, generator=self.generator) < cfg.alpha_share
        alpha = torch.where(random_alpha, torch.rand(cfg.batch_size, generator=self.generator), torch.ones(cfg.batch_size))
        return content[part].to(self.device), style[part].to(self.device), alpha[part].to(self.device)

    def losses(self, content, style, alpha):
        cfg = self.cfg
        target = self.teach(content, style, alpha)
        style_feats = self.style_features(style)
        with autocast(self.device, self.dtype):
            output = self.student.net(content, style_vector(style_feats), alpha)
            parts = {"distill": F.l1_loss(output.float(), target)}
            total = cfg.distill_weight * parts["distill"]
            if cfg.feature_weight:
                k = cfg.feature_scale
                with torch.no_grad():
                    target_feat = self.encoder.encode(downsample(target, k), "relu3_1")
                parts["feature"] = content_loss(self.encoder.encode(downsample(output, k), "relu3_1"), target_feat)
                total = total + cfg.feature_weight * parts["feature"]
            if cfg.style_weight:
                parts["style"] = self.style_loss(output, style, alpha)
                total = total + cfg.style_weight * parts["style"]
        return total, parts

    def style_loss(self, output: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """The mean/std style loss at scales 1 and 2, over the pairs trained at alpha 1
        (the others ask for less than the whole style); 0 when there are none."""
        styled = alpha == 1
        if not bool(styled.any()):
            return output.new_zeros(())
        layers = STYLE_LAYERS
        with torch.no_grad():
            s1 = self.encoder(style[styled], layers)
            s2 = self.encoder(downsample(style[styled], 2), layers)
        total = mean_std_style_loss(self.encoder(output[styled], layers), s1, layers)
        return total + mean_std_style_loss(self.encoder(downsample(output[styled], 2), layers), s2, layers)

    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        self.step_lr = inverse_decay(cfg.lr, cfg.lr_decay, step)
        self.student.set_lr(self.step_lr)
        self.student.module.train()
        content, style, alpha = self.batch()
        loss, parts = self.losses(content, style, alpha)
        self.student.step(loss)
        values = {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}
        return distributed.mean_over_ranks(values, self.ctx, self.device)

    def state_dict(self) -> dict:
        return {"student": self.student.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.student.load_state_dict(state["student"])
        self.generator.set_state(state["generator"])

    @torch.no_grad()
    def write_samples(self, path: Path) -> None:
        """One row per sample pair: content | style | teacher | student."""
        net = self.student.module
        net.eval()
        content, style = self.sample_content.to(self.device), self.sample_style.to(self.device)
        alpha = torch.ones(len(content), device=self.device)
        target = self.teach(content, style, alpha)
        output = net(content, style_vector(self.style_features(style)), alpha).clamp(0, 1)
        rows = [[c, s, t, o] for c, s, t, o in zip(self.sample_content, self.sample_style, target.cpu(), output.float().cpu())]
        save_image(image_grid(rows), path)

    def export_weights(self, path: Path) -> None:
        export_weights(self.student.module, self.cfg, path)


def export_weights(net: FastNet, cfg: FastTrainConfig, path: str | Path) -> None:
    """The student as safetensors; the metadata rebuilds the model."""
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}
    metadata = {"kind": KIND, "model": json.dumps(net.cfg.to_dict()), "config": json.dumps(asdict(cfg), sort_keys=True)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
