"""What the load balancer keeps for one client connection.

A `ClientSession` holds the client's current database, one lazily opened
connection per backend it has used, and the memory behind the
read-your-writes rule. Before a statement runs on a backend connection whose
database differs from the session's, the session's `ampiasao <db>;` is
replayed there (also on a fresh connection after failover); a backend that
refuses the replay does not have the database and raises `DatabaseMissing`.

Read-your-writes: the session remembers which backend acknowledged its
latest write of each object (bounded LRU). A read that names an object the
session wrote goes to that backend; a read naming no object (`asehoy ny
tabilao`) goes to the backend of the session's latest write in the current
database. Without replication that backend is the only one holding the
write; with replication it is still the freshest copy, so the rule needs no
timing guess.
"""

from __future__ import annotations

from collections import OrderedDict

from nodes.backends import Backend, BackendConnection, BackendUnavailable, Timeouts
from nodes.protocol import Response, statement_bytes

MAX_REMEMBERED_WRITES = 4096


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
        # (database, object) -> (sequence number, backend) of the latest write.
        self._written: OrderedDict[tuple[str, str], tuple[int, str]] = OrderedDict()
        self._last_write: dict[str, str] = {}
        self._write_count = 0

    # -- read-your-writes memory ---------------------------------------------

    def remember_write(self, database: str, obj: str, backend_id: str) -> None:
        key = (database, obj)
        self._write_count += 1
        self._written[key] = (self._write_count, backend_id)
        self._written.move_to_end(key)
        while len(self._written) > MAX_REMEMBERED_WRITES:
            self._written.popitem(last=False)
        self._last_write[database] = backend_id

    def forget_database(self, database: str) -> None:
        self._last_write.pop(database, None)
        for key in [key for key in self._written if key[0] == database]:
            del self._written[key]

    def read_preference(self, objects: tuple[str, ...]) -> str | None:
        """The backend a read must go to for read-your-writes, if any."""
        if self.database is None:
            return None
        if not objects:
            return self._last_write.get(self.database)
        latest = max((self._written[key] for key in ((self.database, o) for o in objects)
                      if key in self._written), default=None)
        return latest[1] if latest else None

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

    async def send(self, backend: Backend, payload: bytes, select_database: bool = True) -> Response:
        """One request on the session's connection to `backend` (database replayed first)."""
        connection = await self.connection_to(backend, select_database)
        return await connection.roundtrip(payload, self.timeouts.request)

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
