"""An upstream node run in this process: the one-relay node's proxy cache -> balancer step.

`InProcessUpstream` has the interface of `UpstreamConnection` (connect,
close, usable, send, send_many, send_call, request), but instead of a TCP
connection it holds one client connection's `ClientHandler` of a node of
the same process (the balancer's `open_client`: one balancer
`ClientSession` per proxy client connection). A request is framed by the
project's one `RequestFramer` and handed to that handler exactly as the
node's listening side (nodes/runtime/serving.py) would hand it over, in
the same order and in the same callback: bytes are an answer at once, a
`PendingAnswer` is listened to, a future is awaited, a coroutine becomes a
task right away (so the node's own statement order is the one it has over
TCP). Each answer is decoded by the project's decoder
(`single_raw_response`, else `ResponseDecoder`). No socket, no process
wake-up, no second decode of a byte stream.

What a TCP connection would do on its own is kept: a handler raising
`CloseConnection` (a refused login) gives its answer and the "connection"
is closed behind it (the next request reconnects and replays, like over
TCP); a handler failing (a bug) fails that request with an UpstreamError
and closes the connection. `closed()` of the handler runs once the
connection is closed and its last answer is in, as the listening side
does. There is no request timer: the node in this process bounds its own
work (the balancer's request timeouts to the servers).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nodes.protocol import (
    DEFAULT_MAX_REQUEST_BYTES,
    ProtocolError,
    Request,
    RequestFramer,
    Response,
    ResponseDecoder,
    encode_message,
)
from nodes.runtime.serving import ClientHandler, CloseConnection, PendingAnswer
from nodes.runtime.upstream import NotSent, UpstreamError, single_raw_response

# Called with (the response, None) or (None, the UpstreamError), once; and
# with (the responses, None) for several requests sent at once.
_Give = Callable[["Response | None", "UpstreamError | None"], None]
_Done = Callable[["list[Response] | None", "UpstreamError | None"], None]


@dataclass(frozen=True)
class LocalUpstream:
    """A node run inside this process, as a proxy cache's upstream.

    name: how errors and `.status;` name it. open_client: one handler per
    client connection (None: refused, no room). status: its `.status;` figures.
    """

    name: str
    open_client: Callable[[], ClientHandler | None]
    status: Callable[[], dict]


class _Link:
    """One in-process "connection": a handler, its framer, the answers still awaited."""

    __slots__ = ("handler", "framer", "in_flight", "closed", "released")

    def __init__(self, handler: ClientHandler, max_request_bytes: int) -> None:
        self.handler = handler
        self.framer = RequestFramer(max_request_bytes)
        self.in_flight = 0
        self.closed = False
        self.released = False

    def close(self) -> None:
        self.closed = True
        self.release_if_idle()

    def release_if_idle(self) -> None:
        """The handler's `closed()` once closed with no answer awaited (once)."""
        if not self.closed or self.in_flight or self.released:
            return
        self.released = True
        closed = self.handler.closed
        if closed is not None:
            outcome = closed()
            if inspect.isawaitable(outcome):
                asyncio.ensure_future(outcome)


class _Gather:
    """The answers of the requests of one send, collected in request order."""

    __slots__ = ("responses", "missing", "done")

    def __init__(self, count: int, done: _Done) -> None:
        self.responses: list[Response | None] = [None] * count
        self.missing = count
        self.done: _Done | None = done

    def give(self, index: int, response: Response | None, error: UpstreamError | None) -> None:
        done = self.done
        if done is None:
            return
        if error is not None:
            self.done = None
            done(None, error)
            return
        self.responses[index] = response
        self.missing -= 1
        if not self.missing:
            self.done = None
            done(self.responses, None)   # type: ignore[arg-type]  # all filled now


def decode_answer(raw: bytes, decode_relations: bool) -> Response:
    """One complete answer as a Response (ProtocolError unless exactly one)."""
    if not decode_relations:
        single = single_raw_response(raw)
        if single is not None:
            return single
    decoder = ResponseDecoder(decode_relations)
    responses = decoder.feed(raw)
    if len(responses) != 1 or decoder.pending:
        raise ProtocolError(f"{len(responses)} responses in one answer")
    return responses[0]


class InProcessUpstream:
    """`UpstreamConnection`'s interface over a `LocalUpstream`'s per-connection handler.

    Opened by `connect` (or `request`), a new handler each time (a new
    balancer session, as a new TCP connection would be); requests may be
    sent ahead (pipelining): each is handed over as it is sent.
    """

    def __init__(self, local: LocalUpstream, decode_relations: bool = False,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        self.local = local
        self.decode_relations = decode_relations
        self.max_request_bytes = max_request_bytes
        self._link: _Link | None = None

    @property
    def connected(self) -> bool:
        return self._link is not None

    @property
    def usable(self) -> bool:
        link = self._link
        return link is not None and not link.closed

    async def connect(self) -> None:
        self._drop()
        handler = self.local.open_client()
        if handler is None:
            raise UpstreamError(f"tsy tafiditra amin'ny {self.local.name} (no room for a connection)")
        self._link = _Link(handler, self.max_request_bytes)

    async def close(self) -> None:
        self._drop()

    def _drop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()

    async def request(self, data: bytes) -> Response:
        if self._link is None:
            await self.connect()
        return await self.send(data)

    def send(self, data: bytes) -> Awaitable[Response]:
        """Hand one request over now; the awaitable of its Response."""
        future = asyncio.get_running_loop().create_future()
        self._hand_over(data, 1, functools.partial(_settle, future))
        return future

    def send_many(self, data: bytes, count: int) -> Awaitable[list[Response]]:
        """`send` for `count` requests in `data`, handed over in order; the awaitable of their Responses."""
        future = asyncio.get_running_loop().create_future()
        self._hand_over(data, count, None, _Gather(count, functools.partial(_settle, future)))
        return future

    def send_call(self, data: bytes,
                  callback: Callable[[Response | None, UpstreamError | None], None]) -> None:
        """`send` with `callback(response, None)` or `callback(None, error)` instead, once
        (right away when the answer is ready at once, or nothing could be handed over)."""
        self._hand_over(data, 1, callback)

    # -- handing over --------------------------------------------------------

    def _hand_over(self, data: bytes, count: int, give: _Give | None,
                   gather: _Gather | None = None) -> None:
        """Frame `data` and hand its `count` requests over; `give` the one answer (count 1)
        or each to `gather`."""
        link = self._link
        error: UpstreamError | None = None
        if link is None or link.closed:
            error = NotSent("not connected")
        else:
            try:
                requests = link.framer.feed(data)
            except Exception as failure:   # the framer never raises on bytes; a bug must not hang
                requests, error = [], NotSent(f"framing failed: {failure}")
            if error is None and (len(requests) != count or link.framer.pending):
                # Only a caller's bug: the proxy sends whole statements.
                error = NotSent(f"protocol error: {len(requests)} requests framed where "
                                f"{count} were sent")
            if error is not None:
                self._fail(link)
        if error is not None or link is None:
            broken = self._broken(error or NotSent("not connected"))
            if gather is not None:
                gather.give(0, None, broken)
            elif give is not None:
                give(None, broken)
            return
        if gather is None:
            assert give is not None
            self._answer(link, requests[0], give)
            return
        for index, request in enumerate(requests):
            if link.closed:
                # The one before closed the connection (a refused login):
                # nothing after it is handed over, as over TCP.
                gather.give(index, None, self._broken(UpstreamError("connection closed")))
                return
            self._answer(link, request, functools.partial(gather.give, index))

    def _answer(self, link: _Link, request: Request, give: _Give) -> None:
        """Hand one request to the handler (as serving.py does); `give` its decoded answer."""
        if request.error is not None:
            self._given(link, give, encode_message(request.error))
            return
        try:
            result = link.handler.answer(request)
        except CloseConnection as close:
            self._given(link, give, close.response, close_after=True)
            return
        except Exception as error:
            self._fail(link)
            give(None, self._broken(UpstreamError(f"the {self.local.name} failed: {error!r}")))
            return
        if type(result) is bytes:
            self._given(link, give, result)
            return
        link.in_flight += 1
        if type(result) is PendingAnswer:
            # The one consumer of that answer, as the listening side would be.
            if result.done():
                self._finish(link, give, result._response)
            else:
                result._listen(functools.partial(self._finish, link, give))
            return
        # A future (an engine thread's) is awaited as it is; a coroutine becomes
        # a task now, in request order, as the listening side makes it.
        task = asyncio.ensure_future(result)   # type: ignore[arg-type]  # not bytes, not pending
        task.add_done_callback(functools.partial(self._task_done, link, give))

    def _task_done(self, link: _Link, give: _Give, task: asyncio.Future) -> None:
        if task.cancelled():
            self._finish(link, give, None)
            return
        error = task.exception()
        self._finish(link, give, None if error is not None else task.result(), error)

    def _finish(self, link: _Link, give: _Give, raw: bytes | None,
                error: BaseException | None = None) -> None:
        """An answer awaited is in (`raw`; None: cancelled, or `error`)."""
        link.in_flight -= 1
        try:
            if raw is not None:
                self._given(link, give, raw)
            elif isinstance(error, CloseConnection):
                self._given(link, give, error.response, close_after=True)
            else:
                # Cancelled, or a bug: over TCP the connection would be aborted.
                self._fail(link)
                reason = "connection closed" if error is None else \
                    f"the {self.local.name} failed: {error!r}"
                give(None, self._broken(UpstreamError(reason)))
        finally:
            if link.closed:
                link.release_if_idle()

    def _given(self, link: _Link, give: _Give, raw: bytes, close_after: bool = False) -> None:
        if close_after:
            self._fail(link)   # its answer goes first, then the connection is closed
        if not self.decode_relations:
            single = single_raw_response(raw)
            if single is not None:   # the common answer: no decoder made
                give(single, None)
                return
        try:
            response = decode_answer(raw, self.decode_relations)
        except ProtocolError as error:
            self._fail(link)
            give(None, self._broken(UpstreamError(f"protocol error: {error}")))
            return
        give(response, None)

    def _fail(self, link: _Link) -> None:
        """`link` is closed: forgotten unless already replaced."""
        if self._link is link:
            self._link = None
        link.close()

    def _broken(self, error: UpstreamError) -> UpstreamError:
        broken = NotSent if isinstance(error, NotSent) else UpstreamError
        return broken(f"tapaka ny fifandraisana amin'ny {self.local.name} ({error})")


def _settle(future: asyncio.Future, value: object, error: UpstreamError | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
