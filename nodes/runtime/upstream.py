"""Connections to an upstream node (balancer -> servers, proxy cache -> balancer).

The receiving side is a bare asyncio Protocol (`ResponseReceiver`): each
chunk goes straight into a `ResponseDecoder`, with a byte-search fast path
for the common one-chunk response (`single_raw_response`). `exchange` sends
one request (one write) and waits, bounded by the connection's timer, for
its responses; `send_call` (and `UpstreamConnection.send_call`) calls a
function with them instead, from the read callback (a relay's fast path);
`start_exchanges` sends several requests in one write, with a future each
(the balancer's probe: `.ping;` and `.rights;` in one round trip).
Requests may be pipelined on one connection: each `exchange` queues its
waiter when it writes, and responses (which a node sends in request order)
go to the waiters in that order. `UpstreamConnection` is one reconnecting
connection (over the node's Unix socket when it has one on this machine:
`open_upstream`), with the shared secret presented first when the node has one;
`send` writes a request and returns the wait for its response, so a caller
can send the next one before it arrives. Every failure is an
`UpstreamError` with one sentence, and the connection is aborted (every
request waiting on it fails: their answers could no longer be matched).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from typing import NoReturn

from engine.errors import ERROR_PREFIX
from nodes.errors import NodeError
from nodes.protocol import ProtocolError, Response, ResponseDecoder, auth_request
from nodes.runtime.node_process import set_nodelay

_log = logging.getLogger(__name__)


class UpstreamError(NodeError):
    """The upstream node could not be reached or broke the protocol; one sentence."""


class NotSent(UpstreamError):
    """The request was not sent at all (the connection was already closed)."""


# What a relay tells its client of a write sent upstream whose answer never came
# (any other failure means nothing was applied).
WRITE_OUTCOME_UNKNOWN = ("the outcome of this write is unknown (it may or may not have been "
                         "applied); it was not sent again")


# Called with (the responses, None) or (None, the UpstreamError), once.
ResponseCallback = Callable[["list[Response] | None", "UpstreamError | None"], None]


class _Waiter:
    """One request's wait for its responses: a future to resolve, or a function to call."""

    __slots__ = ("future", "callback", "wanted", "responses", "deadline", "timeout")

    def __init__(self, future: asyncio.Future | None, callback: ResponseCallback | None,
                 wanted: int, deadline: float | None, timeout: float | None) -> None:
        self.future = future
        self.callback = callback
        self.wanted = wanted
        self.responses: list[Response] = []
        self.deadline = deadline
        self.timeout = timeout

    def finish(self, responses: list[Response] | None, error: UpstreamError | None) -> None:
        callback = self.callback
        if callback is not None:
            self.callback = None   # called once
            callback(responses, error)
            return
        future = self.future
        if future is not None and not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(responses)


class ResponseReceiver(asyncio.Protocol):
    """The receiving side of a connection to an upstream node: responses decoded as bytes arrive.

    A bare asyncio Protocol (no StreamReader buffer, no reader task): each
    chunk goes straight into the `ResponseDecoder`. `expect(count)` queues
    a future resolved with the next `count` responses after those of the
    requests queued before it; `expect_call(count, callback)` calls a
    function instead, right from the read callback (a relay's fast path:
    no future, no task). They fail with UpstreamError when the connection
    ends, breaks the protocol, sends a response nobody asked for, or a
    request's timeout passes. After a failure the connection is aborted and
    every waiter fails.

    Timeouts: one timer per connection, armed for the earliest deadline and
    re-armed only when it fires, instead of a timer started and cancelled
    around every request (what most of a relayed request's bookkeeping cost).
    """

    def __init__(self, decode_relations: bool = False) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._decoder = ResponseDecoder(decode_relations)
        self._raw_only = not decode_relations
        self._waiters: deque[_Waiter] = deque()   # in request order
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    @property
    def waiting(self) -> int:
        """Requests sent whose responses have not all arrived."""
        return len(self._waiters)

    def expect(self, count: int, timeout: float | None = None) -> asyncio.Future:
        """The future of the next `count` responses (failed after `timeout` seconds, if given)."""
        future = asyncio.get_running_loop().create_future()
        self._queue(_Waiter(future, None, count, None, None), timeout)
        return future

    def expect_call(self, count: int, timeout: float | None, callback: ResponseCallback) -> _Waiter:
        """Call `callback(responses, None)` with the next `count` responses, or
        `callback(None, error)` once the connection fails (or `timeout` passes)."""
        waiter = _Waiter(None, callback, count, None, None)
        self._queue(waiter, timeout)
        return waiter

    def _queue(self, waiter: _Waiter, timeout: float | None) -> None:
        if timeout is not None:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            waiter.deadline = deadline = loop.time() + timeout
            waiter.timeout = timeout
            if self._timer is None or deadline < self._due:
                if self._timer is not None:
                    self._timer.cancel()
                self._due = deadline
                self._timer = loop.call_at(deadline, self._expired)
        self._waiters.append(waiter)

    def _expired(self) -> None:
        self._timer = None
        loop = self._loop
        if loop is None:
            return
        now = loop.time()
        due = None
        for waiter in self._waiters:
            deadline = waiter.deadline
            if deadline is None:
                continue
            if deadline <= now:
                self.fail(f"no answer within {waiter.timeout:g}s")
                return
            if due is None or deadline < due:
                due = deadline
        if due is not None:
            self._due = due
            self._timer = loop.call_at(due, self._expired)

    def data_received(self, data: bytes) -> None:
        single = None
        if self._raw_only and not self._decoder.pending:
            single = single_raw_response(data)
            if single is not None:
                waiters = self._waiters
                if waiters and waiters[0].wanted == 1:
                    # The usual chunk: the one answer of the request at the
                    # head (what the loop below does, the decoder untouched).
                    head = waiters.popleft()
                    head.finish([single], None)
                    return
        try:
            responses = [single] if single is not None else self._decoder.feed(data)
        except ProtocolError as error:
            self.fail(f"protocol error: {error}")
            return
        waiters = self._waiters
        for response in responses:
            if not waiters:
                self.fail("protocol error: a response nobody asked for")
                return
            head = waiters[0]
            head.responses.append(response)
            if len(head.responses) == head.wanted:
                waiters.popleft()
                head.finish(head.responses, None)
        if not waiters and self._decoder.pending:
            self.fail("protocol error: more responses than requests")

    def eof_received(self) -> bool:
        self.fail("connection closed")
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail((_reason(exc) if exc is not None else "") or "connection closed")

    def fail(self, reason: str) -> None:
        """Fail every waiting request with UpstreamError(reason) and abort the connection."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            waiter.finish(None, UpstreamError(reason))
        if self.transport is not None:
            self.transport.abort()


_PAGE_1_OF_1 = b"RELATION_JSON_PAGE 1/1\n"
_RELATION_END_AND_MESSAGE = b"RELATION_JSON_END\nRESULT_MESSAGE\n"
_MESSAGE_HEADER = b"RESULT_MESSAGE\n"
_END_LINE = b"\nEND\n"
_CR_END_LINE = b"\r\nEND\n"   # a message line ending with CR: the decoder's way
# (Their lengths, named once: this runs for every relayed answer.)
_PAGE_1_OF_1_LENGTH = len(_PAGE_1_OF_1)
_RELATION_END_AND_MESSAGE_LENGTH = len(_RELATION_END_AND_MESSAGE)
_MESSAGE_HEADER_LENGTH = len(_MESSAGE_HEADER)
_END_LINE_LENGTH = len(_END_LINE)


def single_raw_response(data: bytes) -> Response | None:
    """`data` as one complete response, if it is exactly one in the common shape; else None.

    The fast path of `ResponseReceiver` when relations are not decoded: a
    message-only response or a one-page relation, arriving whole in one
    chunk (what servers send for most statements), is recognised with a few
    byte searches instead of the decoder's line-by-line state machine. It
    accepts exactly what `ResponseDecoder(decode_relations=False)` accepts
    for those shapes and returns the same Response; anything else (several
    pages, CRLF, a partial or second response) returns None for the decoder.
    """
    if not data.endswith(_END_LINE):
        return None
    if data.startswith(_MESSAGE_HEADER):
        message_start, has_relation = _MESSAGE_HEADER_LENGTH, False
    elif data.startswith(_PAGE_1_OF_1):
        json_end = data.find(b"\n", _PAGE_1_OF_1_LENGTH)
        if json_end < 0 or not data.startswith(_RELATION_END_AND_MESSAGE, json_end + 1):
            return None
        message_start, has_relation = json_end + 1 + _RELATION_END_AND_MESSAGE_LENGTH, True
    else:
        return None
    message_end = len(data) - _END_LINE_LENGTH
    if message_end < message_start or data.find(b"\n", message_start, message_end) >= 0 \
            or data.endswith(_CR_END_LINE):
        return None
    message = data[message_start:message_end].decode("utf-8", "replace")
    # (Positional: ok, message, relation, raw, has_relation.)
    return Response(not message.startswith(ERROR_PREFIX), message, None, data, has_relation)


async def open_upstream(host: str, port: int, timeout: float, decode_relations: bool = False,
                        tls: ssl.SSLContext | None = None, unix_socket: str | None = None
                        ) -> tuple[asyncio.Transport, ResponseReceiver]:
    """Connect to an upstream node (the one way every node does), bounded by `timeout`.

    With `unix_socket` (the node's socket file on this machine: nodes/runtime/
    unix_socket.py) the connection is made there; when that fails (no file,
    nobody listening: a node restarted without its socket) this attempt falls
    back to TCP at `host`:`port`. TCP has TCP_NODELAY, and TLS with `tls`
    (the node's certificate checked against the address); a Unix socket
    carries no TLS, so with `tls` the socket is never used. OSError /
    TimeoutError on failure.
    """
    loop = asyncio.get_running_loop()

    def receiver() -> ResponseReceiver:
        return ResponseReceiver(decode_relations)

    async with asyncio.timeout(timeout):
        if unix_socket is not None and tls is None:
            try:
                transport, protocol = await loop.create_unix_connection(receiver, unix_socket)
                return transport, protocol
            except OSError as error:
                _log.debug("unix socket %s: %s; connecting over TCP to %s:%d", unix_socket,
                           _reason(error), host, port)
        transport, protocol = await loop.create_connection(
            receiver, host, port, ssl=tls, server_hostname=host if tls is not None else None)
    set_nodelay(transport)
    return transport, protocol


def start_exchange(transport: asyncio.Transport, receiver: ResponseReceiver, data: bytes,
                   count: int, timeout: float) -> asyncio.Future:
    """Send `data` (one write) now; the future of its `count` responses, failed after `timeout`.

    NotSent if nothing could be sent. Requests started one after another on
    a connection are answered in that order (pipelining).
    """
    return start_exchanges(transport, receiver, data, (count,), timeout)[0]


def start_exchanges(transport: asyncio.Transport, receiver: ResponseReceiver, data: bytes,
                    counts: tuple[int, ...], timeout: float) -> list[asyncio.Future]:
    """`start_exchange` for several requests sent in one write: a future per request, of
    its `counts[i]` responses, each failed after `timeout` (counted from now).

    The futures resolve one by one, as their responses arrive: a caller may
    use the first answer before the next one is in. A failure (a timeout
    included) aborts the connection and fails every future not resolved yet.
    """
    if receiver.closed or transport.is_closing():
        raise NotSent("connection already closed")
    waiters = [receiver.expect(count, timeout) for count in counts]
    transport.write(data)
    if transport.is_closing():
        _not_sent(receiver, waiters)
    return waiters


def _not_sent(receiver: ResponseReceiver, waiters: Sequence[asyncio.Future]) -> NoReturn:
    """The send itself failed (reset by a dead peer): nothing arrived."""
    for waiter in waiters:
        if waiter.done():
            waiter.exception()  # retrieved: replaced by the error below
    receiver.fail("connection reset before sending")
    raise NotSent("connection reset before sending")


def send_call(transport: asyncio.Transport, receiver: ResponseReceiver, data: bytes,
              count: int, timeout: float, callback: ResponseCallback) -> None:
    """`start_exchange` with a function called with the responses instead of a future.

    NotSent (and `callback` never called) if nothing could be sent. Once
    sent, `callback(responses, None)` or `callback(None, UpstreamError)` is
    called exactly once, from the read callback (the connection is then
    aborted on a failure, as `finish_exchange` does).
    """
    if receiver.closed or transport.is_closing():
        raise NotSent("connection already closed")
    waiter = receiver.expect_call(count, timeout, callback)
    transport.write(data)
    if transport.is_closing() and waiter.callback is not None:
        # The send itself failed (reset by a dead peer): nothing arrived.
        waiter.callback = None   # NotSent instead of a call
        receiver.fail("connection reset before sending")
        raise NotSent("connection reset before sending")


async def finish_exchange(receiver: ResponseReceiver, waiter: asyncio.Future) -> list[Response]:
    """Wait for a started exchange; on failure the connection is aborted (UpstreamError)."""
    try:
        return await waiter
    except UpstreamError as error:
        receiver.fail(str(error))
        raise


async def exchange(transport: asyncio.Transport, receiver: ResponseReceiver, data: bytes,
                   count: int, timeout: float,
                   on_sent: Callable[[], None] | None = None) -> list[Response]:
    """Send `data` (one write) and wait up to `timeout` for `count` responses.

    UpstreamError on any failure; the connection is then aborted. A timer
    rather than asyncio.timeout: the cheapest bound on the wait. `on_sent`
    runs once the request is written (a pipelining caller may then send
    the next one).
    """
    waiter = start_exchange(transport, receiver, data, count, timeout)
    if on_sent is not None:
        on_sent()
    return await finish_exchange(receiver, waiter)


class UpstreamConnection:
    """One connection to an upstream node.

    `request(wire_bytes)` sends a statement and returns its decoded
    `Response`; `send(wire_bytes)` sends it and returns the wait for that
    response, so the next statement can be sent first (pipelining; the
    caller keeps the sends in order). Any failure (connect, timeout, EOF,
    protocol) raises UpstreamError and closes the connection; the next
    request reconnects.
    """

    def __init__(self, host: str, port: int, connect_timeout: float = 2.0,
                 request_timeout: float = 60.0, decode_relations: bool = False,
                 secret: str | None = None, tls: ssl.SSLContext | None = None,
                 unix_socket: str | None = None):
        self.host, self.port = host, port
        # The node's socket file on this machine, tried first (`open_upstream`).
        self.unix_socket = unix_socket
        self.secret = secret  # sent as `.auth <secret>;` on every new connection
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.decode_relations = decode_relations
        self.tls = tls
        self._transport: asyncio.Transport | None = None
        self._receiver: ResponseReceiver | None = None
        self._reached = f"{host}:{port}"   # how the open connection was made, for errors

    @property
    def connected(self) -> bool:
        return self._transport is not None

    @property
    def usable(self) -> bool:
        """Connected and not closed by the peer (a dead peer's FIN is seen before sending)."""
        return (self._transport is not None and not self._transport.is_closing()
                and self._receiver is not None and not self._receiver.closed)

    async def connect(self) -> None:
        try:
            transport, receiver = await open_upstream(
                self.host, self.port, self.connect_timeout, self.decode_relations, self.tls,
                self.unix_socket)
        except (TimeoutError, OSError) as error:
            raise UpstreamError(f"tsy tafiditra amin'ny {self.host}:{self.port} ({_reason(error)})") from None
        self._transport, self._receiver = transport, receiver
        # (`open_upstream` falls back to TCP when the socket does not answer.)
        self._reached = (f"{self.host}:{self.port}"
                         if isinstance(transport.get_extra_info("peername"), tuple)
                         else f"{self.host}:{self.port} (unix socket {self.unix_socket})")
        if self.secret:
            await self._authenticate(transport, receiver, self.secret)

    async def _authenticate(self, transport: asyncio.Transport, receiver: ResponseReceiver,
                            secret: str) -> None:
        try:
            response = (await exchange(transport, receiver, auth_request(secret),
                                       1, self.connect_timeout))[0]
        except (UpstreamError, ValueError) as error:
            await self.close()
            raise UpstreamError(f"tsy tafiditra amin'ny {self.host}:{self.port} ({_reason(error)})") from None
        if not response.ok:
            await self.close()
            raise UpstreamError(f"nolavin'ny {self.host}:{self.port} : {response.message}")

    async def request(self, data: bytes) -> Response:
        if self._transport is None:
            await self.connect()
        return await self.send(data)

    def send(self, data: bytes):
        """Write one statement now (the connection must be open); the awaitable of its Response."""
        transport, receiver = self._transport, self._receiver
        if transport is None or receiver is None:
            # Not open (never, or forgotten since the caller saw it usable:
            # another request on it failed meanwhile): nothing is sent, as on a
            # connection already closed.
            return self._failed(NotSent("not connected"))
        try:
            waiter = start_exchange(transport, receiver, data, 1, self.request_timeout)
        except UpstreamError as error:
            self._forget(transport)
            return self._failed(error)
        return self._response(transport, receiver, waiter)

    def send_many(self, data: bytes, count: int):
        """`send` for `count` requests written at once; the awaitable of their Responses."""
        transport, receiver = self._transport, self._receiver
        if transport is None or receiver is None:
            return self._failed(NotSent("not connected"))
        try:
            waiter = start_exchange(transport, receiver, data, count, self.request_timeout)
        except UpstreamError as error:
            self._forget(transport)
            return self._failed(error)
        return self._responses(transport, receiver, waiter)

    async def _responses(self, transport, receiver, waiter) -> list[Response]:
        try:
            return await finish_exchange(receiver, waiter)
        except UpstreamError as error:
            self._forget(transport)
            raise self._broken(error) from None

    def send_call(self, data: bytes,
                  callback: Callable[[Response | None, UpstreamError | None], None]) -> None:
        """`send` with a function called with the outcome instead of an awaitable.

        `callback(response, None)`, or `callback(None, error)` with the error
        `send`'s awaitable would raise (the connection then forgotten), exactly
        once; right away when nothing could be sent. No future, no task: a
        relay's fast path.
        """
        transport, receiver = self._transport, self._receiver
        if transport is None or receiver is None:
            callback(None, self._broken(NotSent("not connected")))
            return

        def answered(responses: list[Response] | None, error: UpstreamError | None) -> None:
            if responses is not None:
                callback(responses[0], None)
                return
            self._forget(transport)
            callback(None, self._broken(error or UpstreamError("connection closed")))

        try:
            send_call(transport, receiver, data, 1, self.request_timeout, answered)
        except UpstreamError as error:
            self._forget(transport)
            callback(None, self._broken(error))

    async def _response(self, transport, receiver, waiter) -> Response:
        try:
            return (await finish_exchange(receiver, waiter))[0]
        except UpstreamError as error:
            self._forget(transport)
            raise self._broken(error) from None

    async def _failed(self, error: UpstreamError) -> Response:
        raise self._broken(error)

    def _broken(self, error: UpstreamError) -> UpstreamError:
        # (Still NotSent when nothing was sent: a write then certainly did not run.)
        kind = NotSent if isinstance(error, NotSent) else UpstreamError
        return kind(f"tapaka ny fifandraisana amin'ny {self._reached} ({error})")

    def _forget(self, transport) -> None:
        """The connection `transport` failed: closed, and forgotten unless already replaced."""
        if self._transport is transport:
            self._transport, self._receiver = None, None
        if transport is not None:
            transport.close()

    async def close(self) -> None:
        transport, self._transport, self._receiver = self._transport, None, None
        if transport is not None:
            transport.close()  # flushes what is buffered, then FIN


def _reason(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "timeout"
    return str(error) or type(error).__name__
