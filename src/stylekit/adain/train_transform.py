"""Training the covariance transform (:mod:`stylekit.adain.transform`) in front
of a frozen AdaIN decoder.

The transform ``T`` learns to make ``g(T(f(c), f(s)))`` look like the style
while keeping the content: the content loss compares the output's relu3_1
features with the *content's* (what ``stylekit evaluate`` measures, not the
AdaIN target, which the transform is free to leave); the style loss is the
mean/std loss at the style scales (:class:`stylekit.adain.train.AdaINTrainConfig`)
plus, with ``gram_weight``, the Gram loss, which asks for the channel
covariances AdaIN leaves alone; with ``ssim_weight``, ``1 - SSIM`` of the
output's luma against the content's (:func:`stylekit.measures.ssim_luma`),
which lets the transform move colour and texture statistics but asks it to
keep the photo's light-and-dark structure. The decoder's weights stay as they are (it is
the shipped one unless ``--decoder-weights`` says otherwise), so the trained
transform ships beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..decoder import load_decoder
from ..errors import StylekitError
from ..files import save_tensors
from ..losses import content_loss, gram_style_loss
from ..measures import ssim_luma
from ..training.trainable import Trainable
from ..weights import resolve
from .model import DEFAULT_DECODER
from .train import AdaINTrainConfig, AdaINTrainTask
from .transform import CovarianceTransform


@dataclass(frozen=True)
class TransformTrainConfig(AdaINTrainConfig):
    rank: int = field(default=32, metadata={"help": "channels of the subspace whose covariance the transform corrects"})
    gram_weight: float = field(default=0.0, metadata={"help": "weight of the Gram style loss"})
    ssim_weight: float = field(default=0.0, metadata={"help": "weight of 1 - SSIM of the output's luma against the content's"})
    decoder_weights: str | None = field(default=None, metadata={"help": "the frozen decoder (default: the shipped one)"})

    def __post_init__(self):
        super().__post_init__()
        if self.pyramid:
            raise StylekitError("--pyramid is not supported when training the transform")
        if self.init_weights:
            raise StylekitError("--init-weights is for decoders; the transform starts as AdaIN")
        if self.gram_weight < 0 or self.ssim_weight < 0:
            raise StylekitError("--gram-weight and --ssim-weight must be non-negative")
        if self.rank < 1:
            raise StylekitError("--rank must be positive")


class TransformTrainTask(AdaINTrainTask):
    kind = "adain-transform"
    state_key = "transform"

    def __init__(self, cfg: TransformTrainConfig, warn=None):
        super().__init__(cfg, warn)
        # the base task seeded a decoder to train; here it is the frozen, trained one instead
        decoder = load_decoder(cfg.decoder_weights or resolve(DEFAULT_DECODER))
        if decoder.from_layer != cfg.layer:
            raise StylekitError(f"--decoder-weights inverts {decoder.from_layer}, not {cfg.layer}")
        self.decoder = decoder.to(self.device).requires_grad_(False).eval()
        self.decoder.to(memory_format=torch.channels_last)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self.transform = CovarianceTransform(decoder.in_channels, cfg.rank).to(self.device)
        self.trainable = Trainable(self.transform, torch.optim.Adam(self.transform.parameters(), lr=cfg.lr), self.ctx,
                                   scale_gradients=self.dtype == torch.float16 and self.device.type == "cuda")
        self.net = self.trainable.net

    def losses(self, content: torch.Tensor, style: torch.Tensor):
        """``content_weight * L_c + style_weight * L_s + gram_weight * L_gram + ssim_weight * (1 - SSIM)`` for one batch."""
        cfg = self.cfg
        with self.autocast():
            with torch.no_grad():
                content_feat = self.encoder.encode(content, cfg.layer).float()
                style_feats = {k: v.float() for k, v in self.encoder(style, self.style_layers).items()}
            target = self.net(content_feat, self.transform.style_code(style_feats[cfg.layer]))
            output = self.decoder(target.contiguous(memory_format=torch.channels_last))
            output_feats = self.encoder(output, self.style_layers)
            loss_c = content_loss(output_feats[cfg.layer], content_feat)
            loss_s = self.style_loss(output, style, style_feats, output_feats)
            loss_g = gram_style_loss(output_feats, style_feats, self.style_layers) if cfg.gram_weight else loss_s * 0
        # outside autocast: SSIM's variances are differences of squares, which bf16 cannot hold
        loss_ssim = 1 - ssim_luma(output.float().clamp(0, 1), content.float()).mean()
        total = cfg.content_weight * loss_c + cfg.style_weight * loss_s + cfg.gram_weight * loss_g + cfg.ssim_weight * loss_ssim
        return total, {"content": loss_c, "style": loss_s, "gram": loss_g, "ssim": loss_ssim}

    @torch.no_grad()
    def sample_outputs(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            content_feat = self.encoder.encode(content, self.cfg.layer).float()
            code = self.transform.style_code(self.encoder.encode(style, self.cfg.layer).float())
            return self.decoder(self.transform(content_feat, code))

    def export_weights(self, path: Path) -> None:
        save_tensors(path, self.transform.state_dict(),
                     {"kind": self.kind, "layer": self.cfg.layer, "rank": str(self.cfg.rank),
                      "config": str(asdict(self.cfg))})
