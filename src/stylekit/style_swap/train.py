"""Training the style-swap inverse network (Chen & Schmidt 2016, sec. 4).

The network ``f`` inverts relu3_1 activations ``H``:

    L(H) = ||Phi(f(H)) - H||^2 + tv_weight * TV(f(H))

- the same objective, term for term and weight for weight, as the
optimisation mode (:func:`stylekit.losses.inversion_terms`; see
``stylekit.style_swap.model.DEFAULT_TV_WEIGHT`` for why the weight is not the
paper's 1e-6). ``H`` is, per batch slot in turn, the activations of a
content crop, of a style crop, or of their style-swapped mixture, computed on
the fly - the paper's augmentation, which teaches the network the
out-of-distribution features that the swap produces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..decoder import load_decoder
from ..errors import StylekitError
from ..functional import style_swap
from ..losses import inversion_terms
from ..training.decoder_task import DecoderTrainConfig, DecoderTrainTask
from .model import DEFAULT_TV_WEIGHT

#: What batch slot i holds: SOURCES[i % 3].
SOURCES = ("content", "style", "swap")


@dataclass(frozen=True)
class StyleSwapTrainConfig(DecoderTrainConfig):
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate (paper: 1e-3)"})
    lr_decay: float = field(default=0.0, metadata={"help": "inverse decay: lr / (1 + lr_decay * step) (paper: none)"})
    tv_weight: float = field(
        default=DEFAULT_TV_WEIGHT,
        metadata={"help": "total-variation weight, as in the optimisation mode (the paper's 1e-6 is for Caffe VGG's scale)"},
    )
    patch_size: int = field(default=3, metadata={"help": "style-swap patch size for the swapped activations"})
    stride: int = field(default=1, metadata={"help": "style-swap stride"})
    init_weights: str | None = field(
        default=None,
        metadata={"help": "start from these decoder weights (e.g. the AdaIN decoder, which also inverts relu3_1)"},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.tv_weight < 0:
            raise StylekitError("--tv-weight must be non-negative")
        if self.patch_size < 1 or self.stride < 1:
            raise StylekitError("--patch-size and --stride must be positive")


class StyleSwapTrainTask(DecoderTrainTask):
    kind = "style-swap"

    def start_fresh(self) -> None:
        """Called for a new run only: a resumed run takes its weights from the checkpoint."""
        cfg = self.cfg
        if cfg.init_weights:
            start = load_decoder(cfg.init_weights)
            if start.from_layer != cfg.layer:
                raise StylekitError(f"--init-weights inverts {start.from_layer}, not {cfg.layer}")
            self.decoder.load_state_dict(start.state_dict())

    def _swap(self, content_feat: torch.Tensor, style_feat: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        return torch.cat([
            style_swap(content_feat[i : i + 1], style_feat[i : i + 1], patch_size=cfg.patch_size, stride=cfg.stride)
            for i in range(content_feat.shape[0])
        ])

    @torch.no_grad()
    def targets(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The activations H to invert: content, style and swapped slots in turn."""
        layer = self.cfg.layer
        with self.autocast():
            content_feat = self.encoder.encode(content, layer).float()
            style_feat = self.encoder.encode(style, layer).float()
        first = self.batch_offset  # slots are numbered across the global batch (see DecoderTrainTask)
        slots = torch.arange(first, first + content.shape[0], device=content.device) % len(SOURCES)
        target = torch.where((slots == 1).view(-1, 1, 1, 1), style_feat, content_feat)
        swap_slots = (slots == 2).nonzero().flatten()
        if len(swap_slots):
            target[swap_slots] = self._swap(content_feat[swap_slots], style_feat[swap_slots])
        return target.contiguous(memory_format=torch.channels_last)

    def losses(self, content: torch.Tensor, style: torch.Tensor):
        target = self.targets(content, style)
        with self.autocast():
            output = self.net(target)
            output_feat = self.encoder.encode(output, self.cfg.layer).float()
        terms = inversion_terms(output_feat, target, output, self.cfg.tv_weight)
        return sum(terms.values()), terms

    def sample_outputs(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            content_feat = self.encoder.encode(content, self.cfg.layer).float()
            style_feat = self.encoder.encode(style, self.cfg.layer).float()
            return self.decoder(self._swap(content_feat, style_feat))
