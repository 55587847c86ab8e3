"""The one exception type users see.

Every problem caused by user input (a bad file, an out-of-range control, a
missing weight file) raises :class:`StylekitError`. It subclasses ``ValueError``
so library callers can catch either; the CLI turns it into a one-line message
and exit code 2.
"""


class StylekitError(ValueError):
    """A problem with the caller's input, reported in one line."""


def plural(count: int, noun: str, suffix: str = "s") -> str:
    """``1 mask``, ``2 masks``: a count with its noun in the right number."""
    return f"{count} {noun}" + ("" if count == 1 else suffix)


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
