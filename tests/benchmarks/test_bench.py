"""stylekit bench: what each column times, the table, the JSON and n/a methods.

Tiny sizes, 2 optimisation steps and one timed run: these test the plumbing,
not the speed. The seeded untrained decoder stands in for both the AdaIN
decoder and the style-swap inverse network (both are relu3_1 decoders).
"""

from __future__ import annotations

import json

import pytest
import torch

from stylekit.bench import METHODS, _ratio, _seconds, bench_devices, bench_image, load_method, run_bench, time_method
from stylekit.cli import main
from stylekit.errors import StylekitError

from ..conftest import make_image


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_args(*extra):
    return ["bench", "--sizes", "32", "--repeats", "1", "--warmup", "0", "--steps", "2", "--device", "cpu",
            "--no-progress", *extra]


def test_bench_command_table_and_json(tmp_path, decoder_file, capsys):
    out = tmp_path / "bench.json"
    code = main(tiny_args("--sizes", "32", "40", "--adain-weights", str(decoder_file),
                          "--inverse-weights", str(decoder_file), "--threads", "1", "--json", str(out)))
    assert code == 0
    table = capsys.readouterr().out
    for label in ("Gatys et al. (2 L-BFGS steps)", "Style swap, optimisation (2 L-BFGS steps)",
                  "Style swap, inverse network", "AdaIN", "32 px", "40 px", "times AdaIN's time"):
        assert label in table
    assert "n/a" not in table
    result = json.loads(out.read_text())
    assert {"cpu", "torch", "torch_threads", "logical_cpus"} <= set(result["machine"])
    assert result["machine"]["torch_threads"] == 1 and result["machine"]["torch"] == torch.__version__
    assert result["settings"]["steps"] == 2 and result["settings"]["sizes"] == [32, 40]
    rows = result["results"]
    assert len(rows) == 4 * 2
    assert [r["method"] for r in rows[::2]] == list(METHODS)
    for r in rows:
        assert r["available"] and r["device"] == "cpu"
        for mode in ("with_style_encoding", "without_style_encoding"):
            assert len(r[mode]["runs"]) == 1 and r[mode]["median"] == r[mode]["runs"][0] > 0
            adain = next(a for a in rows if a["method"] == "adain" and a["size"] == r["size"])
            assert r["ratio_to_adain"][mode] == pytest.approx(r[mode]["median"] / adain[mode]["median"])
    assert all(r["ratio_to_adain"]["with_style_encoding"] == 1 for r in rows if r["method"] == "adain")
    # the table prints the medians it wrote
    gatys = rows[0]
    assert _seconds(gatys["without_style_encoding"]["median"]) in table
    assert _ratio(gatys["ratio_to_adain"]["with_style_encoding"]) in table and "1.00x" in table
    # torch's thread count is restored after the run
    assert torch.get_num_threads() == 1


def test_missing_weights_are_reported_not_fatal(tmp_path, decoder_file, capsys, no_shipped_inverse):
    out = tmp_path / "bench.json"
    code = main(tiny_args("--methods", "style-swap-inverse", "adain", "--adain-weights", str(decoder_file),
                          "--json", str(out)))
    assert code == 0
    table = capsys.readouterr().out
    assert "Style swap, inverse network" in table
    assert "n/a (no style-swap inverse network is available (unknown weights 'style-swap-inverse-relu3_1'" in table
    rows = json.loads(out.read_text())["results"]
    reason = rows[0].pop("reason")
    assert rows[0] == {"device": "cpu", "method": "style-swap-inverse", "label": "Style swap, inverse network",
                       "size": 32, "available": False}
    assert reason.startswith("no style-swap inverse network is available") and reason.endswith("--inverse-weights")
    assert rows[1]["method"] == "adain" and rows[1]["available"]

    code = main(tiny_args("--methods", "style-swap-inverse", "adain", "--adain-weights", str(decoder_file),
                          "--inverse-weights", str(tmp_path / "missing.safetensors")))
    assert code == 0
    assert "Style swap, inverse network  n/a (cannot read" in capsys.readouterr().out


def test_nothing_to_time_is_an_error(capsys, no_shipped_inverse):
    code = main(tiny_args("--methods", "style-swap-inverse"))
    captured = capsys.readouterr()
    assert code == 2
    assert "n/a (no style-swap inverse network is available" in captured.out
    assert "stylekit: error: no method could be timed" in captured.err


class FakeClock:
    """``time.perf_counter`` for stylekit.timing: moves only when told to."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now


class FakeStylizer:
    """Counts calls; preparing a style costs 50 ms on ``clock``, the rest nothing."""

    device = torch.device("cpu")

    def __init__(self, clock):
        self.calls, self.clock = [], clock

    def clear_cache(self):
        self.calls.append("clear")

    def prepare_style(self, style):
        self.calls.append("prepare")
        self.clock.now += 0.05
        return ("prepared", style)

    def transfer_prepared(self, content, prepared, weights=None, masks=None, alpha=1.0):
        assert prepared[0][0] == "prepared" and (weights, masks, alpha) == (None, None, 1.0)
        self.calls.append("transfer")
        return content

    def transfer(self, content, styles, weights=None, masks=None, alpha=1.0):
        return self.transfer_prepared(content, [self.prepare_style(s) for s in styles], weights, masks, alpha)


def test_time_method_times_style_encoding_only_in_the_with_column(monkeypatch):
    from stylekit import timing

    clock = FakeClock()
    monkeypatch.setattr(timing, "time", clock)
    model = FakeStylizer(clock)
    x = torch.zeros(1, 3, 4, 4)
    times = time_method(model, x, x, repeats=3, warmup=2)
    # one preparation before the runs, then one per run with style encoding only
    assert model.calls.count("prepare") == 1 + 5
    assert model.calls.count("transfer") == 2 * 5
    assert model.calls[0] == "prepare"
    for mode in ("with_style_encoding", "without_style_encoding"):
        assert len(times[mode]["runs"]) == 3
        assert times[mode]["median"] == sorted(times[mode]["runs"])[1]
    assert times["with_style_encoding"]["runs"] == pytest.approx([0.05] * 3)
    assert times["without_style_encoding"]["runs"] == [0.0] * 3


@pytest.mark.parametrize("method", METHODS)
def test_prepared_style_gives_the_same_output(method, decoder_file):
    model = load_method(method, device="cpu", steps=2, adain_weights=decoder_file, inverse_weights=decoder_file)
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(1, 3, 32, 40, generator=g), torch.rand(1, 3, 36, 36, generator=g)
    whole = model.transfer(content, [style], alpha=0.8)
    prepared = model.transfer_prepared(content, [model.prepare_style(style)], alpha=0.8)
    assert whole.shape == (1, 3, 32, 40)
    assert torch.allclose(whole, prepared, atol=1e-6)
    assert not torch.allclose(whole, content, atol=1e-2)  # it did stylize


def test_bad_settings():
    with pytest.raises(StylekitError, match="size must be an integer >= 16"):
        run_bench(sizes=[8])
    with pytest.raises(StylekitError, match="repeats must be a positive integer"):
        run_bench(sizes=[32], repeats=0)
    with pytest.raises(StylekitError, match="unknown method 'wct'"):
        run_bench(sizes=[32], methods=["wct"])
    with pytest.raises(StylekitError, match="content image not found"):
        run_bench(sizes=[32], content="/nonexistent.jpg")


def test_number_formats():
    assert [_seconds(x) for x in (0.01234, 1.0, 12.345, 123.4)] == ["0.0123", "1.00", "12.3", "123"]
    assert [_ratio(x) for x in (1.0, 7.234, 719.6)] == ["1.00x", "7.23x", "720x"]


def test_devices():
    assert bench_devices(["cpu"]) == [torch.device("cpu")]
    auto = bench_devices(["auto", "cpu"])
    assert auto[0] == torch.device("cpu") and len(auto) == (2 if torch.cuda.is_available() else 1)


def test_bench_images_are_centre_squares(tmp_path):
    from stylekit.pipeline import center_crop, resize, to_tensor_image

    path = make_image(tmp_path / "c.png", (60, 40), 1)
    got = bench_image(path, 32, seed=1)
    assert got.shape == (1, 3, 32, 32)
    expected = resize(center_crop(to_tensor_image(path, "c")[0]), (32, 32))
    assert torch.allclose(got[0], expected, atol=1e-6)
    a, b = bench_image(None, 48, seed=1), bench_image(None, 48, seed=2)
    assert a.shape == (1, 3, 48, 48) and torch.equal(a, bench_image(None, 48, seed=1)) and not torch.equal(a, b)
    assert 0 <= float(a.min()) and float(a.max()) <= 1
