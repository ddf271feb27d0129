"""The database server node (`python -m nodes.server`, started by nodes/server/startup.py).

An asyncio TCP server speaking the wire protocol (nodes.protocol). Each
connection gets its own engine `Session` (current database, parser); all
sessions share one `Store`, so the decoded-file cache is shared. Statements
are CPU-bound and run on one engine thread (`EngineWorker`), one at a time:
writes are serialised within the process, and the event loop stays free to
accept connections and answer `.ping;` while a long query runs. (`--inline`
runs them on the event loop instead, which saves a thread hop per statement.)

Group commit: the engine thread takes every statement waiting when it
becomes free (from any connection) as one batch, up to `MAX_BATCH`. A
client may pipeline (send statements ahead without waiting for each
answer; a connection may have `2 * MAX_BATCH` requests in flight, room for
a balancer's `.versions` behind each): the statements that arrive together on one
connection are handed to the engine thread together (`EngineWorker.submit`
stages what one turn of the event loop submits and hands it over at once),
so they join one batch, and their answers still leave one per statement,
in order (nodes/runtime/serving.py). They run one after another
against the store's in-memory write overlay (each has a savepoint: a failing
statement leaves no trace; later ones see earlier ones' writes), then every
object file the batch changed is written once, durably, and only then are
the batch's responses sent. No response leaves before the data it depends
on is on disk. "Failed" always means "not applied": a statement whose file
may be in place after a failure is answered "outcome unknown"
(`outcomes_after_partial_commit`).

Passwords: a statement that sets one (`manamboara mpampiasa`, `ovay ny
tenimiafina`; `Session.password_to_hash` says which, and only when the
session may run it) has it hashed first on a password thread
(`ServerAccounts.hash_ahead`: scrypt, tens of milliseconds), and goes to
the engine thread with the hash, which it stores as it is. So scrypt never
runs inside a batch, where 30 accounts created at once held every other
client's writes for 30 hashes. The statements its connection sends behind
it wait with it (`_Client.held`), so each connection's statements still
reach the engine thread in their order; other connections' do not wait.

Peers (`--peers-file`, written by the supervisor, or `--peer ID=DIR` for a
peer on this machine, `--peer-address ID=HOST:PORT` for one on another): the
store pulls a peer's newer copy of an object before writing it and fences
its commit against the peers' copies (docs/STORAGE.md, "Peers"), so a
server taking over an object's writes builds on the last acknowledged
version even when replication has not delivered it yet. A peer on another
machine is asked with `.peer` requests (nodes/server/remote_peer.py), and
this server answers theirs (nodes/server/peer_service.py), behind the
secret and TLS like every request.

Storage faults (a file of this server it cannot read or write: corrupt, disk
full, read-only; `engine.errors.StorageFault`): the statement fails cleanly
with the marked message, and `StorageFaults` (nodes/server/storage_faults.py)
remembers the object, reason and count for `.status;` ("storage_faults")
until a later write of it succeeds here, or a read for a read fault (read
faults are re-tested when `.status;` is asked).

Ownership: at start (nodes/server/startup.py) the server takes its data
directory's owner lock (`.tahiry.owner`, engine/storage/data_owner.py) for
its whole life and exits (code 2) naming the holder when another live
process has it; with `--cluster` (the supervisor passes its topology file) a
directory that another cluster used is refused as well, even while that
cluster is stopped.

Idle connections are closed after --idle-timeout; beyond --max-connections a
new connection is answered with an error and closed (admin requests are
still answered, so health probes see a busy node as alive).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from time import monotonic, perf_counter

import orjson

from engine.errors import ERROR_PREFIX, StorageFault, TahiryError
from engine.evaluation.accounts import PasswordHash
from engine.evaluation.code_cache import CodeCache
from engine.evaluation.executor import Limits
from engine.evaluation.outcome import Outcome
from engine.evaluation.relational import Cancel
from engine.evaluation.rights import check_read
from engine.language.secrets import redact_secrets
from engine.session import Session
from engine.storage.accounts import Identity
from engine.storage.store import KIND_FOLDERS, BatchNotWritten, BatchPartlyWritten, Store
from nodes.protocol import (
    ADMIN_LOGIN,
    ADMIN_PEER,
    ADMIN_RIGHTS,
    ADMIN_STATUS,
    ADMIN_STOP,
    ADMIN_VERSIONS,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_PAGE_ROWS,
    AuthGuard,
    Request,
    encode_error,
    encode_message,
    versions_arguments,
)
from nodes.runtime.serving import (
    ClientHandler,
    CloseConnection,
    ConnectionStats,
    admin_response,
)
from nodes.server.accounts import (
    ServerAccounts,
)
from nodes.server.activity import Activity
from nodes.server.encoding import ResponseEncoder
from nodes.server.latency import DurationHistogram
from nodes.server.membership import PeerDirectories
from nodes.server.peer_service import PeerService, PeerSession
from nodes.server.storage_faults import StorageFaults

KIND = "server"
INTERNAL_ERROR = ERROR_PREFIX + "Nisy olana tao anatin'ny mpizara (internal error)"
TOO_MANY_CONNECTIONS = "Be loatra ny fifandraisana amin'ity mpizara ity, andramo indray afaka kelikely"
NOT_WRITTEN = (ERROR_PREFIX + "Tsy voasoratra : tsy vita ny fanoratana ny vondrona baiko nisy "
               "an'ity ; tsy nisy niova (rien n'a été écrit)")
MAX_BATCH = 64  # statements per group commit (bounds the latency one batch adds)
# A write this recent by another connection: writers overlap, and their
# statements go to the engine thread to share group commits.
LONE_WRITER_S = 0.02
# A lone writer's insert of at most this many literal rows runs on the event
# loop (no hand-over to the engine thread and back): its cost is its rows.
LONE_INSERT_ROWS = 100
# A commit slower than this (a disk that stalls, a machine starved of I/O):
# until one is quick again, lone writes go to the engine thread, so the event
# loop (`.ping`, small reads) waits for at most one slow fsync.
LONE_SLOW_COMMIT_S = 0.1
# The engine thread, idle this long, looks for tables to checkpoint.
IDLE_TICK_S = 0.5
# A write fault is re-tested by a test write in its object's folder at most this often
# (when `.status;` is asked: the supervisor's probes ask every health interval).
WRITE_RETEST_S = 2.0
# Queries over one table this small run on the event loop: a few ms at most,
# so health probes still get a quick answer, and no thread hand-off (~0.1 ms).
SMALL_READ_ROWS = 10_000
FOLDER_KINDS = {folder: kind for kind, folder in KIND_FOLDERS.items()}


def _cancellable_limits(gone: threading.Event) -> Limits:
    """The engine's default limits, with queries stopped once `gone` is set."""
    limits = Limits()
    return replace(limits, query=replace(limits.query, cancel=gone))


@dataclass
class _Held:
    """A statement of a connection waiting for its password's hash (`hashing`), or for
    one sent before it, before it goes to the engine thread; `answer` is its answer."""

    text: str
    hashing: asyncio.Future | None
    answer: asyncio.Future


@dataclass
class _Client:
    """One connection's engine session and its statements handed to the engine thread."""

    session: Session
    in_flight: int = 0                      # submitted (or held), answer not delivered yet
    last: asyncio.Future | None = None      # the latest of them
    held: deque[_Held] = field(default_factory=deque)   # in order, behind a password's hash


@dataclass
class _Job:
    """One statement waiting for the engine thread (`hashed`: its password, hashed ahead)."""

    session: Session
    text: str
    future: asyncio.Future | None
    client: _Client | None = None
    hashed: PasswordHash | None = None


class EngineWorker:
    """The engine thread: runs waiting statements in batches with one group commit.

    `submit` is called on the event loop and returns a future resolved (on
    the loop) with the encoded response once the statement's batch is durable.
    """

    def __init__(self, run_batch, logger: logging.Logger, max_batch: int = MAX_BATCH,
                 maintain=None):
        """`maintain()`: background care (table checkpoints), run when the thread is idle."""
        self._run_batch = run_batch
        self._maintain = maintain
        self._logger = logger
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._staged: list[_Job] = []
        self._thread = threading.Thread(target=self._loop, name="engine", daemon=True)
        self._thread.start()

    def submit(self, session: Session, text: str, client: _Client | None = None,
               hashed: PasswordHash | None = None) -> asyncio.Future:
        """Queue one statement; it is handed over with the others of this turn of the loop.

        Handing each one over at once would wake the engine thread on the
        first, which would then start a batch before the rest of what one
        client pipelined has been queued.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._staged:
            loop.call_soon(self.hand_over)
        self._staged.append(_Job(session, text, future, client, hashed))
        return future

    def hand_over(self) -> None:
        """Hand what was staged to the engine thread (on the loop; nothing if nothing was)."""
        staged, self._staged = self._staged, []
        if staged:
            self._queue.put(staged)

    def _loop(self) -> None:
        waiting: list[_Job] = []   # handed over, not yet in a batch (beyond one batch's size)
        stop = False
        while True:
            if not waiting:
                if stop:
                    return
                try:
                    more = self._queue.get(timeout=IDLE_TICK_S)
                except queue.Empty:
                    self._idle()
                    continue
                if more is None:
                    return
                waiting = more
            while len(waiting) < self._max_batch and not stop:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                else:
                    waiting.extend(more)
            jobs, waiting = waiting[:self._max_batch], waiting[self._max_batch:]
            # A client gone before its statement started (its connection
            # cancelled the answer): nobody reads it, the statement is not run.
            jobs = [job for job in jobs if job.future is None or not job.future.cancelled()]
            if not jobs:
                continue
            try:
                responses = self._run_batch(jobs)
            except BaseException:  # never leave the waiting connections hanging
                self._logger.exception("engine batch failed")
                responses = [encode_error(INTERNAL_ERROR)] * len(jobs)
            future = jobs[0].future
            assert future is not None   # `submit` gives every job handed to this thread one
            try:
                future.get_loop().call_soon_threadsafe(_deliver, jobs, responses)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return

    def _idle(self) -> None:
        """Nothing to run: checkpoint the tables that are due (never kills the thread)."""
        if self._maintain is None:
            return
        try:
            self._maintain()
        except Exception:
            self._logger.exception("background checkpoint failed")

    def stop(self) -> None:
        """Finish the statements already handed over, then end the thread (blocking)."""
        self._queue.put(None)
        self._thread.join()


def _relay(future: asyncio.Future, answer: asyncio.Future) -> None:
    """`answer` gets the engine thread's `future`'s response; cancelling it cancels that."""
    def settle(done: asyncio.Future) -> None:
        if answer.done():
            return
        if done.cancelled():
            answer.cancel()
        else:
            answer.set_result(done.result())

    def cancel(done: asyncio.Future) -> None:
        if done.cancelled():
            future.cancel()   # not run if it has not started (as for any statement)

    future.add_done_callback(settle)
    answer.add_done_callback(cancel)


def _deliver(jobs: list[_Job], responses: list[bytes]) -> None:
    for job, response in zip(jobs, responses, strict=True):
        if job.client is not None:
            job.client.in_flight -= 1
            if not job.client.in_flight:
                job.client.last = None   # the answer is its connection's now: not pinned here
        future = job.future
        if future is not None and not future.done():   # always one here (`submit`)
            future.set_result(response)


class DatabaseServer:
    """Serves statements against one data directory."""

    def __init__(self, node_id: str, store: Store, logger: logging.Logger, *,
                 idle_timeout: float | None = 600.0, max_connections: int = 256,
                 page_rows: int = DEFAULT_PAGE_ROWS,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, inline: bool = False,
                 auth: AuthGuard | None = None, accounts: ServerAccounts | None = None,
                 peers: PeerDirectories | None = None):
        """`peers`: the store's peers, if any (a lone writer's insert runs on the event
        loop only while every one of them is a local directory)."""
        self.node_id = node_id
        # Logins and the gate before them (nodes/server/accounts.py); off unless given.
        self.accounts = accounts if accounts is not None else ServerAccounts(node_id, store, False)
        self.store = store
        self.logger = logger
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.page_rows = page_rows
        self.max_request_bytes = max_request_bytes
        self.stats = ConnectionStats()
        self.activity = Activity()   # the statement the engine thread runs now (`.stop`)
        self.auth = auth  # shared-secret policy (nodes/protocol/auth.py); None: in-process tests
        self.statements = 0
        self.statement_errors = 0
        self.batches = 0
        self.batched_statements = 0
        self.files_committed = 0
        self.largest_batch = 0
        self.small_reads = 0
        self.lone_writes = 0   # inserts of a lone writer run on the event loop
        self._peers = peers
        # (connection, time) of the last statement handed to the engine or run alone.
        self._last_writer: tuple[_Client | None, float] = (None, float("-inf"))
        self._last_commit_s = 0.0   # how long the last commit that wrote files took
        self.commits = 0  # batches that wrote files (each: renames or appends, then fsyncs)
        # Statement run times (engine, without queueing or the commit), one
        # histogram per thread that writes it (latency.py): the engine
        # thread's batches, the event loop's small reads.
        self.batch_statement_seconds = DurationHistogram()
        self.small_read_seconds = DurationHistogram()
        self.commit_seconds = DurationHistogram()
        self.storage_faults = StorageFaults()
        self._write_retest_at = -WRITE_RETEST_S   # (monotonic) the last re-test of write faults
        # `.peer` requests of the other servers and of replication (peer_service.py).
        self.peer_service = PeerService(node_id, store.root, durable=store.durable,
                                        max_request_bytes=max_request_bytes, logger=logger,
                                        peers=peers.members if peers is not None else frozenset,
                                        faults=self.storage_faults)
        # Compiled expressions, shared by every connection's session.
        self.codes = CodeCache()
        self.encoder = ResponseEncoder(page_rows)
        # Work done on the engine thread while it is idle, until it says it is done (True).
        self.idle_tasks: list[Callable[[], bool]] = []
        self._engine = None if inline else EngineWorker(self.run_batch, logger,
                                                        maintain=self._maintain)
        if not inline:
            # The event loop and the engine thread hand each statement over;
            # a short GIL switch interval keeps the hand-over from waiting 5 ms.
            sys.setswitchinterval(0.0005)

    def _maintain(self) -> None:
        """The engine thread is idle: the store's care, then the idle tasks not done yet."""
        self.store.maintain()
        self.idle_tasks[:] = [task for task in self.idle_tasks if not task()]

    def status(self, account_names: bool = False) -> dict:
        """`.status;`: the counters; per account name only when `account_names`
        (nodes/server/accounts.py `may_see_names`)."""
        return {**self.stats.as_dict(), "statements": self.statements,
                "statement_errors": self.statement_errors, "batches": self.batches,
                "batched_statements": self.batched_statements,
                "largest_batch": self.largest_batch, "files_committed": self.files_committed,
                "small_reads": self.small_reads, "lone_writes": self.lone_writes,
                "commits": self.commits,
                "statement_seconds": self.statement_seconds(),
                "commit_seconds": self.commit_seconds.as_dict(),
                "storage_faults": self.storage_fault_report(),
                **self.store.certification_report(),
                **self.peer_service.status(),
                "data": str(self.store.root),
                "max_connections": self.max_connections,
                **(self.auth.status() if self.auth is not None else {}),
                **self.accounts.status(account_names),
                **({"running": self.activity.report()} if account_names else {})}

    def statement_seconds(self) -> dict:
        """Both statement histograms as one (`.status;`: latency.py's form)."""
        batched, small = self.batch_statement_seconds, self.small_read_seconds
        return {"le": list(batched.bounds),
                "counts": [a + b for a, b in zip(batched.counts, small.counts, strict=True)],
                "sum_s": batched.sum_s + small.sum_s}

    def storage_fault_report(self) -> list[dict]:
        """The objects this server could not read or write lately (re-tested first: read
        faults by reading the object, write faults by a test write beside it)."""
        for rel in self.storage_faults.objects("read"):
            database, folder, file_name = (rel.split("/") + ["", ""])[:3]
            kind = FOLDER_KINDS.get(folder)
            if kind is None or not file_name.endswith(".json"):
                continue  # a database marker: cleared by its next write
            try:
                self.store.read_raw(database, kind, file_name[:-len(".json")])
            except TahiryError:
                continue  # still failing (a re-test is not a statement: not counted)
            self.storage_faults.read([rel])
        self._retest_write_faults()
        return self.storage_faults.snapshot()

    def _retest_write_faults(self) -> None:
        """A write fault of a full or read-only disk is over once a test write beside its
        object goes through.

        Else it stayed until that object was written here again, which may
        never come (the balancer sends its writes elsewhere, or nobody writes
        it): a freed disk showed its fault for ever. A statement that still
        fails records it again.
        """
        now = monotonic()
        if now - self._write_retest_at < WRITE_RETEST_S:
            return
        objects = self.storage_faults.disk_write_faults()
        if not objects:
            return
        self._write_retest_at = now
        for rel in objects:
            if self.store.takes_a_write(rel):
                self.storage_faults.written([rel])
                self.logger.info("%s takes writes again (a test write beside it went through)", rel)

    def _written_fine(self, keys) -> None:
        """Files written successfully (keys: absolute paths): their faults are over."""
        root = self.store.root
        self.storage_faults.written(str(Path(key).relative_to(root)) for key in keys)

    def open_client(self) -> ClientHandler | None:
        """A new client connection: its own engine session (None if it cannot be made)."""
        self.stats.total_connections += 1
        if self.stats.open_connections >= self.max_connections:
            self.stats.refused_connections += 1
            return ClientHandler(self._refuse, idle_timeout=5.0)
        # Set once the connection is gone (a reset: nobody will read; an end of
        # stream alone may still read its answers): a query of its still running
        # stops at its next time-limit test (engine/evaluation/relational.py)
        # instead of holding the engine thread, and every write queued behind
        # it, until its time limit.
        gone = Cancel()   # (an administrator's `.stop` sets it too: nodes/server/activity.py)
        try:
            client = _Client(Session(self.store, codes=self.codes, limits=_cancellable_limits(gone)))
        except Exception:
            self.logger.exception("could not open an engine session")
            return None
        self.stats.open_connections += 1
        peer: PeerSession | None = None   # made by the connection's first `.peer` request
        accounts = self.accounts
        session = client.session
        # (A node that requires the secret let nothing through before `.auth` proved it.)
        peers_by_secret = self.auth is not None and self.auth.required

        def answer(request: Request, alone: bool = False) -> bytes | Awaitable[bytes]:
            nonlocal peer
            if request.admin == ADMIN_PEER and (peers_by_secret or not accounts.required):
                # Peers (servers, replicators) are let in by the cluster's secret, never by an
                # account: `.peer` reads and writes beneath the accounts (every database, the
                # password hashes). With accounts on and no secret required, it is refused
                # like a statement.
                if peer is None:
                    peer = self.peer_service.session()
                return peer.answer(request)
            if accounts.required:
                refusal = accounts.refusal(session, request)
                if refusal is not None:
                    return refusal
            if request.admin is not None:
                if request.admin == ADMIN_LOGIN:
                    return accounts.login(session, request)
                if request.admin == ADMIN_RIGHTS:
                    return accounts.rights(session)
                if request.admin == ADMIN_VERSIONS:
                    last = client.last   # set whenever one is in flight
                    if client.in_flight and last is not None:
                        # Counters after this connection's earlier writes are durable.
                        return self._versions_after(last, request, session.identity)
                    return self.versions(request, session.identity)
                if request.admin == ADMIN_STOP:
                    return accounts.answer_stop(session, request, self.activity.stop)
                if request.admin == ADMIN_STATUS and accounts.may_see_names(session, request):
                    return admin_response(request, self.node_id, KIND,
                                          lambda: self.status(account_names=True))
                return admin_response(request, self.node_id, KIND, self.status)
            return self._run(client, request.text, alone)

        def answer_alone(request: Request) -> bytes | Awaitable[bytes]:
            return answer(request, alone=True)

        def closed() -> None:
            gone.set()
            self.stats.open_connections -= 1
            if peer is not None:
                peer.closed()   # its lease, if any, ends with it
            accounts.closed(session)

        # Pipelined statements of one connection: up to one batch in flight,
        # each maybe with the balancer's `.versions` right behind it.
        return ClientHandler(answer, closed, self.idle_timeout, window=2 * MAX_BATCH,
                             answer_alone=answer_alone)

    async def _versions_after(self, earlier: asyncio.Future, request: Request,
                              identity: Identity | None) -> bytes:
        try:
            await asyncio.shield(earlier)
        except Exception:
            pass  # its own answer reports it; the counters are read all the same
        return self.versions(request, identity)

    def versions(self, request: Request, identity: Identity | None = None) -> bytes:
        """`.versions DB obj ...;`: each object's change counter per kind, as one JSON line.

        `{"t1": {"table": 4}, "v": {"view": 2}, "nothing": {}}`: tombstones
        count (a drop is a write); a missing object or database gives `{}`.
        Only durable files are seen (never an open batch), so a counter read
        here is on disk. The load balancer's read-your-writes check uses it.
        """
        try:
            database, names = versions_arguments(request)
            if identity is not None:   # (with accounts: only what the account may read)
                check_read(self.store, identity, database)
            answer = {}
            for name in names:
                kinds = {}
                for kind in KIND_FOLDERS:
                    document = self.store.read_raw(database, kind, name)
                    if document is not None:
                        kinds[kind] = int(document.get("change", 0))
                answer[name] = kinds
        except ValueError as error:
            return encode_error(str(error))
        except StorageFault as fault:
            self.storage_faults.record(fault)
            return encode_error(fault.message)
        except TahiryError as error:
            return encode_error(error.message)
        return encode_message(orjson.dumps(answer).decode())

    def _refuse(self, request: Request) -> bytes:
        if request.admin is not None:
            return admin_response(request, self.node_id, KIND, self.status)
        raise CloseConnection(encode_error(TOO_MANY_CONNECTIONS))

    def _run(self, client: _Client, text: str, alone: bool = False) -> bytes | asyncio.Future:
        """The response to one statement, or a future of it (queued for the engine thread).

        `alone`: no statement was pipelined behind it (a lone writer's small insert may
        run here, `_lone_write`).
        """
        self.statements += 1
        session = client.session
        if self._engine is None:
            return self.run_batch([_Job(session, text, None)])[0]
        password = session.password_to_hash(text)
        if password is not None or client.held:
            return self._hold(client, text, password)
        if not client.in_flight:
            # A small read sees only durable data (another thread's open batch
            # is invisible to it), exactly what it would see queued behind that
            # batch. Not behind this connection's own statements still in
            # flight: it must see them, and they may change its database.
            started = perf_counter()
            outcome = session.try_small_read(text, SMALL_READ_ROWS)
            if outcome is not None:
                self.small_read_seconds.observe(perf_counter() - started)
                self.small_reads += 1
                return self._encode(outcome, text)
            if alone:
                answer = self._lone_write(client, text)
                if answer is not None:
                    return answer
        self._last_writer = (client, monotonic())
        client.in_flight += 1
        client.last = self._engine.submit(session, text, client)
        return client.last

    def _lone_write(self, client: _Client, text: str) -> bytes | None:
        """The answer to a lone writer's small insert, run here on the event loop; None otherwise.

        A hand-over to the engine thread and back costs a quarter of a small
        durable insert's CPU (two thread wake-ups); the engine thread is
        there to keep the loop free during long statements and to share one
        commit among overlapping writers. So: only an insert of at most
        LONE_INSERT_ROWS literal rows, when no other connection wrote in
        the last LONE_WRITER_S, no batch is open (the store's write lock is
        free: not even a checkpoint), no commit lock is held (replication
        copying into this directory or a peer's), and no peer is asked over
        the network (its answer must never wait for this loop), and the last
        commit was quick (LONE_SLOW_COMMIT_S: a disk that stalls holds the
        loop for one fsync, not for each). The loop is then busy for one
        small insert and its fsync, as for a small read.
        """
        if self._last_commit_s > LONE_SLOW_COMMIT_S:
            return None
        last_client, last_at = self._last_writer
        now = monotonic()
        if last_client is not client and now - last_at < LONE_WRITER_S:
            return None
        if self._peers is not None and not self._peers.all_local():
            return None
        if not client.session.is_small_literal_insert(text, LONE_INSERT_ROWS):
            return None
        if not self.store.write_lock.acquire(blocking=False):
            return None
        try:
            if not self.store.commit_locks_free():
                return None   # a copy holds one: its wait belongs on the engine thread
            self._last_writer = (client, now)
            self.lone_writes += 1
            return self.run_batch([_Job(client.session, text, None)])[0]
        finally:
            self.store.write_lock.release()

    def _hold(self, client: _Client, text: str, password: str | None) -> asyncio.Future:
        """A statement whose password is hashed first (on a password thread), or one its
        connection sent behind such a statement: it goes to the engine thread once the
        hashes before it, and its own, are done, in its connection's order."""
        answer = asyncio.get_running_loop().create_future()
        hashing = None
        if password is not None:
            hashing = self.accounts.hash_ahead(password)
            hashing.add_done_callback(lambda _: self._hand_over_held(client))
        client.held.append(_Held(text, hashing, answer))
        client.in_flight += 1
        client.last = answer
        return answer

    def _hand_over_held(self, client: _Client) -> None:
        """Hand the connection's held statements whose turn came to the engine thread."""
        assert self._engine is not None   # (only statements for it are held)
        held = client.held
        while held and (held[0].hashing is None or held[0].hashing.done()):
            item = held.popleft()
            if item.answer.done():   # cancelled: its connection is gone, nobody reads it
                client.in_flight -= 1
                continue
            future = self._engine.submit(client.session, item.text, client,
                                         self._hashed(item.hashing))
            _relay(future, item.answer)

    def _hashed(self, hashing: asyncio.Future | None) -> PasswordHash | None:
        """The hash a password thread made (None: the statement hashes its own, as before)."""
        if hashing is None or hashing.cancelled():
            return None
        error = hashing.exception()
        if error is not None:
            # (Its kind only: nothing of the password can reach the log this way.)
            self.logger.error("hashing a password ahead failed (%s): the statement hashes it",
                              type(error).__name__)
            return None
        return hashing.result()

    def run_batch(self, jobs: list[_Job]) -> list[bytes]:
        """Run statements as one group commit; their encoded responses, in order.

        Returns only once every write of the batch is durable. If nothing of
        the batch was renamed into place the statements either run again one
        by one (each with its own durable write and outcome: the files could
        not be prepared, or a peer holds a newer copy, which the re-run pulls
        first) or all fail cleanly. After a partial install each statement
        gets the outcome its own files allow (`outcomes_after_partial_commit`).
        """
        # Whichever thread runs a batch (the engine thread, or the event loop
        # for a lone write) updates the counters below: one at a time.
        with self.store.write_lock:
            outcomes = self._batch_outcomes(jobs)
        return [self._encode(outcome, job.text) for outcome, job in zip(outcomes, jobs, strict=True)]

    def _batch_outcomes(self, jobs: list[_Job]) -> list[Outcome]:
        store = self.store
        saved = [job.session.current_database for job in jobs]
        outcomes: list[Outcome] = []
        written: list[frozenset[str]] = []  # each statement's files
        used: list[frozenset[str]] = []     # the earlier statements' files each one read
        timed = self.batch_statement_seconds
        store.begin_batch()
        try:
            for job in jobs:
                mark = store.batch_mark()
                started = perf_counter()
                self.activity.begin(job.session, job.text)
                try:
                    outcome = self._outcome(job)
                finally:
                    self.activity.end()
                timed.observe(perf_counter() - started)
                if not outcome.ok:
                    store.batch_rollback(mark)  # a failed statement leaves no trace
                outcomes.append(outcome)
                written.append(store.batch_written_since(mark) if outcome.ok else frozenset())
                used.append(store.batch_read_since(mark) if outcome.ok else frozenset())
            started = perf_counter()
            files = store.commit_batch()
            if files:
                if len(self.storage_faults):
                    self.storage_faults.peers_reached()
                self.commits += 1
                self._last_commit_s = perf_counter() - started
                self.commit_seconds.observe(self._last_commit_s)
            self.files_committed += files
        except BatchNotWritten as refused:
            for job, database in zip(jobs, saved, strict=True):
                job.session.current_database = database
            if refused.retry:
                # Alone, a statement that cannot be written fails with its own StorageFault.
                outcomes = [self._outcome(job) for job in jobs]
            else:
                outcomes = [Outcome.failure(ERROR_PREFIX + refused.message)] * len(jobs)
        except BatchPartlyWritten as partial:
            outcomes = outcomes_after_partial_commit(outcomes, written, partial, used)
            written = [keys & partial.durable for keys in written]
            for job, outcome, before, database in zip(jobs, outcomes, written, saved, strict=True):
                if not outcome.ok and not before & partial.renamed:
                    job.session.current_database = database  # it did not happen
        finally:
            store.abort_batch()  # no-op once committed
        if len(self.storage_faults):
            # (After a re-run one by one, a statement wrote the files it wrote in the batch.)
            self._written_fine(key for outcome, keys in zip(outcomes, written, strict=True) if outcome.ok
                               for key in keys)
        self.batches += 1
        self.batched_statements += len(jobs)
        self.largest_batch = max(self.largest_batch, len(jobs))
        return outcomes

    def _outcome(self, job: _Job) -> Outcome:
        try:
            return job.session.execute_one(job.text, job.hashed)
        except Exception:  # a bug in the engine must not take the connection down
            self.logger.exception("engine failed on %r", redact_secrets(job.text[:200]))
            return Outcome.failure(INTERNAL_ERROR)

    def _encode(self, outcome: Outcome, text: str) -> bytes:
        if not outcome.ok:
            self.statement_errors += 1
            if outcome.fault is not None:
                self.storage_faults.record(outcome.fault)
        try:
            return self.encoder.encode(outcome)
        except Exception:
            self.logger.exception("could not encode the outcome of %r", redact_secrets(text[:200]))
            self.statement_errors += 1
            return encode_error(INTERNAL_ERROR)

    async def stop(self) -> None:
        self.accounts.stop()
        loop = asyncio.get_running_loop()
        if self._engine is not None:
            # Statements already queued finish (each batch is committed whole).
            self._engine.hand_over()
            await loop.run_in_executor(None, self._engine.stop)
        # A clean stop leaves every table as one plain snapshot (docs/STORAGE.md).
        folded = await loop.run_in_executor(None, self.store.checkpoint_all)
        if folded:
            self.logger.info("checkpointed %d tables at stop", folded)
        self.peer_service.close()


def outcomes_after_partial_commit(outcomes: list[Outcome], written: list[frozenset[str]],
                                  partial: BatchPartlyWritten,
                                  used: list[frozenset[str]] | None = None) -> list[Outcome]:
    """Each statement's outcome once some of the batch's files were renamed, then a failure.

    A statement all of whose files are renamed and durable succeeded, unless
    it read an earlier statement's write that is not (`used`: `manampia ao@
    t alaivo * ao@ u` after a failed write of u): what it wrote holds rows of
    a write that did not happen, "outcome unknown". One with a file renamed
    but not confirmed durable, or only part of its files renamed, may or may
    not have been applied: "outcome unknown" (a retry could apply it twice).
    One none of whose files was renamed failed. A statement that wrote
    nothing but ran after the first writer may have read writes that are not
    in place: it fails (it changed nothing).
    """
    first_writer = next((index for index, keys in enumerate(written) if keys), len(outcomes))
    used = used if used is not None else [frozenset()] * len(outcomes)
    result = []
    for index, (outcome, keys, read) in enumerate(zip(outcomes, written, used, strict=True)):
        if keys:
            if keys <= partial.durable:
                result.append(outcome if read <= partial.durable
                              else Outcome.failure(partial.message))
            elif keys & partial.renamed:
                result.append(Outcome.failure(partial.message))
            else:
                result.append(Outcome.failure(NOT_WRITTEN))
        elif outcome.ok and index > first_writer:
            result.append(Outcome.failure(NOT_WRITTEN))
        else:
            result.append(outcome)
    return result
