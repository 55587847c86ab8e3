"""``stylekit export onnx`` and the ONNX Runtime backend: the exported encoder and
decoder give PyTorch's output (any height and width), tiles included, with the
covariance transform the stylizer would use, and int8 quantization produces
models that run. Skipped, saying why, without the ``[onnx]`` extra."""

from __future__ import annotations

import json

import pytest
import torch

from stylekit.adain.model import AdaINStylizer
from stylekit.adain.transform import CovarianceTransform
from stylekit.cli import main
from stylekit.errors import StylekitError


onnx = pytest.importorskip("onnx", reason="the [onnx] extra is not installed (pip install 'stylekit[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed (pip install 'stylekit[onnx]')")

from stylekit.onnx_backend import MANIFEST, OnnxAdaINStylizer, quantize_adain_onnx  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, decoder_file):
    out = tmp_path_factory.mktemp("onnx")
    assert main(["export", "onnx", "--out", str(out), "--weights", str(decoder_file)]) == 0
    return out


def test_export_writes_two_models_and_a_manifest(exported, capsys):
    manifest = json.loads((exported / MANIFEST).read_text())
    assert manifest["layer"] == "relu3_1" and manifest["pool_multiple"] == 4
    assert manifest["transform"] is None  # a decoder of one's own runs plain AdaIN
    for name in ("encoder", "decoder"):
        model = onnx.load(str(exported / manifest[name]))
        onnx.checker.check_model(model)
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims][2:] == ["height", "width"]  # dynamic H and W


@pytest.mark.parametrize("hw", [(40, 52), (67, 45)])
def test_onnx_runtime_matches_pytorch(exported, encoder, random_decoder, hw):
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, *hw, generator=g), torch.rand(1, 3, 37, 41, generator=g)
    ref = AdaINStylizer(encoder, random_decoder, cache_size=0, precision="fp32", channels_last=False,
                        inference_mode=False, fused=False)
    model = OnnxAdaINStylizer(exported, threads=1, cache_size=0)
    want = ref.transfer(content, [style], alpha=0.7)
    got = model.transfer(content, [style], alpha=0.7)
    assert got.shape == want.shape == content.shape
    assert torch.allclose(got, want, rtol=0, atol=1e-4)
    assert model.settings()["backend"] == "onnxruntime"


def test_onnx_tiles_and_stylize(exported):
    whole = OnnxAdaINStylizer(exported, threads=1, cache_size=0, tile_pixels=None)
    tiled = OnnxAdaINStylizer(exported, threads=1, cache_size=0, tile_pixels=500, tile_size=24)
    content = torch.rand(3, 60, 50, generator=torch.Generator().manual_seed(1))
    style = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(2))
    a = whole.stylize(content, style, size=0, style_size=0)
    b = tiled.stylize(content, style, size=0, style_size=0)
    assert torch.allclose(a, b, rtol=0, atol=1e-4)


def test_int8_quantization_runs(exported, tmp_path):
    g = torch.Generator().manual_seed(3)
    pairs = [(torch.rand(1, 3, 32, 36, generator=g), torch.rand(1, 3, 32, 32, generator=g))]
    paths = quantize_adain_onnx(exported, tmp_path, pairs, mode="static")
    model = OnnxAdaINStylizer(exported, threads=1, cache_size=0, encoder_file=paths["encoder"],
                              decoder_file=paths["decoder"])
    out = model.transfer(pairs[0][0], [pairs[0][1]])
    assert out.shape == pairs[0][0].shape and bool(torch.isfinite(out).all())
    with pytest.raises(StylekitError, match="static or dynamic"):
        quantize_adain_onnx(exported, tmp_path, pairs, mode="fp4")


def test_export_carries_the_transform_and_runs_it(tmp_path, encoder, random_decoder, decoder_file):
    from stylekit.files import save_tensors

    transform = CovarianceTransform(256, 8)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in transform.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    save_tensors(tmp_path / "t.safetensors", transform.state_dict(), {"kind": "adain-transform", "detail_share": "0.4"})
    out = tmp_path / "export"
    assert main(["export", "onnx", "--out", str(out), "--weights", str(decoder_file),
                 "--transform", str(tmp_path / "t.safetensors")]) == 0
    assert json.loads((out / MANIFEST).read_text())["transform"] == "transform.safetensors"
    fp32 = dict(cache_size=0, precision="fp32", channels_last=False, inference_mode=False, fused=False)
    content, style = torch.rand(1, 3, 44, 36, generator=g), torch.rand(1, 3, 32, 40, generator=g)
    model = OnnxAdaINStylizer(out, threads=1, cache_size=0)
    assert model.detail_share == 0.4
    want = AdaINStylizer(encoder, random_decoder, transform=transform, **fp32).transfer(content, [style], alpha=0.8)
    torch.testing.assert_close(model.transfer(content, [style], alpha=0.8), want, rtol=0, atol=1e-4)
    plain = OnnxAdaINStylizer(out, threads=1, cache_size=0, transform_weights=False)
    torch.testing.assert_close(plain.transfer(content, [style]), AdaINStylizer(encoder, random_decoder, **fp32).transfer(
        content, [style]), rtol=0, atol=1e-4)
    paths = quantize_adain_onnx(out, tmp_path / "int8", [(content, style)], mode="static", parts=("decoder",))
    quantized = OnnxAdaINStylizer(out, threads=1, cache_size=0, decoder_file=paths["decoder"])
    assert bool(torch.isfinite(quantized.transfer(content, [style])).all())


def test_default_export_ships_the_default_transform(tmp_path, capsys):
    from stylekit.weights import PACKAGE_DATA

    assert main(["export", "onnx", "--out", str(tmp_path / "e")]) == 0
    assert "covariance transform" in capsys.readouterr().out
    shipped = PACKAGE_DATA / json.loads((PACKAGE_DATA / "weights.json").read_text())["adain-transform-relu3_1"]["file"]
    assert (tmp_path / "e" / "transform.safetensors").read_bytes() == shipped.read_bytes()
    assert main(["export", "onnx", "--out", str(tmp_path / "f"), "--transform", "none"]) == 0
    assert not (tmp_path / "f" / "transform.safetensors").exists()
    assert main(["export", "onnx", "--method", "fast", "--out", str(tmp_path / "g"), "--transform", "none"]) == 2
    assert "--transform applies only to --method adain" in capsys.readouterr().err


def test_not_an_export(tmp_path):
    with pytest.raises(StylekitError, match="not a stylekit ONNX export"):
        OnnxAdaINStylizer(tmp_path)


def test_export_refuses_a_file_as_directory(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["export", "onnx", "--out", str(f)]) == 2
    assert "names a file" in capsys.readouterr().err
