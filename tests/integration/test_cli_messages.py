"""Help and error messages that lead to the fix, through the real ``stylekit`` process:
fast help without torch, descriptions and defaults, "did you mean", flags not
parameter names."""

from __future__ import annotations

import argparse
import re

import pytest

from stylekit.cli import build_parser

from ..conftest import make_image, run_stylekit as stylekit


def one_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stylekit: error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("args", [["--help"], ["stylize", "--help"], ["styles"]])
def test_help_does_not_import_torch(args):
    proc = stylekit(*args, python_flags=["-X", "importtime"])
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "stylekit.cli" in imported  # the measurement saw our imports
    assert not {m for m in imported if m == "torch" or m.startswith("torch.")}, "help imported torch"
    assert "usage: stylekit" in proc.stdout or "night_cafe" in proc.stdout


def _parsers(parser, name="stylekit"):
    parser.built()
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action._name_parser_map.items():
                yield from _parsers(p, f"{name} {sub}")


def test_every_command_has_a_description_and_each_default_once():
    seen = 0
    for name, parser in _parsers(build_parser()):
        seen += 1
        assert parser.description, f"{name} has no description"
        for action in parser._actions:
            assert (action.help or "").count("(default") <= 1, (name, action.option_strings, action.help)
    assert seen >= 20  # the walk reached the nested sub-commands


@pytest.mark.parametrize("trainer", ["adain", "style-swap", "spade"])
def test_train_help_shows_every_default(trainer):
    help_text = re.sub(r"\s+", " ", stylekit("train", trainer, "--help").stdout)
    parser = dict(_parsers(build_parser()))[f"stylekit train {trainer}"]
    checked = 0
    for action in parser._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS, "==SUPPRESS=="):
            said = re.search(r"default: ([^;)]*)", action.help or "")
            assert said, (action.option_strings, action.help)
            if said.group(1) != "by time":  # --save-every 0
                shown = said.group(1).split()[0]
                assert shown == str(action.default) or float(shown) == action.default, (action.option_strings, action.help)
            assert f"default: {said.group(1)}" in help_text
            checked += 1
    assert checked >= 10


@pytest.fixture
def files(tmp_path):
    make_image(tmp_path / "me.jpg", (64, 48), seed=1)
    make_image(tmp_path / "a.jpg", (48, 48), seed=2)
    make_image(tmp_path / "b.jpg", (48, 48), seed=3)
    return tmp_path


@pytest.mark.parametrize("args, expected", [
    (["stylize", "me.jpg", "--style", "a.jpg", "--preserve-colour", "-o", "x.jpg"],
     "unknown option --preserve-colour; did you mean --preserve-color? (see 'stylekit stylize --help')"),
    (["stylize", "me.jpg", "--styel", "a.jpg", "-o", "x.jpg"],
     "unknown option --styel; did you mean --style? (see 'stylekit stylize --help')"),
    (["stylise", "me.jpg"], "did you mean 'stylize'?"),
    (["stylize", "me.jpg", "--style", "a.jpg", "--method", "adan", "-o", "x.jpg"], "did you mean 'adain'?"),
    (["stylize", "--style", "a.jpg", "me.jpg", "-o", "x.jpg"],
     "no content given: --style took a.jpg me.jpg; if me.jpg is the content, put it before --style "
     "(stylekit stylize me.jpg --style a.jpg ...)"),
    (["stylize", "me.jpg", "--style", "a.jpg", "b.jpg", "-o", "x.jpg"],
     "add --style-weights to blend the 2 styles into one image (e.g. --style-weights 1 1), or use --output-dir"),
    (["stylize", "me.jpg", "--style", "a.jpg", "--method", "style-swap", "--patch-size", "0", "-o", "x.jpg"],
     "--patch-size must be"),
    (["stylize", "me.jpg", "--style", "a.jpg", "--size", "5", "-o", "x.jpg"], "--size must be 0 or at least 16"),
    (["stylize", "me.jpg", "--style", "a.jpg", "b.jpg", "--style-weights", "0.3,x", "-o", "x.jpg"],
     "argument --style-weights: expected numbers separated by spaces or commas, got '0.3,x'"),
    (["video", "me.jpg", "--style", "a.jpg", "-o", "x.mp4", "--max-frames", "0"], "--max-frames must be at least 1"),
])
def test_messages_lead_to_the_fix(files, args, expected):
    assert expected in one_error(stylekit(*args, cwd=files))
