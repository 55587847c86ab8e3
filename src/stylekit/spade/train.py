"""Training SPADE (Park et al. 2019): semantic image synthesis with a GAN.

One step, as the authors' code (``pix2pix_model.py``, ``pix2pix_trainer.py``):

* generator step: ``fake = G(label map[, z])``; the discriminator scores
  ``concat(fake, real)`` in one pass; loss = hinge ``-D(fake)`` +
  ``feat_weight`` (10) x feature matching + ``vgg_weight`` (10) x VGG loss
  (relu1_1..relu3_1: the encoder weights stylekit has) + ``kl_weight`` (0.05) x KL
  in VAE mode, where ``z`` comes from the image encoder (trained with G);
* discriminator step on the same fake (detached) and the real image: hinge
  ``relu(1 - D(real)) + relu(1 + D(fake))``;
* TTUR: Adam with betas (0, 0.9), lr 1e-4 for G (and the encoder), 4e-4 for D.

The data, the VAE noise and the crops come from one checkpointed generator,
and the checkpoint holds both networks with their optimisers, so ``--resume``
continues bit for bit. Under torchrun every process draws the global batch and
keeps its slice; both networks are wrapped in DDP and the generator's batch
norm is synchronised, so N processes train as one process with the whole batch.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .. import distributed
from ..config import device_field, precision_field
from ..devices import autocast, resolve_device, resolve_precision
from ..errors import StylekitError
from ..files import save_tensors
from ..images import image_grid, save_image
from ..training.trainable import Trainable
from ..weights import load_encoder
from .data import LabelledBank, colourise
from .losses import feature_matching_loss, hinge_d_loss, hinge_g_loss, kl_divergence, vgg_loss
from .model import MultiscaleDiscriminator, SPADEModelConfig, SPADENet, count_parameters, one_hot

KIND = "spade"


@dataclass(frozen=True)
class SPADETrainConfig:
    PATH_FIELDS = ("labels", "images")  # stored resolved by the CLI (not a field)

    labels: str = field(metadata={"help": "directory of label maps: PNGs of class indices 0..N-1 (mode L or P)"})
    images: str = field(metadata={"help": "directory of the images, paired with the label maps by file stem"})
    num_classes: int = field(metadata={"help": "N, the number of classes (label values are 0..N-1)"})
    resize: int = field(default=286, metadata={"help": "shorter side pairs are resized to before cropping (paper: 286)"})
    crop: int = field(default=256, metadata={"help": "random square crop: the training size (paper: 256)"})
    flip: bool = field(default=True, metadata={"help": "random left-right flips"})
    batch_size: int = field(default=8, metadata={"help": "pairs per step (the global batch under torchrun; paper: 32)"})
    width: int = field(default=64, metadata={"help": "generator channels at the output scale (paper's ngf)"})
    num_upsampling: int = field(default=5, metadata={"help": "upsamplings in the generator: crop / 2**N is its coarsest grid"})
    max_width: int = field(default=1024, metadata={"help": "generator channel cap at coarse scales (paper: 16 * width)"})
    spade_hidden: int = field(default=128, metadata={"help": "channels of each SPADE layer's shared conv"})
    d_width: int = field(default=64, metadata={"help": "discriminator channels of its first layer (paper's ndf)"})
    d_layers: int = field(default=4, metadata={"help": "conv layers per discriminator before the score layer"})
    d_scales: int = field(default=2, metadata={"help": "discriminators at successive half resolutions"})
    vae: bool = field(default=False, metadata={"help": "train an image encoder too (multi-modal, reference-guided synthesis)"})
    z_dim: int = field(default=256, metadata={"help": "latent size in VAE mode"})
    kl_weight: float = field(default=0.05, metadata={"help": "weight of the KL loss in VAE mode"})
    feat_weight: float = field(default=10.0, metadata={"help": "weight of the feature-matching loss"})
    vgg_weight: float = field(default=10.0, metadata={"help": "weight of the VGG loss (0: off; needs the encoder weights)"})
    lr_g: float = field(default=1e-4, metadata={"help": "generator (and encoder) learning rate"})
    lr_d: float = field(default=4e-4, metadata={"help": "discriminator learning rate"})
    beta1: float = field(default=0.0, metadata={"help": "Adam beta1"})
    beta2: float = field(default=0.9, metadata={"help": "Adam beta2"})
    seed: int = field(default=0, metadata={"help": "seed for initialisation, data order and noise"})
    device: str = device_field()
    precision: str = precision_field(
        "fp32", "fp32, or autocast in bf16 / fp16 (fp16 with a gradient scaler on GPUs), or auto")
    encoder_weights: str | None = field(default=None, metadata={"help": "VGG-19 weight file for the VGG loss "
                                                                    "(default: the encoder shipped in the package)"})

    def __post_init__(self):
        for name in ("resize", "crop", "batch_size", "d_width", "d_layers", "d_scales"):
            if getattr(self, name) < 1:
                raise StylekitError(f"--{name.replace('_', '-')} must be positive")
        if self.crop > self.resize:
            raise StylekitError(f"--crop ({self.crop}) cannot exceed --resize ({self.resize})")
        for name in ("kl_weight", "feat_weight", "vgg_weight"):
            if getattr(self, name) < 0:
                raise StylekitError(f"--{name.replace('_', '-')} must be non-negative")
        if self.lr_g <= 0 or self.lr_d <= 0:
            raise StylekitError("--lr-g and --lr-d must be positive")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise StylekitError("--beta1 and --beta2 must be in [0, 1)")
        self.model_config()  # checks the architecture (classes, crop vs upsamplings)

    def model_config(self) -> SPADEModelConfig:
        return SPADEModelConfig(
            num_classes=self.num_classes, size=self.crop, width=self.width, num_upsampling=self.num_upsampling,
            max_width=self.max_width, spade_hidden=self.spade_hidden, vae=self.vae, z_dim=self.z_dim,
        )


def split_halves(outputs: list[list[torch.Tensor]]):
    """Discriminator outputs of ``concat(a, b)`` -> (outputs of a, outputs of b)."""
    first = [[t[: t.shape[0] // 2] for t in stages] for stages in outputs]
    second = [[t[t.shape[0] // 2 :] for t in stages] for stages in outputs]
    return first, second


def build_networks(cfg: SPADETrainConfig) -> tuple[SPADENet, MultiscaleDiscriminator]:
    """The seeded initial networks (the generator is built first: an untrained
    generator rebuilt from the same config and seed is this run's step 0)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = SPADENet(cfg.model_config())
        disc = MultiscaleDiscriminator(cfg.num_classes, cfg.d_width, cfg.d_layers, cfg.d_scales)
    return net, disc


class SPADETrainTask:
    kind = KIND

    def __init__(self, cfg: SPADETrainConfig, warn=None):
        self.cfg = cfg
        device = resolve_device(cfg.device)
        self.ctx = distributed.setup(device)
        self.device = distributed.device_for(device, self.ctx)
        self.ctx.slice(cfg.batch_size)  # fails early unless the batch splits evenly over the processes
        self.dtype = resolve_precision(self.device, cfg.precision)
        self.model_config = cfg.model_config()
        self.data = LabelledBank.from_dirs(cfg.labels, cfg.images, cfg.num_classes, cfg.resize, warn=warn)
        self.encoder = load_encoder(cfg.encoder_weights, last_layer="relu3_1", device=self.device) if cfg.vgg_weight else None
        net, disc = build_networks(cfg)
        scale = self.dtype == torch.float16 and self.device.type == "cuda"
        betas = (cfg.beta1, cfg.beta2)
        net, disc = net.to(self.device), disc.to(self.device)
        self.g = Trainable(net, torch.optim.Adam(net.parameters(), lr=cfg.lr_g, betas=betas), self.ctx, scale)
        self.d = Trainable(disc, torch.optim.Adam(disc.parameters(), lr=cfg.lr_d, betas=betas), self.ctx, scale)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        sample_gen = torch.Generator().manual_seed(cfg.seed + 1)
        n = min(4, len(self.data))
        self.sample_labels, self.sample_images = self.data.random_crops(n, cfg.crop, sample_gen, flip=False)
        self.sample_noise = torch.randn(n, cfg.z_dim, generator=sample_gen)

    def describe(self) -> str:
        cfg = self.cfg
        processes = f", {self.ctx.world_size} processes" if self.ctx.distributed else ""
        vae = " + image encoder (VAE)" if cfg.vae else ""
        return (f"training spade: {len(self.data)} labelled images, {cfg.num_classes} classes, {cfg.crop} px crops; "
                f"generator{vae} {count_parameters(self.g.module) / 1e6:.2f}M and discriminator "
                f"{count_parameters(self.d.module) / 1e6:.2f}M parameters; {self.device} "
                f"{str(self.dtype).replace('torch.', '')}{processes}")

    def autocast(self):
        return autocast(self.device, self.dtype)

    def learning_rate(self) -> float:
        return self.cfg.lr_g

    def batch(self):
        """This process's slice of the global batch: (one-hot labels, images in [-1, 1], noise or None)."""
        cfg = self.cfg
        part = self.ctx.slice(cfg.batch_size)
        labels, images = self.data.random_crops(cfg.batch_size, cfg.crop, self.generator, flip=cfg.flip)
        noise = torch.randn(cfg.batch_size, cfg.z_dim, generator=self.generator)[part] if cfg.vae else None
        seg = one_hot(labels[part], cfg.num_classes).to(self.device)
        real = (images[part] * 2 - 1).to(self.device)
        return seg, real, None if noise is None else noise.to(self.device)

    def generator_losses(self, seg, real, noise):
        """(total, parts, fake) of the generator step; the discriminator is frozen."""
        cfg = self.cfg
        with self.autocast():
            fake, mu, logvar = self.g.net(seg, real if cfg.vae else None, noise)
            with self.d.frozen() as disc:
                fake_out, real_out = split_halves(disc(torch.cat([seg, seg]), torch.cat([fake, real])))
            parts = {"g_gan": hinge_g_loss(fake_out)}
            total = parts["g_gan"]
            if cfg.feat_weight:
                parts["g_feat"] = feature_matching_loss(fake_out, real_out)
                total = total + cfg.feat_weight * parts["g_feat"]
            if self.encoder is not None:
                parts["g_vgg"] = vgg_loss(self.encoder, fake, real)
                total = total + cfg.vgg_weight * parts["g_vgg"]
            if cfg.vae:
                parts["g_kl"] = kl_divergence(mu, logvar)
                total = total + cfg.kl_weight * parts["g_kl"]
        return total, parts, fake

    def discriminator_losses(self, seg, real, fake):
        with self.autocast():
            fake_out, real_out = split_halves(self.d.net(torch.cat([seg, seg]), torch.cat([fake.detach(), real])))
            d_real, d_fake = hinge_d_loss(real_out, fake_out)
        return d_real + d_fake, {"d_real": d_real, "d_fake": d_fake}

    def train_step(self, step: int) -> dict[str, float]:
        self.g.module.train()
        self.d.module.train()
        seg, real, noise = self.batch()
        loss_g, parts_g, fake = self.generator_losses(seg, real, noise)
        self.g.step(loss_g)
        # pix2pixHD / SPADE: the discriminator sees this step's fake (detached)
        loss_d, parts_d = self.discriminator_losses(seg, real, fake)
        self.d.step(loss_d)
        values = {"loss_g": loss_g.item(), "loss_d": loss_d.item(),
                  **{k: v.item() for k, v in {**parts_g, **parts_d}.items()}}
        return distributed.mean_over_ranks(values, self.ctx, self.device)

    def state_dict(self) -> dict:
        return {"g": self.g.state_dict(), "d": self.d.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])
        self.generator.set_state(state["generator"])

    @torch.no_grad()
    def write_samples(self, path: Path) -> None:
        """One row per sample pair: label map | generated | real (VAE: label map |
        from the real image's code | from a random code | real)."""
        net = self.g.module
        net.eval()
        seg = one_hot(self.sample_labels, self.cfg.num_classes).to(self.device)
        real = (self.sample_images * 2 - 1).to(self.device)
        with self.autocast():
            if self.cfg.vae:
                mu, _ = net.encoder(real)
                outputs = [net.generator(seg, mu), net.generator(seg, self.sample_noise.to(self.device))]
            else:
                outputs = [net.generator(seg)]
        outputs = [((o.float() + 1) / 2).cpu() for o in outputs]
        rows = [[colourise(lab, self.cfg.num_classes, self.data.colours), *(o[i] for o in outputs), self.sample_images[i]]
                for i, lab in enumerate(self.sample_labels)]
        save_image(image_grid(rows), path)

    def export_weights(self, path: Path) -> None:
        export_weights(self.g.module, self.cfg, path)


def export_weights(net: SPADENet, cfg: SPADETrainConfig, path: str | Path) -> None:
    """The generator (and encoder) as safetensors; the metadata rebuilds the model."""
    save_tensors(path, net.state_dict(),
                 {"kind": KIND, "model": net.config.to_json(), "config": json.dumps(asdict(cfg), sort_keys=True)})
