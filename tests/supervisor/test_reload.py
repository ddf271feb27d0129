"""Hot reload: the difference between two topologies, the file watcher, refused edits."""

import asyncio
import json
import logging
from dataclasses import replace
from pathlib import Path

from nodes.protocol.tls import TlsSettings
from supervisor.cluster import Cluster, peers_file
from supervisor.reload import (
    TopologyWatcher,
    diff_topologies,
    reload_topology,
    restart_only_change,
    rolled_servers,
)
from supervisor.topology import load_topology, parse_topology
from tests.supervisor.test_topology import GOOD
from tests.supervisor.topologykit import refused_edit

PATH = Path("/tmp/cluster/topology.yaml")
M3 = """\
  m3:
    kind: server
    host: 127.0.0.1
    port: 4952
    data: data/m3
"""


def topology(text: str):
    return parse_topology(text, PATH, {})


def with_m3(text: str = GOOD) -> str:
    return text.replace("  lb:\n", M3 + "  lb:\n").replace("[m1, m2]", "[m1, m2, m3]")


def test_adding_a_server_changes_no_running_node():
    diff = diff_topologies(topology(GOOD), topology(with_m3()))
    assert diff.added == ["m3"] and diff.removed == [] and diff.changed == []
    assert diff.unchanged == ["m1", "m2", "lb", "proxy"]  # lb gets a new backends file only


def test_removing_a_server():
    text = GOOD.replace("[m1, m2]", "[m1]")
    text = text.replace("  m2:\n    kind: server\n    host: 127.0.0.1\n    port: 4950\n"
                        "    data: data/m2\n", "")
    diff = diff_topologies(topology(GOOD), topology(text))
    assert diff.removed == ["m2"] and diff.changed == [] and diff.added == []


def test_a_moved_balancer_restarts_its_proxy_too():
    diff = diff_topologies(topology(GOOD), topology(GOOD.replace("port: 4949", "port: 4953")))
    assert diff.changed == ["lb", "proxy"]
    assert diff.unchanged == ["m1", "m2"]


def test_changed_proxy_settings_and_supervisor_settings():
    new = GOOD.replace("ttl_ms: 3000", "ttl_ms: 500").replace("control_port: 4947",
                                                               "control_port: 4946")
    diff = diff_topologies(topology(GOOD), topology(new))
    assert diff.changed == ["proxy"]
    assert diff.settings_changed == ["supervisor.control_port"]


def test_identical_file_is_an_empty_difference():
    diff = diff_topologies(topology(GOOD), topology(GOOD + "\n# a comment\n"))
    assert diff.empty and diff.describe() == "no node changed"


def test_an_invalid_edit_is_refused_and_changes_nothing(tmp_path):
    message = refused_edit(tmp_path / "topology.yaml", GOOD,
                           with_m3().replace("port: 4952", "port: 4948"))
    assert message == ("topology.yaml line 19: nodes.m3.port: port 4948 on 127.0.0.1 "
                       "is already used by node 'm1'")


def test_watcher_calls_back_once_per_real_change(tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text(GOOD)

    async def scenario():
        calls = []
        changed = asyncio.Event()

        def on_change():
            calls.append(path.read_text())
            changed.set()
        watcher = TopologyWatcher(path, on_change, asyncio.get_running_loop())
        watcher.start()
        try:
            path.write_text(GOOD)  # same content: no call
            (tmp_path / "other.yaml").write_text("x: 1\n")  # another file: no call
            await asyncio.sleep(0.4)
            assert calls == []
            # An editor-style save: several writes, then a rename over the file.
            temp = tmp_path / ".topology.yaml.swp"
            temp.write_text(with_m3()[:40])
            temp.write_text(with_m3())
            temp.replace(path)
            await asyncio.wait_for(changed.wait(), 5)
            await asyncio.sleep(0.3)
            assert calls == [with_m3()]
        finally:
            watcher.stop()
    asyncio.run(scenario())


def test_an_edit_of_the_secret_is_refused_and_changes_nothing(tmp_path):
    """Applied, it said "no node changed": the nodes kept the old secret (clients with the
    new one got "wrong secret") and, with write leases on, the voters refused each other."""
    path = tmp_path / "topology.yaml"
    first = "secret: a-class-secret-of-some-length\n" + GOOD
    path.write_text(first)
    logger = logging.getLogger("test-reload")

    async def scenario():
        cluster = Cluster(parse_topology(first, path, {}), logger)
        before = cluster.topology
        path.write_text(first.replace("of-some-length", "of-another-length"))
        result = await reload_topology(cluster, logger)
        assert not result.ok
        assert result.message == (
            "topology.yaml: secret: the edit changes the cluster's secret; that is applied only "
            "by a new start of the cluster on every machine (`python -m supervisor down`, then "
            "`up`), so nothing was changed")
        assert cluster.topology is before and cluster.keepers == {}
    asyncio.run(scenario())


def test_with_write_leases_on_an_edit_of_tls_is_refused():
    old = topology(GOOD)
    leased = replace(old, write_leases=replace(old.write_leases, enabled=True))
    with_tls = replace(leased, tls=TlsSettings(ca=Path("tls/ca.crt")))
    assert restart_only_change(leased, with_tls).startswith(
        "topology.yaml: tls: the edit changes TLS while write leases are on; that is applied "
        "only by a new start")
    assert restart_only_change(old, replace(old, tls=TlsSettings(ca=Path("tls/ca.crt")))) is None
    assert restart_only_change(leased, leased) is None


def test_servers_changed_on_their_directories_are_rolled_unless_tls_changed():
    """Restarted one at a time, each stays reachable by the balancers still running; with
    `tls:` changed it would not be, and they are restarted together (as the balancers)."""
    old = topology(GOOD)
    moved = topology(GOOD.replace("port: 4950", "port: 4954").replace("data: data/m1",
                                                                       "data: data/m1b"))
    assert rolled_servers(old, moved, diff_topologies(old, moved)) == ["m2"]
    with_tls = replace(moved, tls=TlsSettings(ca=Path("tls/ca.crt")))
    assert rolled_servers(old, with_tls, diff_topologies(old, with_tls)) == []


def test_a_server_waiting_for_its_restart_is_listed_where_it_listens_now(tmp_path):
    """A reload restarting servers one at a time: one whose port the edit changed is listed
    at its old port until its turn (its keeper's), or the balancers lose it meanwhile."""
    path = tmp_path / "topology.yaml"
    cluster = Cluster(parse_topology(GOOD.replace("port: 4950", "port: 4954"), path, {}),
                      logging.getLogger("t"))
    cluster.joined, cluster.writable = {"m1", "m2"}, {"m1": True, "m2": True}
    before = parse_topology(GOOD, path, {}).nodes["m2"]
    cluster.keepers["m2"] = cluster._make_keeper(before)   # (not started)
    cluster.write_backends_files()
    entries = json.loads((tmp_path / "run" / "lb.backends.json").read_text())["backends"]
    assert {entry["id"]: entry["port"] for entry in entries}["m2"] == 4950
    cluster.keepers.clear()
    cluster.write_backends_files()
    entries = json.loads((tmp_path / "run" / "lb.backends.json").read_text())["backends"]
    assert {entry["id"]: entry["port"] for entry in entries}["m2"] == 4954
    cluster.node_logs.pop("m2").close()


async def _nothing(*args, **kwargs) -> bool:
    return True


def cluster_with_peers_files(path: Path, logger: logging.Logger, stop_node=_nothing,
                             remove=_nothing) -> Cluster:
    """A Cluster of the topology at `path` with its peers files written and nothing that
    starts or stops a process: `stop_node` and the replicator's `remove` are the test's."""
    cluster = Cluster(load_topology(path), logger)
    cluster.run_dir.mkdir(parents=True)
    cluster.write_peers_files()
    cluster.stop_node = stop_node
    cluster.replication.remove = remove
    cluster.watch_remote_nodes = _nothing
    cluster.wait_settled = _nothing
    cluster.launch = lambda node_ids: None
    return cluster


def test_a_removed_server_stays_a_peer_of_the_others_until_it_stopped_and_handed_over(tmp_path):
    """The peers files dropped m3 before m3 was stopped: m1 wrote without pulling from or
    fencing against m3 while m3 (which keeps its old peers) still acknowledged writes, so
    both committed one counter with different rows (a CONFLICT in supervisor.log) and the
    row m3 acknowledged was lost (hunt: writers on every server while m3 was removed and
    added back). m3 must stay listed until it is stopped and its newest copies handed over."""
    path = tmp_path / "topology.yaml"
    path.write_text(with_m3())
    logger = logging.getLogger("test-reload")
    seen: list[tuple[str, str, list[str]]] = []

    def m1_peers() -> list[str]:
        return sorted(json.loads(peers_file(tmp_path / "run", "m1").read_text())["peers"])

    async def stop_node(node_id):
        seen.append(("stop", node_id, m1_peers()))

    async def remove(server_id, keep_if_undone=False):
        seen.append(("hand over", server_id, m1_peers()))
        return True

    async def scenario():
        cluster = cluster_with_peers_files(path, logger, stop_node, remove)
        assert m1_peers() == ["m2", "m3"]
        path.write_text(GOOD)
        result = await reload_topology(cluster, logger)
        assert result.ok, result.message
    asyncio.run(scenario())
    assert seen == [("stop", "m3", ["m2", "m3"]), ("hand over", "m3", ["m2", "m3"])]
    assert m1_peers() == ["m2"]


def test_a_renamed_server_s_directory_is_listed_once_while_the_old_name_stops(tmp_path):
    """m3 renamed m4 (same data directory): while m3 stopped, m1's peers file listed the
    directory twice (m3 departing, m4 added); m1 took its lock twice, blocked on itself,
    missed its probes and was killed (hunt: a rename under load)."""
    path = tmp_path / "topology.yaml"
    path.write_text(with_m3())
    logger = logging.getLogger("test-reload")
    seen: list[dict] = []

    def m1_peers() -> dict:
        return json.loads(peers_file(tmp_path / "run", "m1").read_text())["peers"]

    async def stop_node(node_id):
        seen.append(m1_peers())

    async def scenario():
        cluster = cluster_with_peers_files(path, logger, stop_node)
        path.write_text(with_m3().replace("  m3:\n", "  m4:\n").replace("m2, m3]", "m2, m4]"))
        result = await reload_topology(cluster, logger)
        assert result.ok, result.message
    asyncio.run(scenario())
    assert len(seen) == 1 and sorted(seen[0]) in (["m2", "m3"], ["m2", "m4"]), seen
    assert len(set(seen[0].values())) == 2, seen
    assert sorted(m1_peers()) == ["m2", "m4"]


def test_a_removed_server_not_handed_over_whole_stays_a_peer_until_it_is(tmp_path, monkeypatch):
    """m3's copies could not land (the others' disk full): it left the peers files anyway,
    and m1's next write was built on its older copy (the rows m3 acknowledged were lost;
    tests/integration/test_storage_faults.py). It stays listed, retried, until handed over."""
    monkeypatch.setattr("supervisor.cluster.HAND_OVER_RETRY_S", 0.01)
    path = tmp_path / "topology.yaml"
    path.write_text(with_m3())
    logger = logging.getLogger("test-reload")
    answers = [False, False, True]

    def m1_peers() -> list[str]:
        return sorted(json.loads(peers_file(tmp_path / "run", "m1").read_text())["peers"])

    async def remove(server_id, keep_if_undone=False):
        assert server_id == "m3" and keep_if_undone
        return answers.pop(0)

    async def scenario():
        cluster = cluster_with_peers_files(path, logger, remove=remove)
        path.write_text(GOOD)
        result = await reload_topology(cluster, logger)
        assert result.ok, result.message
        assert m1_peers() == ["m2", "m3"] and answers == [False, True]
        for _ in range(500):
            if not cluster.handing_over:
                break
            await asyncio.sleep(0.01)
        assert answers == [] and cluster.handing_over == {}
        assert m1_peers() == ["m2"]
    asyncio.run(scenario())


def test_a_damaged_handing_over_file_is_ignored_with_a_log_line(tmp_path, caplog):
    """run/handing-over.json is a file on disk like any other: a bad entry stops no `up`."""
    path = tmp_path / "topology.yaml"
    path.write_text(GOOD)
    cluster = Cluster(load_topology(path), logging.getLogger("test-reload"))
    cluster.run_dir.mkdir(parents=True)
    (tmp_path / "data" / "m3").mkdir(parents=True)
    (cluster.run_dir / "handing-over.json").write_text(json.dumps(
        {"m3": {"host": "127.0.0.1", "port": "not a port", "data": str(tmp_path / "data" / "m3")},
         "m9": ["not", "an", "entry"]}))
    with caplog.at_level(logging.ERROR):
        cluster.load_handing_over()
    assert cluster.handing_over == {}
    assert "handing-over.json lists it wrongly" in caplog.text
