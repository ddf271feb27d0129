"""The database server node: `python -m nodes.server --id m1 --port 3948 --data data/m1`.

An asyncio TCP server speaking the wire protocol (nodes.protocol). Each
connection gets its own engine `Session` (current database, parser); all
sessions share one `Store`, so the decoded-file cache is shared. Statements
are CPU-bound and run on one engine thread, one at a time: writes are
serialised within the process, and the event loop stays free to accept
connections and answer `.ping;` while a long query runs. (`--inline` runs
them on the event loop instead, which saves a thread hop per statement.)

Idle connections are closed after --idle-timeout; beyond --max-connections a
new connection is answered with an error and closed (admin requests are
still answered, so health probes see a busy node as alive).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from engine.errors import ERROR_PREFIX
from engine.outcome import Outcome
from engine.session import Session
from engine.storage import Store
from nodes.common import (CloseConnection, ConnectionStats, admin_response, close_writer, load_topology_node,
                          node_argument_parser, run_server, serve_connection, setup_logging)
from nodes.protocol import (DEFAULT_MAX_REQUEST_BYTES, DEFAULT_PAGE_ROWS, Request,
                            encode_error, encode_outcome)

KIND = "server"
INTERNAL_ERROR = ERROR_PREFIX + "Nisy olana tao anatin'ny mpizara (internal error)"
TOO_MANY_CONNECTIONS = "Be loatra ny fifandraisana amin'ity mpizara ity, andramo indray afaka kelikely"


class DatabaseServer:
    """Serves statements against one data directory."""

    def __init__(self, node_id: str, store: Store, logger: logging.Logger, *,
                 idle_timeout: float | None = 600.0, max_connections: int = 256,
                 page_rows: int = DEFAULT_PAGE_ROWS,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, inline: bool = False):
        self.node_id = node_id
        self.store = store
        self.logger = logger
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.page_rows = page_rows
        self.max_request_bytes = max_request_bytes
        self.stats = ConnectionStats()
        self.statements = 0
        self.statement_errors = 0
        self._engine = None if inline else ThreadPoolExecutor(1, thread_name_prefix="engine")
        if not inline:
            # The event loop and the engine thread hand each statement over;
            # a short GIL switch interval keeps the hand-over from waiting 5 ms.
            sys.setswitchinterval(0.0005)

    def status(self) -> dict:
        return {**self.stats.as_dict(), "statements": self.statements,
                "statement_errors": self.statement_errors, "data": str(self.store.root),
                "max_connections": self.max_connections}

    async def client_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.total_connections += 1
        if self.stats.open_connections >= self.max_connections:
            self.stats.refused_connections += 1
            await serve_connection(reader, writer, self._refuse, self.stats, self.logger,
                                   idle_timeout=5.0, max_request_bytes=self.max_request_bytes)
            return
        self.stats.open_connections += 1
        try:
            session = Session(self.store)
        except Exception:
            self.stats.open_connections -= 1
            self.logger.exception("could not open an engine session")
            await close_writer(writer)
            return

        async def handle(request: Request) -> bytes:
            if request.admin is not None:
                return admin_response(request, self.node_id, KIND, self.status)
            return await self._run(session, request.text)

        try:
            await serve_connection(reader, writer, handle, self.stats, self.logger,
                                   idle_timeout=self.idle_timeout,
                                   max_request_bytes=self.max_request_bytes)
        finally:
            self.stats.open_connections -= 1

    async def _refuse(self, request: Request) -> bytes:
        if request.admin is not None:
            return admin_response(request, self.node_id, KIND, self.status)
        raise CloseConnection(encode_error(TOO_MANY_CONNECTIONS))

    async def _run(self, session: Session, text: str) -> bytes:
        self.statements += 1
        if self._engine is None:
            response = self._execute(session, text)
        else:
            response = await asyncio.get_running_loop().run_in_executor(
                self._engine, self._execute, session, text)
        return response

    def _execute(self, session: Session, text: str) -> bytes:
        """Run one statement and encode its response (on the engine thread)."""
        try:
            outcome = session.execute_one(text)
        except Exception:  # a bug in the engine must not take the connection down
            self.logger.exception("engine failed on %r", text[:200])
            outcome = Outcome.failure(INTERNAL_ERROR)
        if not outcome.ok:
            self.statement_errors += 1
        try:
            return encode_outcome(outcome, self.page_rows)
        except Exception:
            self.logger.exception("could not encode the outcome of %r", text[:200])
            self.statement_errors += 1
            return encode_error(INTERNAL_ERROR)

    async def stop(self) -> None:
        if self._engine is not None:
            # Statements already running finish (their writes are atomic anyway).
            await asyncio.get_running_loop().run_in_executor(None, self._engine.shutdown, True)


def main(argv: list[str] | None = None) -> None:
    parser = node_argument_parser("Tahiry database server", default_port=3948)
    parser.add_argument("--data", default=None, help="data directory (created if missing)")
    parser.add_argument("--idle-timeout", type=float, default=600.0,
                        help="close connections idle for this many seconds (0: never)")
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--page-rows", type=int, default=DEFAULT_PAGE_ROWS,
                        help="rows per RELATION_JSON_PAGE")
    parser.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES)
    parser.add_argument("--inline", action="store_true",
                        help="run statements on the event loop instead of the engine thread")
    args = parser.parse_args(argv)
    entry = load_topology_node(args)
    data = args.data or entry.get("data")
    if not data:
        parser.error("--data is required")
    logger = setup_logging(args.id, args.log_file, args.log_level)
    logging.getLogger("engine").handlers[:] = logger.handlers
    store = Store(Path(data))
    server = DatabaseServer(args.id, store, logger, idle_timeout=args.idle_timeout or None,
                            max_connections=args.max_connections, page_rows=args.page_rows,
                            max_request_bytes=args.max_request_bytes, inline=args.inline)
    logger.info("data directory %s", Path(data).resolve())
    asyncio.run(run_server(server.client_connected, args.host, args.port, logger,
                           on_stop=server.stop))


if __name__ == "__main__":
    main()
