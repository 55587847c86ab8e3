"""``stylekit.load``: one entry point for every method's stylizer."""

from __future__ import annotations

from .errors import StylekitError

METHODS = ("adain", "style-swap", "gatys", "fast")


def load(method: str = "adain", *, device: str = "auto", weights=None, encoder_weights=None, **options):
    """Load a ready-to-use stylizer (:class:`stylekit.pipeline.Stylizer`):
    ``method`` of :data:`METHODS` on ``device`` (``auto``: CUDA where
    available), with its shipped networks unless ``weights`` (the method's
    decoder, inverse or fast network) and ``encoder_weights`` (VGG-19) name
    others. ``options`` go to the method's ``load`` (e.g. ``patch_size``,
    ``steps``, ``optimizer``, ``tv_weight``, ``init``, ``optimize``).

    >>> import stylekit
    >>> from stylekit import styles
    >>> model = stylekit.load("adain", device="cpu")
    >>> image = model.stylize(styles.path("castle_tale"), styles.path("composition_xiii"), alpha=0.8, size=64)
    >>> image.size  # a PIL image: the content's longer side resized to 64
    (64, 47)
    """
    if method == "adain":
        from .adain.model import AdaINStylizer

        return AdaINStylizer.load(weights=weights, encoder_weights=encoder_weights, device=device, **options)
    if method == "style-swap":
        from .style_swap.model import StyleSwapStylizer

        return StyleSwapStylizer.load(weights=weights, encoder_weights=encoder_weights, device=device, **options)
    if method == "gatys":
        from .gatys.model import GatysStylizer

        return GatysStylizer.load(weights=weights, encoder_weights=encoder_weights, device=device, **options)
    if method == "fast":
        from .fast.stylizer import FastStylizer

        return FastStylizer.load(weights=weights, encoder_weights=encoder_weights, device=device, **options)
    raise StylekitError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
