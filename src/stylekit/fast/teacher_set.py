"""A teacher set: the teacher's outputs written to disk once, for many student steps.

Training the compact network with the teacher on the fly spends most of each
step in the teacher (adain's coarse-to-fine pyramid) and the VGG losses: on two
CPU cores a batch of 16 takes ~8 s in the teacher and ~4.5 s in the student.
A teacher set pays the teacher once per pair; the student then trains on
random sub-crops and mirror images of the stored pairs (``stylekit train fast
--teacher-set DIR``), several times per pair and several times faster per step.

A set is a directory: ``set.json`` (the settings that made it) and shards
``shard_00000.safetensors`` ..., each ``shard_size`` pairs of

* ``content``, ``style``, ``teacher``: uint8 (n, 3, crop, crop) images,
* ``alpha``: float32 (n,), the content/style trade-off the teacher was run at,
* ``style_vector``: float32 (n, style_dim), the student's style encoding of
  each style (:func:`stylekit.fast.model.style_vector` at ``style_size`` px).

Shard ``k`` depends only on the settings and ``k`` (its own seeded
generator), so shards can be written by several processes (``--part``), a
stopped writer continues where it stopped, and a run trained on a set is
reproducible from its settings.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..adain.model import DEFAULT_DECODER, AdaINStylizer, transform_file
from ..adain.transform import load_transform
from ..decoder import load_decoder
from ..errors import StylekitError
from ..files import atomic_write
from ..pyramid import REFERENCE_SIDE
from ..training.data import content_style_crops
from ..weights import load_encoder, resolve
from .model import STYLE_LAYERS, fit_style, style_vector

SET_FILE = "set.json"


@dataclass(frozen=True)
class TeacherSetConfig:
    content: str = field(metadata={"help": "directory of content photos (searched recursively)"})
    style: str = field(metadata={"help": "directory of style images (searched recursively)"})
    shards: int = field(default=32, metadata={"help": "shards in the set"})
    shard_size: int = field(default=64, metadata={"help": "pairs per shard"})
    content_resize: int = field(default=320, metadata={"help": "shorter side content images are resized to before cropping"})
    style_resize: int = field(default=256, metadata={"help": "shorter side style images are resized to before cropping"})
    crop: int = field(default=256, metadata={"help": "random square crop of both (a multiple of 8)"})
    style_size: int = field(default=128, metadata={"help": "longer side the style encoding is taken at (the student's --style-size)"})
    alpha_share: float = field(default=0.3, metadata={"help": "share of pairs taught at a random alpha in [0, 1] (the rest at 1)"})
    teacher_weights: str | None = field(default=None, metadata={"help": "the teacher's AdaIN decoder (default: the shipped one)"})
    teacher_transform: str | None = field(default=None, metadata={
        "help": "the teacher's covariance transform; 'none': plain AdaIN (default: the shipped transform with the "
                "shipped decoder, none with --teacher-weights)"})
    seed: int = field(default=0, metadata={"help": "seed of the crops and alphas"})
    encoder_weights: str | None = field(default=None, metadata={"help": "VGG-19 weight file (default: see stylekit.weights)"})

    def __post_init__(self):
        for name in ("shards", "shard_size", "content_resize", "style_resize", "crop"):
            if getattr(self, name) < 1:
                raise StylekitError(f"--{name.replace('_', '-')} must be positive")
        if self.crop % 8:
            raise StylekitError(f"--crop must be a multiple of 8, got {self.crop}")
        if self.crop > min(self.content_resize, self.style_resize):
            raise StylekitError(f"--crop ({self.crop}) cannot exceed --content-resize or --style-resize")
        if not 32 <= self.style_size <= self.crop:
            raise StylekitError(f"--style-size must be in [32, --crop], got {self.style_size}")
        if not 0 <= self.alpha_share <= 1:
            raise StylekitError("--alpha-share must be in [0, 1]")


def shard_path(directory: str | Path, k: int) -> Path:
    return Path(directory) / f"shard_{k:05d}.safetensors"


def load_teacher(encoder, teacher_weights=None, teacher_transform=None, device="cpu") -> AdaINStylizer:
    """adain as :meth:`AdaINStylizer.load` would run it with this decoder and
    transform (:func:`stylekit.adain.model.transform_file`), on ``encoder``, uncached."""
    decoder = load_decoder(teacher_weights or resolve(DEFAULT_DECODER))
    path = transform_file(teacher_weights, teacher_transform)
    transform = None if path is None else load_transform(path)
    return AdaINStylizer(encoder, decoder, torch.device(device), cache_size=0, transform=transform)


@torch.no_grad()
def teach(teacher: AdaINStylizer, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The teacher's outputs for a batch of equal-size crops: adain's default
    coarse-to-fine stylization of content ``i`` with style ``i`` at ``alpha[i]``,
    in [0, 1], in one pass (the pyramid's levels are shared)."""
    # a crop is a part of a picture at the reference size: the style keeps the scale it has there
    scale = content.shape[-1] / REFERENCE_SIDE
    out = teacher.transfer_coarse_to_fine(content, [style], alpha=alpha.reshape(-1, 1, 1, 1).to(content.dtype),
                                          stroke_scale=scale)
    return out.clamp(0, 1).clone()


def random_alphas(count: int, share: float, generator: torch.Generator) -> torch.Tensor:
    """``count`` trade-offs: 1, except for a random ``share`` of them, uniform in [0, 1]."""
    random_alpha = torch.rand(count, generator=generator) < share
    return torch.where(random_alpha, torch.rand(count, generator=generator), torch.ones(count))


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).contiguous()


def write_teacher_set(cfg: TeacherSetConfig, out: str | Path, part: tuple[int, int] = (0, 1), batch: int = 8,
                      warn=None, report=print) -> list[Path]:
    """Write the shards ``k`` with ``k % part[1] == part[0]`` that ``out`` lacks; returns those written.

    ``out`` may already hold shards of the same settings (a stopped or parallel
    writer); a different ``set.json`` there is an error."""
    index, parts = part
    if parts < 1 or not 0 <= index < parts:
        raise StylekitError(f"--part must be K/N with 0 <= K < N, got {index}/{parts}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"format": 1, **asdict(cfg)}
    meta = out / SET_FILE
    if meta.exists():
        if json.loads(meta.read_text()) != settings:
            raise StylekitError(f"{out} holds a teacher set with other settings ({meta})")
    else:
        atomic_write(meta, lambda tmp: tmp.write_text(json.dumps(settings, indent=2) + "\n"))
    todo = [k for k in range(index, cfg.shards, parts) if not shard_path(out, k).exists()]
    if not todo:
        return []
    content, style, _, _, _ = content_style_crops(cfg.content, cfg.style, cfg.crop, cfg.seed, cfg.content_resize,
                                                  cfg.style_resize, warn=warn)
    encoder = load_encoder(cfg.encoder_weights, last_layer="relu3_1")
    teacher = load_teacher(encoder, cfg.teacher_weights, cfg.teacher_transform, torch.device("cpu"))
    written = []
    for k in todo:
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + k)
        c = content.random_crops(cfg.shard_size, cfg.crop, generator)
        s = style.random_crops(cfg.shard_size, cfg.crop, generator)
        alpha = random_alphas(cfg.shard_size, cfg.alpha_share, generator)
        taught = torch.cat([teach(teacher, c[i : i + batch], s[i : i + batch], alpha[i : i + batch])
                            for i in range(0, cfg.shard_size, batch)])
        s8 = _to_uint8(s)
        with torch.no_grad():  # the encoding of the style as stored (what the trainer would compute from it)
            vectors = style_vector(encoder(fit_style(s8.float().div(255.0), cfg.style_size), STYLE_LAYERS))
        tensors = {"content": _to_uint8(c), "style": s8, "teacher": _to_uint8(taught), "alpha": alpha.contiguous(),
                   "style_vector": vectors.contiguous()}
        path = shard_path(out, k)
        atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
        written.append(path)
        report(f"{path.name}: {cfg.shard_size} pairs")
    return written


class TeacherSet:
    """A teacher set in memory (uint8), and seeded random views of it."""

    def __init__(self, directory: str | Path):
        directory = Path(directory)
        meta = directory / SET_FILE
        if not meta.is_file():
            raise StylekitError(f"not a teacher set (no {SET_FILE}): {directory}")
        self.settings = json.loads(meta.read_text())
        shards = sorted(directory.glob("shard_*.safetensors"))
        if not shards:
            raise StylekitError(f"teacher set {directory} has no shards yet")
        parts = [load_file(str(p)) for p in shards]
        self.content, self.style, self.teacher, self.alpha, self.style_vector = (
            torch.cat([p[key] for p in parts]) for key in ("content", "style", "teacher", "alpha", "style_vector"))
        self.shards = len(shards)

    def __len__(self) -> int:
        return len(self.alpha)

    @property
    def crop(self) -> int:
        return self.content.shape[-1]

    def sample(self, count: int, crop: int, generator: torch.Generator):
        """``count`` random pairs, each a random ``crop`` x ``crop`` window (the
        same one in the content and the teacher's output), mirrored left-right
        at random: ``(content, style, teacher, alpha, style_vector, indices)``,
        images float32 in [0, 1] (styles whole), ``indices`` the pairs'."""
        if crop > self.crop:
            raise StylekitError(f"--student-crop ({crop}) cannot exceed the teacher set's crop ({self.crop})")
        indices = torch.randint(len(self), (count,), generator=generator)
        tops = torch.randint(self.crop - crop + 1, (count,), generator=generator)
        lefts = torch.randint(self.crop - crop + 1, (count,), generator=generator)
        flips = torch.rand(count, generator=generator) < 0.5
        content, teacher = torch.empty(count, 3, crop, crop), torch.empty(count, 3, crop, crop)
        for slot, (i, t, l, f) in enumerate(zip(indices.tolist(), tops.tolist(), lefts.tolist(), flips.tolist())):
            for dst, src in ((content, self.content), (teacher, self.teacher)):
                view = src[i, :, t : t + crop, l : l + crop]
                dst[slot] = (view.flip(-1) if f else view).float().div_(255.0)
        style = self.style[indices].float().div_(255.0)
        return content, style, teacher, self.alpha[indices].clone(), self.style_vector[indices].clone(), indices
