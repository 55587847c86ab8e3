"""Encoder (layers by name, weight layouts), decoder mirror, and the weights module."""

from __future__ import annotations

import hashlib
import re

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file

from stylekit import weights as W
from stylekit.decoder import MirrorDecoder, infer_layer, load_decoder
from stylekit.encoder import VGG19_LAYERS, VGGEncoder, canonical_state_dict, pools_before
from stylekit.errors import StylekitError

from ..conftest import ORIGINAL_VGG_FILE, VGG_FILE

# the encoderN layout of LinearStyleTransfer / stylescene (the relu3_1 file's origin)
STYLESCENE_KEYS = {"conv1": "preprocess", "conv2": "conv1_1", "conv3": "conv1_2", "conv4": "conv2_1", "conv5": "conv2_2",
                   "conv6": "conv3_1"}
PORT_INDEX = {"preprocess": 0, "conv1_1": 2, "conv1_2": 5, "conv2_1": 9, "conv2_2": 12, "conv3_1": 16}


def official_vgg_to_relu3_1() -> nn.Sequential:
    """The first 18 modules of pytorch-AdaIN's ``net.vgg``, written out by hand."""
    return nn.Sequential(
        nn.Conv2d(3, 3, (1, 1)),
        nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(3, 64, (3, 3)), nn.ReLU(),
        nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(64, 64, (3, 3)), nn.ReLU(),
        nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True),
        nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(64, 128, (3, 3)), nn.ReLU(),
        nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(128, 128, (3, 3)), nn.ReLU(),
        nn.MaxPool2d((2, 2), (2, 2), (0, 0), ceil_mode=True),
        nn.ReflectionPad2d((1, 1, 1, 1)), nn.Conv2d(128, 256, (3, 3)), nn.ReLU(),
    )


def to_port_layout(vgg_state) -> dict:
    return {f"{PORT_INDEX[name]}.{part}": vgg_state[f"{name}.{part}"] for name in PORT_INDEX for part in ("weight", "bias")}


def to_stylescene_layout(vgg_state) -> dict:
    return {f"{old}.{part}": vgg_state[f"{name}.{part}"] for old, name in STYLESCENE_KEYS.items() for part in ("weight", "bias")}


def test_layer_table_is_vgg19():
    convs = [l for l in VGG19_LAYERS if l.kind == "conv"]
    assert len(convs) == 16
    assert [l.name for l in VGG19_LAYERS if l.kind == "pool"] == ["pool1", "pool2", "pool3", "pool4"]
    assert (convs[-1].in_channels, convs[-1].out_channels) == (512, 512)
    assert pools_before("relu3_1") == 2 and pools_before("relu4_1") == 3 and pools_before("relu1_1") == 0


def test_encoder_matches_official_sequential(vgg_state, encoder):
    reference = official_vgg_to_relu3_1()
    reference.load_state_dict(to_port_layout(vgg_state))
    x = torch.rand(2, 3, 37, 50, generator=torch.Generator().manual_seed(0))
    feats = encoder(x, ("relu1_1", "relu2_1", "relu3_1"))
    with torch.no_grad():
        assert torch.allclose(feats["relu1_1"], reference[:4](x), atol=1e-4)
        assert torch.allclose(feats["relu2_1"], reference[:11](x), atol=1e-4)
        assert torch.allclose(feats["relu3_1"], reference(x), atol=1e-3)
    assert feats["relu3_1"].shape == (2, 256, 10, 13)  # ceil-mode pooling: 37 -> 19 -> 10


def test_encoder_preprocessing_is_bgr_mean_subtracted(encoder):
    x = torch.rand(1, 3, 4, 4)
    expected = x[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    assert torch.allclose(encoder.preprocess(x), expected, atol=1e-3)


def test_all_layouts_give_the_same_encoder(vgg_state):
    x = torch.rand(1, 3, 32, 32)
    ours = VGGEncoder(vgg_state).encode(x)
    port = VGGEncoder(to_port_layout(vgg_state)).encode(x)
    stylescene = VGGEncoder(to_stylescene_layout(vgg_state)).encode(x)
    assert torch.equal(ours, port) and torch.equal(ours, stylescene)
    assert canonical_state_dict(to_stylescene_layout(vgg_state)).keys() == vgg_state.keys()


def test_too_deep_layer_names_layer_and_file(vgg_state):
    with pytest.raises(StylekitError, match=r"relu4_1.*conv3_2.*myfile\.pth.*stops at conv3_1"):
        VGGEncoder(vgg_state, last_layer="relu4_1", source="myfile.pth")
    with pytest.raises(StylekitError, match="unknown VGG-19 layer 'relu9_9'"):
        VGGEncoder(vgg_state, last_layer="relu9_9")


def test_encoder_is_frozen_and_stops_early(encoder):
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert not encoder.training
    out = encoder(torch.rand(1, 3, 16, 16), ("relu1_1",))
    assert set(out) == {"relu1_1"} and out["relu1_1"].shape == (1, 64, 16, 16)


def test_decoder_mirrors_official_relu4_1_decoder():
    """Conv shapes in execution order equal the official AdaIN decoder's."""
    official = [(512, 256), (256, 256), (256, 256), (256, 256), (256, 128), (128, 128), (128, 64), (64, 64), (64, 3)]
    decoder = MirrorDecoder("relu4_1")
    convs = [decoder.convs[name] for kind, name in decoder.plan if kind == "conv"]
    assert [(c.in_channels, c.out_channels) for c in convs] == official
    assert [k for k, _ in decoder.plan].count("up") == 3
    assert decoder.plan[-1] == ("conv", "conv1_1")  # no ReLU after the last conv


def test_decoder_loads_numeric_layout_and_infers_layer(tmp_path):
    torch.manual_seed(0)
    source = MirrorDecoder("relu3_1")
    convs = [source.convs[name] for kind, name in source.plan if kind == "conv"]
    numeric = {}
    for i, conv in zip([1, 5, 8, 12, 15], convs):  # indices as an nn.Sequential would number them
        numeric[f"{i}.weight"], numeric[f"{i}.bias"] = conv.weight.detach(), conv.bias.detach()
    assert infer_layer(numeric) == "relu3_1" and infer_layer(source.state_dict()) == "relu3_1"
    torch.save(numeric, tmp_path / "decoder.pth")
    loaded = load_decoder(tmp_path / "decoder.pth")
    x = torch.rand(1, 256, 5, 7)
    assert torch.equal(loaded(x), source(x))
    assert loaded(x).shape == (1, 3, 20, 28)


def test_decoder_rejects_wrong_weights():
    decoder = MirrorDecoder("relu3_1")
    bad = {k: v for k, v in decoder.state_dict().items() if "conv1_1" not in k}
    with pytest.raises(StylekitError, match="lacks convs.conv1_1"):
        decoder.load_weights(bad)


def deeper_port_file(vgg_state, path):
    """A pytorch-AdaIN ``vgg_normalised.pth`` layout that goes one conv deeper (conv3_2)."""
    full = to_port_layout(vgg_state)
    full["19.weight"], full["19.bias"] = torch.zeros(256, 256, 3, 3), torch.zeros(256)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(full, path)
    return path


def test_shipped_encoder_is_found_offline_and_verified():
    assert "STYLEKIT_WEIGHTS" not in __import__("os").environ
    assert W.resolve("vgg19") == VGG_FILE
    assert VGG_FILE.parent == W.PACKAGE_DATA and VGG_FILE.suffix == ".safetensors"
    index = __import__("json").loads((W.PACKAGE_DATA / "weights.json").read_text())
    assert hashlib.sha256(VGG_FILE.read_bytes()).hexdigest() == index["vgg19"]["sha256"]
    assert W.encoder_depth() == "relu3_1"


@pytest.mark.skipif(not ORIGINAL_VGG_FILE.is_file(), reason=f"the original file is not at {ORIGINAL_VGG_FILE}")
def test_shipped_encoder_holds_the_original_tensors(vgg_state):
    original = canonical_state_dict(torch.load(ORIGINAL_VGG_FILE, map_location="cpu", weights_only=True))
    assert original.keys() == vgg_state.keys()
    assert all(vgg_state[k].dtype == torch.float32 and torch.equal(vgg_state[k], original[k]) for k in original)


def test_resolve_from_env_dir_and_verify(monkeypatch, tmp_path, vgg_state):
    # The full-layout file verifies too: identity is over conv1_1..conv3_1 only.
    deeper_port_file(vgg_state, tmp_path / "vgg_normalised.pth")
    monkeypatch.setenv("STYLEKIT_WEIGHTS", str(tmp_path))
    assert W.resolve("vgg19") == tmp_path / "vgg_normalised.pth"
    assert W.encoder_depth() == "relu3_2"
    monkeypatch.setenv("STYLEKIT_WEIGHTS", str(tmp_path / "vgg_normalised.pth"))  # one file
    assert W.encoder_depth() == "relu3_2"
    monkeypatch.setenv("STYLEKIT_WEIGHTS", str(tmp_path / "empty"))  # a folder without it: the shipped file
    assert W.resolve("vgg19") == VGG_FILE


def test_deeper_file_in_the_cache_comes_before_the_shipped_one(tmp_path, vgg_state):
    cached = deeper_port_file(vgg_state, W.cache_dir() / "vgg_normalised.pth")
    assert W.resolve("vgg19") == cached and W.encoder_depth() == "relu3_2"
    assert W.load_encoder(last_layer="relu3_2").last_layer == "relu3_2"
    explicit = deeper_port_file(vgg_state, tmp_path / "mine" / "vgg_normalised.pth")
    cached.unlink()
    assert W.encoder_depth(explicit) == "relu3_2" and W.encoder_depth() == "relu3_1"


def test_checksum_failure_is_clear(monkeypatch, tmp_path, vgg_state):
    tampered = dict(vgg_state)
    tampered["conv2_1.weight"] = tampered["conv2_1.weight"].clone()
    tampered["conv2_1.weight"][0, 0, 0, 0] += 1e-3
    torch.save(tampered, tmp_path / "vgg19_normalised_relu3_1.pth")
    monkeypatch.setenv("STYLEKIT_WEIGHTS", str(tmp_path))
    with pytest.raises(StylekitError, match="fails its checksum"):
        W.resolve("vgg19")
    with pytest.raises(StylekitError, match="fails its checksum"):
        W.load_encoder(tmp_path / "vgg19_normalised_relu3_1.pth")


def test_truncated_weight_file(tmp_path):
    path = tmp_path / "vgg19_normalised_relu3_1.pth"
    path.write_bytes(VGG_FILE.read_bytes()[:1000])
    with pytest.raises(StylekitError, match="cannot read"):
        W.load_encoder(path)


def test_missing_weights_say_how_to_get_them(monkeypatch, tmp_path, no_shipped_encoder):
    monkeypatch.setenv("STYLEKIT_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("STYLEKIT_OFFLINE", "1")
    monkeypatch.setattr(W.urllib.request, "urlopen", lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(StylekitError) as info:
        W.resolve("vgg19")
    message = str(info.value)
    assert "not found" in message and "STYLEKIT_WEIGHTS" in message and W.ENCODER.url in message
    assert "\n" not in message


def test_download_is_verified_and_atomic(monkeypatch, tmp_path, no_shipped_encoder):
    monkeypatch.delenv("STYLEKIT_OFFLINE", raising=False)
    monkeypatch.setenv("STYLEKIT_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    class FakeResponse:
        def __init__(self, data):
            self.data = data

        def read(self, n):
            chunk, self.data = self.data[:n], self.data[n:]
            return chunk

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(W.urllib.request, "urlopen", lambda *a, **k: FakeResponse(b"not weights at all"))
    with pytest.raises(StylekitError):
        W.resolve("vgg19")
    cache = tmp_path / "cache" / "stylekit"
    assert not any(cache.iterdir()) if cache.exists() else True
    served = tmp_path / "served.pth"  # the shipped tensors in the downloaded file's layout
    torch.save(to_stylescene_layout(load_file(str(VGG_FILE))), served)
    monkeypatch.setattr(W.urllib.request, "urlopen", lambda *a, **k: FakeResponse(served.read_bytes()))
    path = W.resolve("vgg19")
    assert path == cache / "vgg19_normalised_relu3_1.pth"
    assert path.read_bytes() == served.read_bytes()


def test_unknown_weights_name():
    with pytest.raises(StylekitError, match=re.escape("unknown weights 'nope'")):
        W.resolve("nope")
