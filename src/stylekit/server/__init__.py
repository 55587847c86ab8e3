"""``stylekit serve``: a FastAPI web service with a browser page.

Needs the ``[serve]`` extra (``pip install 'stylekit[serve]'``).
"""

from .app import EXAMPLES, STYLES, Limits, Picture, create_app, load_models, serve

__all__ = ["EXAMPLES", "STYLES", "Limits", "Picture", "create_app", "load_models", "serve"]
