"""Regenerate the README's screenshots of the browser page:
docs/images/web_desktop.png (1440x900) and docs/images/web_phone.png (390x844).

    python tools/web_screenshots.py [--out docs/images] [--fast-weights FILE]

Starts ``stylekit serve``'s app on a free loopback port with the shipped
networks (VGG from $STYLEKIT_WEIGHTS or the cache), drives Debian's Chromium
(``apt-get install -y chromium``) through Playwright as a person would (the
cat photo, the Swirls painting, Stylize, the compare split moved), and saves
each view as a 256-colour PNG so the files stay small.
"""

from __future__ import annotations

import argparse
import io
import socket
import sys
import threading
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
VIEWS = {"web_desktop.png": {"width": 1440, "height": 900}, "web_phone.png": {"width": 390, "height": 844}}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def start(app):
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    deadline = time.monotonic() + 120
    while not server.started:
        if time.monotonic() > deadline:
            sys.exit("the server did not start")
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def shoot(page, url: str, phone: bool) -> bytes:
    page.goto(url + "/")
    page.wait_for_selector("#style-gallery .thumb")
    page.click("#content-examples .thumb[data-id=chelsea]")
    page.wait_for_selector("#content-picked .name")
    page.click("#style-gallery .thumb[data-id=swirls]")
    page.wait_for_selector("#style-list .style-row")
    page.click("#stylize")
    page.wait_for_function("document.getElementById('result').dataset.state === 'done'", timeout=120_000)
    page.eval_on_selector("#compare", "c => { c.value = '42'; c.dispatchEvent(new Event('input')); }")
    if phone:  # the controls scrolled under the result, as while moving a slider
        page.locator("#alpha").scroll_into_view_if_needed()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    return page.screenshot()


def small_png(data: bytes, path: Path) -> None:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img.quantize(colors=256, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="folder for the PNGs")
    p.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium binary")
    p.add_argument("--fast-weights", help="also load the fast network (instant previews, webcam mode)")
    args = p.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from stylekit.server import create_app, load_models

    methods = ["adain", "fast"] if args.fast_weights else ["adain"]
    models = load_models(methods, device="cpu", fast_weights=args.fast_weights)
    server, url = start(create_app(models))
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
            for name, viewport in VIEWS.items():
                phone = viewport["width"] < 800
                context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone, bypass_csp=True)
                small_png(shoot(context.new_page(), url, phone), args.out / name)
                context.close()
                print(f"{args.out / name}: {(args.out / name).stat().st_size // 1024} KB")
            browser.close()
    finally:
        server.should_exit = True
    return 0


if __name__ == "__main__":
    sys.exit(main())
