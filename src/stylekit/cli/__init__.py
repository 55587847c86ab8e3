"""The ``stylekit`` command line: argument parsing and messages only, no math.

One module per command group (:mod:`.stylize`, :mod:`.evaluate`,
:mod:`.video`, :mod:`.serve`, :mod:`.styles` with ``sheet``, :mod:`.bench`,
:mod:`.export`, :mod:`.spade`, :mod:`.train`, :mod:`.singan`), each with an
``add_commands(commands)`` that adds its parsers; the flags several commands
share are defined once in :mod:`.flags`, the parser and its one-line errors
in :mod:`.parser`, and :mod:`.main` puts them together. Nothing here imports
torch at module level: ``stylekit --help`` stays fast.

>>> from stylekit.cli import build_parser
>>> build_parser().parse_args(["stylize", "photo.jpg", "--style", "night_cafe"]).alpha
1.0
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
