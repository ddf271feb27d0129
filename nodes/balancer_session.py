"""What the load balancer keeps for one client connection.

A `ClientSession` holds the client's current database, one lazily opened
connection per backend it has used, and the memory behind the
read-your-writes rule. Before a statement runs on a backend connection whose
database differs from the session's, the session's `ampiasao <db>;` is
replayed there (also on a fresh connection after failover); a backend that
refuses the replay does not have the database and raises `DatabaseMissing`.

Read-your-writes: the session's `WriteMemory` (nodes.freshness) remembers,
for each object it wrote, the change counters the acknowledging server
reported and which backends are known to hold them; the balancer runs each
later statement on a backend holding what that statement may depend on.
"""

from __future__ import annotations

from nodes.backends import Backend, BackendConnection, BackendUnavailable, Timeouts
from nodes.freshness import WriteMemory
from nodes.protocol import Response, statement_bytes


class DatabaseMissing(Exception):
    """Replaying `ampiasao` failed on a backend: it does not have the database (yet)."""

    def __init__(self, backend_id: str, response: Response):
        super().__init__(response.message)
        self.backend_id = backend_id
        self.response = response


class ClientSession:
    """One client connection: its database, its backend connections, its latest writes."""

    def __init__(self, timeouts: Timeouts) -> None:
        self.timeouts = timeouts
        self.database: str | None = None
        self.connections: dict[str, BackendConnection] = {}
        self.writes = WriteMemory()

    def forget_database(self, database: str) -> None:
        self.writes.forget_database(database)

    # -- backend connections -------------------------------------------------

    async def connection_to(self, backend: Backend, select_database: bool = True) -> BackendConnection:
        """The session's connection to `backend`, with the session's database selected."""
        connection = self.connections.get(backend.id)
        if connection is not None and (connection.backend is not backend or not connection.usable):
            connection.close()
            connection = None
        if connection is not None and select_database and self.database is None \
                and connection.database is not None:
            # There is no statement to unselect a database: start afresh.
            connection.close()
            connection = None
        if connection is None:
            connection = await BackendConnection.open(backend, self.timeouts.connect)
            self.connections[backend.id] = connection
        if select_database and self.database is not None \
                and connection.database != self.database:
            try:
                response = await connection.roundtrip(
                    statement_bytes(f"ampiasao {self.database}"), self.timeouts.request)
            except BackendUnavailable as error:
                # Only the replay was sent, not the statement itself.
                error.sent = False
                raise
            if not response.ok:
                raise DatabaseMissing(backend.id, response)
            connection.database = self.database
        return connection

    async def send(self, backend: Backend, payload: bytes, select_database: bool = True,
                   follow_up: bytes | None = None) -> Response | tuple[Response, Response]:
        """One request on the session's connection to `backend` (database replayed first).

        With `follow_up`, that request is sent in the same write right behind
        `payload` and both responses are returned (one round trip).
        """
        connection = await self.connection_to(backend, select_database)
        if follow_up is None:
            return await connection.roundtrip(payload, self.timeouts.request)
        return await connection.roundtrip_pair(payload, follow_up, self.timeouts.request)

    def database_dropped(self, database: str, on_backends: list[str]) -> None:
        """`database` was dropped on `on_backends`, which unselected it on those connections."""
        for backend_id in on_backends:
            connection = self.connections.get(backend_id)
            if connection is not None and connection.database == database:
                connection.database = None
        if self.database == database:
            self.database = None
        self.forget_database(database)

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()
        self.connections.clear()
