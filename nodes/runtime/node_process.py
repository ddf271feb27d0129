"""What every node process (server, balancer, proxy cache) shares around its serving code.

- command line: `--id`, `--host` (127.0.0.1), `--port` (0: an ephemeral
  port), `--port-file` (where the port it got is written once it listens,
  `write_port_file`), `--unix-socket` (a Unix socket it also listens on:
  nodes/runtime/unix_socket.py), `--log-file`, and the connection caps
  (`--max-connections-per-address`, `--per-address-on-loopback`,
  `--max-unauthenticated`: nodes/runtime/admission.py, read back by
  `connection_limits(args)`), and TLS (`--tls-cert`, `--tls-key`,
  `--tls-ca`, `--tls-client-certs`: nodes/protocol/tls.py, made into the
  node's two contexts by `node_tls(args)`);
- logging: timestamped lines naming the node and the module, to stderr or
  a size-bounded rotating file;
- TCP options: TCP_NODELAY on every connection (responses are small and
  latency-bound);
- `run_node`: runs a node's main coroutine on uvloop when it is installed
  (about half the per-hop latency of asyncio's own loop), else on asyncio's,
  with its start-up objects frozen out of the cyclic collector's scans
  (a `--unix-socket` it cannot use ends it: one line, exit code 2);
- stack dumps: `kill -USR1 <pid>` writes every thread's Python stack to
  the node's stderr (its log under the supervisor and the tests), for a
  node that looks stuck (the tests' failure reports ask for it);
- `release_free_memory`: gives the C allocator's free pages back to the
  system after a big answer (glibc keeps them otherwise, and a node's RSS
  would stay at its highest).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import faulthandler
import gc
import logging
import logging.handlers
import os
import signal
import socket
import ssl
import sys
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path

from nodes.protocol.tls import (
    TlsConfigError,
    add_tls_arguments,
    client_context,
    server_context,
    settings_from_arguments,
)
from nodes.runtime.admission import add_connection_arguments
from nodes.runtime.unix_socket import UnixSocketRefused

DEFAULT_HOST = "127.0.0.1"
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3


# --------------------------------------------------------------------------
# Command line


def node_argument_parser(description: str, default_port: int) -> argparse.ArgumentParser:
    """An argument parser with the options every node takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--id", required=True, help="node name (as in topology.yaml)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=listening_port, default=default_port,
                        help=f"TCP port to listen on (default {default_port}; 0: any free port, "
                             f"see --port-file)")
    parser.add_argument("--port-file", type=port_file_path, default=None, metavar="PATH",
                        help="once listening, write the port (decimal, newline) to PATH, atomically")
    parser.add_argument("--unix-socket", default=None, metavar="PATH",
                        help="also listen on a Unix socket at PATH (mode 0600), for the nodes of "
                             "this machine; a stale one is replaced (nodes/runtime/unix_socket.py)")
    parser.add_argument("--log-file", default=None,
                        help="write logs to this file (size-bounded, rotated) instead of stderr")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_connection_arguments(parser)
    add_tls_arguments(parser)
    return parser


@dataclass(frozen=True)
class NodeTls:
    """A node's TLS contexts: `server` for its clients, `client` for its upstreams (None: off)."""

    server: ssl.SSLContext | None = None
    client: ssl.SSLContext | None = None


def node_tls(args: argparse.Namespace, node: str) -> NodeTls:
    """The contexts of `--tls-*` (nodes/protocol/tls.py); a bad file ends the node with one line."""
    settings = settings_from_arguments(args)
    try:
        return NodeTls(server_context(settings), client_context(settings))
    except TlsConfigError as error:
        print(f"{node}: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def listening_port(text: str) -> int:
    """`--port`: 0 (the system picks a free port) to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {text!r} is not a number") from None
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"port {port} is out of range (0 to 65535)")
    return port


def port_file_path(text: str) -> str:
    """`--port-file`: a path whose folder exists and that is no folder itself (refused
    here, in one line, rather than by a traceback once the node listens)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory, not a file")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"no such folder {str(path.parent)!r} for {text}")
    return text


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


def write_port_file(path: str | Path, port: int) -> None:
    """Write `port` (decimal, newline) to `path` so that a reader sees all of it or nothing.

    A temp file in the same folder renamed over `path`: whoever polls for the
    file (a test, a script that started the node with `--port 0`) never reads
    a half-written number.
    """
    target = Path(path)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(f"{port}\n", encoding="ascii")
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------
# Logging


def setup_logging(node_id: str, log_file: str | None = None, level: str = "INFO",
                  name: str = "nodes") -> logging.Logger:
    """Send this process's log records to a rotating file or stderr; returns the logger `name`.

    The handler is the root logger's, so every module logger
    (`logging.getLogger(__name__)`, engine's included) writes there; the node
    id is part of each line's format, not of the logger names:
    `2024-05-01 10:00:00.123 m1 INFO nodes.server: listening on ...`.
    """
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    node = node_id.replace("%", "%%")  # the id is text in the format, never a placeholder
    formatter = logging.Formatter(f"%(asctime)s {node} %(levelname)s %(name)s: %(message)s")
    # 2026-12-02 15:56:21.123: the supervisor's format (supervisor/logfiles.py `timestamp`).
    formatter.default_msec_format = "%s.%03d"
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return logging.getLogger(name)


# --------------------------------------------------------------------------
# Sockets


def bind_ephemeral(host: str) -> socket.socket:
    """A socket bound to a free port of `host` (not listening yet), for `run_server(sock=...)`.

    For a node started with `--port 0` that must name its port before it
    listens (a server's data directory owner record).
    """
    family, kind, protocol, _name, address = socket.getaddrinfo(
        host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Disable Nagle's algorithm: responses are small and latency-bound."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --------------------------------------------------------------------------
# Memory


def _malloc_trim():
    """glibc's `malloc_trim`, or None (another C library, or none found)."""
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Return the allocator's free memory to the system (glibc); nothing elsewhere.

    Python frees a big answer's bytes and rows, but glibc keeps the freed
    heap pages for later: after a few big answers a node's RSS stays at its
    highest. Costs a few ms over a large heap: call it after big answers only.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


# --------------------------------------------------------------------------
# The event loop


def run_node(main: Coroutine, logger: logging.Logger | None = None):
    """Run a node process's main coroutine to completion; returns its result.

    Every node process goes through here, so the choice of event loop is made
    in one place: uvloop when it can be imported (it is pinned in
    pyproject.toml), asyncio's default loop otherwise. Both support
    everything the nodes use (signal handlers, asyncio.timeout, threads
    resolving futures with call_soon_threadsafe).
    """
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]
    # Start-up objects (modules, parser tables, the node's own) live as long as
    # the process: frozen, no full collection rescans them. Left in, each full
    # collection of a relay took 11-17 ms, stalling every connection at once
    # (a tail of the p99 at 64 connections).
    gc.collect()
    gc.freeze()
    if logger is not None:
        logger.info("event loop: %s", "asyncio" if uvloop is None else "uvloop")
    try:
        return asyncio.run(main) if uvloop is None else uvloop.run(main)
    except UnixSocketRefused as refused:
        # Before anything listened: one line saying why, and a failed start.
        if logger is not None:
            logger.error("cannot start: %s", refused)
        else:
            print(f"cannot start: {refused}", file=sys.stderr)
        raise SystemExit(2) from None
