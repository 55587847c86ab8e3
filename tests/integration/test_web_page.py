"""The browser page, driven in headless Chromium as a person would use it, at
desktop (1440x900) and phone (390x844) sizes: drop, paste, the gallery, the
sliders with fast previews, the compare split, the download, regions painted
with the brush or uploaded, errors, progress and cancel, the webcam (Chromium's
fake camera) and the API docs with the network blocked.

Needs Debian's ``chromium`` and the Playwright Python package (never
``playwright install``); skips with the reason when either is missing. One
browser serves the whole module. The server runs the real VGG encoder with the
seeded untrained decoder and fast network (plumbing, not quality).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")

import stylekit  # noqa: E402
from stylekit.pipeline import Stylizer  # noqa: E402
from stylekit.server import Limits, create_app  # noqa: E402

from ..conftest import seeded_image  # noqa: E402
from .test_server_live import _one_torch_thread, running  # noqa: E402,F401 (an autouse fixture)

pytestmark = [pytest.mark.slow]

CHROMIUM = Path(os.environ.get("STYLEKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
FAKE_CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
DONE = "document.getElementById('result').dataset.state === 'done'"


class SlowStylizer(Stylizer):
    """Returns the content after ``pause`` seconds and once ``go`` is set: a stand-in for a slow method."""

    method = "style-swap"
    device = torch.device("cpu")

    def __init__(self, pause: float):
        self.pause, self.go = pause, threading.Event()
        self.go.set()

    def transfer(self, content, styles, weights, masks, alpha):
        time.sleep(self.pause)
        self.go.wait(60)
        return content


class Calls:
    """What reached each model's ``stylize`` (the browser does not expose multipart bodies)."""

    def __init__(self, models):
        self.models, self.log, self.lock = models, [], threading.Lock()
        for name, model in models.items():
            model.stylize = self._recording(name, model.stylize)

    def _recording(self, name, original):
        def stylize(content, styles, **kwargs):
            with self.lock:
                self.log.append({"method": name, "content_size": content.size, "styles": len(styles), **kwargs})
            return original(content, styles, **kwargs)

        return stylize

    def of(self, method):
        with self.lock:
            return [c for c in self.log if c["method"] == method]

    def clear(self):
        with self.lock:
            self.log.clear()


@pytest.fixture(scope="module")
def server(decoder_file, fast_weights_file):
    """adain and the fast network, and a slow stand-in for style swap."""
    models = {
        "adain": stylekit.load("adain", device="cpu", weights=decoder_file),
        "fast": stylekit.load("fast", device="cpu", weights=fast_weights_file),
        "style-swap": SlowStylizer(1.0),
    }
    calls = Calls(models)
    with running(create_app(models, limits=Limits(max_side=1024))) as url:
        url.calls = calls
        yield url


@pytest.fixture(scope="module")
def adain_only(decoder_file):
    with running(create_app(stylekit.load("adain", device="cpu", weights=decoder_file))) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + FAKE_CAMERA, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def open_page(browser, server):
    """``open_page(url=server, viewport=DESKTOP, **context options)``: a fresh page that reports script errors."""
    contexts, problems = [], []

    def open_(url=None, viewport=DESKTOP, **options):
        url = url or server
        # bypass_csp: Playwright evaluates its wait conditions as strings, which the page's CSP forbids
        context = browser.new_context(viewport=viewport, bypass_csp=True, accept_downloads=True, **options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on("console", lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None)
        page.goto(url + "/")
        page.wait_for_selector("#style-gallery .thumb")
        return page

    server.calls.clear()
    yield open_
    for context in contexts:
        context.close()
    # the README's failed upload logs its 400 as a console error, which is the point of that test
    assert not [p for p in problems if "400 (Bad Request)" not in p], problems


def png(size, seed=0) -> bytes:
    buf = io.BytesIO()
    seeded_image(size, seed).save(buf, format="PNG")
    return buf.getvalue()


def drop(page, selector: str, name: str, data: bytes, mime: str = "image/png") -> None:
    """Drop a file on an element, as dragging it from the desktop does."""
    transfer = page.evaluate_handle(
        """([name, b64, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: mime }));
            return dt;
        }""", [name, base64.b64encode(data).decode(), mime])
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def copy_image(page, size, colour="#c04020") -> None:
    """Put a PNG on the clipboard, as copying an image in another app does."""
    page.evaluate("""async ([w, h, colour]) => {
        const c = document.createElement('canvas'); c.width = w; c.height = h;
        const ctx = c.getContext('2d'); ctx.fillStyle = colour; ctx.fillRect(0, 0, w, h);
        ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, w / 2, h / 3);
        const blob = await new Promise((r) => c.toBlob(r, 'image/png'));
        await navigator.clipboard.write([new ClipboardItem({ 'image/png': blob })]);
    }""", [size[0], size[1], colour])


def rect(page, selector: str) -> dict:
    return page.eval_on_selector(selector, "e => JSON.parse(JSON.stringify(e.getBoundingClientRect()))")


def inside_viewport(box: dict, viewport: dict) -> bool:
    return box["height"] > 0 and box["top"] >= 0 and box["left"] >= 0 and \
        box["bottom"] <= viewport["height"] and box["right"] <= viewport["width"]


def pick_examples(page, content="chelsea", styles=("swirls",), size="256"):
    page.click(f"#content-examples .thumb[data-id={content}]")
    page.wait_for_selector("#content-picked .name")
    for s in styles:
        page.click(f"#style-gallery .thumb[data-id={s}]")
    page.wait_for_function(f"document.querySelectorAll('#style-list .style-row').length === {len(styles)}")
    page.select_option("#size", size)


def stylize(page):
    page.click("#stylize")
    page.wait_for_function(DONE)


# ---------------------------------------------------------------- desktop


def test_drop_paste_gallery_stylize_compare_and_download(open_page, server, tmp_path):
    page = open_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    # each example in its role: photos offered as content, paintings as style
    ids = "ts => ts.map(t => t.dataset.id)"
    assert page.eval_on_selector_all("#content-examples .thumb", ids) == ["chelsea", "coffee"]
    from stylekit import styles

    # the built-in paintings first, then the examples
    assert page.eval_on_selector_all("#style-gallery .thumb", ids) == [*styles.names(), "swirls", "mosaic"]
    assert "Swirls" in page.get_attribute("#style-gallery .thumb[data-id=swirls]", "title")

    drop(page, "#content-zone", "holiday.png", png((120, 90), 1))
    page.wait_for_function("document.querySelector('#content-picked .name')?.textContent === 'holiday.png'")
    copy_image(page, (64, 48))
    page.keyboard.press("Control+V")  # with a photo already there, a pasted picture is a style
    page.wait_for_function("document.querySelector('#style-list .name')?.textContent === 'pasted.png'")
    page.click("#style-gallery .thumb[data-id=swirls]")
    page.wait_for_selector("#style-list input.weight >> nth=1")
    page.select_option("#size", "256")
    stylize(page)

    (call,) = server.calls.of("adain")
    assert call["content_size"] == (120, 90) and call["styles"] == 2 and call["size"] == 256
    assert call["style_weights"] == (1.0, 1.0) and call["stroke_scale"] == 1  # adain's default stroke size
    assert page.evaluate("(r => [r.naturalWidth, r.naturalHeight])(document.getElementById('result'))") == [256, 192]

    # the result fills its panel: as large as the stage allows at its aspect ratio
    stage, shown = rect(page, "#stage"), rect(page, "#result")
    assert max(shown["width"] / stage["width"], shown["height"] / stage["height"]) > 0.97, (stage, shown)
    assert shown["width"] > 3 * 256  # scaled up, not left at its pixel size

    # the compare split follows the pointer: the photo left of it, the result right of it
    frame = rect(page, "#frame")
    y = frame["top"] + frame["height"] / 2
    page.mouse.move(frame["left"] + frame["width"] * 0.5, y)
    page.mouse.down()
    page.mouse.move(frame["left"] + frame["width"] * 0.2, y, steps=5)
    page.mouse.up()
    divider = rect(page, "#divider")
    assert abs(divider["left"] + divider["width"] / 2 - (frame["left"] + 0.2 * frame["width"])) < 0.02 * frame["width"]
    clip = page.evaluate("getComputedStyle(document.getElementById('before')).clipPath")
    assert re.search(r"inset\(0(px)? (80|79\.\d+|80\.\d+)%", clip), clip
    shot = Image.open(io.BytesIO(page.screenshot(clip={"x": frame["left"], "y": frame["top"],
                                                       "width": frame["width"], "height": frame["height"]})))
    seen = np.asarray(shot.convert("RGB"), float)
    photo = np.asarray(seeded_image((120, 90), 1).resize(shot.size), float)
    tenth, half = shot.width // 10, shot.width // 2
    assert np.abs(seen[:, :tenth] - photo[:, :tenth]).mean() < 12  # the photo
    assert np.abs(seen[:, half:] - photo[:, half:]).mean() > 20  # the stylized picture

    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "holiday_stylized_pasted+swirls.png"
    saved = tmp_path / "saved.png"
    download.value.save_as(saved)
    assert Image.open(saved).size == (256, 192)


def test_slider_previews_with_the_fast_network_then_renders_with_the_chosen_method(open_page, server):
    page = open_page()
    pick_examples(page)
    stylize(page)
    server.calls.clear()

    # a slow drag: previews while the pointer moves, the final picture once it is released
    slider = rect(page, "#alpha")
    y = slider["top"] + slider["height"] / 2
    page.mouse.move(slider["right"] - 6, y)
    page.mouse.down()
    page.mouse.move(slider["left"] + slider["width"] * 0.6, y, steps=4)
    page.wait_for_function("document.getElementById('result').dataset.state === 'preview'")
    assert page.inner_text("#badge") == "preview (fast network)"
    page.mouse.move(slider["left"] + slider["width"] * 0.4, y, steps=4)
    page.mouse.up()
    page.wait_for_function(DONE + " && document.getElementById('result').dataset.method === 'adain'")
    alpha = float(page.input_value("#alpha"))
    assert 0.3 < alpha < 0.5
    previews, finals = server.calls.of("fast"), server.calls.of("adain")
    assert previews and all(c["size"] == 256 for c in previews)
    assert finals[-1]["alpha"] == alpha and page.is_hidden("#badge")

    # the stroke size and the other controls re-stylize by themselves
    page.evaluate("(s => { s.value = '0'; s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); })"
                  "(document.getElementById('stroke'))")
    page.wait_for_function("document.getElementById('stroke-value').textContent === 'one pass'")
    page.check("input[name=colours][value=histogram]", force=True)
    page.select_option("#style-size", "384")
    page.check("#crop")
    page.wait_for_function(DONE + " && (r => r.naturalWidth === r.naturalHeight)(document.getElementById('result'))")
    last = server.calls.of("adain")[-1]
    got = (last["stroke_scale"], last["preserve_color"], last["style_size"], last["crop"])
    assert got == (0, "histogram", 384, True)
    assert page.evaluate("document.getElementById('result').naturalWidth") == 256


def test_regions_painted_with_the_brush_and_uploaded(open_page, server):
    page = open_page()
    pick_examples(page, styles=("swirls", "mosaic"))
    assert page.locator("#style-list input.weight").count() == 2

    # style 1: brush strokes over the left of the photo
    page.click("#style-list .region[data-index='0']")
    page.wait_for_selector("#mask-editor[open]")
    page.fill("#brush", "120")
    photo = rect(page, "#mask-canvas")
    for row in range(6):
        y = photo["top"] + photo["height"] * (0.05 + 0.18 * row)
        page.mouse.move(photo["left"] + 2, y)
        page.mouse.down()
        page.mouse.move(photo["left"] + photo["width"] * 0.3, y, steps=6)
        page.mouse.up()
    page.click("#mask-done")
    # style 2: an uploaded mask of another size, white on the right
    mask = np.zeros((60, 90), np.uint8)
    mask[:, 60:] = 255
    buf = io.BytesIO()
    Image.fromarray(mask, "L").save(buf, format="PNG")
    page.click("#style-list .region[data-index='1']")
    page.set_input_files("#mask-file", files=[{"name": "right.png", "mimeType": "image/png", "buffer": buf.getvalue()}])
    page.click("#mask-done")
    assert page.locator("#style-list .region.on").count() == 2
    assert page.locator("#style-list input.weight").count() == 0  # regions, not a blend
    stylize(page)

    call = server.calls.of("adain")[-1]
    assert call["style_weights"] is None and len(call["masks"]) == 2
    painted, uploaded = (m[0].numpy() for m in call["masks"])  # (1, H, W) in [0, 1], as load_mask gives
    assert painted.shape == uploaded.shape == (300, 451)  # the photo's own size
    assert painted[:, :100].mean() > 0.9 and painted[:, 200:].max() == 0
    assert uploaded[:, :280].max() == 0 and uploaded[:, 320:].min() == 1


def test_an_error_names_the_file_over_the_result_and_marks_it_stale(open_page, server):
    page = open_page()
    pick_examples(page)
    stylize(page)
    drop(page, "#content-zone", "README.md", b"# stylekit\n\nnot a picture\n", "text/markdown")
    page.wait_for_selector("#error:not([hidden])")
    message = page.inner_text("#error")
    assert "README.md" in message and "not an image" in message and "content" in message, message
    assert page.get_attribute("#result", "data-state") == "stale"
    assert "stale" in page.get_attribute("#result", "class")
    assert page.inner_text("#badge") == "previous result, not updated"
    error, shown = rect(page, "#error"), rect(page, "#result")
    assert error["top"] < shown["bottom"] and error["bottom"] > shown["top"]  # over the picture
    assert error["left"] < shown["right"] and error["right"] > shown["left"]
    assert inside_viewport(error, DESKTOP)

    # the next good picture clears both
    page.click("#content-examples .thumb[data-id=coffee]")
    page.wait_for_function(DONE)
    assert page.is_hidden("#error") and "stale" not in page.get_attribute("#result", "class")


def test_progress_with_an_estimate_and_cancel(open_page, server):
    page = open_page()
    pick_examples(page)
    page.select_option("#method", "style-swap")
    assert page.input_value("#stroke") == "0"  # the method's default: one pass
    stylize(page)  # the first run teaches the page how long this method takes
    slow = server.calls.models["style-swap"]
    slow.go.clear()  # the next one runs until the test lets it end
    try:
        page.click("#stylize")
        page.wait_for_selector("#progress:not([hidden])")
        page.wait_for_function("/of about \\d+(\\.\\d)? s/.test(document.getElementById('progress-text').textContent)")
        assert page.inner_text("#progress-text").startswith("Stylizing with Style swap (slow)")
        page.click("#cancel")
        page.wait_for_function("document.getElementById('status').textContent === 'cancelled'")
    finally:
        slow.go.set()
    assert page.is_hidden("#progress") and page.get_attribute("#result", "data-state") == "done"
    assert "stale" in page.get_attribute("#result", "class")


def test_webcam_is_stylized_live_with_the_fast_network(open_page, server):
    page = open_page()
    page.click("#style-gallery .thumb[data-id=mosaic]")
    page.wait_for_selector("#style-list .style-row")
    page.select_option("#size", "256")
    page.click("#webcam")
    page.wait_for_function("+document.getElementById('fps').dataset.frames >= 3", timeout=90_000)
    first = page.inner_text("#fps")
    page.wait_for_function("+document.getElementById('fps').dataset.frames >= 6", timeout=90_000)
    assert re.fullmatch(r"\d+\.\d fps · 256×192", page.inner_text("#fps")), page.inner_text("#fps")
    assert re.fullmatch(r"\d+\.\d fps · 256×192", first), first
    assert float(page.get_attribute("#fps", "data-fps")) > 0
    assert page.get_attribute("#result", "data-state") == "webcam" and page.is_disabled("#stylize")
    frames = server.calls.of("fast")
    assert len(frames) >= 6 and frames[-1]["content_size"] == (256, 192) and frames[-1]["size"] == 0
    page.click("#webcam")
    page.wait_for_function("document.getElementById('webcam').textContent === 'Webcam'")
    assert page.evaluate("document.getElementById('camera').srcObject") is None


def test_docs_render_with_the_network_blocked(open_page, server):
    page = open_page()
    blocked = []

    def only_this_server(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(server + "/docs")
    page.wait_for_selector(".opblock-summary-path[data-path='/v1/stylize']")
    paths = page.eval_on_selector_all(".opblock-summary-path", "ps => ps.map(p => p.dataset.path)")
    assert {"/v1/stylize", "/healthz", "/v1/styles", "/v1/examples"} <= set(paths)
    assert page.get_by_text("Stylize a content image with one or more styles").count() == 1
    assert blocked == []


# ---------------------------------------------------------------- phone


def test_phone_shows_the_result_after_stylize_with_the_sliders_in_reach(open_page):
    page = open_page(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
    page.tap("#content-examples .thumb[data-id=chelsea]")
    page.wait_for_selector("#content-picked .name")
    page.tap("#style-gallery .thumb[data-id=swirls]")
    page.wait_for_selector("#style-list .style-row")
    page.select_option("#size", "256")
    page.locator("#stylize").scroll_into_view_if_needed()
    assert page.evaluate("window.scrollY") > 200  # the button is well below the top
    page.tap("#stylize")
    page.wait_for_function(DONE)
    assert inside_viewport(rect(page, "#result"), PHONE), rect(page, "#result")
    # every slider can be reached while the result stays in view
    for slider in ("#alpha", "#stroke", "#crop"):
        page.locator(slider).scroll_into_view_if_needed()
        assert inside_viewport(rect(page, slider), PHONE) and inside_viewport(rect(page, "#result"), PHONE)
        on_top = "e => (r => document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === e)" \
                 "(e.getBoundingClientRect())"
        assert page.eval_on_selector(slider, on_top)  # not under the result
    # and after a change made down there, the new picture is in view too
    before = page.get_attribute("#result", "src")
    page.tap("input[name=colours][value=luminance] + span")
    page.wait_for_function(DONE + f" && document.getElementById('result').src !== {json.dumps(before)}")
    assert inside_viewport(rect(page, "#result"), PHONE)


# ---------------------------------------------------------------- without the fast network


def test_without_the_fast_network(open_page, adain_only):
    page = open_page(adain_only)
    assert "--methods adain fast" in page.inner_text("#webcam-note")
    pick_examples(page)
    posts = []
    page.on("request", lambda r: posts.append(r) if r.url.endswith("/v1/stylize") else None)
    stylize(page)
    first_src = page.get_attribute("#result", "src")
    # previews use the chosen method, debounced: four moves, one request
    with page.expect_response(lambda r: r.url.endswith("/v1/stylize")) as answer:
        page.evaluate("""(() => { const a = document.getElementById('alpha');
            for (const v of ['0.9', '0.8', '0.7', '0.5']) { a.value = v; a.dispatchEvent(new Event('input')); }
        })()""")
    assert answer.value.status == 200 and answer.value.headers["x-stylekit-method"] == "adain"
    page.wait_for_function(f"document.getElementById('result').src !== {json.dumps(first_src)}")
    assert len(posts) == 2
    page.click("#webcam")
    page.wait_for_selector("#error:not([hidden])")
    assert "--methods adain fast" in page.inner_text("#error")
