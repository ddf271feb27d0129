"""The supervisor's Unix sockets between the nodes of its machine (`Topology.unix_socket`).

Servers and balancers this machine runs get `--unix-socket <run>/<id>.sock`;
a balancer's backends file names the socket of each server of this machine,
a proxy cache the socket of its upstream when that runs here. Nodes of
other machines keep TCP; so does everything with `supervisor:
local_sockets: false`, with a `tls:` section, or when the path is too long
for a socket address. Turning it off is a hot reload that restarts them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from supervisor.cluster import Cluster, backends_file, node_command
from supervisor.reload import diff_topologies
from supervisor.topology import parse_topology
from tests.supervisor.test_topology import GOOD
from tests.supervisor.topologykit import errors_of
from tests.tlskit import Certificates

OFF = GOOD.replace("  control_port: 4947\n", "  control_port: 4947\n  local_sockets: false\n")


def topology_in(folder: Path, text: str = GOOD):
    return parse_topology(text, folder / "topology.yaml", {})


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def backends_written(topology, folder: Path) -> dict[str, dict]:
    cluster = Cluster(topology, logging.getLogger("test"))
    cluster.joined = {"m1", "m2"}
    cluster.writable = {"m1": True, "m2": True}
    cluster.write_backends_files()
    entries = json.loads(backends_file(cluster.run_dir, "lb").read_text())["backends"]
    return {entry["id"]: entry for entry in entries}


def test_servers_and_the_balancer_listen_on_their_socket_and_the_proxy_uses_its_upstreams(
        tmp_path):
    topology = topology_in(tmp_path)
    run = tmp_path / "run"
    for node in ("m1", "m2", "lb"):
        assert option(node_command(topology, node, run), "--unix-socket") == str(run / f"{node}.sock")
    proxy = node_command(topology, "proxy", run)
    assert option(proxy, "--unix-socket") is None   # its clients keep TCP
    assert option(proxy, "--upstream-socket") == str(run / "lb.sock")
    assert option(proxy, "--upstream") == "127.0.0.1:4949"
    entries = backends_written(topology, tmp_path)
    assert {server: entry.get("unix_socket") for server, entry in entries.items()} == {
        "m1": str(run / "m1.sock"), "m2": str(run / "m2.sock")}


def test_nodes_of_another_machine_keep_tcp(tmp_path):
    topology = replace(topology_in(tmp_path), remote=frozenset({"m2", "lb"}))
    run = tmp_path / "run"
    assert option(node_command(topology, "m1", run), "--unix-socket") == str(run / "m1.sock")
    assert option(node_command(topology, "proxy", run), "--upstream-socket") is None
    here = replace(topology, remote=frozenset({"m2"}))
    entries = backends_written(here, tmp_path)
    assert entries["m1"]["unix_socket"] == str(run / "m1.sock")
    assert "unix_socket" not in entries["m2"]


def test_local_sockets_false_turns_every_unix_hop_off(tmp_path):
    topology = topology_in(tmp_path, OFF)
    assert not topology.supervisor.local_sockets
    for node in topology.nodes:
        argv = node_command(topology, node, tmp_path / "run")
        assert "--unix-socket" not in argv and "--upstream-socket" not in argv
    assert not [e for e in backends_written(topology, tmp_path).values() if "unix_socket" in e]


@pytest.mark.parametrize("value, said", [("maybe", "the string 'maybe'"), ("1", "the integer 1")])
def test_a_bad_local_sockets_value_is_refused_naming_key_and_line(value, said):
    text = GOOD.replace("  control_port: 4947\n", f"  control_port: 4947\n  local_sockets: {value}\n")
    assert errors_of(text) == [
        f"topology.yaml line 3: supervisor.local_sockets: must be true or false, not {said}"]


def test_with_tls_no_hop_is_a_unix_socket(tmp_path):
    Certificates(tmp_path / "tls").machine("h1", ["127.0.0.1"])
    topology = topology_in(tmp_path, "tls: {cert: tls/h1.crt, key: tls/h1.key, ca: tls/ca.crt}\n"
                           + GOOD)
    assert topology.unix_socket("m1", tmp_path / "run") is None   # a Unix socket carries no TLS
    for node in topology.nodes:
        argv = node_command(topology, node, tmp_path / "run")
        assert "--unix-socket" not in argv and "--upstream-socket" not in argv
    assert not [e for e in backends_written(topology, tmp_path).values() if "unix_socket" in e]


def test_a_run_folder_too_deep_for_a_socket_address_keeps_tcp_and_says_so(tmp_path):
    deep = tmp_path / ("d" * 100)
    topology = topology_in(tmp_path, GOOD.replace("  control_port: 4947\n",
                                                  f"  control_port: 4947\n  run: {deep}\n"))
    assert "--unix-socket" not in node_command(topology, "m1", deep)
    assert "--upstream-socket" not in node_command(topology, "proxy", deep)
    warnings = [w for w in topology.notices if "Unix socket" in w]
    assert len(warnings) == 3 and all("over TCP only" in w for w in warnings)
    # Another machine's nodes have their own `run:` folder: nothing said of them here.
    here = replace(topology, remote=frozenset({"m2", "lb"}))
    assert [w for w in here.notices if "Unix socket" in w] == [
        w for w in warnings if f"{deep / 'm1.sock'} " in w]


def test_turning_local_sockets_off_by_hot_reload_restarts_the_nodes_that_had_them(tmp_path):
    diff = diff_topologies(topology_in(tmp_path), topology_in(tmp_path, OFF))
    assert sorted(diff.changed) == ["lb", "m1", "m2", "proxy"]
    assert diff.settings_changed == []


def test_local_sockets_turned_off_with_a_new_run_folder_still_restarts_the_nodes(tmp_path):
    """A reload keeps the run folder of this run (a new `run:` waits for the next `up`):
    whether a node's command changes is judged there, not in the folder it will not use.
    Judged in a new folder too deep for a socket, turning them off changed nothing."""
    deep = tmp_path / ("d" * 100)
    edited = OFF.replace("  control_port: 4947\n", f"  control_port: 4947\n  run: {deep}\n")
    diff = diff_topologies(topology_in(tmp_path), topology_in(tmp_path, edited))
    assert sorted(diff.changed) == ["lb", "m1", "m2", "proxy"]
    assert diff.settings_changed == ["supervisor.run"]
