"""The examples in the docstrings run, and say what they print: every module of
the package that holds one (``>>>``) is run through :mod:`doctest`."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import stylekit


def modules_with_examples() -> list[str]:
    found = []
    for info in pkgutil.walk_packages(stylekit.__path__, "stylekit."):
        spec = importlib.util.find_spec(info.name)
        source = spec.loader.get_source(info.name) if spec and spec.loader else None
        if source and ">>> " in source:
            found.append(info.name)
    return sorted(found)


MODULES = modules_with_examples()


def test_the_public_entry_points_have_examples():
    expected = {"stylekit.api", "stylekit.pipeline", "stylekit.adain.model", "stylekit.networks", "stylekit.cli",
                "stylekit.patch_swap", "stylekit.timing", "stylekit.files", "stylekit.checks", "stylekit.styles",
                "stylekit.evaluate", "stylekit.sheet"}
    assert expected <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see the output)"
