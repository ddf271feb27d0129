"""The one-relay form of a proxy cache in topology.yaml: `backends:` instead of `upstream:`.

Validation (exactly one of the two, servers only), its command line
(`nodes.relay` with a backends file, as a balancer has), its dependencies,
the backends file the supervisor writes for it, and how `status` shows it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from supervisor.cluster import Cluster, backends_file, node_command
from supervisor.status_table import render_table
from supervisor.topology import parse_topology
from supervisor.web.view import ClusterView
from tests.supervisor.topologykit import errors_of, parse

RELAY = """\
supervisor:
  control_port: 4947
nodes:
  m1:
    kind: server
    host: 127.0.0.1
    port: 4948
    data: data/m1
  m2:
    kind: server
    host: 127.0.0.1
    port: 4950
    data: data/m2
  relay:
    kind: proxycache
    host: 127.0.0.1
    port: 4951
    backends: [m1, m2]
    ttl_ms: 3000
    max_entries: 200
"""
RUN = Path("/tmp/cluster/run")


def test_a_proxycache_with_backends_is_a_relay_that_waits_for_its_servers():
    topology = parse(RELAY)
    relay = topology.nodes["relay"]
    assert relay.is_relay and relay.routes and relay.upstream is None
    assert topology.dependencies("relay") == ["m1", "m2"]
    assert topology.backends_of("relay") == ["m1", "m2"]
    assert topology.start_order() == ["m1", "m2", "relay"]
    assert [n.id for n in topology.local_routers()] == ["relay"]


def test_its_command_line_runs_the_relay_module_with_a_backends_file():
    argv = node_command(parse(RELAY), "relay", RUN, python="python")
    assert argv[:3] == ["python", "-m", "nodes.relay"]
    assert argv[argv.index("--backends-file") + 1] == str(backends_file(RUN, "relay"))
    assert "--upstream" not in argv
    assert argv[argv.index("--ttl-ms") + 1] == "3000"
    assert argv[argv.index("--max-entries") + 1] == "200"


def test_the_separate_proxy_keeps_its_command_line():
    text = RELAY.replace("  relay:\n", "  lb:\n    kind: balancer\n    host: 127.0.0.1\n"
                         "    port: 4949\n  relay:\n").replace("backends: [m1, m2]", "upstream: lb")
    argv = node_command(parse(text), "relay", RUN, python="python")
    assert argv[:3] == ["python", "-m", "nodes.proxycache"]
    assert argv[argv.index("--upstream") + 1] == "127.0.0.1:4949"
    assert "--backends-file" not in argv


def test_upstream_and_backends_together_is_an_error_naming_both():
    text = RELAY.replace("    backends: [m1, m2]\n", "    backends: [m1, m2]\n    upstream: m1\n")
    assert errors_of(text) == [
        "topology.yaml line 18: nodes.relay.upstream: give 'upstream' or 'backends', not both: "
        "'upstream' names the balancer (or server) it forwards to, 'backends' lists servers "
        "and makes it run the balancer itself (one relay)"]


def test_neither_upstream_nor_backends_is_an_error():
    (message,) = errors_of(RELAY.replace("    backends: [m1, m2]\n", ""))
    assert message.startswith("topology.yaml line 14: nodes.relay.upstream: missing "
                              "(a proxycache needs 'upstream'")
    assert "'backends'" in message


def test_its_backends_are_checked_as_a_balancer_s_are():
    assert errors_of(RELAY.replace("[m1, m2]", "[m1, m9]")) == [
        "topology.yaml line 18: nodes.relay.backends: unknown node 'm9'"]
    assert errors_of(RELAY.replace("[m1, m2]", "[m1, relay]")) == [
        "topology.yaml line 18: nodes.relay.backends: 'relay' is a proxycache, not a server"]
    assert errors_of(RELAY.replace("[m1, m2]", "[]")) == [
        "topology.yaml line 18: nodes.relay.backends: lists no server"]


def test_the_supervisor_writes_its_backends_file(tmp_path):
    topology = parse_topology(RELAY, tmp_path / "topology.yaml", {})
    cluster = Cluster(topology, logging.getLogger("test"))
    cluster.joined.update({"m1", "m2"})
    cluster.writable.update({"m1": True, "m2": False})
    cluster.write_backends_files()
    written = json.loads(backends_file(cluster.run_dir, "relay").read_text())
    assert [(b["id"], b["writable"]) for b in written["backends"]] == [("m1", True), ("m2", False)]


def relay_row(status: dict | None) -> dict:
    return {"node": "relay", "kind": "proxycache", "address": "127.0.0.1:4951", "pid": 1,
            "state": "RUNNING", "uptime_s": 5, "restarts": 0, "manual_restarts": 0,
            "probe_ms": 0.4, "hits": 1, "misses": 1, "hit_ratio": 0.5,
            **({"backends": status} if status is not None else {})}


def test_status_shows_the_relay_s_servers_beside_its_hit_ratio():
    table = render_table([relay_row({"m1": "ONLINE", "m2": "OFFLINE"})])
    assert "hit ratio 50%, balancer in process: m1 ONLINE, m2 OFFLINE" in table
    assert "balancer in process" not in render_table([relay_row(None)])


def test_the_status_page_and_metrics_read_the_relay_s_balancer_part():
    balancer = {"backends": {"m1": {"state": "ONLINE"},
                             "m2": {"state": "OFFLINE", "last_error": "refused"}},
                "counters": {"reads": 3}}
    view = ClusterView(taken_at=0.0, supervisor={}, rows=[relay_row(None)],
                       nodes={"relay": {"hits": 1, "misses": 1, "balancer": balancer}})
    shown = view.as_dict()["nodes"][0]
    assert shown["backends"] == {"m1": "ONLINE", "m2": "OFFLINE"}
    assert shown["last_error"] == "backend m2: refused"
    assert view.balancer_counters(view.rows[0]) is balancer
