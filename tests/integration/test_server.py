"""The web service through an HTTP client (Starlette's TestClient): valid
requests give images of the right size and type, identical to the Python API;
every bad input gives HTTP 4xx with a JSON ``{"error": ...}`` and no traceback.

The app loads its model at start-up through ``model_loader`` with the seeded
untrained decoder (``decoder_file``) and the real VGG encoder; images are tiny.
"""

from __future__ import annotations

import io
import re
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("multipart", reason="python-multipart is not installed")

from fastapi.testclient import TestClient  # noqa: E402

import stylekit  # noqa: E402
from stylekit.pipeline import Stylizer  # noqa: E402
from stylekit.server import EXAMPLES, STYLES, Limits, create_app, load_models  # noqa: E402


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SMALL = {"size": "64", "style_size": "64"}


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    # a training run shares this machine: one thread is both kinder and faster here
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def png_bytes(size=(80, 60), seed=0, fmt="PNG", mode="RGB") -> bytes:
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([xx / max(w - 1, 1), yy / max(h - 1, 1), ((xx + yy) % 17) / 16.0], -1)
    arr = np.clip(arr * 200 + rng.integers(0, 55, arr.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB").convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def mask_bytes(size=(80, 60), left=True) -> bytes:
    w, h = size
    arr = np.zeros((h, w), np.uint8)
    if left:
        arr[:, : w // 2] = 255
    else:
        arr[:, w // 2 :] = 255
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, format="PNG")
    return buf.getvalue()


CONTENT = png_bytes((80, 60), 1)
STYLE = png_bytes((64, 64), 2, fmt="JPEG")
STYLE2 = png_bytes((48, 64), 3)


def files(content=CONTENT, styles=(STYLE,), masks=()):
    out = []
    if content is not None:
        out.append(("content", ("content.png", content, "image/png")))
    out += [("style", (f"style{i}.png", s, "image/png")) for i, s in enumerate(styles)]
    out += [("mask", (f"mask{i}.png", m, "image/png")) for i, m in enumerate(masks)]
    return out


def decode(response) -> Image.Image:
    return Image.open(io.BytesIO(response.content))


def pixels(img) -> np.ndarray:
    return np.asarray(img.convert("RGB")).astype(int)


def api_pixels(model, **kwargs) -> np.ndarray:
    content = Image.open(io.BytesIO(kwargs.pop("content", CONTENT)))
    styles = [Image.open(io.BytesIO(s)) for s in kwargs.pop("styles", (STYLE,))]
    masks = kwargs.pop("masks", None)
    if masks is not None:
        masks = [Image.open(io.BytesIO(m)) for m in masks]
    return pixels(model.stylize(content, styles, masks=masks, size=64, style_size=64, **kwargs))


def assert_error(response, status: int, match: str = "") -> str:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert "Traceback" not in body["error"] and "File \"" not in body["error"]
    assert "stylekit-serve-" not in body["error"], body  # never the server's temp folder
    assert match in body["error"], body
    return body["error"]


@pytest.fixture(scope="module")
def model(decoder_file):
    return stylekit.load("adain", device="cpu", weights=decoder_file)


@pytest.fixture(scope="module")
def loads(decoder_file):
    return []


@pytest.fixture(scope="module")
def client(decoder_file, loads):
    def loader(method):
        loads.append(method)
        return stylekit.load(method, device="cpu", weights=decoder_file)

    limits = Limits(max_body_bytes=2_000_000, max_pixels=1_000_000, max_output_pixels=300_000, max_side=1024)
    app = create_app(model_loader=loader, limits=limits)
    with TestClient(app) as c:
        yield c


# ---------------------------------------------------------------- no model needed


class SlowStylizer(Stylizer):
    """Returns the content after a pause, and records how many ran at once."""

    method = "adain"
    device = torch.device("cpu")

    def __init__(self, pause=0.3, gate: threading.Event | None = None):
        self.pause, self.gate, self.running, self.most = pause, gate, 0, 0
        self.guard = threading.Lock()

    def transfer(self, content, styles, weights, masks, alpha):
        with self.guard:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.pause)
        if self.gate is not None:
            self.gate.wait(30)
        with self.guard:
            self.running -= 1
        return content


def test_requests_queue_behind_the_concurrency_limit():
    model = SlowStylizer(0.3)
    app = create_app(model, limits=Limits(max_concurrency=1))
    results = []
    with TestClient(app) as c:
        def post():
            results.append(c.post("/v1/stylize", files=files(), data=SMALL))

        threads = [threading.Thread(target=post) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert [r.status_code for r in results] == [200, 200, 200]
    assert model.most == 1
    assert max(float(r.headers["X-Stylekit-Queue-Seconds"]) for r in results) > 0.2


def test_request_timeout_is_503_json():
    gate = threading.Event()
    model = SlowStylizer(0, gate)
    app = create_app(model, limits=Limits(request_timeout_s=0.3))
    with TestClient(app) as c:
        assert_error(c.post("/v1/stylize", files=files(), data=SMALL), 503, "longer than this server's limit")
        # the abandoned job keeps its slot until it ends (memory stays bounded) ...
        assert_error(c.post("/v1/stylize", files=files(), data=SMALL), 503, "no free slot")
        gate.set()
        deadline = time.monotonic() + 10
        while model.running and time.monotonic() < deadline:
            time.sleep(0.01)
        # ... then frees it
        assert c.post("/v1/stylize", files=files(), data=SMALL).status_code == 200


def test_model_injected_directly_and_healthz():
    app = create_app(SlowStylizer(0.1))
    with TestClient(app) as c:
        info = c.get("/healthz").json()
        assert info["seconds_per_megapixel"] == {}
        assert c.post("/v1/stylize", files=files(), data=SMALL).status_code == 200
        after = c.get("/healthz").json()["seconds_per_megapixel"]
    assert info["status"] == "ok" and info["device"] == "cpu" and info["methods"] == ["adain"]
    assert info["limits"]["max_concurrency"] == 1
    assert info["stroke_scale_defaults"] == {"adain": None}  # this stub's; the real adain's is 1
    assert after["adain"] > 0.1 / (64 * 48 / 1e6)  # the stub pauses 0.1 s for a 64x48 picture


def test_load_models_takes_a_transform_for_adain(decoder_file, fast_weights_file, tmp_path, capsys):
    from stylekit.adain.transform import CovarianceTransform
    from stylekit.cli import main
    from stylekit.files import save_tensors

    save_tensors(tmp_path / "t.safetensors", CovarianceTransform(256, 4).state_dict(), {"kind": "adain-transform"})
    models = load_models(["adain", "fast"], device="cpu", weights=decoder_file, fast_weights=fast_weights_file,
                         transform_weights=tmp_path / "t.safetensors")
    assert models["adain"].transform.rank == 4
    assert load_models(["adain"], device="cpu", weights=decoder_file)["adain"].transform is None
    assert main(["serve", "--methods", "fast", "--transform", "none"]) == 2
    assert "--transform applies only to --methods adain" in capsys.readouterr().err


def test_load_models_takes_the_fast_network(decoder_file, fast_weights_file):
    models = load_models(["adain", "fast"], device="cpu", weights=decoder_file, fast_weights=fast_weights_file)
    assert [m.method for m in models.values()] == ["adain", "fast"]
    app = create_app(models)
    with TestClient(app) as c:
        info = c.get("/healthz").json()
        r = c.post("/v1/stylize", files=files(), data={**SMALL, "method": "fast"})
    assert info["methods"] == ["adain", "fast"] and info["stroke_scale_defaults"] == {"adain": 1.0, "fast": None}
    assert r.status_code == 200 and r.headers["X-Stylekit-Method"] == "fast" and decode(r).size == (64, 48)


def test_limits_are_checked():
    with pytest.raises(stylekit.StylekitError, match="max_concurrency"):
        Limits(max_concurrency=0)
    with pytest.raises(stylekit.StylekitError, match="decoder's limit"):
        Limits(max_pixels=10**12)
    with pytest.raises(ValueError):
        create_app()


def test_page_and_its_files_come_from_the_package():
    with TestClient(create_app(SlowStylizer(0))) as c:
        r = c.get("/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assets = [a for a in re.findall(r'<(?:script|link)[^>]*(?:src|href)="([^"]+)"', r.text) if a != "data:,"]
        assert assets == ["/static/app.css", "/static/temporal.js", "/static/app.js"]  # app.js uses temporal.js
        texts = [r.text] + [c.get(a).text for a in assets]
        assert c.get("/static/app.js").headers["content-type"].startswith(("text/javascript", "application/javascript"))
        assert_error(c.get("/static/..%2Fapp.py"), 404)
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp  # no inline script can run
    for text in texts:
        assert "http://" not in text and "https://" not in text and "//cdn" not in text  # no CDN
    assert "<script>" not in r.text and "<style>" not in r.text and " on" + "click=" not in r.text


@pytest.mark.parametrize("prefix, pictures", [("/v1/examples", EXAMPLES), ("/v1/styles", STYLES)])
def test_pictures_are_a_fixed_whitelist(prefix, pictures):
    with TestClient(create_app(SlowStylizer(0))) as c:
        listing = c.get(prefix).json()
        assert [e["id"] for e in listing] == list(pictures)
        for entry in listing:
            assert entry["title"] and entry["role"] in ("content", "style")
            r = c.get(entry["url"])
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
            full = decode(r)
            thumb = c.get(entry["thumbnail"])
            assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
            small = decode(thumb)
            assert max(small.size) == min(192, max(full.size)) < max(full.size)
            assert abs(small.size[0] / small.size[1] - full.size[0] / full.size[1]) < 0.02
        for bad in ("nope", "chelsea.jpg", "..%2F..%2Fpyproject.toml", "%2Fetc%2Fpasswd", "..", "chelsea%00"):
            assert_error(c.get(f"{prefix}/{bad}"), 404)
            assert_error(c.get(f"{prefix}/{bad}/thumbnail"), 404)


def test_gallery_holds_the_paintings_and_examples_keep_their_roles():
    assert STYLES and all(p.role == "style" and p.painter for p in STYLES.values())
    with TestClient(create_app(SlowStylizer(0))) as c:
        roles = {e["id"]: e["role"] for e in c.get("/v1/examples").json()}
    assert roles == {"chelsea": "content", "coffee": "content", "swirls": "style", "mosaic": "style"}


def test_docs_use_only_the_packages_assets():
    with TestClient(create_app(SlowStylizer(0))) as c:
        spec = c.get("/openapi.json").json()
        r = c.get("/docs")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "http://" not in r.text and "https://" not in r.text and "//cdn" not in r.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert len(assets) == 3
        for asset in assets:
            got = c.get(asset)
            assert got.status_code == 200 and len(got.content) > 1000, asset
        assert_error(c.get("/docs/assets/..%2F__init__.py"), 404)
        assert_error(c.get("/docs/assets/redoc.standalone.js"), 404)
        assert_error(c.get("/redoc"), 404)
    assert "/v1/stylize" in spec["paths"] and "/healthz" in spec["paths"] and "/v1/styles" in spec["paths"]
    fields = spec["components"]["schemas"]["Body_stylize_v1_stylize_post"]["properties"]
    assert "stroke_scale" in fields and "request" not in fields


def test_body_limit_from_content_length_before_reading():
    app = create_app(SlowStylizer(0), limits=Limits(max_body_bytes=1000))
    with TestClient(app) as c:
        r = c.post("/v1/stylize", files=files())
    assert_error(r, 413, "larger than this server's limit of 1,000 bytes")


def test_body_limit_while_streaming():
    """No Content-Length (chunked, as a lying or streaming client sends): the
    middleware counts the body as it arrives and stops reading once the count
    passes the limit, with a 413, while the app behind it is still reading."""
    import asyncio
    import json as json_module

    from stylekit.server.limits import BodyLimitMiddleware

    received, answered, app_saw = [], [], []

    async def reading_app(scope, receive, send):  # reads the whole body before answering
        while True:
            message = await receive()
            app_saw.append(len(message["body"]))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    async def receive():  # 1000 chunks of 10 kB: 10 MB against a 100 kB limit
        received.append(1)
        return {"type": "http.request", "body": b"x" * 10_000, "more_body": len(received) < 1000}

    async def send(message):
        answered.append(message)

    middleware = BodyLimitMiddleware(reading_app, max_bytes=100_000, timeout_s=5)
    asyncio.run(middleware({"type": "http", "method": "POST", "path": "/v1/stylize", "headers": []}, receive, send))
    # 11 chunks (110 kB) pass the limit; the 11th never reaches the app
    assert len(received) == 11 and app_saw == [10_000] * 10
    start = next(m for m in answered if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in answered if m["type"] == "http.response.body")
    assert start["status"] == 413 and (b"connection", b"close") in start["headers"]
    assert json_module.loads(body) == {"error": "request body is larger than this server's limit of 100,000 bytes"}


def test_unknown_route_is_json_404():
    with TestClient(create_app(SlowStylizer(0))) as c:
        assert_error(c.get("/nope"), 404)
        assert_error(c.get("/v1/stylize"), 405)


# ---------------------------------------------------------------- the real pipeline


def test_model_loaded_once_at_startup(client, loads):
    assert loads == ["adain"]
    client.get("/healthz")
    client.post("/v1/stylize", files=files(), data=SMALL)
    assert loads == ["adain"]


def test_png_matches_python_api(client, model):
    r = client.post("/v1/stylize", files=files(), data={**SMALL, "alpha": "0.7"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert float(r.headers["X-Stylekit-Seconds"]) >= 0
    assert r.headers["X-Stylekit-Size"] == "64x48"
    img = decode(r)
    assert img.format == "PNG" and img.size == (64, 48)
    assert np.array_equal(pixels(img), api_pixels(model, alpha=0.7))


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "JPEG"])
def test_jpeg(client, fmt):
    r = client.post("/v1/stylize", files=files(), data={**SMALL, "format": fmt})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert decode(r).format == "JPEG" and decode(r).size == (64, 48)


@pytest.mark.parametrize("data, expected", [
    ({"size": "0"}, (80, 60)),
    ({"size": "32"}, (32, 24)),
    ({"size": "64", "crop": "true"}, (64, 64)),
    ({"size": "0", "crop": "on"}, (60, 60)),
])
def test_sizes(client, data, expected):
    r = client.post("/v1/stylize", files=files(), data={"style_size": "64", **data})
    assert r.status_code == 200, r.text
    assert decode(r).size == expected


def test_several_styles_with_weights(client, model):
    r = client.post("/v1/stylize", files=files(styles=(STYLE, STYLE2)), data={**SMALL, "style_weights": "0.7, 0.3"})
    assert r.status_code == 200, r.text
    got = pixels(decode(r))
    assert np.array_equal(got, api_pixels(model, styles=(STYLE, STYLE2), style_weights=[0.7, 0.3]))
    other = client.post("/v1/stylize", files=files(styles=(STYLE, STYLE2)), data={**SMALL, "style_weights": "0.1,0.9"})
    assert np.abs(pixels(decode(other)) - got).mean() > 0.5
    # no weights: an equal blend
    equal = client.post("/v1/stylize", files=files(styles=(STYLE, STYLE2)), data=SMALL)
    assert np.array_equal(pixels(decode(equal)), api_pixels(model, styles=(STYLE, STYLE2), style_weights=[1, 1]))


def test_masks(client, model):
    masks = (mask_bytes(left=True), mask_bytes(left=False))
    r = client.post("/v1/stylize", files=files(styles=(STYLE, STYLE2), masks=masks), data=SMALL)
    assert r.status_code == 200, r.text
    assert np.array_equal(pixels(decode(r)), api_pixels(model, styles=(STYLE, STYLE2), masks=masks))
    # one mask with two styles: the mask and its complement, as the official AdaIN's -mask
    one = client.post("/v1/stylize", files=files(styles=(STYLE, STYLE2), masks=masks[:1]), data=SMALL)
    assert one.status_code == 200, one.text
    assert np.array_equal(pixels(decode(one)), pixels(decode(r)))


def test_small_pictures_keep_their_size_unless_a_size_is_asked(client):
    small = png_bytes((40, 30), 7)
    r = client.post("/v1/stylize", files=files(content=small), data={"format": "png"})
    assert r.status_code == 200, r.text
    assert r.headers["X-Stylekit-Size"] == "40x30"
    r = client.post("/v1/stylize", files=files(content=small), data={"size": "80", "format": "png"})
    assert r.headers["X-Stylekit-Size"] == "80x60"


@pytest.mark.parametrize("value, mode", [("true", "luminance"), ("luminance", "luminance"), ("histogram", "histogram")])
def test_preserve_color(client, model, value, mode):
    r = client.post("/v1/stylize", files=files(), data={**SMALL, "preserve_color": value})
    assert r.status_code == 200, r.text
    assert np.array_equal(pixels(decode(r)), api_pixels(model, preserve_color=mode))


@pytest.mark.parametrize("stroke_scale", [0, 0.5, 2])
def test_stroke_scale(client, model, stroke_scale):
    r = client.post("/v1/stylize", files=files(), data={**SMALL, "stroke_scale": str(stroke_scale)})
    assert r.status_code == 200, r.text
    assert np.array_equal(pixels(decode(r)), api_pixels(model, stroke_scale=stroke_scale))


def test_no_stroke_scale_is_the_methods_default(client, model):
    r = client.post("/v1/stylize", files=files(), data={**SMALL, "stroke_scale": ""})
    assert r.status_code == 200, r.text
    got = pixels(decode(r))
    assert np.array_equal(got, api_pixels(model, stroke_scale=model.default_stroke_scale))
    assert not np.array_equal(got, api_pixels(model, stroke_scale=0))


def test_odd_but_valid_inputs(client):
    # grey PNG, CMYK JPEG, a GIF: decoded like the CLI does
    for content in (png_bytes((40, 30), 4, mode="L"), png_bytes((40, 30), 5, fmt="JPEG", mode="CMYK"),
                    png_bytes((40, 30), 6, fmt="GIF", mode="P")):
        r = client.post("/v1/stylize", files=files(content=content), data={"size": "0", "style_size": "32"})
        assert r.status_code == 200, r.text
        assert decode(r).size == (40, 30)


def test_alpha_change_reuses_cached_features(client, model):
    app_model = client.app.state.models["adain"]
    calls = []
    original = app_model.encoder.encode

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    app_model.encoder.encode = counting
    try:
        content, style = png_bytes((72, 56), 11), png_bytes((56, 56), 12)
        for alpha in ("1", "0.8", "0.6", "0.4"):
            r = client.post("/v1/stylize", files=files(content=content, styles=(style,)), data={**SMALL, "alpha": alpha})
            assert r.status_code == 200, r.text
    finally:
        del app_model.encoder.encode
    assert len(calls) == 2  # content and style once each, then from the cache


# ---------------------------------------------------------------- bad input: 4xx + JSON


def flat_png(size, value=0) -> bytes:
    """One grey level: a tiny file for any number of pixels."""
    buf = io.BytesIO()
    Image.new("L", size, value).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def black_mask(size=(80, 60)) -> bytes:
    return flat_png(size, 0)


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


BAD = [
    ("missing content", dict(files=files(content=None)), 400, "content image is needed"),
    ("missing style", dict(files=files(styles=())), 400, "at least one style"),
    ("content not an image", dict(files=files(content=b"hello, not an image")), 400,
     "not an image (or an unsupported format): content.png (content)"),
    ("style not an image", dict(files=files(styles=(STYLE, b"GIF89a nonsense"))), 400, "style1.png (style 2)"),
    ("empty content", dict(files=files(content=b"")), 400, "content"),
    ("truncated png", dict(files=files(content=truncated(CONTENT))), 400, "content"),
    ("truncated jpeg", dict(files=files(styles=(truncated(STYLE),))), 400, "style 1"),
    ("tiny image", dict(files=files(content=png_bytes((8, 8))), data={**SMALL, "size": "0"}), 400,
     "content.png (content): image is 8x8; both sides must be at least 16"),
    ("alpha 2", dict(data={**SMALL, "alpha": "2"}), 400, "alpha must be in [0, 1]"),
    ("alpha -0.1", dict(data={**SMALL, "alpha": "-0.1"}), 400, "alpha must be in [0, 1]"),
    ("alpha nan", dict(data={**SMALL, "alpha": "nan"}), 400, "alpha"),
    ("alpha not a number", dict(data={**SMALL, "alpha": "lots"}), 422, "alpha"),
    ("negative weights", dict(files=files(styles=(STYLE, STYLE2)), data={**SMALL, "style_weights": "1,-1"}), 400,
     "non-negative"),
    ("zero weights", dict(files=files(styles=(STYLE, STYLE2)), data={**SMALL, "style_weights": "0,0"}), 400,
     "not all be zero"),
    ("weights not numbers", dict(files=files(styles=(STYLE, STYLE2)), data={**SMALL, "style_weights": "a,b"}), 400,
     "comma-separated numbers"),
    ("weights count", dict(files=files(styles=(STYLE, STYLE2)), data={**SMALL, "style_weights": "1,2,3"}), 400,
     "3 style weights for 2 styles"),
    ("mask wrong shape", dict(files=files(masks=(mask_bytes((40, 40)),))), 400, "another aspect ratio"),
    ("mask count", dict(files=files(masks=(mask_bytes(), mask_bytes(left=False)))), 400, "one mask per style"),
    ("mask not an image", dict(files=files(masks=(b"nope",))), 400, "mask 1"),
    ("masks and weights", dict(files=files(styles=(STYLE, STYLE2), masks=(mask_bytes(), mask_bytes(left=False))),
                               data={**SMALL, "style_weights": "1,1"}), 400, "not both"),
    ("all-black mask", dict(files=files(masks=(black_mask(),))), 400, "mask0.png (mask 1) is all black"),
    ("unknown method", dict(data={**SMALL, "method": "picasso"}), 400, "unknown method 'picasso'"),
    ("method not loaded", dict(data={**SMALL, "method": "gatys"}), 400, "this server offers: adain"),
    ("bad format", dict(data={**SMALL, "format": "gif"}), 400, "format must be png or jpeg"),
    ("bad preserve_color", dict(data={**SMALL, "preserve_color": "sepia"}), 400, "preserve_color"),
    ("bad crop", dict(data={**SMALL, "crop": "maybe"}), 400, "crop must be true or false"),
    ("size too small", dict(data={**SMALL, "size": "5"}), 400, "size must be 0 or at least 16"),
    ("negative size", dict(data={**SMALL, "size": "-1"}), 400, "non-negative"),
    ("size beyond limit", dict(data={**SMALL, "size": "5000"}), 422,
     "size 5000 is more than this server's limit of 1024"),
    ("style size beyond limit", dict(data={**SMALL, "style_size": "1500"}), 422, "style_size 1500 is more than"),
    ("output beyond limit", dict(data={**SMALL, "size": "1000"}), 422, "limit of 300,000; ask for a smaller size"),
    ("too many pixels", dict(files=files(content=flat_png((1200, 1000)))), 422,
     "content.png (content): image is 1200x1000 pixels, more than this server's limit of 1,000,000"),
    ("decompression bomb", dict(files=files(styles=(flat_png((20000, 20000)),))), 422,
     "style0.png (style 1): image declares a size beyond this server's limit"),
    ("too many styles", dict(files=files(styles=(STYLE,) * 5)), 422, "at most 4"),
    ("stroke scale out of range", dict(data={**SMALL, "stroke_scale": "8"}), 400, "stroke scale must be 0"),
    ("stroke scale not a number", dict(data={**SMALL, "stroke_scale": "big"}), 422, "stroke_scale"),
    ("content as text field", dict(files=files(content=None), data={**SMALL, "content": "x"}), 422, "content"),
    ("oversized body", dict(files=files(content=b"\0" * 2_100_000)), 413, "larger than this server's limit"),
]


@pytest.mark.parametrize("name, request_kwargs, status, match", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_4xx_json(client, name, request_kwargs, status, match):
    kwargs = {"files": files(), "data": SMALL, **request_kwargs}
    assert_error(client.post("/v1/stylize", **kwargs), status, match)


def test_server_still_healthy_after_bad_requests(client):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.post("/v1/stylize", files=files(), data=SMALL).status_code == 200


def test_app_can_be_started_twice():
    app = create_app(SlowStylizer(0))
    for _ in range(2):
        with TestClient(app) as c:
            assert c.post("/v1/stylize", files=files(), data=SMALL).status_code == 200
