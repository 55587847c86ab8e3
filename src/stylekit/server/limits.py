"""What one request may ask of the server, and how that is enforced: the
:class:`Limits`, the body-size middleware, the slots that queue the work,
and uvicorn's protocol with a timeout on request heads."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Callable

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .. import images as _images
from ..errors import StylekitError
from ..images import MIN_SIDE


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server (the defaults suit a small CPU box)."""

    #: request body, refused from Content-Length and again while it streams in
    max_body_bytes: int = 32 * 2**20
    #: pixels of one uploaded image, read from its header before decoding
    #: (never more than :data:`stylekit.images.MAX_PIXELS`)
    max_pixels: int = 16_000_000
    #: the output, and each style after resizing, at most this many pixels
    max_output_pixels: int = 2048 * 2048
    #: longest side a client may ask for with ``size`` / ``style_size``
    max_side: int = 2048
    #: style images (and masks) in one request
    max_styles: int = 4
    #: stylizations running at once; the rest wait in a queue
    max_concurrency: int = 1
    #: requests waiting for a slot before new ones get 503
    max_queue: int = 16
    #: from the end of the upload to the response, queueing included (503 past it)
    request_timeout_s: float = 120.0
    #: the longest pause while reading the request body (408 past it)
    body_timeout_s: float = 30.0
    #: a connection must send a complete request head within this long (of
    #: opening, or of its previous response) or it is closed
    head_timeout_s: float = 10.0
    #: open connections, idle ones included, before new ones get 503; work is
    #: bounded by max_concurrency and max_queue, so this only has to outnumber
    #: the sockets an idle-connection attack can hold for head_timeout_s
    max_connections: int = 1024

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise StylekitError(f"limit {name} must be a positive number, got {value!r}")
        if self.max_pixels > _images.MAX_PIXELS:
            raise StylekitError(f"max_pixels cannot exceed the decoder's limit of {_images.MAX_PIXELS:,}")
        if self.max_side < MIN_SIDE:
            raise StylekitError(f"max_side must be at least {MIN_SIDE}")


class LimitExceeded(StylekitError):
    """A value or image within the library's limits but beyond this server's
    (HTTP 422; 413 is kept for a request body over the limit)."""


class UnknownField(StylekitError):
    """A form field or query parameter the endpoint does not read (HTTP 422):
    a typo must not pass for the default."""


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class BodyLimitMiddleware:
    """Refuse oversized bodies early: from Content-Length before reading
    anything, and while streaming (chunked uploads, lying clients) as soon as
    the count passes the limit. A stalled upload times out with 408."""

    def __init__(self, app, max_bytes: int, timeout_s: float):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    def _too_large(self) -> str:
        return f"request body is larger than this server's limit of {self.max_bytes:,} bytes"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                return await error_response(400, "invalid Content-Length header")(scope, receive, send)
            if length > self.max_bytes:
                return await error_response(413, self._too_large(), {"Connection": "close"})(scope, receive, send)

        received = 0
        body_done = False
        started = False

        async def limited_receive():
            nonlocal received, body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except asyncio.TimeoutError:
                raise HTTPException(408, f"no request data for {self.timeout_s:g} s; upload timed out") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413, self._too_large())
                body_done = not message.get("more_body", False)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:  # raised where no handler of the app saw it
            if started:
                raise
            await error_response(exc.status_code, str(exc.detail), {"Connection": "close"})(scope, receive, send)


class Slots:
    """At most ``max_concurrency`` jobs in the thread pool, at most
    ``max_queue`` waiting; a job past its deadline answers 503 (the thread
    finishes its work and only then frees its slot, so memory stays bounded)."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self._executor: ThreadPoolExecutor | None = None
        self.waiting = 0
        self._sem: asyncio.Semaphore | None = None
        self._loop = None

    @property
    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:  # made on first use, so an app can be started again after a shutdown
            self._executor = ThreadPoolExecutor(max_workers=self.limits.max_concurrency, thread_name_prefix="stylekit")
        return self._executor

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._loop is not loop:  # a new event loop (tests): fresh primitives
            self._sem, self._loop = asyncio.Semaphore(self.limits.max_concurrency), loop
        return self._sem

    async def run(self, fn: Callable, *args, gone: Callable | None = None):
        """``fn(*args)`` in the pool; ``gone()`` (async) is asked once a slot is
        free, and a job whose client has left is dropped unrun (a page that
        replaces a preview aborts the old request)."""
        sem = self._semaphore()
        timeout = self.limits.request_timeout_s
        start = time.perf_counter()
        if sem.locked() and self.waiting >= self.limits.max_queue:
            raise HTTPException(503, f"server busy: {self.waiting} requests are already waiting; try again soon")
        self.waiting += 1
        try:
            await asyncio.wait_for(sem.acquire(), timeout)
        except asyncio.TimeoutError:
            raise HTTPException(503, f"server busy: no free slot within {timeout:g} s; try again soon") from None
        finally:
            self.waiting -= 1
        waited = time.perf_counter() - start
        try:
            if gone is not None and await gone():
                raise ClientGone()
            future = asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)
        except BaseException:
            sem.release()
            raise

        def done(f):
            sem.release()
            if not f.cancelled():
                f.exception()  # retrieved here, so an abandoned job's error is not logged as "never retrieved"

        future.add_done_callback(done)
        try:
            result = await asyncio.wait_for(asyncio.shield(future), max(timeout - waited, 0.001))
        except asyncio.TimeoutError:
            raise HTTPException(503, f"the request took longer than this server's limit of {timeout:g} s") from None
        return result, waited


class ClientGone(Exception):
    """The client closed the connection before its job started."""


def head_timeout_protocol(seconds: float):
    """uvicorn's HTTP/1.1 protocol, closing connections that send no complete
    request head within ``seconds``. uvicorn has no such timeout: without it,
    sockets that connect and say nothing hold their connection slots forever."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadTimeoutProtocol(H11Protocol):
        _head_timer = None

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(seconds, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self.cycle is None or self.cycle.response_complete:  # no request under way
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # a request head arrived: the body and request timeouts take over

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()  # keep-alive: the next head must come in time too

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeadTimeoutProtocol
