"""A data directory belongs to one server process and one cluster (real server processes).

A second server pointed at a directory a live server holds is refused at
start, naming the holder; the lock dies with its holder, however it dies. A
server started by a cluster (`--cluster`, as the supervisor does) refuses a
directory another cluster used, even while that cluster is stopped; a server
run by hand (no `--cluster`) still may use it.
"""

from __future__ import annotations

import json

from tests.conftest import free_port, wait_until


def exited(node) -> int:
    wait_until(lambda: not node.alive(), 15, f"{node.name} to exit")
    return node.popen.returncode


def test_a_second_server_on_a_held_data_directory_is_refused_naming_the_holder(start_node):
    # A port given ahead: the owner record names the --port argument, which is 0
    # for a node that lets the kernel choose (the nodes engineer is told).
    m1 = start_node("server", "m1", "--data", "data/m1", port=free_port())
    second = start_node("server", "m1bis", "--data", "data/m1", wait=False)
    assert exited(second) != 0
    log = second.log_text()
    assert f"already in use by node m1 (pid {m1.pid}, 127.0.0.1:{m1.port})" in log, log
    assert "run by hand outside any cluster" in log
    assert m1.alive()

    m1.kill9()  # the kernel drops the lock with its holder: nothing stale to clean up
    again = start_node("server", "m1bis", "--data", "data/m1")
    assert again.alive()


def test_a_cluster_server_refuses_a_directory_of_another_cluster(start_node, tmp_path):
    first = start_node("server", "m1", "--data", "data/m1", "--cluster", "/a/topology.yaml")
    first.stop()
    other = start_node("server", "m1", "--data", "data/m1", "--cluster", "/b/topology.yaml",
                       wait=False)
    assert exited(other) == 2
    log = other.log_text()
    assert "belongs to cluster /a/topology.yaml" in log, log
    assert "--take-over" in log
    by_hand = start_node("server", "m1", "--data", "data/m1")  # a student's own server
    assert by_hand.alive()
    by_hand.stop()
    # The directory stays the first cluster's: running it by hand handed nothing over.
    claim = json.loads((tmp_path / "data" / "m1" / ".tahiry.cluster").read_text())
    assert claim["cluster"] == "/a/topology.yaml"
    same = start_node("server", "m1", "--data", "data/m1", "--cluster", "/a/topology.yaml")
    assert same.alive()
