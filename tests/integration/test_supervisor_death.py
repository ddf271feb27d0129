"""The supervisor's death loses nothing and hides nothing.

kill -9 of the supervisor leaves its nodes running: servers keep serving and
taking writes (each still certified against its peers' directories), only
replication is paused. `status` must show them running UNSUPERVISED, not
STOPPED; a new `up` stops them cleanly, syncs the directories before any
server takes writes again, and every acknowledged row is then on both servers.
"""

from __future__ import annotations

import json
import os
import signal

import psutil
import pytest
import yaml

from tests.integration.cluster_scenario import SupervisedCluster
from tests.integration.faultkit import WireClient, rows_of, wait_converged

pytestmark = pytest.mark.slow  # a whole supervised cluster whose supervisor dies


@pytest.fixture
def cluster(tmp_path):
    running = SupervisedCluster(tmp_path)
    yield running
    running.down()
    assert running.kill_leftovers() == [], "processes survived `down`"


def insert(port: int, ids, acknowledged: list[int]) -> None:
    with WireClient(port) as client:
        assert client.use("r").ok
        for row_id in ids:
            answer = client.execute(f"manampia ao@ t sanda ({row_id})")
            assert answer.ok, f"row {row_id} on port {port}: {answer.message}"
            acknowledged.append(row_id)


def still_running(cluster: SupervisedCluster, pids) -> list[int]:
    """Those of `pids` whose very process (not a reused pid) still runs."""
    alive = []
    for pid in pids:
        process = cluster.seen.get(pid)
        try:
            if process is not None and process.is_running() \
                    and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.Error:
            pass
    return alive


def up_with_table_r_t(cluster) -> None:
    """The cluster up, with database r and its table t (id) made through the balancer."""
    cluster.up()
    with WireClient(cluster.ports["lb"]) as client:
        for statement in ("manamboara tahiry r", "ampiasao r",
                          "manamboara tabilao t (id ISA(0,null))"):
            assert client.execute(statement).ok, statement


def test_supervisor_killed_nodes_run_unsupervised_and_a_new_up_loses_no_write(cluster):
    up_with_table_r_t(cluster)
    acknowledged: list[int] = []
    insert(cluster.ports["lb"], range(0, 20), acknowledged)
    before = cluster.status()
    cluster.remember(row["pid"] for row in before.values())

    supervisor = psutil.Process(int((cluster.workdir / "run" / "supervisor.pid").read_text()))
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.wait(timeout=10)

    status = cluster.cli("status", str(cluster.topology), "--json")
    answer = json.loads(status.stdout)
    assert status.returncode == 3 and answer["running"] is False
    assert answer["unsupervised"] == 4 and answer["replication"] == "paused"
    rows = {row["node"]: row for row in answer["nodes"]}
    for node, row in rows.items():
        assert row["state"] == "UNSUPERVISED", row
        assert row["pid"] == before[node]["pid"] and row["probe_ms"] is not None, row
    table = cluster.cli("status", str(cluster.topology)).stdout
    assert "STOPPED" not in table and table.count("UNSUPERVISED") >= 4, table
    assert "replication between the servers is paused until `./tahiry up`" in table, table

    # Without a supervisor the servers still take writes, straight and through the balancer.
    insert(cluster.ports["m1"], range(100, 120), acknowledged)
    insert(cluster.ports["m2"], range(200, 220), acknowledged)
    insert(cluster.ports["lb"], range(300, 310), acknowledged)

    cluster.up()
    assert "left by a supervisor that died" in cluster.supervisor_log()
    after = cluster.status()
    assert all(after[node]["pid"] != before[node]["pid"] for node in before), after
    assert still_running(cluster, [row["pid"] for row in before.values()]) == []

    converged, differences = wait_converged(cluster.data_dir("m1"), cluster.data_dir("m2"))
    assert converged is not None, differences
    for server in ("m1", "m2"):
        with WireClient(cluster.ports[server]) as client:
            assert client.use("r").ok
            ids = [row[0] for row in rows_of(client.execute("alaivo id ao@ t"))]
        assert sorted(ids) == sorted(acknowledged), f"{server}: {sorted(set(acknowledged) - set(ids))}"


def test_a_relay_left_by_a_dead_supervisor_is_unsupervised_and_stopped_by_down(tmp_path):
    """Bug: a relay (a proxycache with `backends:`, run as `python -m nodes.relay`) was not
    recognised as this cluster's node once its supervisor died: `status` listed it
    STOPPED while it ran, `down` left it running, and `up` refused its port as held by
    another program."""
    cluster = SupervisedCluster(tmp_path)
    proxy = cluster.node_of_kind("proxycache")
    balancer = cluster.node_of_kind("balancer")
    del cluster.document["nodes"][balancer]
    cluster.document["nodes"][proxy].pop("upstream")
    cluster.document["nodes"][proxy]["backends"] = list(cluster.servers)
    cluster.topology.write_text(yaml.safe_dump(cluster.document, sort_keys=False))
    del cluster.kinds[balancer]
    try:
        cluster.up()
        relay = psutil.Process(cluster.pid(proxy))
        cluster.remember([relay.pid])
        supervisor = psutil.Process(int((cluster.workdir / "run" / "supervisor.pid").read_text()))
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait(timeout=10)

        answer = json.loads(cluster.cli("status", str(cluster.topology), "--json").stdout)
        row = next(row for row in answer["nodes"] if row["node"] == proxy)
        assert (row["state"], row["pid"]) == ("UNSUPERVISED", relay.pid), row
        down = cluster.cli("down", str(cluster.topology))
        assert down.returncode == 0, down.stderr
        assert f"stopping {proxy} (pid {relay.pid})" in down.stderr, down.stderr
        assert still_running(cluster, [relay.pid]) == []
    finally:
        cluster.down()
        cluster.kill_leftovers()


def test_a_frozen_supervisor_is_not_said_to_be_taken_over_by_up(cluster):
    """Bug: with the supervisor stopped (SIGSTOP, Ctrl-Z), `status` said replication was
    paused "until `./tahiry up` takes them over", and `up` then failed with "cannot listen
    on the control port ...: address already in use" (held by that very supervisor)."""
    cluster.up()
    supervisor = psutil.Process(int((cluster.workdir / "run" / "supervisor.pid").read_text()))
    supervisor.suspend()
    try:
        status = cluster.cli("status", str(cluster.topology))
        assert status.returncode == 3
        assert f"kill -CONT {supervisor.pid}" in status.stdout, status.stdout
        assert "until `./tahiry up`" not in status.stdout, status.stdout
        up = cluster.cli("up", "-d", str(cluster.topology))
        assert up.returncode == 1
        assert f"the supervisor of this cluster (pid {supervisor.pid}) still runs" in up.stderr, \
            up.stderr
        assert "address already in use" not in up.stderr, up.stderr
    finally:
        supervisor.resume()
    cluster.wait_whole()


def m2_acknowledges_rows_alone(cluster) -> list[int]:
    """Table r.t with 5 rows on both servers, the supervisor killed (-9), then 10 rows
    acknowledged by m2 alone (replication paused): every id acknowledged."""
    up_with_table_r_t(cluster)
    acknowledged: list[int] = []
    insert(cluster.ports["lb"], range(0, 5), acknowledged)
    converged, differences = wait_converged(cluster.data_dir("m1"), cluster.data_dir("m2"))
    assert converged is not None, differences
    cluster.remember(row["pid"] for row in cluster.status().values())
    supervisor = psutil.Process(int((cluster.workdir / "run" / "supervisor.pid").read_text()))
    os.kill(supervisor.pid, signal.SIGKILL)
    supervisor.wait(timeout=10)
    insert(cluster.ports["m2"], range(200, 210), acknowledged)
    return acknowledged


def test_down_without_a_supervisor_syncs_so_a_server_removed_then_loses_nothing(cluster):
    """kill -9 of the supervisor, rows acknowledged by m2 alone (replication paused),
    `down` (it only stopped the nodes), m2 removed from the file, `up`: the rows m2
    acknowledged were nowhere but in data/m2, which the cluster no longer reads (hunt:
    737 acknowledged statements gone, the database itself). `down` reconciles the
    directories as a supervisor's own `down` does."""
    acknowledged = m2_acknowledges_rows_alone(cluster)
    stopped = cluster.cli("down", str(cluster.topology))
    assert stopped.returncode == 0 and "left by a supervisor that died" in stopped.stdout, \
        stopped.stdout + stopped.stderr

    del cluster.document["nodes"]["m2"]
    cluster.document["nodes"]["lb"]["backends"] = ["m1"]
    cluster.topology.write_text(yaml.safe_dump(cluster.document, sort_keys=False))
    cluster.servers = ["m1"]
    cluster.up()
    with WireClient(cluster.ports["m1"]) as client:
        assert client.use("r").ok, "m1 lacks the database"
        ids = [row[0] for row in rows_of(client.execute("alaivo id ao@ t"))]
    assert sorted(ids) == sorted(acknowledged), f"lost: {sorted(set(acknowledged) - set(ids))}"


def test_a_server_removed_from_the_file_while_unsupervised_hands_over_at_up(cluster):
    """kill -9 of the supervisor, rows acknowledged by m2 alone, m2 removed from the file
    (no supervisor to apply it), `up`: it stopped m2 as a leftover and never read data/m2
    again, so the rows only m2 held were gone (hunt: 1366 acknowledged statements, the
    database itself). A leftover server the file no longer lists hands over first."""
    acknowledged = m2_acknowledges_rows_alone(cluster)
    del cluster.document["nodes"]["m2"]
    cluster.document["nodes"]["lb"]["backends"] = ["m1"]
    cluster.topology.write_text(yaml.safe_dump(cluster.document, sort_keys=False))
    cluster.servers = ["m1"]
    cluster.up()
    assert "left by a supervisor that died" in cluster.supervisor_log()
    with WireClient(cluster.ports["m1"]) as client:
        assert client.use("r").ok, "m1 lacks the database"
        ids = [row[0] for row in rows_of(client.execute("alaivo id ao@ t"))]
    assert sorted(ids) == sorted(acknowledged), f"lost: {sorted(set(acknowledged) - set(ids))}"
