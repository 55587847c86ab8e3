"""The real server: uvicorn on a free loopback port (in a thread) with the
seeded test decoder, checked over HTTP and raw sockets: what the API refuses
and how, and the body limits. The browser page is driven in
``test_web_page.py``, which starts its servers with :func:`running`.
"""

from __future__ import annotations

import contextlib
import io
import json
import select
import socket
import threading
import time

import pytest
import torch

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")

import stylekit  # noqa: E402
from stylekit.pipeline import Stylizer  # noqa: E402
from stylekit.server import Limits, create_app  # noqa: E402

from ..conftest import seeded_image  # noqa: E402


BODY_LIMIT = 1_000_000


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Live(str):
    """The server's URL (``http://127.0.0.1:PORT``), with its ``app``."""

    def __new__(cls, url, app):
        obj = super().__new__(cls, url)
        obj.app = app
        return obj


@contextlib.contextmanager
def running(app):
    """``app`` under uvicorn on a free loopback port, in a thread; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # a free port, held until uvicorn takes the socket over
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_keep_alive=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the server did not start")
        time.sleep(0.05)
    try:
        yield Live(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="module")
def live_server(decoder_file):
    """A uvicorn server that loaded the model at start-up."""
    app = create_app(model_loader=lambda method: stylekit.load(method, device="cpu", weights=decoder_file),
                     limits=Limits(max_body_bytes=BODY_LIMIT, body_timeout_s=1, max_side=1024))
    with running(app) as url:
        yield url


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _read_response(conn: socket.socket, timeout: float = 10) -> tuple[int, dict]:
    conn.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, json.loads(body[:length] or b"{}")


def test_healthz_over_http(live_server):
    import httpx

    info = httpx.get(live_server + "/healthz", timeout=10).json()
    assert info["status"] == "ok" and info["methods"] == ["adain"] and info["device"] == "cpu"


def _post(url, data=None, files=None, params=None):
    import httpx

    photo = make_image_bytes((80, 60), 1)
    files = files if files is not None else [("content", ("photo.png", photo, "image/png")),
                                             ("style", ("painting.png", make_image_bytes((64, 64), 2), "image/png"))]
    return httpx.post(url + "/v1/stylize", data={"size": "64", "style_size": "64", **(data or {})}, files=files,
                      params=params, timeout=60)


def _error_of(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"} and "\n" not in body["error"]
    return body["error"]


def test_unknown_field_is_422_naming_it_and_the_known_ones(live_server):
    message = _error_of(_post(live_server, {"alfa": "0.5"}), 422)
    assert message.startswith("unknown field 'alfa' (did you mean 'alpha'?)"), message
    for known in ("content", "style", "mask", "method", "alpha", "style_weights", "preserve_color", "size",
                  "style_size", "crop", "stroke_scale", "format"):
        assert f" {known}," in message or message.endswith(f" {known}"), (known, message)
    assert "'zzz';" in _error_of(_post(live_server, {"zzz": "1"}), 422)  # no near match: no guess
    # a file under an unknown name too, and an option sent in the query string
    extra = [("content", ("photo.png", make_image_bytes((80, 60), 1), "image/png")),
             ("styles", ("painting.png", make_image_bytes((64, 64), 2), "image/png"))]
    assert "unknown field 'styles' (did you mean 'style'?)" in _error_of(_post(live_server, files=extra), 422)
    assert "query parameter 'alpha' is not read" in _error_of(_post(live_server, params={"alpha": "0.5"}), 422)
    assert "'alpha' was given 2 times" in _error_of(_post(live_server, {"alpha": ["0.5", "0.7"]}), 422)
    assert _post(live_server, {"alpha": "0.5"}).status_code == 200


def test_size_over_the_limit_is_422_saying_the_limit(live_server):
    message = _error_of(_post(live_server, {"size": "4096"}), 422)
    assert message == "size 4096 is more than this server's limit of 1024"
    message = _error_of(_post(live_server, {"style_size": "2000"}), 422)
    assert message == "style_size 2000 is more than this server's limit of 1024"


def test_errors_name_the_uploaded_file(live_server):
    readme = [("content", ("README.md", b"# stylekit\n\nnot a picture\n", "text/markdown")),
              ("style", ("painting.png", make_image_bytes((64, 64), 2), "image/png"))]
    message = _error_of(_post(live_server, files=readme), 400)
    assert "README.md (content)" in message and "not an image" in message and "/tmp" not in message


def test_a_queued_request_whose_client_left_never_runs(decoder_file):
    import httpx

    gate = threading.Event()
    model = GatedStylizer(gate)
    with running(create_app(model)) as url:
        first = threading.Thread(target=lambda: _post(url), daemon=True)
        first.start()
        wait_until(lambda: model.calls == 1, "the first job to start")
        with socket.create_connection(("127.0.0.1", _port(url)), timeout=10) as conn:
            request = httpx.Request("POST", url + "/v1/stylize", data={"size": "64", "style_size": "64"}, files=[
                ("content", ("photo.png", make_image_bytes((80, 60), 1), "image/png")),
                ("style", ("painting.png", make_image_bytes((64, 64), 2), "image/png"))])
            body = request.read()
            head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items() if k.lower() != "host")
            conn.sendall(f"POST /v1/stylize HTTP/1.1\r\nHost: t\r\n{head}\r\n".encode() + body)
            wait_until(lambda: url.app.state.slots.waiting == 1, "the second request to queue")
        gate.set()  # the first job ends; the second's client has gone
        first.join(30)
        r = _post(url)
        assert r.status_code == 200
    assert model.calls == 2  # the first and the last; the abandoned one was dropped


class GatedStylizer(Stylizer):
    """Returns the content once ``gate`` is set; counts its calls."""

    method = "adain"
    device = torch.device("cpu")

    def __init__(self, gate: threading.Event):
        self.gate, self.calls = gate, 0

    def transfer(self, content, styles, weights, masks, alpha):
        self.calls += 1
        self.gate.wait(30)
        return content


def wait_until(condition, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def make_image_bytes(size, seed) -> bytes:
    buf = io.BytesIO()
    seeded_image(size, seed).save(buf, format="PNG")
    return buf.getvalue()


def test_huge_content_length_refused_before_any_body(live_server):
    with socket.create_connection(("127.0.0.1", _port(live_server)), timeout=10) as conn:
        conn.sendall(b"POST /v1/stylize HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
                     b"Content-Length: 10000000000\r\n\r\n")
        status, body = _read_response(conn)
    assert status == 413 and "larger than this server's limit" in body["error"]


def test_chunked_upload_refused_while_streaming(live_server):
    chunk = b"x" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", _port(live_server)), timeout=10) as conn:
        conn.sendall(b"POST /v1/stylize HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        part = (b'--zz\r\nContent-Disposition: form-data; name="content"; filename="big.png"\r\n'
                b"Content-Type: image/png\r\n\r\n")  # a well-formed start, then a file that never ends
        conn.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        for _ in range(200):  # up to 13 MB, 13x the limit
            readable, _, _ = select.select([conn], [], [], 0)
            if readable:
                break
            try:
                conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
            time.sleep(0.002)
        status, body = _read_response(conn)
    assert status == 413 and "larger than this server's limit" in body["error"]
    assert sent < 4 * BODY_LIMIT  # refused early, not after reading everything


def test_stalled_upload_times_out(live_server):
    with socket.create_connection(("127.0.0.1", _port(live_server)), timeout=10) as conn:
        conn.sendall(b"POST /v1/stylize HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
                     b"Content-Length: 5000\r\n\r\n--zz\r\n")  # then nothing more
        start = time.monotonic()
        status, body = _read_response(conn)
    assert status == 408 and "timed out" in body["error"]
    assert time.monotonic() - start < 8
