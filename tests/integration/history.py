"""A randomized history: writers on every path, a nemesis hurting the cluster, then the checks.

The supervised cluster (`SupervisedCluster`: the repository's topology.yaml
on free ports) holds one database with a few shared tables `t0`, `t1`, ...
(`id`, `w`: the writer) and a counters table `c` (`k`, `n`) with a few
rows. Writer threads, the same number on each path:

- straight to each server (m1, m2: any server is writable),
- through the balancer,
- through the proxy cache,

insert rows with unique ids into the shared tables (every path writes every
table, so writers on different servers contend on one object) and
increment counters (`havaozy c ova n = n + 1 rehefa k = K`). Each operation
goes into the writer's `WriteLedger`: acknowledged, failed cleanly (an error
answer), or outcome unknown (the connection was lost after the statement
was sent, or the error says the outcome is unknown: `outcome_unknown`).
A statement that certainly was not sent (connection refused, or the
reconnect's `ampiasao` failed) is tried again after 50 ms, so a client of a
killed server waits for it to come back, as a student's client would.

Meanwhile a `Nemesis` thread runs a schedule drawn from a seeded random
generator (the seed is printed; `TAHIRY_HISTORY_SEED` replays a schedule):
kill -9 or SIGSTOP for a few seconds then SIGCONT, of a server, the balancer
or the proxy, drawn from a shuffled deck of every (action, node) pair so
each one happens, with random fault-free gaps. After each fault it waits
until the supervisor reports the cluster whole (every node RUNNING, every
server writable). It never gives the supervisor more restarts of one node
than its crash-loop limit allows (more would mark the node FATAL: that is
the keeper's design, not a finding).

When the load has run its time and the nemesis is done, the writers stop,
the data directories must hold the same objects (`wait_converged`: the
settle time; compared logically, each object's version and content, since
one server may hold a version as snapshot and journal and another as a
checkpointed snapshot), and then on EVERY server, read straight from it:

- every acknowledged insert present exactly once, in its table, with its
  writer; no cleanly failed insert present; no id nobody inserted;
- every counter row: acknowledged increments <= n <= acknowledged +
  unknown increments;
- no replication conflict (the supervisor's status rows and its log), no
  temp file left in a data directory (a server killed mid-write leaves
  some; its successor removes them all at start: docs/STORAGE.md).

`run_history` returns a `HistoryResult` whose `problems` lists every
violation with its evidence (which ids, which writer and path, the faults
around the acknowledgement, the log lines of that moment); `report()` is
the short summary. bench/fault_report.py can run the same history.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from supervisor.logfiles import timestamp  # how every log stamps its lines
from tests.integration.cluster_scenario import SupervisedCluster, inject_fault
from tests.integration.faultkit import (
    ConnectionLost,
    WireClient,
    WriteLedger,
    outcome_unknown,
    rows_of,
    temp_files,
    wait_converged,
)

DATABASE = "tantara"
TABLES = ("t0", "t1", "t2")
COUNTER_KEYS = (0, 1, 2, 3)
SEED_ENV = "TAHIRY_HISTORY_SEED"
ACTIONS = ("kill", "stop")
RETRY_S = 0.05               # a refused client tries again this soon
EVIDENCE_WINDOW_S = 10.0     # faults this close to a lost write are listed with it
LOG_WINDOW_S = 1.5           # log lines this close to a lost write are listed with it


def seed_from_env() -> int:
    """The schedule's seed: TAHIRY_HISTORY_SEED if set, else a fresh random one."""
    text = os.environ.get(SEED_ENV, "").strip()
    return int(text) if text else random.SystemRandom().randrange(1 << 32)


@dataclass
class HistoryConfig:
    seed: int
    load_s: float = 60.0              # at least this long under load
    writers_per_path: int = 2
    increment_share: float = 0.4      # the rest are inserts
    client_timeout_s: float = 15.0    # above the 8 s commit-lock bound and a freeze
    gap_s: tuple[float, float] = (0.5, 2.5)      # fault-free load between two faults
    # SIGSTOP to SIGCONT; past ~4.5 s the supervisor replaces the frozen node (3 missed
    # probes), so some freezes end with a SIGTERM pending or a SIGKILL
    freeze_s: tuple[float, float] = (1.0, 7.0)
    fault_margin_s: float = 8.0       # no new fault this close to the end of the load
    settle_deadline_s: float = 60.0


# --------------------------------------------------------------------------
# the writers


@dataclass
class Writer:
    """One client thread on one path; its operations in `ledger`, their times in `when`.

    Ledger keys: ("insert", table, id) or ("increment", counter key, sequence).
    """

    name: str
    path: str                  # the node it talks to: m1, m2, lb, proxy
    port: int
    first_id: int
    rng: random.Random
    config: HistoryConfig
    stop: threading.Event
    ledger: WriteLedger = field(default_factory=WriteLedger)
    when: dict = field(default_factory=dict)         # key -> (started, answered): wall clock
    waits: Counter = field(default_factory=Counter)  # statements not sent, tried again
    thread: threading.Thread | None = None
    error: str | None = None   # what ended the thread early, if anything did

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"writer-{self.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        client = WireClient(self.port, timeout=self.config.client_timeout_s)
        client.database = DATABASE  # replayed on every (re)connection
        sequence = 0
        try:
            while not self.stop.is_set():
                sequence += 1
                if self.rng.random() < self.config.increment_share:
                    row = self.rng.choice(COUNTER_KEYS)
                    self._one(client, ("increment", row, sequence),
                              f"havaozy c ova n = n + 1 rehefa k = {row}")
                else:
                    table, key = self.rng.choice(TABLES), self.first_id + sequence
                    self._one(client, ("insert", table, key),
                              f'manampia ao@ {table} sanda ({key}, "{self.name}")')
        except Exception as error:  # reported as a problem of the history
            self.error = f"{type(error).__name__}: {error}"
        finally:
            client.close()

    def _one(self, client: WireClient, key: tuple, text: str) -> None:
        started = time.time()
        while True:
            try:
                answer = client.execute(text)
                break
            except ConnectionLost as lost:
                if lost.sent:  # it may have been applied: never sent again
                    self.when[key] = (started, time.time())
                    self.ledger.lose(key, lost.reason)
                    return
                # Certainly not sent (refused, or the reconnect's `ampiasao`
                # failed): the same statement is tried again once the node is back.
                self.waits["refused" if "refused" in lost.reason else lost.reason[:60]] += 1
                if self.stop.is_set():
                    return  # never sent: not part of the history
                time.sleep(RETRY_S)
        self.when[key] = (started, time.time())
        if answer.ok:
            self.ledger.ack(key)
        elif outcome_unknown(answer.message):
            self.ledger.lose(key, answer.message)
        else:
            self.ledger.fail(key, answer.message)


# --------------------------------------------------------------------------
# the nemesis


@dataclass
class Fault:
    action: str           # kill | stop
    node: str
    started: float        # wall clock
    ended: float          # wall clock: the cluster whole again
    freeze_s: float | None = None
    replaced: bool = False  # the supervisor runs a new process for the node

    def describe(self, origin: float) -> str:
        what = "kill -9" if self.action == "kill" else f"SIGSTOP {self.freeze_s:.1f}s"
        return (f"+{self.started - origin:.1f}s {what} {self.node}"
                f"{' (replaced)' if self.replaced and self.action == 'stop' else ''}"
                f", whole after {self.ended - self.started:.1f}s")


class Nemesis:
    """Faults from a seeded schedule until `until` (monotonic); the cluster whole after each."""

    def __init__(self, cluster: SupervisedCluster, config: HistoryConfig, until: float):
        self.cluster = cluster
        self.config = config
        self.until = until
        self.rng = random.Random(config.seed)
        self.targets = [*cluster.servers, cluster.node_of_kind("balancer"),
                        cluster.node_of_kind("proxycache")]
        restart = cluster.document["supervisor"]["restart"]
        # The keeper marks a node FATAL after more than max_restarts within
        # window_s; a freeze may end in a restart too, so every fault counts.
        self.budget = int(restart["max_restarts"]) - 1
        self.window_s = float(restart["window_s"])
        self.faults: list[Fault] = []
        self.error: str | None = None
        self.stop = threading.Event()
        self.deck: list[tuple[str, str]] = []
        self.thread = threading.Thread(target=self._run, name="nemesis", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _draw(self) -> tuple[str, str] | None:
        """The next (action, node): a shuffled deck of every pair, skipping spent nodes."""
        now = time.time()
        for _ in range(2):
            for index, (_action, node) in enumerate(self.deck):
                recent = [f for f in self.faults
                          if f.node == node and now - f.started < self.window_s]
                if len(recent) < self.budget:
                    return self.deck.pop(index)
            self.deck = [(a, n) for a in ACTIONS for n in self.targets]
            self.rng.shuffle(self.deck)
        return None

    def _run(self) -> None:
        fault = "between faults"
        try:
            while not self.stop.is_set():
                # the fault-free stretch of the schedule (workload, not a wait)
                if self.stop.wait(self.rng.uniform(*self.config.gap_s)):
                    return
                if time.monotonic() > self.until - self.config.fault_margin_s:
                    return
                drawn = self._draw()
                if drawn is None:
                    continue
                action, node = drawn
                fault = f"{action} {node}"
                freeze = round(self.rng.uniform(*self.config.freeze_s), 2)
                old = self.cluster.pid(node)
                started = time.time()
                inject_fault(self.cluster, fault, freeze)
                self.faults.append(Fault(action, node, started, time.time(),
                                         freeze if action == "stop" else None,
                                         self.cluster.pid(node) != old))
        except Exception as error:  # reported as a problem of the history
            self.error = f"{fault}: {type(error).__name__}: {error}"


# --------------------------------------------------------------------------
# the history


@dataclass
class HistoryResult:
    config: HistoryConfig
    writers: list[Writer]
    faults: list[Fault]
    origin: float                     # wall clock when the load started
    load_s: float
    settle_s: float | None
    problems: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    def outcomes(self) -> Counter:
        """(kind, path, acked|failed|unknown) -> operations."""
        counts: Counter = Counter()
        for writer in self.writers:
            for outcome, keys in (("acked", writer.ledger.acknowledged),
                                  ("failed", writer.ledger.failed),
                                  ("unknown", writer.ledger.unknown)):
                for key in keys:
                    counts[(key[0], writer.path, outcome)] += 1
        return counts

    def report(self) -> str:
        counts = self.outcomes()
        paths = list(dict.fromkeys(w.path for w in self.writers))
        lines = [f"history seed {self.config.seed} ({SEED_ENV}={self.config.seed} replays the "
                 f"schedule): {self.load_s:.1f}s of load, {len(self.writers)} writers, "
                 f"settle {'never' if self.settle_s is None else f'{self.settle_s:.2f}s'}",
                 f"{'operation':<10} {'path':<6} {'acked':>7} {'failed':>7} {'unknown':>7}"]
        for kind in ("insert", "increment"):
            for path in paths:
                lines.append(f"{kind:<10} {path:<6} " + " ".join(
                    f"{counts[(kind, path, o)]:>7}" for o in ("acked", "failed", "unknown")))
        lines.append(f"{'total':<17} " + " ".join(
            f"{sum(v for k, v in counts.items() if k[2] == o):>7}"
            for o in ("acked", "failed", "unknown")))
        waits = sum((w.waits for w in self.writers), Counter())
        lines.append(f"statements not sent and tried again: {dict(waits)}")
        failures = Counter(message[:120] for w in self.writers
                           for message in w.ledger.failed.values())
        lines += [f"  failed x{n}: {message}" for message, n in failures.most_common(4)]
        unknowns = Counter(reason[:120] for w in self.writers
                           for reason in w.ledger.unknown.values())
        lines += [f"  unknown x{n}: {reason}" for reason, n in unknowns.most_common(4)]
        kinds = Counter(f"{f.action} {f.node}" for f in self.faults)
        lines.append(f"faults injected: {len(self.faults)} {dict(sorted(kinds.items()))}")
        lines += [f"  {fault.describe(self.origin)}" for fault in self.faults]
        lines.append(f"problems: {len(self.problems)}")
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)


def prepare(cluster: SupervisedCluster) -> None:
    """The database, the shared tables and the counters, on every server."""
    statements = [f"manamboara tahiry {DATABASE}", f"ampiasao {DATABASE}",
                  *(f"manamboara tabilao {t} (id ISA(0, null), w LAHATSORATRA(null, null))"
                    for t in TABLES),
                  "manamboara tabilao c (k ISA(0, null), n ISA(0, null))",
                  "manampia ao@ c sanda " + ", ".join(f"({k}, 0)" for k in COUNTER_KEYS)]
    with WireClient(cluster.ports[cluster.node_of_kind("balancer")], timeout=10) as client:
        for text in statements:
            answer = client.execute(text)
            if not answer.ok:
                raise RuntimeError(f"{text}: {answer.message}")
    first = cluster.data_dir(cluster.servers[0])
    for other in cluster.servers[1:]:
        converged, differences = wait_converged(first, cluster.data_dir(other))
        if converged is None:
            raise RuntimeError(f"the schema did not replicate: {differences}")


def run_history(cluster: SupervisedCluster, config: HistoryConfig) -> HistoryResult:
    """The whole history on a running cluster (its teardown is the caller's)."""
    prepare(cluster)
    paths = [*cluster.servers, cluster.node_of_kind("balancer"), cluster.node_of_kind("proxycache")]
    stop = threading.Event()
    writers = []
    for path in paths:
        for n in range(config.writers_per_path):
            index = len(writers)
            writers.append(Writer(f"{path}-{n}", path, cluster.ports[path],
                                  (index + 1) * 10_000_000,
                                  random.Random(config.seed * 100 + index),
                                  config, stop))
    origin, started = time.time(), time.monotonic()
    nemesis = Nemesis(cluster, config, until=started + config.load_s)
    for writer in writers:
        writer.start()
    nemesis.start()
    try:
        # the load runs its time and at least until the last fault healed
        nemesis.thread.join(timeout=config.load_s + 120)
        stop.wait(max(0.0, started + config.load_s - time.monotonic()))
    finally:
        stop.set()
        nemesis.stop.set()
        for writer in writers:
            writer.thread.join(timeout=config.client_timeout_s * 2 + 5)
        nemesis.thread.join(timeout=60)
    load_s = time.monotonic() - started
    first = cluster.data_dir(cluster.servers[0])
    settle_s, differences = None, []
    settle_started = time.monotonic()
    for other in cluster.servers[1:]:
        converged, differences = wait_converged(first, cluster.data_dir(other),
                                                deadline_s=config.settle_deadline_s)
        if converged is None:
            break
        settle_s = time.monotonic() - settle_started
    result = HistoryResult(config, writers, nemesis.faults, origin, load_s, settle_s)
    if nemesis.error:
        result.problems.append(f"nemesis stopped: {nemesis.error}")
    result.problems += [f"writer {w.name} stopped: {w.error}" for w in writers if w.error]
    stuck = [w.name for w in writers if w.thread.is_alive()]
    if stuck:
        result.problems.append(f"writers still running after the load: {stuck}")
    if settle_s is None:
        result.problems.append(f"data directories not the same after "
                               f"{config.settle_deadline_s:g}s: {differences[:10]}")
    for server in cluster.servers:
        try:
            check_server(cluster, server, result)
        except (ConnectionLost, AssertionError) as error:  # down, or a read failed
            result.problems.append(f"{server}: could not be read: {error}")
        check_temp_files(cluster, server, result)
    check_conflicts(cluster, result)
    return result


# --------------------------------------------------------------------------
# the checks


def check_server(cluster: SupervisedCluster, server: str, result: HistoryResult) -> None:
    """Read everything straight from `server` and hold it against the ledgers."""
    with WireClient(cluster.ports[server], timeout=30) as client:
        answer = client.use(DATABASE)
        if not answer.ok:
            result.problems.append(f"{server}: ampiasao {DATABASE}: {answer.message}")
            return
        present: Counter = Counter()   # (table, id) -> occurrences
        wrote: dict = {}               # (table, id) -> writer column
        for table in TABLES:
            for key, writer in rows_of(client.execute(f"alaivo id, w ao@ {table}")):
                present[(table, key)] += 1
                wrote[(table, key)] = writer
        counters = dict(rows_of(client.execute("alaivo k, n ao@ c")))
    inserts = {}   # (table, id) -> (writer, outcome)
    for writer in result.writers:
        for outcome, keys in (("acked", writer.ledger.acknowledged),
                              ("failed", writer.ledger.failed), ("unknown", writer.ledger.unknown)):
            for key in keys:
                if key[0] == "insert":
                    inserts[key[1:]] = (writer, outcome)
    lost = [k for k, (_, outcome) in inserts.items() if outcome == "acked" and not present[k]]
    if lost:
        result.problems.append(f"{server}: {len(lost)} acknowledged inserts missing:\n"
                               + lost_write_evidence(cluster, result, inserts, lost))
    twice = {k: n for k, n in present.items() if n > 1}
    if twice:
        result.problems.append(f"{server}: {len(twice)} ids present more than once: "
                               f"{sorted(twice.items())[:10]}")
    failed = sorted(k for k, (_, outcome) in inserts.items() if outcome == "failed" and present[k])
    if failed:
        result.problems.append(f"{server}: {len(failed)} cleanly failed inserts present: "
                               + "; ".join(f"{k} by {inserts[k][0].name}: "
                                           f"{inserts[k][0].ledger.failed[('insert', *k)][:100]}"
                                           for k in failed[:5]))
    phantom = sorted(k for k in present if k not in inserts)
    if phantom:
        result.problems.append(f"{server}: {len(phantom)} ids nobody inserted: {phantom[:10]}")
    misattributed = sorted(k for k in present if k in inserts and wrote[k] != inserts[k][0].name)
    if misattributed:
        result.problems.append(f"{server}: rows with another writer's name: {misattributed[:10]}")
    for row in COUNTER_KEYS:
        acked = sum(1 for w in result.writers for k in w.ledger.acknowledged
                    if k[0] == "increment" and k[1] == row)
        unknown = sum(1 for w in result.writers for k in w.ledger.unknown
                      if k[0] == "increment" and k[1] == row)
        value = counters.get(row)
        if value is None or not acked <= value <= acked + unknown:
            result.problems.append(f"{server}: counter {row} = {value}, expected between "
                                   f"{acked} acknowledged and {acked + unknown} "
                                   f"(+{unknown} outcome unknown)")


def check_temp_files(cluster: SupervisedCluster, server: str, result: HistoryResult) -> None:
    """No temp file left: a killed server's debris is removed when its successor starts."""
    root = cluster.data_dir(server)
    for relative in temp_files(root):
        try:
            written = (root / relative).stat().st_mtime
        except FileNotFoundError:
            continue  # removed since the listing
        result.problems.append(f"{server}: temp file left: {relative} written "
                               f"+{written - result.origin:.3f}s")


def check_conflicts(cluster: SupervisedCluster, result: HistoryResult) -> None:
    """No open conflict in the status rows, none ever logged by the replicator."""
    try:
        rows = cluster.status()
    except Exception as error:  # the supervisor must still answer after the history
        result.problems.append(f"supervisor status failed: {type(error).__name__}: {error}")
        rows = {}
    for server in cluster.servers:
        if rows.get(server, {}).get("repl_conflicts"):
            result.problems.append(f"{server}: status shows {rows[server]['repl_conflicts']} "
                                   "replication conflicts")
    log = cluster.workdir / "logs" / "supervisor.log"
    result.conflicts = [line for line in _lines(log) if "CONFLICT" in line]
    if result.conflicts:
        result.problems.append(f"{len(result.conflicts)} replication CONFLICT lines in "
                               f"supervisor.log, first: {result.conflicts[:3]}")


def lost_write_evidence(cluster: SupervisedCluster, result: HistoryResult, inserts: dict,
                        lost: list) -> str:
    """Each lost id: who wrote it by which path, when, the faults around it, the log lines then."""
    lines = []
    for table, key in sorted(lost, key=lambda k: inserts[k][0].when[("insert", *k)])[:20]:
        writer = inserts[(table, key)][0]
        started, answered = writer.when[("insert", table, key)]
        near = [f.describe(result.origin) for f in result.faults
                if f.started - EVIDENCE_WINDOW_S <= answered
                and f.ended + EVIDENCE_WINDOW_S >= started]
        lines.append(f"  {table} id {key}: writer {writer.name} via {writer.path}, sent "
                     f"+{started - result.origin:.3f}s, acknowledged "
                     f"+{answered - result.origin:.3f}s ({timestamp(answered)}); "
                     f"faults within {EVIDENCE_WINDOW_S:g}s: {near or 'none'}")
    first = min(inserts[k][0].when[("insert", *k)][1] for k in lost)
    lines.append(f"  log lines within {LOG_WINDOW_S}s of the first lost acknowledgement "
                 f"({timestamp(first)}), logs in {cluster.workdir / 'logs'}:")
    lines += [f"    {line}" for line in log_lines_near(cluster.workdir / "logs", first)[:60]]
    return "\n".join(lines)


def log_lines_near(logs: Path, moment: float) -> list[str]:
    """Lines of every node's log stamped within LOG_WINDOW_S of `moment` (wall clock)."""
    low, high = timestamp(moment - LOG_WINDOW_S), timestamp(moment + LOG_WINDOW_S)
    found = []
    for path in sorted(logs.glob("*.log*")):
        for line in _lines(path):
            # "YYYY-MM-DD HH:MM:SS.mmm" sorts as text; node logs write ",mmm"
            stamp = line[:23].replace(",", ".")
            if low <= stamp <= high:
                found.append((stamp, f"{path.name}: {line[:300]}"))
    return [line for _, line in sorted(found)]


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


# --------------------------------------------------------------------------
# teardown


def stop_cluster(cluster: SupervisedCluster, deadline_s: float = 30.0) -> list[str]:
    """`down`, then SIGKILL (by pid) every process of this cluster still running; survivors.

    A process of this cluster is one the status rows showed (`cluster.seen`),
    or any process whose command line or working directory names the
    cluster's folder (the supervisor, a node restarted after the last status
    call). The supervisor goes first, so it restarts nothing we kill.
    Returns a description of each process that outlived `down` (empty: the
    teardown was clean); none is left running when it returns.
    """
    try:
        cluster.down()
    except Exception:  # a hung or dead supervisor: the SIGKILLs below still run
        pass
    killed = cluster.kill_leftovers()
    survivors = [f"pid {pid} (still running after down)" for pid in killed]
    reported = set(killed)
    deadline = time.monotonic() + deadline_s
    while True:
        mine = _processes_in(cluster.workdir)
        if not mine:
            return survivors
        if time.monotonic() > deadline:
            return survivors + [f"pid {p.pid} survived SIGKILL" for p in mine]
        mine.sort(key=lambda p: "supervisor" not in p.info["cmdline"])
        for process in mine:
            if process.pid not in reported:
                reported.add(process.pid)
                survivors.append(f"pid {process.pid} {process.info['cmdline'][:160]}")
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(mine, timeout=2)


def _processes_in(folder: Path) -> list[psutil.Process]:
    """Live (not zombie) processes whose command line or working directory names `folder`."""
    folder = str(folder)
    found = []
    for process in psutil.process_iter(["cmdline", "cwd", "status"]):
        if process.pid == os.getpid() or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = process.info["cmdline"] or []
        if process.info["cwd"] == folder or any(folder in part for part in cmdline):
            process.info["cmdline"] = " ".join(cmdline)
            found.append(process)
    return found
