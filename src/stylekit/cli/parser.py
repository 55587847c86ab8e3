"""The argument parser every ``stylekit`` command is built on: one-line usage
errors that lead to the fix, sub-commands built on first use, API parameter
names in messages shown as the command's flags."""

from __future__ import annotations

import argparse
import difflib
import itertools
import re
import sys


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors (an unknown choice, a missing argument) take
    the same one-line form as every other error: ``stylekit: error: ...``, exit 2.
    Sub-command parsers inherit it (``add_subparsers`` uses the parent's class).

    ``build(parser)``, if given, adds the arguments when the parser is first
    used (parsing or help): building some sub-commands imports torch, which
    ``stylekit --help`` and the other sub-commands never need.

    Messages lead to the fix: an unknown option is reported by the sub-command
    that was given it, with the nearest option it has ("did you mean") and its
    help; an invalid choice suggests the nearest choice; a missing positional
    argument swallowed by ``--style`` says so."""

    #: the sub-command parser of the command line being parsed (its flags name the errors)
    deepest: "Parser | None" = None

    def __init__(self, *args, build=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._build = build
        self._words: list[str] = []  # what this parser was last given, for the messages

    def built(self) -> "Parser":
        if self._build is not None:
            build, self._build = self._build, None
            build(self)
        return self

    def parse_known_args(self, args=None, namespace=None):
        self._words = list(sys.argv[1:] if args is None else args)
        Parser.deepest = self  # sub-command parsers run inside their parent's call: the last one is the deepest
        return super(Parser, self.built()).parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            Parser.deepest.error("unrecognized arguments: " + " ".join(extras))
        return namespace

    def format_help(self) -> str:
        return super(Parser, self.built()).format_help()

    def format_usage(self) -> str:
        return super(Parser, self.built()).format_usage()

    def error(self, message: str):
        message = self._unknown_option() or self._missing_positional(message) or self._nearest_choice(message)
        self.exit(2, f"stylekit: error: {message} (see '{self.prog} --help')\n")

    def _known(self, word: str) -> bool:
        name = word.split("=", 1)[0]
        return name in self._option_string_actions or (
            name.startswith("--") and any(o.startswith(name) for o in self._option_string_actions))

    def _unknown_option(self) -> str | None:
        words = self._words[: self._words.index("--")] if "--" in self._words else self._words
        for word in words:
            if word.startswith("-") and not self._negative_number_matcher.match(word) and not self._known(word):
                name = word.split("=", 1)[0]
                options = [o for o in self._option_string_actions if o.startswith("--")]
                near = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
                return f"unknown option {name}" + (f"; did you mean {near[0]}?" if near else "")
        return None

    def _missing_positional(self, message: str) -> str | None:
        """``--style a.jpg photo.jpg`` with nothing before it: --style took the content too."""
        if not message.startswith("the following arguments are required") or "--style" not in self._words:
            return None
        start = self._words.index("--style") + 1
        taken = list(itertools.takewhile(lambda w: not w.startswith("-"), self._words[start:]))
        missing = message.split(":", 1)[1].strip().split(", ")[0]
        if len(taken) < 2 or missing.startswith("-"):
            return None
        return (f"no {missing} given: --style took {' '.join(taken)}; if {taken[-1]} is the {missing}, "
                f"put it before --style ({self.prog} {taken[-1]} --style {' '.join(taken[:-1])} ...)")

    @staticmethod
    def _nearest_choice(message: str) -> str:
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found:
            near = difflib.get_close_matches(found.group(1), re.findall(r"'([^']*)'", found.group(2)), n=1)
            if near:
                return f"{message}; did you mean '{near[0]}'?"
        return message


def add_group(commands, name: str, dest: str, help: str, description: str):
    """A command whose sub-commands are tools (``stylekit spade make-dataset``):
    returns the sub-parsers to add them to; one of them is required."""
    group = commands.add_parser(name, help=help, description=description)
    tools = group.add_subparsers(dest=dest, metavar="COMMAND")
    tools.required = True
    return tools


def as_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """The Python API's parameter names in a message (``patch_size must ...``) as the
    command's flags (``--patch-size must ...``)."""
    actions = parser._actions if parser is not None else []
    flags = {a.dest: max(a.option_strings, key=len) for a in actions if a.option_strings and a.dest != "help"}
    for dest, flag in flags.items():
        message = re.sub(rf"(?<![\w-]){re.escape(dest)}(?= must\b| \(-?\d|:)", flag, message)
    return message


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def warn(msg: str) -> None:
    print(msg, file=sys.stderr)
