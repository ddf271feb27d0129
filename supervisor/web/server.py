"""The supervisor's HTTP server (aiohttp, in the supervisor's event loop): page, API, metrics.

Routes, all GET (read-only: nothing here changes the cluster):

    /              the status page (static/index.html; its JS and CSS from /static/)
    /metrics       Prometheus text format (metrics.py), from the latest view
    /api/status    the latest view as JSON, with the chart history
    /events        server-sent events: the whole status first, then each new
                   view (at most one a second, at once when a node changes
                   state) with its chart point; a comment every 15 s keeps
                   proxies from closing an idle stream

Off loopback (`http.host` not a loopback address) every request must carry
the topology's secret: `Authorization: Bearer <secret>` (Prometheus'
`authorization` / `bearer_token`), or basic auth with the secret as the
password (a browser asks for it once: the 401 names the Basic scheme). The
secret then travels in clear text: put a TLS proxy in front until the
cross-machine work brings TLS (docs/OBSERVABILITY.md).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
from pathlib import Path

from aiohttp import web

from ..topology import HttpSettings
from .metrics import CONTENT_TYPE, ClusterCollector, exposition
from .sampler import Sampler

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"status.js": "text/javascript", "status.css": "text/css"}
KEEPALIVE_S = 15.0
SHUTDOWN_S = 2.0
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
    "Referrer-Policy": "no-referrer",
}


def authorized(header: str | None, secret: str) -> bool:
    """`Bearer <secret>`, or `Basic` with the secret as the password (any user name).

    Bytes that are not UTF-8 in the header (aiohttp hands them over as surrogates)
    are refused like a wrong secret."""
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        given = credentials.encode("utf-8", "replace")
    elif scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):  # not base64, not ASCII, not UTF-8
            return False
        given = decoded.partition(":")[2].encode()
    else:
        return False
    return hmac.compare_digest(given, secret.encode())


def address_of(settings: HttpSettings) -> str:
    """The page's URL for these settings (IPv6 hosts in brackets)."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{settings.port}/"


class WebServer:
    """The HTTP server of one supervisor run; `start` binds (OSError if it cannot), `stop` ends it."""

    def __init__(self, settings: HttpSettings, sampler: Sampler, secret: str | None,
                 logger: logging.Logger):
        self.settings = settings
        self.sampler = sampler
        self.secret = secret if settings.needs_secret else None
        self.logger = logger
        self.collector = ClusterCollector(lambda: sampler.latest)
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return address_of(self.settings)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self.page)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/api/status", self.status)
        app.router.add_get("/events", self.events)
        return app

    async def start(self) -> None:
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.settings.host, self.settings.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- the handlers

    @web.middleware
    async def _guard(self, request: web.Request, handler) -> web.StreamResponse:
        if self.secret is not None and not authorized(request.headers.get("Authorization"),
                                                      self.secret):
            return web.Response(status=401, text="the topology's secret is needed "
                                "(Authorization: Bearer <secret>, or basic auth)\n",
                                headers={"WWW-Authenticate": 'Basic realm="tahiry", '
                                                             'charset="UTF-8"'})
        response = await handler(request)
        if not response.prepared:  # an event stream sent its own headers already
            response.headers.update(SECURITY_HEADERS)
        return response

    async def page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html",
                                headers={"Content-Type": "text/html; charset=utf-8",
                                         "Cache-Control": "no-cache"})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:  # a fixed list: no path from the URL reaches the disk
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC / name, headers={
            "Content-Type": f"{STATIC_FILES[name]}; charset=utf-8", "Cache-Control": "no-cache"})

    async def metrics(self, request: web.Request) -> web.Response:
        body = exposition(self.collector)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE,
                                                "Cache-Control": "no-store"})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self._whole(), headers={"Cache-Control": "no-store"})

    def _whole(self) -> dict:
        view = self.sampler.latest
        return {**(view.as_dict() if view is not None else {"nodes": [], "taken_at": None}),
                "history": self.sampler.history.as_list()}

    async def events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store",
                                               **SECURITY_HEADERS})
        await response.prepare(request)
        sampler = self.sampler
        seen = sampler.generation
        try:
            await _send(response, "status", self._whole())
            while not self._closing.is_set() and sampler.running:
                if not await self._next_view(seen):
                    await response.write(b": still here\n\n")
                    continue
                seen = sampler.generation
                view = sampler.latest
                if view is None:
                    continue
                points = sampler.history.as_list()
                await _send(response, "view", {**view.as_dict(),
                                               "point": points[-1] if points else None})
        except ConnectionError:
            pass  # the browser went away
        return response

    async def _next_view(self, seen: int) -> bool:
        """Wait for a view newer than `seen`, the server's stop, or the keep-alive's time."""
        waiting = asyncio.ensure_future(self.sampler.changed(seen, KEEPALIVE_S))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({waiting, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, closing):
                task.cancel()
        return waiting.done() and not waiting.cancelled() and waiting.result()


async def _send(response: web.StreamResponse, event: str, data: dict) -> None:
    text = json.dumps(data, separators=(",", ":"), default=str)
    await response.write(f"event: {event}\ndata: {text}\n\n".encode())
