"""The crash-point sweep: a server killed at many points of its write path, checked after each.

One data directory lives through the whole sweep. It starts as a format 1
server left it (the same documents with `"format": 1`, no journals, no
`.tahiry.format`), so the first starts upgrade it to storage format 2
(docs/STORAGE.md), and the first kill points fall inside that upgrade. For
each kill point a `crashing_server.py` process starts on it; the server may
die while it starts (recovery, upgrade: then it is simply started again for
the next point), else the state is read back over the wire and must equal
the model exactly, then two clients ("lanes", each with its own tables,
running at the same time so the server's group commit batches them) send
multi-row inserts with unique keys, updates, deletes, table creations and
inserts that fail on a domain, until the server kills itself. The servers
checkpoint every few statements (a small `--checkpoint-bytes` and
`--checkpoint-ratio`, server options), so kills land in journal appends, checkpoints and,
at the next start, in the recovery that cuts a torn journal tail.

After each kill, before anything starts on the directory again: every
object file must parse and every journal be whole up to at most a torn tail
(faultkit.torn_files), and the state as the files hold it (snapshots plus
chained journal entries, faultkit.logical_objects) must equal the model. At
the next start the recovered state read over the wire must be that same
state (recovery loses nothing and adds nothing) and no torn tail may be
left. A plain server checks the final state; after its clean stop every
table must be a plain format 2 snapshot (no journal left) holding exactly
the model.

The model is exact: every acknowledged statement is applied to it, a
failed one is not. The one statement of each lane in flight at the kill
(or answered "outcome unknown": the lane stops there) may be applied or
not, but wholly: the lane's state read back must equal
its model either without it or with it, and becomes the model from then on.
"""

from __future__ import annotations

import copy
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from engine.session import Session
from engine.storage.atomic_files import encode_document
from engine.storage.journal import JOURNAL_SUFFIX
from engine.storage.maintenance import FORMAT_MARKER
from engine.storage.object_format import FORMAT_VERSION
from engine.storage.store import Store
from tests.integration.crashing_server import KillPoint
from tests.integration.faultkit import (
    ConnectionLost,
    WireClient,
    free_port,
    logical_objects,
    outcome_unknown,
    rows_of,
    server_command,
    start_process,
    stop_process,
    temp_files,
    torn_files,
    torn_tails,
)

DATABASE = "crash"
FIXED_TABLES = ("t1", "t2")
INITIAL_ROWS = 6               # per fixed table, in the format 1 directory the sweep starts from
MAX_STATEMENTS = 40            # per lane and kill point; the points below are reached long before
TRIM_ABOVE = 90                # a lane's table above this many rows: sometimes delete its older half
# The sweep's servers fold a table's journal once it passes max(bytes, ratio x snapshot):
# with ~1-2 KB tables, every few statements.
CHECKPOINT_BYTES = 200
CHECKPOINT_RATIO = 0.25
# In write-path order: temp file opened, written, fsynced; renamed; folder opened, fsynced.
# Unscoped: the Nth such call wherever it is (a journal append, a whole document, a
# checkpoint, the recovery at start).
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

# The format 1 -> 2 upgrade at the first starts, in order (the directory holds three
# format 1 documents: database.json, t1.json, t2.json; each start redoes what is left).
# Every one of these kills the server before it is ready.
UPGRADE_POINTS = (
    "mid-write:1@upgrade",        # the first document's temp file torn...
    "before-unlink:1@recover",    # ... and the next start killed before removing it
    "after-unlink:1@recover",     # ... and right after
    "before-replace:1@upgrade",   # a whole temp file, not renamed (removed at the next start)
    "after-replace:1@upgrade",    # one document upgraded
    "before-fsyncdir:1@upgrade",  # the second one renamed, its folder not fsynced
    "before-replace:2@upgrade",   # every document upgraded, the marker not renamed
    "after-replace:1@upgrade",    # the marker in place: the upgrade is done
)
# A table's journal append: open (O_APPEND), one write (mid: a torn tail) under the commit
# locks, fdatasync after them; an append whose write fails, killed before or after it is
# cut back; and one whose fdatasync fails (answered "outcome unknown", never "failed").
JOURNAL_POINTS = (
    "before-open:1@journal", "after-open:1@journal", "before-write:1@journal",
    "after-write:1@journal", "before-fsync:1@journal", "after-fsync:1@journal",
    "before-open:3@journal", "after-write:4@journal", "before-fsync:5@journal",
    "after-fsync:6@journal",
    "fail-write:1@journal+before-truncate:1@journal",
    "fail-write:2@journal+after-truncate:1@journal",
    "fail-write:3@journal", "fail-fsync:2@journal",
)
# A checkpoint: the snapshot written atomically (temp opened, written, fsynced; renamed;
# folder opened, fsynced), then the journal unlinked and the folder fsynced again.
CHECKPOINT_POINTS = (
    "before-open:1@checkpoint", "after-open:1@checkpoint", "before-write:1@checkpoint",
    "mid-write:1@checkpoint", "after-write:1@checkpoint", "before-fsync:1@checkpoint",
    "after-fsync:1@checkpoint", "before-replace:1@checkpoint", "after-replace:1@checkpoint",
    "before-opendir:1@checkpoint", "before-fsyncdir:1@checkpoint",
    "after-fsyncdir:1@checkpoint", "before-unlink:1@checkpoint", "after-unlink:1@checkpoint",
    "before-fsyncdir:2@checkpoint", "after-fsyncdir:2@checkpoint",
    "after-replace:2@checkpoint", "before-unlink:3@checkpoint",
)
# Recovery at start cutting the torn tail a `mid-write@journal` kill left: each needs the
# tail still there (the kill before it left one, or stopped before the truncate).
RECOVERY_POINTS = (
    "mid-write:1@journal", "before-open:1@recover", "after-open:1@recover",
    "before-truncate:1@recover", "after-truncate:1@recover",
    "mid-write:2@journal", "before-fsync:1@recover",
    "mid-write:4@journal", "after-fsync:1@recover",
    "after-fsync:2@checkpoint", "before-unlink:1@recover",   # a temp file removed at start
)


# A group commit's whole documents (a table created: temp file, rename) and folder fsyncs
# (after a rename, or a journal created).
COMMIT_POINTS = ("mid-write:1@commit", "before-replace:1@commit", "after-replace:1@commit",
                 "before-fsyncdir:1@commit", "after-fsyncdir:2@commit")


def default_kill_points(per_operation: int = 4, fail_counts: tuple[int, ...] = (1, 2)) -> list[str]:
    """13 phase-operation pairs x N in 1..per_operation, plus injected I/O errors (unscoped)."""
    points = [f"{phase}-{operation}:{n}" for n in range(1, per_operation + 1)
              for phase, operation in KILL_OPERATIONS]
    points += [f"fail-{operation}:{n}" for n in fail_counts for operation in FAIL_OPERATIONS]
    return points


def format2_kill_points() -> list[str]:
    """Journal append, checkpoint, recovery, commit points (scoped: each lands where it says)."""
    return [*JOURNAL_POINTS, *RECOVERY_POINTS, *CHECKPOINT_POINTS, *COMMIT_POINTS]


def sweep_points(per_operation: int = 4) -> list[str]:
    """The whole sweep, from a format 1 directory: upgrade, then every other point."""
    return [*UPGRADE_POINTS, *format2_kill_points(), *default_kill_points(per_operation)]


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
                 key_base: int = 0, initial: dict[str, dict[int, int]] | None = None):
        self.rng = random.Random(seed)
        self.tables = tables
        self.prefix = prefix
        self.state = State({t: dict((initial or {}).get(t, {})) for t in tables}, set(tables))
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
        if len(existing) > TRIM_ABOVE and roll < 0.2:
            # Keeps the tables small (a checkpoint every few statements), and makes a
            # journal entry that removes many rows at once.
            limit = existing[len(existing) // 2]
            doomed = {key: None for key in existing if key < limit}
            return Statement(f"fafao ao@ {table} rehefa k < {limit}", "delete",
                             lambda s: _with_rows(s, table, doomed),
                             keys=tuple((table, key) for key in doomed))
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
    scope: str | None = None  # where the kill (or the last injected failure) landed
    at_start: bool = False    # the server died before it was ready (recovery, upgrade)
    acknowledged: int = 0
    failed: int = 0
    unknown: int = 0          # answers saying the outcome is unknown
    in_flight: str | None = None
    torn: list[str] = field(default_factory=list)
    torn_tail: bool = False   # a journal left ending in a torn tail (cut at the next start)
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
    tails_not_cut: int = 0        # starts after which a torn journal tail was still there
    final_journals: int = 0       # journals left after the final clean stop (must be 0)
    final_problems: list[str] = field(default_factory=list)
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
    def killed_at_start(self) -> int:
        return sum(k.reached and k.at_start for k in self.kills)

    @property
    def torn_tails_left(self) -> int:
        return sum(k.torn_tail for k in self.kills)

    def reached_by_scope(self) -> Counter:
        """Reached points by where they landed (journal, checkpoint, recover, upgrade, ...)."""
        return Counter(k.scope for k in self.kills if k.reached)

    @property
    def problems(self) -> list[str]:
        return [f"{k.point}: {p}" for k in self.kills for p in k.problems + k.torn] \
            + [f"final: {p}" for p in self.final_problems]


# --------------------------------------------------------------------------
# reading back and comparing


def read_state(client: WireClient) -> State:
    """The whole database as the server shows it (fixed tables' rows, table names)."""
    rows: dict[str, dict[int, int]] = {}
    for table in FIXED_TABLES:
        rows[table] = _keyed(table, rows_of(client.execute(f"alaivo k, v ao@ {table}")))
    tables = {row[0] for row in rows_of(client.execute("asehoy ny tabilao"))}
    return State(rows, tables)


def files_state(data: Path) -> State:
    """The database as its files hold it: each snapshot with its chained journal entries.

    What a store reads after recovery (a torn tail is never applied); read
    with no process on the directory. AssertionError if an object does not read.
    """
    rows: dict[str, dict[int, int]] = {}
    tables: set[str] = set()
    folder = f"{DATABASE}/tables/"
    for relative, found in logical_objects(data).items():
        if not relative.startswith(folder):
            continue
        if found.document is None:
            raise AssertionError(f"{relative} does not read: {found.problem}")
        if found.document["dropped"]:
            continue
        name = relative[len(folder):].removesuffix(".json")
        tables.add(name)
        if name in FIXED_TABLES:
            rows[name] = _keyed(name, found.document["rows"])
    missing = [t for t in FIXED_TABLES if t not in rows]
    if missing:
        raise AssertionError(f"tables {missing} are gone from the files")
    return State(rows, tables)


def _keyed(table: str, rows) -> dict[int, int]:
    found: dict[int, int] = {}
    for key, value in rows:
        if key in found:
            raise AssertionError(f"{table}: key {key} is there twice")
        found[key] = value
    return found


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
              kill: KillResult | None, where: str = "") -> None:
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
                kill.problems.extend(f"{where}{note}" for note in notes)
    model.state = actual
    model.pending = None


def _same(a: State, b: State) -> bool:
    return a.rows == b.rows and a.tables == b.tables


# --------------------------------------------------------------------------
# the data directory the sweep starts from


def initial_rows(lanes: int) -> dict[str, dict[int, int]]:
    """The rows each lane's table holds before the sweep (keys far from the lanes' own)."""
    return {FIXED_TABLES[lane]: {lane * 1_000_000 + 500_000 + i: (7 * i) % 101
                                 for i in range(INITIAL_ROWS)} for lane in range(lanes)}


def create_schema(data: Path, rows: dict[str, dict[int, int]] | None = None) -> None:
    """A format 2 directory as a server leaves it at a clean stop: marked, plain snapshots."""
    _create(data, rows or {}, Store(data, exclusive=True))


def create_format_1_directory(data: Path, rows: dict[str, dict[int, int]] | None = None) -> None:
    """The same database as a format 1 server left it: `"format": 1` documents, nothing else.

    Written whole (no journal), then each document given the format 1
    header; no `.tahiry.format` marker, so the next server upgrades it.
    """
    _create(data, rows or {}, Store(data, journal_writes=False))
    for path in sorted(data.rglob("*.json")):
        document = orjson.loads(path.read_bytes())
        path.write_bytes(encode_document({**document, "format": 1}))
    leftovers = [str(p) for p in data.rglob(f"*{JOURNAL_SUFFIX}")] + temp_files(data)
    if leftovers or (data / FORMAT_MARKER).exists():
        raise RuntimeError(f"not a format 1 directory: {leftovers}")


def _create(data: Path, rows: dict[str, dict[int, int]], store: Store) -> None:
    session = Session(store)
    script = (f"manamboara tahiry {DATABASE}; ampiasao {DATABASE};"
              + "".join(f"manamboara tabilao {t} (k ISA(0, null), v ISA(0, 100));"
                        for t in FIXED_TABLES))
    for table, table_rows in rows.items():
        if table_rows:
            values = ", ".join(f"({k}, {v})" for k, v in table_rows.items())
            script += f"manampia ao@ {table} sanda {values};"
    outcomes = session.execute(script)
    bad = [o.message for o in outcomes if not o.ok]
    if bad:
        raise RuntimeError(f"could not create the schema: {bad}")
    store.checkpoint_all()


# --------------------------------------------------------------------------
# the sweep


def run_sweep(workdir: Path, points: list[str], seed: int = 6, lanes: int = 2,
              start_format: int = 1, checkpoints: tuple[int, float] | None = (
                  CHECKPOINT_BYTES, CHECKPOINT_RATIO)) -> SweepResult:
    """Kill a server at each point in turn, on one data directory; check after each.

    `start_format`: 1 (the directory as a format 1 server left it: the first
    starts upgrade it) or 2. `checkpoints`: (--checkpoint-bytes, ratio) of
    the killed servers; None for the server's defaults (few checkpoints).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    initial = initial_rows(lanes)
    (create_format_1_directory if start_format == 1 else create_schema)(data, initial)
    models = [WorkloadModel(seed + lane, (FIXED_TABLES[lane],), prefix="ab"[lane],
                            key_base=lane * 1_000_000, initial=initial) for lane in range(lanes)]
    server_args: tuple[str, ...] = ()
    harness_args: tuple[str, ...] = ()
    if checkpoints is not None:
        server_args = ("--checkpoint-bytes", str(checkpoints[0]),
                       "--checkpoint-ratio", str(checkpoints[1]))
    result = SweepResult()
    last_kill: KillResult | None = None
    started = time.monotonic()
    for index, point in enumerate(points):
        port = free_port()
        child = start_process(server_command("crash", port, data, kill_at=point,
                                             server_args=server_args, harness_args=harness_args),
                              workdir / f"server-{index:03d}.log", workdir, port)
        kill = KillResult(point, reached=False, exit_code=None)
        try:
            kill.at_start = not _ready_or_killed(child)
            if not kill.at_start:
                _check_started(port, data, models, result, last_kill)
                threads = [threading.Thread(target=_drive, args=(port, model, kill, result))
                           for model in models]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=120)
        finally:
            exit_code = stop_process(child, grace_s=5.0)
        kill.exit_code = exit_code
        _read_log(kill, child.log_text())
        kill.in_flight = "; ".join(m.pending.text for m in models if m.pending) or None
        _check_files(data, models, result, kill)
        result.kills.append(kill)
        last_kill = kill
    port = free_port()
    child = start_process(server_command("clean", port, data), workdir / "server-clean.log",
                          workdir, port)
    try:
        child.wait_ready()
        _check_started(port, data, models, result, last_kill)
    finally:
        exit_code = stop_process(child)
    if exit_code != 0:
        result.final_problems.append(f"the clean server exited with {exit_code}")
    _check_clean_stop(data, models, result)
    result.seconds = time.monotonic() - started
    return result


def _ready_or_killed(child) -> bool:
    """Wait until the server answers: True; False if it died first (killed while starting)."""
    try:
        child.wait_ready()
        return True
    except RuntimeError:
        if child.popen.poll() is None:
            raise  # alive but never ready: a hang, not a kill
        return False


_ANNOUNCED = re.compile(r"^CRASHING_SERVER (KILL|FAIL) (\S+) \[(\w+)\]", re.MULTILINE)


def _read_log(kill: KillResult, log: str) -> None:
    """Whether every part of the point fired, and where the last one landed."""
    announced = {point: scope for _, point, scope in _ANNOUNCED.findall(log)}
    parts = [str(p) for p in KillPoint.parse_all(kill.point)]
    kill.reached = all(part in announced for part in parts)
    if kill.reached:
        kill.scope = announced[parts[-1]]


def _check_started(port: int, data: Path, models: list[WorkloadModel], result: SweepResult,
                   kill: KillResult | None) -> None:
    """Right after a start: no torn tail left, and the state read over the wire is the model."""
    tails = torn_tails(data)
    if tails:
        result.tails_not_cut += 1
        if kill is not None:
            kill.problems.append(f"torn journal tails not cut at the next start: {tails}")
    with WireClient(port, timeout=10.0) as client:
        _use(client)
        whole = read_state(client)
    for model in models:
        reconcile(model, whole, result, kill, where="read back after the restart: ")


def _check_files(data: Path, models: list[WorkloadModel], result: SweepResult,
                 kill: KillResult) -> None:
    """After a kill, nothing running: objects whole, and the state they hold is the model."""
    kill.torn = torn_files(data)
    kill.torn_tail = bool(torn_tails(data))
    kill.temp_files = len(temp_files(data))
    try:
        whole = files_state(data)
    except AssertionError as error:
        kill.problems.append(f"the files do not read: {error}")
        return  # the next start's read-back decides
    for model in models:
        reconcile(model, whole, result, kill, where="in the files after the kill: ")


def _check_clean_stop(data: Path, models: list[WorkloadModel], result: SweepResult) -> None:
    """After a clean stop: every table one plain format 2 snapshot that holds the model."""
    journals = sorted(str(p.relative_to(data)) for p in data.rglob(f"*{JOURNAL_SUFFIX}"))
    result.final_journals = len(journals)
    if journals:
        result.final_problems.append(f"journals left after the clean stop: {journals}")
    for temp in temp_files(data):
        result.final_problems.append(f"temp file left after the clean stop: {temp}")
    for path in sorted(data.glob("*/**/*.json")):
        document = orjson.loads(path.read_bytes())
        if document.get("format") != FORMAT_VERSION:
            result.final_problems.append(f"{path.relative_to(data)} is format "
                                         f"{document.get('format')!r}")
    try:
        marker = orjson.loads((data / FORMAT_MARKER).read_bytes())
    except (OSError, ValueError) as error:
        marker = error
    if marker != {"format": FORMAT_VERSION}:
        result.final_problems.append(f"{FORMAT_MARKER}: {marker!r}")
    whole = files_state(data)   # snapshots alone, now
    expected = State({}, set())
    for model in models:
        part = model.state
        expected.rows.update(part.rows)
        expected.tables |= part.tables
    if not _same(expected, whole):
        lost, present, notes = compare(expected, whole, set())
        result.lost_acknowledged += lost + present
        result.final_problems.extend(f"snapshots after the clean stop: {note}" for note in notes)


USE_ATTEMPTS = 20
NOTHING_WRITTEN = "rien n'a été écrit"   # the end of every "nothing changed" refusal


def _use(client: WireClient) -> None:
    """`ampiasao` the sweep's database, again while the answer is that nothing was written.

    An `ampiasao` batched behind another lane's write whose commit a fault
    broke is refused with that batch (it may have seen the unwritten
    write); it changed nothing, so it is simply asked again.
    """
    for _ in range(USE_ATTEMPTS):
        answer = client.use(DATABASE)
        if answer.ok:
            return
        if NOTHING_WRITTEN not in answer.message:
            break
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
