"""The load balancer: `python -m nodes.balancer --id lb --port 3949 --backend m1=HOST:PORT ...`.

An asyncio TCP server between clients and the database servers. Each client
connection gets a `ClientSession` (nodes.balancer_session); this module
decides, statement by statement, which backends of the `BackendPool`
(nodes.backend_pool) it goes to:

- reads (`alaivo`, `asehoy`) go to the least loaded ONLINE backend, or to
  the backend that the read-your-writes rule names; a read that meets a
  connection error or a timeout is retried on another backend;
- writes go to the owner of the object (rendezvous hashing of database and
  object over ONLINE writable backends, nodes.routing); if the owner cannot
  even be connected to, nothing was sent and the next owner takes it (once
  every owner failed so, the other writable backends, as for an account
  statement below: `write_fallbacks`); if the connection dies after the
  write was sent, the outcome is unknown and
  reported as an error, never sent twice; an owner that lacks the
  session's database (still being copied to it) is given a moment, then
  the next owner takes the write;
- `manamboara tahiry` / `ravao ny tahiry` go to every ONLINE writable
  backend, so the next `ampiasao` works wherever it lands; those naming the
  same database run one at a time (concurrent ones would each win on a
  different server), and a server that already holds the outcome
  (replication was faster) counts as done, unless the last create or drop
  of that name through this balancer made it so: then it is refused, as on
  that server (the ones applying it were out of the pool then);
- `ampiasao DB` succeeds iff some ONLINE backend has DB;
- `.login NAME "PW"` (accounts, docs/SECURITY.md) is checked by one ONLINE
  backend; once accepted, the session's other backend connections are
  closed and every connection it opens logs in as that account first
  (nodes/balancer/session.py), after a failover too; a refusal closes the
  client's connection. The balancer itself never logs in as anyone (its
  probes send `.ping;` and `.status;` only);
- account statements (`manamboara mpampiasa`, `omeo`, `esory`, `ovay ny
  tenimiafina`, `ravao ny mpampiasa`) all go to one owner (rendezvous
  hashing of `ACCOUNTS_OWNER` over ONLINE writable backends, the next one
  if it cannot be reached before anything was sent; when none could, the
  backends file is re-read (a server just made writable again) and the
  other writable ones are tried: ONLINE, SHUNNED, then OFFLINE and answering
  its probes again but not trusted yet, as a server restarted in a burst of
  kills is, then the other OFFLINE ones; every server certifies its writes,
  so this is a preference, not a safety rule): one server writes them in
  order, and replication carries them to the others;
- `.rights;` is asked of every ONLINE backend on the session's connections
  and answered with their generations merged (the proxy cache validates
  its hits with it: a revoke on any server changes the answer at once);
- a statement a backend answers with a storage fault (its copy of the
  object is unreadable, or its disk refuses the write: the message ends
  `[storage:read]` / `[storage:write]`, and nothing was applied) is sent once
  more, to the next owner (a write) or another backend (a read), and the
  object's statements avoid that backend for a while (nodes.fault_avoidance:
  held, then re-tested by the next statement).

Pipelining: a client may send statements ahead (up to `PIPELINE_WINDOW` in
flight on its connection). They are taken in order (nodes.balancer_session
`Turn`): each starts once the one before it is done, except that a write is
sent right behind the write before it, without waiting for its answer,
when it goes to the same owner on the same session connection and in the
same database, and that owner already holds what it may depend on. Such
writes are never sent again elsewhere (a storage fault is then reported,
not re-routed: re-routing would reorder them). They carry no `.versions`
follow-up; the last write of a run asks for its counters once answered.

Health probes and the backends file are watched by nodes.prober; backend
configuration is parsed by nodes.backend_config.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import ssl
import sys
from collections.abc import Awaitable, Coroutine, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from engine.errors import ERROR_PREFIX, TahiryError, storage_fault_operation
from engine.language.secrets import redact_secrets
from engine.lru import LRUCache
from nodes.balancer.backend_config import BackendsFile, parse_backend_option
from nodes.balancer.backend_pool import BackendPool
from nodes.balancer.backends import (
    Backend,
    BackendConnection,
    BackendUnavailable,
    LoginRefused,
    Timeouts,
    refused_for_room,
)
from nodes.balancer.classifier import Routed, StatementClassifier
from nodes.balancer.fault_avoidance import FaultAvoidance
from nodes.balancer.freshness import (
    DEFAULT_WAIT_BOUND_S,
    WriteMark,
    best_effort_order,
    find_holders,
    holding_all,
    holds_all,
    read_needs,
    write_needs,
)
from nodes.balancer.health import BackendState, HealthPolicy
from nodes.balancer.prober import Prober
from nodes.balancer.routing import OwnerRanks, ReadSelector, rank_owners
from nodes.balancer.session import ClientSession, DatabaseMissing, Turn
from nodes.protocol import (
    ADMIN_LOGIN,
    ADMIN_RIGHTS,
    AuthGuard,
    Request,
    Response,
    add_auth_arguments,
    add_login_arguments,
    decode_rights,
    decode_versions,
    encode_error,
    encode_message,
    encode_rights,
    login_arguments,
    node_auth_guard,
    node_login_gate,
    renewed_login,
    statement_bytes,
    versions_request,
)
from nodes.runtime.admission import DEFAULT_LIMITS, ConnectionLimits, connection_limits
from nodes.runtime.node_process import node_argument_parser, node_tls, run_node, setup_logging
from nodes.runtime.serving import (
    DEFAULT_IDLE_TIMEOUT_S,
    ClientHandler,
    CloseConnection,
    ConnectionStats,
    PendingAnswer,
    admin_response,
    run_server,
)
from nodes.runtime.upstream import WRITE_OUTCOME_UNKNOWN

log = logging.getLogger(__name__)

NO_BACKEND_TO_ANSWER = "Tsy misy mpizara afaka mamaly ankehitriny"
# Polling a write's owner that lacks the session's database (replication on its way).
FIRST_DATABASE_POLL_S = 0.002
MAX_DATABASE_POLL_S = 0.025
NO_BACKEND_TO_WRITE = "Tsy misy mpizara afaka manoratra ankehitriny"
# Statements one client connection may have in flight through the balancer.
PIPELINE_WINDOW = 64
# What account statements are routed by (rank_owners): all of them to one owner.
ACCOUNTS_OWNER = ("@tahiry", "accounts")
# Database names whose last create/drop outcome is remembered (the oldest go).
DATABASE_OUTCOMES_KEPT = 1024


INTERNAL_ERROR = "Nisy olana tao anatin'ny load balancer; tsy vita ny baiko"
# `answer` without a class: the statement is classified in its turn.
_UNCLASSIFIED = object()


@dataclass
class _ReadAttempts:
    """A read's tries so far: backends tried, why they failed, whether it was resent."""

    tried: list[str]
    reasons: list[str]
    missing: DatabaseMissing | None = None
    resent: bool = False


def no_backend_error(message: str, reasons: list[str]) -> bytes:
    """The error for a request no backend could take, with why each one failed."""
    return encode_error(message + (f" ({'; '.join(reasons)})" if reasons else ""))


@dataclass
class BalancerCounters:
    """What the balancer counted since it started; `.status;` shows them under "counters"."""

    statements: int = 0
    reads: int = 0
    writes: int = 0
    uses: int = 0                      # `ampiasao`
    database_ddl: int = 0              # creating or dropping a database, on every server
    retries: int = 0                   # a read tried on another backend after a failure
    rerouted_writes: int = 0           # a write tried on the next owner
    unknown_writes: int = 0            # a write sent and never answered: outcome unknown
    local_errors: int = 0              # an error the balancer answered itself (bad text, a bug)
    version_checks: int = 0            # `.versions` asked for read-your-writes
    stale_fallbacks: int = 0           # no backend caught up in time: the freshest one answered
    storage_faults: int = 0            # a backend could not read or write its copy
    storage_resent_writes: int = 0
    storage_resent_reads: int = 0
    storage_avoided: int = 0           # a backend passed over for an object it failed lately
    pipelined_writes: int = 0          # a write sent right behind the previous one
    logins: int = 0                    # `.login` accepted by a backend
    refused_logins: int = 0            # refused by it (or on a backend the session opened later)
    rights_checks: int = 0             # `.rights;` asked of every backend
    account_statements: int = 0        # accounts and grants, on their one owner


class CountingPool(BackendPool):
    """The backend pool, also counting each backend's health transitions (`.status;`).

    Per backend, how many times it entered each state (ONLINE, SHUNNED,
    OFFLINE): the supervisor's `/metrics` shows them as counters. Only a
    probe answered or a failure goes through here, never a routed request.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.transitions: dict[str, dict[str, int]] = {}

    def record_success(self, backend: Backend, latency_s: float | None = None) -> None:
        before = backend.health.state
        super().record_success(backend, latency_s)
        self._count(backend, before)

    def record_failure(self, backend: Backend, reason: str) -> None:
        before = backend.health.state
        super().record_failure(backend, reason)
        self._count(backend, before)

    def _count(self, backend: Backend, before: BackendState) -> None:
        after = backend.health.state
        if after is not before:
            entered = self.transitions.setdefault(backend.id, {})
            entered[after.value] = entered.get(after.value, 0) + 1


class Balancer:
    """Routes statements of client sessions over a changing set of backends."""

    def __init__(self, node_id: str, pool: BackendPool, timeouts: Timeouts,
                 logger: logging.Logger = log, auth: AuthGuard | None = None,
                 idle_timeout: float | None = 600.0,
                 freshness_bound_s: float = DEFAULT_WAIT_BOUND_S,
                 faults: FaultAvoidance | None = None):
        self.node_id = node_id
        # Objects whose statements avoid a backend after its storage faults.
        self.faults = faults if faults is not None else FaultAvoidance()
        # How long a statement waits for some backend to hold the session's
        # earlier writes before answering from the most up-to-date one.
        self.freshness_bound_s = freshness_bound_s
        self.idle_timeout = idle_timeout  # idle or half-open client connections are closed
        self.auth = auth  # shared-secret policy for clients (nodes/protocol/auth.py)
        self.pool = pool
        self.timeouts = timeouts
        self.log = logger
        # One classifier for all sessions: the event loop is one thread, so
        # sharing is safe, and the shapes it learns serve every client.
        self.classifier = StatementClassifier()
        self.selector = ReadSelector()
        self.owners = OwnerRanks()   # writes' owners, ranked once per object and candidates
        # database name -> [lock held while a create/drop of it runs everywhere,
        # how many statements hold or await it]
        self._database_locks: dict[str, list] = {}
        # database name -> whether it exists after the last create/drop of it
        # through this balancer (see _database_ddl_everywhere).
        self._database_outcomes: LRUCache[str, bool] = LRUCache(DATABASE_OUTCOMES_KEPT)
        self.clients = 0
        self.connection_stats = ConnectionStats()
        self.counters = BalancerCounters()

    # -- serving clients ---------------------------------------------------

    def open_client(self) -> ClientHandler:
        """A new client connection: its own session (database, backend connections)."""
        session = ClientSession(self.timeouts)
        self.clients += 1
        stats = self.connection_stats
        stats.open_connections += 1
        stats.total_connections += 1

        def closed() -> None:
            self.clients -= 1
            stats.open_connections -= 1
            session.close()

        return ClientHandler(functools.partial(self.handle, session), closed,
                             self.idle_timeout, window=PIPELINE_WINDOW)

    def status(self) -> dict:
        return {
            **self.connection_stats.as_dict(),
            "clients": self.clients,
            "counters": {**asdict(self.counters), "failovers": self.pool.failovers},
            "backends": self.pool.status(),
            "retiring": self.pool.retiring(),
            "transitions": getattr(self.pool, "transitions", {}),
            "storage_faults": self.faults.snapshot(),
        }

    def handle(self, session: ClientSession, request: Request) -> bytes | Awaitable[bytes]:
        """One framed request: the bytes at once (admin), or the awaitable of its answer.

        The fast path: a read arriving while the session has nothing in
        flight, needing none of its writes, with no storage fault recorded
        and the chosen backend's connection ready, is written to that
        backend right here and answered from the backend connection's read
        callback (`_fast_read`): no task, no coroutine. Anything else, and
        whatever that read meets besides a plain answer, takes `answer`.
        The statement is classified once, here, for both. A statement for
        `answer` takes its turn here too, before the next request of the
        same chunk is handled: that one must see the session busy (never
        idle behind an `ampiasao` whose task has not started).
        """
        if request.admin is not None:
            if request.admin == ADMIN_LOGIN or request.admin == ADMIN_RIGHTS:
                return self._admin_in_turn(session, request, session.take_turn())
            return admin_response(request, self.node_id, "balancer", self.status)
        if request.error is not None:
            return self.answer(session, request)
        try:
            kind: Routed | None | Exception = self.classifier.classify_text(request.text)
        except Exception as error:  # answered in its turn (a TahiryError), or a bug
            kind = error
        if type(kind) is Routed and session.idle:
            fast = (self._fast_read(session, request.text, kind.objects) if kind.kind == "read"
                    else self._fast_write(session, request.text, kind) if kind.kind == "write"
                    else None)
            if fast is not None:
                return fast
        return self.answer(session, request, kind, session.take_turn())

    async def answer(self, session: ClientSession, request: Request,
                     kind: Routed | None | Exception | object = _UNCLASSIFIED,
                     turn: Turn | None = None) -> bytes:
        """The complete response bytes for one framed request (`kind`: its class, if known;
        `turn`: its place in the session's order, taken when it arrived)."""
        if request.error is not None:
            return encode_error(request.error)
        if request.admin is not None:
            return admin_response(request, self.node_id, "balancer", self.status)
        if turn is None:
            turn = session.take_turn()   # in request order: statements run in that order
        self.counters.statements += 1
        try:
            return await self._statement(session, request.text, turn, kind)
        except LoginRefused as refused:
            # The account's login no longer holds on a backend this session
            # had to open (password changed, account dropped): refused here too.
            self.counters.refused_logins += 1
            raise CloseConnection(refused.response.raw) from None
        except Exception:  # a bug must cost one statement, not the connection
            self._internal_error(request.text)
            return encode_error(INTERNAL_ERROR)
        finally:
            await turn.finish()

    # -- accounts ------------------------------------------------------------

    async def _admin_in_turn(self, session: ClientSession, request: Request, turn: Turn) -> bytes:
        """`.login` / `.rights;`: in the session's order, like a statement (`turn`: its place)."""
        try:
            await turn.wait()
            if request.admin == ADMIN_LOGIN:
                return await self._login(session, request)
            return await self._rights(session)
        except LoginRefused as refused:
            self.counters.refused_logins += 1
            raise CloseConnection(refused.response.raw) from None
        except Exception:
            self._internal_error(request.admin or "")
            return encode_error(INTERNAL_ERROR)
        finally:
            await turn.finish()

    async def _login(self, session: ClientSession, request: Request) -> bytes:
        """`.login`: checked on one ONLINE backend; accepted, it is the session's from now on."""
        login = request.wire()
        # A login too: a password changed on one server is not checked on another.
        candidates = self.pool.candidates(rights_current=True)
        first = self._least_loaded(candidates) if candidates else None
        reasons: list[str] = []
        for backend_id in ([first] if first else []) + [b for b in candidates if b != first]:
            try:
                backend = self.pool.reach(backend_id)
            except BackendUnavailable as error:
                reasons.append(str(error))
                continue
            backend.outstanding += 1
            try:
                connection = await BackendConnection.open(backend, self.timeouts.connect)
                response = await connection.roundtrip(login, self.timeouts.request)
            except BackendUnavailable as error:
                self.pool.record_failure(backend, error.reason)
                reasons.append(str(error))
                continue
            finally:
                backend.outstanding -= 1
            if not response.ok:
                connection.close()
                if refused_for_room(response):
                    reasons.append(f"{backend_id}: {response.message}")
                    continue
                self.counters.refused_logins += 1
                return response.raw   # a refused login: the connection closes it
            self.counters.logins += 1
            account = login_arguments(request)[0]
            if session.account is not None and session.account != account:
                session.database = connection.database = None   # (as the server: afresh)
            session.logged_in(login, account, connection)
            return response.raw
        return no_backend_error(NO_BACKEND_TO_ANSWER, reasons)

    async def _account_statement(self, session: ClientSession, text: str, payload: bytes) -> bytes:
        """An account or grant statement, on the accounts' one owner (the next if unreachable)."""
        self.counters.account_statements += 1
        reasons: list[str] = []
        ranked = rank_owners(*ACCOUNTS_OWNER, self.pool.candidates(writable_only=True))
        for backend_id in self._owners_then_fallbacks(ranked):
            try:
                response = await self._forward(session, self.pool.reach(backend_id), payload,
                                               select_database=False)
            except BackendUnavailable as error:
                if error.sent:
                    self.counters.unknown_writes += 1
                    return self._unknown_write(backend_id, error)
                reasons.append(str(error))
                continue
            if response.ok and session.account:
                renewed = renewed_login(text, session.account)
                connection = session.connections.get(backend_id)
                if renewed is not None and connection is not None:
                    # Its own new password: the old one logs in nowhere now (the
                    # connections to the other backends reopen with this one).
                    session.logged_in(renewed, session.account, connection)
            if response.ok:
                # Learn where the change is (and where it is not yet): the
                # account's statements that follow, any session's, avoid the
                # backends replication has not brought it to. (The statement
                # is done: nothing here may turn its answer into an error.)
                try:
                    await self._rights(session)
                except Exception:
                    self.log.exception("rights generations not asked after an account statement")
            return response.raw
        return no_backend_error(NO_BACKEND_TO_WRITE, reasons)

    async def _rights(self, session: ClientSession) -> bytes:
        """`.rights;`: every ONLINE backend's rights generation, merged (one that fails is left out).

        Each answer is kept by the pool: the statement right behind (a proxy
        sends `.rights;` before an account's read) avoids a backend behind.
        """
        self.counters.rights_checks += 1

        async def ask(backend_id: str) -> tuple[str, Response | None]:
            try:
                return backend_id, await self._forward(session, self.pool.reach(backend_id),
                                                       b".rights;", select_database=False)
            except (BackendUnavailable, LoginRefused):
                # (Refused: a password just changed has not reached that backend yet; its
                # generation, from the probes, is behind, so the account avoids it.)
                return backend_id, None

        merged: dict[str, int] = {}
        for backend_id, response in await asyncio.gather(
                *(ask(b) for b in self.pool.candidates())):
            if response is None:
                continue
            if not response.ok:
                return response.raw   # e.g. not logged in
            generations = decode_rights(response.message)
            if generations is None:
                return encode_error(INTERNAL_ERROR)
            self.pool.saw_rights_answer(backend_id, generations)
            merged.update(generations)
        return encode_message(encode_rights(merged))

    def _candidates(self, session: ClientSession, writable_only: bool = False) -> list[str]:
        """The backends a session's statement may go to (an account's: none behind on the rights)."""
        return self.pool.candidates(writable_only, rights_current=session.login is not None)

    def _internal_error(self, text: str) -> None:
        self.log.exception("internal error on statement %r", redact_secrets(text[:200]))
        self.counters.local_errors += 1

    def _fast_read(self, session: ClientSession, text: str,
                   objects: tuple[str, ...]) -> PendingAnswer | None:
        """A read sent now on the session's ready connection; None (nothing done) if it cannot be.

        Exactly what `answer` does for it, in the common case: the same
        backend choice, counters, outcome handling (`_read_answered`); a
        failure or a storage fault to resend continues in `_read` with the
        attempt made.
        """
        database = session.database
        if database is None or len(self.faults) \
                or read_needs(session.writes.marks(database), objects):
            return None
        candidates = self._candidates(session)
        if not candidates:
            return None
        backend_id = self.selector.choose(candidates, self.pool.outstanding(candidates),
                                          advance=False)
        backend = self.pool[backend_id]
        connection = session.ready_connection(backend)
        if connection is None:
            return None
        # As _least_loaded: choosing again would give the same (nothing changed).
        self.selector.advance()
        self.counters.statements += 1
        self.counters.reads += 1
        turn = session.take_turn()
        answer = PendingAnswer()   # given from the backend connection's read callback
        attempts = _ReadAttempts([backend_id], [])
        others = len(candidates) > 1
        payload = statement_bytes(text)

        def answered(responses: list[Response] | None, error: BackendUnavailable | None) -> None:
            backend.outstanding -= 1
            try:
                if responses is not None:
                    raw = self._read_answered(backend, database, objects, responses[0], others,
                                              attempts)
                    if raw is not None:
                        turn.settle()
                        answer.give(raw)
                        return
                else:
                    assert error is not None
                    self.pool.record_failure(backend, error.reason)
                    attempts.reasons.append(str(error))
            except Exception:
                self._internal_error(text)
                turn.settle()
                answer.give(encode_error(INTERNAL_ERROR))
                return
            # Another backend: `_read` from where it stands.
            self._go_on(self._read(session, payload, {}, objects, attempts), turn, text, answer)

        backend.outstanding += 1
        try:
            connection.send_call(payload, self.timeouts.request, answered)
        except BackendUnavailable as error:
            answered(None, error)
        return answer

    def _fast_write(self, session: ClientSession, text: str, kind: Routed) -> PendingAnswer | None:
        """A write sent now on the session's ready connection to its owner; None (nothing
        done) if it cannot be.

        Exactly what `answer` does for it, in the common case: the same owner
        (no storage fault recorded), the session's writes it needs already
        known there (nothing to wait for), the same `.versions` right behind
        it with several backends, the same counters and answer handling
        (`_write_answered`); once it is on the wire a write may be sent behind
        it (`Turn.sent_ahead`). Nothing sent after all, or a storage fault
        that hands it to the next owner, continues in `_write`.
        """
        database = session.database
        if database is None or len(self.faults):
            return None
        objects = kind.objects
        ready = self._owner_ready(session, database, objects)
        if ready is None:
            return None
        owners, connection, needs = ready
        backend = connection.backend
        backend_id, obj = backend.id, objects[0] if objects else ""
        self.counters.statements += 1
        turn = session.take_turn()
        answer = PendingAnswer()   # given from the backend connection's read callback
        payload, target = statement_bytes(text), kind.target
        # With several backends, learn the object's counters in the same round trip.
        follow_up = versions_request(database, [obj]) if obj and len(self.pool) > 1 else None

        def answered(responses: list[Response] | None, error: BackendUnavailable | None) -> None:
            backend.outstanding -= 1
            try:
                followed = turn.answered()
                if responses is None:
                    assert error is not None
                    self.pool.record_failure(backend, error.reason)
                    self.counters.unknown_writes += 1
                    raw = self._unknown_write(backend_id, error)
                else:
                    backend.writes += 1
                    raw, resend = self._write_answered(
                        session, backend_id, database, obj, objects, target, responses[0],
                        responses[1] if follow_up is not None else None,
                        may_resend=not followed and len(owners) > 1)
                    if resend:
                        self.counters.storage_resent_writes += 1
                        self._go_on(self._write(session, database, objects, target, payload,
                                                needs, turn, resent_from=backend_id),
                                    turn, text, answer)
                        return
            except Exception:
                self._internal_error(text)
                raw = encode_error(INTERNAL_ERROR)
            turn.settle()
            answer.give(raw)

        backend.outstanding += 1
        try:
            connection.send_call(payload if follow_up is None else payload + follow_up,
                                 self.timeouts.request, answered, 1 if follow_up is None else 2)
        except BackendUnavailable as error:
            # Nothing was sent: routed the usual way (the connection is closed now).
            backend.outstanding -= 1
            self.pool.record_failure(backend, error.reason)
            self._go_on(self._write(session, database, objects, target, payload, needs, turn),
                        turn, text, answer)
            return answer
        self.counters.writes += 1
        turn.sent_ahead(backend_id, database)
        return answer

    def _go_on(self, work: Coroutine[Any, Any, bytes], turn: Turn, text: str,
               answer: PendingAnswer) -> None:
        """A fast statement that must go on the usual way: `work` in a task, its bytes to `answer`."""

        async def rest() -> bytes:
            try:
                return await work
            except LoginRefused as refused:
                self.counters.refused_logins += 1
                return refused.response.raw
            except Exception:
                self._internal_error(text)
                return encode_error(INTERNAL_ERROR)
            finally:
                turn.settle()   # nothing was before it (the fast path starts only then)

        def chained(task: asyncio.Future) -> None:
            if task.cancelled():
                answer.cancel()
            else:
                answer.give(task.result())

        asyncio.ensure_future(rest()).add_done_callback(chained)

    # -- statements --------------------------------------------------------

    async def _statement(self, session: ClientSession, text: str, turn: Turn,
                         classified: Routed | None | Exception | object = _UNCLASSIFIED) -> bytes:
        payload = statement_bytes(text)
        try:
            if classified is _UNCLASSIFIED:
                kind = self.classifier.classify_text(text)
            elif isinstance(classified, Exception):
                raise classified
            else:
                kind = classified  # type: ignore[assignment]
        except TahiryError as error:
            await turn.wait()
            self.counters.local_errors += 1
            return encode_error(error.message)
        if kind is not None and kind.kind == "write":
            route: list = []   # (backend, connection, database) once it may follow

            def may_follow(previous: Turn) -> bool:
                return self._route_behind(session, previous, kind.objects, route)

            previous = await turn.wait(may_follow)
            if previous is not None:
                return await self._write_behind(session, turn, previous, kind.objects,
                                                kind.target, payload, *route)
        else:
            await turn.wait()
        if kind is None:  # comments only: let a server answer as it does
            return await self._read(session, payload, {})
        if kind.kind == "account":
            return await self._account_statement(session, text, payload)
        if kind.kind in ("use", "database"):
            # The classifier names the database of every `use` / database statement.
            assert kind.database is not None
            if kind.kind == "use":
                return await self._use(session, kind.database, payload)
            return await self._database_ddl(session, kind.drops_database, kind.database, payload)
        database = session.database
        marks = session.writes.marks(database)
        if kind.kind == "read" or database is None:
            # A write with no database selected changes nothing anywhere: any
            # server answers the error.
            return await self._read(session, payload, read_needs(marks, kind.objects),
                                    kind.objects)
        return await self._write(session, database, kind.objects, kind.target, payload,
                                 write_needs(marks, kind.objects), turn)

    def _route_behind(self, session: ClientSession, previous: Turn, objects: tuple[str, ...],
                      route: list) -> bool:
        """Whether a write may be sent right behind `previous` (in flight); fills `route`.

        Yes when its owner (faults considered) is the backend `previous` went
        to, in the session's database, on the session's open connection, and
        that owner holds every write of the session it needs.
        """
        ahead = previous.ahead
        if ahead is None:  # Turn.wait asks only while it is ahead
            return False
        backend_id, database = ahead
        if database != session.database:
            return False
        ready = self._owner_ready(session, database, objects)
        if ready is None or ready[1].backend.id != backend_id:
            return False
        route[:] = [ready[1].backend, ready[1], database]
        return True

    def _owner_ready(self, session: ClientSession, database: str, objects: tuple[str, ...]
                     ) -> tuple[list[str], BackendConnection, dict[str, WriteMark]] | None:
        """A write of `objects` that may be sent now: (its owners in order, faults considered;
        the session's ready connection to the first; the session's writes it needs, which
        that owner is known to hold), or None."""
        obj = objects[0] if objects else ""
        owners = self.owners.rank(database, obj, self._candidates(session, writable_only=True))
        if len(self.faults):
            owners = self.faults.order_for_write(owners, database, obj)
        if not owners:
            return None
        needs = write_needs(session.writes.marks(database), objects)
        if needs and not holds_all(owners[0], needs):
            return None
        connection = session.ready_connection(self.pool[owners[0]])
        if connection is None:
            return None
        return owners, connection, needs

    async def _write_behind(self, session: ClientSession, turn: Turn, previous: Turn,
                            objects: tuple[str, ...], target: str | None, payload: bytes,
                            backend: Backend, connection, database: str) -> bytes:
        """A write sent right behind the session's `previous` write, on the same connection.

        `database` is the session's (`_route_behind` checked that it is the
        one `previous` was written in).
        """
        self.counters.writes += 1
        self.counters.pipelined_writes += 1
        obj = objects[0] if objects else ""
        # No `.versions` right behind it (half the requests of a bulk load):
        # only the last write of a run asks, once its answer is in (below);
        # until then its mark has unknown counters, which the read-your-writes
        # rule replaces by the owner's current ones (stricter, never weaker).
        try:
            answers = connection.send_now(payload, 1, self.timeouts.request)
        except BackendUnavailable as error:
            # Nothing was sent: route it the usual way once the one before is done.
            self.pool.record_failure(backend, error.reason)
            await turn.wait()
            return await self._write(session, database, objects, target, payload,
                                     write_needs(session.writes.marks(database), objects), turn)
        previous.followed = True
        turn.sent_ahead(backend.id, database)
        backend.outstanding += 1
        try:
            responses = await answers
        except BackendUnavailable as error:
            self.pool.record_failure(backend, error.reason)
            turn.answered()
            self.counters.unknown_writes += 1
            return self._unknown_write(backend.id, error)
        finally:
            backend.outstanding -= 1
        followed = turn.answered()
        backend.writes += 1
        raw = self._write_answered(session, backend.id, database, obj, objects, target,
                                   responses[0], None, may_resend=False)[0]
        mark = session.writes.mark(database, obj)
        if responses[0].ok and not followed and mark is not None and len(self.pool) > 1:
            self._versions_behind(backend, connection, database, obj, mark)
        return raw

    def _versions_behind(self, backend: Backend, connection, database: str, obj: str,
                         mark: WriteMark) -> None:
        """The last write of a run: ask its counters (for reads on other backends later).

        Not awaited by the statement: its answer (and the session's next
        statement) need not wait for it. The question is answered in its
        turn on that connection, before anything sent after it runs, so it
        describes this write's result; until it comes the mark's counters
        are unknown (stricter).
        """
        self.counters.version_checks += 1
        try:
            answer = connection.send_now(versions_request(database, [obj]), 1,
                                         self.timeouts.request)
        except BackendUnavailable:
            return

        async def note() -> None:
            try:
                response = (await answer)[0]
            except BackendUnavailable:
                return  # the write's own answer is in; the mark stays stricter
            known = decode_versions(response.message) if response.ok else None
            if known is not None and mark.versions is None:
                mark.versions = known.get(obj)   # this write's mark (a later one has its own)

        asyncio.ensure_future(note())

    @staticmethod
    def _unknown_write(backend_id: str, error: BackendUnavailable) -> bytes:
        return encode_error(
            f"Tapaka ny fifandraisana tamin'ny mpizara {backend_id} ({error.reason}): "
            f"{WRITE_OUTCOME_UNKNOWN}")

    def _write_answered(self, session: ClientSession, backend_id: str, database: str, obj: str,
                        objects: tuple[str, ...], target: str | None, response: Response,
                        versions: Response | None, may_resend: bool) -> tuple[bytes, bool]:
        """A write's answer: remembered for read-your-writes; (the bytes, whether to resend).

        A storage fault (nothing applied) is recorded against the backend;
        the write is to be sent to the next owner if `may_resend`.
        """
        if response.ok:
            known = decode_versions(versions.message) if versions is not None and versions.ok else None
            session.writes.remember(database, obj, backend_id,
                                    known.get(obj) if known is not None else None, target)
            if len(self.faults):
                self.faults.success(backend_id, database, objects, wrote=True)
            return response.raw, False
        operation = storage_fault_operation(response.message)
        if operation is not None:
            self._storage_fault(backend_id, database, objects, operation, response.message)
            return response.raw, may_resend
        return response.raw, False

    async def _forward(self, session: ClientSession, backend: Backend, payload: bytes,
                       select_database: bool = True, follow_up: bytes | None = None,
                       on_sent=None):
        """Send on the session's connection, counted as outstanding on `backend`.

        A connection failure also counts against the backend's health. With
        `follow_up`, returns the (statement, follow-up) response pair.
        """
        backend.outstanding += 1
        try:
            return await session.send(backend, payload, select_database, follow_up, on_sent)
        except BackendUnavailable as error:
            self.pool.record_failure(backend, error.reason)
            raise
        finally:
            backend.outstanding -= 1

    def _least_loaded(self, candidates: list[str]) -> str:
        """The least loaded of `candidates` (ValueError if there is none)."""
        return self.selector.choose(candidates, self.pool.outstanding(candidates))

    # -- read-your-writes (nodes.freshness) -------------------------------

    async def _ask_versions(self, session: ClientSession, backend_id: str, database: str,
                            names: list[str]) -> dict | None:
        """`.versions` on the session's connection to a backend; None if it cannot answer."""
        self.counters.version_checks += 1
        try:
            backend = self.pool[backend_id]
        except KeyError:
            return None  # removed from the configuration
        try:
            response = await self._forward(session, backend, versions_request(database, names),
                                           select_database=False)
        except (BackendUnavailable, DatabaseMissing):
            return None
        return decode_versions(response.message) if response.ok else None

    async def _fresh_backends(self, session: ClientSession, database: str,
                              needs: dict[str, WriteMark], candidates: list[str]) -> list[str]:
        """The candidates holding every needed write (asking and waiting, bounded); [] if none.

        `database` is the session's, the one the `needs` were written in.
        """
        holders = holding_all(candidates, needs)
        if holders:
            return holders

        async def ask(backend_id: str, db: str, names: list[str]) -> dict | None:
            return await self._ask_versions(session, backend_id, db, names)

        holders = await find_holders(database, needs, candidates, ask, bound_s=self.freshness_bound_s)
        if not holders:
            self.counters.stale_fallbacks += 1
            self.log.info("no backend among %s has caught up with this session's writes of %s.%s "
                          "within %.0f ms: answering from the most up-to-date one",
                          ", ".join(candidates), database, ", ".join(sorted(needs)),
                          self.freshness_bound_s * 1000)
        return holders

    async def _read(self, session: ClientSession, payload: bytes,
                    needs: dict[str, WriteMark], objects: tuple[str, ...] = (),
                    attempts: _ReadAttempts | None = None) -> bytes:
        """A read, on a backend holding the session's writes it `needs` (nodes.freshness).

        Backends that lately could not read one of `objects` are avoided; a
        storage fault is answered by one more try on another backend.
        `attempts`: what the fast path already tried (then counted already).
        """
        if attempts is None:
            self.counters.reads += 1
            attempts = _ReadAttempts([], [])
        database = session.database or ""
        tried = attempts.tried
        while True:
            candidates = [c for c in self._candidates(session) if c not in tried]
            if not candidates:
                break
            others = len(candidates) > 1
            preferred = self.faults.filter_for_read(candidates, database, objects)
            if len(preferred) < len(candidates):
                self.counters.storage_avoided += 1
                candidates = preferred
            if needs:
                # Needs come from the marks of the session's database, so it has
                # one: `database` is that one here, never the "" stand-in.
                fresh = await self._fresh_backends(session, database, needs, candidates)
                backend_id = (self._least_loaded(fresh) if fresh
                              else best_effort_order(candidates, needs)[0])
            else:
                backend_id = self._least_loaded(candidates)
            if tried:
                self.counters.retries += 1
            tried.append(backend_id)
            try:
                backend = self.pool.reach(backend_id)
                response = await self._forward(session, backend, payload)
            except BackendUnavailable as error:
                attempts.reasons.append(str(error))
                continue
            except DatabaseMissing as error:
                attempts.missing = attempts.missing or error
                continue
            raw = self._read_answered(backend, database, objects, response, others, attempts)
            if raw is not None:
                return raw
        if attempts.missing is not None:
            return attempts.missing.response.raw
        return no_backend_error(NO_BACKEND_TO_ANSWER, attempts.reasons)

    def _read_answered(self, backend: Backend, database: str, objects: tuple[str, ...],
                       response: Response, others: bool, attempts: _ReadAttempts) -> bytes | None:
        """A read's answer from `backend`: the bytes for the client, or None to try another.

        A storage fault (nothing applied) is recorded and, once, read again
        elsewhere when there is another candidate (`others`).
        """
        backend.reads += 1
        if not response.ok:
            operation = storage_fault_operation(response.message)
            if operation is not None:
                self._storage_fault(backend.id, database, objects, operation, response.message)
                if not attempts.resent and others:
                    attempts.resent = True  # nothing was applied: another backend may read it
                    self.counters.storage_resent_reads += 1
                    return None
        elif objects and len(self.faults):
            self.faults.success(backend.id, database, objects, wrote=False)
        return response.raw

    async def _write(self, session: ClientSession, database: str, objects: tuple[str, ...],
                     target: str | None, payload: bytes, needs: dict[str, WriteMark],
                     turn: Turn | None = None, resent_from: str | None = None) -> bytes:
        """A write, on the object's owner, once it holds the session's writes it `needs`.

        `database` is the session's (a write without one goes to `_read`).
        Once it is on the wire, `turn` lets the session's next write be sent
        behind it (then it is never sent again elsewhere). `resent_from`: the
        owner the fast path sent it to, which applied nothing (a storage
        fault): the write goes to the next owners, and is not sent again after.
        """
        obj = objects[0] if objects else ""
        owners = self.owners.rank(database, obj, self._candidates(session, writable_only=True))
        if len(self.faults):
            ranked, owners = owners, self.faults.order_for_write(owners, database, obj)
            if owners[:1] != ranked[:1] and resent_from is None:
                self.counters.storage_avoided += 1
        resent = resent_from is not None
        if resent_from is None:
            self.counters.writes += 1
        else:
            owners = [backend_id for backend_id in owners if backend_id != resent_from]
        # With several backends, learn the object's counters right after the
        # write, in the same round trip (the server answers in order).
        follow_up = versions_request(database, [obj]) if obj and len(self.pool) > 1 else None
        reasons: list[str] = []
        missing: DatabaseMissing | None = None
        # (A write resent after a storage fault: the next owners only, as before.)
        tried = owners if resent_from is not None else self._owners_then_fallbacks(owners)
        for attempt, backend_id in enumerate(tried, start=int(resent)):
            if attempt:
                self.counters.rerouted_writes += 1
            if needs:
                # The owner is fixed: wait (bounded) for it to catch up, then
                # write there anyway.
                await self._fresh_backends(session, database, needs, [backend_id])
            # Once it is on the wire, the session's next write may go behind it.
            on_sent = (functools.partial(turn.sent_ahead, backend_id, database)
                       if turn is not None else None)
            try:
                backend = self.pool.reach(backend_id)
                answer = await self._forward_once_database_there(
                    session, backend, payload, follow_up, wait=not attempt, on_sent=on_sent)
            except DatabaseMissing as error:
                # Only `ampiasao` was sent: the next owner may take the write.
                missing = missing or error
                continue
            except BackendUnavailable as error:
                if turn is not None:
                    turn.answered()
                if error.sent:
                    self.counters.unknown_writes += 1
                    return self._unknown_write(backend_id, error)
                reasons.append(str(error))
                continue  # nothing was sent: the next owner may take it
            followed = turn.answered() if turn is not None else False
            backend.writes += 1
            response, versions = answer if follow_up is not None else (answer, None)
            # Nothing was applied after a storage fault: the next owner takes it,
            # once, unless another write was sent behind it (that would reorder them).
            raw, resend = self._write_answered(
                session, backend_id, database, obj, objects, target, response, versions,
                may_resend=not resent and not followed and attempt + 1 < len(owners))
            if resend:
                resent = True
                self.counters.storage_resent_writes += 1
                continue
            return raw
        if missing is not None:
            return missing.response.raw
        return no_backend_error(NO_BACKEND_TO_WRITE, reasons)

    def _owners_then_fallbacks(self, owners: list[str]) -> Iterator[str]:
        """The backends a write or an account statement is tried on, in order: its owners,
        then, once they all failed before anything was sent, the backends that may still
        take it (`BackendPool.write_fallbacks`, in the order of their trust: a server
        restarted in a burst of kills, alive and not trusted yet)."""
        yield from owners
        yield from self.pool.write_fallbacks(owners)

    def _storage_fault(self, backend_id: str, database: str, objects: tuple[str, ...],
                       operation: str, message: str) -> None:
        """A backend could not read or write its copy: avoid it for these objects for a while."""
        self.counters.storage_faults += 1
        reason = message.removeprefix(ERROR_PREFIX)
        self.log.warning("backend %s: storage fault (%s) on %s.%s: %s", backend_id, operation,
                         database, ",".join(objects) or "-", reason)
        self.faults.fault(backend_id, database, objects, operation, reason)

    async def _forward_once_database_there(self, session: ClientSession, backend: Backend,
                                           payload: bytes, follow_up: bytes | None, wait: bool,
                                           on_sent=None):
        """`_forward`, waiting (bounded, if `wait`) for a backend that lacks the database.

        The session's database exists somewhere (its `ampiasao` succeeded),
        so a backend without it is most likely still receiving it: created
        while that server was joining, or copied by replication. Only the
        `ampiasao` replay was sent, so asking again is safe.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.freshness_bound_s if wait else 0.0)
        delay = FIRST_DATABASE_POLL_S
        while True:
            try:
                return await self._forward(session, backend, payload, follow_up=follow_up,
                                           on_sent=on_sent)
            except DatabaseMissing:
                if loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DATABASE_POLL_S)

    async def _use(self, session: ClientSession, database: str, payload: bytes) -> bytes:
        """`ampiasao DB`: succeeds iff some ONLINE backend has DB."""
        self.counters.uses += 1
        candidates = self._candidates(session)
        first = self._least_loaded(candidates) if candidates else None
        order = ([first] if first else []) + [b for b in candidates if b != first]
        refusal: Response | None = None
        reasons: list[str] = []
        for backend_id in order:
            try:
                backend = self.pool.reach(backend_id)
                response = await self._forward(session, backend, payload, select_database=False)
            except BackendUnavailable as error:
                reasons.append(str(error))
                continue
            if response.ok:
                # The answer came on the session's connection to this backend.
                session.connections[backend_id].database = database
                session.database = database
                return response.raw
            refusal = refusal or response
        if refusal is not None:
            return refusal.raw
        return no_backend_error(NO_BACKEND_TO_ANSWER, reasons)

    async def _database_ddl(self, session: ClientSession, dropping: bool,
                            database: str, payload: bytes) -> bytes:
        """Create or drop a database on every ONLINE writable backend.

        Statements about one database run one at a time: two students
        creating the same database at once would otherwise each win on one
        server and lose on the other, and both be told of a partial failure.
        One after the other, the second is refused everywhere with the same
        error, which is what it gets.
        """
        self.counters.database_ddl += 1
        entry = self._database_locks.setdefault(database, [asyncio.Lock(), 0])
        entry[1] += 1  # statements holding or awaiting it: the lock goes with the last
        try:
            async with entry[0]:
                return await self._database_ddl_everywhere(session, dropping, database, payload)
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._database_locks[database]

    async def _database_ddl_everywhere(self, session: ClientSession, dropping: bool,
                                       database: str, payload: bytes) -> bytes:
        targets = self.pool.online_writable()
        if not targets:
            return encode_error(NO_BACKEND_TO_WRITE)

        async def apply(backend_id: str) -> tuple[str, Response | BackendUnavailable]:
            try:
                return backend_id, await self._forward(session, self.pool.reach(backend_id),
                                                       payload, select_database=False)
            except BackendUnavailable as error:
                return backend_id, error

        results = await asyncio.gather(*(apply(b) for b in targets))
        applied: list[tuple[str, Response]] = []
        failed: list[tuple[str, Response | BackendUnavailable]] = []
        for backend_id, result in results:
            if isinstance(result, Response) and result.ok:
                applied.append((backend_id, result))
            else:
                failed.append((backend_id, result))
        already: list[Response] = []   # refusals saying it is already so
        refused: list[tuple[str, Response | BackendUnavailable]] = []
        for backend_id, result in failed:
            if isinstance(result, Response) and _already_done(dropping, database, result.message):
                already.append(result)
            else:
                refused.append((backend_id, result))
        earlier = self._database_outcomes.get(database)
        if applied or already:
            self._database_outcomes.put(database, not dropping)
        if applied and already:
            if earlier == (not dropping):
                # An earlier create (drop) through this balancer made it so: the
                # servers saying so hold that outcome, and the ones applying this
                # statement were out of the pool then. It is refused, as it
                # would have been had they been in.
                return already[0].raw
            # Else a server that already holds the outcome (replication from one
            # that applied it was faster than this statement) is not a failure.
            failed = refused
        if dropping and applied:
            # The server unselects a database it drops on that connection.
            session.database_dropped(database, [b for b, _ in applied])
        if not failed:
            return applied[0][1].raw
        refusals = [r for _, r in failed if isinstance(r, Response)]
        if not applied and len(refusals) == len(failed) and len({r.message for r in refusals}) == 1:
            return refusals[0].raw  # the same refusal everywhere: just that error
        return encode_error(partial_ddl_message(applied, failed))


def _already_done(dropping: bool, database: str, message: str) -> bool:
    """Whether a refusal says the database is already as the statement wanted it."""
    if dropping:
        return message == f"{ERROR_PREFIX}Tsy misy ny tahiry : {database}"
    return message == f"{ERROR_PREFIX}Ny tahiry ({database}) dia efa misy"


def partial_ddl_message(applied: list[tuple[str, Response]],
                        failed: list[tuple[str, Response | BackendUnavailable]]) -> str:
    """Which backends took a database DDL statement and why the others did not."""
    parts = []
    for backend_id, result in failed:
        if isinstance(result, Response):
            parts.append(f"{backend_id}: {result.message}")
        elif result.sent:
            parts.append(f"{backend_id}: tapaka ny fifandraisana ({result.reason}), "
                         "the outcome is unknown")
        else:
            parts.append(f"{backend_id}: tsy azo tratrarina ({result.reason})")
    done = ", ".join(b for b, _ in applied) or "tsy nisy"
    return (f"Tsy vita tamin'ny mpizara rehetra ny baiko (vita tamin'ny: {done}; "
            + "; ".join(parts) + ")")


# --------------------------------------------------------------------------
# Process entry point


def add_routing_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The balancer's options about its servers (backends, probes, health, timeouts,
    freshness): the balancer node's, and the one-relay proxy cache's (nodes/proxycache)."""
    parser.add_argument("--backend", action="append", default=[], metavar="ID=HOST:PORT",
                        help="a database server (repeat for each)")
    parser.add_argument("--backends-file", metavar="FILE",
                        help="JSON backends list, re-read when it changes; replaces --backend")
    parser.add_argument("--probe-interval-ms", type=int, default=500)
    parser.add_argument("--probe-timeout-ms", type=int, default=1000)
    parser.add_argument("--connect-timeout-ms", type=int, default=1000)
    parser.add_argument("--request-timeout-ms", type=int, default=30000)
    parser.add_argument("--rise", type=int, default=2, help="good probes before an OFFLINE backend is used")
    parser.add_argument("--fall", type=int, default=2, help="failures before a backend is OFFLINE")
    parser.add_argument("--freshness-wait-ms", type=float, default=DEFAULT_WAIT_BOUND_S * 1000,
                        help="how long a statement waits for a backend holding the session's "
                             "earlier writes before answering from the most up-to-date one")


def build_argument_parser() -> argparse.ArgumentParser:
    parser = node_argument_parser("Tahiry load balancer", default_port=3949)
    add_routing_arguments(parser)
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S,
                        help="close client connections idle for this many seconds (0: never)")
    add_auth_arguments(parser)
    add_login_arguments(parser)
    return parser


def build_routing(args: argparse.Namespace, logger: logging.Logger, auth: AuthGuard,
                  tls_client: ssl.SSLContext | None,
                  idle_timeout: float | None) -> tuple[Balancer, Prober]:
    """The balancer and its prober from `add_routing_arguments`' options; ValueError if bad."""
    specs = [] if args.backends_file else [parse_backend_option(b) for b in args.backend]
    if len({s.id for s in specs}) != len(specs):
        raise ValueError("--backend: the same ID is given twice")
    policy = HealthPolicy(rise=args.rise, fall=args.fall)
    for name in ("probe_interval_ms", "probe_timeout_ms", "connect_timeout_ms", "request_timeout_ms"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive")
    timeouts = Timeouts(connect=args.connect_timeout_ms / 1000, probe=args.probe_timeout_ms / 1000,
                        request=args.request_timeout_ms / 1000)
    pool = CountingPool(policy, logger, secret=auth.secret, tls=tls_client)
    pool.apply_specs(specs)
    backends_file = BackendsFile(args.backends_file, logger) if args.backends_file else None
    prober = Prober(pool, timeouts.probe, args.probe_interval_ms / 1000, backends_file)
    balancer = Balancer(args.id, pool, timeouts, logger, auth=auth, idle_timeout=idle_timeout,
                        freshness_bound_s=max(0.0, args.freshness_wait_ms) / 1000)
    return balancer, prober


async def start_probing(balancer: Balancer, prober: Prober,
                        logger: logging.Logger) -> asyncio.Task:
    """Probe every backend once (know who is up before the first client), then keep probing."""
    prober.reload_backends_file()
    await prober.probe_all()
    logger.info("backends: %s", balancer.pool.describe())
    return asyncio.create_task(prober.run())


async def serve(balancer: Balancer, prober: Prober, host: str, port: int,
                logger: logging.Logger, port_file: str | None = None,
                limits: ConnectionLimits = DEFAULT_LIMITS,
                ssl_context: ssl.SSLContext | None = None,
                unix_socket: str | None = None) -> None:
    probing = await start_probing(balancer, prober, logger)

    async def stop_probing() -> None:
        probing.cancel()

    await run_server(balancer.open_client, host, port, logger, balancer.connection_stats,
                     auth=balancer.auth, on_stop=stop_probing, port_file=port_file, limits=limits,
                     ssl_context=ssl_context, unix_socket=unix_socket)


def main(argv: list[str] | None = None) -> int:
    args = build_argument_parser().parse_args(argv)
    logger = setup_logging(args.id, args.log_file, args.log_level, __name__)
    auth = node_auth_guard(args, logger)
    tls = node_tls(args, "balancer")
    try:
        balancer, prober = build_routing(args, logger, auth, tls.client,
                                         idle_timeout=args.idle_timeout or None)
    except ValueError as error:
        print(f"balancer: {error}", file=sys.stderr)
        return 2
    balancer.connection_stats.login = node_login_gate(args, logger)
    try:
        run_node(serve(balancer, prober, args.host, args.port, logger, args.port_file,
                       connection_limits(args), tls.server, args.unix_socket), logger)
    except OSError as error:
        print(f"balancer: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0
