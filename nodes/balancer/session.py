"""What the load balancer keeps for one client connection.

A `ClientSession` holds the client's current database, one lazily opened
connection per backend it has used, and the memory behind the
read-your-writes rule. Before a statement runs on a backend connection whose
database differs from the session's, the session's `ampiasao <db>;` is
replayed there (also on a fresh connection after failover); a backend that
refuses the replay does not have the database and raises `DatabaseMissing`.
Likewise the session's `.login` (once the client logged in) is replayed on
every backend connection it opens, right after the shared secret: the
balancer never runs a statement on a backend as anyone but the client's
account (a refusal raises `LoginRefused`).

Read-your-writes: the session's `WriteMemory` (nodes.freshness) remembers,
for each object it wrote, the change counters the acknowledging server
reported and which backends are known to hold them; the balancer runs each
later statement on a backend holding what that statement may depend on.

Pipelining: a client may send statements ahead; the balancer takes them in
order, each with a `Turn`. A statement normally starts once the one before
it is done (its answer known, the session's state updated). The exception:
a write may be sent right behind the write before it while that one is
still in flight, when both go to the same owner on the same connection in
the same database (the server runs a connection's statements in order, and
commits them together). Nothing else overtakes an unanswered statement.
"""

from __future__ import annotations

import asyncio

from nodes.balancer.backends import (
    Backend,
    BackendConnection,
    BackendUnavailable,
    Timeouts,
    refused_for_room,
)
from nodes.balancer.freshness import WriteMemory
from nodes.errors import NodeError
from nodes.protocol import Response, statement_bytes


class DatabaseMissing(NodeError):
    """Replaying `ampiasao` failed on a backend: it does not have the database (yet)."""

    def __init__(self, backend_id: str, response: Response):
        super().__init__(response.message)
        self.backend_id = backend_id
        self.response = response


class Turn:
    """One statement's place in its session's order.

    finished: it is done (and every statement before it is).
    ahead: (backend id, database) while it is a write sent and not answered,
    behind which the next write to that backend may be sent; `followed`
    says one was (then it is never sent again elsewhere: that would reorder
    the two). signalled: it is sent ahead or done, whichever came first
    (what the next statement waits on).

    The futures a statement behind awaits are made only when one does: a
    statement that meets an idle session (the usual read) never waits, so
    its turn is two flags.
    """

    __slots__ = ("previous", "finished", "signalled", "ahead", "followed", "_done", "_signal")

    def __init__(self, previous: Turn | None) -> None:
        self.finished: bool = False
        self.signalled: bool = False
        self.previous = previous if previous is not None and not previous.finished else None
        self.ahead: tuple[str, str] | None = None
        self.followed = False
        self._done: asyncio.Future | None = None
        self._signal: asyncio.Future | None = None

    def _done_future(self) -> asyncio.Future:
        if self._done is None:
            self._done = asyncio.get_running_loop().create_future()
            if self.finished:
                self._done.set_result(None)
        return self._done

    def _signal_future(self) -> asyncio.Future:
        if self._signal is None:
            self._signal = asyncio.get_running_loop().create_future()
            if self.signalled:
                self._signal.set_result(None)
        return self._signal

    async def wait(self, may_follow=None) -> Turn | None:
        """Wait for this statement's turn.

        Returns the previous statement when this one may be sent right
        behind it (`may_follow(previous)` said so while it is in flight
        ahead), else None once it is done.
        """
        previous = self.previous
        if previous is None or previous.finished:
            return None
        if may_follow is not None:
            if not previous.signalled:
                await asyncio.shield(previous._signal_future())
            if previous.ahead is not None and not previous.finished and may_follow(previous):
                return previous
        if not previous.finished:
            await asyncio.shield(previous._done_future())
        return None

    def sent_ahead(self, backend_id: str, database: str) -> None:
        """Its write is on the wire: a following write to that backend may go now."""
        self.ahead = (backend_id, database)
        self._mark_signalled()

    def answered(self) -> bool:
        """Its answer came: nothing may be sent behind it any more; whether something was."""
        self.ahead = None
        return self.followed

    async def finish(self) -> None:
        """Done, once every statement before it is."""
        self.ahead = None
        previous = self.previous
        try:
            if previous is not None and not previous.finished:
                await asyncio.shield(previous._done_future())
        finally:  # even when cancelled: the statements behind it must not wait forever
            self.settle()

    def settle(self) -> None:
        """Done now: `finish` once every statement before it is done (the fast path's end)."""
        self.ahead = None
        self.previous = None
        self._mark_signalled()
        if not self.finished:
            self.finished = True
            done = self._done
            if done is not None and not done.done():
                done.set_result(None)

    def _mark_signalled(self) -> None:
        if not self.signalled:
            self.signalled = True
            signal = self._signal
            if signal is not None and not signal.done():
                signal.set_result(None)


class ClientSession:
    """One client connection: its database, its backend connections, its latest writes."""

    def __init__(self, timeouts: Timeouts) -> None:
        self.timeouts = timeouts
        self.database: str | None = None
        self.connections: dict[str, BackendConnection] = {}
        self.writes = WriteMemory()
        self._last_turn: Turn | None = None
        # The client's `.login` request, replayed on each new backend connection, and its account.
        self.login: bytes | None = None
        self.account: str | None = None

    @property
    def idle(self) -> bool:
        """Whether every statement taken so far is done (a new one starts at once)."""
        last = self._last_turn
        return last is None or last.finished

    def take_turn(self) -> Turn:
        """The next statement's place, behind the one before it (in request order)."""
        turn = self._last_turn = Turn(self._last_turn)
        return turn

    def forget_database(self, database: str) -> None:
        self.writes.forget_database(database)

    # -- backend connections -------------------------------------------------

    async def connection_to(self, backend: Backend, select_database: bool = True) -> BackendConnection:
        """The session's connection to `backend`, with the session's database selected."""
        connection = self.connections.get(backend.id)
        if connection is not None and (connection.backend is not backend or not connection.usable
                                       or connection.login is not self.login):
            connection.close()
            connection = None
        if connection is not None and select_database and self.database is None \
                and connection.database is not None:
            # There is no statement to unselect a database: start afresh.
            connection.close()
            connection = None
        if connection is None:
            connection = await BackendConnection.open(backend, self.timeouts.connect, self.login)
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
                if refused_for_room(response):
                    self._drop(connection)
                    raise BackendUnavailable(backend.id, response.message, sent=False,
                                             busy=True)
                raise DatabaseMissing(backend.id, response)
            connection.database = self.database
        return connection

    def logged_in(self, login: bytes, account: str, connection: BackendConnection) -> None:
        """The client logged in as `account` (`login`, answered on `connection`), or changed
        its own password there: the other connections go (reopened with `login`)."""
        self.login = login
        self.account = account
        connection.login = login
        self.close()
        self.connections[connection.backend.id] = connection

    def _drop(self, connection: BackendConnection) -> None:
        connection.close()
        if self.connections.get(connection.backend.id) is connection:
            del self.connections[connection.backend.id]

    async def send(self, backend: Backend, payload: bytes, select_database: bool = True,
                   follow_up: bytes | None = None,
                   on_sent=None) -> Response | tuple[Response, Response]:
        """One request on the session's connection to `backend` (database replayed first).

        With `follow_up`, that request is sent in the same write right behind
        `payload` and both responses are returned (one round trip).
        `on_sent` runs once the request is written.
        """
        connection = await self.connection_to(backend, select_database)
        answer: Response | tuple[Response, Response]
        if follow_up is None:
            answer = first = await connection.roundtrip(payload, self.timeouts.request, on_sent)
        else:
            answer = await connection.roundtrip_pair(payload, follow_up, self.timeouts.request,
                                                     on_sent)
            first = answer[0]
        if not first.ok and refused_for_room(first):
            # The server had no room for this connection: it ran nothing.
            self._drop(connection)
            raise BackendUnavailable(backend.id, first.message, sent=False, busy=True)
        return answer

    def ready_connection(self, backend: Backend) -> BackendConnection | None:
        """The open connection to `backend` with the session's database selected, if there is one."""
        connection = self.connections.get(backend.id)
        if connection is None or connection.backend is not backend or not connection.usable \
                or self.database is None or connection.database != self.database \
                or connection.login is not self.login:
            return None
        return connection

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
