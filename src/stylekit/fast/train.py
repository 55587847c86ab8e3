"""Training the compact network (:mod:`stylekit.fast.model`) by distillation.

The teacher is stylekit's AdaIN stylizer as it runs by default (the shipped
decoder and covariance transform unless ``--teacher-weights`` /
``--teacher-transform`` say otherwise, through the coarse-to-fine pyramid of
:mod:`stylekit.pyramid` with the palette step),
applied on the fly to random content and style crops at a random
content/style trade-off ``alpha``. The student sees the content crop, the
style's VGG statistics and ``alpha``, and learns

    L = distill_weight * |student - teacher|_1
      + feature_weight * ||VGG(student) - VGG(teacher)||^2 at relu3_1
      + style_weight   * sum over --style-scales of the mean/std style loss against the style
      + colour_weight  * squared sliced Wasserstein-2 distance of the RGB pixels to the style's

A teacher makes the small network converge far faster than the perceptual
losses alone (it is given an answer, not only a criterion); the VGG terms
keep its outputs sharp where an L1 fit alone blurs. With ``--teacher-set``
the teacher's outputs come from a set written once
(:mod:`stylekit.fast.teacher_set`): each step then trains on random
``--student-crop`` windows and mirror images of stored pairs, several times
cheaper than running the teacher. Everything random comes from one
checkpointed generator, so ``--resume`` continues bit for bit.
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
from ..devices import autocast, resolve_device, resolve_precision
from ..errors import StylekitError
from ..files import atomic_write
from ..images import image_grid, save_image
from ..losses import (content_loss, feature_statistics, mean_std_style_loss, sliced_wasserstein_colour_loss,
                      statistics_style_loss)
from ..measures import downsample
from ..training.data import content_style_crops
from ..training.loop import inverse_decay
from ..training.trainable import Trainable
from ..weights import load_encoder
from .teacher_set import TeacherSet, load_teacher, random_alphas, teach
from .model import STYLE_LAYERS, FastNet, FastNetConfig, count_parameters, fit_style, style_vector

KIND = "fast"


@dataclass(frozen=True)
class FastTrainConfig:
    content: str | None = field(default=None, metadata={"help": "directory of content photos, searched recursively "
                                                               "(required without --teacher-set)"})
    style: str | None = field(default=None, metadata={"help": "directory of style images, searched recursively "
                                                             "(required without --teacher-set)"})
    teacher_set: str | None = field(default=None, metadata={"help": "train on this teacher set (`stylekit train "
                                                                   "fast-teacher-set`) instead of running the teacher"})
    student_crop: int = field(default=0, metadata={"help": "with --teacher-set: random windows of this size from its "
                                                           "pairs (a multiple of 8; 0: the set's whole crop)"})
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
    style_weight: float = field(default=0.0, metadata={"help": "weight of the mean/std style loss against the style, "
                                                             "summed over --style-scales"})
    style_scales: str = field(default="", metadata={"help": "downsampling factors the style loss is taken at, comma-"
                                                           "separated (default: 1,2; with --teacher-set the "
                                                           "--feature-scale alone, which shares the feature term's VGG pass)"})
    colour_weight: float = field(default=0.0, metadata={"help": "weight of the squared sliced Wasserstein-2 distance between "
                                                               "the RGB pixels of the output and of the style (the painting's "
                                                               "palette; random directions each step)"})
    colour_directions: int = field(default=16, metadata={"help": "random directions of the colour term, each step"})
    alpha_share: float = field(default=0.3, metadata={"help": "share of pairs trained at a random alpha in [0, 1] (the rest at 1)"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    lr_decay: float = field(default=2e-5, metadata={"help": "inverse decay: lr / (1 + lr_decay * step)"})
    teacher_weights: str | None = field(default=None, metadata={"help": "the teacher's AdaIN decoder (default: the shipped one)"})
    teacher_transform: str | None = field(default=None, metadata={
        "help": "the teacher's covariance transform; 'none': plain AdaIN (default: the shipped transform with the "
                "shipped decoder, none with --teacher-weights)"})
    init_weights: str | None = field(default=None, metadata={"help": "start the student from these weights (a fast "
                                                                    "weights file of the same architecture)"})
    seed: int = field(default=0, metadata={"help": "seed for initialisation and data order"})
    device: str = device_field()
    precision: str = precision_field(
        "fp32", "fp32, or autocast in bf16 / fp16 for the student and the losses (the teacher runs in bf16 "
                  "where native)")
    encoder_weights: str | None = field(default=None, metadata={"help": "VGG-19 weight file (default: see stylekit.weights)"})

    PATH_FIELDS = ("content", "style", "teacher_set")

    def __post_init__(self):
        if self.teacher_set is None and (self.content is None or self.style is None):
            raise StylekitError("--content and --style are required (or --teacher-set)")
        if self.student_crop < 0 or self.student_crop % FastNet.multiple:
            raise StylekitError(f"--student-crop must be 0 or a positive multiple of {FastNet.multiple}, got {self.student_crop}")
        for name in ("content_resize", "style_resize", "crop", "batch_size", "hidden"):
            if getattr(self, name) < 1:
                raise StylekitError(f"--{name.replace('_', '-')} must be positive")
        if self.crop % FastNet.multiple:
            raise StylekitError(f"--crop must be a multiple of {FastNet.multiple}, got {self.crop}")
        if self.style_size < 32:
            raise StylekitError(f"--style-size must be at least 32, got {self.style_size}")
        if self.crop > min(self.content_resize, self.style_resize):
            raise StylekitError(f"--crop ({self.crop}) cannot exceed --content-resize or --style-resize")
        if self.colour_directions < 1:
            raise StylekitError("--colour-directions must be positive")
        for name in ("distill_weight", "feature_weight", "style_weight", "colour_weight"):
            if getattr(self, name) < 0:
                raise StylekitError(f"--{name.replace('_', '-')} must be non-negative")
        if self.feature_scale < 1 or (self.student_crop or self.crop) // self.feature_scale < 32:
            raise StylekitError("--feature-scale must be at least 1 and leave 32 px of the crop")
        scales = self.scales()
        if self.style_weight and any(k < 1 or (self.student_crop or self.crop) // k < 32 for k in scales):
            raise StylekitError(f"--style-scales must be factors of at least 1 that leave 32 px of the crop, got {self.style_scales!r}")
        if not 0 <= self.alpha_share <= 1:
            raise StylekitError("--alpha-share must be in [0, 1]")
        if self.lr <= 0 or self.lr_decay < 0:
            raise StylekitError("--lr must be positive and --lr-decay non-negative")
        self.model_config()

    def scales(self) -> tuple[int, ...]:
        """The style loss's downsampling factors (:attr:`style_scales`, or its default)."""
        if not str(self.style_scales).strip():
            return (self.feature_scale,) if self.teacher_set else (1, 2)
        try:
            scales = tuple(int(k) for k in str(self.style_scales).split(","))
        except ValueError:
            raise StylekitError(f"--style-scales must be comma-separated integers, got {self.style_scales!r}") from None
        if len(set(scales)) != len(scales):
            raise StylekitError(f"--style-scales repeats a factor: {self.style_scales!r}")
        return scales

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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            net = FastNet(cfg.model_config()).to(self.device)
        self.student = Trainable(net, torch.optim.Adam(net.parameters(), lr=cfg.lr), self.ctx,
                                 scale_gradients=self.dtype == torch.float16 and self.device.type == "cuda")
        self.step_lr = cfg.lr
        self.teacher = self.set = None
        self.style_stats: dict[int, dict] = {}
        if cfg.teacher_set:
            self.set = TeacherSet(cfg.teacher_set)
            if self.set.settings["style_size"] != net.cfg.style_size:
                raise StylekitError(f"the teacher set encodes styles at {self.set.settings['style_size']} px, the "
                                    f"student at --style-size {net.cfg.style_size}: give the set's")
            self.crop = cfg.student_crop or self.set.crop
            if self.crop > self.set.crop:
                raise StylekitError(f"--student-crop ({self.crop}) cannot exceed the teacher set's crop ({self.set.crop})")
            self.generator = torch.Generator().manual_seed(cfg.seed)
            n = min(4, len(self.set))
            self.sample_content, self.sample_style = self.set.content[:n].float() / 255, self.set.style[:n].float() / 255
            self.sample_teacher = self.set.teacher[:n].float() / 255
            return
        self.teacher = load_teacher(self.encoder, cfg.teacher_weights, cfg.teacher_transform, self.device)
        self.crop = cfg.crop
        self.content, self.style, self.generator, self.sample_content, self.sample_style = content_style_crops(
            cfg.content, cfg.style, cfg.crop, cfg.seed, cfg.content_resize, cfg.style_resize, warn=warn)

    def start_fresh(self) -> None:
        """A new run starts from ``--init-weights`` when given."""
        if self.cfg.init_weights:
            from .stylizer import load_fast_net

            start = load_fast_net(self.cfg.init_weights)
            if start.cfg != self.student.module.cfg:
                raise StylekitError(f"--init-weights {self.cfg.init_weights} has another architecture ({start.cfg})")
            self.student.module.load_state_dict(start.state_dict())

    def describe(self) -> str:
        net = self.student.module
        processes = f", {self.ctx.world_size} processes" if self.ctx.distributed else ""
        data = (f"teacher set {self.cfg.teacher_set}: {len(self.set)} pairs, {self.crop} px windows" if self.set else
                f"{len(self.content)} content and {len(self.style)} style images, {self.cfg.crop} px crops; teacher adain")
        return (f"training fast: {data}; student {count_parameters(net) / 1e6:.3f}M parameters; "
                f"{self.device} {str(self.dtype).replace('torch.', '')}{processes}")

    def learning_rate(self) -> float:
        return self.step_lr

    def teach(self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """The teacher's outputs for a batch (:func:`stylekit.fast.teacher_set.teach`), a normal tensor the losses may save."""
        return teach(self.teacher, content, style, alpha).to(self.device)

    def style_features(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        """The style crops' VGG features at the size the student takes its statistics at."""
        with torch.no_grad(), autocast(self.device, self.dtype):
            return {k: v.float() for k, v in self.encoder(fit_style(style, self.student.module.cfg.style_size), STYLE_LAYERS).items()}

    def batch(self):
        """This process's slice of the global batch: content, style, alpha, the
        teacher's outputs and the style vectors."""
        cfg = self.cfg
        part = self.ctx.slice(cfg.batch_size)
        if self.set is not None:
            content, pixels, target, alpha, vectors, indices = self.set.sample(cfg.batch_size, self.crop, self.generator)
            style = {"stats": self.set_style_statistics(indices[part].tolist()), "pixels": pixels[part].to(self.device)}
            content, target, alpha, vectors = (x[part].to(self.device) for x in (content, target, alpha, vectors))
            return content, style, alpha, target, vectors
        content = self.content.random_crops(cfg.batch_size, cfg.crop, self.generator)
        style = self.style.random_crops(cfg.batch_size, cfg.crop, self.generator)
        alpha = random_alphas(cfg.batch_size, cfg.alpha_share, self.generator)
        content, style, alpha = content[part].to(self.device), style[part].to(self.device), alpha[part].to(self.device)
        return content, style, alpha, self.teach(content, style, alpha), style_vector(self.style_features(style))

    def set_style_statistics(self, indices: list[int]) -> dict[int, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
        """For each of ``--style-scales``, the mean/std statistics of the teacher set's styles
        ``indices`` downsampled by that factor: each taken once, on its own (so the same
        whatever batch it first came in: resumed runs see the same numbers), and kept."""
        scales = self.cfg.scales()
        for i in indices:
            if i not in self.style_stats:
                with torch.no_grad():
                    style = self.set.style[i : i + 1].to(self.device).float() / 255
                    self.style_stats[i] = {
                        k: {layer: (m[0], s[0]) for layer, (m, s) in
                            feature_statistics(self.encoder(downsample(style, k), STYLE_LAYERS), STYLE_LAYERS).items()}
                        for k in scales}
        return {k: {layer: (torch.stack([self.style_stats[i][k][layer][0] for i in indices]),
                            torch.stack([self.style_stats[i][k][layer][1] for i in indices])) for layer in STYLE_LAYERS}
                for k in scales}

    def losses(self, content, style, alpha, target, vectors):
        """The loss terms for a batch; ``style`` is the style images, or (with a teacher
        set) ``{"stats": their statistics at each of --style-scales, "pixels": the images}``."""
        cfg = self.cfg
        with autocast(self.device, self.dtype):
            output = self.student.net(content, vectors, alpha)
            parts = {"distill": F.l1_loss(output.float(), target)}
            if self.set is not None:
                parts.update(self.set_vgg_terms(output, target, style["stats"], alpha))
            else:
                parts.update(self.vgg_terms(output, target, style, alpha))
            if cfg.colour_weight:
                parts["colour"] = self.colour_loss(output, style["pixels"] if self.set is not None else style, alpha)
            total = cfg.distill_weight * parts["distill"]
            for name, weight in (("feature", cfg.feature_weight), ("style", cfg.style_weight), ("colour", cfg.colour_weight)):
                if name in parts:
                    total = total + weight * parts[name]
        return total, parts

    def vgg_terms(self, output, target, style, alpha) -> dict:
        """The relu3_1 distance at ``--feature-scale`` and the style loss at scales 1 and 2 (each when weighted)."""
        cfg, parts = self.cfg, {}
        if cfg.feature_weight:
            k = cfg.feature_scale
            with torch.no_grad():
                target_feat = self.encoder.encode(downsample(target, k), "relu3_1")
            parts["feature"] = content_loss(self.encoder.encode(downsample(output, k), "relu3_1"), target_feat)
        if cfg.style_weight:
            parts["style"] = self.style_loss(output, style, alpha)
        return parts

    def set_vgg_terms(self, output, target, style_stats, alpha) -> dict:
        """With a teacher set: the relu3_1 distance at ``--feature-scale``, and the mean/std
        style loss summed over ``--style-scales`` against the stored styles' statistics there
        (``style_stats``: scale -> layer -> (mean, std)). A style scale equal to the feature
        scale shares the feature term's VGG pass."""
        cfg, parts = self.cfg, {}
        scales = cfg.scales() if cfg.style_weight else ()
        feats = {}
        if cfg.feature_weight:
            k = cfg.feature_scale
            feats[k] = self.encoder(downsample(output, k), STYLE_LAYERS if k in scales else ("relu3_1",))
            with torch.no_grad():
                target_feat = self.encoder.encode(downsample(target, k), "relu3_1")
            parts["feature"] = content_loss(feats[k]["relu3_1"], target_feat)
        if cfg.style_weight:
            styled = alpha == 1  # the others ask for less than the whole style
            if not bool(styled.any()):
                parts["style"] = output.new_zeros(())
                return parts
            total = 0.0
            for k in scales:
                if k in feats:  # the feature term's pass, over the whole batch
                    f = {layer: v[styled] for layer, v in feats[k].items()}
                else:
                    f = self.encoder(downsample(output[styled], k), STYLE_LAYERS)
                target_stats = {layer: (m[styled], s[styled]) for layer, (m, s) in style_stats[k].items()}
                total = total + statistics_style_loss(feature_statistics(f, STYLE_LAYERS), target_stats)
            parts["style"] = total
        return parts

    def colour_loss(self, output: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """The sliced Wasserstein colour term over the pairs trained at alpha 1, along
        ``--colour-directions`` unit directions drawn from the run's generator; 0 when there are none."""
        dirs = torch.randn(self.cfg.colour_directions, 3, generator=self.generator)
        dirs = dirs / dirs.norm(dim=1, keepdim=True)
        styled = alpha == 1
        if not bool(styled.any()):
            return output.new_zeros(())
        return sliced_wasserstein_colour_loss(output[styled], style[styled], dirs)

    def style_loss(self, output: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """The mean/std style loss summed over ``--style-scales``, over the pairs trained at
        alpha 1 (the others ask for less than the whole style); 0 when there are none."""
        styled = alpha == 1
        if not bool(styled.any()):
            return output.new_zeros(())
        total = 0.0
        for k in self.cfg.scales():
            with torch.no_grad():
                target = self.encoder(downsample(style[styled], k), STYLE_LAYERS)
            total = total + mean_std_style_loss(self.encoder(downsample(output[styled], k), STYLE_LAYERS), target, STYLE_LAYERS)
        return total

    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        self.step_lr = inverse_decay(cfg.lr, cfg.lr_decay, step)
        self.student.set_lr(self.step_lr)
        self.student.module.train()
        loss, parts = self.losses(*self.batch())
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
        if self.set is not None:  # the set's pairs, at the alpha they were taught at
            alpha, target = self.set.alpha[: len(content)].to(self.device), self.sample_teacher.to(self.device)
        else:
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
