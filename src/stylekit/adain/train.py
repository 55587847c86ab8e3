"""Training the AdaIN decoder (paper sec. 6.1 and the official implementation).

The decoder ``g`` learns to map ``t = AdaIN(f(c), f(s))`` back to an image whose
features match ``t`` (content loss) and whose channel statistics match the
style's at relu1_1, relu2_1, relu3_1 (and relu4_1 when the encoder reaches it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..encoder import style_layers_for
from ..errors import StylekitError
from ..functional import adain
from ..losses import content_loss, mean_std_style_loss
from ..training.decoder_task import DecoderTrainConfig, DecoderTrainTask


@dataclass(frozen=True)
class AdaINTrainConfig(DecoderTrainConfig):
    style_weight: float = field(default=10.0, metadata={"help": "weight of the style loss"})
    content_weight: float = field(default=1.0, metadata={"help": "weight of the content loss"})

    def __post_init__(self):
        super().__post_init__()
        if self.style_weight < 0 or self.content_weight < 0:
            raise StylekitError("--style-weight and --content-weight must be non-negative")


class AdaINTrainTask(DecoderTrainTask):
    kind = "adain"

    def __init__(self, cfg: AdaINTrainConfig, warn=None):
        super().__init__(cfg, warn)
        self.style_layers = style_layers_for(cfg.layer)

    def losses(self, content: torch.Tensor, style: torch.Tensor):
        """The paper's loss for one batch: ``content_weight * L_c + style_weight * L_s``."""
        cfg = self.cfg
        with self.autocast():
            with torch.no_grad():
                content_feat = self.encoder.encode(content, cfg.layer).float()
                style_feats = {k: v.float() for k, v in self.encoder(style, self.style_layers).items()}
                target = adain(content_feat, style_feats[cfg.layer])
            output = self.net(target)
            output_feats = self.encoder(output, self.style_layers)
            loss_c = content_loss(output_feats[cfg.layer], target)
            loss_s = mean_std_style_loss(output_feats, style_feats, self.style_layers)
        return cfg.content_weight * loss_c + cfg.style_weight * loss_s, {"content": loss_c, "style": loss_s}

    def sample_outputs(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            target = adain(self.encoder.encode(content, self.cfg.layer).float(),
                           self.encoder.encode(style, self.cfg.layer).float())
            return self.decoder(target)
