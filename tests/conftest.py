"""Shared fixtures. Tests never download: STYLEKIT_OFFLINE is set for the whole run.

Every test runs with the encoder that ships inside the package (whatever
``$STYLEKIT_WEIGHTS`` the caller has set is dropped); tests of training images
need ``../shared/data`` (or ``$STYLEKIT_DATA``) and skip, saying so, without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylekit.weights import packaged_encoder

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STYLEKIT_SHARED", REPO.parent / "shared"))
#: the VGG-19 encoder shipped in the package (safetensors, stylekit's key layout)
VGG_FILE = packaged_encoder()
#: the original fp32 .pth the shipped file was made from, where a checkout has it beside
ORIGINAL_VGG_FILE = SHARED / "weights" / "vgg19_normalised_relu3_1.pth"
DATA_DIR = Path(os.environ.get("STYLEKIT_DATA", SHARED / "data"))

os.environ["STYLEKIT_OFFLINE"] = "1"
os.environ.pop("STYLEKIT_WEIGHTS", None)

needs_data = pytest.mark.skipif(
    not (DATA_DIR / "dev_eval").is_dir(),
    reason=f"shared image data not found at {DATA_DIR} (put ../shared beside the clone or set STYLEKIT_DATA)",
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # A test must never find (or write) weights in the user's real cache.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def no_shipped_inverse(monkeypatch):
    """The package as it would be without a shipped style-swap inverse network."""
    import stylekit.weights as weights

    packaged = weights._packaged_specs
    monkeypatch.setattr(weights, "_packaged_specs",
                        lambda: {k: v for k, v in packaged().items() if k != "style-swap-inverse-relu3_1"})


@pytest.fixture
def no_shipped_encoder(monkeypatch):
    """The package as it would be without its copy of the encoder."""
    import stylekit.weights as weights

    monkeypatch.setattr(weights, "packaged_encoder", lambda: None)


@pytest.fixture(scope="session")
def vgg_state():
    """The shipped encoder's tensors: ``preprocess.*`` and ``conv1_1.*`` ... ``conv3_1.*``."""
    from safetensors.torch import load_file

    return load_file(str(VGG_FILE))


@pytest.fixture(scope="session")
def encoder(vgg_state):
    from stylekit.encoder import VGGEncoder

    return VGGEncoder(vgg_state, last_layer="relu3_1")


@pytest.fixture(scope="session")
def random_decoder():
    """An untrained, seeded decoder: fast tests of the plumbing, not of quality."""
    from stylekit.decoder import MirrorDecoder

    torch.manual_seed(0)
    return MirrorDecoder("relu3_1").eval()


@pytest.fixture(scope="session")
def stylizer(encoder, random_decoder):
    from stylekit.adain.model import AdaINStylizer

    return AdaINStylizer(encoder, random_decoder, device="cpu")


def run_stylekit(*args, cwd=None, env: dict | None = None, python_flags=(), timeout: float = 600):
    """``python -m stylekit ARGS`` as its own process (the real command line), one thread."""
    full = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    full.update(env or {})
    return subprocess.run([sys.executable, *python_flags, "-m", "stylekit", *map(str, args)], capture_output=True,
                          text=True, env=full, cwd=cwd, timeout=timeout)


def pixels(path) -> np.ndarray:
    """An image file's RGB pixels as ints."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB")).astype(int)


def seeded_image(size=(64, 48), seed: int = 0) -> Image.Image:
    """A small seeded RGB image with some structure (gradients + noise)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), ((xx + yy) % 17) / 16.0], -1)
    arr = np.clip(arr * 200 + rng.integers(0, 55, arr.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def make_image(path: Path, size=(64, 48), seed: int = 0, mode: str = "RGB", **save_kwargs) -> Path:
    """:func:`seeded_image` saved at ``path``."""
    img = seeded_image(size, seed)
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **save_kwargs)
    return path


@pytest.fixture
def images(tmp_path):
    """A content and a style image on disk."""
    return make_image(tmp_path / "content.png", (80, 60), 1), make_image(tmp_path / "style.jpg", (64, 64), 2)


@pytest.fixture(scope="session")
def decoder_file(tmp_path_factory, random_decoder):
    """The seeded untrained decoder saved as safetensors (for CLI tests)."""
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("weights") / "decoder.safetensors"
    save_file({k: v.contiguous() for k, v in random_decoder.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="session")
def fast_weights_file(tmp_path_factory):
    """A seeded untrained fast network saved as its trainer saves one (plumbing, not quality)."""
    import json

    from safetensors.torch import save_file

    from stylekit.fast.model import FastNet, FastNetConfig

    torch.manual_seed(0)
    net = FastNet(FastNetConfig())
    path = tmp_path_factory.mktemp("weights") / "fast.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path),
              metadata={"kind": "fast", "model": json.dumps(FastNetConfig().to_dict())})
    return path


#: The end of a torchrun probe script (a global ``task`` whose ``ctx`` says the rank). The ranks leave
#: together, the DDP models before the process group they use: a rank exiting while the other still
#: holds the group can abort. Then interpreter finalisation is skipped: gloo's worker threads destroyed
#: there abort now and then under a loaded suite ("terminate called without an active exception"),
#: after everything a probe checks is written.
PROBE_EXIT = """
import gc, os
from stylekit import distributed
ctx = task.ctx
distributed.barrier(ctx)
del task
gc.collect()
distributed.teardown(ctx)
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""
