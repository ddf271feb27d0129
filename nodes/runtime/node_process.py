"""What every node process (server, balancer, proxy cache) shares around its serving code.

- command line: `--id`, `--host` (127.0.0.1), `--port`, `--log-file`,
  `--topology FILE` (fill what was not given from the node's entry);
- logging: timestamped lines to stderr, or a size-bounded rotating file;
- TCP options: TCP_NODELAY on every connection (responses are small and
  latency-bound);
- `run_node`: runs a node's main coroutine on uvloop when it is installed
  (about half the per-hop latency of asyncio's own loop), else on asyncio's.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import socket
import sys
from collections.abc import Coroutine
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
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


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Disable Nagle's algorithm: responses are small and latency-bound."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


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
    try:
        import uvloop
    except ImportError:
        uvloop = None
    if logger is not None:
        logger.info("event loop: %s", "uvloop" if uvloop is not None else "asyncio")
    if uvloop is None:
        return asyncio.run(main)
    return uvloop.run(main)
