"""Count the checks in a test tree that can fail: ``assert`` statements and
``pytest.raises`` / ``pytest.warns`` blocks (with or as a call), plus calls of
``numpy.testing`` / ``torch.testing`` assert functions.

    python tools/count_assertions.py [tests]            # the total
    python tools/count_assertions.py tests --by-file    # and one line a file

A check inside a loop or a parametrised test counts once: this counts places
in the code, not executions. Asserts after ``if False`` or in unreached
helpers still count; the number is for comparing one tree with another.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

RAISES = {"raises", "warns", "deprecated_call"}


def _is_check_call(node: ast.Call) -> bool:
    f = node.func
    if isinstance(f, ast.Attribute):
        if f.attr in RAISES and isinstance(f.value, ast.Name) and f.value.id == "pytest":
            return True
        if f.attr.startswith("assert_") or f.attr in ("assert_close", "assert_allclose", "assert_equal"):
            return True  # np.testing.assert_allclose, torch.testing.assert_close, ...
    return isinstance(f, ast.Name) and f.id in ("assert_close", "assert_allclose", "assert_array_equal")


def count_file(path: Path) -> int:
    tree = ast.parse(path.read_text(), str(path))
    total = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            total += 1
        elif isinstance(node, ast.Call) and _is_check_call(node):
            total += 1
    return total


def count_tree(root: Path) -> dict[str, int]:
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
    return {str(p): count_file(p) for p in files}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", default=["tests"], help="test folders or files (default: tests)")
    parser.add_argument("--by-file", action="store_true", help="one line a file as well as the total")
    args = parser.parse_args(argv)
    counts = {}
    for p in args.paths:
        counts.update(count_tree(Path(p)))
    if args.by_file:
        for name, n in counts.items():
            print(f"{n:6d}  {name}")
    print(sum(counts.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
