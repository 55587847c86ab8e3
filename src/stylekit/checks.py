"""Input checks shared by every public function: each raises
:class:`stylekit.errors.StylekitError` naming the argument and the value.

>>> check_int(3, "steps", 1)
3
>>> check_int(True, "steps", 1)
Traceback (most recent call last):
...
stylekit.errors.StylekitError: steps must be a positive integer, got True
>>> check_number(0.5, "alpha", 0, 1)
0.5
"""

from __future__ import annotations

import math

import torch

from .errors import StylekitError


def is_int(value) -> bool:
    """An ``int`` that is not a ``bool`` (``True`` is an ``int`` to Python, never a count to us)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(minimum, maximum) -> str:
    if maximum is None:
        return {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}")
    if minimum is None:
        return f"an integer <= {maximum}"
    return f"an integer from {minimum} to {maximum}"


def _in_range(value, minimum, maximum) -> bool:
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def check_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` if it is an integer within ``[minimum, maximum]`` (either bound may be None)."""
    if not is_int(value) or not _in_range(value, minimum, maximum):
        raise StylekitError(f"{name} must be {_integer(minimum, maximum)}, got {value!r}")
    return value


def check_optional_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """:func:`check_int`, where None (the default, or "no limit") is allowed too."""
    if value is not None and (not is_int(value) or not _in_range(value, minimum, maximum)):
        raise StylekitError(f"{name} must be {_integer(minimum, maximum)} or None, got {value!r}")
    return value


def check_number(value, name: str, minimum: float | None = None, maximum: float | None = None, *,
                 positive: bool = False) -> float:
    """``value`` as a float if it is a finite real number within ``[minimum,
    maximum]`` (either bound may be None); ``positive``: above zero as well."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and _in_range(value, minimum, maximum) and (value > 0 or not positive))
    if not ok:
        if positive and maximum is None:
            what = "a positive number"
        elif minimum == 0 and maximum is None:
            what = "a non-negative number"
        elif minimum is None and maximum is None:
            what = "a finite number"
        elif maximum is None:
            what = f"a number >= {minimum}"
        else:
            what = f"a number from {minimum} to {maximum}"
        raise StylekitError(f"{name} must be {what}, got {value!r}")
    return float(value)


def check_choice(value, name: str, choices) -> str:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise StylekitError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value


def check_feature_map(x, name: str) -> None:
    """A floating-point ``(N, C, H, W)`` tensor."""
    if not isinstance(x, torch.Tensor):
        raise StylekitError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise StylekitError(f"{name} must have shape (N, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise StylekitError(f"{name} must be a floating-point tensor, got {x.dtype}")
