"""Editing topology.yaml while the cluster runs: add a server, refuse an invalid
edit, remove a server, restart only a changed node, servers changed together restarted
one at a time."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import psutil
import pytest

from engine.session import Session
from engine.storage.object_state import current_document
from engine.storage.store import Store
from supervisor.control import send_command
from tests.conftest import free_port, wait_until, wire_request
from tests.integration.supervisorkit import (
    DEADLINE_S,
    all_running,
    balancer_backends,
    cluster_yaml,
    first_line_time,
    run_session,
)

pytestmark = pytest.mark.slow  # whole supervised clusters, edited while they run


def pids(nodes: dict[str, dict]) -> dict[str, int]:
    return {node: row["pid"] for node, row in nodes.items()}


def test_adding_a_server_seeds_it_and_the_balancer_uses_it(cluster):
    assert cluster.up().returncode == 0
    answers = cluster.session("manamboara tahiry sekoly;", "ampiasao sekoly;",
                              "manamboara tabilao t (id ISA(0,100));",
                              "manampia ao@ t sanda (1),(2),(3);")
    assert not any("Hadisoana" in a for a in answers), answers
    before = pids(cluster.nodes())

    cluster.write(extra_servers=("m3",))
    nodes = cluster.wait_for(lambda n: "m3" in n and n["m3"]["state"] == "RUNNING", "m3 running")
    assert {k: v for k, v in pids(nodes).items() if k != "m3"} == before  # nobody restarted
    table = cluster.workdir / "data" / "m3" / "sekoly" / "tables" / "t.json"
    assert table.exists() and current_document(table)["rows"] == [[1], [2], [3]]
    cluster.wait_for(lambda n: "m3" in balancer_backends(cluster), "balancer lists m3")
    # Reads go round-robin: m3 gets some of them.
    run_session(cluster.ports["lb"], ["ampiasao sekoly;"] + ["alaivo * ao@ t;"] * 9)
    assert balancer_backends(cluster)["m3"]["reads"] > 0
    # The new server answers with the seeded data directly too.
    direct = run_session(cluster.ports["m3"], ["ampiasao sekoly;", "alaivo * ao@ t;"])
    assert '"rows":[[1],[2],[3]]' in direct[1]


def test_invalid_edit_changes_nothing_and_is_reported(cluster):
    assert cluster.up().returncode == 0
    before = pids(cluster.nodes())
    good = cluster.topology.read_text()
    cluster.write(text=good.replace("backends: [m1, m2]", "backends: [m1, m9]"))
    reload = wait_until(lambda: cluster.status()["supervisor"]["last_reload"], DEADLINE_S,
                        "the supervisor to report the edit")
    assert reload["ok"] is False and "nodes.lb.backends: unknown node 'm9'" in reload["message"]
    assert pids(cluster.nodes()) == before
    assert all(row["state"] == "RUNNING" for row in cluster.nodes().values())
    # The file is invalid, yet status (and down) still reach the running cluster.
    text = cluster.cli("status", str(cluster.topology))
    assert text.returncode == 0 and "last topology edit refused" in text.stdout


def test_removing_and_changing_nodes(cluster):
    cluster.write(extra_servers=("m3",))
    assert cluster.up().returncode == 0
    before = pids(cluster.nodes())
    # Remove m3 and change the proxy's ttl: m3 stops, the proxy restarts, nothing else.
    cluster.write(text=cluster_yaml(cluster.ports).replace("ttl_ms: 3000", "ttl_ms: 500"))
    nodes = cluster.wait_for(lambda n: "m3" not in n and n["proxy"]["pid"] != before["proxy"]
                             and n["proxy"]["state"] == "RUNNING", "m3 removed, proxy restarted")
    assert {k: nodes[k]["pid"] for k in ("m1", "m2", "lb")} == \
        {k: before[k] for k in ("m1", "m2", "lb")}
    backends = json.loads((cluster.workdir / "run" / "lb.backends.json").read_text())
    assert [entry["id"] for entry in backends["backends"]] == ["m1", "m2"]
    assert cluster.survivors_of([before["m3"]]) == []


TABLE = "ops/tables/t.json"


def m3_removed_after_an_acknowledged_write(cluster) -> Path:
    """A cluster with m3 holding table t = [1]; m3 then removed by a reload and row 50001
    acknowledged through the balancer without it. The data folder."""
    cluster.write(extra_servers=("m3",))
    assert cluster.up().returncode == 0
    answers = cluster.session("manamboara tahiry ops;", "ampiasao ops;",
                              "manamboara tabilao t (id ISA(0,1000000));",
                              "manampia ao@ t sanda (1);")
    assert not any("Hadisoana" in a for a in answers), answers
    data = cluster.workdir / "data"
    nodes = cluster.wait_for(lambda n: current_document(data / "m3" / TABLE)["rows"] == [[1]],
                             "m3 holds the table")
    cluster.write()   # m3 removed
    # Out of the topology at once, m3 stops once the balancer has let go of it, and is
    # handed over: only then is its directory nobody's.
    wait_until(lambda: "removed m3" in ((cluster.status()["supervisor"]["last_reload"] or {})
                                        .get("message") or ""), DEADLINE_S, "m3 removed")
    assert cluster.survivors_of([nodes["m3"]["pid"]]) == [], "m3 stopped"
    acknowledged = cluster.session("ampiasao ops;", "manampia ao@ t sanda (50001);",
                                   port=cluster.ports["lb"])
    assert "Hadisoana" not in acknowledged[1], acknowledged
    return data


def wait_for_rows(data: Path, rows: list[list[int]]) -> None:
    """Wait for every server's copy of t to hold `rows`; at the deadline, say what each holds."""
    held = {}

    def every_server_holds_them() -> bool:
        for server in ("m1", "m2", "m3"):
            held[server] = sorted(current_document(data / server / TABLE)["rows"])
        return all(copy == rows for copy in held.values())
    try:
        wait_until(every_server_holds_them, DEADLINE_S, f"every server to hold {rows}")
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}; the servers hold {held}") from None


def write_offline(root: Path) -> None:
    """Rows 50002 and 50003 written into `root` with the embedded engine (no cluster)."""
    offline = Session(Store(root))
    for statement in ("ampiasao ops;", "manampia ao@ t sanda (50002);",
                      "manampia ao@ t sanda (50003);"):
        assert offline.execute(statement)[0].ok


def test_a_server_added_back_after_offline_writes_loses_no_acknowledged_write(cluster):
    """Remove m3, write through the balancer (acknowledged), write into data/m3 with the
    embedded engine meanwhile, add m3 back: its copy, at a higher counter, won and the
    acknowledged row vanished from every server. The cluster's copy wins now; m3's is
    kept in data/m3/.diverged/."""
    data = m3_removed_after_an_acknowledged_write(cluster)
    write_offline(data / "m3")
    cluster.write(extra_servers=("m3",))   # m3 back
    cluster.wait_for(lambda n: "m3" in n and n["m3"]["state"] == "RUNNING", "m3 running")
    # A write on top: it pulled m3's copy first when m3's counter won.
    after = cluster.session("ampiasao ops;", "manampia ao@ t sanda (2);", port=cluster.ports["lb"])
    assert "Hadisoana" not in after[1], after
    wait_for_rows(data, [[1], [2], [50001]])
    kept = list((data / "m3" / ".diverged").rglob("t.json*"))
    assert kept, "m3's diverged copy is kept"
    assert "diverged" in (cluster.workdir / "logs" / "supervisor.log").read_text()


def test_an_edited_control_port_keeps_the_cluster_reachable_and_its_token(cluster):
    """control_port takes effect at the next `up`, but the commands read it from the file:
    `status` said the cluster was unsupervised, `down` that it was not running, and the
    `up` it advised failed on the ports and deleted the running supervisor's token."""
    assert cluster.up().returncode == 0
    token = (cluster.workdir / "run" / "control-token").read_text()
    other_port = free_port()
    cluster.write(text=cluster_yaml(cluster.ports).replace(
        f"control_port: {cluster.ports['control']}", f"control_port: {other_port}"))
    wait_until(lambda: "control_port changed" in (cluster.workdir / "logs" / "supervisor.log")
               .read_text(), DEADLINE_S, "the reload to see the edit")
    status = cluster.cli("status", str(cluster.topology))
    assert status.returncode == 0 and "UNSUPERVISED" not in status.stdout, status.stdout
    again = cluster.up()
    assert again.returncode == 0 and "already runs" in again.stdout, again.stdout + again.stderr
    assert (cluster.workdir / "run" / "control-token").read_text() == token
    assert cluster.cli("restart", "lb", str(cluster.topology)).returncode == 0


def test_a_server_added_back_while_the_cluster_was_down_loses_no_acknowledged_write(cluster):
    """The same with a stop in between: m3 removed by a reload, a write acknowledged, the
    cluster stopped, data/m3 written offline, m3 added back in the file, `up`: newest-wins
    at start let m3's copy win. Removed, its directory forgot the cluster; at `up` it joins."""
    data = m3_removed_after_an_acknowledged_write(cluster)
    cluster.down()
    write_offline(data / "m3")
    cluster.write(extra_servers=("m3",))   # m3 back, while stopped
    assert cluster.up().returncode == 0
    wait_for_rows(data, [[1], [50001]])
    assert list((data / "m3" / ".diverged").rglob("t.json*")), "m3's diverged copy is kept"
    assert "m3 joining" in (cluster.workdir / "logs" / "supervisor.log").read_text()


def test_removing_the_balancer_removes_its_backends_file(cluster):
    """Bug: after an edit removed lb (the proxy sent to m1 instead), run/lb.backends.json
    stayed while the cluster ran (a removed server's peers file goes)."""
    assert cluster.up().returncode == 0
    run = cluster.workdir / "run"
    assert (run / "lb.backends.json").exists()
    without_lb = cluster_yaml(cluster.ports)
    start = without_lb.index("  lb:\n")
    without_lb = without_lb[:start] + without_lb[without_lb.index("  proxy:\n"):]
    cluster.write(text=without_lb.replace("upstream: lb", "upstream: m1"))
    cluster.wait_for(lambda n: "lb" not in n and n["proxy"]["state"] == "RUNNING",
                     "lb removed, the proxy on m1")
    wait_until(lambda: not (run / "lb.backends.json").exists(), DEADLINE_S,
               "lb's backends file to go")
    # (removed once lb is stopped: a running balancer missing its file logs an error)
    assert "keeping the current backends" not in (cluster.workdir / "logs" / "lb.log").read_text()


def test_a_removed_server_is_stopped_only_once_the_balancer_let_go_of_it(cluster):
    """A balancer re-reads its backends file every probe interval: stopped before it did,
    a removed server cut the statements the balancer still sent it (a write's outcome
    then unknown to its client)."""
    cluster.write(extra_servers=("m3",))
    assert cluster.up().returncode == 0
    cluster.wait_for(lambda n: "m3" in balancer_backends(cluster), "balancer lists m3")
    cluster.write()   # m3 removed
    cluster.wait_for(lambda n: "m3" not in n, "m3 removed")
    logs = cluster.workdir / "logs"
    let_go = first_line_time(logs / "lb.log", "backend m3 removed")
    stopping = first_line_time(logs / "m3.log", "m3 INFO nodes.server: stopping")
    assert let_go < stopping, (let_go, stopping)


def neither_answering(ports: list[int], stop: threading.Event, moments: list[float]) -> None:
    """Until `stop`: each server asked `.ping;` in turn; the moments when none answered."""
    while not stop.is_set():
        answered = False
        for port in ports:
            try:
                answered = "PONG" in wire_request(port, ".ping;", timeout=1.0) or answered
            except OSError:
                pass
        if not answered:
            moments.append(time.monotonic())
        stop.wait(0.01)


def test_turning_local_sockets_off_restarts_the_servers_one_at_a_time(cluster):
    """Bug: flipping `supervisor: local_sockets` restarted every server at once (their
    command lines all change), so for a moment no server answered. They roll now: each
    out of the balancer, stopped once it let go of it, started, back in and answering
    before the next one goes."""
    assert cluster.up().returncode == 0
    servers = ("m1", "m2")
    cluster.wait_for(lambda n: all(balancer_backends(cluster).get(server, {}).get("state")
                                   == "ONLINE" for server in servers), "lb routes to both")
    before = pids(cluster.nodes())
    logs = cluster.workdir / "logs"
    stop, none_answered = threading.Event(), []
    poller = threading.Thread(target=neither_answering, args=(
        [cluster.ports[server] for server in servers], stop, none_answered))
    poller.start()
    try:
        cluster.write(text=cluster_yaml(cluster.ports).replace(
            "supervisor:\n", "supervisor:\n  local_sockets: false\n"))
        nodes = cluster.wait_for(lambda n: all(n[node]["pid"] not in (None, before[node])
                                               and n[node]["state"] == "RUNNING"
                                               for node in before), "every node restarted")
    finally:
        stop.set()
        poller.join(timeout=15)
    assert "--unix-socket" not in " ".join(psutil.Process(nodes["m1"]["pid"]).cmdline())
    assert none_answered == [], f"no server answered {len(none_answered)} times"
    removed = {server: first_line_time(logs / "lb.log", f"backend {server} removed")
               for server in servers}
    stopping = {server: first_line_time(logs / f"{server}.log",
                                        f"{server} INFO nodes.server: stopping")
                for server in servers}
    first, second = sorted(servers, key=stopping.__getitem__)
    back = first_line_time(logs / "lb.log", f"backend {first} joined", removed[first])
    assert removed[first] < stopping[first] < back < removed[second] < stopping[second], \
        (removed, stopping, back)


def _unblock_fifo(path: Path) -> None:
    """End a read blocked on the FIFO at `path` (if any): open it for writing, close it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader: nothing is blocked


def test_a_fifo_put_in_place_of_the_topology_is_refused_and_the_supervisor_answers(cluster):
    """Bug: the file watcher read the new topology.yaml in the event loop: a FIFO there
    (`mkfifo`, `mv` over the file) blocked the supervisor for good, nothing answered on its
    control port and no crashed node was restarted; `check` and `reload` hung too."""
    assert cluster.up().returncode == 0, cluster.supervisor_log()
    text = cluster.topology.read_text()
    fifo = cluster.workdir / "fifo.yaml"
    os.mkfifo(fifo)
    os.replace(fifo, cluster.topology)
    try:
        deadline = time.monotonic() + 1.5   # ten times the watcher's quiet time
        while time.monotonic() < deadline:
            assert send_command(cluster.ports["control"], {"cmd": "hello"}, timeout_s=1.0)["ok"]
        check = cluster.cli("check", str(cluster.topology), timeout=10)
        assert check.returncode == 2 and "not a regular file" in check.stderr, check
        reload = cluster.cli("reload", str(cluster.topology), timeout=10)
        assert reload.returncode != 0 and "not a regular file" in reload.stderr, reload
        assert all_running(cluster.nodes())
    finally:
        _unblock_fifo(cluster.topology)
        cluster.topology.unlink()
        cluster.topology.write_text(text)
