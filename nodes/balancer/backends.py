"""A database server as the load balancer sees it, and one connection to it.

`Backend` holds a configured server's health, load counters and open
connections (so they can all be aborted when it goes OFFLINE, or let go one
by one, as their answers come in, once a reload removed it: `retire`).
`BackendConnection` sends a request (or two in one write) and returns the
responses (`send_each`: several in one write, each answer awaited on its
own: the prober's `.ping;` and `.rights;`), decoded as they arrive by a bare asyncio Protocol (no stream
buffer or reader task on the hot path). Requests may be pipelined: a
session's writes to one owner are sent one behind the other without waiting
(`send_now`, or `on_sent` to learn when a request went out), and the server
answers them in order. Every failure becomes `BackendUnavailable`, whose
`sent` flag says whether the request may have reached the server. That flag
is what lets the balancer retry a write elsewhere only when nothing was
sent. A server that answers a new connection's first request with "too many
connections" (`refused_for_room`) ran nothing: `busy` says so, and the pool
treats it as a crowded backend, not a sick one (nodes/balancer/backend_pool.py).

A connection opened for a client session that logged in (`login`: the
session's `.login` request) logs in right after the shared secret, as that
account; a backend refusing it raises `LoginRefused` (the client's login
no longer holds there: not a backend failure).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from nodes.balancer.backend_config import BackendSpec
from nodes.balancer.health import BackendHealth
from nodes.errors import NodeError
from nodes.protocol import Response, auth_request, is_too_many_connections
from nodes.runtime.upstream import (
    NotSent,
    ResponseReceiver,
    UpstreamError,
    exchange,
    finish_exchange,
    open_upstream,
    send_call,
    start_exchanges,
)

# Called with (the response, None) or (None, BackendUnavailable(sent=True)), once.
AnswerCallback = Callable[["list[Response] | None", "BackendUnavailable | None"], None]


@dataclass(frozen=True)
class Timeouts:
    """Every socket operation towards a backend is bounded by one of these (seconds)."""

    connect: float = 1.0
    probe: float = 1.0
    request: float = 30.0


class BackendUnavailable(NodeError):
    """A backend could not serve a request. `sent`: the request may have reached it;
    `busy`: it refused the connection for want of room (a crowded backend, not a dead one)."""

    def __init__(self, backend_id: str, reason: str, sent: bool, busy: bool = False):
        if busy and not reason.startswith(BUSY_PREFIX):
            reason = BUSY_PREFIX + reason
        super().__init__(f"{backend_id}: {reason}")
        self.backend_id = backend_id
        self.reason = reason
        self.sent = sent
        self.busy = busy


# What the reason of a `busy` BackendUnavailable starts with (the pool's
# `record_failure` gets only the reason).
BUSY_PREFIX = "no room for a connection: "


def refused_for_room(response: Response) -> bool:
    """Whether a backend's answer refuses the connection it came on (too many connections)."""
    return not response.ok and is_too_many_connections(response.message)


class LoginRefused(NodeError):
    """A backend refused the session's login on a new connection (`response`: its answer)."""

    def __init__(self, backend_id: str, response: Response):
        super().__init__(f"{backend_id}: {response.message}")
        self.backend_id = backend_id
        self.response = response


class Backend:
    """A configured backend at run time: its health, load and open connections."""

    def __init__(self, spec: BackendSpec, health: BackendHealth, secret: str | None = None,
                 tls: ssl.SSLContext | None = None):
        self.spec = spec
        self.health = health
        self.secret = secret  # shared secret (docs/SECURITY.md), sent first on each connection
        self.tls = tls  # its connections over TLS (nodes/protocol/tls.py), None: plain TCP
        self.outstanding = 0
        self.reads = 0
        self.writes = 0
        self.connections: set[BackendConnection] = set()
        self.busy_refusals = 0       # connections it refused for want of room
        self.busy_until = 0.0        # new requests prefer other backends until then
        # Its answer to `.rights;` last seen (None: not yet): accounts' statements
        # avoid a backend behind the others (nodes/balancer/backend_pool.py).
        self.rights_generation: int | None = None
        # Removed from the backends file: no new request, connections closed once answered.
        self.retired = False

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def in_flight(self) -> int:
        """Requests sent to it whose answers are not all in."""
        return sum(connection.waiting for connection in self.connections)

    def abort_connections(self) -> None:
        for connection in list(self.connections):
            connection.close()

    def retire(self) -> None:
        """It left the backends file (a hot reload stops, moves or removes the server):
        nothing new is sent to it (the pool no longer holds it), and each connection
        closes as soon as what was sent on it is answered. Aborting them would cut the
        statements on their way, a write's client then told "outcome unknown"; a
        frozen server's requests still fail by their timeout."""
        self.retired = True
        for connection in list(self.connections):
            if connection.waiting == 0:
                connection.close()


class BackendConnection:
    """One connection to a backend (TCP, or its Unix socket on this machine) and the
    database currently selected on it."""

    def __init__(self, backend: Backend, transport: asyncio.Transport, receiver: ResponseReceiver):
        self.backend = backend
        self.transport = transport
        self._receiver = receiver
        self.database: str | None = None
        self.login: bytes | None = None    # the `.login` it was opened with (None: none)
        backend.connections.add(self)

    def let_go_if_idle(self) -> None:
        """Close it if its backend was retired and no answer is awaited on it."""
        if self.backend.retired and self._receiver.waiting == 0:
            self.close()

    @classmethod
    async def open(cls, backend: Backend, timeout: float,
                   login: bytes | None = None) -> BackendConnection:
        try:
            spec = backend.spec
            transport, receiver = await open_upstream(spec.host, spec.port, timeout,
                                                      tls=backend.tls, unix_socket=spec.unix_socket)
        except TimeoutError:
            raise BackendUnavailable(backend.id, f"no connection within {timeout:g}s", sent=False) from None
        except OSError as error:
            raise BackendUnavailable(backend.id, error.strerror or str(error), sent=False) from None
        connection = cls(backend, transport, receiver)
        if backend.secret:
            try:
                answer = await connection.roundtrip(auth_request(backend.secret), timeout)
            except BackendUnavailable as error:
                raise BackendUnavailable(backend.id, error.reason, sent=False) from None
            if not answer.ok:
                connection.close()
                # Refused before any statement was sent.
                raise BackendUnavailable(backend.id, answer.message, sent=False,
                                         busy=is_too_many_connections(answer.message))
        if login is not None:
            try:
                answer = await connection.roundtrip(login, timeout)
            except BackendUnavailable as error:
                raise BackendUnavailable(backend.id, error.reason, sent=False) from None
            if not answer.ok:
                connection.close()
                if is_too_many_connections(answer.message):
                    raise BackendUnavailable(backend.id, answer.message, sent=False, busy=True)
                raise LoginRefused(backend.id, answer)
            connection.login = login
        return connection

    @property
    def usable(self) -> bool:
        # A peer that died or restarted has already sent FIN/RST, which the
        # event loop turned into EOF: such a connection is known dead before
        # anything is sent on it.
        return not self._receiver.closed and not self.transport.is_closing()

    @property
    def waiting(self) -> int:
        """Requests sent on this connection whose responses have not all arrived."""
        return self._receiver.waiting

    async def roundtrip(self, payload: bytes, timeout: float,
                        on_sent: Callable[[], None] | None = None) -> Response:
        """Send one request, return its one response; BackendUnavailable on any failure."""
        return (await self._exchange(payload, 1, timeout, on_sent))[0]

    async def roundtrip_pair(self, payload: bytes, follow_up: bytes, timeout: float,
                             on_sent: Callable[[], None] | None = None
                             ) -> tuple[Response, Response]:
        """Send two requests in one write; their two responses."""
        first, second = await self._exchange(payload + follow_up, 2, timeout, on_sent)
        return first, second

    def send_now(self, payload: bytes, count: int, timeout: float):
        """Write `payload` (`count` requests) now, behind whatever is in flight; the awaitable
        of their responses. BackendUnavailable(sent=False) if nothing could be written."""
        return self._finish(self._start(payload, (count,), timeout)[0])

    def send_each(self, payload: bytes, counts: tuple[int, ...], timeout: float) -> list:
        """Write `payload` (several requests) now in one write; an awaitable per request, of
        its `counts[i]` responses, each bounded by `timeout` from now and ready as soon as its
        own responses are in (every one must be awaited). BackendUnavailable(sent=False) if
        nothing could be written; a failed awaitable closes the connection (BackendUnavailable,
        sent=True), failing the ones behind it too."""
        return [self._finish(waiter) for waiter in self._start(payload, counts, timeout)]

    def _start(self, payload: bytes, counts: tuple[int, ...], timeout: float
               ) -> list[asyncio.Future]:
        if not self.usable:
            self.close()
            raise BackendUnavailable(self.backend.id, "connection already closed", sent=False)
        try:
            return start_exchanges(self.transport, self._receiver, payload, counts, timeout)
        except UpstreamError as error:
            self.close()
            raise BackendUnavailable(self.backend.id, str(error), sent=False) from None

    def send_call(self, payload: bytes, timeout: float, callback: AnswerCallback,
                  count: int = 1) -> None:
        """Write `payload` (`count` requests) now, behind whatever is in flight; `callback`
        gets their responses.

        The balancer's fast path: no future, no task; `callback(responses, None)`
        runs right from the read callback, or `callback(None, error)` once the
        request may have arrived and the connection failed (it is then closed).
        BackendUnavailable(sent=False), and no call, if nothing could be written.
        """
        if not self.usable:
            self.close()
            raise BackendUnavailable(self.backend.id, "connection already closed", sent=False)

        def answered(responses: list[Response] | None, error: UpstreamError | None) -> None:
            if responses is not None:
                callback(responses, None)
                self.let_go_if_idle()   # (after the callback: it may send behind it)
                return
            self.close()
            callback(None, BackendUnavailable(self.backend.id, str(error), sent=True))

        try:
            send_call(self.transport, self._receiver, payload, count, timeout, answered)
        except UpstreamError as error:
            self.close()
            raise BackendUnavailable(self.backend.id, str(error), sent=False) from None

    async def _finish(self, waiter: asyncio.Future) -> list[Response]:
        try:
            responses = await finish_exchange(self._receiver, waiter)
        except UpstreamError as error:
            self.close()
            raise BackendUnavailable(self.backend.id, str(error), sent=True) from None
        self.let_go_if_idle()
        return responses

    async def _exchange(self, payload: bytes, count: int, timeout: float,
                        on_sent: Callable[[], None] | None = None) -> list[Response]:
        if not self.usable:
            self.close()
            raise BackendUnavailable(self.backend.id, "connection already closed", sent=False)
        try:
            responses = await exchange(self.transport, self._receiver, payload, count, timeout,
                                       on_sent)
        except UpstreamError as error:
            self.close()
            # Unless the send itself failed, the request may have arrived.
            raise BackendUnavailable(self.backend.id, str(error),
                                     sent=not isinstance(error, NotSent)) from None
        self.let_go_if_idle()
        return responses

    def close(self) -> None:
        self.backend.connections.discard(self)
        self._receiver.closed = True
        self.transport.abort()
