"""``stylekit.load``: one entry point for every method's stylizer."""

from __future__ import annotations

from .errors import StylekitError

METHODS = ("adain",)


def load(method: str = "adain", *, device: str = "auto", weights=None, encoder_weights=None, **options):
    """Load a ready-to-use stylizer.

    >>> model = stylekit.load("adain")                      # doctest: +SKIP
    >>> image = model.stylize("photo.jpg", "painting.jpg", alpha=0.8)  # doctest: +SKIP
    """
    if method == "adain":
        from .adain.model import AdaINStylizer

        return AdaINStylizer.load(weights=weights, encoder_weights=encoder_weights, device=device, **options)
    raise StylekitError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
