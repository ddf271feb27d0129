"""A server that answers only its peers: `python -m nodes.server --peer-only ...`.

When a topology edit moves a server S to another machine and its newest
copies cannot all be handed over (another server's disk full, S's new
machine not up yet), S's old directory stays on its old machine, as
`S~old`, until they land (docs/REPLICATION.md, "Moving a server to another
machine"). The servers of that machine read and lock the directory as a
folder; the servers of the other machines reach it through this process,
which the old machine's supervisor runs on it at S's old address: the
`.peer` requests of nodes/server/peer_service.py (versions, fetch, fence,
check, ship...), answered by the very code a full server uses, and
`.ping;`/`.status;` for the supervisor's probes. It runs no statement: the
directory takes no write of its own, only its peers' pulls, their fences
and the replicators' copies.

It fences for any server that asks (`PeerService(peers=None)`): the check a
full server makes (an asker removed from its topology) protects that
server's own writes, and this one makes none.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nodes.protocol import ADMIN_PEER, AuthGuard, Request, encode_error
from nodes.runtime.serving import ClientHandler, ConnectionStats, admin_response
from nodes.server.peer_service import PeerService, PeerSession
from nodes.server.storage_faults import StorageFaults

KIND = "server"
PIPELINED = 16
NO_STATEMENTS = ("Tsy manatanteraka baiko ity mpizara ity : lahatahiry taloha an'ny mpizara "
                 "nifindra, ho an'ny mpiara-miasa aminy ihany (only `.peer` requests)")


class PeerOnlyServer:
    """Answers `.peer`, `.ping;` and `.status;` on one data directory; refuses statements."""

    def __init__(self, node_id: str, root: Path, logger: logging.Logger, *,
                 max_request_bytes: int, auth: AuthGuard | None = None,
                 idle_timeout: float | None = None):
        self.node_id = node_id
        self.logger = logger
        self.auth = auth
        self.idle_timeout = idle_timeout
        self.stats = ConnectionStats()
        self.storage_faults = StorageFaults()
        self.statements_refused = 0
        self.peer_service = PeerService(node_id, root, max_request_bytes=max_request_bytes,
                                        logger=logger, peers=None, faults=self.storage_faults)

    def status(self) -> dict:
        return {**self.stats.as_dict(), "peer_only": True,
                "statements_refused": self.statements_refused,
                "storage_faults": self.storage_faults.snapshot(),
                **self.peer_service.status(), "data": str(self.peer_service.root),
                **(self.auth.status() if self.auth is not None else {})}

    def open_client(self) -> ClientHandler:
        self.stats.total_connections += 1
        self.stats.open_connections += 1
        peer: PeerSession | None = None

        def answer(request: Request):
            nonlocal peer
            if request.admin == ADMIN_PEER:
                if peer is None:
                    peer = self.peer_service.session()
                return peer.answer(request)
            if request.admin is not None:
                return admin_response(request, self.node_id, KIND, self.status)
            self.statements_refused += 1
            return encode_error(NO_STATEMENTS)

        def closed() -> None:
            self.stats.open_connections -= 1
            if peer is not None:
                peer.closed()   # its lease, if any, ends with it

        # (A network peer sends its fence's question right behind its lease: pipelined.)
        return ClientHandler(answer, closed, self.idle_timeout, window=PIPELINED)

    async def stop(self) -> None:
        self.peer_service.close()
