"""The crash-point sweep: a server killed at many points of its write path, checked after each.

One data directory lives through the whole sweep. For each kill point a
`crashing_server.py` process starts on it; first the state left by the
previous kill is read back over the wire and compared with the model of
what was acknowledged, then two clients ("lanes", each with its own tables,
running at the same time so the server's group commit batches them) send
multi-row inserts with unique keys, updates, deletes, table creations and
inserts that fail on a domain, until the server kills itself. After each
kill every object file must parse. A plain server checks the final state.

The model is exact: every acknowledged statement is applied to it, a
failed one is not. The one statement of each lane in flight at the kill
(or answered "outcome unknown": the lane stops there) may be applied or
not, but wholly: the lane's state read back must equal
its model either without it or with it, and becomes the model from then on.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engine.session import Session
from engine.storage import Store

from tests.integration.faultkit import (ConnectionLost, WireClient, free_port, outcome_unknown,
                                        rows_of, server_command, start_process, stop_process,
                                        temp_files, torn_files)

DATABASE = "crash"
FIXED_TABLES = ("t1", "t2")
MAX_STATEMENTS = 40            # per kill point; the points below are reached long before
# In write-path order: temp file opened, written, fsynced; renamed; folder opened, fsynced.
KILL_OPERATIONS = (("before", "open"), ("after", "open"), ("before", "write"),
                   ("mid", "write"), ("after", "write"), ("before", "fsync"), ("after", "fsync"),
                   ("before", "replace"), ("after", "replace"), ("before", "opendir"),
                   ("after", "opendir"), ("before", "fsyncdir"), ("after", "fsyncdir"))
# Injected I/O errors (EIO) while the temp files are prepared, before any rename of the
# group commit: the statements must fail and leave nothing.
FAIL_OPERATIONS = ("open", "write", "fsync")
# ... and from the renames on (a batch's second rename, the folder fsync): what is in
# place and durable succeeds, what may be is "outcome unknown", never "failed"
# (test_failure_after_rename_is_not_reported_as_failed).
FAIL_AFTER_RENAME = ("replace", "opendir", "fsyncdir")


def default_kill_points(per_operation: int = 4, fail_counts: tuple[int, ...] = (1, 2)) -> list[str]:
    """13 phase-operation pairs x N in 1..per_operation, plus injected I/O errors."""
    points = [f"{phase}-{operation}:{n}" for n in range(1, per_operation + 1)
              for phase, operation in KILL_OPERATIONS]
    points += [f"fail-{operation}:{n}" for n in fail_counts for operation in FAIL_OPERATIONS]
    return points


# --------------------------------------------------------------------------
# the model


@dataclass
class State:
    """What the database must hold: rows by key per fixed table, created tables."""

    rows: dict[str, dict[int, int]]
    tables: set[str]


@dataclass
class Statement:
    text: str
    kind: str                                   # insert, bad-insert, update, delete, create
    apply: Callable[[State], State]
    keys: tuple = ()


class WorkloadModel:
    """One client's lane: its own tables; generates statements, knows their effect.

    Lanes run in parallel (so the server batches their statements into one
    group commit) but never touch each other's tables, so each lane's state
    is checked on its own.
    """

    def __init__(self, seed: int, tables: tuple[str, ...] = FIXED_TABLES, prefix: str = "c",
                 key_base: int = 0):
        self.rng = random.Random(seed)
        self.tables = tables
        self.prefix = prefix
        self.state = State({t: {} for t in tables}, set(tables))
        self.next_key = key_base + 1
        self.next_table = 1
        self.failed_keys: set[tuple[str, int]] = set()
        self.pending: Statement | None = None

    def owns(self, table: str) -> bool:
        return table in self.tables or (table.startswith(self.prefix) and table[1:].isdigit())

    def project(self, state: State) -> State:
        """This lane's part of the whole database state."""
        return State({t: state.rows[t] for t in self.tables},
                     {t for t in state.tables if self.owns(t)})

    def _fresh_key(self) -> int:
        self.next_key += 1
        return self.next_key

    def next_statement(self) -> Statement:
        roll = self.rng.random()
        table = self.rng.choice(self.tables)
        existing = sorted(self.state.rows[table])
        if roll < 0.12:
            key, bad = self._fresh_key(), self._fresh_key()
            return Statement(f"manampia ao@ {table} sanda ({key}, 1), ({bad}, 500)", "bad-insert",
                             lambda s: s, keys=((table, key), (table, bad)))
        if roll < 0.27 and existing:
            key, value = self.rng.choice(existing), self.rng.randrange(101)
            return Statement(f"havaozy {table} ova v = {value} rehefa k = {key}", "update",
                             lambda s: _with_rows(s, table, {key: value}), keys=((table, key),))
        if roll < 0.37 and existing:
            key = self.rng.choice(existing)
            return Statement(f"fafao ao@ {table} rehefa k = {key}", "delete",
                             lambda s: _with_rows(s, table, {key: None}), keys=((table, key),))
        if roll < 0.45:
            name = f"{self.prefix}{self.next_table}"
            self.next_table += 1
            return Statement(f"manamboara tabilao {name} (k ISA(0, null))", "create",
                             lambda s: State(s.rows, s.tables | {name}),
                             keys=(("<tables>", name),))
        rows = {self._fresh_key(): self.rng.randrange(101) for _ in range(3)}
        values = ", ".join(f"({k}, {v})" for k, v in rows.items())
        return Statement(f"manampia ao@ {table} sanda {values}", "insert",
                         lambda s: _with_rows(s, table, rows),
                         keys=tuple((table, k) for k in rows))


def _with_rows(state: State, table: str, changes: dict[int, int | None]) -> State:
    rows = copy.copy(state.rows)
    rows[table] = dict(rows[table])
    for key, value in changes.items():
        if value is None:
            rows[table].pop(key, None)
        else:
            rows[table][key] = value
    return State(rows, state.tables)


# --------------------------------------------------------------------------
# results


@dataclass
class KillResult:
    point: str
    reached: bool
    exit_code: int | None
    acknowledged: int = 0
    failed: int = 0
    unknown: int = 0          # answers saying the outcome is unknown
    in_flight: str | None = None
    torn: list[str] = field(default_factory=list)
    temp_files: int = 0
    problems: list[str] = field(default_factory=list)   # found when reading back after this kill


@dataclass
class SweepResult:
    kills: list[KillResult] = field(default_factory=list)
    acknowledged: int = 0
    failed: int = 0
    unknown: int = 0
    in_flight_applied: int = 0
    in_flight_absent: int = 0
    lost_acknowledged: int = 0
    failed_present: int = 0
    partial_in_flight: int = 0
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def points_tried(self) -> int:
        return len(self.kills)

    @property
    def points_reached(self) -> int:
        return sum(k.reached for k in self.kills)

    @property
    def files_torn(self) -> int:
        return sum(len(k.torn) for k in self.kills)

    @property
    def problems(self) -> list[str]:
        return [f"{k.point}: {p}" for k in self.kills for p in k.problems + k.torn]


# --------------------------------------------------------------------------
# reading back and comparing


def read_state(client: WireClient) -> State:
    """The whole database as the server shows it (fixed tables' rows, table names)."""
    rows: dict[str, dict[int, int]] = {}
    for table in FIXED_TABLES:
        found: dict[int, int] = {}
        for key, value in rows_of(client.execute(f"alaivo k, v ao@ {table}")):
            if key in found:
                raise AssertionError(f"{table}: key {key} is there twice")
            found[key] = value
        rows[table] = found
    tables = {row[0] for row in rows_of(client.execute("asehoy ny tabilao"))}
    return State(rows, tables)


def compare(expected: State, actual: State, failed_keys: set) -> tuple[int, int, list[str]]:
    """(acknowledged writes lost, failed writes present, descriptions)."""
    lost = present = 0
    notes = []
    for table in expected.rows:
        want, got = expected.rows[table], actual.rows[table]
        for key in sorted(want.keys() | got.keys()):
            if want.get(key) == got.get(key):
                continue
            if (table, key) in failed_keys:
                present += 1
                notes.append(f"{table}: key {key} changed by a FAILED statement "
                             f"(expected {want.get(key)!r}, found {got.get(key)!r})")
            else:
                lost += 1
                notes.append(f"{table}: key {key} expected {want.get(key)!r}, found {got.get(key)!r}")
    for name in sorted(expected.tables ^ actual.tables):
        if ("<tables>", name) in failed_keys:
            present += 1
            notes.append(f"table {name} of a FAILED statement is present")
        else:
            lost += 1
            notes.append(f"table {name}: expected {'present' if name in expected.tables else 'absent'}")
    return lost, present, notes


def reconcile(model: WorkloadModel, whole: State, result: SweepResult,
              kill: KillResult | None) -> None:
    """Check the lane's part of what was read back; adopt it as the lane's model."""
    pending, actual = model.pending, model.project(whole)
    before = model.state
    after = pending.apply(before) if pending is not None else None
    if after is not None and _same(after, actual):
        result.in_flight_applied += 1
    elif _same(before, actual):
        if pending is not None:
            result.in_flight_absent += 1
    else:
        lost, present, notes = compare(before, actual, model.failed_keys)
        if after is not None:
            lost_after, present_after, notes_after = compare(after, actual, model.failed_keys)
            if lost_after + present_after < lost + present:
                lost, present, notes = lost_after, present_after, notes_after
            result.partial_in_flight += 1
            notes.insert(0, f"in-flight statement neither wholly applied nor absent: {pending.text}")
        with result.lock:
            result.lost_acknowledged += lost
            result.failed_present += present
            if kill is not None:
                kill.problems.extend(notes)
    model.state = actual
    model.pending = None


def _same(a: State, b: State) -> bool:
    return a.rows == b.rows and a.tables == b.tables


# --------------------------------------------------------------------------
# the sweep


def create_schema(data: Path) -> None:
    session = Session(Store(data))
    script = (f"manamboara tahiry {DATABASE}; ampiasao {DATABASE};"
              + "".join(f"manamboara tabilao {t} (k ISA(0, null), v ISA(0, 100));"
                        for t in FIXED_TABLES))
    outcomes = session.execute(script)
    bad = [o.message for o in outcomes if not o.ok]
    if bad:
        raise RuntimeError(f"could not create the schema: {bad}")


def run_sweep(workdir: Path, points: list[str], seed: int = 6, lanes: int = 2) -> SweepResult:
    """Kill a server at each point in turn, on one data directory; check after each."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    create_schema(data)
    models = [WorkloadModel(seed + lane, (FIXED_TABLES[lane],), prefix="ab"[lane],
                            key_base=lane * 1_000_000) for lane in range(lanes)]
    result = SweepResult()
    last_kill: KillResult | None = None
    started = time.monotonic()
    for index, point in enumerate(points):
        port = free_port()
        child = start_process(server_command("crash", port, data, kill_at=point),
                              workdir / f"server-{index:03d}.log", workdir, port)
        kill = KillResult(point, reached=False, exit_code=None)
        try:
            child.wait_ready()
            _check_state(port, models, result, last_kill)
            threads = [threading.Thread(target=_drive, args=(port, model, kill, result))
                       for model in models]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
        finally:
            exit_code = stop_process(child, grace_s=5.0)
        log = child.log_text()
        kill.exit_code = exit_code
        kill.reached = f"CRASHING_SERVER KILL {point}" in log or f"CRASHING_SERVER FAIL {point}" in log
        kill.in_flight = "; ".join(m.pending.text for m in models if m.pending) or None
        kill.torn = torn_files(data)
        kill.temp_files = len(temp_files(data))
        result.kills.append(kill)
        last_kill = kill
    port = free_port()
    child = start_process(server_command("clean", port, data), workdir / "server-clean.log",
                          workdir, port)
    try:
        child.wait_ready()
        _check_state(port, models, result, last_kill)
    finally:
        stop_process(child)
    result.seconds = time.monotonic() - started
    return result


def _check_state(port: int, models: list[WorkloadModel], result: SweepResult,
                 kill: KillResult | None) -> None:
    with WireClient(port, timeout=10.0) as client:
        _use(client)
        whole = read_state(client)
    for model in models:
        reconcile(model, whole, result, kill)


def _use(client: WireClient) -> None:
    answer = client.use(DATABASE)
    if not answer.ok:
        raise AssertionError(f"ampiasao {DATABASE}: {answer.message}")


def _drive(port: int, model: WorkloadModel, kill: KillResult, result: SweepResult) -> None:
    """Run the lane's statements until the server dies (the one in flight: `model.pending`)."""
    with WireClient(port, timeout=10.0) as client:
        try:
            _use(client)
        except ConnectionLost:
            return
        for _ in range(MAX_STATEMENTS):
            statement = model.next_statement()
            try:
                answer = client.execute(statement.text)
            except ConnectionLost:
                model.pending = statement
                return
            if not answer.ok and outcome_unknown(answer.message):
                # "outcome unknown": allowed either way, like a statement in
                # flight at a kill; the lane stops so it is the last one.
                with result.lock:
                    kill.unknown += 1
                    result.unknown += 1
                model.pending = statement
                return
            with result.lock:
                if answer.ok:
                    if statement.kind == "bad-insert":
                        kill.problems.append(f"a statement that must fail was accepted: "
                                             f"{statement.text}")
                    kill.acknowledged += 1
                    result.acknowledged += 1
                else:
                    kill.failed += 1
                    result.failed += 1
            if answer.ok:
                model.state = statement.apply(model.state)
            else:
                model.failed_keys.update(statement.keys)
