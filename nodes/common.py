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


def set_nodelay(writer: asyncio.StreamWriter) -> None:
    """Disable Nagle's algorithm: responses are small and latency-bound."""
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
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = ResponseDecoder(decode_relations)

    @property
    def connected(self) -> bool:
        return self._writer is not None

    @property
    def usable(self) -> bool:
        """Connected and not closed by the peer (a dead peer's FIN is seen before sending)."""
        return (self._writer is not None and not self._writer.is_closing()
                and self._reader is not None and not self._reader.at_eof())

    async def connect(self) -> None:
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, limit=READ_CHUNK),
                self.connect_timeout)
        except (OSError, asyncio.TimeoutError) as error:
            raise UpstreamError(f"tsy tafiditra amin'ny {self.host}:{self.port} ({_reason(error)})") from None
        set_nodelay(self._writer)
        self._decoder = ResponseDecoder(self.decode_relations)
        if self.secret:
            await self._authenticate()

    async def _authenticate(self) -> None:
        try:
            response = await asyncio.wait_for(self._exchange(auth_request(self.secret)),
                                              self.connect_timeout)
        except (OSError, asyncio.TimeoutError, ProtocolError, UpstreamError, ValueError) as error:
            await self.close()
            raise UpstreamError(f"tsy tafiditra amin'ny {self.host}:{self.port} ({_reason(error)})") from None
        if not response.ok:
            await self.close()
            raise UpstreamError(f"nolavin'ny {self.host}:{self.port} : {response.message}")

    async def request(self, data: bytes) -> Response:
        if self._writer is None:
            await self.connect()
        try:
            # asyncio.timeout, not wait_for: no extra task per request (a few
            # tens of microseconds on every hop of the chain).
            async with asyncio.timeout(self.request_timeout):
                return await self._exchange(data)
        except (OSError, asyncio.TimeoutError, ProtocolError, UpstreamError) as error:
            await self.close()
            raise UpstreamError(f"tapaka ny fifandraisana amin'ny {self.host}:{self.port} ({_reason(error)})") from None

    async def _exchange(self, data: bytes) -> Response:
        assert self._reader is not None and self._writer is not None
        self._writer.write(data)
        await self._writer.drain()
        while True:
            chunk = await self._reader.read(READ_CHUNK)
            if not chunk:
                raise UpstreamError("connection closed")
            responses = self._decoder.feed(chunk)
            if responses:
                if len(responses) > 1 or self._decoder.pending:
                    raise ProtocolError("more than one response to one statement")
                return responses[0]

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            await close_writer(writer)


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
    try:
        while True:
            timeout = idle_timeout if authenticated else min(
                idle_timeout or auth.first_timeout, auth.first_timeout)
            try:
                async with asyncio.timeout(timeout):  # cheaper than wait_for
                    chunk = await reader.read(READ_CHUNK)
            except asyncio.TimeoutError:
                logger.info("closing idle connection from %s", _peer(writer))
                return
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
        await close_writer(writer)


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
            await close_writer(writer)
            raise
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
