"""The browser page, driven in headless Chromium as a person would use it, at
desktop (1440x900) and phone (390x844) sizes: drop, paste, the gallery, the
sliders with fast previews, the compare split, the download, regions painted
with the brush or uploaded, errors, progress and cancel, the webcam (Chromium's
fake camera) with and without its Steady toggle (the camera filming a generated
still picture or a moving square) and the API docs with the network blocked.

Needs Debian's ``chromium`` and the Playwright Python package (never
``playwright install``); skips with the reason when either is missing. One
browser serves the module, but for the ones that film a file. The server runs the real VGG encoder with the
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
                self.log.append({"method": name, "content_size": content.size, "styles": len(styles),
                                 "content": content, **kwargs})
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
def chromium():
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    with sync_api.sync_playwright() as p:
        yield p.chromium


def launch(chromium, *args):
    return chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + FAKE_CAMERA + list(args), headless=True)


@pytest.fixture(scope="module")
def browser(chromium):
    b = launch(chromium)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def filmed_by(chromium):
    """``filmed_by(video.y4m)``: a browser whose fake camera plays that file (in a loop). Ask for it before
    ``open_page``, so that its browsers close after the pages."""
    browsers = []

    def launch_(video: Path):
        browsers.append(launch(chromium, f"--use-file-for-fake-video-capture={video}"))
        return browsers[-1]

    yield launch_
    for b in browsers:
        b.close()


@pytest.fixture
def open_page(browser, server):
    """``open_page(url=server, viewport=DESKTOP, in_browser=the module's, **context options)``: a fresh page
    that reports script errors."""
    contexts, problems = [], []

    def open_(url=None, viewport=DESKTOP, in_browser=None, **options):
        url = url or server
        # bypass_csp: Playwright evaluates its wait conditions as strings, which the page's CSP forbids
        context = (in_browser or browser).new_context(viewport=viewport, bypass_csp=True, accept_downloads=True,
                                                      **options)
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


def write_y4m(path: Path, frames, fps: int = 30) -> Path:
    """RGB frames ``(H, W, 3)`` uint8 as raw YUV 4:2:0, the .y4m that Chromium's fake camera plays."""
    h, w, _ = frames[0].shape
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
            y = 0.299 * r + 0.587 * g + 0.114 * b
            u = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
            v = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
            f.write(b"FRAME\n")
            half = [plane.reshape(h // 2, 2, w // 2, 2).mean((1, 3)) for plane in (u, v)]
            for plane in (y, *half):
                f.write(np.clip(np.round(plane), 0, 255).astype(np.uint8).tobytes())
    return path


def still_with_noise(n=30, size=(320, 240), sigma=4.0, seed=3):
    """One picture, each frame with fresh sensor-like noise: nothing in the scene changes."""
    rng = np.random.default_rng(seed)
    picture = np.asarray(seeded_image(size, seed), np.float64)
    return [np.clip(picture + rng.normal(0, sigma, picture.shape), 0, 255).astype(np.uint8) for _ in range(n)]


SQUARE_ROWS = (96, 144)  # of 240: the band the moving square stays in


def moving_square(n=60, size=(320, 240), step=4, seed=4):
    """A black-and-white checked square moving right by ``step`` pixels a frame over a still picture."""
    rng = np.random.default_rng(seed)
    picture = np.asarray(seeded_image(size, seed), np.float64)
    top, bottom = SQUARE_ROWS
    side = bottom - top
    yy, xx = np.mgrid[0:side, 0:side]
    checks = np.where((yy // 8 + xx // 8) % 2 == 0, 250.0, 5.0)[..., None]
    frames = []
    for i in range(n):
        frame = picture + rng.normal(0, 2.0, picture.shape)
        left = 16 + step * i
        frame[top:bottom, left:left + side] = checks
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


# Records each frame the page shows: the #fps fields and the mean change (grey levels) from the
# frame shown before, inside and outside a band of rows (fractions of the height).
RECORD_SHOWN_FRAMES = """(band) => {
    const fps = document.getElementById('fps'), img = document.getElementById('result');
    const c = document.createElement('canvas'), ctx = c.getContext('2d', { willReadFrequently: true });
    let previous = null;
    window.shownFrames = [];
    new MutationObserver(() => {
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        ctx.drawImage(img, 0, 0);
        const px = ctx.getImageData(0, 0, c.width, c.height).data;
        const record = { frame: +fps.dataset.frames, steady: fps.dataset.steady, kept: +fps.dataset.kept,
                         size: [c.width, c.height], inside: null, outside: null };
        if (previous && previous.length === px.length) {
            const sum = [0, 0], count = [0, 0];
            for (let p = 0; p < c.width * c.height; p++) {
                const y = Math.floor(p / c.width) / c.height, at = y >= band[0] && y < band[1] ? 0 : 1;
                for (let ch = 0; ch < 3; ch++) sum[at] += Math.abs(px[4 * p + ch] - previous[4 * p + ch]);
                count[at] += 3;
            }
            record.inside = count[0] ? sum[0] / count[0] : null;
            record.outside = sum[1] / count[1];
        }
        previous = px;
        window.shownFrames.push(record);
    }).observe(fps, { attributes: true, attributeFilter: ['data-frames'] });
}"""


def shown_frames(page, at_least: int) -> list[dict]:
    page.wait_for_function(f"window.shownFrames.length >= {at_least}", timeout=120_000)
    return page.evaluate("window.shownFrames")


def sent_changes(server) -> list[float]:
    """The mean change (grey levels) of each frame the page sent from the one it sent before."""
    sent = [np.asarray(c["content"].convert("RGB"), np.float64) for c in server.calls.of("fast")]
    return [float(np.abs(b - a).mean()) for a, b in zip(sent, sent[1:])]


def pairs(records, steady: str) -> list[dict]:
    """The frames shown right after a frame of the same mode (the change between them is the mode's own)."""
    return [b for a, b in zip(records, records[1:]) if a["steady"] == b["steady"] == steady]


def start_webcam(page):
    page.click("#style-gallery .thumb[data-id=mosaic]")
    page.wait_for_selector("#style-list .style-row")
    page.select_option("#size", "256")
    page.click("#webcam")


def test_webcam_steady_holds_a_still_background_and_lets_a_new_look_through(filmed_by, open_page, server, tmp_path):
    page = open_page(in_browser=filmed_by(write_y4m(tmp_path / "still.y4m", still_with_noise())))
    steady = page.get_by_label("Steady background (less flicker)")
    assert steady.is_checked() and steady.is_visible()  # on unless turned off
    page.evaluate(RECORD_SHOWN_FRAMES, [0, 0])
    start_webcam(page)
    on = shown_frames(page, 6)
    assert on[0]["size"] == [256, 192] and on[0]["kept"] == 0  # the first frame has nothing to keep
    held = pairs(on, "on")
    assert len(held) >= 4
    assert min(r["kept"] for r in held) > 0.95, held  # the noise is not taken for a change
    change_on = max(r["outside"] for r in held)
    sent_on = sent_changes(server)

    steady.uncheck()
    count = len(on)
    records = shown_frames(page, count + 6)
    free = pairs(records[count:], "off")
    assert len(free) >= 4 and all(r["kept"] == 0 for r in free)
    sent_off = sent_changes(server)[-5:]
    change_off = float(np.mean([r["outside"] for r in free]))
    print(f"still picture: kept {min(r['kept'] for r in held):.4f}; mean change of the shown frames "
          f"{change_on:.3f} grey levels with Steady, {change_off:.3f} without; of the sent frames "
          f"{max(sent_on):.3f} with, {np.median(sent_off):.3f} without")
    # what was sent: the first frame again, its noise not taken for a change; without, each frame as filmed
    # (the median: two grabs now and then fall on the same frame of the file)
    assert max(sent_on) < 0.1 < 1 < np.median(sent_off), (sent_on, sent_off)
    assert change_on < 0.05 and change_off > 0.3 and change_on < 0.1 * change_off, (change_on, change_off)

    # back on, then a new look: the still background must take it instead of holding the old one
    steady.check()
    count = len(records)
    records = shown_frames(page, count + 3)
    assert pairs(records[count:], "on")[-1]["kept"] > 0.95
    count = len(records)
    page.evaluate("""(a => { a.value = '0.2'; a.dispatchEvent(new Event('input'));
                             a.dispatchEvent(new Event('change')); })(document.getElementById('alpha'))""")
    records = shown_frames(page, count + 4)
    after = records[count:]
    assert any(r["kept"] == 0 for r in after), after  # started over for the new look
    assert max(r["outside"] for r in after) > 5, after  # and it shows
    assert after[-1]["kept"] > 0.95 and after[-1]["outside"] < 0.05, after  # then holds still again

    # a restarted webcam starts over too
    page.click("#webcam")
    page.wait_for_function("document.getElementById('webcam').textContent === 'Webcam'")
    count = len(page.evaluate("window.shownFrames"))
    page.click("#webcam")
    assert shown_frames(page, count + 1)[count]["kept"] == 0


def test_webcam_steady_lets_a_moving_square_through(filmed_by, open_page, tmp_path):
    page = open_page(in_browser=filmed_by(write_y4m(tmp_path / "square.y4m", moving_square())))
    margin = 24 / 192  # the stabiliser's neighbourhood, the scaling and the JPEG blocks around the square
    band = [SQUARE_ROWS[0] / 240 - margin, SQUARE_ROWS[1] / 240 + margin]
    page.evaluate(RECORD_SHOWN_FRAMES, band)
    start_webcam(page)
    held = pairs(shown_frames(page, 8), "on")
    listed = {key: ", ".join(f"{r[key]:.3f}" for r in held) for key in ("kept", "inside", "outside")}
    print(f"moving square: kept {listed['kept']}; change of the shown frames inside the square's band "
          f"{listed['inside']}, outside {listed['outside']}")
    # the background stays as it was shown, all of it
    assert max(r["outside"] for r in held) < 0.05, held
    # where the square went, the new stylized frame is shown: not kept
    moved = [r for r in held if r["kept"] < 0.99]
    assert len(moved) >= len(held) // 2 and all(r["inside"] > 2 for r in moved), held
    assert all(r["kept"] > 0.6 for r in moved), held  # and only there


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
    # every slider, and the webcam's Steady toggle, can be reached while the result stays in view
    for slider in ("#alpha", "#stroke", "#crop", "#steady"):
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
