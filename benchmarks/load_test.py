"""A bounded burst against the real service: valid, invalid and hostile requests.

Starts ``python -m stylekit serve`` (default host, so loopback) on a free port
with a decoder file and small limits, then sends REQUESTS requests from
CONCURRENCY threads: small valid stylizations (one or two styles, PNG or
JPEG), invalid ones (not an image, alpha 2, unknown method, a body over the
limit), path-traversal attempts on the examples route (sent over raw sockets,
so no client normalises the ``..`` away) and absolute / relative paths in form
fields. It prints one JSON report: status counts, 5xx count, every answer that
was not the expected one, latency percentiles and the server's peak RSS
(``VmHWM`` in ``/proc/PID/status``).

    python benchmarks/load_test.py                     # 200 requests, 16 at a time
    python benchmarks/load_test.py --requests 500 --concurrency 32 --json load.json

Without ``--weights`` it uses an untrained seeded decoder (the test suite's), so
it needs only the VGG encoder (shipped in the package). tests/integration/test_reliability.py
runs it and asserts on the report.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = REPO / "src" / "stylekit" / "examples"
BODY_LIMIT_MB = 1.0
MAX_SIDE = 256
SIZE = 32
#: a file a traversal through a form field's filename would create
TRAVERSAL_TARGET = Path(tempfile.gettempdir()) / "stylekit_load_test_traversal.png"

#: GET paths that try to leave the examples whitelist; none may answer 200
TRAVERSAL_PATHS = [
    "/v1/examples/../../etc/passwd",
    "/v1/examples/..%2f..%2f..%2fetc%2fpasswd",
    "/v1/examples/%2e%2e/%2e%2e/etc/passwd",
    "/v1/examples/%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/v1/examples/%2E%2E",
    "/v1/examples/..",
    "/v1/examples/chelsea.jpg",
    "/v1/examples/chelsea%00.jpg",
    "/v1/examples/%2fetc%2fpasswd",
    "/v1/examples//etc/passwd",
    "/v1/examples/chelsea/../../../src/stylekit/server/app.py",
    "/v1/examples/..\\..\\pyproject.toml",
    "/../../../../etc/passwd",
    "/static/../pyproject.toml",
    "/%2e%2e/%2e%2e/etc/passwd",
    "//etc/passwd",
]


def image_bytes(size, seed, fmt="PNG") -> bytes:
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx / (w - 1), yy / (h - 1), ((xx + yy) % 13) / 12.0], -1) * 200
    arr = np.clip(arr + rng.integers(0, 55, arr.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format=fmt)
    return buf.getvalue()


@dataclass
class Request:
    kind: str
    expect: tuple[int, ...]  # acceptable statuses
    method: str = "POST"
    path: str = "/v1/stylize"
    files: list = field(default_factory=list)
    data: dict = field(default_factory=dict)
    raw: bool = False  # sent over a raw socket, byte for byte


@dataclass
class Result:
    kind: str
    status: int | None
    seconds: float
    ok: bool
    detail: str = ""


def build_requests(n: int, seed: int = 0) -> list[Request]:
    """``n`` requests in a shuffled, seeded mix (half of them valid stylizations)."""
    rng = random.Random(seed)
    contents = [image_bytes((48 + 8 * i, 40), 100 + i, "PNG" if i % 2 else "JPEG") for i in range(4)]
    styles = [image_bytes((32, 32 + 8 * i), 200 + i) for i in range(3)]
    small = {"size": str(SIZE), "style_size": str(SIZE)}

    def upload(name, data, filename=None):
        return (name, (filename or f"{name}.png", data, "image/png"))

    def valid(i):
        n_styles = 1 + (i % 3 == 0)
        data = {**small, "alpha": f"{rng.random():.2f}", "format": rng.choice(["png", "jpeg"])}
        if n_styles == 2:
            data["style_weights"] = "0.3,0.7"
        files = [upload("content", rng.choice(contents))] + [upload("style", s) for s in rng.sample(styles, n_styles)]
        return Request("valid", (200,), files=files, data=data)

    good = [upload("content", contents[0]), upload("style", styles[0])]
    oversized = os.urandom(int(BODY_LIMIT_MB * 2**20 * 1.2))
    invalid = [
        lambda: Request("bad_image", (400,), files=[upload("content", b"GIF89a but not really"), good[1]], data=small),
        lambda: Request("alpha_2", (400,), files=good, data={**small, "alpha": "2"}),
        lambda: Request("unknown_method", (400,), files=good, data={**small, "method": "picasso"}),
        lambda: Request("oversized_body", (413,), files=[upload("content", oversized), good[1]], data=small),
    ]
    field_paths = [
        # a file part whose filename is a path: the server must never use it as one
        lambda: Request("path_in_filename", (200,), files=[upload("content", contents[1], str(TRAVERSAL_TARGET)),
                                                           upload("style", styles[1], "../../../../etc/passwd")],
                        data=small),
        lambda: Request("path_in_filename_bad", (400,), files=[upload("content", b"x", "/etc/passwd"), good[1]],
                        data=small),
        lambda: Request("path_as_content", (422,), files=[good[1]], data={**small, "content": "/etc/passwd"}),
        lambda: Request("path_as_method", (400,), files=good, data={**small, "method": "../../../etc/passwd"}),
        lambda: Request("path_as_weights", (400,), files=good, data={**small, "style_weights": "/etc/passwd"}),
        lambda: Request("path_as_format", (400,), files=good, data={**small, "format": "/etc/passwd"}),
    ]
    requests: list[Request] = []
    for i in range(n):
        r = rng.random()
        if r < 0.5:
            requests.append(valid(i))
        elif r < 0.7:
            requests.append(rng.choice(invalid)())
        elif r < 0.85:
            requests.append(Request("traversal", (400, 404, 405), method="GET", path=rng.choice(TRAVERSAL_PATHS),
                                    raw=True))
        elif r < 0.88:
            requests.append(Request("example", (200,), method="GET", path="/v1/examples/chelsea", raw=True))
        else:
            requests.append(rng.choice(field_paths)())
    return requests


def raw_get(port: int, path: str, timeout: float) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def _check(req: Request, status: int, body: bytes, content_type: str, examples: dict[str, bytes]) -> str:
    """Why this answer is wrong ("" if it is right)."""
    if status not in req.expect:
        return f"status {status}, expected {req.expect}: {body[:200]!r}"
    if b"root:" in body or b"[project]" in body or b"def create_app" in body:
        return "served a file outside the examples whitelist"
    if status == 200 and req.method == "GET":
        if body not in examples.values():
            return "GET answered 200 with bytes that are not a bundled example"
    elif status == 200:
        try:
            with Image.open(io.BytesIO(body)) as img:
                img.load()
                if max(img.size) != SIZE:
                    return f"image of size {img.size}, expected a longer side of {SIZE}"
        except Exception as exc:  # noqa: BLE001 - any failure to decode is the finding
            return f"200 but not a valid image: {exc}"
    elif status >= 400 and not req.raw:  # (raw requests may be refused by uvicorn itself, in plain text)
        if not content_type.startswith("application/json"):
            return f"error answer is {content_type}, not JSON"
        try:
            message = json.loads(body)["error"]
        except Exception:  # noqa: BLE001
            return f"error answer without an 'error' field: {body[:200]!r}"
        if not message or "Traceback" in message:
            return f"bad error message: {message!r}"
    return ""


def send(client: httpx.Client, port: int, req: Request, examples: dict[str, bytes], timeout: float) -> Result:
    start = time.perf_counter()
    try:
        if req.raw:
            status, body = raw_get(port, req.path, timeout)
            content_type = "application/json" if body.startswith(b"{") else ""
        else:
            response = client.request(req.method, req.path, files=req.files or None, data=req.data or None)
            status, body = response.status_code, response.content
            content_type = response.headers.get("content-type", "")
    except Exception as exc:  # noqa: BLE001 - no answer at all is a finding, reported, not raised
        return Result(req.kind, None, time.perf_counter() - start, False, f"no answer: {type(exc).__name__}: {exc}")
    seconds = time.perf_counter() - start
    problem = _check(req, status, body, content_type, examples)
    return Result(req.kind, status, seconds, not problem, problem)


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB, from /proc."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def listening_addresses(port: int) -> list[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp{,6})."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.append(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    raw = bytes.fromhex(address)
                    found.append(socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seeded_decoder(path: Path) -> Path:
    """The untrained seeded decoder of the test suite (tests/conftest.py: decoder_file)."""
    import torch
    from safetensors.torch import save_file

    from stylekit.decoder import MirrorDecoder

    torch.manual_seed(0)
    decoder = MirrorDecoder("relu3_1").eval()
    save_file({k: v.contiguous() for k, v in decoder.state_dict().items()}, str(path))
    return path


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@contextlib.contextmanager
def running_server(weights: Path, log: Path, timeout: float = 180.0):
    """``python -m stylekit serve`` (default host) on a free port with small limits,
    until the ``with`` block ends: yields ``(port, process)`` once /healthz says ok."""
    port = free_port()
    env = dict(os.environ, STYLEKIT_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "stylekit", "serve", "--port", str(port), "--weights", str(weights),
               "--device", "cpu", "--max-body-mb", str(BODY_LIMIT_MB), "--max-side", str(MAX_SIDE),
               "--log-level", "warning"]  # no --host: the default bind is under test
    with open(log, "wb") as log_file:
        server = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with {server.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json().get("status") == "ok":
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start within {timeout:g} s")
            time.sleep(0.2)
        server.command = " ".join(command[1:])
        yield port, server
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run(requests: int = 200, concurrency: int = 16, weights: str | os.PathLike | None = None, seed: int = 0,
        timeout: float = 120.0) -> dict:
    """Start the service, send the burst, stop the service; returns the report."""
    with tempfile.TemporaryDirectory(prefix="stylekit-load-") as workdir:
        return _run(requests, concurrency, weights, seed, timeout, Path(workdir))


def _run(requests, concurrency, weights, seed, timeout, workdir: Path) -> dict:
    weights = Path(weights) if weights else seeded_decoder(workdir / "decoder.safetensors")
    log = workdir / "server.log"
    TRAVERSAL_TARGET.unlink(missing_ok=True)
    with running_server(weights, log) as (port, server), \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout,
                         limits=httpx.Limits(max_connections=concurrency)) as client:
        health = client.get("/healthz").json()
        examples = {f.stem: f.read_bytes() for f in EXAMPLES_DIR.glob("*.jpg")}
        warm = [send(client, port, r, examples, timeout) for r in build_requests(4, seed + 1) if r.kind == "valid"]
        idle = rss_kib(server.pid)
        burst = build_requests(requests, seed)
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(lambda r: send(client, port, r, examples, timeout), burst))
        wall = time.perf_counter() - started
        after = rss_kib(server.pid)
        bound_to = listening_addresses(port)
        healthy_after = client.get("/healthz").status_code == 200
    statuses: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for r in results:
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    valid = [r.seconds for r in results if r.kind == "valid"]
    every = [r.seconds for r in results]
    server_log = log.read_text(errors="replace")
    return {
        "requests": len(results),
        "concurrency": concurrency,
        "kinds": kinds,
        "statuses": statuses,
        "5xx": sum(1 for r in results if r.status is not None and r.status >= 500),
        "no_answer": sum(1 for r in results if r.status is None),
        "valid_answered_200": sum(1 for r in results if r.kind == "valid" and r.status == 200),
        "valid_sent": len(valid),
        "wrong": [asdict(r) for r in results if not r.ok],
        "latency_s": {
            "valid_p50": round(percentile(valid, 50), 3), "valid_p95": round(percentile(valid, 95), 3),
            "valid_max": round(max(valid, default=float("nan")), 3),
            "all_p50": round(percentile(every, 50), 3), "all_p95": round(percentile(every, 95), 3),
            "mean_all": round(statistics.fmean(every), 3) if every else None,
        },
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(results) / wall, 1),
        "warmup_ok": all(r.ok for r in warm),
        "rss_mib": {"idle_after_warmup": round(idle["VmRSS"] / 1024, 1), "end": round(after["VmRSS"] / 1024, 1),
                    "peak": round(after["VmHWM"] / 1024, 1)},
        "listening_on": bound_to,
        "healthy_after": healthy_after,
        "traversal_file_created": TRAVERSAL_TARGET.exists(),
        "limits": health.get("limits"),
        "server_exit_code": server.returncode,
        "server_log_tracebacks": server_log.count("Traceback"),
        "server": server.command,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--weights", help="decoder weights for the server (default: an untrained seeded decoder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="also write the report here")
    args = parser.parse_args(argv)
    report = run(args.requests, args.concurrency, args.weights, args.seed)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if report["5xx"] == 0 and not report["wrong"] else 1


if __name__ == "__main__":
    sys.exit(main())
