"""``stylekit.load``: one entry point for every method's stylizer."""

from __future__ import annotations

from .errors import StylekitError

METHODS = ("adain", "style-swap", "gatys", "fast")


def load(method: str = "adain", *, device: str = "auto", weights=None, encoder_weights=None, **options):
    """Load a ready-to-use stylizer.

    >>> model = stylekit.load("adain")                      # doctest: +SKIP
    >>> image = model.stylize("photo.jpg", "painting.jpg", alpha=0.8)  # doctest: +SKIP
    >>> slow = stylekit.load("gatys", steps=200)               # doctest: +SKIP
    >>> swap = stylekit.load("style-swap", optimize=True)      # doctest: +SKIP

    ``options`` go to the method's ``load`` (e.g. ``patch_size``, ``steps``,
    ``optimizer``, ``tv_weight``, ``init``).
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
