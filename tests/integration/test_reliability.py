"""Reliability and security: bad input, faults, load. Nothing lost, nobody in.

1. The bad-input corpus (``tests/corpus.py``) through every surface: the CLI in
   a subprocess (exit 2 and one ``stylekit: error:`` line, or 0 for the valid
   odd files; no traceback, no hang, nothing left in the output directory),
   the HTTP API (4xx with a JSON ``error``, never 5xx) and the Python API
   (:class:`StylekitError`, a ``ValueError``).
2. Faults in training: checkpoints, weights and outputs are written to a temp
   file and renamed, so a write that fails or is killed half-way leaves the
   previous file intact. (Repeated ``kill -9`` with a bit-exact resume is
   ``tests/integration/test_train_adain.py::test_kill_9_and_resume_equals_uninterrupted_run``;
   a failing image save is ``tests/unit/test_images.py::test_save_image_*atomic*``.)
3. Weights are data, not code: no unpickling, ``eval`` or ``exec`` of file
   contents in ``src/``; pickled code in a weight file or checkpoint is refused.
4. The real service under a bounded burst of valid, invalid and hostile
   requests (``benchmarks/load_test.py``), and its defaults (loopback, timeouts).

``docs/reliability.md`` has the corpus table and the measured figures.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import io
import json
import math
import os
import pickle
import re
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import stylekit
from stylekit.errors import StylekitError
from stylekit.files import atomic_write
from stylekit.training.loop import LoopConfig, load_checkpoint, run_training

from .. import corpus
from ..conftest import REPO
from ..corpus import CASES, ERROR, OK, RUN, SIZE, STARTUP, Inputs

#: one CLI call on this (shared, 2-core) machine takes 2-3 s; far more is a hang
CLI_TIMEOUT = 90
TINY_TRAIN = ["--resize", "40", "--crop", "32", "--batch-size", "2", "--precision", "fp32", "--device", "cpu",
              "--max-steps", "2", "--sample-every", "0", "--no-progress"]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    # training runs share this machine: one thread is both kinder and faster here
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_one_line(message: str, match: str) -> None:
    assert message and "\n" not in message, repr(message)
    assert "Traceback" not in message and "\x1b" not in message, repr(message)  # no traceback, no terminal colours
    assert match in message, (match, message)


# =====================================================================================
# 1. the bad-input corpus, through the CLI, the HTTP API and the Python API
# =====================================================================================


def test_corpus_covers_the_issue():
    required = {
        "missing_file", "directory", "empty_file", "text_as_jpg", "truncated_jpeg", "truncated_png", "image_1x1",
        "image_1x10000", "png_16bit", "cmyk_jpeg", "palette_transparency", "animated_gif", "exif_rotated",
        "decompression_bomb", "mask_wrong_shape", "mask_all_black", "style_weights_negative", "style_weights_zero",
        "unknown_method", "alpha_above_1", "tampered_vgg", "garbage_decoder", "truncated_checkpoint",
        "nan_content_tensor", "inf_style_tensor",
    }
    assert required <= set(corpus.BY_NAME)
    assert {c.name for c in CASES if c.outcome == OK} == {
        "png_16bit", "cmyk_jpeg", "palette_transparency", "animated_gif", "exif_rotated"}
    for case in CASES:
        assert case.outcome in (OK, ERROR)
        runs = [s for s, how in case.surfaces().items() if how in (RUN, STARTUP)]
        assert runs, f"{case.name} runs nowhere"
        assert all(how in (RUN, STARTUP) or how.startswith("n/a: ") for how in case.surfaces().values())
        if case.outcome == ERROR:
            assert all(case.match_for(s) for s in runs), f"{case.name}: say what the error message must contain"


def test_corpus_builds_fresh_files(tmp_path):
    built = corpus.build_all(tmp_path)
    assert set(built) == set(corpus.BY_NAME)
    assert not built["missing_file"].content.exists() and built["directory"].content.is_dir()
    assert built["empty_file"].content.stat().st_size == 0
    header = built["decompression_bomb"].content.read_bytes()[12:24]  # the header really declares the size
    assert header[:4] == b"IHDR" and struct.unpack(">II", header[4:]) == (100_000, 100_000)
    assert "| `png_16bit` |" in corpus.markdown_table()


# ---------------------------------------------------------------- (a) the CLI, one subprocess per case


def cli(*args, env: dict | None = None, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """``python -m stylekit ARGS`` in a subprocess; a hang fails the test (it does not wait forever)."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO / "src"), STYLEKIT_OFFLINE="1", OMP_NUM_THREADS="1")
    full_env.update(env or {})
    try:
        return subprocess.run([sys.executable, "-m", "stylekit", *map(str, args)], capture_output=True, text=True,
                              env=full_env, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"stylekit {' '.join(map(str, args))} hung: no answer within {timeout} s")


def cli_args(inputs: Inputs, out: Path, decoder_file: Path) -> list:
    if inputs.resume_run is not None:
        content, style = inputs.resume_run.parent / "train" / "content", inputs.resume_run.parent / "train" / "style"
        return ["train", "adain", "--content", content, "--style", style, "--out", inputs.resume_run, "--resume",
                *TINY_TRAIN]
    args = ["stylize", inputs.content, "--style", *inputs.styles, "-o", out, "--size", SIZE, "--style-size", SIZE,
            "--device", "cpu", "--no-progress", "--weights", inputs.decoder or decoder_file]
    if inputs.masks is not None:
        args += ["--mask", *inputs.masks]
    if inputs.alpha is not None:
        args += ["--alpha", inputs.alpha]
    if inputs.style_weights is not None:
        args += ["--style-weights", *inputs.style_weights]
    if inputs.method is not None:
        args += ["--method", inputs.method]
    return args


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c.cli == RUN], ids=lambda c: c.name)
def test_corpus_cli(case, tmp_path, decoder_file):
    inputs = corpus.build(case, tmp_path / "case")
    out_dir = tmp_path / "out"
    out = out_dir / "result.png"
    before = {p: p.read_bytes() for p in files_under(inputs.resume_run)} if inputs.resume_run else {}
    env = {"STYLEKIT_WEIGHTS": str(inputs.weights_dir)} if inputs.weights_dir else {}
    proc = cli(*cli_args(inputs, out, decoder_file), env=env)
    err = proc.stderr
    assert "Traceback" not in err, err
    if case.outcome == OK:
        assert proc.returncode == 0, err
        assert proc.stdout.strip() == str(out)
        assert files_under(out_dir) == [out]  # the image, and no temp file beside it
        with Image.open(out) as img:
            assert img.size == inputs.out_size
        return
    assert proc.returncode == 2, (proc.returncode, err)
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("stylekit: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    if inputs.resume_run is None:
        assert lines == errors, err  # stylize says nothing else
    else:
        assert all(line.startswith("training adain at ") for line in lines[:-1]), err  # the one start-up line
    assert_one_line(errors[0], case.match_for("cli"))
    assert proc.stdout == ""
    assert files_under(out_dir) == []  # no output, no temp file
    if inputs.resume_run is not None:  # the run directory is left exactly as it was
        assert {p: p.read_bytes() for p in files_under(inputs.resume_run)} == before
    if inputs.marker is not None:
        assert not inputs.marker.exists(), "code in a weight file ran"


# ---------------------------------------------------------------- (b) the HTTP API


@pytest.fixture(scope="module")
def http_client(stylizer):
    pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
    from fastapi.testclient import TestClient

    from stylekit.server import create_app

    with TestClient(create_app(stylizer)) as client:  # the shipped default limits
        yield client


def http_request(inputs: Inputs) -> dict:
    files = []

    def add(field, value):
        if isinstance(value, Path) and value.is_file():  # a path that does not exist: nothing to upload
            files.append((field, (value.name, value.read_bytes(), "application/octet-stream")))

    add("content", inputs.content)
    for s in inputs.styles:
        add("style", s)
    for m in inputs.masks or []:
        add("mask", m)
    data = {"size": str(SIZE), "style_size": str(SIZE)}
    if inputs.alpha is not None:
        data["alpha"] = str(inputs.alpha)
    if inputs.style_weights is not None:
        data["style_weights"] = ",".join(map(str, inputs.style_weights))
    if inputs.method is not None:
        data["method"] = inputs.method
    return {"files": files, "data": data}


@pytest.mark.parametrize("case", [c for c in CASES if c.http == RUN], ids=lambda c: c.name)
def test_corpus_http(case, tmp_path, http_client):
    inputs = corpus.build(case, tmp_path / "case")
    r = http_client.post("/v1/stylize", **http_request(inputs))
    assert r.status_code < 500, (r.status_code, r.text[:300])
    if case.outcome == OK:
        assert r.status_code == 200, r.text[:300]
        assert r.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(r.content)) as img:
            img.load()
            assert img.size == inputs.out_size
        return
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}, body
    assert_one_line(body["error"], case.match_for("http"))
    assert str(tmp_path) not in body["error"]  # never a server-side path
    assert "stylekit-serve-" not in body["error"]


@pytest.mark.parametrize("case", [c for c in CASES if c.http == STARTUP], ids=lambda c: c.name)
def test_corpus_http_weights_refused_at_startup(case, tmp_path, decoder_file, monkeypatch):
    """The service loads its models before it binds a port: bad weights mean it never starts."""
    uvicorn = pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
    from stylekit.server import serve

    inputs = corpus.build(case, tmp_path / "case")
    if inputs.weights_dir is not None:
        monkeypatch.setenv("STYLEKIT_WEIGHTS", str(inputs.weights_dir))
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the service started with bad weights"))
    with pytest.raises(StylekitError) as info:
        serve(port=0, device="cpu", weights=inputs.decoder or decoder_file)
    assert_one_line(str(info.value), case.match_for("http"))
    if inputs.marker is not None:
        assert not inputs.marker.exists(), "code in a weight file ran"


# ---------------------------------------------------------------- (c) the Python API


def api_call(inputs: Inputs, stylizer, decoder_file: Path):
    if inputs.resume_run is not None:
        return load_checkpoint(inputs.resume_run / "checkpoint.pt")
    if inputs.decoder is not None or inputs.weights_dir is not None or inputs.method is not None:
        return stylekit.load(inputs.method or "adain", device="cpu", weights=inputs.decoder or decoder_file)
    controls = {"alpha": inputs.alpha, "style_weights": inputs.style_weights, "masks": inputs.masks}
    return stylizer.stylize(inputs.content, inputs.styles, size=SIZE, style_size=SIZE,
                            **{k: v for k, v in controls.items() if v is not None})


@pytest.mark.parametrize("case", [c for c in CASES if c.api == RUN], ids=lambda c: c.name)
def test_corpus_python(case, tmp_path, stylizer, decoder_file, monkeypatch):
    inputs = corpus.build(case, tmp_path / "case")
    if inputs.weights_dir is not None:
        monkeypatch.setenv("STYLEKIT_WEIGHTS", str(inputs.weights_dir))
    if case.outcome == OK:
        result = api_call(inputs, stylizer, decoder_file)
        assert isinstance(result, Image.Image) and result.size == inputs.out_size
        return
    with pytest.raises(StylekitError) as info:
        api_call(inputs, stylizer, decoder_file)
    assert type(info.value) is StylekitError and isinstance(info.value, ValueError)
    assert_one_line(str(info.value), case.match_for("api"))
    if inputs.marker is not None:
        assert not inputs.marker.exists(), "code in a weight file ran"


# =====================================================================================
# 2. faults in training: temp file, then rename
# =====================================================================================


class CountingTask:
    """A stand-in trainer for :func:`run_training`: a weight vector and its own RNG, no VGG."""

    kind = "counting"

    def __init__(self, numel: int = 1000):
        self.w = torch.zeros(numel)
        self.gen = torch.Generator().manual_seed(0)

    def state_dict(self) -> dict:
        return {"w": self.w.clone(), "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.w = state["w"].clone()
        self.gen.set_state(state["gen"])

    def train_step(self, step: int) -> dict[str, float]:
        self.w += torch.rand(self.w.shape, generator=self.gen)
        return {"loss": float(self.w.mean())}

    def learning_rate(self) -> float:
        return 0.1

    def write_samples(self, path: Path) -> None:
        pass

    def export_weights(self, path: Path) -> None:
        atomic_write(path, lambda tmp: save_file({"w": self.w.contiguous()}, str(tmp)))


def _loop(max_steps: int) -> LoopConfig:
    return LoopConfig(max_steps=max_steps, save_every_steps=2, save_every_minutes=0, log_every=1, sample_every=0,
                      progress=False)


def _losses(run: Path) -> list[tuple[str, str]]:
    rows = (run / "log.csv").read_text().splitlines()[1:]
    return [tuple(r.split(",")[i] for i in (0, 3)) for r in rows]  # step, loss


def test_checkpoint_write_failing_midway_keeps_the_previous_one(tmp_path, monkeypatch):
    """The disk fills up while the step-4 checkpoint is half written: the step-2
    checkpoint and weights stay intact and consistent, no temp file remains, and
    --resume ends where an uninterrupted run ends."""
    reference = tmp_path / "reference"
    run_training(CountingTask(), {"name": "t"}, reference, _loop(6))

    run = tmp_path / "run"
    real_save, calls = torch.save, []

    def disk_full_on_second_save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) < 2:
            return real_save(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        real_save(obj, buf)
        Path(f).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # half the bytes reach the disk
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(torch, "save", disk_full_on_second_save)
        with pytest.raises(OSError, match="No space left"):
            run_training(CountingTask(), {"name": "t"}, run, _loop(6))
    assert Path(calls[1]).name.startswith(".checkpoint.pt.") and Path(calls[1]).suffix == ".tmp"  # written aside
    assert not list(run.glob(".*.tmp")), "a temp file was left behind"
    payload = load_checkpoint(run / "checkpoint.pt")
    assert payload["step"] == 2
    assert torch.equal(load_file(str(run / "weights.safetensors"))["w"], payload["task"]["w"])  # a matching pair

    summary = run_training(CountingTask(), {"name": "t"}, run, _loop(6), resume=True)
    assert summary["step"] == 6
    assert torch.equal(load_file(str(run / "weights.safetensors"))["w"],
                       load_file(str(reference / "weights.safetensors"))["w"])
    assert _losses(run) == _losses(reference)  # the log reads like one run (rows after step 2 were dropped)


WRITER = textwrap.dedent("""
    # A training run that spends nearly all its time writing: an 8 MB state,
    # a checkpoint, the weights and a sample image after every step.
    import sys
    from pathlib import Path
    import torch
    from safetensors.torch import save_file
    from stylekit.files import atomic_write
    from stylekit.images import save_image
    from stylekit.training.loop import LoopConfig, run_training

    class FillTask:
        kind = "fill"
        def __init__(self):
            self.w = torch.zeros(2_000_000)
        def state_dict(self):
            return {"w": self.w.clone()}
        def load_state_dict(self, state):
            self.w = state["w"].clone()
        def train_step(self, step):
            self.w.fill_(step + 1)  # after step k the whole state equals k: a torn write cannot pass for a good one
            return {"loss": float(step)}
        def learning_rate(self):
            return 0.1
        def write_samples(self, path):
            save_image(torch.full((3, 256, 256), float(self.w[0]) % 7 / 7), path)
        def export_weights(self, path):
            atomic_write(path, lambda tmp: save_file({"w": self.w}, str(tmp)))

    run_dir, max_steps = Path(sys.argv[1]), int(sys.argv[2])
    loop = LoopConfig(max_steps=max_steps, save_every_steps=1, save_every_minutes=0, log_every=1, sample_every=1,
                      progress=False)
    run_training(FillTask(), {}, run_dir, loop, resume=True)
""")


def _check_run_integrity(run: Path) -> int:
    """Every file a reader can see is whole and consistent; returns the checkpoint's step."""
    payload = load_checkpoint(run / "checkpoint.pt")
    step = payload["step"]
    assert bool((payload["task"]["w"] == step).all()), "the checkpoint mixes two steps"
    weights = load_file(str(run / "weights.safetensors"))["w"]
    assert float(weights[0]) in (step - 1, step) and bool((weights == weights[0]).all())  # written just after
    for sample in (run / "samples").glob("*.png"):
        with Image.open(sample) as img:
            img.load()  # a torn PNG would not decode
    return step


@pytest.mark.slow
def test_kill_9_while_writing_checkpoints_weights_and_outputs(tmp_path):
    """kill -9 a run the moment a temp file shows it is writing a checkpoint,
    its weights or a sample image: every file a reader can see stays whole, and
    the next start clears the dead writes' temp files."""
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    targets = [run / ".checkpoint.pt.*.tmp", run / ".weights.safetensors.*.tmp", run / "samples" / ".step_*.tmp",
               run / ".checkpoint.pt.*.tmp"]
    left, steps = [], []
    for target in targets:
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(run), "1000000"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            start_step = steps[-1] if steps else 0
            deadline = time.monotonic() + 60
            # let this process write a checkpoint of its own, then catch it in the middle of a write
            while not (run / "checkpoint.pt").exists() or load_checkpoint(run / "checkpoint.pt")["step"] <= start_step:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "the writer never wrote a checkpoint"
                time.sleep(0.02)
            while not list(target.parent.glob(target.name)):
                assert proc.poll() is None and time.monotonic() < deadline, "no write seen"
                time.sleep(0.0005)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
        steps.append(_check_run_integrity(run))
        left.append(sorted(p.name.split(".")[1] for p in [*run.glob(".*.tmp"), *(run / "samples").glob(".*.tmp")]))
    assert steps == sorted(steps) and steps[0] >= 1
    assert sum(1 for names in left if names) >= 2, f"the kills mostly missed the writes: {left}"
    # one more start (it finishes at once: one step to go) removes what the killed writers left
    done = subprocess.run([sys.executable, "-c", WRITER, str(run), str(steps[-1] + 1)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _check_run_integrity(run) == steps[-1] + 1
    assert not list(run.glob(".*.tmp")) and not list((run / "samples").glob(".*.tmp"))
    print(f"\nkill -9 at checkpoint steps {steps}; each kill left the temp files of {left}")


# =====================================================================================
# 3. weights are data, not code
# =====================================================================================

SRC = REPO / "src" / "stylekit"
#: modules that turn bytes into arbitrary objects (running code on the way)
UNPICKLERS = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve", "jsonpickle"}
#: ``eval``/``exec`` calls that are allowed, and why: (file, function) -> reason
ALLOWED_EVAL = {
    ("config.py", "_base_type"): "evaluates a dataclass field's type annotation (our source code, never file contents)",
}


def _python_sources() -> list[Path]:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    return files


def _dotted(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _enclosing_functions(tree) -> dict[int, str]:
    names = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                names.setdefault(id(node), fn.name)
    return names


def test_every_torch_load_is_weights_only():
    found = []
    for path in _python_sources():
        text = path.read_text()
        tree = ast.parse(text)
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _dotted(n.func) == "torch.load"]
        textual = re.findall(r"torch\.load\(", text)  # the grep: every occurrence must be a call seen above
        assert len(textual) == len(calls), f"{path}: a torch.load( the parser did not see as a call"
        for call in calls:
            where = f"{path.relative_to(REPO)}:{call.lineno}"
            kw = {k.arg: k.value for k in call.keywords}
            assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, (
                f"{where}: torch.load without weights_only=True")
            assert "pickle_module" not in kw, f"{where}: torch.load with a pickle_module"
            found.append(where)
        assert not re.search(r"from torch import[^\n]*\bload\b", text), f"{path}: torch.load under another name"
        assert "torch.jit.load" not in text, f"{path}: TorchScript files carry code"
    assert found, "expected the weight loaders to call torch.load"


def test_no_unpickling_eval_or_exec_of_file_contents():
    problems, allowed_seen = [], set()
    for path in _python_sources():
        tree = ast.parse(path.read_text())
        functions = _enclosing_functions(tree)
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(tree):
            where = f"{rel}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import):
                problems += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLERS]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNPICKLERS:
                problems.append(f"{where}: from {node.module} import ...")
            elif isinstance(node, ast.Call):
                name = _dotted(node.func)
                kw = {k.arg: k.value for k in node.keywords}
                if name in ("eval", "exec", "compile", "builtins.eval", "builtins.exec"):
                    key = (rel, functions.get(id(node)))
                    if key in ALLOWED_EVAL:
                        allowed_seen.add(key)
                    else:
                        problems.append(f"{where}: {name}()")
                elif name.split(".")[-1] == "load" and name.split(".")[0] in ("np", "numpy") \
                        and isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value:
                    problems.append(f"{where}: numpy.load(allow_pickle=True)")
                elif name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"):
                    problems.append(f"{where}: {name} (use yaml.safe_load)")
    assert not problems, problems
    assert allowed_seen == set(ALLOWED_EVAL), "an allowance no longer applies: remove it from ALLOWED_EVAL"


def _pickle_formats():
    def zip_file(path, payload):
        torch.save(payload, path)

    def legacy_file(path, payload):
        torch.save(payload, path, _use_new_zipfile_serialization=False)

    def raw_pickle(path, payload):
        with open(path, "wb") as fh:
            pickle.dump(payload, fh, protocol=4)

    return {"torch_zip": zip_file, "torch_legacy": legacy_file, "raw_pickle": raw_pickle}


PICKLE_FORMATS = _pickle_formats()


def _loaders():
    from stylekit.decoder import load_decoder
    from stylekit.files import load_state_file
    from stylekit.weights import load_encoder

    return {
        "weights.load_encoder": load_encoder,
        "decoder.load_decoder": load_decoder,
        "stylekit.load": lambda p: stylekit.load("adain", device="cpu", weights=p),
        "encoder.load_state_file": load_state_file,
        "training.load_checkpoint": load_checkpoint,
    }


LOADERS = _loaders()


def test_the_malicious_payload_is_live(tmp_path):
    """The payload really runs code when unpickled the unsafe way (else the refusals below prove nothing)."""
    marker = tmp_path / "PWNED"
    pickle.loads(pickle.dumps(corpus.PickledCode(marker)))
    assert marker.exists()


@pytest.mark.parametrize("fmt", sorted(PICKLE_FORMATS))
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_pickled_code_is_refused(tmp_path, loader, fmt):
    marker = tmp_path / "PWNED"
    path = tmp_path / ("checkpoint.pt" if "checkpoint" in loader else "weights.pth")
    payload = {"format": 1, "0.weight": torch.zeros(2), "evil": corpus.PickledCode(marker)}
    PICKLE_FORMATS[fmt](path, payload)
    with pytest.raises(StylekitError) as info:
        LOADERS[loader](path)
    assert_one_line(str(info.value), "cannot read")
    assert "refused by the safe loader" in str(info.value), str(info.value)
    assert not marker.exists(), "code in a weight file ran"


def test_pickled_code_in_the_weights_directory_is_refused(tmp_path, monkeypatch):
    """The encoder found by name in $STYLEKIT_WEIGHTS goes through the same safe loader."""
    marker = tmp_path / "PWNED"
    corpus.malicious_pth(tmp_path / "vgg19_normalised_relu3_1.pth", marker)
    monkeypatch.setenv("STYLEKIT_WEIGHTS", str(tmp_path))
    from stylekit.weights import load_encoder

    with pytest.raises(StylekitError, match="refused by the safe loader"):
        load_encoder()
    assert not marker.exists()


# =====================================================================================
# 4. the service: defaults, and a bounded burst against the real server
# =====================================================================================


def test_service_defaults_bind_loopback_with_timeouts(monkeypatch):
    uvicorn = pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
    from stylekit import server
    from stylekit.cli import build_parser, main
    from stylekit.server import Limits, serve
    from stylekit.server import app as app_module

    assert inspect.signature(serve).parameters["host"].default == "127.0.0.1"
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.timeout == 120.0

    limits = Limits()
    assert 0 < limits.request_timeout_s <= 600 and 0 < limits.body_timeout_s <= 120
    assert limits.max_queue >= 16 - limits.max_concurrency  # the burst of section 4 queues without a 503

    seen = {}
    monkeypatch.setattr(app_module, "load_models", lambda *a, **k: {"adain": object()})
    monkeypatch.setattr(app_module, "create_app", lambda models, limits=None: ("app", limits))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    serve()
    assert seen["host"] == "127.0.0.1"
    assert 0 < seen["timeout_keep_alive"] <= 30  # idle keep-alive connections are closed
    assert seen["limit_concurrency"] >= 16 + limits.max_queue  # uvicorn's own 503 only far beyond the app's queue

    passed = {}
    monkeypatch.setattr(server, "serve", lambda host, port, **kwargs: passed.update(host=host, **kwargs))
    assert main(["serve"]) == 0
    assert passed["host"] == "127.0.0.1" and passed["limits"].request_timeout_s == 120.0


def _load_test_module():
    name = "stylekit_benchmarks_load_test"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "load_test.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name]


#: Peak RSS the burst may add to the idle server (after start-up and two warm-up
#: requests). With one stylization at a time (max_concurrency 1) at 32 px, the
#: burst adds at most: 16 queued requests x 1 MiB body limit (oversized bodies
#: are refused from Content-Length, before reading) + one 32 px forward pass
#: (< 10 MiB of activations) + the glibc arenas of a few server threads.
#: Measured: +5 to +10 MiB. 128 MiB flags a leak or an unbounded queue, not noise.
BURST_RSS_BOUND_MIB = 128


def test_burst_of_valid_invalid_and_hostile_requests(decoder_file):
    pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
    report = _load_test_module().run(requests=200, concurrency=16, weights=decoder_file)
    print("\nload test:", json.dumps({k: report[k] for k in (
        "requests", "concurrency", "statuses", "5xx", "latency_s", "wall_s", "rss_mib", "listening_on")}))
    assert report["requests"] == 200 and report["warmup_ok"]
    assert report["5xx"] == 0 and report["no_answer"] == 0
    assert report["wrong"] == [], report["wrong"][:5]
    assert report["valid_answered_200"] == report["valid_sent"] > 50
    kinds = report["kinds"]
    assert kinds.get("traversal", 0) >= 10 and kinds.get("oversized_body", 0) >= 1 and kinds.get("alpha_2", 0) >= 1
    assert report["listening_on"] == ["127.0.0.1"]  # the default bind: this machine only
    assert not report["traversal_file_created"]
    assert report["healthy_after"] and report["server_log_tracebacks"] == 0
    rss = report["rss_mib"]
    assert rss["peak"] - rss["idle_after_warmup"] <= BURST_RSS_BOUND_MIB, rss
    assert math.isfinite(report["latency_s"]["valid_p95"])


def test_idle_connections_do_not_starve_the_service(decoder_file, tmp_path):
    """Sockets that connect and send nothing neither hold the service hostage
    (connection slots outnumber them) nor stay open (the head timeout closes them)."""
    import httpx

    from stylekit.server.app import Limits

    pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
    head_timeout = Limits().head_timeout_s
    with _load_test_module().running_server(decoder_file, tmp_path / "server.log") as (port, _):
        idle = [socket.create_connection(("127.0.0.1", port), timeout=head_timeout + 10) for _ in range(300)]
        try:
            time.sleep(0.5)
            status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code
            time.sleep(head_timeout + 2)
            closed = sum(conn.recv(1) == b"" for conn in idle[:20])  # recv returns b"" once the server closed
        finally:
            for conn in idle:
                conn.close()
    assert status == 200
    assert closed == 20
