"""Serving client connections: every node's listening side (server, balancer, proxy cache).

Each accepted connection is a `ClientConnection`, a bare asyncio Protocol:
bytes go straight from `data_received` into the `RequestFramer`, and a
request whose answer is ready at once (a server's small read, an admin
request, a proxy cache hit) is answered inside that same callback, with one
write and no task, no stream buffer, no wake-up of a reader coroutine (one
request alone in its chunk on an idle connection skips the request queue
too). An answer that must wait (an engine batch) is awaited; a relay's
answer is a `PendingAnswer`, sent from the upstream connection's read
callback that gives it, without a future's extra turn of the loop.

Pipelining: a client may send statements ahead without waiting for each
answer. The handler's `window` says how many answers may be awaited at once
on one connection: with 1 (the default) the next request is handed to the
handler only once the previous answer is sent; with more, the requests
that arrived together are handed over at once (a server then commits them
in one group commit), and answers still leave one per request, in request
order, whatever order they complete in. A handler with a window above 1
keeps its own statements in order (it is called for the next request
while earlier answers are still awaited). Once the window is full, or
while the client does not read its responses (the transport's write buffer
is full), reading pauses, so nothing is buffered without bound.

Streaming with backpressure: a response over one chunk (`CHUNK_BYTES`) is
written a chunk at a time while the transport takes it; once the client
stops reading, the rest waits in the connection's `Outbox`
(nodes/runtime/outbox.py: at most `MEMORY_CAP_BYTES` in memory, the rest in
an unlinked temporary file) and goes out as the client reads. A client that
does not read stalls only itself (its next requests wait, nothing else
does), pins at most that cap in memory, and is dropped once it has read
nothing for `SEND_STALL_S` while output waits. When a client goes away, the
answers it still awaited are cancelled (futures only: a task of a relay
ends by itself).

What a node supplies per connection is a `ClientHandler`: `answer(request)`
returns the response bytes or an awaitable of them (and may raise
`CloseConnection`), `closed()` runs once the connection is gone and its
last answer is done. Framing errors, the shared-secret handshake
(nodes/protocol/auth.py) and the idle timeout are handled here, the same for every
node. An unfinished statement at EOF is not run: a client that died
mid-statement must not have half a statement executed.

Logins (nodes/protocol/login.py): a `.login` is handed to the node only
once every earlier answer is sent, and nothing after it is handed over
until it is answered, so what a client pipelines behind it runs as that
account. Its attempts pass the node's `LoginGate` first (locked-out
addresses, the node-wide throttle); a refusal (wrong name or password) is
counted against the client's address, logged with the name (never the
password), answered after a short delay, and closes the connection.

Admission (nodes/runtime/admission.py): the caps per peer address and on
unauthenticated connections are applied here, for every node. On a node
that requires the secret, a connection is handed to the node (`open_client`,
where the node applies its own `--max-connections`) only once it has
authenticated; until then it has an absolute deadline from accept.

A request whose `;` fell inside a string or a comment (`RequestFramer.stuck`:
a client that sends no newline, like the DirkDB Java client, would wait
forever) is answered with a syntax error once no byte came for
STUCK_REQUEST_QUIET_S while nothing else is due on the connection.

`run_server` listens until SIGTERM/SIGINT, then stops gracefully.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import signal
import socket
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import orjson

from nodes.errors import NodeError
from nodes.protocol import (
    ADMIN_AUTH,
    ADMIN_LOGIN,
    ADMIN_PING,
    ADMIN_STATUS,
    AUTH_TIMEOUT_S,
    DEFAULT_MAX_REQUEST_BYTES,
    LOGIN_REFUSED,
    STUCK_REQUEST_QUIET_S,
    TOO_MANY_CONNECTIONS,
    UNIX_SOCKET_PEER,
    AuthGuard,
    LoginGate,
    Request,
    RequestFramer,
    answer_auth,
    encode_error,
    encode_message,
    login_name,
    response_is_error,
)
from nodes.protocol.auth import FAILED_AUTH_DELAY_S
from nodes.runtime.admission import DEFAULT_LIMITS, Admission, ConnectionLimits
from nodes.runtime.idle_watch import IdleWatch
from nodes.runtime.node_process import release_free_memory, set_nodelay, write_port_file
from nodes.runtime.outbox import CHUNK_BYTES, MEMORY_CAP_BYTES, Outbox
from nodes.runtime.unix_socket import UnixSocketRefused, bind_or_keep_tcp

Answer = Callable[[Request], "bytes | Awaitable[bytes] | PendingAnswer"]

# Every node's `--idle-timeout` default: a classroom session may stay open,
# unused, for hours (like MySQL's wait_timeout of 8 h); the connection caps
# (nodes/runtime/admission.py, `--max-connections`) protect the node, not
# this timer.
DEFAULT_IDLE_TIMEOUT_S = 8 * 3600.0
# A client that has read nothing for this long while output waits for it is dropped
# (what it pinned, the outbox's memory and file, is freed).
SEND_STALL_S = 300.0
# After an answer this big, the allocator's free pages go back to the system
# (`release_free_memory`): what made it is freed by then.
RELEASE_AFTER_BYTES = 4 * MEMORY_CAP_BYTES


class CloseConnection(NodeError):
    """Raised by a handler: send `response`, then close the connection."""

    def __init__(self, response: bytes):
        super().__init__("close")
        self.response = response


class PendingAnswer:
    """An answer a handler gives later, from a callback of the loop: `give(response)` or `cancel()`.

    What a future would be, without its done-callback one turn of the loop
    later: the connection sends the answer right from the `give` call when
    nothing else is due on it (a relay's answer leaves from its upstream's
    read callback). A handler returns it at once and calls `give` or
    `cancel` (the connection then closes, as for a cancelled future) once;
    later calls are ignored. Anything else may await it once, as a future.
    """

    __slots__ = ("_done", "_response", "_listener")

    def __init__(self) -> None:
        self._done = False
        self._response: bytes | None = None   # None once done: cancelled
        self._listener: Callable[[bytes | None], None] | None = None

    def done(self) -> bool:
        return self._done

    def give(self, response: bytes) -> None:
        # (`_finish`, inline: this is every relayed answer's way out.)
        if self._done:
            return
        self._done, self._response = True, response
        listener = self._listener
        if listener is not None:
            self._listener = None
            listener(response)

    def cancel(self) -> None:
        self._finish(None)

    def _finish(self, response: bytes | None) -> None:
        if self._done:
            return
        self._done, self._response = True, response
        listener, self._listener = self._listener, None
        if listener is not None:
            listener(response)

    def _listen(self, listener: Callable[[bytes | None], None]) -> None:
        """`listener(response or None)` once given; the one consumer (not yet given)."""
        self._listener = listener

    def __await__(self) -> Generator[Any, None, bytes]:
        if not self._done:
            future = asyncio.get_running_loop().create_future()
            self._listen(functools.partial(_settle_future, future))
            yield from future.__await__()
        if self._response is None:
            raise asyncio.CancelledError()
        return self._response


def _settle_future(future: asyncio.Future, response: bytes | None) -> None:
    if not future.done():
        if response is None:
            future.cancel()
        else:
            future.set_result(response)


@dataclass
class ClientHandler:
    """What a node does on one client connection.

    answer: statements and admin requests (never `.auth`, never framing
    errors) -> response bytes, or an awaitable of them (a `PendingAnswer`:
    sent from the callback that gives it). closed: runs once,
    after the connection ended and its last answer is done (may return an
    awaitable, which is scheduled). idle_timeout: close the connection after
    this long without a request (None: never). window: how many answers may
    be awaited at once (pipelined requests; 1: one at a time).
    answer_alone: for a request that came alone to an idle connection (no
    answer awaited before it, no statement pipelined behind it: admin
    requests may be); None: `answer`. A server runs a lone writer's small
    insert on the spot with it.
    """

    answer: Answer
    closed: Callable[[], object] | None = None
    idle_timeout: float | None = None
    window: int = 1
    answer_alone: Answer | None = None


@dataclass
class ConnectionStats:
    """Counters every node keeps about its client connections."""

    started: float = field(default_factory=time.monotonic)
    open_connections: int = 0
    total_connections: int = 0
    refused_connections: int = 0
    requests: int = 0
    errors: int = 0
    # Set by `run_server`: the caps' counts and the alerts of a node at a cap.
    admission: Admission | None = None
    # Set by `run_server`: the limits on `.login` attempts (nodes/protocol/login.py).
    login: LoginGate | None = None
    # The connections with an outbox: clients reading slower than they are
    # answered, and what they hold (`unsent`), counted when asked.
    slow_readers: set[ClientConnection] = field(default_factory=set)

    def as_dict(self) -> dict:
        admission = self.admission
        in_memory = spilled = 0
        for connection in self.slow_readers:
            memory, on_disk = connection.unsent()
            in_memory += memory
            spilled += on_disk
        return {**(self.login.status() if self.login is not None else {}),
                "uptime_s": round(time.monotonic() - self.started, 3),
                "connections": self.open_connections,
                "connections_total": self.total_connections,
                "connections_refused": self.refused_connections,
                "requests": self.requests, "errors": self.errors,
                "slow_readers": len(self.slow_readers),
                "unsent_bytes_in_memory": in_memory, "unsent_bytes_spilled": spilled,
                **(admission.status() if admission is not None else {}),
                "alerts": admission.alerts() if admission is not None else []}


def admin_response(request: Request, node_id: str, kind: str,
                   status: Callable[[], dict]) -> bytes:
    """The answer to `.ping;` (PONG id kind, touches no data) or `.status;` (one JSON line)."""
    if request.admin == ADMIN_PING:
        return encode_message(f"PONG {node_id} {kind}")
    if request.admin == ADMIN_STATUS:
        return encode_message(orjson.dumps({"id": node_id, "kind": kind, **status()}).decode())
    text = request.text
    if request.admin in (ADMIN_AUTH, ADMIN_LOGIN):
        text = text.split(None, 1)[0]   # never echo a secret or a password
    return encode_error(f"Fangatahana tsy fantatra : {text}")


# What a slot's answer does once its turn comes.
_ANSWER, _AUTH_OK, _CLOSE, _BROKEN, _END = range(5)

# The response of a slot that sends none (_BROKEN, _END): never a real one,
# which always ends with END.
_NO_RESPONSE = b""


def _no_answer(request: Request) -> bytes:
    raise RuntimeError("no client handler: the connection is not open")


# A connection's handler until `connection_made` opens the node's one, and
# for good if the node refuses the connection (then closing: no request
# reaches it, and it has nothing to clean up).
_NO_HANDLER = ClientHandler(_no_answer)

ADDRESS_AT_CAP = (TOO_MANY_CONNECTIONS + " avy amin'io adiresy io (too many connections from "
                  "this address): connection closed, try again later")
UNAUTHENTICATED_EVICTED = (TOO_MANY_CONNECTIONS + " tsy voamarina (too many unauthenticated "
                           "connections): this one was the oldest; send `.auth <secret>;` first")
UNAUTHENTICATED_LATE = ("Tara loatra ny tenimiafina (no `.auth <secret>;` within {seconds:g} s "
                        "of connecting): connection closed")


def _refuse_crowded(request: Request) -> bytes:
    raise CloseConnection(encode_error(ADDRESS_AT_CAP))


# The handler of a connection refused for its address: any request is answered
# with the refusal (a client sees why), and it goes soon.
_CROWDED_HANDLER = ClientHandler(_refuse_crowded, idle_timeout=5.0)


class _Slot:
    """One request's place in the answer order: its response once known."""

    __slots__ = ("done", "response", "kind", "waiting")

    def __init__(self) -> None:
        self.done = False
        self.response = _NO_RESPONSE
        # _ANSWER: send it; _AUTH_OK: send it, authenticated from now on;
        # _CLOSE: send it, then close; _BROKEN: the handler failed, close;
        # _END: shutdown, close after the answers before it.
        self.kind = _ANSWER
        self.waiting: asyncio.Future | None = None


class ClientConnection(asyncio.Protocol):
    """One client connection: framing, answers in request order (pipelined), auth, idle timeout."""

    # Set by connection_made, which asyncio calls before any other callback
    # (and run_server calls `stop` and `abort` only on connections it opened).
    _transport: asyncio.Transport
    _watch: IdleWatch

    def __init__(self, open_client: Callable[[], ClientHandler | None], stats: ConnectionStats,
                 logger: logging.Logger, max_request_bytes: int, auth: AuthGuard | None,
                 connections: set[ClientConnection], admission: Admission | None = None):
        self._open_client = open_client
        self._stats = stats
        self._logger = logger
        self._framer = RequestFramer(max_request_bytes)
        self._auth = auth
        self._authenticated = auth is None or not auth.required
        self._connections = connections
        self._handler = _NO_HANDLER
        self._pending: deque[Request] = deque()
        self._answers: deque[_Slot] = deque()   # awaited (or done behind an awaited one), in order
        self._window = 1
        self._reading = True
        self._write_paused = False
        self._resume_due = False       # a `_resumed` callback is scheduled
        self._eof = False
        self._lost = False
        self._closing = False   # no more requests: close once the answers due are sent
        self._finished = False
        self._handing_over = False   # inside the handler's `answer`
        self._admission = admission
        self._address: str | None = None    # counted by the admission per address
        self._deadline: asyncio.TimerHandle | None = None   # unauthenticated: absolute
        self._quiet: asyncio.TimerHandle | None = None      # a stuck request's answer
        self._outbox: Outbox | None = None     # what a slow reader has not taken yet
        self._close_when_sent = False          # close once the outbox is empty
        self._stall: asyncio.TimerHandle | None = None
        self._sent_at = 0.0                    # the outbox last moved (loop time)
        # A `.login` being answered: nothing after it is handed over until it
        # is (the statements behind it run as the account it logs in).
        self._logging_in = False

    # -- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        set_nodelay(transport)
        self._watch = IdleWatch(self._transport, self._logger, self._peer)  # armed by _start_waiting
        admission = self._admission
        if admission is not None:
            address = self._peer_address()
            if not admission.admit(address):
                self._logger.debug("refused connection from %s: its address is at its cap",
                                   self._peer())
                self._handler = _CROWDED_HANDLER
                self._authenticated = True   # whatever it sends is refused: no handshake
                self._connections.add(self)
                self._start_waiting()
                return
            self._address = address
        if self._authenticated:
            self._open()
            return
        # Not handed to the node until authenticated: counted apart, and out
        # at a deadline that bytes do not move.
        loop = asyncio.get_running_loop()
        deadline = (admission.limits.unauthenticated_deadline_s if admission is not None
                    else AUTH_TIMEOUT_S)
        self._deadline = loop.call_later(deadline, self._too_late, deadline)
        if admission is not None:
            evicted = admission.enter_unauthenticated(self)
            if isinstance(evicted, ClientConnection):
                evicted._evict()
        self._connections.add(self)
        self._start_waiting()

    def _open(self) -> bool:
        """Hand the connection to the node (`open_client`); False when it refused it (closed)."""
        stats = self._stats
        refused = stats.refused_connections
        try:
            handler = self._open_client()
        except Exception:
            self._logger.exception("could not open a client session")
            handler = None
        if stats.refused_connections != refused and self._admission is not None:
            self._admission.node_refused()   # the node is at its own cap
        if handler is None:
            self._lost = True
            self._closing = True   # keeps _NO_HANDLER: nothing is handed to it
            self._transport.close()
            self._finish()
            return False
        self._handler = handler
        self._window = max(1, handler.window)
        self._connections.add(self)
        self._start_waiting()
        return True

    def _leave_unauthenticated(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._admission is not None:
            self._admission.leave_unauthenticated(self)

    def _too_late(self, seconds: float) -> None:
        self._deadline = None
        if self._authenticated or self._lost:
            return
        self._logger.debug("closing unauthenticated connection from %s: no `.auth` within %g s",
                           self._peer(), seconds)
        self._stats.errors += 1
        self._send(encode_error(UNAUTHENTICATED_LATE.format(seconds=seconds)))
        self._close()

    def _evict(self) -> None:
        """Closed to make room for a newer unauthenticated connection."""
        self._leave_unauthenticated()
        if self._lost or self._authenticated:
            return
        self._stats.errors += 1
        self._send(encode_error(UNAUTHENTICATED_EVICTED))
        self._close()

    def data_received(self, data: bytes) -> None:
        if self._closing:   # also a refused connection (no handler)
            return
        self._watch.stop_waiting()
        if self._quiet is not None:
            self._quiet.cancel()
            self._quiet = None
        framer = self._framer
        requests = framer.feed(data)
        if framer.ended_with_semicolon and framer.stuck:
            self._quiet = asyncio.get_running_loop().call_later(
                STUCK_REQUEST_QUIET_S, self._stuck_request)
        if len(requests) == 1 and not self._pending and not self._answers \
                and self._authenticated and self._reading and not self._write_paused \
                and not self._eof and requests[0].error is None:
            # The usual chunk: one request on an idle connection. What
            # `_pump` does for it, without the queue and the loop: it would
            # hand it over at once (the window has room; not `.auth`, which
            # comes only before authentication or is refused after it...
            request = requests[0]
            if request.admin != ADMIN_AUTH and request.admin != ADMIN_LOGIN:
                self._stats.requests += 1
                if self._answer(request, alone=True) and not self._closing:
                    # ... and an answer ready at once goes out now, leaving
                    # the connection idle again, waiting for the next request.
                    self._start_waiting()
                    return
                # Awaited (or closing: then flow control does nothing): with
                # nothing pending, reading on and no EOF, only a full window
                # gives flow control anything to do.
                if len(self._answers) >= self._window:
                    self._flow_control()
                return
        self._pending.extend(requests)
        self._pump()

    def _stuck_request(self) -> None:
        """No byte came since a `;` that fell inside a string or a comment: answer it."""
        self._quiet = None
        if self._closing or not self._framer.stuck:
            return
        if self._busy:
            # Answers are still due (or requests wait for them): the client
            # may be waiting on those, not stuck; look again later.
            self._quiet = asyncio.get_running_loop().call_later(
                STUCK_REQUEST_QUIET_S, self._stuck_request)
            return
        self._pending.append(self._framer.abandon())
        self._pump()

    def eof_received(self) -> bool:
        self._eof = True
        if self._busy:
            return True  # keep our side open to send the answers still due
        self._close()
        # Still sending to a slow reader: the outbox closes it once empty.
        return self._outbox is not None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        # Not written from here: uvloop (0.22) may call this from inside its
        # pass over queued writes, and a write made then can be left in the
        # transport's buffer with no pass to come: the last bytes of a big
        # answer then never leave (seen as a client waiting forever for an
        # answer's end; tests/nodes/test_serving_resume.py). From a callback
        # of its own, a write is queued like any other.
        self._write_paused = False
        if not self._resume_due:
            self._resume_due = True
            asyncio.get_running_loop().call_soon(self._resumed)

    def _resumed(self) -> None:
        self._resume_due = False
        if self._write_paused or self._lost:
            return
        if self._outbox is not None:
            self._drain()
            if self._outbox is not None:
                return   # paused again: the client is still slow
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._closing = True
        self._pending.clear()
        if exc is not None:
            self._logger.debug("connection from %s ended: %s", self._peer(), exc)
        self._watch.cancel()
        self._leave_unauthenticated()
        if self._quiet is not None:
            self._quiet.cancel()
            self._quiet = None
        self._drop_outbox()
        for slot in self._answers:
            waiting = slot.waiting
            if waiting is not None and not isinstance(waiting, asyncio.Task):
                waiting.cancel()   # nobody will read it: the node may skip the work
        if not self._answers:
            self._finish()

    # -- answering

    @property
    def _busy(self) -> bool:
        return bool(self._answers) or bool(self._pending)

    def _pump(self) -> None:
        """Hand pending requests to the handler while the window has room (and writing is not paused)."""
        while self._pending and not self._closing and not self._write_paused \
                and len(self._answers) < self._window and not self._logging_in:
            if self._pending[0].admin == ADMIN_LOGIN and self._authenticated:
                if self._answers:
                    break  # a login waits for every earlier answer, like the handshake
                request = self._pending.popleft()
                self._stats.requests += 1
                slot = self._slot()
                self._logging_in = True
                slot.waiting = asyncio.ensure_future(self._login(request))
                slot.waiting.add_done_callback(functools.partial(self._login_done, slot))
                break
            if self._pending[0].admin == ADMIN_AUTH or not self._authenticated:
                if self._answers:
                    break  # the handshake waits for every earlier answer
                request = self._pending.popleft()
                self._stats.requests += 1
                slot = self._slot()
                slot.waiting = asyncio.ensure_future(self._authenticate(request))
                slot.waiting.add_done_callback(functools.partial(self._auth_done, slot))
                break  # nothing more until the verdict (it may close the connection)
            request = self._pending.popleft()
            self._stats.requests += 1
            if request.error is not None:
                self._stats.errors += 1
                self._ready(encode_message(request.error))
                continue
            # Alone: no answer awaited before it, no statement behind it (an
            # admin request may be: the balancer's `.versions` behind a write).
            alone = (self._handler.answer_alone is not None and not self._answers
                     and not any(waiting.admin is None for waiting in self._pending))
            if not self._answer(request, alone) and self._closing:
                break
        self._flow_control()

    def _answer(self, request: Request, alone: bool = False) -> bool:
        """Hand one request to the handler; True when its answer was sent at once.

        Otherwise its answer is awaited, or waits its turn, or closes the
        connection (`_closing` then says so). `alone`: it came alone to an
        idle connection (`ClientHandler.answer_alone`).
        """
        self._handing_over = True
        handler = self._handler
        try:
            if alone and handler.answer_alone is not None:
                result = handler.answer_alone(request)
            else:
                result = handler.answer(request)
        except CloseConnection as close:
            self._ready(close.response, _CLOSE)
            return False
        except Exception:
            self._logger.exception("connection handler failed")
            self._ready(_NO_RESPONSE, _BROKEN)
            return False
        finally:
            self._handing_over = False
        if type(result) is bytes:
            if not self._answers:
                self._respond(result)
                return True
            self._ready(result)
        else:
            self._await(result)
        return False

    def _slot(self) -> _Slot:
        slot = _Slot()
        self._answers.append(slot)
        return slot

    def _ready(self, response: bytes, kind: int = _ANSWER) -> None:
        """An answer known at once: sent now, unless earlier answers are still awaited."""
        if kind != _ANSWER:
            self._closing = True  # nothing after this request is handed over
            self._pending.clear()
        if not self._answers:
            self._deliver(response, kind)
            return
        slot = self._slot()
        slot.done, slot.response, slot.kind = True, response, kind

    def _await(self, awaitable) -> None:
        slot = self._slot()
        if type(awaitable) is PendingAnswer:
            given = functools.partial(self._given, slot)
            if awaitable.done():   # given already: in its turn, as a done future's callback
                asyncio.get_running_loop().call_soon(given, awaitable._response)
            else:
                awaitable._listen(given)
        elif isinstance(awaitable, asyncio.Future):  # e.g. the engine thread's answer
            slot.waiting = awaitable
            awaitable.add_done_callback(functools.partial(self._future_done, slot))
        else:
            # A coroutine: its task records the answer as soon as it has it
            # (no extra turn of the loop for a done-callback).
            slot.waiting = asyncio.ensure_future(self._complete(slot, awaitable))

    async def _complete(self, slot: _Slot, answer: Awaitable[bytes]) -> None:
        try:
            response = await answer
        except CloseConnection as close:
            self._settle(slot, close.response, _CLOSE)
        except asyncio.CancelledError:
            self._settle(slot, _NO_RESPONSE, _BROKEN)
            raise
        except Exception:
            self._logger.exception("connection handler failed")
            self._settle(slot, _NO_RESPONSE, _BROKEN)
        else:
            self._settle(slot, response)

    def _given(self, slot: _Slot, response: bytes | None) -> None:
        """A `PendingAnswer` is given: sent now, from the giver's callback, when that is safe."""
        kind = _ANSWER
        if response is None:
            response, kind = _NO_RESPONSE, _BROKEN
        if self._lost or self._pending or self._handing_over:
            # Settling would hand pending requests to the handler, run the
            # node's cleanup, or re-enter a handler still running: from a
            # callback of its own instead, as a future's would be.
            asyncio.get_running_loop().call_soon(self._settle, slot, response, kind)
        else:
            self._settle(slot, response, kind)

    def _future_done(self, slot: _Slot, waiting: asyncio.Future) -> None:
        if waiting.cancelled():
            self._settle(slot, _NO_RESPONSE, _BROKEN)
            return
        error = waiting.exception()
        if isinstance(error, CloseConnection):
            self._settle(slot, error.response, _CLOSE)
        elif error is not None:
            self._logger.error("connection handler failed", exc_info=error)
            self._settle(slot, _NO_RESPONSE, _BROKEN)
        else:
            self._settle(slot, waiting.result())

    async def _authenticate(self, request: Request):
        return await answer_auth(self._auth, request, self._authenticated, self._peer())

    async def _login(self, request: Request) -> tuple[bytes, int]:
        """A `.login` handed to the node within the node's login limits: (answer, how to send it).

        A refused login (wrong name or password) is counted against the
        client's address, logged with the name (never the password), answered
        after a short delay, and closes the connection.
        """
        gate = self._stats.login
        peer = self._peer()
        if gate is not None:
            refusal, wait = gate.admit(peer)
            if refusal is not None:
                return refusal, _CLOSE
            if wait:
                await asyncio.sleep(wait)
        try:
            result = self._handler.answer(request)
            response = result if type(result) is bytes else await result  # type: ignore[misc]
        except CloseConnection as close:
            return close.response, _CLOSE
        if _answer_message(response).startswith(LOGIN_REFUSED):
            if gate is not None:
                gate.refused(peer, login_name(request))
            await asyncio.sleep(FAILED_AUTH_DELAY_S)
            return response, _CLOSE
        return response, _ANSWER

    def _login_done(self, slot: _Slot, waiting: asyncio.Future) -> None:
        self._logging_in = False
        if waiting.cancelled() or waiting.exception() is not None:
            if not waiting.cancelled():
                self._logger.error("login failed", exc_info=waiting.exception())
            self._settle(slot, _NO_RESPONSE, _BROKEN)
            return
        response, kind = waiting.result()
        self._settle(slot, response, kind)

    def _auth_done(self, slot: _Slot, waiting: asyncio.Future) -> None:
        if waiting.cancelled() or waiting.exception() is not None:
            if not waiting.cancelled():
                self._logger.error("authentication failed", exc_info=waiting.exception())
            self._settle(slot, _NO_RESPONSE, _BROKEN)
            return
        verdict = waiting.result()
        self._settle(slot, verdict.response, _CLOSE if verdict.close else _AUTH_OK)

    def _settle(self, slot: _Slot, response: bytes, kind: int = _ANSWER) -> None:
        """An awaited answer is known: send every answer now due, in order."""
        slot.done, slot.response, slot.kind, slot.waiting = True, response, kind, None
        answers = self._answers
        while answers and answers[0].done:
            head = answers.popleft()
            if not self._deliver(head.response, head.kind):
                answers.clear()  # closing: the answers after it are never sent
                break
        if self._lost:
            if not answers:
                self._finish()
        else:
            self._pump()

    def _deliver(self, response: bytes, kind: int) -> bool:
        """Send one answer in its turn; False when the connection closes after it."""
        if kind == _ANSWER:
            self._respond(response)
            return True
        if kind == _AUTH_OK:
            self._send(response)
            if not self._authenticated:
                self._authenticated = True
                self._leave_unauthenticated()
                if self._handler is _NO_HANDLER:
                    return self._open()
            return True
        if kind == _CLOSE:
            self._close_with(response)
        else:
            self._close()
        return False

    def _respond(self, response: bytes) -> None:
        if response_is_error(response):
            self._stats.errors += 1
        self._send(response)

    def _send(self, data: bytes) -> None:
        if self._lost or self._transport.is_closing():
            return
        if len(data) <= CHUNK_BYTES and self._outbox is None:
            self._transport.write(data)
            return
        self._stream(data)

    def _stream(self, data: bytes) -> None:
        """A big answer, or one behind a slow reader's: a chunk at a time, the rest in the outbox."""
        outbox = self._outbox
        if outbox is not None:
            outbox.add(data)
            return
        transport = self._transport
        at, size = 0, len(data)
        while at < size and not self._write_paused:
            # A slice is a copy: the transport never holds a view pinning all of `data`.
            transport.write(data[at:at + CHUNK_BYTES])
            at += CHUNK_BYTES
        if at < size:
            outbox = self._outbox = Outbox()
            self._stats.slow_readers.add(self)
            outbox.add(memoryview(data)[at:])
            self._sent_at = asyncio.get_running_loop().time()
            self._arm_stall()
        if size >= RELEASE_AFTER_BYTES:
            # Once this answer's bytes are dropped (after this callback).
            asyncio.get_running_loop().call_soon(release_free_memory)

    def _drain(self) -> None:
        """Send what waits while the transport takes it; the outbox goes once empty."""
        outbox = self._outbox
        assert outbox is not None
        transport = self._transport
        self._sent_at = asyncio.get_running_loop().time()
        while not self._write_paused:
            chunk = outbox.take()
            if chunk is None:
                self._drop_outbox()
                if self._close_when_sent and not transport.is_closing():
                    transport.close()
                return
            transport.write(chunk)

    def _drop_outbox(self) -> None:
        if self._outbox is not None:
            self._outbox.close()
            self._outbox = None
            self._stats.slow_readers.discard(self)
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def unsent(self) -> tuple[int, int]:
        """(bytes held in memory, bytes spilled to disk) this client has not read yet.

        In memory: the outbox's and the transport's buffer; the kernel's
        socket buffers are not this process's.
        """
        outbox = self._outbox
        if outbox is None or self._lost:
            return 0, 0
        in_memory = outbox.in_memory + self._transport.get_write_buffer_size()
        return in_memory, len(outbox) - outbox.in_memory

    def _arm_stall(self) -> None:
        self._stall = asyncio.get_running_loop().call_at(self._sent_at + SEND_STALL_S,
                                                         self._stalled)

    def _stalled(self) -> None:
        self._stall = None
        if self._outbox is None:
            return
        if asyncio.get_running_loop().time() < self._sent_at + SEND_STALL_S:
            self._arm_stall()
            return
        self._logger.info("dropping connection from %s: it read nothing for %g s while %d "
                          "bytes waited for it", self._peer(), SEND_STALL_S, len(self._outbox))
        self.abort()

    def _close_with(self, response: bytes) -> None:
        self._stats.errors += 1
        self._send(response)
        self._close()

    def _close(self) -> None:
        """No more requests; close once what is written is sent (FIN after the data)."""
        self._closing = True
        self._pending.clear()
        if self._outbox is not None:
            self._close_when_sent = True   # after what a slow reader still has to take
            return
        if not self._transport.is_closing():
            self._transport.close()

    def _flow_control(self) -> None:
        if self._closing:
            return
        if self._pending or len(self._answers) >= self._window:
            if self._reading:
                self._reading = False
                self._transport.pause_reading()
            return
        if self._eof:
            if not self._answers:
                self._close()
            return
        if not self._reading:
            self._reading = True
            self._transport.resume_reading()
        if not self._answers:
            self._start_waiting()

    def _start_waiting(self) -> None:
        # (Unauthenticated, it has no handler yet, hence no idle timeout:
        # its absolute deadline closes it.)
        self._watch.start_waiting(self._handler.idle_timeout)

    def _finish(self) -> None:
        """The connection is gone and nothing is awaited any more: run the node's cleanup once."""
        if self._finished:
            return
        self._finished = True
        self._connections.discard(self)
        self._leave_unauthenticated()
        if self._address is not None and self._admission is not None:
            self._admission.release(self._address)
            self._address = None
        handler = self._handler
        if handler.closed is not None:   # never _NO_HANDLER's
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
        return bool(self._answers)

    def stop(self) -> None:
        """Shutdown: no more requests; the answers being awaited (if any) are still sent."""
        if not self._answers:
            self._close()
        else:
            self._closing = True
            self._pending.clear()
            end = self._slot()
            end.done, end.kind = True, _END

    def abort(self) -> None:
        self._drop_outbox()
        self._transport.abort()

    def _peer(self) -> str:
        peer = self._transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            return f"{peer[0]}:{peer[1]}"
        # A Unix socket's client has no address (its name is empty): a local peer.
        return str(peer) or UNIX_SOCKET_PEER

    def _peer_address(self) -> str:
        peer = self._transport.get_extra_info("peername")
        return str(peer[0]) if isinstance(peer, tuple) else (str(peer) or UNIX_SOCKET_PEER)


def _answer_message(response: bytes) -> str:
    """The message line of one encoded response ("" if there is none)."""
    at = response.rfind(b"RESULT_MESSAGE\n")
    if at < 0:
        return ""
    start = at + len(b"RESULT_MESSAGE\n")
    end = response.find(b"\n", start)
    return response[start:end if end >= 0 else len(response)].decode("utf-8", "replace")


async def run_server(open_client: Callable[[], ClientHandler | None], host: str, port: int,
                     logger: logging.Logger, stats: ConnectionStats, *,
                     max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                     auth: AuthGuard | None = None,
                     on_stop: Callable[[], Awaitable[None]] | None = None,
                     stop_grace: float = 5.0,
                     port_file: str | None = None,
                     sock: socket.socket | None = None,
                     limits: ConnectionLimits = DEFAULT_LIMITS,
                     ssl_context: ssl.SSLContext | None = None,
                     unix_socket: str | None = None) -> None:
    """Serve client connections until SIGTERM/SIGINT, then stop gracefully.

    `open_client` runs for each accepted connection (None refuses it: the
    connection is closed). `port` 0 takes any free port; the port listened
    on is logged and, with `port_file`, written there once listening (`sock`:
    an already bound socket to listen on instead of `host`/`port`). At
    stop: no new connections; idle ones are closed; an answer being awaited
    is still sent (up to `stop_grace` seconds, then its connection is
    aborted); then `on_stop` runs. `limits`: the caps per address and on
    unauthenticated connections (nodes/runtime/admission.py); their counts and
    alerts appear in `stats`. `ssl_context`: every connection over TLS
    (nodes/protocol/tls.py `server_context`). `unix_socket`: a path where it
    also listens, for the nodes of this machine (nodes/runtime/unix_socket.py:
    mode 0600, a stale file replaced, removed at stop; UnixSocketRefused,
    before anything listens, when another node may be there; TCP only when
    the path holds something else), with the same handler,
    secret, caps and idle rules; never with TLS (a Unix socket carries none).
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    connections: set[ClientConnection] = set()
    admission = stats.admission = Admission(limits)
    if stats.login is None:
        stats.login = LoginGate(logger)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    def new_connection() -> ClientConnection:
        return ClientConnection(open_client, stats, logger, max_request_bytes, auth, connections,
                                admission)

    if unix_socket is not None and ssl_context is not None:
        raise UnixSocketRefused(f"unix socket {unix_socket}: this node uses TLS, which a Unix "
                                f"socket does not carry: every link of a TLS node stays TLS")
    # Checked and bound first: a refused path stops the node before anything listens.
    unix = bind_or_keep_tcp(unix_socket, logger) if unix_socket is not None else None
    servers: list[asyncio.AbstractServer] = []
    try:
        if sock is not None:
            server = await loop.create_server(new_connection, sock=sock, backlog=512,
                                              ssl=ssl_context)
        else:
            server = await loop.create_server(new_connection, host, port, reuse_address=True,
                                              backlog=512, ssl=ssl_context)
        servers.append(server)
        if unix is not None:
            servers.append(await loop.create_unix_server(new_connection, sock=unix.sock,
                                                         backlog=512))
        # With port 0 the system chose it; the first socket's is the one reported
        # (a host naming several addresses would get one ephemeral port each).
        port = server.sockets[0].getsockname()[1]
        logger.info("listening on %s:%d%s", host, port,
                    f" and on the unix socket {unix.path}" if unix is not None else "")
        if port_file is not None:
            write_port_file(port_file, port)
        await stopping.wait()
        logger.info("stopping")
        for listening in servers:
            listening.close()
        if unix is not None:
            unix.remove()   # new connections fall back to TCP, or find the next node's file
        for connection in list(connections):
            connection.stop()
        deadline = loop.time() + stop_grace
        while any(connection.answering for connection in connections) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(connections):
            if connection.answering:
                connection.abort()
        for listening in servers:
            await listening.wait_closed()
    finally:
        for listening in servers:
            listening.close()
        if unix is not None:
            unix.remove()
            unix.sock.close()
    if on_stop is not None:
        await on_stop()
    logger.info("stopped")
