"""Training the AdaIN decoder (paper sec. 6.1 and the official implementation).

The decoder ``g`` learns to map ``t = AdaIN(f(c), f(s))`` back to an image whose
features match ``t`` (content loss) and whose channel statistics match the
style's at relu1_1, relu2_1, relu3_1 (and relu4_1 when the encoder reaches it).

Two extensions aim the decoder at bold, resolution-independent style:

* ``style_scales`` adds the style loss of the output and the style both
  downsampled 2x, 4x, ...: structure larger than the deepest layer's receptive
  field then counts too;
* ``pyramid`` trains the decoder inside the coarse-to-fine stylization that
  :class:`stylekit.adain.model.AdaINStylizer` runs by default
  (:mod:`stylekit.pyramid`): a crop is stylized at half and at full
  resolution and composed, the style losses are taken on the composed
  output, the content loss on each level's decoder output against its own
  AdaIN target (the mean of the two). The palette step and the finer level's
  input are held fixed for the gradient (it reaches the coarse level through
  the composition, not through a second VGG pass). Without the coarse
  level's own content term, nothing but the composite's style loss would
  constrain what the shared decoder paints at the coarse level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .. import pyramid
from ..color import transfer_palette
from ..decoder import load_decoder
from ..encoder import style_layers_for
from ..errors import StylekitError
from ..functional import adain
from ..losses import content_loss, mean_std_style_loss
from ..measures import downsample
from ..training.decoder_task import DecoderTrainConfig, DecoderTrainTask


@dataclass(frozen=True)
class AdaINTrainConfig(DecoderTrainConfig):
    style_weight: float = field(default=10.0, metadata={"help": "weight of the style loss"})
    content_weight: float = field(default=1.0, metadata={"help": "weight of the content loss"})
    style_scales: str = field(
        default="1",
        metadata={"help": "comma-separated downsampling factors at which the style loss is taken and summed "
                  "(e.g. 1,2,4: structure 2x and 4x larger than relu3_1 sees)"},
    )
    pyramid: bool = field(default=False, metadata={"help": "train through the coarse-to-fine stylization (2 levels)"})
    init_weights: str | None = field(default=None, metadata={"help": "start from these decoder weights (fine-tuning)"})

    def __post_init__(self):
        super().__post_init__()
        if self.style_weight < 0 or self.content_weight < 0:
            raise StylekitError("--style-weight and --content-weight must be non-negative")
        scales = self.scales()
        if self.crop // max(scales) < 32:
            raise StylekitError(f"--crop {self.crop} is too small for the style loss at scale {max(scales)} (needs 32 px)")

    def scales(self) -> tuple[int, ...]:
        try:
            scales = tuple(int(s) for s in str(self.style_scales).split(","))
        except ValueError:
            raise StylekitError(f"--style-scales must be comma-separated integers, got {self.style_scales!r}") from None
        if not scales or any(s < 1 for s in scales) or len(set(scales)) != len(scales):
            raise StylekitError(f"--style-scales must be distinct positive integers, got {self.style_scales!r}")
        return scales


class AdaINTrainTask(DecoderTrainTask):
    kind = "adain"

    def __init__(self, cfg: AdaINTrainConfig, warn=None):
        super().__init__(cfg, warn)
        self.style_layers = style_layers_for(cfg.layer)
        self.scales = cfg.scales()

    def start_fresh(self) -> None:
        """Called for a new run only: a resumed run takes its weights from the checkpoint."""
        if self.cfg.init_weights:
            start = load_decoder(self.cfg.init_weights)
            if start.from_layer != self.cfg.layer:
                raise StylekitError(f"--init-weights inverts {start.from_layer}, not {self.cfg.layer}")
            self.decoder.load_state_dict(start.state_dict())

    def style_loss(self, output: torch.Tensor, style: torch.Tensor, style_feats: dict | None = None,
                   output_feats: dict | None = None) -> torch.Tensor:
        """The mean/std style loss summed over ``self.scales``; features at scale 1 may be passed in."""
        total = 0.0
        for s in self.scales:
            if s == 1 and output_feats is not None:
                o = output_feats
            else:
                o = self.encoder(downsample(output, s), self.style_layers)
            if s == 1 and style_feats is not None:
                t = style_feats
            else:
                with torch.no_grad():
                    t = {k: v.float() for k, v in self.encoder(downsample(style, s), self.style_layers).items()}
            total = total + mean_std_style_loss(o, t, self.style_layers)
        return total

    def _decode_level(self, image: torch.Tensor, style: torch.Tensor):
        """(decoder output, its AdaIN target) for one level."""
        with torch.no_grad():
            target = adain(self.encoder.encode(image, self.cfg.layer).float(),
                           self.encoder.encode(style, self.cfg.layer).float())
        return self.net(target), target

    def losses(self, content: torch.Tensor, style: torch.Tensor):
        """``content_weight * L_c + style_weight * L_s`` for one batch (L_s over the style scales)."""
        cfg = self.cfg
        levels = {}
        with self.autocast():
            if not cfg.pyramid:
                with torch.no_grad():
                    content_feat = self.encoder.encode(content, cfg.layer).float()
                    style_feats = {k: v.float() for k, v in self.encoder(style, self.style_layers).items()}
                    target = adain(content_feat, style_feats[cfg.layer])
                output = self.net(target)
                output_feats = self.encoder(output, self.style_layers)
                loss_c = content_loss(output_feats[cfg.layer], target)
                loss_s = self.style_loss(output, style, style_feats, output_feats)
            else:
                output, loss_coarse, loss_fine = self._pyramid(content, style)
                loss_c = (loss_coarse + loss_fine) / 2
                loss_s = self.style_loss(output, style)
                levels = {"content_coarse": loss_coarse, "content_fine": loss_fine}
        return cfg.content_weight * loss_c + cfg.style_weight * loss_s, {"content": loss_c, "style": loss_s, **levels}

    def _pyramid(self, content: torch.Tensor, style: torch.Tensor):
        """The composed two-level output and each level's content loss (see the module docstring)."""
        h, w = content.shape[-2:]
        coarse_hw = (h // 2, w // 2)
        small = pyramid.resize_image(content, coarse_hw)
        draft, coarse_target = self._decode_level(
            small, pyramid.resize_image(style, (style.shape[-2] // 2, style.shape[-1] // 2)))
        loss_coarse = content_loss(self.encoder.encode(draft, self.cfg.layer), coarse_target)
        with torch.no_grad():
            matched = transfer_palette(draft.float().clamp(0, 1), style.float())
        draft = draft + (matched.to(draft.dtype) - draft).detach()
        up = F.interpolate(draft, size=(h, w), mode="bilinear", align_corners=False)
        mix = pyramid.CONTENT_MIX
        fine_in = ((1 - mix) * up.detach().float() + mix * content).clamp(0, 1)
        fine, target = self._decode_level(fine_in, style)
        loss_fine = content_loss(self.encoder.encode(fine, self.cfg.layer), target)
        band = (1 - pyramid.DETAIL) * pyramid.detail_band(fine) + pyramid.DETAIL * pyramid.detail_band(pyramid.luma(content))
        return up + band, loss_coarse, loss_fine

    def sample_outputs(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            if self.cfg.pyramid:
                return self._pyramid(content, style)[0]
            target = adain(self.encoder.encode(content, self.cfg.layer).float(),
                           self.encoder.encode(style, self.cfg.layer).float())
            return self.decoder(target)
