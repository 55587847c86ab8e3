"""Training SinGAN: one GAN per scale, coarse to fine, on a single image.

Per scale, as the paper and the authors' code (``SinGAN/training.py``):

* WGAN-GP: the critic minimises ``D(fake) - D(real) + 0.1 * GP`` (the authors'
  gradient penalty: the gradient's norm over the channels at every pixel),
  the generator ``-D(fake) + 10 * MSE(G(z*), real)`` (reconstruction);
* each iteration: one noise map, 3 critic steps (each with a fresh random
  image from the frozen coarser scales), then 3 generator steps;
* Adam, lr 5e-4, betas (0.5, 0.999) for both; lr x 0.1 after 80% of the iterations;
* the noise amplitude of scale ``n > 0`` is ``0.1 x RMSE(real_n, up(reconstruction_{n-1}))``;
* a scale starts from the previous scale's trained weights when its width is the same.

Departures from the authors' code (each explained in docs/singan.md): ``z*`` stays
fixed at the coarsest scale, as the paper says (their code redraws it every
iteration); the critic has no batch norm and a zero-padded input; each generator
step regenerates its fake (theirs reuses a stale graph that PyTorch >= 1.5 refuses).

The shared loop (:mod:`stylekit.training.loop`) trains each scale as one run
in ``RUN/scales/<n>/`` (atomic checkpoints, bit-exact resume, ``log.csv``, a
progress bar, Ctrl-C safe). This module is the driver around it: when a scale
is done its generator is frozen and ``RUN/model.safetensors`` (every finished
scale) is rewritten atomically; ``--resume`` loads the finished scales and
continues at the next one, or in the middle of one from its checkpoint.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import distributed
from ..config import device_field
from ..devices import resolve_device
from ..errors import StylekitError
from ..files import atomic_write, load_tensors, save_tensors
from ..images import image_grid, load_pil, pil_to_tensor, save_image
from ..training.loop import CHECKPOINT, LoopConfig, _check_same_config, load_checkpoint, run_training
from ..training.trainable import Trainable
from .model import (
    KIND,
    PatchCritic,
    ScaleGenerator,
    ScaleInfo,
    SinGANPyramid,
    pyramid_sizes,
    scale_channels,
    scale_noise,
    to_image_range,
    to_model_range,
    upsample,
)

MODEL = "model.safetensors"
SUMMARY = "singan.json"

#: CPU defaults (the paper: 250 px and 2000 iterations per scale, for a GPU). 128 px and
#: 800 iterations train 5 scales (25 px to 128 px for a 5:3 image; 32 channels, 64 at the
#: 5th, which takes 60% of the time) in 37 minutes on one thread of a busy 2-core machine
#: (docs/singan.md); 250 px would add 3-4 scales, the last ones at 64-128 channels: hours.
DEFAULT_MAX_SIZE = 128
DEFAULT_STEPS = 800


@dataclass(frozen=True)
class SinGANTrainConfig:
    image: str = field(metadata={"flag": False})  # the positional IMAGE, stored resolved
    max_size: int = field(default=DEFAULT_MAX_SIZE, metadata={
        "help": "longer side of the finest scale in pixels (paper: 250; this CPU default keeps a run near 40 "
                "minutes on one core: the cost grows with the pixels of the finest scales and their width, 64 "
                "channels from the 5th scale on)", "metavar": "PX"})
    min_size: int = field(default=25, metadata={"help": "shorter side of the coarsest scale (paper: 25)", "metavar": "PX"})
    scale_factor: float = field(default=0.75, metadata={
        "help": "size ratio between scales, adjusted slightly so the coarsest scale is --min-size exactly (paper: 0.75)",
        "metavar": "R"})
    steps: int = field(default=DEFAULT_STEPS, metadata={
        "help": "iterations per scale, each 3 critic and 3 generator steps (paper: 2000; this CPU default: "
                "see --max-size)", "metavar": "N"})
    channels: int = field(default=32, metadata={"help": "width of the coarsest scales, doubled every 4 scales (paper: 32)"})
    max_channels: int = field(default=128, metadata={"help": "largest width (paper: 128)"})
    d_steps: int = field(default=3, metadata={"help": "critic steps per iteration (paper: 3)"})
    g_steps: int = field(default=3, metadata={"help": "generator steps per iteration (paper: 3)"})
    lr_g: float = field(default=5e-4, metadata={"help": "generator learning rate (paper: 5e-4)"})
    lr_d: float = field(default=5e-4, metadata={"help": "critic learning rate (paper: 5e-4)"})
    beta1: float = field(default=0.5, metadata={"help": "Adam beta1 (paper: 0.5)"})
    beta2: float = field(default=0.999, metadata={"help": "Adam beta2"})
    lr_decay_at: float = field(default=0.8, metadata={"help": "fraction of a scale's iterations after which the lr drops (paper: 0.8)"})
    lr_decay: float = field(default=0.1, metadata={"help": "the lr factor from then on (paper: 0.1)"})
    rec_weight: float = field(default=10.0, metadata={"help": "alpha, weight of the reconstruction loss (paper: 10)"})
    gp_weight: float = field(default=0.1, metadata={"help": "lambda, weight of the gradient penalty (paper: 0.1)"})
    noise_amp: float = field(default=0.1, metadata={"help": "noise amplitude = this x the RMSE of the upsampled reconstruction (paper: 0.1)"})
    layers: int = field(default=5, metadata={"flag": False})  # 5 convs per network, as the paper
    seed: int = field(default=0, metadata={"help": "seed of the initial weights, z* and the noise"})
    device: str = device_field()

    def __post_init__(self):
        checks = [
            (self.max_size >= 16, "--max-size must be at least 16"),
            (self.min_size >= 8, "--min-size must be at least 8"),
            (0.3 <= self.scale_factor < 1, "--scale-factor must be in [0.3, 1)"),
            (self.steps >= 1, "--steps must be at least 1"),
            (self.channels >= 1 and self.max_channels >= self.channels, "--channels must be positive and at most --max-channels"),
            (self.d_steps >= 1 and self.g_steps >= 1, "--d-steps and --g-steps must be at least 1"),
            (self.lr_g > 0 and self.lr_d > 0, "--lr-g and --lr-d must be positive"),
            (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "--beta1 and --beta2 must be in [0, 1)"),
            (0 <= self.lr_decay_at <= 1 and self.lr_decay > 0, "--lr-decay-at must be in [0, 1] and --lr-decay positive"),
            (self.rec_weight >= 0 and self.gp_weight >= 0 and self.noise_amp >= 0,
             "--rec-weight, --gp-weight and --noise-amp must be non-negative"),
        ]
        for ok, message in checks:
            if not ok:
                raise StylekitError(message)


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """WGAN-GP as the authors' code: ``mean((|grad_x D(x_hat)|_channels - 1)^2)`` over every pixel of
    ``x_hat``, a random mix of the real and the fake image."""
    a = torch.rand(1, generator=generator).item()
    x_hat = (a * real + (1 - a) * fake).detach().requires_grad_(True)
    out = critic(x_hat)
    (grad,) = torch.autograd.grad(out, x_hat, grad_outputs=torch.ones_like(out), create_graph=True)
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()


def load_real(path: str | Path, max_size: int, min_size: int, factor: float):
    """The training image's pyramid ``[(1, 3, H, W)]`` in [-1, 1], coarsest first, and the factor used."""
    img = load_pil(path)
    sizes, actual = pyramid_sizes(img.width, img.height, max_size, min_size, factor)
    full = to_model_range(pil_to_tensor(img))[None]
    reals = [upsample(full, size).clamp(-1, 1) for size in sizes]
    return reals, actual


class SinGANScaleTask:
    """One scale's GAN for the shared loop: ``G_n``, ``D_n``, their optimisers and the noise stream."""

    def __init__(self, cfg: SinGANTrainConfig, scale: int, reals: list[torch.Tensor], frozen: SinGANPyramid,
                 device: torch.device, init: dict | None = None):
        self.cfg, self.scale, self.device = cfg, scale, device
        self.ctx = distributed.Context()
        self.kind = f"{KIND} scale {scale + 1}/{len(reals)}"
        self.frozen = frozen
        self.real = reals[scale].to(device)
        self.size = tuple(self.real.shape[-2:])
        self.channels = scale_channels(scale, cfg.channels, cfg.max_channels)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed * 1009 + scale)
            g, d = ScaleGenerator(self.channels, cfg.layers), PatchCritic(self.channels, cfg.layers)
        if init is not None:  # the previous scale's trained networks, same width
            g.load_state_dict(init["g"])
            d.load_state_dict(init["d"])
        g, d = g.to(device), d.to(device)
        betas = (cfg.beta1, cfg.beta2)
        self.g = Trainable(g, torch.optim.Adam(g.parameters(), lr=cfg.lr_g, betas=betas), self.ctx)
        self.d = Trainable(d, torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=betas), self.ctx)
        self.noise = torch.Generator().manual_seed(cfg.seed * 1009 + scale + 7919)
        # the reconstruction path's input at this scale and the noise amplitude it gives
        if scale == 0:
            self.rec_prev = torch.zeros_like(self.real)
            self.noise_amp = 1.0
            self.z_rec = frozen.z_opt.to(device)
        else:
            self.rec_prev = upsample(frozen.reconstruct()[-1], self.size)
            rmse = torch.sqrt(F.mse_loss(self.rec_prev, self.real)).item()
            self.noise_amp = cfg.noise_amp * rmse
            self.z_rec = torch.zeros_like(self.real)
        self.lr_scale = 1.0

    def describe(self) -> str:
        h, w = self.size
        return f"scale {self.scale}: {w}x{h} px, {self.channels} channels, noise amplitude {self.noise_amp:.4f}"

    def learning_rate(self) -> float:
        return self.cfg.lr_g * self.lr_scale

    @torch.no_grad()
    def random_prev(self, count: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
        """``up(x_{n-1})`` of a random sample of the frozen coarser scales (zeros at scale 0)."""
        if self.scale == 0:
            return torch.zeros(count, 3, *self.size, device=self.device)
        return upsample(self.frozen.generate(count, generator=generator or self.noise), self.size)

    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        self.lr_scale = cfg.lr_decay if step >= round(cfg.lr_decay_at * cfg.steps) else 1.0
        self.g.set_lr(cfg.lr_g * self.lr_scale)
        self.d.set_lr(cfg.lr_d * self.lr_scale)
        self.g.module.train()
        real = self.real
        z = scale_noise(1, self.scale, self.size, self.noise, self.device)
        for _ in range(cfg.d_steps):
            prev = self.random_prev()
            z_in = self.noise_amp * z + prev
            with torch.no_grad():
                fake = self.g.module(z_in, prev)
            d_real, d_fake = self.d.net(real).mean(), self.d.net(fake).mean()
            gp = gradient_penalty(self.d.net, real, fake, self.noise)
            self.d.step(d_fake - d_real + cfg.gp_weight * gp)
        for _ in range(cfg.g_steps):
            fake = self.g.net(z_in, prev)
            with self.d.frozen() as critic:
                adv = -critic(fake).mean()
            rec = F.mse_loss(self.g.net(self.noise_amp * self.z_rec + self.rec_prev, self.rec_prev), real)
            self.g.step(adv + cfg.rec_weight * rec)
        return {"d_real": d_real.item(), "d_fake": d_fake.item(), "gp": gp.item(), "g_adv": adv.item(),
                "rec": rec.item()}

    def state_dict(self) -> dict:
        return {"g": self.g.state_dict(), "d": self.d.state_dict(), "noise": self.noise.get_state(),
                "noise_amp": self.noise_amp}

    def load_state_dict(self, state: dict) -> None:
        self.g.load_state_dict(state["g"])
        self.d.load_state_dict(state["d"])
        self.noise.set_state(state["noise"])
        self.noise_amp = float(state["noise_amp"])

    @torch.no_grad()
    def generate(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """Random samples of this scale as trained so far (eval-mode batch norm, as once frozen)."""
        g = self.g.module
        was_training = g.training
        g.eval()
        prev = self.random_prev(count, generator)
        out = g(self.noise_amp * scale_noise(count, self.scale, self.size, generator, self.device) + prev, prev)
        rec = g(self.noise_amp * self.z_rec + self.rec_prev, self.rec_prev)
        g.train(was_training)
        return out, rec

    def write_samples(self, path: Path) -> None:
        """Four random samples | the reconstruction | the real image, at this scale."""
        samples, rec = self.generate(4, torch.Generator().manual_seed(self.cfg.seed + 1))
        row = [to_image_range(x).cpu() for x in [*samples, rec[0], self.real[0]]]
        save_image(image_grid([row]), path)

    def export_weights(self, path: Path) -> None:
        save_tensors(path, self.g.module.state_dict(), {"kind": KIND + "-scale", "scale": str(self.scale),
                                                         "channels": str(self.channels), "noise_amp": repr(self.noise_amp)})


def save_model(pyramid: SinGANPyramid, run_dir: Path) -> Path:
    """``RUN/model.safetensors`` (what sampling and the applications load) and ``RUN/singan.json`` (for people)."""
    path = run_dir / MODEL
    save_tensors(path, pyramid.tensors(), pyramid.metadata())
    summary = {"meta": pyramid.meta, "scales": [s.to_json() for s in pyramid.scales]}
    atomic_write(run_dir / SUMMARY, lambda tmp: tmp.write_text(json.dumps(summary, indent=2, default=str)))
    return path


def load_model(run: str | Path, device: torch.device | str = "cpu") -> SinGANPyramid:
    """A trained pyramid from ``RUN/`` (or its ``model.safetensors``)."""
    run = Path(run)
    path = run / MODEL if run.is_dir() else run
    if not path.exists():
        if run.is_dir():
            raise StylekitError(f"{run} holds no SinGAN model ({MODEL}): train one with `stylekit train singan IMAGE -o {run}`"
                                " (a model appears when its first scale is done)")
        raise StylekitError(f"SinGAN run not found: {run}")
    tensors, metadata = load_tensors(path)
    pyramid = SinGANPyramid.from_tensors(tensors, metadata, source=str(path)).to(device)
    pyramid.reals = [r.to(device) for r in pyramid.reals]  # a plain list: Module.to leaves it
    return pyramid


def _scale_dir(run_dir: Path, scale: int) -> Path:
    return run_dir / "scales" / str(scale)


def train_singan(cfg: SinGANTrainConfig, run_dir: str | Path, *, resume: bool = False, max_scales: int | None = None,
                 save_minutes: float = 5.0, log_every: int = 10, sample_every: int = 200, progress: bool = True,
                 log=None) -> dict:
    """Train (or continue) every scale; returns a summary. ``max_scales`` stops after that many
    scales in all (a later ``resume`` continues); a Ctrl-C checkpoints the current scale and stops."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    run_dir = Path(run_dir)
    device = resolve_device(cfg.device)
    reals, factor = load_real(cfg.image, cfg.max_size, cfg.min_size, cfg.scale_factor)
    num_scales = len(reals)
    config = asdict(cfg)
    meta = {"config": config, "factor": factor, "num_scales": num_scales, "layers": cfg.layers,
            "image": Path(cfg.image).name}
    model_path = run_dir / MODEL
    if run_dir.exists() and not run_dir.is_dir():
        raise StylekitError(f"-o {run_dir} is a file, not a directory")
    started = model_path.exists() or any(run_dir.glob(f"scales/*/{CHECKPOINT}"))
    if started and not resume:
        raise StylekitError(f"{run_dir} already holds a SinGAN run; pass --resume to continue it or choose another -o")

    if model_path.exists():
        pyramid = load_model(model_path, device)
        _check_same_config(pyramid.meta.get("config", {}), config, model_path)
        if [s.size for s in pyramid.scales] != [tuple(r.shape[-2:]) for r in reals[: pyramid.num_scales]]:
            raise StylekitError(f"{model_path} was trained on other scale sizes; is {cfg.image} the same image?")
        pyramid.reals = [r.to(device) for r in reals]
    else:
        z_opt = scale_noise(1, 0, tuple(reals[0].shape[-2:]), torch.Generator().manual_seed(cfg.seed))
        pyramid = SinGANPyramid([], [], z_opt, [r.to(device) for r in reals], meta).to(device)
    pyramid.meta = meta
    last = num_scales if max_scales is None else min(num_scales, max_scales)
    sizes = " -> ".join(f"{r.shape[-1]}x{r.shape[-2]}" for r in reals)
    log(f"singan: {num_scales} scales ({sizes} px, factor {factor:.3f}), {cfg.steps} iterations each, {device}"
        + (f"; {pyramid.num_scales} done" if pyramid.num_scales else ""))

    for scale in range(pyramid.num_scales, last):
        init = None
        channels = scale_channels(scale, cfg.channels, cfg.max_channels)
        if scale > 0 and scale_channels(scale - 1, cfg.channels, cfg.max_channels) == channels:
            previous = load_checkpoint(_scale_dir(run_dir, scale - 1) / CHECKPOINT)["task"]
            init = {"g": previous["g"]["module"], "d": previous["d"]["module"]}
        task = SinGANScaleTask(cfg, scale, reals, pyramid, device, init=init)
        log(task.describe())
        scale_dir = _scale_dir(run_dir, scale)
        loop = LoopConfig(max_steps=cfg.steps, save_every_minutes=save_minutes, log_every=max(1, log_every),
                          sample_every=sample_every, progress=progress)
        summary = run_training(task, config, scale_dir, loop, resume=(scale_dir / CHECKPOINT).exists())
        if summary["step"] < cfg.steps:  # stopped by a signal: the checkpoint is saved
            return {"stopped": True, "scale": scale, "step": summary["step"], "scales_done": pyramid.num_scales,
                    "num_scales": num_scales}
        g = task.g.module
        g.eval().requires_grad_(False)
        pyramid.scales.append(ScaleInfo(task.size, task.channels, task.noise_amp, round(summary["elapsed"], 2)))
        pyramid.generators.append(g)
        save_model(pyramid, run_dir)
        log(f"scale {scale} done in {summary['elapsed'] / 60:.1f} min; {model_path}")
    done = pyramid.num_scales
    if done == num_scales:
        gen = torch.Generator().manual_seed(cfg.seed + 2)
        samples = [to_image_range(pyramid.generate(1, generator=gen))[0].cpu() for _ in range(8)]
        save_image(image_grid([samples[:4], samples[4:]]), run_dir / "samples.png")
    return {"stopped": False, "scales_done": done, "num_scales": num_scales,
            "seconds": sum(s.seconds for s in pyramid.scales), "model": str(model_path)}
