"""stylekit: arbitrary neural style transfer.

    import stylekit
    model = stylekit.load("adain")
    model.stylize("photo.jpg", "painting.jpg", alpha=0.8).save("out.jpg")
"""

__version__ = "0.1.0"

from .api import load  # noqa: E402
from .errors import StylekitError  # noqa: E402

__all__ = ["load", "StylekitError", "__version__"]
