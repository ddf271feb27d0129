"""What `up` and a hot reload check before starting anything: each server's data directory
belongs to this cluster (supervisor/ownership.py), on real directories and real locks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from engine.storage.data_owner import OwnerLock, OwnerRecord, read_cluster, write_cluster
from supervisor.cluster import node_command
from supervisor.ownership import claim, cluster_id, joining_servers, ownership_problems, release
from supervisor.topology import parse_topology
from tests.conftest import free_port
from tests.supervisor.test_reload import with_m3
from tests.supervisor.test_topology import GOOD
from tests.supervisor.topologykit import refused_edit

OTHER = "/elsewhere/topology.yaml"


def topology_in(tmp_path, text=GOOD):
    return parse_topology(text, tmp_path / "topology.yaml", {})


def held_by(data, cluster):
    return OwnerLock.acquire(data, OwnerRecord(node="m1", pid=os.getpid(), host="127.0.0.1",
                                               port=5000, cluster=cluster))


def test_new_directories_are_claimed_and_servers_are_told_their_cluster(tmp_path):
    topology = topology_in(tmp_path)
    assert ownership_problems(topology) == []
    assert claim(topology, supervisor_pid=123) == []
    record = read_cluster(tmp_path / "data" / "m1")
    assert record.cluster == str(tmp_path / "topology.yaml") == cluster_id(topology)
    assert record.supervisor_pid == 123
    argv = node_command(topology, "m1", tmp_path / "run")
    assert argv[argv.index("--cluster") + 1] == cluster_id(topology)
    assert ownership_problems(topology) == []


def test_servers_without_this_clusters_record_join_once_another_has_it(tmp_path):
    topology = topology_in(tmp_path)
    assert joining_servers(topology) == []          # a first `up`: nobody to align on
    claim(topology, supervisor_pid=123)
    assert joining_servers(topology) == []          # every one a member
    release(topology, "m2")                         # removed from the topology by a reload
    assert read_cluster(tmp_path / "data" / "m2") is None
    assert joining_servers(topology) == ["m2"]      # added back: it joins
    write_cluster(tmp_path / "data" / "m2", OTHER)
    release(topology, "m2")                         # another cluster's record is not ours
    assert read_cluster(tmp_path / "data" / "m2").cluster == OTHER


def test_a_live_holder_outside_this_cluster_is_refused_even_with_take_over(tmp_path):
    topology = topology_in(tmp_path)
    data = tmp_path / "data" / "m1"
    for cluster in (OTHER, None):
        lock = held_by(data, cluster)
        try:
            for take_over in (False, True):
                [problem] = ownership_problems(topology, take_over)
                assert problem.startswith(f"m1: data directory {data} is in use by node m1 "
                                          f"(pid {os.getpid()}, 127.0.0.1:5000)")
            # This cluster's own node left by a supervisor that died: `up` stops it.
            assert ownership_problems(topology, leftover_pids=frozenset({os.getpid()})) == []
        finally:
            lock.release()
    lock = held_by(data, cluster_id(topology))
    try:
        assert ownership_problems(topology) == []
    finally:
        lock.release()


def test_a_stopped_clusters_directory_is_refused_unless_handed_over(tmp_path):
    topology = topology_in(tmp_path)
    write_cluster(tmp_path / "data" / "m2", OTHER)
    [problem] = ownership_problems(topology)
    assert f"m2: data directory {tmp_path / 'data' / 'm2'} belongs to cluster {OTHER}" in problem
    assert f"python -m supervisor up {topology.path} --take-over" in problem
    assert ownership_problems(topology, take_over=True) == []
    assert claim(topology, os.getpid()) == [f"m2 ({tmp_path / 'data' / 'm2'}, from {OTHER})"]
    assert read_cluster(tmp_path / "data" / "m2").cluster == cluster_id(topology)


def test_take_over_is_refused_while_the_other_clusters_supervisor_runs(tmp_path):
    topology = topology_in(tmp_path)
    # A stand-in whose command line is a supervisor's `up`.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                              "supervisor", "up"])
    try:
        write_cluster(tmp_path / "data" / "m1", OTHER, supervisor_pid=other.pid)
        [problem] = ownership_problems(topology, take_over=True)
        assert f"whose supervisor (pid {other.pid}) still runs" in problem
    finally:
        other.kill()
        other.wait(timeout=10)
    assert ownership_problems(topology, take_over=True) == []


def test_a_reload_adding_a_server_on_another_clusters_directory_is_refused(tmp_path):
    m3 = tmp_path / "data" / "m3"
    write_cluster(m3, OTHER)
    message = refused_edit(tmp_path / "topology.yaml", GOOD, with_m3())
    assert f"m3: data directory {m3} belongs to cluster {OTHER}" in message
    assert sorted(p.name for p in m3.iterdir()) == [".tahiry.cluster"]  # nothing seeded


UNMAKEABLE = "/proc/tahiry-no-such-folder/m2"   # procfs makes no folder, even for root


def test_a_data_directory_that_cannot_be_made_is_refused_by_up(tmp_path):
    """Bug: `up` crashed with a traceback (Replicator: mkdir failed) when a server's data
    directory could not be made (a read-only disk, a folder it may not write)."""
    path = tmp_path / "topology.yaml"
    text = GOOD.replace("data: data/m2", f"data: {UNMAKEABLE}")
    for port in ("4947", "4948", "4949", "4950", "4951"):   # nobody else's, should it start
        text = text.replace(port, str(free_port()))
    path.write_text(text)
    result = subprocess.run([sys.executable, "-m", "supervisor", "up", str(path)],
                            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot start: m2: data directory {UNMAKEABLE} cannot be made" in result.stderr
    assert "nothing was started" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()


def test_a_reload_adding_a_server_whose_directory_cannot_be_made_is_refused(tmp_path):
    """Bug: the reload was applied and the new server went BACKOFF, then FATAL."""
    message = refused_edit(tmp_path / "topology.yaml", GOOD,
                           with_m3().replace("data: data/m3", f"data: {UNMAKEABLE}"))
    assert f"m3: data directory {UNMAKEABLE} cannot be made" in message


def test_with_accounts_on_only_the_clusters_user_may_enter_a_data_directory(tmp_path):
    """Bug: with accounts on, data directories were 0755 and their files 0644: any user of
    the machine read every student's tables, and the password hashes, from the disk."""
    (tmp_path / "data" / "m1").mkdir(parents=True)
    (tmp_path / "data" / "m1").chmod(0o755)
    topology = topology_in(tmp_path, "accounts: true\n" + GOOD)
    assert claim(topology, supervisor_pid=123) == []
    for server in ("m1", "m2"):
        assert stat.S_IMODE((tmp_path / "data" / server).stat().st_mode) == 0o700, server
    plain = tmp_path / "plain"
    (plain / "data" / "m1").mkdir(parents=True)
    (plain / "data" / "m1").chmod(0o755)
    assert claim(topology_in(plain), supervisor_pid=123) == []   # accounts off: as it was
    assert stat.S_IMODE((plain / "data" / "m1").stat().st_mode) == 0o755
