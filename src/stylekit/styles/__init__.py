"""The built-in styles: public-domain paintings shipped with the package.

    >>> from stylekit import styles
    >>> [s.name for s in styles.available()][:3]          # doctest: +SKIP
    ['castle_tale', 'composition_xiii', 'contrast_of_forms']
    >>> styles.get("night_cafe").title, styles.path("night_cafe")   # doctest: +SKIP
    ('The Night Café', PosixPath('.../stylekit/styles/night_cafe.jpg'))
    >>> model.stylize("photo.jpg", styles.path("night_cafe"))       # doctest: +SKIP

Each is a small JPEG (at most 512 px) listed in ``styles.json`` with its title,
painter, year and source (GitHub repository, path, commit); ``README.md`` here
is the same list as a table, with why each is in the public domain. On the
command line ``--style NAME`` takes a built-in style by name where no file of
that name exists, and ``stylekit styles`` lists them. This module imports
neither torch nor Pillow until a picture is loaded.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import StylekitError

FOLDER = Path(__file__).parent


@dataclass(frozen=True)
class BuiltinStyle:
    name: str
    title: str
    painter: str
    lived: str  # the painter's years, e.g. "1853–1890"
    year: str  # of the work, e.g. "1888" or "c. 1503–1519"
    repository: str  # where the picture comes from: GitHub owner/name,
    source_path: str  # the file's path in it,
    commit: str  # and the commit

    @property
    def path(self) -> Path:
        return FOLDER / f"{self.name}.jpg"

    @property
    def label(self) -> str:
        """``The Night Café — Vincent van Gogh, 1888``."""
        return f"{self.title} — {self.painter}, {self.year}"

    @property
    def licence(self) -> str:
        return (f"public domain: {self.painter} died in {self.lived.split('–')[-1]} and the work dates from "
                f"{self.year}; a faithful photograph of it adds no copyright")

    def load(self):
        """The picture as an RGB PIL image."""
        from ..images import load_pil

        return load_pil(self.path)

    def as_dict(self) -> dict:
        """Everything about the style, JSON-ready (the web service's gallery)."""
        return {"name": self.name, "title": self.title, "painter": self.painter, "lived": self.lived,
                "year": self.year, "label": self.label, "licence": self.licence, "file": self.path.name,
                "source": {"repository": self.repository, "path": self.source_path, "commit": self.commit}}


@lru_cache(maxsize=1)
def _index() -> dict[str, BuiltinStyle]:
    entries = json.loads((FOLDER / "styles.json").read_text(encoding="utf-8"))
    return {e["name"]: BuiltinStyle(name=e["name"], title=e["title"], painter=e["painter"], lived=e["lived"],
                                    year=e["year"], repository=e["repository"], source_path=e["path"],
                                    commit=e["commit"])
            for e in entries}


def available() -> list[BuiltinStyle]:
    """Every built-in style, by name."""
    return [_index()[name] for name in sorted(_index())]


def names() -> list[str]:
    return sorted(_index())


def get(name: str) -> BuiltinStyle:
    """The built-in style ``name``; an unknown name is a :class:`StylekitError` naming the nearest."""
    try:
        return _index()[name]
    except KeyError:
        near = difflib.get_close_matches(str(name), names(), n=1)
        hint = f"; did you mean {near[0]}?" if near else f"; the built-in styles are {', '.join(names())}"
        raise StylekitError(f"no built-in style {name!r}{hint}") from None


def path(name: str) -> Path:
    """The JPEG of built-in style ``name``."""
    return get(name).path


def load(name: str):
    """Built-in style ``name`` as an RGB PIL image."""
    return get(name).load()


def is_builtin(name: str) -> bool:
    return name in _index()
