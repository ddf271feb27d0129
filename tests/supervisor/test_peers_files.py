"""run/<server>.peers.json: each server's peers, written by the supervisor and kept in step on reload."""

import json
import logging

from supervisor.cluster import Cluster, backends_file, node_command, peers_file
from supervisor.topology import parse_topology
from tests.supervisor.test_reload import with_m3
from tests.supervisor.test_topology import GOOD


def cluster_for(tmp_path, text=GOOD):
    topology = parse_topology(text, tmp_path / "topology.yaml", {})
    return Cluster(topology, logging.getLogger("test"))


def peers_of(cluster, server):
    return json.loads(peers_file(cluster.run_dir, server).read_text())["peers"]


def test_each_server_lists_the_others_and_is_started_with_its_file(tmp_path):
    cluster = cluster_for(tmp_path)
    cluster.run_dir.mkdir(parents=True)
    cluster.write_peers_files()
    assert peers_of(cluster, "m1") == {"m2": str(tmp_path / "data" / "m2")}
    assert peers_of(cluster, "m2") == {"m1": str(tmp_path / "data" / "m1")}
    argv = node_command(cluster.topology, "m1", cluster.run_dir)
    assert argv[argv.index("--peers-file") + 1] == str(peers_file(cluster.run_dir, "m1"))


def test_a_reload_adds_the_new_server_to_every_file_and_removes_files_of_gone_ones(tmp_path):
    cluster = cluster_for(tmp_path)
    cluster.run_dir.mkdir(parents=True)
    cluster.write_peers_files()
    cluster.topology = parse_topology(with_m3(), tmp_path / "topology.yaml", {})
    cluster.write_peers_files()
    assert sorted(peers_of(cluster, "m1")) == ["m2", "m3"]
    assert sorted(peers_of(cluster, "m3")) == ["m1", "m2"]
    cluster.topology = parse_topology(GOOD, tmp_path / "topology.yaml", {})
    cluster.write_peers_files()
    assert not peers_file(cluster.run_dir, "m3").exists()
    assert sorted(peers_of(cluster, "m1")) == ["m2"]


def test_no_replication_means_no_peers(tmp_path):
    text = GOOD.replace("nodes:\n", "replication:\n  enabled: false\nnodes:\n", 1)
    cluster = cluster_for(tmp_path, text)
    cluster.run_dir.mkdir(parents=True)
    cluster.write_peers_files()
    assert peers_of(cluster, "m1") == {}


def test_a_server_of_another_machine_is_named_by_its_address(tmp_path):
    from dataclasses import replace

    cluster = cluster_for(tmp_path)
    cluster.topology = replace(cluster.topology, remote=frozenset({"m2"}))
    cluster.run_dir.mkdir(parents=True)
    cluster.write_peers_files()
    m2 = cluster.topology.nodes["m2"]
    assert peers_of(cluster, "m1") == {"m2": {"address": f"{m2.host}:{m2.port}"}}
    assert not peers_file(cluster.run_dir, "m2").exists()   # its own machine writes it
    assert set(cluster.remote_peers()) == {"m2"}
    assert cluster.remote_peers()["m2"].port == m2.port


def test_the_backends_file_of_a_removed_balancer_is_removed(tmp_path):
    """Bug: after an edit removed the balancer lb (the proxy pointed at m1 instead),
    run/lb.backends.json stayed in run/ while the cluster ran, listing servers for a
    balancer that no longer existed (the peers files of removed servers go)."""
    cluster = cluster_for(tmp_path)
    cluster.run_dir.mkdir(parents=True)
    cluster.write_backends_files()
    cluster.remove_stale_backends_files()
    assert backends_file(cluster.run_dir, "lb").exists()
    without_lb = GOOD.replace("  lb:\n    kind: balancer\n    host: 127.0.0.1\n    port: 4949\n"
                              "    backends: [m1, m2]\n", "").replace("upstream: lb", "upstream: m1")
    cluster.topology = parse_topology(without_lb, tmp_path / "topology.yaml", {})
    assert "lb" not in cluster.topology.nodes
    cluster.write_backends_files()   # (while the reload stops lb, its file stays)
    cluster.remove_stale_backends_files()   # once it is stopped
    assert not backends_file(cluster.run_dir, "lb").exists()


def test_a_server_moved_between_other_machines_leaves_its_old_address_as_a_leaving_peer(
        tmp_path):
    """m2, another machine's server, moved to a third machine: its old directory may go on
    at its old address (`m2~old`, served peer-only there): pulled from, fenced against,
    never fenced for (leaving), until its machine no longer holds it."""
    from dataclasses import replace

    from supervisor.reload import diff_topologies, old_directories_elsewhere

    cluster = cluster_for(tmp_path)
    old = replace(cluster.topology, remote=frozenset({"m2"}))
    before = old.nodes["m2"]
    new = replace(old, nodes={**old.nodes, "m2": replace(before, host="10.9.9.9")})
    cluster.topology = new
    cluster.elsewhere.specs.update(old_directories_elsewhere(old, new, diff_topologies(old, new)))
    cluster.run_dir.mkdir(parents=True)
    cluster.write_peers_files()
    assert peers_of(cluster, "m1") == {
        "m2": {"address": f"10.9.9.9:{before.port}"},
        "m2~old": {"address": f"{before.host}:{before.port}", "leaving": True}}
    assert cluster.remote_peers()["m2~old"].host == before.host
    assert cluster.holding() == ["m1"]
    # A server of this machine moved away: served from here (`serve_old_directory`).
    here = replace(old, remote=frozenset())
    assert old_directories_elsewhere(here, new, diff_topologies(here, new)) == {}


def test_a_server_of_this_machine_moving_away_is_still_certified_against_while_it_stops(
        tmp_path):
    """m2 of this machine moved to another one: while the reload stops it (departing), it
    may still acknowledge writes in its directory, so m1 certifies against that directory
    (as `m2~old`) beside m2's new address; before, the address took the directory's
    place under the one name and m1 could commit a counter m2 was still using."""
    from dataclasses import replace

    cluster = cluster_for(tmp_path)
    old = cluster.topology
    before = old.nodes["m2"]
    cluster.topology = replace(old, nodes={**old.nodes, "m2": replace(before, host="10.9.9.9")},
                               remote=frozenset({"m2"}))
    cluster.departing = {"m2": before}
    cluster.run_dir.mkdir(parents=True)
    cluster.write_peers_files()
    assert peers_of(cluster, "m1") == {"m2": {"address": f"10.9.9.9:{before.port}"},
                                       "m2~old": str(before.data)}


def test_a_machine_silent_at_up_is_asked_again_until_it_names_its_old_directories(
        tmp_path, monkeypatch):
    """At `up` the other machines say which moved servers' old directories they still serve;
    one whose supervisor does not answer then (cut off for a moment) is asked again until it
    does, and what it names becomes a leaving peer here. Before, it was never asked again:
    this machine's servers wrote without certifying against that directory."""
    import asyncio
    from dataclasses import replace

    import supervisor.elsewhere as elsewhere_module

    monkeypatch.setattr(elsewhere_module, "RETRY_S", 0.01)
    cluster = cluster_for(tmp_path)
    cluster.topology = replace(cluster.topology, remote=frozenset({"m2"}))
    cluster.run_dir.mkdir(parents=True)
    serving = {"ok": True, "servers": ["m2", "m3~old"],
               "old_directories": {"m3~old": "10.9.9.9:4103"}}
    asked: list[str] = []

    async def held_on(host: str, timeout_s: float) -> dict | None:
        asked.append(host)
        return serving if len(asked) >= 3 else None   # silent twice, then it answers

    monkeypatch.setattr(cluster.elsewhere, "_ask", held_on)
    monkeypatch.setattr(cluster.replication, "set_remote", lambda peers: None)

    async def up_then_wait() -> None:
        await cluster.learn_left_elsewhere()
        assert "m3~old" not in cluster.elsewhere.specs
        assert cluster.elsewhere._learning is not None
        await asyncio.wait_for(cluster.elsewhere._learning, 5)
        cluster.elsewhere.cancel()
    asyncio.run(up_then_wait())
    assert asked[:3] == [cluster.topology.nodes["m2"].host] * 3
    assert peers_of(cluster, "m1")["m3~old"] == {"address": "10.9.9.9:4103", "leaving": True}


def test_an_old_machine_silent_at_a_reload_is_asked_again_and_what_it_serves_is_waited_for(
        tmp_path, monkeypatch):
    """A reload moving m2 off a machine whose supervisor does not answer (taken for dead)
    does not wait for its old directory; if that machine comes back serving it (its
    supervisor restarted with the edit and could not hand it over), it becomes a leaving
    peer here then."""
    import asyncio
    from dataclasses import replace

    import supervisor.elsewhere as elsewhere_module
    from supervisor.reload import diff_topologies, old_directories_elsewhere

    monkeypatch.setattr(elsewhere_module, "RETRY_S", 0.01)
    cluster = cluster_for(tmp_path)
    old = replace(cluster.topology, remote=frozenset({"m2"}))
    before = old.nodes["m2"]
    new = replace(old, nodes={**old.nodes, "m2": replace(before, host="10.9.9.9")})
    cluster.topology = new
    cluster.run_dir.mkdir(parents=True)
    back = {"ok": True, "servers": ["m2~old"],
            "old_directories": {"m2~old": f"{before.host}:{before.port}"}}
    asked: list[str] = []

    async def held_on(host: str, timeout_s: float) -> dict | None:
        asked.append(host)
        return back if len(asked) >= 3 else None

    monkeypatch.setattr(cluster.elsewhere, "_ask", held_on)
    monkeypatch.setattr(cluster.replication, "set_remote", lambda peers: None)

    async def reload_then_wait() -> None:
        await cluster.elsewhere.still_held(
            old_directories_elsewhere(old, new, diff_topologies(old, new)))
        assert cluster.elsewhere.specs == {}   # not waited for at the reload
        assert cluster.elsewhere._learning is not None
        await asyncio.wait_for(cluster.elsewhere._learning, 5)
        cluster.elsewhere.cancel()
    asyncio.run(reload_then_wait())
    assert peers_of(cluster, "m1")["m2~old"] == {"address": f"{before.host}:{before.port}",
                                                 "leaving": True}
