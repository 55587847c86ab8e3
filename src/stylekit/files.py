"""Files stylekit writes and reads besides images: every write atomic, every
read safe.

* :func:`atomic_write`: a temp file beside the target, renamed onto it, so a
  reader (or a run killed mid-write) never sees half a file;
* :func:`safe_torch_load`: ``torch.load`` that never unpickles code;
* :func:`save_tensors` / :func:`load_tensors`: safetensors files with a
  string metadata header (what a trained network's file says about itself);
* :func:`load_state_file`: a weight file of either kind as a dict of tensors.

>>> import tempfile, torch
>>> path = Path(tempfile.mkdtemp()) / "net.safetensors"
>>> _ = save_tensors(path, {"w": torch.ones(2)}, {"kind": "demo"})
>>> tensors, meta = load_tensors(path)
>>> tensors["w"].tolist(), meta["kind"]
([1.0, 1.0], 'demo')
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch

from .errors import StylekitError, one_line


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_parent(path: Path) -> None:
    """Refuse a path whose nearest existing ancestor is a file, not a directory."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise StylekitError(f"cannot write {path}: {parent} is a file, not a directory")
            return


def output_directory(path: str | os.PathLike, flag: str = "--out") -> Path:
    """``path`` as a directory to write into, created if missing; a file there
    is an error naming ``flag``."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise StylekitError(f"{flag} names a file, not a directory: {out}")
    out.mkdir(parents=True, exist_ok=True)
    return out


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` then rename onto ``path``: readers never see half a
    file. The folder is created; the temp file (``.NAME.*.tmp`` beside the
    target) is removed if ``write`` fails. Returns ``path``."""
    path = Path(path)
    check_parent(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StylekitError(f"cannot create the directory for {path}: {exc.strerror or exc}") from None
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def safe_torch_load(path: str | os.PathLike):
    """``torch.load`` with ``weights_only=True``: tensors and plain containers,
    never code. A refusal raises :class:`StylekitError` with a one-line reason
    (torch's own message spans many lines, with terminal colour codes, and
    suggests loading the file unsafely); torch's warnings about odd pickle
    protocols are kept off stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            message = str(exc)
            if "Weights only load failed" not in message:
                raise StylekitError(one_line(exc)) from None
            found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n|$)", message, re.S)
            detail = f" ({found.group(1).strip()})" if found else ""
            raise StylekitError(
                "refused by the safe loader: the file holds more than tensors, or is not a torch file, "
                f"and stylekit never unpickles code{detail}"
            ) from None


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` (as float32 on the CPU) to a safetensors file atomically,
    with ``metadata`` (strings) in its header. Returns ``path``."""
    from safetensors.torch import save_file

    plain = {k: v.detach().float().cpu().contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(plain, str(tmp), metadata=metadata))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file's tensors and its metadata header ({} if it has none)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as fh:
            return tensors, fh.metadata() or {}
    except Exception as exc:  # safetensors raises several types for missing and corrupt files
        raise StylekitError(f"cannot read {path}: {one_line(exc)}") from None


def load_state_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A weight file (``.safetensors``, or a ``.pth`` read by :func:`safe_torch_load`)
    as a plain dict of tensors; a ``{"state_dict": ...}`` wrapper is unwrapped."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_tensors(path)[0]
    try:
        state = safe_torch_load(path)
    except StylekitError as exc:
        raise StylekitError(f"cannot read {path}: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise StylekitError(f"{path} is not a state dict of tensors")
    return OrderedDict(state)
