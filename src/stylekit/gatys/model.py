"""Gatys et al. (2016): optimise the image itself so its VGG features keep the
content's and its Gram matrices match the style's.

Controls (sec. 7.1 of the AdaIN paper, as for the other methods): ``alpha``
blends each target Gram matrix with the content image's own
(``alpha G(s) + (1 - alpha) G(c)``: 0 reproduces the content); style weights
blend the styles' Gram matrices; masks give each style a region, where a
region-wise Gram loss (the Gram matrix of the masked features, Gatys et al.
2017) pulls that region toward its style, and uncovered positions only feel
the content loss. Colour and sizes come from :class:`stylekit.pipeline.Stylizer`.
"""

from __future__ import annotations

import torch

from ..devices import resolve_device
from ..encoder import LAYER_INDEX, VGGEncoder, check_layer_name, deepest
from ..errors import StylekitError
from ..losses import content_loss, gram_loss, gram_matrix, total_variation
from ..optimize import check_options, check_weight, initial_image, optimize_image
from ..pipeline import Stylizer, equal_weights, masks_at
from ..weights import encoder_depth, load_encoder

#: Gatys et al.'s style layers, used as deep as the encoder weights reach.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

# Chosen by eye on dev_eval pairs at 256 px with the normalised VGG-19 (whose
# activations average about 1 per layer) after 100 L-BFGS steps: at the content
# image the Gram loss over relu1_1..relu3_1 is of order 1 and the relu3_1
# content MSE of a noise image about 10. A style weight of 10 gives clearly
# stylized results that keep the layout; 100 and above start to reshape objects
# (a polar bear turned into the style's figures). Weights deeper than relu3_1
# change both terms: recalibrate when such weights are used.
DEFAULT_CONTENT_WEIGHT = 1.0
DEFAULT_STYLE_WEIGHT = 10.0
DEFAULT_STEPS = 100

#: Peak memory per image pixel, above the idle process: 11,324 MiB at
#: 2048 x 2048 on the CPU with the relu3_1 encoder (docs/performance.md,
#: Memory), which included two L-BFGS correction pairs; deeper encoders need
#: somewhat more. Large images are refused up front when this estimate exceeds
#: the available memory.
PEAK_BYTES_PER_PIXEL = 2_850


def default_layers(depth: str) -> tuple[str, tuple[str, ...]]:
    """(content layer, style layers) for encoder weights reaching ``depth``:
    relu4_2 for content when available (the paper's), else relu3_1."""
    check_layer_name(depth)
    reach = LAYER_INDEX[depth]
    if reach < LAYER_INDEX["relu3_1"]:
        raise StylekitError(f"gatys needs encoder weights up to relu3_1 at least; these stop at {depth}")
    content = "relu4_2" if reach >= LAYER_INDEX["relu4_2"] else "relu3_1"
    return content, tuple(l for l in STYLE_LAYERS if LAYER_INDEX[l] <= reach)


class GatysStylizer(Stylizer):
    method = "gatys"

    def __init__(
        self,
        encoder: VGGEncoder,
        device: torch.device | str = "cpu",
        *,
        content_layer: str | None = None,
        style_layers=None,
        content_weight: float = DEFAULT_CONTENT_WEIGHT,
        style_weight: float = DEFAULT_STYLE_WEIGHT,
        tv_weight: float = 0.0,
        steps: int = DEFAULT_STEPS,
        optimizer: str = "lbfgs",
        lr: float | None = None,
        init: str = "content",
        seed: int = 0,
        progress: bool = True,
    ):
        self.device = resolve_device(device)
        default_content, default_style = default_layers(encoder.last_layer)
        self.content_layer = content_layer or default_content
        self.style_layers = tuple(style_layers) if style_layers is not None else default_style
        if not self.style_layers:
            raise StylekitError("gatys needs at least one style layer")
        used = (self.content_layer, *self.style_layers)
        for name in used:
            if check_layer_name(name).kind != "relu":
                raise StylekitError(f"gatys uses relu layers, got {name!r}")
        if LAYER_INDEX[deepest(used)] > LAYER_INDEX[encoder.last_layer]:
            raise StylekitError(f"layer {deepest(used)!r} is deeper than the encoder ({encoder.last_layer})")
        self.layers = tuple(dict.fromkeys(used))
        self.content_weight = check_weight(content_weight, "content_weight")
        self.style_weight = check_weight(style_weight, "style_weight")
        self.tv_weight = check_weight(tv_weight, "tv_weight")
        check_options(steps, optimizer, lr, init)
        self.steps, self.optimizer, self.lr, self.init, self.seed = steps, optimizer, lr, init, seed
        self.progress = progress
        self.encoder = encoder.to(self.device).eval()

    @classmethod
    def load(cls, weights=None, encoder_weights=None, device="auto", **options) -> "GatysStylizer":
        """The verified VGG-19 encoder, as deep as its weights reach (up to relu5_1)."""
        if weights is not None:
            raise StylekitError("gatys optimises the image and uses no decoder weights; drop --weights / weights=")
        depth = encoder_depth(encoder_weights)
        content_layer, style_layers = default_layers(depth)
        encoder = load_encoder(encoder_weights, last_layer=deepest((content_layer, *style_layers)))
        return cls(encoder, resolve_device(device), **options)

    @torch.no_grad()
    def prepare_style(self, style: torch.Tensor) -> dict[str, torch.Tensor]:
        """A style's encoding for Gatys: its Gram matrix at each style layer."""
        fs = self.encoder(style, self.style_layers)
        return {l: gram_matrix(fs[l]) for l in self.style_layers}

    def targets(self, content, styles, weights=None, masks=None, alpha: float = 1.0) -> tuple[torch.Tensor, list[dict], list[dict] | None]:
        """(content features, [Gram targets per region], [feature masks per region] or None).

        Without masks there is one "region", the whole image, whose targets
        blend the styles' Gram matrices by ``weights``.
        """
        return self.prepared_targets(content, [self.prepare_style(s) for s in styles], weights, masks, alpha)

    @torch.no_grad()
    def prepared_targets(self, content, style_grams, weights=None, masks=None, alpha: float = 1.0):
        """:meth:`targets` from styles' Gram matrices (:meth:`prepare_style`)."""
        weights = equal_weights(weights, len(style_grams))
        fc = self.encoder(content, self.layers)
        gram_c = {l: gram_matrix(fc[l]) for l in self.style_layers}
        if masks is None:
            blend = {l: sum(w * g[l] for w, g in zip(weights, style_grams)) for l in self.style_layers}
            return fc[self.content_layer], [{l: alpha * blend[l] + (1 - alpha) * gram_c[l] for l in self.style_layers}], None
        region_masks = [dict() for _ in masks]
        for l in self.style_layers:
            for i, m in enumerate(masks_at(masks, fc[l].shape[-2:])):
                region_masks[i][l] = m
        region_targets = [
            {l: alpha * g[l] + (1 - alpha) * gram_matrix(fc[l], rm[l]) for l in self.style_layers}
            for g, rm in zip(style_grams, region_masks)
        ]
        return fc[self.content_layer], region_targets, region_masks

    def loss_fn(self, content_target, gram_targets, region_masks):
        """The loss closure for :func:`stylekit.optimize.optimize_image`: named, weighted terms."""

        def loss(image: torch.Tensor) -> dict[str, torch.Tensor]:
            feats = self.encoder(image, self.layers)
            if region_masks is None:
                style = gram_loss(feats, gram_targets[0], self.style_layers)
            else:
                style = sum(gram_loss(feats, t, self.style_layers, m) for t, m in zip(gram_targets, region_masks))
            terms = {
                "content": self.content_weight * content_loss(feats[self.content_layer], content_target),
                "style": self.style_weight * style,
            }
            if self.tv_weight > 0:
                terms["tv"] = self.tv_weight * total_variation(image)
            return terms

        return loss

    def transfer_prepared(self, content, prepared, weights=None, masks=None, alpha: float = 1.0, *, callback=None,
                          callback_steps=None):
        """``callback(step, image)`` / ``callback_steps``: see :func:`stylekit.optimize.optimize_image`
        (the loss curves of ``stylekit evaluate --curve`` use them)."""
        content_target, gram_targets, region_masks = self.prepared_targets(content, prepared, weights, masks, alpha)
        return optimize_image(
            self.loss_fn(content_target, gram_targets, region_masks),
            initial_image(content, self.init, self.seed),
            steps=self.steps, optimizer=self.optimizer, lr=self.lr, progress=self.progress, desc="gatys",
            callback=callback, callback_steps=callback_steps, bytes_per_pixel=PEAK_BYTES_PER_PIXEL,
        )
