"""Replication fault scenarios that once lost acknowledged writes, as reusable runs.

The system tests (tests/integration/test_certified_commits.py) assert on
their results and bench/fault_report.py prints them as figures. Each runs
two real server processes that know each other's data directory (`--peer`)
with the replicator in this process, as the supervisor runs it:

- `run_multi_master`: clients straight to m1 and straight to m2 insert
  unique ids into one table at once;
- `run_slow_write_race`: a slow read-modify-write on m1 while m2
  acknowledges a row that replication copies under m1;
- `run_frozen_owner`: the same slow write through a balancer, its owner
  frozen (SIGSTOP) in the middle while the balancer moves the table's writes
  to m2, then resumed.

Each result counts the acknowledged writes missing on each server after the
two data directories hold the same objects again (faultkit: compared
logically, version and content).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from supervisor.replication import Replicator
from tests.conftest import NodeStarter, wait_until
from tests.integration.faultkit import dir_differences, logical_objects, outcome_unknown
from tests.integration.wire import WireClient, tables_owned_by

DATABASE = "r"
# a ⋈ b with a.x < b.y over 3000 x 3000 rows: 4.5 M pairs (under the 5 M
# result limit), about a second: long enough for another write to land.
SLOW_FILL = 3000
SLOW_INSERT = ("manampia ao@ {table} (id) alaivo a.x + 1000 ao@ a tonona@ b ka a.x < b.y "
               "rehefa a.x = 5 fetra 1;")
SLOW_ROW = 1005


class ReplicatedPair:
    """m1 and m2 (peers of each other) and the replicator, in `workdir`; a context manager."""

    def __init__(self, starter: NodeStarter, workdir: Path):
        self.starter = starter
        self.data = {"m1": workdir / "data" / "m1", "m2": workdir / "data" / "m2"}
        for path in self.data.values():
            path.mkdir(parents=True, exist_ok=True)
        self.replicator = Replicator(self.data, logging.getLogger("tahiry.scenario"),
                                     resync_interval_s=0)
        self.nodes = {}

    def __enter__(self) -> ReplicatedPair:
        self.replicator.start()
        m1, m2 = self.data["m1"], self.data["m2"]
        self.nodes["m1"] = self.starter("server", "m1", "--data", str(m1), "--peer", f"m2={m2}")
        self.nodes["m2"] = self.starter("server", "m2", "--data", str(m2), "--peer", f"m1={m1}")
        return self

    def __exit__(self, *exc) -> None:
        self.replicator.stop()

    def port(self, server: str) -> int:
        return self.nodes[server].port

    def ids(self, server: str, table: str = "t") -> list[int]:
        """Every id of `table`, read straight from `server`.

        (Patient: a slow statement re-run after its fence may still hold the
        server's engine thread, several times longer on a loaded machine.)
        """
        with WireClient(self.port(server), timeout=90) as client:
            client.ok(f"ampiasao {DATABASE};")
            return sorted(row[0] for row in client.rows(f"alaivo id ao@ {table};"))

    def settle(self, deadline_s: float = 15.0) -> None:
        """Wait until the replicator is idle and both directories hold the same objects."""
        def settled() -> bool:
            return self.replicator.wait_idle(1) and not dir_differences(self.data["m1"],
                                                                         self.data["m2"])
        wait_until(settled, deadline_s=deadline_s, what="the same objects in both directories")

    def prepare(self, clients: list[WireClient], table: str = "t", fill: int = 0) -> None:
        """Database r with `table` (id, w) holding row 1; with `fill`, tables a and b of 0..fill-1."""
        first = clients[0]
        first.ok(f"manamboara tahiry {DATABASE};")
        for client in clients:  # replication brings the database to the other server
            wait_until(lambda client=client: client.one(f"ampiasao {DATABASE};").ok, timeout_s=10,
                       what="the database on every server")
        first.ok(f"manamboara tabilao {table} (id ISA(0,null), w LAHATSORATRA(null,null));")
        if fill:
            values = ", ".join(f"({i})" for i in range(fill))
            for name, column in (("a", "x"), ("b", "y")):
                first.ok(f"manamboara tabilao {name} ({column} ISA(0,null));")
                first.ok(f"manampia ao@ {name} sanda {values};")
        first.ok(f'manampia ao@ {table} sanda (1, "seed");')
        assert self.replicator.wait_idle(10)


@dataclass
class WriteHistory:
    """What clients were told about their inserts, and what each server holds afterwards."""

    acknowledged: set[int] = field(default_factory=set)
    unknown: set[int] = field(default_factory=set)
    failed: list[str] = field(default_factory=list)
    present: dict[str, set[int]] = field(default_factory=dict)
    seconds: float = 0.0

    def record(self, key: int, answer) -> None:
        if answer.ok:
            self.acknowledged.add(key)
        elif outcome_unknown(answer.message):
            self.unknown.add(key)
        else:
            self.failed.append(answer.message)

    @property
    def lost(self) -> dict[str, set[int]]:
        """Acknowledged ids missing, per server."""
        return {server: self.acknowledged - ids for server, ids in self.present.items()}

    @property
    def lost_total(self) -> int:
        return len(set().union(*self.lost.values())) if self.present else 0

    def failed_present(self, seeded: set[int]) -> set[int]:
        """Ids present somewhere that no client was told succeeded or might have."""
        everywhere = set().union(*self.present.values()) if self.present else set()
        return everywhere - self.acknowledged - self.unknown - seeded


def run_multi_master(pair: ReplicatedPair, seconds: float = 4.0,
                     writers_per_server: int = 2) -> WriteHistory:
    """Clients straight to each server insert unique ids into one table for `seconds`."""
    with WireClient(pair.port("m1")) as one, WireClient(pair.port("m2")) as two:
        pair.prepare([one, two])
    history = WriteHistory()
    guard = threading.Lock()
    deadline = time.monotonic() + seconds

    def writer(port: int, first_id: int) -> None:
        with WireClient(port) as client:
            client.ok(f"ampiasao {DATABASE};")
            key = first_id
            while time.monotonic() < deadline:
                answer = client.one(f'manampia ao@ t sanda ({key}, "w");')
                with guard:
                    history.record(key, answer)
                key += 1

    threads = []
    for index in range(writers_per_server * 2):
        server = "m1" if index % 2 == 0 else "m2"
        threads.append(threading.Thread(target=writer,
                                        args=(pair.port(server), (index + 1) * 100_000)))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    history.seconds = time.monotonic() - started
    pair.settle()
    history.present = {server: set(pair.ids(server)) for server in pair.nodes}
    return history


def run_slow_write_race(pair: ReplicatedPair) -> tuple[WriteHistory, bool]:
    """Issue 9's reproduction 1; (history, raced): raced is False if the slow write ended first."""
    history = WriteHistory()
    with WireClient(pair.port("m1"), timeout=60) as one, WireClient(pair.port("m2")) as two:
        pair.prepare([one, two], fill=SLOW_FILL)
        wait_until(lambda: pair.ids("m2") == [1], deadline_s=10, what="row 1 on m2")
        slow_answer: list = []
        worker = threading.Thread(
            target=lambda: slow_answer.append(one.one(SLOW_INSERT.format(table="t"))))
        worker.start()
        time.sleep(0.3)  # the reproduction's timing: m2 writes while m1's statement runs
        history.record(1777, two.one('manampia ao@ t sanda (1777, "acked-on-m2");'))
        raced = worker.is_alive()
        worker.join(60)
    history.record(SLOW_ROW, slow_answer[0])
    pair.settle()
    history.present = {server: set(pair.ids(server)) for server in pair.nodes}
    return history, raced


def run_frozen_owner(pair: ReplicatedPair, freeze_after_s: float = 0.3) -> WriteHistory:
    """Issue 9's reproduction 2: the slow write's owner frozen while the balancer moves on."""
    lb = pair.starter("balancer", "lb", "--backend", f"m1=127.0.0.1:{pair.port('m1')}",
                      "--backend", f"m2=127.0.0.1:{pair.port('m2')}",
                      "--probe-interval-ms", "100", "--probe-timeout-ms", "300")
    table = tables_owned_by("m1", DATABASE)[0]          # the balancer sends its writes to m1
    history = WriteHistory()
    m1_pid = pair.nodes["m1"].popen.pid
    with WireClient(lb.port, timeout=60) as slow, WireClient(lb.port) as other:
        pair.prepare([slow, other], table=table, fill=SLOW_FILL)
        slow_answer: list = []
        worker = threading.Thread(
            target=lambda: slow_answer.append(slow.one(SLOW_INSERT.format(table=table))))
        worker.start()
        time.sleep(freeze_after_s)
        os.kill(m1_pid, signal.SIGSTOP)                  # frozen in the middle of the statement
        try:
            # The balancer moves the table's writes to m2 once m1 stops answering.
            def written_elsewhere():
                answer = other.one(f'manampia ao@ {table} sanda (2222, "acked");')
                return answer if answer.ok else None
            history.record(2222, wait_until(written_elsewhere, deadline_s=15, interval_s=0.2,
                                            what="a write through the balancer while m1 is frozen"))
        finally:
            os.kill(m1_pid, signal.SIGCONT)
        worker.join(60)
    history.record(SLOW_ROW, slow_answer[0])
    pair.settle()
    history.present = {server: set(pair.ids(server, table)) for server in pair.nodes}
    return history


# --------------------------------------------------------------------------
# replicas heal, writes move away from a full disk, one cluster per directory


@dataclass
class HealResult:
    seconds: float            # from the corruption to a valid copy in place again
    kept_aside: bool          # the corrupt bytes were kept under .corrupt/
    identical: bool           # the repaired copy holds m2's version and content


def run_corrupt_heal(pair: ReplicatedPair, deadline_s: float = 15.0) -> HealResult:
    """Truncate m1's table snapshot by hand; time until the replicator has repaired it from m2."""
    with WireClient(pair.port("m1")) as one, WireClient(pair.port("m2")) as two:
        pair.prepare([one, two])
        values = ", ".join(f'({i}, "row")' for i in range(2, 200))
        one.ok(f"manampia ao@ t sanda {values};")
    pair.settle()
    relative = f"{DATABASE}/tables/t.json"
    broken = pair.data["m1"] / relative
    torn = broken.read_bytes()[:broken.stat().st_size // 2]   # a torn file, header intact

    def repaired() -> bool:
        objects = [logical_objects(pair.data[server]).get(relative) for server in ("m1", "m2")]
        return objects[0] is not None and objects[0].problem is None and \
            objects[0] == objects[1]

    started = time.monotonic()
    broken.write_bytes(torn)
    wait_until(repaired, deadline_s=deadline_s, interval_s=0.005,
               what="m1's corrupt copy repaired from m2")
    seconds = time.monotonic() - started
    kept = list((pair.data["m1"] / ".corrupt").rglob("t.json*"))
    return HealResult(seconds, bool(kept) and kept[0].read_bytes() == torn, repaired())


@dataclass
class FailoverResult:
    first_write_s: float      # the first write owned by the full server: its latency
    max_write_s: float
    history: WriteHistory


def run_disk_full_failover(starter: NodeStarter, workdir: Path, writes: int = 50) -> FailoverResult:
    """m2's data on a small tmpfs, filled up; writes m2 owns go through the balancer.

    Needs root to mount the tmpfs (skips like a test otherwise: `tests.faults.tiny_tmpfs`).
    """
    from tests.faults import fill_up, tiny_tmpfs

    with tiny_tmpfs(workdir / "data" / "m2", "2m"), ReplicatedPair(starter, workdir) as pair:
        lb = starter("balancer", "lb", "--backend", f"m1=127.0.0.1:{pair.port('m1')}",
                     "--backend", f"m2=127.0.0.1:{pair.port('m2')}",
                     "--probe-interval-ms", "100", "--probe-timeout-ms", "300")
        table = tables_owned_by("m2", DATABASE)[0]
        history = WriteHistory()
        latencies = []
        with WireClient(lb.port) as client, WireClient(lb.port) as other:
            pair.prepare([client, other], table=table)
            filler = fill_up(pair.data["m2"])
            for key in range(10, 10 + writes):
                started = time.monotonic()
                # Rows wider than a page: an append cannot fit in the slack of the
                # journal's last block, so the full disk really refuses it.
                history.record(key, client.one(f'manampia ao@ {table} sanda ({key}, "{"x" * 5000}");'))
                latencies.append(time.monotonic() - started)
            filler.unlink()                               # space returns: replication catches up
        pair.settle(deadline_s=30)
        history.present = {server: set(pair.ids(server, table)) for server in pair.nodes}
    return FailoverResult(latencies[0], max(latencies), history)


@dataclass
class SecondClusterResult:
    refused: bool             # `up` of the second cluster exited non-zero, nothing started
    message: str              # what it said
    first_intact: bool        # the first cluster's rows are all still there


def run_second_cluster(workdir: Path) -> SecondClusterResult:
    """A second topology (other ports) naming the first one's data directories, started while it runs."""
    import yaml

    from tests.conftest import ping
    from tests.integration.cluster_scenario import SupervisedCluster
    from tests.integration.faultkit import WireClient as RetryingClient
    from tests.integration.faultkit import rows_of

    first = SupervisedCluster(workdir / "first")
    second = SupervisedCluster(workdir / "second")
    for server in second.servers:
        second.document["nodes"][server]["data"] = str(first.data_dir(server))
    second.topology.write_text(yaml.safe_dump(second.document, sort_keys=False))
    try:
        first.up()
        with RetryingClient(first.ports["lb"]) as client:
            for statement in (f"manamboara tahiry {DATABASE}", f"ampiasao {DATABASE}",
                              "manamboara tabilao t (id ISA(0,null))",
                              "manampia ao@ t sanda (1), (2), (3)"):
                assert client.execute(statement).ok, statement
        answer = second.cli("up", "-d", str(second.topology))
        started = any(ping(port) for port in second.ports.values())
        with RetryingClient(first.ports["lb"]) as client:
            client.use(DATABASE)
            rows = sorted(rows_of(client.execute("alaivo * ao@ t")))
        return SecondClusterResult(answer.returncode != 0 and not started,
                                   (answer.stderr or answer.stdout).strip().splitlines()[0]
                                   if (answer.stderr or answer.stdout).strip() else "",
                                   rows == [[1], [2], [3]])
    finally:
        second.down()
        first.down()
        first.kill_leftovers()
        second.kill_leftovers()
