"""Where weight files come from, and proof that they are the right ones.

One function, :func:`resolve`, finds every weight file, in this order:

1. an explicit path given by the caller (``--encoder-weights``, ``weights=``);
2. ``$STYLEKIT_WEIGHTS`` - a directory holding the files, or one file;
3. the files shipped inside the package (our trained decoders; the encoder
   comes after the cache, step 4, so a deeper ``vgg_normalised.pth`` a user put
   there is still taken for the layers the shipped relu3_1 file lacks);
4. the user cache directory (``$XDG_CACHE_HOME/stylekit`` or ``~/.cache/stylekit``);
5. a download from the documented public URL, unless ``$STYLEKIT_OFFLINE`` is set
   (only reached when the package's own copy is missing).

Every file found by name is verified: shipped/downloaded files by the sha256 of
the file, the VGG encoder by the sha256 of its conv1_1...conv3_1 tensors, so the
shipped file, the small relu3_1 ``.pth`` and the full ``vgg_normalised.pth``
all verify. ``data/weights.json`` lists the shipped files with their sha256;
``data/NOTICE.md`` says where the encoder comes from and under which licence.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .encoder import IDENTITY_LAYERS, VGGEncoder, available_convs, canonical_state_dict
from .errors import StylekitError
from .files import atomic_write, load_state_file

PACKAGE_DATA = Path(__file__).parent / "data"


@dataclass(frozen=True)
class WeightSpec:
    name: str
    filenames: tuple[str, ...]  # accepted file names, preferred first
    description: str
    url: str | None = None  # where the first filename can be downloaded
    sha256: str | None = None  # of the whole file (shipped / downloaded files)
    tensor_sha256: str | None = None  # of the identity tensors (encoder)
    packaged: bool = False
    extra: dict = field(default_factory=dict)


ENCODER = WeightSpec(
    name="vgg19",
    filenames=("vgg19_normalised_relu3_1.pth", "vgg_normalised.pth", "vgg_r31.pth",
               "vgg19_normalised_relu3_1.safetensors"),
    description="normalised VGG-19 encoder (AdaIN / WCT)",
    url=(
        "https://github.com/hhsinping/stylescene/raw/dda9ea51e01ef91a35a746ea1df917e127bb7b4e/"
        "preprocess/vgg_r31.pth"
    ),
    sha256="f9bffd632f87360d4de1bcd1627246d2b41a6278aa46e1c1fe7212796b646b7e",
    tensor_sha256="83629d89aa90836e3cba434b2f08f975e7b2e2ab1a6ec495324146f2ce735991",
    extra={
        "full_url": "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth",
    },
)


def _packaged_index() -> dict[str, dict]:
    """data/weights.json: name -> {file, sha256, description} of every shipped file."""
    index = PACKAGE_DATA / "weights.json"
    return json.loads(index.read_text()) if index.exists() else {}


def packaged_encoder() -> Path | None:
    """The encoder file shipped inside the package, if this install has it."""
    entry = _packaged_index().get(ENCODER.name)
    return PACKAGE_DATA / entry["file"] if entry else None


def _packaged_specs() -> dict[str, WeightSpec]:
    """The shipped decoders (the encoder has its own spec, :data:`ENCODER`)."""
    entries = {k: v for k, v in _packaged_index().items() if k != ENCODER.name}
    return {
        name: WeightSpec(
            name=name,
            filenames=(entry["file"],),
            description=entry["description"],
            sha256=entry["sha256"],
            packaged=True,
        )
        for name, entry in entries.items()
    }


def spec(name: str) -> WeightSpec:
    if name == ENCODER.name:
        return ENCODER
    specs = _packaged_specs()
    if name not in specs:
        known = ", ".join([ENCODER.name, *specs])
        raise StylekitError(f"unknown weights {name!r}; known: {known}")
    return specs[name]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stylekit"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def encoder_tensor_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over conv1_1...conv3_1 (weight, bias), as little-endian float32."""
    state = canonical_state_dict(state)
    digest = hashlib.sha256()
    for layer in IDENTITY_LAYERS:
        for part in ("weight", "bias"):
            key = f"{layer}.{part}"
            if key not in state:
                raise StylekitError(f"encoder weights lack {key}")
            digest.update(state[key].detach().float().contiguous().numpy().astype("<f4").tobytes())
    return digest.hexdigest()


def _how_to_get(s: WeightSpec) -> str:
    if s.packaged:
        return f"{s.filenames[0]} ships inside the stylekit package; reinstall stylekit"
    lines = (
        "stylekit ships it (data/vgg19_normalised_relu3_1.safetensors): reinstall stylekit, or "
        f"download {s.url} to {cache_dir() / s.filenames[0]}"
        f" (or the full {s.extra['full_url']} for layers deeper than relu3_1),"
        " or set STYLEKIT_WEIGHTS to a directory holding "
        + " / ".join(s.filenames[:2])
        + ", or pass the file's path explicitly"
    )
    return lines


def _candidates(s: WeightSpec):
    env = os.environ.get("STYLEKIT_WEIGHTS")
    if env:
        env_path = Path(env).expanduser()
        if env_path.is_file():
            if env_path.name in s.filenames:
                yield env_path
        else:
            for filename in s.filenames:
                yield env_path / filename
    if s.packaged:
        yield PACKAGE_DATA / s.filenames[0]
    for filename in s.filenames:
        yield cache_dir() / filename
    if s is ENCODER and (shipped := packaged_encoder()) is not None:
        yield shipped


def verify(s: WeightSpec, path: Path) -> None:
    """Raise unless ``path`` holds the weights ``s`` names."""
    if s.tensor_sha256 is not None:
        state = load_state_file(path)
        got = encoder_tensor_sha256(state)
        if got != s.tensor_sha256:
            raise StylekitError(
                f"{path} fails its checksum: its conv1_1..conv3_1 tensors are not the normalised VGG-19 "
                f"(sha256 {got[:12]}..., expected {s.tensor_sha256[:12]}...)"
            )
        return
    if s.sha256 is not None:
        got = file_sha256(path)
        if got != s.sha256:
            raise StylekitError(
                f"{path} fails its checksum (sha256 {got[:12]}..., expected {s.sha256[:12]}...); "
                "the file is corrupt or not the expected weights"
            )


def _download(s: WeightSpec) -> Path:
    """Fetch ``s.url`` into the cache; the file appears only once it is verified."""

    def fetch(tmp: Path) -> None:
        with open(tmp, "wb") as out, urllib.request.urlopen(s.url, timeout=60) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        verify(s, tmp)

    return atomic_write(cache_dir() / s.filenames[0], fetch)


def resolve(name: str, path: str | os.PathLike | None = None, *, verify_checksum: bool = True) -> Path:
    """Return the path of weight file ``name`` (see the module docstring for the order)."""
    s = spec(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.exists():
            raise StylekitError(f"weights file not found: {p}")
        if not p.is_file():
            raise StylekitError(f"weights path is not a file: {p}")
        if verify_checksum and s.tensor_sha256 is not None:
            verify(s, p)
        return p
    for candidate in _candidates(s):
        if candidate.is_file():
            if verify_checksum:
                verify(s, candidate)
            return candidate
    if s.url and not os.environ.get("STYLEKIT_OFFLINE"):
        try:
            return _download(s)
        except StylekitError:
            raise
        except Exception as exc:  # no network, HTTP error, ...
            raise StylekitError(
                f"{s.description} weights not found and the download failed ({exc}); {_how_to_get(s)}"
            ) from None
    raise StylekitError(f"{s.description} weights not found; {_how_to_get(s)}")


def load_encoder(
    path: str | os.PathLike | None = None,
    last_layer: str = "relu3_1",
    device: torch.device | str = "cpu",
) -> VGGEncoder:
    """The frozen VGG-19 encoder up to ``last_layer``, from verified weights."""
    file = resolve(ENCODER.name, path)
    state = load_state_file(file)
    encoder = VGGEncoder(state, last_layer=last_layer, source=str(file))
    return encoder.to(device)


def encoder_depth(path: str | os.PathLike | None = None) -> str:
    """The deepest relu layer the available encoder weights reach."""
    state = canonical_state_dict(load_state_file(resolve(ENCODER.name, path)))
    convs = available_convs(state)
    if not convs:
        raise StylekitError("encoder weights contain no conv layers")
    return "relu" + convs[-1][len("conv"):]
