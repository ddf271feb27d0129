"""Serving client connections: every node's listening side (server, balancer, proxy cache).

Each accepted connection is a `ClientConnection`, a bare asyncio Protocol:
bytes go straight from `data_received` into the `RequestFramer`, and a
request whose answer is ready at once (a server's small read, an admin
request, a proxy cache hit) is answered inside that same callback, with one
write and no task, no stream buffer, no wake-up of a reader coroutine. An
answer that must wait (an engine batch, an upstream node) is awaited in a
task; meanwhile reading pauses, so requests are answered one at a time, in
order, and nothing is buffered without bound. While the client does not
read its responses (the transport's write buffer is full), requests wait too.

What a node supplies per connection is a `ClientHandler`: `answer(request)`
returns the response bytes or an awaitable of them (and may raise
`CloseConnection`), `closed()` runs once the connection is gone and its
last answer is done. Framing errors, the shared-secret handshake
(nodes/auth.py) and the idle timeout are handled here, the same for every
node. An unfinished statement at EOF is not run: a client that died
mid-statement must not have half a statement executed.

`run_server` listens until SIGTERM/SIGINT, then stops gracefully.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from nodes.auth import AuthGuard, answer_auth
from nodes.node_process import set_nodelay
from nodes.protocol import (ADMIN_AUTH, ADMIN_PING, ADMIN_STATUS, DEFAULT_MAX_REQUEST_BYTES,
                            Request, RequestFramer, encode_error, encode_message, response_is_error)

Answer = Callable[[Request], "bytes | Awaitable[bytes]"]


class CloseConnection(Exception):
    """Raised by a handler: send `response`, then close the connection."""

    def __init__(self, response: bytes):
        super().__init__("close")
        self.response = response


@dataclass
class ClientHandler:
    """What a node does on one client connection.

    answer: statements and admin requests (never `.auth`, never framing
    errors) -> response bytes, or an awaitable of them. closed: runs once,
    after the connection ended and its last answer is done (may return an
    awaitable, which is scheduled). idle_timeout: close the connection after
    this long without a request (None: never).
    """

    answer: Answer
    closed: Callable[[], object] | None = None
    idle_timeout: float | None = None


@dataclass
class ConnectionStats:
    """Counters every node keeps about its client connections."""

    started: float = field(default_factory=time.monotonic)
    open_connections: int = 0
    total_connections: int = 0
    refused_connections: int = 0
    requests: int = 0
    errors: int = 0

    def as_dict(self) -> dict:
        return {"uptime_s": round(time.monotonic() - self.started, 3),
                "connections": self.open_connections,
                "connections_total": self.total_connections,
                "connections_refused": self.refused_connections,
                "requests": self.requests, "errors": self.errors}


def admin_response(request: Request, node_id: str, kind: str,
                   status: Callable[[], dict]) -> bytes:
    """The answer to `.ping;` (PONG id kind, touches no data) or `.status;` (one JSON line)."""
    if request.admin == ADMIN_PING:
        return encode_message(f"PONG {node_id} {kind}")
    if request.admin == ADMIN_STATUS:
        return encode_message(orjson.dumps({"id": node_id, "kind": kind, **status()}).decode())
    return encode_error(f"Fangatahana tsy fantatra : {request.text}")


class ClientConnection(asyncio.Protocol):
    """One client connection: framing, one answer at a time in order, auth, idle timeout."""

    def __init__(self, open_client: Callable[[], ClientHandler | None], stats: ConnectionStats,
                 logger: logging.Logger, max_request_bytes: int, auth: AuthGuard | None,
                 connections: set["ClientConnection"]):
        self._open_client = open_client
        self._stats = stats
        self._logger = logger
        self._framer = RequestFramer(max_request_bytes)
        self._auth = auth
        self._authenticated = auth is None or not auth.required
        self._connections = connections
        self._handler: ClientHandler | None = None
        self._transport: asyncio.Transport | None = None
        self._pending: deque[Request] = deque()
        self._waiting: asyncio.Future | None = None   # the answer being awaited
        self._reading = True
        self._write_paused = False
        self._eof = False
        self._lost = False
        self._closing = False   # no more requests: close once the current answer is sent
        self._finished = False
        self._watch: _IdleWatch | None = None

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        set_nodelay(transport)
        try:
            self._handler = self._open_client()
        except Exception:
            self._logger.exception("could not open a client session")
            self._handler = None
        if self._handler is None:
            self._lost = True
            transport.close()
            self._finish()
            return
        self._connections.add(self)
        self._watch = _IdleWatch(transport, self._logger, self._peer)  # type: ignore[arg-type]
        self._start_waiting()

    def data_received(self, data: bytes) -> None:
        if self._closing or self._handler is None:
            return
        self._watch.stop_waiting()
        self._pending.extend(self._framer.feed(data))
        self._pump()

    def eof_received(self) -> bool:
        self._eof = True
        if self._busy:
            return True  # keep our side open to send the answers still due
        self._close()
        return False

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._closing = True
        self._pending.clear()
        if exc is not None:
            self._logger.debug("connection from %s ended: %s", self._peer(), exc)
        if self._watch is not None:
            self._watch.cancel()
        if self._waiting is None:
            self._finish()

    # -- answering

    @property
    def _busy(self) -> bool:
        return self._waiting is not None or bool(self._pending)

    def _pump(self) -> None:
        """Answer the pending requests until one must be awaited (or writing is paused)."""
        while self._pending and self._waiting is None and not self._closing:
            if self._write_paused:
                break
            request = self._pending.popleft()
            self._stats.requests += 1
            if request.admin == ADMIN_AUTH or not self._authenticated:
                self._wait_for(self._authenticate(request), is_auth=True)
                break
            if request.error is not None:
                self._stats.errors += 1
                self._send(encode_message(request.error))
                continue
            try:
                result = self._handler.answer(request)
            except CloseConnection as close:
                self._close_with(close.response)
                return
            except Exception:
                self._logger.exception("connection handler failed")
                self._close()
                return
            if type(result) is bytes:
                self._respond(result)
            else:
                self._wait_for(result)
        self._flow_control()

    def _wait_for(self, awaitable, is_auth: bool = False) -> None:
        if is_auth:
            self._waiting = asyncio.ensure_future(awaitable)
            self._waiting.add_done_callback(self._auth_done)
        elif isinstance(awaitable, asyncio.Future):  # e.g. the engine thread's answer
            self._waiting = awaitable
            awaitable.add_done_callback(self._future_done)
        else:
            # A coroutine: its task sends the answer itself as soon as it
            # has it (no extra turn of the loop for a done-callback).
            self._waiting = asyncio.ensure_future(self._complete(awaitable))

    async def _complete(self, answer: Awaitable[bytes]) -> None:
        try:
            response = await answer
        except CloseConnection as close:
            self._waiting = None
            self._close_with(close.response)
        except asyncio.CancelledError:
            self._waiting = None
            self._close()
            raise
        except Exception:
            self._waiting = None
            self._logger.exception("connection handler failed")
            self._close()
        else:
            self._waiting = None
            self._respond(response)
        self._after_wait()

    def _future_done(self, waiting: asyncio.Future) -> None:
        self._waiting = None
        if waiting.cancelled():
            self._close()
        else:
            error = waiting.exception()
            if isinstance(error, CloseConnection):
                self._close_with(error.response)
            elif error is not None:
                self._logger.error("connection handler failed", exc_info=error)
                self._close()
            else:
                self._respond(waiting.result())
        self._after_wait()

    async def _authenticate(self, request: Request):
        return await answer_auth(self._auth, request, self._authenticated, self._peer())

    def _auth_done(self, waiting: asyncio.Future) -> None:
        self._waiting = None
        if waiting.cancelled() or waiting.exception() is not None:
            if not waiting.cancelled():
                self._logger.error("authentication failed", exc_info=waiting.exception())
            self._close()
        else:
            verdict = waiting.result()
            if verdict.close:
                self._close_with(verdict.response)
            else:
                self._send(verdict.response)
                self._authenticated = True
        self._after_wait()

    def _after_wait(self) -> None:
        if self._lost:
            self._finish()
        else:
            self._pump()

    def _respond(self, response: bytes) -> None:
        if response_is_error(response):
            self._stats.errors += 1
        self._send(response)

    def _send(self, data: bytes) -> None:
        if not self._lost and not self._transport.is_closing():
            self._transport.write(data)

    def _close_with(self, response: bytes) -> None:
        self._stats.errors += 1
        self._send(response)
        self._close()

    def _close(self) -> None:
        """No more requests; close once what is written is sent (FIN after the data)."""
        self._closing = True
        self._pending.clear()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _flow_control(self) -> None:
        if self._closing:
            return
        if self._busy:
            if self._reading:
                self._reading = False
                self._transport.pause_reading()
            return
        if self._eof:
            self._close()
            return
        if not self._reading:
            self._reading = True
            self._transport.resume_reading()
        self._start_waiting()

    def _start_waiting(self) -> None:
        timeout = self._handler.idle_timeout
        if not self._authenticated:
            first = self._auth.first_timeout
            timeout = min(timeout or first, first)
        self._watch.start_waiting(timeout)

    def _finish(self) -> None:
        """The connection is gone and nothing is awaited any more: run the node's cleanup once."""
        if self._finished:
            return
        self._finished = True
        self._connections.discard(self)
        handler = self._handler
        if handler is not None and handler.closed is not None:
            try:
                result = handler.closed()
                if inspect.isawaitable(result):
                    asyncio.ensure_future(result)
            except Exception:
                self._logger.exception("connection cleanup failed")

    # -- shutdown

    @property
    def answering(self) -> bool:
        """Whether an answer is being awaited (shutdown lets it finish)."""
        return self._waiting is not None

    def stop(self) -> None:
        """Shutdown: no more requests; the answer being awaited (if any) is still sent."""
        if self._waiting is None:
            self._close()
        else:
            self._closing = True
            self._pending.clear()
            self._waiting.add_done_callback(lambda _: self._close())

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _peer(self) -> str:
        peer = self._transport.get_extra_info("peername") if self._transport is not None else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


class _IdleWatch:
    """Closes a connection that waited for its next request longer than its timeout.

    One timer per connection, re-armed only when it fires, instead of a
    timeout scheduled and cancelled around every request: the connection
    only notes when it starts and stops waiting.
    """

    def __init__(self, transport: asyncio.Transport, logger: logging.Logger,
                 peer: Callable[[], str]) -> None:
        self._transport = transport
        self._logger = logger
        self._peer = peer
        self._loop = asyncio.get_running_loop()
        self._timeout: float | None = None
        self._waiting_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start_waiting(self, timeout: float | None) -> None:
        now = self._loop.time()
        self._waiting_since = now
        self._timeout = timeout
        if timeout is None:
            return
        due = now + timeout
        if self._timer is None or due < self._due:
            # A shorter timeout than the armed one (or none armed): arm anew.
            if self._timer is not None:
                self._timer.cancel()
            self._arm(due)

    def stop_waiting(self) -> None:
        self._waiting_since = None

    def _arm(self, due: float) -> None:
        self._due = due
        self._timer = self._loop.call_at(due, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._timeout is None:
            return
        if self._waiting_since is None:  # busy with a request: check again later
            self._arm(self._loop.time() + self._timeout)
            return
        due = self._waiting_since + self._timeout
        if self._loop.time() < due:
            self._arm(due)
            return
        self._logger.info("closing idle connection from %s", self._peer())
        self._transport.close()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def run_server(open_client: Callable[[], ClientHandler | None], host: str, port: int,
                     logger: logging.Logger, stats: ConnectionStats, *,
                     max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                     auth: AuthGuard | None = None,
                     on_stop: Callable[[], Awaitable[None]] | None = None,
                     stop_grace: float = 5.0) -> None:
    """Serve client connections until SIGTERM/SIGINT, then stop gracefully.

    `open_client` runs for each accepted connection (None refuses it: the
    connection is closed). At stop: no new connections; idle ones are
    closed; an answer being awaited is still sent (up to `stop_grace`
    seconds, then its connection is aborted); then `on_stop` runs.
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    connections: set[ClientConnection] = set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    server = await loop.create_server(
        lambda: ClientConnection(open_client, stats, logger, max_request_bytes, auth, connections),
        host, port, reuse_address=True, backlog=512)
    logger.info("listening on %s:%d", host, port)
    async with server:
        await stopping.wait()
        logger.info("stopping")
        server.close()
        for connection in list(connections):
            connection.stop()
        deadline = loop.time() + stop_grace
        while any(connection.answering for connection in connections) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(connections):
            if connection.answering:
                connection.abort()
    if on_stop is not None:
        await on_stop()
    logger.info("stopped")
