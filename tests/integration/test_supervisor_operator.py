"""What the operator sees of a running cluster: an edit onto a taken port refused before
anything stops, `check` against the running cluster, restarts by hand counted apart, a
server restarted by hand only once the balancer let go of it, where `up` says to
connect."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from nodes.balancer.routing import rank_owners
from nodes.protocol.wire import ResponseDecoder
from nodes.runtime.upstream import WRITE_OUTCOME_UNKNOWN
from supervisor.cli import connect_line
from supervisor.topology import load_topology
from tests.conftest import free_port, read_response, wait_until
from tests.integration.supervisorkit import (
    DEADLINE_S,
    all_running,
    balancer_backends,
    first_line_time,
)

pytestmark = pytest.mark.slow  # a supervised cluster per test


def pids(nodes: dict[str, dict]) -> dict[str, int]:
    return {name: row["pid"] for name, row in nodes.items()}


def test_an_edit_onto_a_taken_port_is_refused_and_nothing_stops(cluster):
    """Bug: `check` said valid, and the reload stopped nothing but started an m3 that
    went BACKOFF -> FATAL with the cause only as a traceback in logs/m3.log."""
    result = cluster.up()
    assert result.returncode == 0, result.stderr + cluster.supervisor_log()
    assert connect_line(load_topology(cluster.topology)) in result.stdout
    before = pids(cluster.nodes())
    holder = socket.socket()
    holder.bind(("127.0.0.1", cluster.ports["m3"]))
    holder.listen(1)
    port = cluster.ports["m3"]
    try:
        # The running cluster's own ports are not "taken": the file as it is checks fine.
        assert cluster.cli("check", str(cluster.topology)).returncode == 0
        cluster.write(extra_servers=("m3",))
        check = cluster.cli("check", str(cluster.topology))
        assert check.returncode == 2
        assert f"m3: port {port} (127.0.0.1:{port}) is not free" in check.stderr
        assert f"held by pid {os.getpid()}" in check.stderr
        reload = wait_until(lambda: cluster.status()["supervisor"]["last_reload"], DEADLINE_S,
                            "the supervisor to report the edit")
        assert reload["ok"] is False
        assert f"m3: port {port} (127.0.0.1:{port}) is not free" in reload["message"]
        nodes = cluster.nodes()
        assert "m3" not in nodes and pids(nodes) == before and all_running(nodes)
        text = cluster.cli("status", str(cluster.topology)).stdout
        assert "last topology edit refused" in text and f"port {port}" in text
    finally:
        holder.close()
    # Freed: `reload` applies the same file.
    answer = cluster.cli("reload", str(cluster.topology))
    assert answer.returncode == 0, answer.stderr
    nodes = cluster.wait_for(lambda n: "m3" in n and n["m3"]["state"] == "RUNNING", "m3 running")
    assert {k: v for k, v in pids(nodes).items() if k != "m3"} == before


def test_a_restart_by_hand_is_not_counted_as_a_crash(cluster):
    assert cluster.up().returncode == 0
    restarted = cluster.cli("restart", "lb", str(cluster.topology))
    assert restarted.returncode == 0, restarted.stderr
    nodes = cluster.nodes()
    assert (nodes["lb"]["restarts"], nodes["lb"]["manual_restarts"]) == (0, 1)
    assert nodes["lb"]["alerts"] == [] and nodes["lb"]["state"] == "RUNNING"
    table = cluster.cli("status", str(cluster.topology)).stdout.splitlines()
    header = next(line.split() for line in table if line.startswith("NODE "))
    lb = next(line.split() for line in table if line.startswith("lb "))
    assert lb[header.index("RESTARTS")] == "0" and lb[header.index("MANUAL")] == "1"


def writing_until(port: int, stop: threading.Event, answers: list[str]) -> None:
    """Rows written one after the other on one connection until `stop`; every answer kept
    (a connection lost as the last one)."""
    decoder = ResponseDecoder()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        statements = ["ampiasao ops;", *(f"manampia ao@ t sanda ({n});" for n in range(1, 10**6))]
        for statement in statements:
            if stop.is_set():
                return
            sock.sendall(statement.encode())
            try:
                answers.append(read_response(sock, decoder).raw.decode())
            except OSError as error:
                answers.append(f"Hadisoana: connection lost ({error})")
                return


def test_a_restarted_server_is_stopped_only_once_the_balancer_let_go_of_it(cluster):
    """Bug: `restart SERVER` stopped it while the balancer still sent to it (it only
    learnt from its probes that the server was gone), so a statement on its way was cut, a
    write's client told "outcome unknown". A restart takes a reload's path now: out of
    the backends file, stopped once the balancer let go of it, back in once it runs.
    The server restarted is the one the writes go to (the table's owner)."""
    owner = rank_owners("ops", "t", ["m1", "m2"])[0]
    assert cluster.up().returncode == 0
    answers = cluster.session("manamboara tahiry ops;", "ampiasao ops;",
                              "manamboara tabilao t (id ISA(0,1000000));")
    assert not any("Hadisoana" in a for a in answers), answers
    cluster.wait_for(lambda n: balancer_backends(cluster).get(owner, {}).get("state") == "ONLINE",
                     f"the balancer routes to {owner}")
    stop, written = threading.Event(), []
    writer = threading.Thread(target=writing_until, args=(cluster.ports["lb"], stop, written))
    writer.start()
    try:
        wait_until(lambda: len(written) > 20, DEADLINE_S, "writes going through the balancer")
        restarted = cluster.cli("restart", owner, str(cluster.topology))
        assert restarted.returncode == 0, restarted.stderr + cluster.supervisor_log()
        during = len(written)
        wait_until(lambda: len(written) > during + 20, DEADLINE_S, "writes after the restart")
    finally:
        stop.set()
        writer.join(timeout=15)
    cut = [answer for answer in written if WRITE_OUTCOME_UNKNOWN in answer]
    assert not cut, cut[:3]
    assert not [answer for answer in written if "Hadisoana" in answer], written[-3:]
    logs = cluster.workdir / "logs"
    let_go = first_line_time(logs / "lb.log", f"backend {owner} removed")
    stopping = first_line_time(logs / f"{owner}.log", f"{owner} INFO nodes.server: stopping")
    assert let_go < stopping, (let_go, stopping)
    # Back in once it runs: the restart answers once the balancer routes to it again.
    assert balancer_backends(cluster)[owner]["state"] == "ONLINE"
    assert cluster.nodes()[owner]["manual_restarts"] == 1


def test_a_second_topology_in_the_same_folder_is_told_the_run_folder_is_taken(cluster):
    """Bug: `up -d other.yaml` beside a running topology.yaml said `the control port P is
    used by the supervisor of topology.yaml`, P being topology.yaml's port, not the one
    other.yaml gives: both topologies use the folder's run/ (where the port in force is
    read), and nothing said so."""
    assert cluster.up().returncode == 0
    other = cluster.workdir / "other.yaml"
    own_port = free_port()
    other.write_text(f"supervisor:\n  control_port: {own_port}\nhttp:\n  enabled: false\n"
                     f"nodes:\n  o1: {{kind: server, host: 127.0.0.1, port: {free_port()}, "
                     f"data: data/o1}}\n")
    result = cluster.cli("up", "-d", str(other))
    assert result.returncode == 1, result.stdout + result.stderr
    said = result.stderr
    assert f"{cluster.workdir / 'run'} is the run folder of the supervisor of " \
           f"{cluster.topology}" in said, said
    assert "supervisor: {run: " in said, said       # how to give other.yaml its own
    assert not (cluster.workdir / "data" / "o1").exists()
    assert all_running(cluster.nodes())
