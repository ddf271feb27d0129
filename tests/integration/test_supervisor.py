"""The supervisor running the real nodes: up, status, queries through the proxy,
kill -9 and restart, restart NODE, logs, down leaving no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from tests.conftest import REPO_ROOT, wait_until, wire_request
from tests.integration.supervisorkit import DEADLINE_S, all_running, cluster_yaml

pytestmark = pytest.mark.slow  # whole supervised clusters, started and stopped per test


def test_up_status_query_and_down(cluster):
    result = cluster.up()
    assert result.returncode == 0, result.stderr + cluster.supervisor_log()
    assert "RUNNING" in result.stdout and "proxycache" in result.stdout
    nodes = cluster.nodes()
    assert all_running(nodes) and list(nodes) == ["m1", "m2", "lb", "proxy"]
    assert all(row["pid"] and row["probe_ms"] is not None for row in nodes.values())

    answers = cluster.session("manamboara tahiry sekoly;", "ampiasao sekoly;",
                              "manamboara tabilao t (id ISA(0,100));",
                              "manampia ao@ t sanda (1),(2);", "alaivo * ao@ t;",
                              "alaivo * ao@ t;")
    assert not any("Hadisoana" in answer for answer in answers), answers
    assert '"rows":[[1],[2]]' in answers[-1] and answers[-1] == answers[-2]
    assert "hit ratio 50%" in cluster.cli("status", str(cluster.topology)).stdout

    again = cluster.cli("up", str(cluster.topology))
    assert again.returncode == 0 and "already runs" in again.stdout

    cluster.down()
    assert cluster.survivors() == []
    stopped = cluster.status()
    assert stopped["exit_code"] == 3 and stopped["running"] is False
    assert {row["state"] for row in stopped["nodes"]} == {"STOPPED"}
    assert list((cluster.workdir / "run").glob("*.json")) == []


def test_killed_server_is_restarted_and_catches_up(cluster):
    assert cluster.up().returncode == 0
    before = cluster.nodes()
    old_pid = before["m1"]["pid"]
    os.kill(old_pid, signal.SIGKILL)
    nodes = cluster.wait_for(lambda n: n["m1"]["restarts"] == 1 and n["m1"]["state"] == "RUNNING",
                             "m1 restarted")
    assert nodes["m1"]["pid"] != old_pid
    assert "code -9" in nodes["m1"]["last_exit"]
    assert nodes["m2"]["pid"] == before["m2"]["pid"] and nodes["m2"]["restarts"] == 0
    assert "PONG" in wire_request(cluster.ports["m1"], ".ping;")
    backends = json.loads((cluster.workdir / "run" / "lb.backends.json").read_text())
    assert all(entry["writable"] for entry in backends["backends"])


def test_restart_command_and_logs(cluster):
    assert cluster.up().returncode == 0
    old_pid = cluster.nodes()["lb"]["pid"]
    result = cluster.cli("restart", "lb", str(cluster.topology))
    assert result.returncode == 0, result.stderr
    nodes = cluster.nodes()
    assert nodes["lb"]["state"] == "RUNNING" and nodes["lb"]["pid"] != old_pid
    unknown = cluster.cli("restart", "nope", str(cluster.topology))
    assert unknown.returncode != 0 and "unknown node 'nope'" in unknown.stderr
    logs = cluster.cli("logs", "m1", str(cluster.topology))
    assert logs.returncode == 0 and "[supervisor] started pid" in logs.stdout
    assert "RUNNING" in cluster.cli("logs", "supervisor", str(cluster.topology)).stdout


def test_invalid_topology_starts_nothing(cluster):
    cluster.write(text=cluster_yaml(cluster.ports).replace("backends: [m1, m2]",
                                                           "backends: [m1, m9]"))
    result = cluster.cli("up", "-d", str(cluster.topology))
    assert result.returncode == 2
    assert "nodes.lb.backends: unknown node 'm9'" in result.stderr
    assert "nothing was started" in result.stderr
    assert not (cluster.workdir / "run").exists()


def test_foreground_up_stops_everything_on_ctrl_c(cluster):
    console = cluster.workdir / "console.err"  # log lines echoed on stderr, for the report
    with console.open("w") as stderr:
        cluster.foreground = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "up", str(cluster.topology)],
            cwd=cluster.workdir, stdout=subprocess.PIPE, stderr=stderr, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    table = []
    for line in cluster.foreground.stdout:  # the table is printed once everything settled
        table.append(line)
        if line.startswith("the cluster"):
            break
    assert sum("RUNNING" in line for line in table) == 4, "".join(table) + console.read_text()
    cluster.remember_pids()
    cluster.nodes()
    cluster.foreground.send_signal(signal.SIGINT)
    assert cluster.foreground.wait(timeout=30) == 0
    assert cluster.survivors() == []


def test_up_after_a_supervisor_crash_stops_its_leftover_nodes(cluster):
    assert cluster.up().returncode == 0
    old = cluster.nodes()
    supervisor_pid = int((cluster.workdir / "run" / "supervisor.pid").read_text())
    os.kill(supervisor_pid, signal.SIGKILL)  # the nodes keep running, orphaned
    psutil.Process(old["m1"]["pid"]).status()  # still there
    result = cluster.up()
    assert result.returncode == 0, result.stderr + cluster.supervisor_log()
    assert cluster.survivors_of([row["pid"] for row in old.values()]) == []
    nodes = cluster.nodes()
    assert all_running(nodes) and nodes["m1"]["pid"] != old["m1"]["pid"]
    assert "left by a supervisor that died" in cluster.supervisor_log()


def test_sighup_reloads_the_topology_and_the_supervisor_lives_on(cluster):
    """Bug: `kill -HUP` (the usual "read your configuration again") ended the supervisor
    at once, silently: its nodes ran on UNSUPERVISED, replication paused, nothing in its
    log. It now applies topology.yaml as `reload` does."""
    assert cluster.up().returncode == 0, cluster.supervisor_log()
    before = cluster.nodes()
    supervisor = psutil.Process(int((cluster.workdir / "run" / "supervisor.pid").read_text()))
    os.kill(supervisor.pid, signal.SIGHUP)
    reload = wait_until(lambda: cluster.status()["supervisor"]["last_reload"], DEADLINE_S,
                        "the reload SIGHUP asks for")
    assert reload["ok"] is True, reload
    assert supervisor.is_running() and supervisor.status() != psutil.STATUS_ZOMBIE
    nodes = cluster.nodes()
    assert all_running(nodes) and {n: r["pid"] for n, r in nodes.items()} == \
        {n: r["pid"] for n, r in before.items()}
    assert "SIGHUP" in cluster.supervisor_log()
