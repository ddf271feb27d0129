"""Storage faults with real processes: two servers (peers of each other) behind a real balancer.

A server that cannot read its copy of a table (truncated file) or cannot
write it (full disk) answers with a storage fault; the balancer sends the
statement to the other server, once, and keeps the table's statements away
from the failing one for a while. The client sees every statement succeed,
nothing acknowledged is lost, and the failing server's `.status;` names the
object and the reason. No supervisor, hence no replication: what replication
would have delivered is copied by hand. The last test runs the supervisor:
its `status` shows the failing server, the object and the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_until
from tests.faults import fill_up, tiny_tmpfs
from tests.integration.supervisorkit import SupervisorRun
from tests.integration.wire import ClientPool, create_and_use, tables_owned_by
from tests.objectkit import ship

pytestmark = pytest.mark.slow  # a supervised cluster under writes with a full disk

DATABASE = "s"
# Rows wider than a page: a journal append on a full disk cannot fit in the
# slack of the journal's last block, so it really fails (ENOSPC).
PAD = "x" * 5000


def start_peers(start_node, m1_dir, m2_dir):
    """m1 and m2, each knowing the other's data directory, behind balancer lb."""
    m1 = start_node("server", "m1", "--data", str(m1_dir), "--peer", f"m2={m2_dir}")
    m2 = start_node("server", "m2", "--data", str(m2_dir), "--peer", f"m1={m1_dir}")
    lb = start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{m1.port}",
                    "--backend", f"m2=127.0.0.1:{m2.port}", "--probe-interval-ms", "100",
                    "--probe-timeout-ms", "500")
    return m1, m2, lb


def replicate(source, target, relative: str) -> None:
    """What the replicator does for one object (engine/storage/object_copy.py)."""
    ship(source, target, relative)


def ids(client, table: str) -> list[int]:
    return sorted(row[0] for row in client.rows(f"alaivo id ao@ {table};"))


def faults_of(client) -> dict[str, dict]:
    return {item["object"]: item for item in client.status()["storage_faults"]}


def test_a_corrupt_copy_on_the_owner_moves_reads_and_writes_to_the_good_copy(start_node):
    m1_dir, m2_dir = start_node.workdir / "data" / "m1", start_node.workdir / "data" / "m2"
    m1, m2, lb = start_peers(start_node, m1_dir, m2_dir)
    table = tables_owned_by("m1", DATABASE)[0]
    relative = f"{DATABASE}/tables/{table}.json"
    with ClientPool(lb.port) as connect:
        client = connect()
        create_and_use(client, DATABASE)
        client.ok(f"manamboara tabilao {table} (id ISA(null,null));")
        client.ok(f"manampia ao@ {table} sanda (1), (2), (3);")
        replicate(m1_dir, m2_dir, relative)
        corrupt = (m1_dir / relative).read_bytes()[:30]
        (m1_dir / relative).write_bytes(corrupt)

        reader = connect()
        reader.ok(f"ampiasao {DATABASE};")
        for _ in range(6):  # reads spread over both servers: none may fail
            assert ids(reader, table) == [1, 2, 3]
        for value in (4, 5, 6):  # m1 owns the table: the writes must move to m2
            client.ok(f"manampia ao@ {table} sanda ({value});")
        assert ids(client, table) == ids(reader, table) == [1, 2, 3, 4, 5, 6]

        balancer = client.status()
        assert balancer["counters"]["storage_faults"] >= 1
        assert balancer["counters"]["storage_resent_reads"] + \
            balancer["counters"]["storage_resent_writes"] >= 1
        assert {(f["backend"], f["object"]) for f in balancer["storage_faults"]} == {("m1", table)}
        reported = faults_of(connect(m1.port))[relative]
        assert reported["operation"] == "read" and reported["reason"].startswith("corrupt")
        assert faults_of(connect(m2.port)) == {}
    assert (m1_dir / relative).read_bytes() == corrupt   # an unreadable copy is never overwritten
    assert lb.alive() and m1.alive() and m2.alive()


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (a disk that can fill up); skipped where mounting is not allowed."""
    with tiny_tmpfs(tmp_path / "small", "2m") as mount_point:
        yield mount_point


def test_writes_owned_by_a_server_with_a_full_disk_move_and_nothing_acknowledged_is_lost(
        small_disk, start_node):
    m1_dir, m2_dir = start_node.workdir / "data" / "m1", small_disk / "m2"
    m1, m2, lb = start_peers(start_node, m1_dir, m2_dir)
    table = tables_owned_by("m2", DATABASE)[0]
    relative = f"{DATABASE}/tables/{table}.json"
    acknowledged: list[int] = []
    with ClientPool(lb.port) as connect:
        client = connect()
        create_and_use(client, DATABASE)
        client.ok(f"manamboara tabilao {table} (id ISA(null,null), pad LAHATSORATRA(null,null));")
        for value in range(5):
            client.ok(f"manampia ao@ {table} sanda ({value}, \"{PAD}\");")
            acknowledged.append(value)
        assert not (m1_dir / relative).exists(), "the table's writes went to its owner m2"
        filler = fill_up(small_disk)

        for value in range(100, 120):  # m2 owns the table and cannot write: m1 takes the writes
            client.ok(f"manampia ao@ {table} sanda ({value}, \"{PAD}\");")
            acknowledged.append(value)
        assert ids(client, table) == sorted(acknowledged)
        assert ids(_direct(connect, m1), table) == sorted(acknowledged)
        reported = faults_of(connect(m2.port))[relative]
        assert reported["operation"] == "write"
        assert reported["reason"] == "not writable: No space left on device"
        counters = client.status()["counters"]
        assert counters["storage_resent_writes"] >= 1 and counters["unknown_writes"] == 0

        # Space again: after its hold the balancer re-tests m2, whose write pulls
        # m1's newer copy first; m2's record clears with that write.
        filler.unlink()
        value = 200

        def back_on_m2() -> bool:
            nonlocal value
            client.ok(f"manampia ao@ {table} sanda ({value}, \"{PAD}\");")
            acknowledged.append(value)
            value += 1
            return faults_of(connect(m2.port)) == {}

        wait_until(back_on_m2, deadline_s=20.0, interval_s=0.1, what="writes back on m2")
        assert ids(_direct(connect, m2), table) == sorted(acknowledged)  # each exactly once
        assert client.status()["storage_faults"] == []


def _direct(connect, server):
    """A client straight to `server`, in the test database."""
    client = connect(server.port)
    client.ok(f"ampiasao {DATABASE};")
    return client


def test_supervisor_status_names_the_server_the_object_and_the_reason(small_disk, tmp_path):
    ports = {name: free_port() for name in ("control", "m1", "m2", "lb")}
    (tmp_path / "topology.yaml").write_text(f"""\
supervisor:
  control_port: {ports['control']}
  health: {{interval_ms: 200, timeout_ms: 1000, fall: 3}}
nodes:
  m1: {{kind: server, host: 127.0.0.1, port: {ports['m1']}, data: data/m1}}
  m2: {{kind: server, host: 127.0.0.1, port: {ports['m2']}, data: {small_disk / 'm2'}}}
  lb: {{kind: balancer, host: 127.0.0.1, port: {ports['lb']}, backends: [m1, m2]}}
""")
    run = SupervisorRun(tmp_path, tmp_path / "topology.yaml")
    started = run.cli("up", "-d", str(run.topology))
    try:
        assert started.returncode == 0, started.stderr + run.supervisor_log()
        table = tables_owned_by("m2", DATABASE)[0]
        with ClientPool(ports["lb"]) as connect:
            client = connect()
            create_and_use(client, DATABASE)
            client.ok(f"manamboara tabilao {table} (id ISA(null,null));")
            filler = fill_up(small_disk)
            client.ok(f"manampia ao@ {table} sanda (1);")   # moved to m1

        def m2_faults() -> list:
            answer = json.loads(run.cli("status", str(run.topology), "--json").stdout)
            return {row["node"]: row for row in answer["nodes"]}["m2"].get("storage_faults") or []

        faults = wait_until(m2_faults, deadline_s=10.0, what="m2's storage fault in status")
        assert [(f["object"], f["operation"], f["reason"]) for f in faults] == \
            [(f"{DATABASE}/tables/{table}.json", "write", "not writable: No space left on device")]
        table_text = run.cli("status", str(run.topology)).stdout
        assert f"storage fault: {DATABASE}/tables/{table}.json (write: not writable" in table_text

        # Space again, and no write of that table comes (the balancer sends them to m1
        # for a while, and none may follow): m2's test write in the table's folder
        # clears its record. Before, it stayed until that table was written on m2
        # again, so a freed disk showed its fault for ever.
        filler.unlink()
        wait_until(lambda: m2_faults() == [], deadline_s=20.0, what="m2's fault to clear")
        assert "takes writes again" in (tmp_path / "logs" / "m2.log").read_text()
        assert list((small_disk / "m2").rglob("*.tmp")) == []   # the test write left nothing
    finally:
        run.cli("down", str(run.topology))


@dataclass
class FullDiskRun:
    """A supervised m1, m2 (its disk full) and lb; rows m1 acknowledged that m2 lacks."""

    run: SupervisorRun
    text: str                  # the topology file's text
    ports: dict[str, int]
    filler: Path               # unlink it to give m2 space again
    acknowledged: list[int]

    def edit(self, text: str) -> None:
        self.run.topology.write_text(text)

    def write_on(self, port: int, value: int) -> None:
        """A write straight to the server at `port` once it goes through; then every row
        acknowledged must be there."""
        with ClientPool(port) as connect:
            client = connect()
            client.ok(f"ampiasao {DATABASE};")

            def written() -> bool:
                return client.one(f"manampia ao@ t sanda ({value}, \"{PAD}\");").ok
            wait_until(written, deadline_s=20.0, interval_s=0.2, what="a write")
            self.acknowledged.append(value)
            assert ids(client, "t") == sorted(self.acknowledged), \
                self.run.supervisor_log()[-3000:]


@contextmanager
def m1_acknowledges_while_m2_is_full(small_disk: Path, tmp_path: Path,
                                     more_ports: tuple[str, ...] = ()) -> Iterator[FullDiskRun]:
    """The cluster up, table t on both, m2's disk filled, ten rows acknowledged by m1 (their
    copies to m2 fail); `down` at the end."""
    ports = {name: free_port() for name in ("control", "m1", "m2", "lb", *more_ports)}
    topology = tmp_path / "topology.yaml"
    text = f"""\
supervisor:
  control_port: {ports['control']}
  health: {{interval_ms: 200, timeout_ms: 1000, fall: 3}}
http: {{enabled: false}}
nodes:
  m1: {{kind: server, host: 127.0.0.1, port: {ports['m1']}, data: data/m1}}
  m2: {{kind: server, host: 127.0.0.1, port: {ports['m2']}, data: {small_disk / 'm2'}}}
  lb: {{kind: balancer, host: 127.0.0.1, port: {ports['lb']}, backends: [m1, m2]}}
"""
    topology.write_text(text)
    run = SupervisorRun(tmp_path, topology)
    started = run.cli("up", "-d", str(run.topology))
    try:
        assert started.returncode == 0, started.stderr + run.supervisor_log()
        with ClientPool(ports["lb"]) as connect:
            client = connect()
            create_and_use(client, DATABASE)
            client.ok("manamboara tabilao t (id ISA(null,null), pad LAHATSORATRA(null,null));")
            wait_until(lambda: (small_disk / "m2" / DATABASE / "tables" / "t.json").exists(),
                       deadline_s=10.0, what="the table on m2")
            filler = fill_up(small_disk)
            on_m1 = connect(ports["m1"])
            on_m1.ok(f"ampiasao {DATABASE};")
            acknowledged = []
            for value in range(10):
                on_m1.ok(f"manampia ao@ t sanda ({value}, \"{PAD}\");")
                acknowledged.append(value)
        yield FullDiskRun(run, text, ports, filler, acknowledged)
    finally:
        run.cli("down", str(run.topology))


@pytest.mark.parametrize("restarted", [False, True], ids=["running", "down-and-up"])
def test_a_server_removed_while_its_copies_cannot_land_keeps_its_acknowledged_writes(
        small_disk, tmp_path, restarted):
    """m2's disk full, rows acknowledged by m1 (certified, but their copies to m2 fail),
    m1 removed from the topology: the hand over failed ("still failing"), m1 left anyway,
    and once m2 had space again its next write was built on its older copy: the rows m1
    acknowledged were gone (hunt: 133 of 186 inserts). A removed server whose newest
    copies could not be handed over stays the others' peer until they land, across a
    `down` and an `up` too (run/handing-over.json)."""
    with m1_acknowledges_while_m2_is_full(small_disk, tmp_path) as full:
        ports, run = full.ports, full.run
        full.edit(full.text.replace(f"  m1: {{kind: server, host: 127.0.0.1, port: "
                                    f"{ports['m1']}, data: data/m1}}\n", "")
                  .replace("backends: [m1, m2]", "backends: [m2]"))
        wait_until(lambda: "reload applied: removed m1" in run.supervisor_log(),
                   deadline_s=20.0, what="m1 removed")
        if restarted:
            assert run.cli("down", str(run.topology)).returncode == 0
            again = run.cli("up", "-d", str(run.topology))
            assert again.returncode == 0, again.stderr + run.supervisor_log()
        # The operator sees it: m1's directory holds writes nobody else has.
        pending = handing_over(run)
        assert list(pending) == ["m1"] and pending["m1"].endswith("/data/m1"), pending
        assert f"handing over: m1 ({pending['m1']})" in run.cli("status", str(run.topology)).stdout
        full.filler.unlink()
        full.write_on(ports["m2"], 100)
        wait_until(lambda: handing_over(run) == {}, deadline_s=20.0, what="m1 handed over")


def handing_over(run: SupervisorRun) -> dict:
    """`status --json`'s servers still handing over: {id: data directory}."""
    answer = json.loads(run.cli("status", str(run.topology), "--json").stdout)
    return answer["supervisor"]["handing_over"]


@pytest.mark.parametrize("edit", ["port", "data"])
def test_a_changed_server_whose_copies_cannot_land_keeps_its_acknowledged_writes(
        small_disk, tmp_path, edit):
    """m2's disk full, rows acknowledged by m1, then m1's port changed in the topology: the
    hand over failed, m1 left the replicator anyway and came back as a newcomer, whose
    alignment put the cluster's older copy (m2's) over m1's own newer one: the rows m1
    acknowledged went to `.diverged/`. A server that keeps its data directory is the same
    member: nothing to hand over, nothing to align. One given another directory starts
    from its old one when its hand over could not land (else only the old one held them)."""
    with m1_acknowledges_while_m2_is_full(small_disk, tmp_path, ("m1b",)) as full:
        ports, text = full.ports, full.text
        if edit == "port":
            full.edit(text.replace(f"port: {ports['m1']},", f"port: {ports['m1b']},"))
        else:
            full.edit(text.replace(f"port: {ports['m1']}, data: data/m1}}",
                                   f"port: {ports['m1b']}, data: data/m1b}}"))
        wait_until(lambda: "reload applied: changed m1" in full.run.supervisor_log(),
                   deadline_s=20.0, what="m1 restarted on its new port")
        full.filler.unlink()
        full.write_on(ports["m1b"], 100)
