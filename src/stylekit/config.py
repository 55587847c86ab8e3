"""Frozen dataclass configs <-> argparse, so every flag maps onto one config field.

A field's ``metadata`` may carry ``help`` and ``choices``; ``flag=False`` keeps
it off the command line (for fields set by the program).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

#: what a trainer's ``--precision`` takes (:func:`stylekit.devices.resolve_precision`)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def device_field():
    """A config's ``device`` field: ``--device auto|cpu|cuda``."""
    return dataclasses.field(default="auto", metadata={"help": "auto, cpu or cuda"})


def precision_field(default: str, help: str):
    """A config's ``precision`` field: ``--precision`` of :data:`PRECISIONS`."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": PRECISIONS})


def _base_type(tp):
    if isinstance(tp, str):
        tp = eval(tp, {"typing": typing}, {})  # annotations are postponed strings
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0]
    return tp


def add_arguments(parser: argparse.ArgumentParser, cls, skip=(), required=()) -> None:
    for f in dataclasses.fields(cls):
        if f.name in skip or f.metadata.get("flag") is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = _base_type(f.type)
        has_default = f.default is not dataclasses.MISSING
        kwargs = {"dest": f.name, "help": f.metadata.get("help")}
        if has_default and kwargs["help"] and f.default is not None and "(default" not in kwargs["help"]:
            kwargs["help"] += f" (default: {f.default})"
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = kind
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
            if kind in (int, float, str):
                kwargs["metavar"] = f.metadata.get("metavar", f.name.upper())
        if has_default:
            kwargs["default"] = f.default
        else:
            kwargs["required"] = True
        if f.name in required:
            kwargs["required"] = True
        parser.add_argument(flag, **kwargs)


def from_namespace(cls, ns: argparse.Namespace, **overrides):
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)}
    values.update(overrides)
    return cls(**values)
