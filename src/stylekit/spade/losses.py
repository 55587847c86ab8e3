"""SPADE's objective, as the authors' code computes it (``models/networks/loss.py``).

Discriminator outputs are lists (one per scale) of lists (one per stage, the
last being the score map), as :class:`stylekit.spade.model.MultiscaleDiscriminator`
returns them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..encoder import VGGEncoder

#: Per-layer weights of the VGG loss: the code's 1/32, 1/16, 1/8 for
#: relu1_1..relu3_1 (its 1/4 and 1 for relu4_1, relu5_1 need deeper weights).
VGG_LAYER_WEIGHTS = {"relu1_1": 1 / 32, "relu2_1": 1 / 16, "relu3_1": 1 / 8, "relu4_1": 1 / 4, "relu5_1": 1.0}


def scores(outputs: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    return [stages[-1] for stages in outputs]


def hinge_d_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean(relu(1 - D(real))), mean(relu(1 + D(fake))))``, each averaged over the scales."""
    r = sum(F.relu(1 - s.float()).mean() for s in scores(real)) / len(real)
    f = sum(F.relu(1 + s.float()).mean() for s in scores(fake)) / len(fake)
    return r, f


def hinge_g_loss(fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """``-mean(D(fake))`` averaged over the scales."""
    return -sum(s.float().mean() for s in scores(fake)) / len(fake)


def feature_matching_loss(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]) -> torch.Tensor:
    """L1 between the discriminator's intermediate features (every stage but the
    scores) of fake and real, summed over stages and averaged over scales.
    The real features are targets (detached). Multiply by the weight (paper: 10)."""
    total = 0.0
    for f_stages, r_stages in zip(fake, real):
        for f, r in zip(f_stages[:-1], r_stages[:-1]):
            total = total + F.l1_loss(f.float(), r.detach().float())
    return total / len(fake)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the latent dimensions and
    averaged over the batch (the code sums over its per-GPU batch too; the
    mean makes the weight 0.05 independent of the batch size)."""
    mu, logvar = mu.float(), logvar.float()
    return (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


def vgg_loss(encoder: VGGEncoder, fake: torch.Tensor, real: torch.Tensor, layers=("relu1_1", "relu2_1", "relu3_1")) -> torch.Tensor:
    """The code's perceptual loss: weighted L1 between VGG features of fake and
    real. Images in [-1, 1]; the encoder takes [0, 1]."""
    feats_fake = encoder((fake + 1) / 2, layers)
    with torch.no_grad():
        feats_real = encoder((real + 1) / 2, layers)
    return sum(VGG_LAYER_WEIGHTS[k] * F.l1_loss(feats_fake[k].float(), feats_real[k].float()) for k in layers)
