"""The web service: ``POST /v1/stylize``, a browser page at ``/``, ``/healthz``,
the bundled pictures and style gallery, and the API docs at ``/docs`` (Swagger
UI served from the ``fastapi-offline`` package, so they work without a network).

Everything CPU-bound (decoding, stylizing, encoding) runs in a small thread
pool behind an asyncio semaphore, so requests queue instead of exhausting
memory. Every problem with a request's input answers HTTP 4xx with a JSON body
``{"error": "..."}`` (the library's :class:`~stylekit.errors.StylekitError`
messages, naming uploads by their file names); tracebacks stay in the server
log. A request body over the limit is 413; a field the endpoint does not know,
or a value or image beyond this server's limits, is 422.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import functools
import importlib.util
import inspect
import io
import logging
import mimetypes
import re
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image, ImageOps
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .. import __version__
from .. import styles as builtin_styles
from ..errors import StylekitError, one_line
from ..images import load_mask, load_pil, target_size
from ..pipeline import PRESERVE_COLOR, Stylizer, StylizeOptions
from ..timing import time_call
from .limits import (BodyLimitMiddleware, ClientGone, LimitExceeded, Limits, Slots, UnknownField, error_response,
                     head_timeout_protocol)

log = logging.getLogger("stylekit.server")

STATIC = Path(__file__).resolve().with_name("static")
EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"  # shipped with the package, also the README's


@dataclass(frozen=True)
class Picture:
    """An image the server offers by id: a photo to stylize (role ``"content"``)
    or a painting to take a style from (role ``"style"``)."""

    file: Path
    title: str
    role: str
    painter: str = ""


#: The only files ``GET /v1/examples/{id}`` serves (the README's examples, shipped in the package).
EXAMPLES: dict[str, Picture] = {
    "chelsea": Picture(EXAMPLES_DIR / "chelsea.jpg", "Chelsea the cat", "content", "Stefan van der Walt"),
    "coffee": Picture(EXAMPLES_DIR / "coffee.jpg", "Coffee", "content", "Rachel Michetti"),
    "swirls": Picture(EXAMPLES_DIR / "swirls.jpg", "Swirls", "style", "stylekit (procedural)"),
    "mosaic": Picture(EXAMPLES_DIR / "mosaic.jpg", "Mosaic", "style", "stylekit (procedural)"),
}

#: The style gallery, ``GET /v1/styles``: the built-in paintings (:mod:`stylekit.styles`), then the example styles.
STYLES: dict[str, Picture] = {
    **{s.name: Picture(s.path, s.title, "style", f"{s.painter}, {s.year}") for s in builtin_styles.available()},
    **{key: p for key, p in EXAMPLES.items() if p.role == "style"},
}

#: Longer side of the thumbnails the page shows in its pickers.
THUMBNAIL_SIDE = 192

#: Swagger UI, from the fastapi-offline package: /docs must not need a CDN. (No ReDoc: its
#: bundle fetches a logo from the vendor's CDN.)
DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")

FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "jpg": ("JPEG", "image/jpeg")}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _parse_bool(value: str | bool, name: str) -> bool:
    if isinstance(value, bool):
        return value
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise StylekitError(f"{name} must be true or false, got {value!r}")


def _parse_preserve_color(value: str) -> str:
    v = (value or "none").strip().lower()
    if v in PRESERVE_COLOR:
        return v
    if v in _TRUE:
        return "luminance"
    if v in _FALSE:
        return "none"
    raise StylekitError(f"preserve_color must be one of {', '.join(PRESERVE_COLOR)}, got {value!r}")


def _parse_weights(value: str | None) -> tuple[float, ...] | None:
    if value is None or not value.strip():
        return None
    try:
        weights = tuple(float(w) for w in value.replace(";", ",").split(","))
    except ValueError:
        raise StylekitError(f"style_weights must be comma-separated numbers, got {value!r}") from None
    return weights


#: how the library and the checks below name inputs: "style 2", "mask 1", and "content: ..." first in a message
_REFERENCE = re.compile(r"\b(?:style|mask) \d+\b|^content(?=:)")


class _Job:
    """One request's decoded parameters and raw files, run in a worker thread.

    ``files`` are ``(role, label, data)``: the role as the library names the
    input ("content", "style 2", "mask 1"), the label as the user knows it
    (the file name, with its role). Messages are written with roles, like the
    library's, and each role is then replaced by its label."""

    def __init__(self, files: list[tuple[str, str, bytes]], n_styles: int, n_masks: int, options: StylizeOptions,
                 masks_given: bool, fmt: str, limits: Limits):
        self.files, self.n_styles, self.n_masks = files, n_styles, n_masks
        self.options, self.masks_given, self.fmt, self.limits = options, masks_given, fmt, limits
        self.labels = {role: label for role, label, _ in files}

    def _check_header(self, path: Path, role: str) -> None:
        """Refuse an image whose declared size passes the limit, before decoding it."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    w, h = img.size
        except Image.DecompressionBombError:
            raise LimitExceeded(f"{role}: image declares a size beyond this server's limit of "
                                f"{self.limits.max_pixels:,} pixels") from None
        except Exception:
            return  # not readable as an image: load_pil says why, in the library's words
        if w * h > self.limits.max_pixels:
            raise LimitExceeded(f"{role}: image is {w}x{h} pixels, more than this server's limit of "
                                f"{self.limits.max_pixels:,}")

    def _check_output(self, size: tuple[int, int], longer_side: int | None, what: str) -> None:
        w, h = size
        if self.options.crop:
            w = h = min(w, h)
        ow, oh = target_size((w, h), longer_side)
        if ow * oh > self.limits.max_output_pixels:
            raise LimitExceeded(
                f"{what} would be {ow}x{oh} pixels, more than this server's limit of "
                f"{self.limits.max_output_pixels:,}; ask for a smaller size"
            )

    def __call__(self, model: Stylizer, lock: threading.Lock) -> tuple[bytes, float, tuple[int, int]]:
        with tempfile.TemporaryDirectory(prefix="stylekit-serve-") as tmp:
            paths = {role: Path(tmp) / f"upload-{i}" for i, (role, _, _) in enumerate(self.files)}
            try:
                return self._run(model, lock, paths)
            except StylekitError as exc:
                raise type(exc)(self._in_users_words(str(exc), paths)) from None

    def _in_users_words(self, message: str, paths: dict[str, Path]) -> str:
        """The library's message with each input named by its file (never the server's temp folder)."""
        message = _REFERENCE.sub(lambda m: self.labels.get(m.group(0), m.group(0)), message)
        for role, path in paths.items():
            message = message.replace(str(path), self.labels[role])
        return message

    def _run(self, model, lock, paths: dict[str, Path]):
        for role, _, data in self.files:
            paths[role].write_bytes(data)
            self._check_header(paths[role], role)
        content = load_pil(paths["content"])
        styles = [load_pil(paths[f"style {i}"]) for i in range(1, self.n_styles + 1)]
        masks = [load_mask(paths[f"mask {i}"]) for i in range(1, self.n_masks + 1)] if self.masks_given else None
        self._check_output(content.size, self.options.size, "the output")
        for i, s in enumerate(styles, 1):
            self._check_output(s.size, self.options.style_size, f"style {i} after resizing")
        o = self.options
        with lock:  # one model is not re-entrant (its feature cache is a plain dict)
            seconds, result = time_call(lambda: model.stylize(
                content, styles, alpha=o.alpha, style_weights=o.style_weights, masks=masks,
                preserve_color=o.preserve_color, size=o.size, style_size=o.style_size, crop=o.crop,
                stroke_scale=o.stroke_scale,
            ))
        buf = io.BytesIO()
        pil_format = FORMATS[self.fmt][0]
        result.save(buf, format=pil_format, **({"quality": 92} if pil_format == "JPEG" else {}))
        return buf.getvalue(), seconds, result.size


def _file_label(upload: UploadFile, role: str) -> str:
    """How a user knows an upload: its file name (no folders, printable, not too long) and its role."""
    name = re.split(r"[\\/]", upload.filename or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    if len(name) > 80:
        name = name[:77] + "..."
    return f"{name} ({role})" if name else role


def _check_fields(form, query, known: tuple[str, ...], repeatable: tuple[str, ...]) -> None:
    """Refuse what the endpoint would silently ignore: unknown fields, options in the
    query string, and a single-valued field given more than once."""
    for name in query.keys():
        raise UnknownField(f"query parameter {name!r} is not read: send every option as a multipart form field")
    for name in dict.fromkeys(form.keys()):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnknownField(f"unknown field {name!r}{hint}; the fields are: {', '.join(known)}")
        count = len(form.getlist(name))
        if count > 1 and name not in repeatable:
            raise UnknownField(f"field {name!r} was given {count} times; give it once")


@functools.lru_cache(maxsize=128)
def _thumbnail(path: Path) -> bytes:
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        img.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _add_picture_routes(app: FastAPI, prefix: str, pictures: Mapping[str, Picture], noun: str, summary: str) -> None:
    """``GET prefix`` (the list), ``prefix/{id}`` (the file) and ``prefix/{id}/thumbnail``;
    only the ids of ``pictures`` are served."""
    cache = {"Cache-Control": "public, max-age=86400"}

    def find(picture_id: str) -> Picture:
        entry = pictures.get(picture_id)
        if entry is None:
            raise HTTPException(404, f"no {noun} {picture_id!r}; available: {', '.join(pictures)}")
        return entry

    @app.get(prefix, summary=summary)
    async def listing():
        return [{"id": key, "title": p.title, "painter": p.painter, "role": p.role, "url": f"{prefix}/{key}",
                 "thumbnail": f"{prefix}/{key}/thumbnail"} for key, p in pictures.items()]

    @app.get(prefix + "/{picture_id}", summary=f"One {noun} (by id, from a fixed list)", response_class=FileResponse)
    async def image(picture_id: str):
        entry = find(picture_id)
        media_type = mimetypes.guess_type(entry.file.name)[0] or "application/octet-stream"
        return FileResponse(entry.file, media_type=media_type, headers=cache)

    @app.get(prefix + "/{picture_id}/thumbnail", summary=f"A small JPEG of one {noun}", response_class=Response)
    async def thumbnail(picture_id: str):
        data = await run_in_threadpool(_thumbnail, find(picture_id).file)
        return Response(data, media_type="image/jpeg", headers=cache)


def _docs_assets() -> Path | None:
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "static"


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path")]
        where = ".".join(loc)
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def create_app(
    models: Stylizer | Mapping[str, Stylizer] | None = None,
    *,
    model_loader: Callable[[str], Stylizer] | None = None,
    methods: Iterable[str] = ("adain",),
    limits: Limits | None = None,
) -> FastAPI:
    """The ASGI application.

    Give ready ``models`` (a stylizer, or ``{method: stylizer}``), or a
    ``model_loader(method)`` that the app calls once per name in ``methods``
    at start-up (ASGI lifespan). Tests inject a stylizer built from their
    fixtures; :func:`serve` loads the real ones.
    """
    if (models is None) == (model_loader is None):
        raise ValueError("give either models or model_loader")
    limits = limits or Limits()
    loaded: dict[str, Stylizer] = {}
    if isinstance(models, Stylizer):
        loaded[models.method] = models
    elif models is not None:
        loaded.update(models)
        if not loaded:
            raise ValueError("models is empty")
    locks: dict[str, threading.Lock] = {}
    slots = Slots(limits)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if model_loader is not None and not loaded:
            for name in methods:
                loaded[name] = await asyncio.get_running_loop().run_in_executor(slots.executor, model_loader, name)
                log.info("loaded %s on %s", name, loaded[name].device)
        yield
        slots.shutdown()

    timings: dict[str, float] = {}  # method -> seconds per output megapixel (a running average)

    app = FastAPI(
        title="stylekit",
        version=__version__,
        description="Arbitrary neural style transfer over HTTP. `POST /v1/stylize` with a content and one or "
                    "more style images; the browser page is at `/`. Unknown form fields, and values beyond this "
                    "server's limits (see `/healthz`), are refused with 422.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.models, app.state.limits, app.state.slots, app.state.timings = loaded, limits, slots, timings
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes, timeout_s=limits.body_timeout_s)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        return error_response(422, _validation_message(exc))

    @app.exception_handler(Exception)
    async def internal_error(request, exc: Exception):
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal server error (details are in the server log)")

    def model_for(method: str) -> tuple[Stylizer, threading.Lock]:
        if method not in loaded:
            if not loaded:
                raise HTTPException(503, "models are still loading; try again soon")
            raise HTTPException(400, f"unknown method {method!r}; this server offers: {', '.join(loaded)}")
        return loaded[method], locks.setdefault(method, threading.Lock())

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={
            "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:",
            "Cache-Control": "no-cache",
        })

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title="stylekit API", swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css", swagger_favicon_url="/docs/assets/favicon.png",
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str):
        folder = _docs_assets()
        if name not in DOCS_ASSETS:
            raise HTTPException(404, f"no docs asset {name!r}")
        if folder is None or not (folder / name).is_file():
            raise HTTPException(503, "the API docs' files come with the fastapi-offline package: "
                                     "pip install 'stylekit[serve]'")
        return FileResponse(folder / name, headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/healthz", summary="Liveness, device, methods and limits")
    async def healthz():
        devices = sorted({str(m.device) for m in loaded.values()})
        return {
            "status": "ok" if loaded else "loading",
            "version": __version__,
            "device": devices[0] if len(devices) == 1 else devices,
            "methods": list(loaded),
            "stroke_scale_defaults": {name: m.default_stroke_scale for name, m in loaded.items()},
            "seconds_per_megapixel": {name: round(v, 4) for name, v in timings.items()},
            "limits": asdict(limits),
            "queue": slots.waiting,
        }

    _add_picture_routes(app, "/v1/examples", EXAMPLES, "example picture",
                        "The bundled example pictures (photos as content, paintings as style)")
    _add_picture_routes(app, "/v1/styles", STYLES, "gallery painting",
                        "The style gallery: paintings with title and painter")

    @app.post(
        "/v1/stylize",
        summary="Stylize a content image with one or more styles",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}, "image/jpeg": {}},
                  "description": "the stylized image; X-Stylekit-Seconds is the time the stylization took"},
            400: {"description": "bad input: `{\"error\": \"...\"}`, naming the file or field"},
            413: {"description": "request body larger than this server's limit"},
            422: {"description": "an unknown field, or a value or image beyond this server's limits "
                                 "(the message says the limit)"},
            503: {"description": "busy or timed out"},
        },
    )
    async def stylize(
        request: Request,
        content: UploadFile | None = File(None, description="the content image"),
        style: list[UploadFile] | None = File(None, description="one or more style images"),
        mask: list[UploadFile] | None = File(None, description="optional: one mask per style, the content's size, "
                                                                "white = that style's region"),
        method: str = Form("adain", description="stylization method (see /healthz)"),
        alpha: float = Form(1.0, description="content-style trade-off in [0, 1]"),
        style_weights: str | None = Form(None, description="comma-separated blend weights, one per style"),
        preserve_color: str = Form("none", description="none (the painting's colours), luminance (the photo's "
                                                       "colours exactly) or histogram (the painting recoloured "
                                                       "with the photo's palette); true = luminance"),
        size: int | None = Form(None, description="content longer side in pixels, up or down (0 = original; "
                                                   "empty: at most 512, a smaller picture keeps its size)"),
        style_size: int | None = Form(None, description="style longer side in pixels, as size"),
        crop: str = Form("false", description="centre square crop first"),
        stroke_scale: float | None = Form(None, description="size of the painting's patterns relative to the "
                                                            "picture, 0.25 to 4 (coarse to fine), or 0 for one "
                                                            "pass; empty = the method's default (see /healthz)"),
        format: str = Form("png", description="png or jpeg"),
    ):
        received = time.perf_counter()
        try:
            _check_fields(await request.form(), request.query_params, FIELDS, ("style", "mask"))
            if content is None:
                raise StylekitError("a content image is needed (multipart field 'content')")
            styles = list(style or [])
            masks = list(mask or [])
            if not styles:
                raise StylekitError("at least one style image is needed (multipart field 'style')")
            if len(styles) > limits.max_styles:
                raise LimitExceeded(f"{len(styles)} styles; this server takes at most {limits.max_styles}")
            fmt = (format or "png").strip().lower()
            if fmt not in FORMATS:
                raise StylekitError(f"format must be png or jpeg, got {format!r}")
            for name, value in (("size", size), ("style_size", style_size)):
                if value is not None and value > limits.max_side:
                    raise LimitExceeded(f"{name} {value} is more than this server's limit of {limits.max_side}")
            options = StylizeOptions(
                alpha=alpha, style_weights=_parse_weights(style_weights),
                preserve_color=_parse_preserve_color(preserve_color),
                size=size, style_size=style_size, crop=_parse_bool(crop, "crop"), stroke_scale=stroke_scale,
            )
            if masks and options.style_weights is not None:
                raise StylekitError("give either masks (one region per style) or style weights (a blend), not both")
            options.normalised_weights(len(styles))
        except (LimitExceeded, UnknownField) as exc:
            raise HTTPException(422, one_line(exc)) from None
        except StylekitError as exc:
            raise HTTPException(400, one_line(exc)) from None
        model, lock = model_for(method)

        files = [("content", _file_label(content, "content"), await content.read())]
        files += [(f"style {i}", _file_label(f, f"style {i}"), await f.read()) for i, f in enumerate(styles, 1)]
        files += [(f"mask {i}", _file_label(f, f"mask {i}"), await f.read()) for i, f in enumerate(masks, 1)]
        job = _Job(files, len(styles), len(masks), options, bool(masks), fmt, limits)
        try:
            (data, seconds, (w, h)), waited = await slots.run(job, model, lock, gone=request.is_disconnected)
        except ClientGone:
            log.info("dropped a queued request whose client left")
            return Response(status_code=499)
        except LimitExceeded as exc:
            raise HTTPException(422, one_line(exc)) from None
        except StylekitError as exc:
            raise HTTPException(400, one_line(exc)) from None
        except MemoryError:
            raise HTTPException(503, "out of memory for this request; try a smaller size") from None
        per_mp = seconds / max(w * h / 1e6, 1e-3)
        timings[method] = per_mp if method not in timings else 0.7 * timings[method] + 0.3 * per_mp
        total = time.perf_counter() - received
        return Response(data, media_type=FORMATS[fmt][1], headers={
            "X-Stylekit-Seconds": f"{seconds:.3f}",
            "X-Stylekit-Total-Seconds": f"{total:.3f}",
            "X-Stylekit-Queue-Seconds": f"{waited:.3f}",
            "X-Stylekit-Size": f"{w}x{h}",
            "X-Stylekit-Method": method,
            "Cache-Control": "no-store",
        })

    FIELDS = tuple(name for name in inspect.signature(stylize).parameters if name != "request")
    return app


def load_models(methods: Iterable[str], *, device: str = "auto", weights=None, encoder_weights=None,
                fast_weights=None, transform_weights=None) -> dict:
    """``stylekit.load`` once per method; ``weights`` is adain's decoder,
    ``transform_weights`` its covariance transform
    (:meth:`stylekit.adain.model.AdaINStylizer.load`), and ``fast_weights`` the
    fast network's (other methods use their shipped weights, gatys none)."""
    from .. import api

    models = {}
    for name in methods:
        if name not in api.METHODS:
            raise StylekitError(f"unknown method {name!r}; available: {', '.join(api.METHODS)}")
        options = {"progress": False} if name == "gatys" else {}
        if name == "adain" and transform_weights is not None:
            options["transform_weights"] = transform_weights
        own = {"adain": weights, "fast": fast_weights}.get(name)
        models[name] = api.load(name, device=device, weights=own, encoder_weights=encoder_weights, **options)
    return models


def serve(host: str = "127.0.0.1", port: int = 8000, *, methods: Iterable[str] = ("adain",), device: str = "auto",
          weights=None, encoder_weights=None, fast_weights=None, transform_weights=None, limits: Limits | None = None,
          log_level: str = "info") -> None:
    """Load the models, then serve until interrupted (binds loopback by default)."""
    import uvicorn

    if not 0 <= port <= 65535:
        raise StylekitError(f"port must be in 0..65535, got {port}")
    models = load_models(methods, device=device, weights=weights, encoder_weights=encoder_weights,
                         fast_weights=fast_weights, transform_weights=transform_weights)
    app = create_app(models, limits=limits)
    limits = limits or Limits()
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=5,
                limit_concurrency=limits.max_connections, http=head_timeout_protocol(limits.head_timeout_s))


__all__ = ["EXAMPLES", "STYLES", "Limits", "Picture", "create_app", "load_models", "serve"]
