"""The real server: uvicorn on a free loopback port (in a thread) with the
seeded test decoder, checked over raw sockets and driven in headless Chromium.

The browser test needs Debian's ``chromium`` (``/usr/bin/chromium``) and the
Playwright Python package (never ``playwright install``: we use the system
browser); it skips with the reason when either is missing. Its screenshot is
saved under ``artifacts/`` (gitignored; ``$STYLEKIT_ARTIFACTS`` overrides).
"""

from __future__ import annotations

import json
import os
import select
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")

import stylekit  # noqa: E402
from stylekit.server import Limits, create_app  # noqa: E402

from .conftest import REPO, make_image  # noqa: E402


CHROMIUM = Path(os.environ.get("STYLEKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("STYLEKIT_ARTIFACTS", REPO / "artifacts"))
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


@pytest.fixture(scope="module")
def live_server(decoder_file):
    """A uvicorn server that loaded the model at start-up."""
    app = create_app(model_loader=lambda method: stylekit.load(method, device="cpu", weights=decoder_file),
                     limits=Limits(max_body_bytes=BODY_LIMIT, body_timeout_s=1))
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


@pytest.mark.slow
def test_browser_uploads_stylizes_and_shows_the_result(live_server, tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed "
                                                                  "(pip install playwright)")
    content = make_image(tmp_path / "photo.png", (80, 60), seed=1)
    style = make_image(tmp_path / "painting.jpg", (64, 64), seed=2)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "server_browser.png"

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            # bypass_csp: Playwright evaluates its wait conditions as strings, which the page's CSP forbids
            page = browser.new_page(viewport={"width": 1100, "height": 820}, bypass_csp=True)
            problems = []
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
            posts = []
            page.on("request", lambda r: posts.append(r) if r.url.endswith("/v1/stylize") else None)
            # what reached the model (the browser does not expose multipart bodies with files)
            model = live_server.app.state.models["adain"]
            calls = []
            original = model.stylize

            def recording(content, styles, **kwargs):
                calls.append({"content_size": content.size, "styles": len(styles), **kwargs})
                return original(content, styles, **kwargs)

            model.stylize = recording
            page.goto(live_server + "/")
            page.wait_for_selector("#content-examples .thumb")  # the examples endpoint answered

            # upload a content and a style, choose a size, press stylize
            page.set_input_files("#content-file", str(content))
            page.set_input_files("#style-file", str(style))
            page.select_option("#size", "256")
            assert page.is_enabled("#stylize")
            page.click("#stylize")
            page.wait_for_function("document.getElementById('result').dataset.state === 'done'", timeout=60_000)
            size = page.evaluate("(() => { const r = document.getElementById('result');"
                                 " return [r.naturalWidth, r.naturalHeight, r.hidden]; })()")
            assert size == [256, 192, False]  # 80x60 with the longer side at 256
            status = page.inner_text("#status")
            assert "256\u00d7192" in status and "stylized in" in status, status
            assert page.inner_text("#error") == ""
            assert len(posts) == 1

            # the alpha slider re-requests by itself, debounced: four moves, (about) one request
            first_src = page.get_attribute("#result", "src")
            with page.expect_response(lambda r: r.url.endswith("/v1/stylize")) as answer:
                page.evaluate("""(() => { const a = document.getElementById('alpha');
                    for (const v of ['0.9', '0.8', '0.7', '0.5']) { a.value = v; a.dispatchEvent(new Event('input')); }
                })()""")
            assert answer.value.status == 200
            page.wait_for_function(f"document.getElementById('result').src !== {json.dumps(first_src)}",
                                   timeout=60_000)
            assert len(posts) == 2, [r.url for r in posts]
            assert [c["alpha"] for c in calls] == [1.0, 0.5]
            assert page.inner_text("#alpha-value") == "0.50"

            # bundled examples: a content and two styles give two weight sliders
            page.click("#content-examples .thumb[data-id=chelsea]")
            page.click("#style-list .remove")
            page.click("#style-examples .thumb[data-id=swirls]")
            page.click("#style-examples .thumb[data-id=mosaic]")
            page.wait_for_selector("#style-list input.weight >> nth=1")
            assert page.locator("#style-list input.weight").count() == 2
            page.check("#preserve-color")
            with page.expect_response(lambda r: r.url.endswith("/v1/stylize")) as answer:
                page.click("#stylize")
            assert answer.value.status == 200
            page.wait_for_function("document.getElementById('status').textContent.includes('256\u00d7170')",
                                   timeout=60_000)
            last = calls[-1]
            assert last["content_size"] == (451, 300) and last["size"] == 256 and last["styles"] == 2  # chelsea, swirls + mosaic
            assert last["style_weights"] == (1.0, 1.0) and last["preserve_color"] == "luminance"
            page.screenshot(path=str(shot), full_page=True)
            assert not problems, problems
        finally:
            model.__dict__.pop("stylize", None)
            browser.close()
    assert shot.is_file() and shot.stat().st_size > 10_000
