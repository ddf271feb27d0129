"""The cluster fault scenario: the default topology under load while its nodes are hurt.

The supervisor runs a copy of the repository's topology.yaml (same settings,
free ports, a temporary folder). Client threads run a mixed load through the
proxy cache: reads of a table known to hold fixed rows (every answer is
checked) and inserts of unique rows, each recorded as acknowledged, failed
or unknown. Meanwhile, in sequence: kill -9 m1, kill -9 m2, SIGSTOP m1 for
5 s then SIGCONT, kill -9 the balancer, kill -9 the proxy cache, then the
whole cluster is stopped and started again. Each fault waits until the
supervisor reports the cluster whole again (every node RUNNING, every server
writable) before the next one.

Then the load stops and we measure how long until both data directories are
identical object by object, and read every client table on each server
directly: every acknowledged row must be on both, no failed row anywhere,
no row twice.

A client's rules, so its figures are honest:
- connection refused, or lost while reconnecting (before the statement was
  sent): wait 50 ms and try again; counted as `refused` (the proxy itself
  was down), not as an error;
- connection lost after sending: a read is sent again (`retried`); a write
  is recorded as unknown (it may be present or absent) and not sent again;
- an error answer to a read is a read error; to a write it is `unknown` if
  its message says the outcome is unknown, a write error otherwise.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

from supervisor.control import NotRunning, send_command
from tests.conftest import REPO_ROOT
from tests.integration.faultkit import (
    ConnectionLost,
    WireClient,
    WriteLedger,
    free_port,
    outcome_unknown,
    rows_of,
    wait_converged,
)
from tests.integration.supervisorkit import SupervisorRun

DATABASE = "faults"
READ_ROWS = [[k, k * 3] for k in range(40)]
SETTLE_DEADLINE_S = 40.0


# --------------------------------------------------------------------------
# the cluster under the supervisor


class SupervisedCluster(SupervisorRun):
    """`python -m supervisor up -d` on a copy of the shipped default topology (not the
    user's own topology.yaml, which they may have edited), on free ports."""

    cli_timeout_s = 90.0

    def __init__(self, workdir: Path,
                 source: Path = REPO_ROOT / "tests" / "supervisor" / "shipped_topology.yaml"):
        super().__init__(workdir, workdir / "topology.yaml")
        workdir.mkdir(parents=True, exist_ok=True)
        document = yaml.safe_load(source.read_text())
        document["supervisor"]["control_port"] = free_port()
        for spec in document["nodes"].values():
            spec["port"] = free_port()
        self.document = document
        self.topology.write_text(yaml.safe_dump(document, sort_keys=False))
        self.ports = {name: spec["port"] for name, spec in document["nodes"].items()}
        self.servers = [n for n, s in document["nodes"].items() if s["kind"] == "server"]
        self.kinds = {n: s["kind"] for n, s in document["nodes"].items()}

    def data_dir(self, server: str) -> Path:
        return self.workdir / self.document["nodes"][server]["data"]

    def node_of_kind(self, kind: str) -> str:
        return next(n for n, k in self.kinds.items() if k == kind)

    def up(self) -> None:
        result = self.cli("up", "-d", str(self.topology))
        if result.returncode != 0:
            raise RuntimeError(f"supervisor up failed: {result.stdout}{result.stderr}"
                               f"{self.supervisor_log()}")
        self.wait_whole()

    def down(self) -> None:
        self.cli("down", str(self.topology))

    def status(self) -> dict[str, dict]:
        answer = send_command(self.document["supervisor"]["control_port"], {"cmd": "status"},
                              timeout_s=5)
        rows = {row["node"]: row for row in answer["nodes"]}
        self.remember(row["pid"] for row in rows.values() if row.get("pid"))
        return rows

    def pid(self, node: str) -> int:
        return self.status()[node]["pid"]

    def wait_whole(self, replaced: dict[str, int] | None = None,
                   reprobed: dict[str, tuple[int, float | None]] | None = None) -> float:
        """Wait until every node RUNNING (those in `replaced` with a new pid), servers writable.

        `reprobed` {node: (pid, probe_ms)}, for a node that was frozen: its keeper
        may still be counting the probes it missed (the row says RUNNING until
        the restart begins), so it must either run with another pid or have
        answered a probe since (its probe_ms changed: a success resets the count).
        """
        started = time.monotonic()
        rows: dict = {}
        while time.monotonic() - started < SETTLE_DEADLINE_S:
            try:
                rows = self.status()
            except (NotRunning, OSError, KeyError):
                time.sleep(0.1)
                continue
            if all(row["state"] == "RUNNING" for row in rows.values()) \
                    and all(rows[s].get("writable") for s in self.servers) \
                    and all(rows[n]["pid"] != old for n, old in (replaced or {}).items()) \
                    and all(rows[n]["pid"] != pid or rows[n].get("probe_ms") != probe_ms
                            for n, (pid, probe_ms) in (reprobed or {}).items()):
                return time.monotonic() - started
            time.sleep(0.1)
        raise RuntimeError(f"the cluster did not become whole again: {rows}\n"
                           f"{self.supervisor_log()}")

    def kill_leftovers(self) -> list[int]:
        """After `down`: SIGKILL whatever we saw that still runs (by pid); their pids."""
        candidates = dict(self.seen)
        try:  # the supervisor first, so that it restarts nothing killed after it
            pid = int((self.workdir / "run" / "supervisor.pid").read_text())
            candidates = {pid: psutil.Process(pid), **candidates}
        except (OSError, ValueError, psutil.Error):  # no pid file: it stopped
            pass
        left = []
        for pid, process in candidates.items():
            try:
                if process is None or not process.is_running() \
                        or process.status() == psutil.STATUS_ZOMBIE:
                    continue
            except psutil.Error:
                continue
            left.append(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        return left


# --------------------------------------------------------------------------
# the load


@dataclass
class PhaseFigures:
    counts: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)   # first few messages, for the report
    max_latency_s: float = 0.0
    max_outage_s: float = 0.0   # longest stretch a client could not even connect


class Load:
    """Client threads through the proxy; figures kept per fault phase."""

    def __init__(self, port: int, clients: int = 4, timeout_s: float = 10.0):
        self.port = port
        self.clients = clients
        self.timeout_s = timeout_s
        self.phase = "setup"
        self.phases: dict[str, PhaseFigures] = {}
        self.ledgers = [WriteLedger() for _ in range(clients)]
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []
        self.acked_at: dict[tuple[int, int], tuple[str, str]] = {}  # for reports on lost rows

    def set_phase(self, name: str) -> None:
        with self.lock:
            self.phase = name
            self.phases.setdefault(name, PhaseFigures())

    def record(self, kind: str, latency_s: float = 0.0, message: str | None = None) -> None:
        with self.lock:
            figures = self.phases.setdefault(self.phase, PhaseFigures())
            figures.counts[kind] += 1
            figures.max_latency_s = max(figures.max_latency_s, latency_s)
            if message is not None and len(figures.errors) < 5:
                figures.errors.append(f"{kind}: {message[:200]}")

    def record_outage(self, seconds: float) -> None:
        with self.lock:
            figures = self.phases.setdefault(self.phase, PhaseFigures())
            figures.max_outage_s = max(figures.max_outage_s, seconds)

    def start(self) -> None:
        for index in range(self.clients):
            thread = threading.Thread(target=self._client, args=(index,), daemon=True,
                                      name=f"load-{index}")
            thread.start()
            self.threads.append(thread)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=self.timeout_s * 3)

    def _client(self, index: int) -> None:
        ledger = self.ledgers[index]
        client = WireClient(self.port, timeout=self.timeout_s)
        client.database = DATABASE
        key = 0
        turn = 0
        try:
            while not self.stop.is_set():
                turn += 1
                if turn % 2:
                    self._read(client)
                else:
                    key += 1
                    self._write(client, index, key, ledger)
        finally:
            client.close()

    def _attempt(self, client: WireClient, text: str):
        """(response, latency) or (ConnectionLost, latency); refusals retried here."""
        refused_since = None
        while True:
            started = time.monotonic()
            try:
                answer = client.execute(text)
            except ConnectionLost as lost:
                latency = time.monotonic() - started
                if lost.timed_out:
                    self.record("timeout", latency, lost.reason)
                if lost.sent or self.stop.is_set():
                    return lost, latency
                if lost.reason.startswith("connect:"):
                    self.record("refused", latency)
                    refused_since = refused_since or started
                else:  # reconnected, but `ampiasao` failed: a client-visible error
                    self.record("use_error", latency, lost.reason)
                time.sleep(0.05)
                continue
            if refused_since is not None:
                self.record_outage(time.monotonic() - refused_since)
            return answer, time.monotonic() - started

    def _read(self, client: WireClient) -> None:
        while True:
            answer, latency = self._attempt(client, "alaivo k, v ao@ r")
            if isinstance(answer, ConnectionLost):
                if not answer.sent:
                    return  # stopping
                self.record("read_retried", latency)
                continue
            break
        if not answer.ok:
            self.record("read_error", latency, answer.message)
        elif sorted(rows_of(answer)) != READ_ROWS:
            self.record("read_wrong", latency, str(rows_of(answer))[:200])
        else:
            self.record("read_ok", latency)

    def _write(self, client: WireClient, index: int, key: int, ledger: WriteLedger) -> None:
        answer, latency = self._attempt(client, f"manampia ao@ w{index} sanda ({key}, {index})")
        if isinstance(answer, ConnectionLost):
            if answer.sent:
                ledger.lose(key, answer.reason)
                self.record("write_unknown_connection", latency)
            return
        if answer.ok:
            ledger.ack(key)
            self.acked_at[(index, key)] = (time.strftime("%H:%M:%S") + f".{time.time() % 1:.3f}"[2:],
                                           self.phase)
            self.record("write_ok", latency)
        elif outcome_unknown(answer.message):
            ledger.lose(key, answer.message)
            self.record("write_unknown_reported", latency, answer.message)
        else:
            ledger.fail(key, answer.message)
            self.record("write_error", latency, answer.message)


# --------------------------------------------------------------------------
# the scenario


@dataclass
class ScenarioResult:
    phases: dict[str, PhaseFigures]
    convergence_s: float | None
    differences: list[str]
    acknowledged: int
    failed: int
    unknown: int
    unknown_present: int
    lost: dict[str, int]                # server -> acknowledged rows missing there
    failed_present: dict[str, int]
    duplicated: dict[str, int]
    problems: list[str]
    seconds: float
    conflicts: list[str] = field(default_factory=list)  # replication CONFLICT lines

    @property
    def lost_total(self) -> int:
        return sum(self.lost.values())

    def total(self, kind: str) -> int:
        return sum(p.counts[kind] for p in self.phases.values())


def prepare(cluster: SupervisedCluster, clients: int) -> None:
    with WireClient(cluster.ports[cluster.node_of_kind("proxycache")], timeout=10) as client:
        statements = [f"manamboara tahiry {DATABASE}", f"ampiasao {DATABASE}",
                      "manamboara tabilao r (k ISA(0, null), v ISA(0, null))",
                      "manampia ao@ r sanda " + ", ".join(f"({k}, {v})" for k, v in READ_ROWS)]
        statements += [f"manamboara tabilao w{i} (k ISA(0, null), client ISA(0, null))"
                       for i in range(clients)]
        for text in statements:
            answer = client.execute(text)
            if not answer.ok:
                raise RuntimeError(f"{text}: {answer.message}")
    converged, differences = wait_converged(*(cluster.data_dir(s) for s in cluster.servers[:2]))
    if converged is None:
        raise RuntimeError(f"the schema did not replicate: {differences}")


def default_faults(cluster: SupervisedCluster) -> list[str]:
    m1, m2 = cluster.servers[:2]
    return [f"kill {m1}", f"kill {m2}", f"stop {m1}", f"kill {cluster.node_of_kind('balancer')}",
            f"kill {cluster.node_of_kind('proxycache')}", "restart everything"]


def run_scenario(workdir: Path, clients: int = 4, settle_s: float = 1.5, stop_s: float = 5.0,
                 faults: list[str] | None = None) -> ScenarioResult:
    """Run the faults in order under load (default: every fault of the issue)."""
    started = time.monotonic()
    cluster = SupervisedCluster(workdir)
    m1, m2 = cluster.servers[:2]
    load = Load(cluster.ports[cluster.node_of_kind("proxycache")], clients)
    problems: list[str] = []
    try:
        cluster.up()
        prepare(cluster, clients)
        load.set_phase("no fault")
        load.start()
        time.sleep(settle_s)
        for fault in faults if faults is not None else default_faults(cluster):
            inject_fault(cluster, fault, stop_s, load)
            time.sleep(settle_s)
    except BaseException:
        # Whatever `up` or a fault left running must not outlive the scenario.
        load.finish()
        cluster.down()
        cluster.kill_leftovers()
        raise
    finally:
        load.finish()
    try:
        convergence, differences = wait_converged(cluster.data_dir(m1), cluster.data_dir(m2))
        figures = _check_rows(cluster, load, problems)
    finally:
        cluster.down()
        leftovers = cluster.kill_leftovers()
        if leftovers:
            problems.append(f"processes left after down: {leftovers}")
    conflicts = [line for line in _read_text(workdir / "logs" / "supervisor.log").splitlines()
                 if "CONFLICT" in line]
    return ScenarioResult(load.phases, convergence, differences, seconds=time.monotonic() - started,
                          problems=problems, conflicts=conflicts, **figures)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def inject_fault(cluster: SupervisedCluster, fault: str, stop_s: float,
                 load: Load | None = None) -> None:
    """`kill NODE` (SIGKILL), `stop NODE` (SIGSTOP for stop_s, SIGCONT), `restart everything`.

    Returns once the supervisor reports the cluster whole again. `load`, when
    given, starts a new phase of its figures (the history workload keeps its own
    fault log and passes none).
    """
    if fault == "restart everything":
        _set_phase(load, fault)
        cluster.down()
        cluster.up()
        return
    action, node = fault.split()
    if action == "kill":
        _set_phase(load, f"kill -9 {node}")
        old = cluster.pid(node)
        os.kill(old, signal.SIGKILL)
        cluster.wait_whole({node: old})
    elif action == "stop":
        _freeze(cluster, load, node, stop_s)
    else:
        raise ValueError(f"unknown fault {fault!r}")


def _set_phase(load: Load | None, name: str) -> None:
    if load is not None:
        load.set_phase(name)


def _freeze(cluster: SupervisedCluster, load: Load | None, server: str, stop_s: float) -> None:
    _set_phase(load, f"SIGSTOP {server} {stop_s:g}s")
    pid = cluster.pid(server)
    process = psutil.Process(pid)
    os.kill(pid, signal.SIGSTOP)
    time.sleep(stop_s)
    # The last successful probe's figure: none can have succeeded while frozen.
    last_probe = cluster.status()[server].get("probe_ms")
    try:
        if process.is_running():  # the supervisor may have replaced the frozen node
            os.kill(pid, signal.SIGCONT)
    except (OSError, psutil.Error):
        pass
    cluster.wait_whole(reprobed={server: (pid, last_probe)})


def _check_rows(cluster: SupervisedCluster, load: Load, problems: list[str]) -> dict:
    ledgers = list(enumerate(load.ledgers))
    acknowledged = set().union(*({(i, k) for k in ledger.acknowledged} for i, ledger in ledgers))
    failed = set().union(*({(i, k) for k in ledger.failed} for i, ledger in ledgers))
    unknown = set().union(*({(i, k) for k in ledger.unknown} for i, ledger in ledgers))
    lost, failed_present, duplicated = {}, {}, {}
    unknown_present = 0
    for server in cluster.servers:
        rows = []
        with WireClient(cluster.ports[server], timeout=10) as client:
            if not client.use(DATABASE).ok:
                problems.append(f"{server}: database {DATABASE} missing")
                continue
            for index in range(load.clients):
                rows += [(index, k) for k, _ in rows_of(client.execute(f"alaivo * ao@ w{index}"))]
            if sorted(rows_of(client.execute("alaivo k, v ao@ r"))) != READ_ROWS:
                problems.append(f"{server}: table r changed")
        present = set(rows)
        lost[server] = len(acknowledged - present)
        failed_present[server] = len(failed & present)
        duplicated[server] = len(rows) - len(present)
        unknown_present = len(unknown & present)
        if lost[server]:
            missing = sorted(acknowledged - present)[:10]
            problems.append(f"{server}: acknowledged rows missing (client, key, acked at, phase): "
                            f"{[(*row, *load.acked_at.get(row, ())) for row in missing]}")
        if failed_present[server]:
            problems.append(f"{server}: failed rows present: {sorted(failed & present)[:10]}")
    return {"acknowledged": len(acknowledged), "failed": len(failed), "unknown": len(unknown),
            "unknown_present": unknown_present, "lost": lost, "failed_present": failed_present,
            "duplicated": duplicated}
