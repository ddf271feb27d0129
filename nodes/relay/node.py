"""The one-relay node: `python -m nodes.relay --id r --port 3951 --backend m1=HOST:PORT ...`.

A proxy cache (nodes/proxycache) whose upstream is the load balancer
(nodes/balancer `Balancer`, unchanged) run in this same process: the
request path client -> proxy -> balancer -> server loses one TCP hop and one
process wake-up (docs/PERFORMANCE.md, "One relay"). It takes the proxy
cache's options but `--upstream`, and the balancer's server options
(`--backend ID=HOST:PORT` repeated or `--backends-file`, probes, health,
timeouts, freshness). Each client connection gets its own balancer
session through an `InProcessUpstream` (nodes/runtime/local_upstream.py),
so everything the balancer does (failover, accounts and rights routing,
read-your-writes) is what a separate balancer would do.

The topology draws it as a `proxycache` node given `backends:` instead of
`upstream:` (supervisor/topology.py); the supervisor runs this module for
it and writes its backends file as for a balancer. Its `.status;` is the
proxy cache's, with the balancer's figures under "balancer". It is the
choice when proxy and balancer sit on the same machine; a proxy cache on a
student's machine stays a separate local process.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ssl
import sys

from nodes.balancer.node import Balancer, add_routing_arguments, build_routing, start_probing
from nodes.balancer.prober import Prober
from nodes.protocol import node_auth_guard
from nodes.proxycache.node import ProxyCache, build_argument_parser, build_proxy
from nodes.runtime.admission import DEFAULT_LIMITS, ConnectionLimits, connection_limits
from nodes.runtime.local_upstream import LocalUpstream
from nodes.runtime.node_process import node_tls, run_node, setup_logging
from nodes.runtime.serving import run_server

IN_PROCESS_BALANCER = "in-process balancer"


def relay_argument_parser() -> argparse.ArgumentParser:
    parser = build_argument_parser("Tahiry one relay: proxy cache and load balancer in one process",
                                   upstream=False)
    group = parser.add_argument_group("balancer", "the servers and how the balancer watches them")
    add_routing_arguments(group)
    # Known only to refuse it clearly (else argparse would take it for --upstream-patience).
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    return parser


def local_balancer(balancer: Balancer) -> LocalUpstream:
    """The balancer as the proxy's upstream: one balancer session per proxy client connection."""
    return LocalUpstream(IN_PROCESS_BALANCER, balancer.open_client, balancer.status)


async def serve(proxy: ProxyCache, balancer: Balancer, prober: Prober, host: str, port: int,
                logger: logging.Logger, *, port_file: str | None = None,
                limits: ConnectionLimits = DEFAULT_LIMITS,
                ssl_context: ssl.SSLContext | None = None,
                unix_socket: str | None = None) -> None:
    """Probe the servers first (as a balancer does), then serve clients until stopped."""
    probing: asyncio.Task = await start_probing(balancer, prober, logger)

    async def stop_probing() -> None:
        probing.cancel()

    await run_server(proxy.open_client, host, port, logger, proxy.stats,
                     max_request_bytes=proxy.max_request_bytes, auth=proxy.auth,
                     on_stop=stop_probing, port_file=port_file, limits=limits,
                     ssl_context=ssl_context, unix_socket=unix_socket)


def main(argv: list[str] | None = None) -> int:
    parser = relay_argument_parser()
    args = parser.parse_args(argv)
    if args.upstream is not None:
        parser.error("--upstream: the one relay runs the balancer itself over --backend "
                     "servers; a proxy cache in front of another node is nodes.proxycache")
    if not args.backend and not args.backends_file:
        parser.error("no server: give --backend ID=HOST:PORT (repeated) or --backends-file")
    logger = setup_logging(args.id, args.log_file, args.log_level, __name__)
    auth = node_auth_guard(args, logger)
    tls = node_tls(args, "proxycache")
    try:
        # The balancer's sessions live exactly as long as the proxy's client
        # connections (closed with them): no idle timer of their own.
        balancer, prober = build_routing(args, logger, auth, tls.client, idle_timeout=None)
        proxy = build_proxy(args, local_balancer(balancer), logger, auth, tls.client)
    except ValueError as error:
        print(f"relay: {error}", file=sys.stderr)
        return 2
    logger.info("one relay: the balancer runs in this process; ttl %s ms, max %d entries",
                args.ttl_ms, args.max_entries)
    try:
        run_node(serve(proxy, balancer, prober, args.host, args.port, logger,
                       port_file=args.port_file, limits=connection_limits(args),
                       ssl_context=tls.server, unix_socket=args.unix_socket), logger)
    except OSError as error:
        print(f"relay: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0
