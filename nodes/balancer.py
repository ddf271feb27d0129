"""The load balancer: `python -m nodes.balancer --id lb --port 3949 --backend m1=HOST:PORT ...`.

An asyncio TCP server between clients and the database servers. Each client
connection gets a `ClientSession` holding its current database and one lazily
opened connection per backend it has used; before a statement runs on a
backend connection whose database differs from the session's, the session's
`ampiasao <db>;` is replayed there (also on a fresh connection after
failover).

Routing (decisions in nodes.routing, health in nodes.health):
- reads (`alaivo`, `asehoy`) go to the least loaded ONLINE backend; a read
  that meets a connection error or a timeout is retried on another backend;
- writes go to the owner of the object (rendezvous hashing of database and
  object over ONLINE writable backends); if the owner cannot even be
  connected to, nothing was sent and the next owner takes it; if the
  connection dies after the write was sent, the outcome is unknown and
  reported as an error, never sent twice;
- `manamboara tahiry` / `ravao ny tahiry` go to every ONLINE writable
  backend, so the next `ampiasao` works wherever it lands;
- `ampiasao DB` succeeds iff some ONLINE backend has DB.

Read-your-writes rule: the session remembers which backend acknowledged its
latest write of each object (bounded LRU). A read that names an object the
session wrote goes to that backend while it is ONLINE; a read naming no object
(`asehoy ny tabilao`) goes to the backend of the session's latest write in
the current database. Without replication that backend is the only one
holding the write; with replication it is still the freshest copy, so the rule
needs no timing guess. Other reads are spread.

Health: an active prober sends `.ping;` to every backend each probe interval
with a timeout; traffic errors count too. A backend that goes OFFLINE has all
its connections aborted, so requests stuck on a frozen server fail over at
once. The backends file (JSON written by the supervisor) is polled at the
probe interval and replaces the backend set without a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from engine import ast
from engine.classify import classify
from engine.errors import TahiryError
from engine.parser import StatementParser
from nodes.common import (ConnectionStats, admin_response, load_topology_node,
                          node_argument_parser, run_server, serve_connection, set_nodelay,
                          setup_logging)
from nodes.health import BackendHealth, BackendState, HealthPolicy, Transition
from nodes.protocol import (ProtocolError, Request, Response, ResponseDecoder, encode_error,
                            statement_bytes)
from nodes.routing import ReadSelector, rank_owners

log = logging.getLogger("tahiry.balancer")

MAX_REMEMBERED_WRITES = 4096
READ_CHUNK = 1 << 16


# --------------------------------------------------------------------------
# Backend configuration


@dataclass(frozen=True)
class BackendSpec:
    """One backend as configured: `writable=False` means catching up, reads only."""

    id: str
    host: str
    port: int
    writable: bool = True


def parse_backend_option(text: str) -> BackendSpec:
    """`m1=127.0.0.1:3948` -> BackendSpec; ValueError with a clear reason."""
    name, sep, address = text.partition("=")
    host, colon, port = address.rpartition(":")
    if not sep or not name or not colon or not host or not port.isdigit():
        raise ValueError(f"--backend {text!r}: expected ID=HOST:PORT, e.g. m1=127.0.0.1:3948")
    if not 0 < int(port) < 65536:
        raise ValueError(f"--backend {text!r}: port out of range")
    return BackendSpec(name, host, int(port))


def parse_backends_document(text: str) -> list[BackendSpec]:
    """The backends file: `{"backends":[{"id","host","port","writable"}]}`."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    entries = document.get("backends") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError('expected an object with a "backends" list')
    specs: list[BackendSpec] = []
    for index, entry in enumerate(entries):
        where = f"backends[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object")
        backend_id, host, port = entry.get("id"), entry.get("host"), entry.get("port")
        writable = entry.get("writable", True)
        if not isinstance(backend_id, str) or not backend_id:
            raise ValueError(f"{where}.id: expected a non-empty string")
        if not isinstance(host, str) or not host:
            raise ValueError(f"{where}.host: expected a non-empty string")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValueError(f"{where}.port: expected an integer 1..65535")
        if not isinstance(writable, bool):
            raise ValueError(f"{where}.writable: expected true or false")
        if any(spec.id == backend_id for spec in specs):
            raise ValueError(f"{where}.id: {backend_id!r} appears twice")
        specs.append(BackendSpec(backend_id, host, port, writable))
    return specs


@dataclass(frozen=True)
class Timeouts:
    """Every socket operation towards a backend is bounded by one of these (seconds)."""

    connect: float = 1.0
    probe: float = 1.0
    request: float = 30.0


# --------------------------------------------------------------------------
# Backends and connections


class BackendUnavailable(Exception):
    """A backend could not serve a request. `sent`: the request may have reached it."""

    def __init__(self, backend_id: str, reason: str, sent: bool):
        super().__init__(f"{backend_id}: {reason}")
        self.backend_id = backend_id
        self.reason = reason
        self.sent = sent


class DatabaseMissing(Exception):
    """Replaying `ampiasao` failed on a backend: it does not have the database (yet)."""

    def __init__(self, backend_id: str, response: Response):
        super().__init__(response.message)
        self.backend_id = backend_id
        self.response = response


class Backend:
    """A configured backend at run time: its health, load and open connections."""

    def __init__(self, spec: BackendSpec, health: BackendHealth):
        self.spec = spec
        self.health = health
        self.outstanding = 0
        self.reads = 0
        self.writes = 0
        self.connections: set[BackendConnection] = set()

    @property
    def id(self) -> str:
        return self.spec.id

    def abort_connections(self) -> None:
        for connection in list(self.connections):
            connection.close()


class BackendConnection:
    """One TCP connection to a backend and the database currently selected on it."""

    def __init__(self, backend: Backend, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.backend = backend
        self.reader = reader
        self.writer = writer
        self.database: str | None = None
        self._decoder = ResponseDecoder(decode_relations=False)
        backend.connections.add(self)

    @classmethod
    async def open(cls, backend: Backend, timeout: float) -> "BackendConnection":
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(backend.spec.host, backend.spec.port)
        except TimeoutError:
            raise BackendUnavailable(backend.id, f"no connection within {timeout:g}s", sent=False) from None
        except OSError as error:
            raise BackendUnavailable(backend.id, error.strerror or str(error), sent=False) from None
        set_nodelay(writer)
        return cls(backend, reader, writer)

    @property
    def usable(self) -> bool:
        # A peer that died or restarted has already sent FIN/RST, which the
        # event loop turned into EOF: such a connection is known dead before
        # anything is sent on it.
        return not self.writer.is_closing() and not self.reader.at_eof()

    async def roundtrip(self, payload: bytes, timeout: float) -> Response:
        """Send one request, return its one response; BackendUnavailable on any failure."""
        backend_id = self.backend.id
        if not self.usable:
            self.close()
            raise BackendUnavailable(backend_id, "connection already closed", sent=False)
        self.writer.write(payload)
        if self.writer.is_closing():
            # The send itself failed (reset by a dead peer): nothing arrived.
            self.close()
            raise BackendUnavailable(backend_id, "connection reset before sending", sent=False)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    data = await self.reader.read(READ_CHUNK)
                    if not data:
                        raise BackendUnavailable(backend_id, "connection closed by the server", sent=True)
                    responses = self._decoder.feed(data)
                    if responses:
                        return responses[0]
        except BackendUnavailable:
            self.close()
            raise
        except TimeoutError:
            self.close()
            raise BackendUnavailable(backend_id, f"no answer within {timeout:g}s", sent=True) from None
        except (OSError, ProtocolError) as error:
            self.close()
            raise BackendUnavailable(backend_id, str(error) or type(error).__name__, sent=True) from None

    def close(self) -> None:
        self.backend.connections.discard(self)
        self.writer.transport.abort()


# --------------------------------------------------------------------------
# Client sessions


class ClientSession:
    """What the balancer remembers about one client connection."""

    def __init__(self) -> None:
        self.database: str | None = None
        self.connections: dict[str, BackendConnection] = {}
        # (database, object) -> (sequence number, backend) of the latest write.
        self._written: OrderedDict[tuple[str, str], tuple[int, str]] = OrderedDict()
        self._last_write: dict[str, str] = {}
        self._write_count = 0

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

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()
        self.connections.clear()


# --------------------------------------------------------------------------
# The balancer


class Balancer:
    """Routes statements of client sessions over a changing set of backends."""

    def __init__(self, node_id: str, specs: list[BackendSpec], policy: HealthPolicy,
                 timeouts: Timeouts, probe_interval: float,
                 backends_file: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log):
        self.node_id = node_id
        self.log = logger
        self.policy = policy
        self.timeouts = timeouts
        self.probe_interval = probe_interval
        self.backends_file = backends_file
        self._backends_file_stamp: tuple[int, int, int] | None = None
        self.clock = clock
        # One parser for all sessions: the event loop is one thread, so
        # sharing is safe, and its LRU cache then serves every client.
        self.parser = StatementParser()
        self.pool: dict[str, Backend] = {}
        self.selector = ReadSelector()
        self.clients = 0
        self.connection_stats = ConnectionStats()
        self.counters = {name: 0 for name in (
            "statements", "reads", "writes", "uses", "database_ddl", "retries",
            "rerouted_writes", "unknown_writes", "failovers", "local_errors")}
        self._probe_connections: dict[str, BackendConnection] = {}
        self.apply_specs(specs)

    # -- backend set -------------------------------------------------------

    def apply_specs(self, specs: list[BackendSpec]) -> None:
        """Make the backend set equal to `specs`, keeping state of unchanged ones."""
        wanted = {spec.id: spec for spec in specs}
        for backend_id in list(self.pool):
            old = self.pool[backend_id]
            new = wanted.get(backend_id)
            if new is None or (new.host, new.port) != (old.spec.host, old.spec.port):
                self.log.info("backend %s removed (%s:%d)", backend_id, old.spec.host, old.spec.port)
                old.abort_connections()
                del self.pool[backend_id]
                self._probe_connections.pop(backend_id, None)
            elif new.writable != old.spec.writable:
                self.log.info("backend %s is now %s", backend_id,
                              "writable" if new.writable else "read-only (catching up)")
                old.spec = new
        for backend_id, spec in wanted.items():
            if backend_id not in self.pool:
                self.log.info("backend %s added (%s:%d)", backend_id, spec.host, spec.port)
                # Unconfirmed until its first probe answers: SHUNNED gets no
                # traffic but turns ONLINE on one success.
                health = BackendHealth(backend_id, self.policy, self.clock, BackendState.SHUNNED)
                self.pool[backend_id] = Backend(spec, health)

    def _candidates(self, writable_only: bool = False) -> list[str]:
        """ONLINE backends; SHUNNED ones only as a last resort when none is ONLINE."""
        eligible = [b for b in self.pool.values() if b.spec.writable or not writable_only]
        online = [b.id for b in eligible if b.health.state is BackendState.ONLINE]
        if online:
            return online
        return [b.id for b in eligible if b.health.state is BackendState.SHUNNED]

    def _record(self, backend: Backend, transition: Transition | None) -> None:
        if transition is None:
            return
        level = logging.INFO if transition.new is BackendState.ONLINE else logging.WARNING
        self.log.log(level, "backend %s: %s -> %s (%s)", transition.backend_id,
                     transition.old.value, transition.new.value, transition.reason)
        if transition.old is BackendState.ONLINE:
            self.counters["failovers"] += 1
        if transition.new is BackendState.OFFLINE:
            # Requests stuck on a frozen server fail now and go elsewhere.
            backend.abort_connections()

    def _failed(self, backend: Backend, error: BackendUnavailable) -> None:
        self._record(backend, backend.health.record_failure(error.reason))

    # -- connections of a session ------------------------------------------

    async def _connection(self, session: ClientSession, backend: Backend,
                          select_database: bool = True) -> BackendConnection:
        """The session's connection to `backend`, with the session's database selected."""
        connection = session.connections.get(backend.id)
        if connection is not None and (connection.backend is not backend or not connection.usable):
            connection.close()
            connection = None
        if connection is not None and select_database and session.database is None \
                and connection.database is not None:
            # There is no statement to unselect a database: start afresh.
            connection.close()
            connection = None
        if connection is None:
            connection = await BackendConnection.open(backend, self.timeouts.connect)
            session.connections[backend.id] = connection
        if select_database and session.database is not None \
                and connection.database != session.database:
            try:
                response = await connection.roundtrip(
                    statement_bytes(f"ampiasao {session.database}"), self.timeouts.request)
            except BackendUnavailable as error:
                # Only the replay was sent, not the statement itself.
                error.sent = False
                raise
            if not response.ok:
                raise DatabaseMissing(backend.id, response)
            connection.database = session.database
        return connection

    async def _send(self, session: ClientSession, backend: Backend, payload: bytes,
                    select_database: bool = True) -> Response:
        connection = await self._connection(session, backend, select_database)
        return await connection.roundtrip(payload, self.timeouts.request)

    # -- statements --------------------------------------------------------

    async def answer(self, session: ClientSession, request: Request) -> bytes:
        """The complete response bytes for one framed request."""
        if request.error is not None:
            return encode_error(request.error)
        if request.admin is not None:
            return admin_response(request, self.node_id, "balancer", self.status)
        self.counters["statements"] += 1
        try:
            return await self._statement(session, request.text)
        except Exception:  # a bug must cost one statement, not the connection
            self.log.exception("internal error on statement %r", request.text[:200])
            self.counters["local_errors"] += 1
            return encode_error("Nisy olana tao anatin'ny load balancer; tsy vita ny baiko")

    async def _statement(self, session: ClientSession, text: str) -> bytes:
        payload = statement_bytes(text)
        try:
            statement = self.parser.parse(text)
        except TahiryError as error:
            self.counters["local_errors"] += 1
            return encode_error(error.message)
        if statement is None:  # comments only: let a server answer as it does
            return await self._read(session, (), payload)
        kind = classify(statement)
        if kind.kind == "use":
            return await self._use(session, kind.database, payload)
        if kind.kind == "database":
            return await self._database_ddl(session, statement, kind.database, payload)
        objects = tuple(kind.objects or ())
        if kind.kind == "read" or session.database is None:
            # A write with no database selected changes nothing anywhere: any
            # server answers the error.
            return await self._read(session, objects, payload)
        return await self._write(session, objects[0] if objects else "", payload)

    async def _read(self, session: ClientSession, objects: tuple[str, ...],
                    payload: bytes) -> bytes:
        self.counters["reads"] += 1
        preferred = session.read_preference(objects)
        tried: list[str] = []
        missing: DatabaseMissing | None = None
        reasons: list[str] = []
        while True:
            candidates = self._candidates()
            if preferred in candidates and preferred not in tried:
                backend_id = preferred
            else:
                backend_id = self.selector.pick(
                    candidates, {b: self.pool[b].outstanding for b in candidates}, exclude=tried)
            if backend_id is None:
                break
            if tried:
                self.counters["retries"] += 1
            tried.append(backend_id)
            backend = self.pool[backend_id]
            backend.outstanding += 1
            try:
                response = await self._send(session, backend, payload)
            except BackendUnavailable as error:
                self._failed(backend, error)
                reasons.append(str(error))
                continue
            except DatabaseMissing as error:
                missing = missing or error
                continue
            finally:
                backend.outstanding -= 1
            backend.reads += 1
            return response.raw
        if missing is not None:
            return missing.response.raw
        return encode_error("Tsy misy mpizara afaka mamaly ankehitriny"
                            + (f" ({'; '.join(reasons)})" if reasons else ""))

    async def _write(self, session: ClientSession, obj: str, payload: bytes) -> bytes:
        self.counters["writes"] += 1
        database = session.database
        owners = rank_owners(database, obj, self._candidates(writable_only=True))
        reasons: list[str] = []
        for attempt, backend_id in enumerate(owners):
            if attempt:
                self.counters["rerouted_writes"] += 1
            backend = self.pool[backend_id]
            backend.outstanding += 1
            try:
                response = await self._send(session, backend, payload)
            except BackendUnavailable as error:
                self._failed(backend, error)
                if error.sent:
                    self.counters["unknown_writes"] += 1
                    return encode_error(
                        f"Tapaka ny fifandraisana tamin'ny mpizara {backend_id} ({error.reason}): "
                        "the outcome of this write is unknown (it may or may not have been "
                        "applied); it was not sent again")
                reasons.append(str(error))
                continue  # nothing was sent: the next owner may take it
            except DatabaseMissing as error:
                return error.response.raw
            finally:
                backend.outstanding -= 1
            backend.writes += 1
            if response.ok:
                session.remember_write(database, obj, backend_id)
            return response.raw
        return encode_error("Tsy misy mpizara afaka manoratra ankehitriny"
                            + (f" ({'; '.join(reasons)})" if reasons else ""))

    async def _use(self, session: ClientSession, database: str, payload: bytes) -> bytes:
        """`ampiasao DB`: succeeds iff some ONLINE backend has DB."""
        self.counters["uses"] += 1
        candidates = self._candidates()
        first = self.selector.pick(candidates, {b: self.pool[b].outstanding for b in candidates})
        order = ([first] if first else []) + [b for b in candidates if b != first]
        refusal: Response | None = None
        reasons: list[str] = []
        for backend_id in order:
            backend = self.pool[backend_id]
            try:
                connection = await self._connection(session, backend, select_database=False)
                response = await connection.roundtrip(payload, self.timeouts.request)
            except BackendUnavailable as error:
                self._failed(backend, error)
                reasons.append(str(error))
                continue
            if response.ok:
                connection.database = database
                if session.database != database:
                    session.database = database
                return response.raw
            refusal = refusal or response
        if refusal is not None:
            return refusal.raw
        return encode_error("Tsy misy mpizara afaka mamaly ankehitriny"
                            + (f" ({'; '.join(reasons)})" if reasons else ""))

    async def _database_ddl(self, session: ClientSession, statement: ast.Statement,
                            database: str, payload: bytes) -> bytes:
        """Create or drop a database on every ONLINE writable backend."""
        self.counters["database_ddl"] += 1
        targets = [b for b in self._candidates(writable_only=True)
                   if self.pool[b].health.state is BackendState.ONLINE]
        if not targets:
            return encode_error("Tsy misy mpizara afaka manoratra ankehitriny")

        async def apply(backend_id: str) -> tuple[str, Response | BackendUnavailable]:
            backend = self.pool[backend_id]
            try:
                return backend_id, await self._send(session, backend, payload, select_database=False)
            except BackendUnavailable as error:
                self._failed(backend, error)
                return backend_id, error

        results = await asyncio.gather(*(apply(b) for b in targets))
        applied = [(b, r) for b, r in results if isinstance(r, Response) and r.ok]
        failed = [(b, r) for b, r in results if not (isinstance(r, Response) and r.ok)]
        if isinstance(statement, ast.Drop) and applied:
            # The server unselects a database it drops on that connection.
            for backend_id, _ in applied:
                connection = session.connections.get(backend_id)
                if connection is not None and connection.database == database:
                    connection.database = None
            if session.database == database:
                session.database = None
            session.forget_database(database)
        if not failed:
            return applied[0][1].raw
        if not applied and all(isinstance(r, Response) for _, r in failed) \
                and len({r.message for _, r in failed}) == 1:
            return failed[0][1].raw  # the same refusal everywhere: just that error
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
        return encode_error(f"Tsy vita tamin'ny mpizara rehetra ny baiko (vita tamin'ny: {done}; "
                            + "; ".join(parts) + ")")

    # -- health probes and the backends file -------------------------------

    async def probe(self, backend: Backend) -> None:
        connection = self._probe_connections.get(backend.id)
        started = time.perf_counter()
        try:
            if connection is None or not connection.usable or connection.backend is not backend:
                connection = await BackendConnection.open(backend, self.timeouts.probe)
                self._probe_connections[backend.id] = connection
            response = await connection.roundtrip(statement_bytes(".ping"), self.timeouts.probe)
        except BackendUnavailable as error:
            self._probe_connections.pop(backend.id, None)
            if backend.id in self.pool and self.pool[backend.id] is backend:
                self._failed(backend, error)
            return
        if backend.id not in self.pool or self.pool[backend.id] is not backend:
            return  # removed while the probe ran
        if response.ok and response.message.startswith("PONG"):
            self._record(backend, backend.health.record_success(time.perf_counter() - started))
        else:
            self._record(backend, backend.health.record_failure(f"bad probe answer {response.message[:80]!r}"))

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(b) for b in list(self.pool.values())))

    def reload_backends_file(self) -> None:
        """Re-read the backends file if its mtime or size changed; keep the old set on error."""
        if not self.backends_file:
            return
        try:
            info = os.stat(self.backends_file)
        except OSError as error:
            if self._backends_file_stamp != (0, 0, 0):
                self.log.error("backends file %s: %s; keeping the current backends",
                          self.backends_file, error.strerror)
                self._backends_file_stamp = (0, 0, 0)
            return
        # The inode changes on every atomic replace, even within one mtime tick.
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp == self._backends_file_stamp:
            return
        self._backends_file_stamp = stamp
        try:
            with open(self.backends_file, encoding="utf-8") as handle:
                specs = parse_backends_document(handle.read())
        except (OSError, ValueError) as error:
            self.log.error("backends file %s: %s; keeping the current backends", self.backends_file, error)
            return
        self.apply_specs(specs)

    async def _probe_forever(self, backend: Backend) -> None:
        while self.pool.get(backend.id) is backend:
            started = time.monotonic()
            await self.probe(backend)
            await asyncio.sleep(max(0.0, self.probe_interval - (time.monotonic() - started)))

    async def run_prober(self) -> None:
        """One probe loop per backend (a frozen one must not slow the others down)."""
        probers: dict[Backend, asyncio.Task] = {}
        try:
            while True:
                self.reload_backends_file()
                for backend in self.pool.values():
                    if backend not in probers or probers[backend].done():
                        probers[backend] = asyncio.create_task(self._probe_forever(backend))
                for backend in [b for b in probers if self.pool.get(b.id) is not b]:
                    probers.pop(backend).cancel()
                await asyncio.sleep(self.probe_interval)
        finally:
            for task in probers.values():
                task.cancel()

    # -- serving clients ---------------------------------------------------

    async def handle_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = ClientSession()
        self.clients += 1

        async def handle(request: Request) -> bytes:
            return await self.answer(session, request)

        try:
            await serve_connection(reader, writer, handle, self.connection_stats, self.log)
        finally:
            self.clients -= 1
            session.close()

    def status(self) -> dict:
        return {
            **self.connection_stats.as_dict(),
            "clients": self.clients,
            "counters": dict(self.counters),
            "backends": {
                b.id: {"host": b.spec.host, "port": b.spec.port, "writable": b.spec.writable,
                       **b.health.snapshot(), "reads": b.reads, "writes": b.writes,
                       "outstanding": b.outstanding, "connections": len(b.connections)}
                for b in self.pool.values()},
        }


# --------------------------------------------------------------------------
# Process entry point


def build_argument_parser() -> argparse.ArgumentParser:
    parser = node_argument_parser("Tahiry load balancer", default_port=3949)
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
    return parser


async def serve(balancer: Balancer, host: str, port: int, logger: logging.Logger) -> None:
    # Know who is up before the first client arrives.
    balancer.reload_backends_file()
    await balancer.probe_all()
    logger.info("backends: %s", ", ".join(
        f"{b.id}={b.spec.host}:{b.spec.port} {b.health.state.value}"
        for b in balancer.pool.values()) or "none")
    prober = asyncio.create_task(balancer.run_prober())

    async def stop_prober() -> None:
        prober.cancel()

    await run_server(balancer.handle_client, host, port, logger, on_stop=stop_prober)


def main(argv: list[str] | None = None) -> int:
    args = build_argument_parser().parse_args(argv)
    entry = load_topology_node(args)
    logger = setup_logging(args.id, args.log_file, args.log_level)
    try:
        backend_options = args.backend or entry.get("backends") or []
        specs = [] if args.backends_file else [parse_backend_option(b) for b in backend_options]
        if len({s.id for s in specs}) != len(specs):
            raise ValueError("--backend: the same ID is given twice")
        policy = HealthPolicy(rise=args.rise, fall=args.fall)
        for name in ("probe_interval_ms", "probe_timeout_ms", "connect_timeout_ms", "request_timeout_ms"):
            if getattr(args, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive")
    except ValueError as error:
        print(f"balancer: {error}", file=sys.stderr)
        return 2
    timeouts = Timeouts(connect=args.connect_timeout_ms / 1000, probe=args.probe_timeout_ms / 1000,
                        request=args.request_timeout_ms / 1000)
    balancer = Balancer(args.id, specs, policy, timeouts, args.probe_interval_ms / 1000,
                        backends_file=args.backends_file, logger=logger)
    try:
        asyncio.run(serve(balancer, args.host, args.port, logger))
    except OSError as error:
        print(f"balancer: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
