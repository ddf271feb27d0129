"""Plumbing shared by every node process (server, balancer, proxy cache).

- command line: `--id`, `--host` (127.0.0.1), `--port`, `--log-file`,
  `--topology FILE` (fill what was not given from the node's entry);
- logging: timestamped lines to stderr, or a size-bounded rotating file;
- sockets: TCP_NODELAY, one write per response, upstream connections with
  timeouts (`UpstreamConnection`);
- the request loop of one client connection (`serve_connection`): framing,
  idle timeout, framing errors answered, nothing buffered without bound;
- admin requests every node answers the same way (`admin_response`);
- `run_server`: an asyncio TCP server that stops gracefully on SIGTERM/SIGINT;
- `run_node`: runs a node's main coroutine on uvloop when it is installed
  (about half the per-hop latency of asyncio's own loop), else on asyncio's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from engine.errors import ERROR_PREFIX
from nodes.auth import AuthGuard, answer_auth
from nodes.protocol import (ADMIN_AUTH, ADMIN_PING, ADMIN_STATUS, DEFAULT_MAX_REQUEST_BYTES,
                            ProtocolError, Request, RequestFramer, Response, ResponseDecoder,
                            auth_request, encode_error, encode_message, response_is_error)

DEFAULT_HOST = "127.0.0.1"
READ_CHUNK = 256 * 1024
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3


# --------------------------------------------------------------------------
# Command line


def node_argument_parser(description: str, default_port: int | None = None) -> argparse.ArgumentParser:
    """An argument parser with the options every node takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--id", required=True, help="node name (as in topology.yaml)")
    parser.add_argument("--host", default=None, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=None,
                        help=f"TCP port to listen on{f' (default {default_port})' if default_port else ''}")
    parser.add_argument("--log-file", default=None,
                        help="write logs to this file (size-bounded, rotated) instead of stderr")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--topology", default=None,
                        help="topology.yaml: take unset options from this node's entry")
    parser.set_defaults(default_port=default_port)
    return parser


def parse_address(text: str) -> tuple[str, int]:
    """`host:port` -> (host, port); raises ValueError with a clear sentence."""
    host, separator, port_text = text.rpartition(":")
    if not separator or not host:
        raise ValueError(f"address {text!r} is not host:port")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} in {text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} in {text!r} is out of range")
    return host, port


def load_topology_node(args: argparse.Namespace) -> dict:
    """This node's entry of --topology (or {}), with host/port filled into args.

    Relative `data` paths are resolved against the topology file's folder;
    `upstream` / `backends` naming other nodes are turned into `host:port`.
    """
    entry: dict = {}
    if args.topology:
        import yaml  # only needed with --topology

        path = Path(args.topology)
        document = yaml.safe_load(path.read_text()) or {}
        nodes = document.get("nodes") or {}
        if args.id not in nodes:
            raise SystemExit(f"{path}: no node {args.id!r} under nodes:")
        entry = dict(nodes[args.id])
        if isinstance(entry.get("data"), str):
            entry["data"] = str((path.parent / entry["data"]).resolve())

        def address(name: str) -> str:
            other = nodes.get(name)
            if not isinstance(other, dict):
                return name
            return f"{other.get('host', DEFAULT_HOST)}:{other['port']}"

        if isinstance(entry.get("upstream"), str):
            entry["upstream"] = address(entry["upstream"])
        if isinstance(entry.get("backends"), list):
            entry["backends"] = [f"{b}={address(b)}" for b in entry["backends"]]
    if args.host is None:
        args.host = entry.get("host", DEFAULT_HOST)
    if args.port is None:
        args.port = entry.get("port", args.default_port)
    if args.port is None:
        raise SystemExit("--port is required")
    return entry


# --------------------------------------------------------------------------
# Logging


def setup_logging(node_id: str, log_file: str | None = None, level: str = "INFO") -> logging.Logger:
    """The node's logger: timestamped lines, to a rotating file or stderr."""
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        f"%(asctime)s %(levelname)s {node_id}: %(message)s"))
    logger = logging.getLogger(f"tahiry.{node_id}")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return logger


# --------------------------------------------------------------------------
# Sockets


def set_nodelay(writer: asyncio.StreamWriter | asyncio.BaseTransport) -> None:
    """Disable Nagle's algorithm: responses are small and latency-bound (writer or transport)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
    """One response, one write call (hence one send when the buffer is empty)."""
    writer.write(data)
    await writer.drain()


async def close_writer(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), timeout=1.0)
    except (OSError, asyncio.TimeoutError, ConnectionError):
        pass


class UpstreamError(Exception):
    """The upstream node could not be reached or broke the protocol; one sentence."""


class NotSent(UpstreamError):
    """The request was not sent at all (the connection was already closed)."""


class ResponseReceiver(asyncio.Protocol):
    """The receiving side of a connection to an upstream node: responses decoded as bytes arrive.

    A bare asyncio Protocol (no StreamReader buffer, no reader task): each
    chunk goes straight into the `ResponseDecoder`. `expect(count)` returns a
    future resolved with the next `count` responses, or failed with
    UpstreamError when the connection ends, breaks the protocol or sends a
    response nobody asked for. After a failure the connection is aborted.
    """

    def __init__(self, decode_relations: bool = False) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._decoder = ResponseDecoder(decode_relations)
        self._raw_only = not decode_relations
        self._waiter: asyncio.Future | None = None
        self._wanted = 0
        self._responses: list[Response] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def expect(self, count: int) -> asyncio.Future:
        waiter = asyncio.get_running_loop().create_future()
        self._waiter, self._wanted, self._responses = waiter, count, []
        return waiter

    def data_received(self, data: bytes) -> None:
        single = None
        if self._raw_only and not self._decoder.pending:
            single = single_raw_response(data)
        try:
            responses = [single] if single is not None else self._decoder.feed(data)
        except ProtocolError as error:
            self.fail(f"protocol error: {error}")
            return
        if not responses:
            return
        waiter = self._waiter
        if waiter is None or waiter.done():
            self.fail("protocol error: a response nobody asked for")
            return
        self._responses.extend(responses)
        if len(self._responses) >= self._wanted:
            if len(self._responses) > self._wanted or self._decoder.pending:
                self.fail("protocol error: more responses than requests")
                return
            self._waiter = None
            waiter.set_result(self._responses)

    def eof_received(self) -> bool:
        self.fail("connection closed")
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail((_reason(exc) if exc is not None else "") or "connection closed")

    def fail(self, reason: str) -> None:
        """Fail the waiting request (if any) with UpstreamError(reason) and abort the connection."""
        self.closed = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(UpstreamError(reason))
        if self.transport is not None:
            self.transport.abort()


_PAGE_1_OF_1 = b"RELATION_JSON_PAGE 1/1\n"
_RELATION_END_AND_MESSAGE = b"RELATION_JSON_END\nRESULT_MESSAGE\n"
_MESSAGE_HEADER = b"RESULT_MESSAGE\n"
_END_LINE = b"\nEND\n"


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
        message_start, has_relation = len(_MESSAGE_HEADER), False
    elif data.startswith(_PAGE_1_OF_1):
        json_end = data.find(b"\n", len(_PAGE_1_OF_1))
        if json_end < 0 or not data.startswith(_RELATION_END_AND_MESSAGE, json_end + 1):
            return None
        message_start, has_relation = json_end + 1 + len(_RELATION_END_AND_MESSAGE), True
    else:
        return None
    message_end = len(data) - len(_END_LINE)
    if message_end < message_start or data.find(b"\n", message_start, message_end) >= 0 \
            or data[message_end - 1:message_end] == b"\r":
        return None
    message = data[message_start:message_end].decode("utf-8", "replace")
    return Response(ok=not message.startswith(ERROR_PREFIX), message=message, relation=None,
                    raw=data, has_relation=has_relation)


def _expire(waiter: asyncio.Future, timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamError(f"no answer within {timeout:g}s"))


async def open_upstream(host: str, port: int, timeout: float,
                        decode_relations: bool = False) -> tuple[asyncio.Transport, ResponseReceiver]:
    """Connect (bounded by `timeout`) with TCP_NODELAY; OSError / TimeoutError on failure."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        transport, receiver = await loop.create_connection(
            lambda: ResponseReceiver(decode_relations), host, port)
    set_nodelay(transport)
    return transport, receiver  # type: ignore[return-value]


async def exchange(transport: asyncio.Transport, receiver: ResponseReceiver, data: bytes,
                   count: int, timeout: float) -> list[Response]:
    """Send `data` (one write) and wait up to `timeout` for `count` responses.

    UpstreamError on any failure; the connection is then aborted. A timer
    rather than asyncio.timeout: the cheapest bound on the wait.
    """
    if receiver.closed or transport.is_closing():
        raise NotSent("connection already closed")
    waiter = receiver.expect(count)
    transport.write(data)
    if transport.is_closing():
        # The send itself failed (reset by a dead peer): nothing arrived.
        if waiter.done():
            waiter.exception()  # retrieved: replaced by the error below
        receiver.fail("connection reset before sending")
        raise NotSent("connection reset before sending")
    timer = asyncio.get_running_loop().call_later(timeout, _expire, waiter, timeout)
    try:
        return await waiter
    except UpstreamError as error:
        receiver.fail(str(error))
        raise
    finally:
        timer.cancel()


class UpstreamConnection:
    """One connection to an upstream node, one statement at a time.

    `request(wire_bytes)` sends a statement and returns its decoded
    `Response`. Any failure (connect, timeout, EOF, protocol) raises
    UpstreamError and closes the connection; the next request reconnects.
    """

    def __init__(self, host: str, port: int, connect_timeout: float = 2.0,
                 request_timeout: float = 60.0, decode_relations: bool = False,
                 secret: str | None = None):
        self.host, self.port = host, port
        self.secret = secret  # sent as `.auth <secret>;` on every new connection
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.decode_relations = decode_relations
        self._transport: asyncio.Transport | None = None
        self._receiver: ResponseReceiver | None = None

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
            self._transport, self._receiver = await open_upstream(
                self.host, self.port, self.connect_timeout, self.decode_relations)
        except (OSError, asyncio.TimeoutError) as error:
            raise UpstreamError(f"tsy tafiditra amin'ny {self.host}:{self.port} ({_reason(error)})") from None
        if self.secret:
            await self._authenticate()

    async def _authenticate(self) -> None:
        try:
            response = (await exchange(self._transport, self._receiver, auth_request(self.secret),
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
        try:
            return (await exchange(self._transport, self._receiver, data, 1,
                                   self.request_timeout))[0]
        except UpstreamError as error:
            await self.close()
            raise UpstreamError(f"tapaka ny fifandraisana amin'ny {self.host}:{self.port} ({error})") from None

    async def close(self) -> None:
        transport, self._transport, self._receiver = self._transport, None, None
        if transport is not None:
            transport.close()  # flushes what is buffered, then FIN


def _reason(error: BaseException) -> str:
    if isinstance(error, asyncio.TimeoutError):
        return "timeout"
    return str(error) or type(error).__name__


# --------------------------------------------------------------------------
# Admin requests and counters


def admin_response(request: Request, node_id: str, kind: str,
                   status: Callable[[], dict]) -> bytes:
    """The answer to `.ping;` (PONG id kind, touches no data) or `.status;` (one JSON line)."""
    if request.admin == ADMIN_PING:
        return encode_message(f"PONG {node_id} {kind}")
    if request.admin == ADMIN_STATUS:
        return encode_message(orjson.dumps({"id": node_id, "kind": kind, **status()}).decode())
    return encode_error(f"Fangatahana tsy fantatra : {request.text}")


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


# --------------------------------------------------------------------------
# The request loop of one client connection

Handler = Callable[[Request], Awaitable[bytes]]


class CloseConnection(Exception):
    """Raised by a handler: send `response`, then close the connection."""

    def __init__(self, response: bytes):
        super().__init__("close")
        self.response = response


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           handle: Handler, stats: ConnectionStats, logger: logging.Logger,
                           idle_timeout: float | None = None,
                           max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                           auth: AuthGuard | None = None) -> None:
    """Read requests until EOF or idle timeout; answer each, in order.

    `auth`: when it requires a secret, the first request must be a matching
    `.auth`, else the connection is answered with an error and closed
    (nodes/auth.py); `.auth` itself never reaches `handle`.

    `handle` gets statements and admin requests and returns the response
    bytes; framing errors are answered here. Responses are written one by
    one (one write each) as soon as they are ready. An unfinished statement
    at EOF is not run: a client that died mid-statement must not have half a
    statement executed.
    """
    set_nodelay(writer)
    framer = RequestFramer(max_request_bytes)
    authenticated = auth is None or not auth.required
    watch = _IdleWatch(writer, logger)
    try:
        while True:
            watch.start_waiting(idle_timeout if authenticated else min(
                idle_timeout or auth.first_timeout, auth.first_timeout))
            chunk = await reader.read(READ_CHUNK)
            watch.stop_waiting()
            if not chunk:
                return
            for request in framer.feed(chunk):
                stats.requests += 1
                if request.admin == ADMIN_AUTH or not authenticated:
                    verdict = await answer_auth(auth, request, authenticated, _peer(writer))
                    writer.write(verdict.response)
                    await writer.drain()
                    if verdict.close:
                        stats.errors += 1
                        return
                    authenticated = True
                    continue
                if request.error is not None:
                    stats.errors += 1
                    response = encode_message(request.error)
                else:
                    try:
                        response = await handle(request)
                    except CloseConnection as close:
                        stats.errors += 1
                        writer.write(close.response)
                        await writer.drain()
                        return
                    if response_is_error(response):
                        stats.errors += 1
                writer.write(response)
                await writer.drain()
    except (ConnectionError, OSError) as error:
        logger.debug("connection from %s ended: %s", _peer(writer), error)
    finally:
        watch.cancel()
        await close_writer(writer)


class _IdleWatch:
    """Closes a connection that waited for its next request longer than its timeout.

    One timer per connection, re-armed only when it fires, instead of a
    timeout scheduled and cancelled around every read: the request loop only
    notes when it starts and stops waiting. On expiry the transport is
    closed, so the pending read sees EOF and the loop ends normally.
    """

    def __init__(self, writer: asyncio.StreamWriter, logger: logging.Logger) -> None:
        self._writer = writer
        self._logger = logger
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
        self._logger.info("closing idle connection from %s", _peer(self._writer))
        self._writer.transport.close()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


# --------------------------------------------------------------------------
# Running a server until SIGTERM


def run_node(main: Coroutine, logger: logging.Logger | None = None):
    """Run a node process's main coroutine to completion; returns its result.

    Every node process goes through here, so the choice of event loop is made
    in one place: uvloop when it can be imported (it is pinned in
    pyproject.toml), asyncio's default loop otherwise. Both support
    everything the nodes use (signal handlers, asyncio.timeout, threads
    resolving futures with call_soon_threadsafe).
    """
    try:
        import uvloop
    except ImportError:
        uvloop = None
    if logger is not None:
        logger.info("event loop: %s", "uvloop" if uvloop is not None else "asyncio")
    if uvloop is None:
        return asyncio.run(main)
    return uvloop.run(main)


async def run_server(client_connected: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
                     host: str, port: int, logger: logging.Logger,
                     on_stop: Callable[[], Awaitable[None]] | None = None,
                     stop_grace: float = 5.0) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully.

    Stops listening, lets connections finish the statement they are running
    (up to stop_grace seconds; idle ones are cancelled), then calls on_stop.
    """
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    connections: set[asyncio.Task] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await client_connected(reader, writer)
        except asyncio.CancelledError:
            # Only shutdown cancels a connection task. Ending the task
            # normally keeps asyncio's stream callback from logging the
            # cancellation as an error traceback in the node's log.
            await close_writer(writer)
        except Exception:  # a bug in one connection must not take the node down
            logger.exception("connection handler failed")
            await close_writer(writer)
        finally:
            connections.discard(task)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    server = await asyncio.start_server(tracked, host, port, limit=READ_CHUNK,
                                        reuse_address=True, backlog=512)
    logger.info("listening on %s:%d", host, port)
    async with server:
        await stopping.wait()
        logger.info("stopping")
        server.close()
        for task in list(connections):
            task.cancel()
        if connections:
            await asyncio.wait(list(connections), timeout=stop_grace)
    if on_stop is not None:
        await on_stop()
    logger.info("stopped")
