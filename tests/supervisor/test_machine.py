"""Which nodes a machine runs (supervisor/machine.py): one topology file, many machines."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.machine import machine_addresses, place
from supervisor.topology import TopologyError, parse_topology

SECRET = "a-secret-long-enough-for-a-class"


def topology(servers: tuple[str, str] = ("10.77.0.1", "10.77.0.1"), balancer: str = "10.77.0.1",
             proxy: str = "10.77.0.9"):
    text = f"""\
supervisor: {{control_port: 4947}}
secret: {SECRET}
nodes:
  m1: {{kind: server, host: "{servers[0]}", port: 4948, data: data/m1}}
  m2: {{kind: server, host: "{servers[1]}", port: 4950, data: data/m2}}
  lb: {{kind: balancer, host: "{balancer}", port: 4949, backends: [m1, m2]}}
  proxy: {{kind: proxycache, host: "{proxy}", port: 4951, upstream: lb, ttl_ms: 3000,
          max_entries: 200}}
"""
    return parse_topology(text, Path("/tmp/topology.yaml"))


def test_the_servers_machine_runs_them_and_the_balancer_and_probes_the_proxy():
    placed = place(topology(), machine_addresses(["10.77.0.1"]))
    assert placed.remote == {"proxy"}
    assert placed.start_order() == ["m1", "m2", "lb"]
    assert [spec.id for spec in placed.local_of_kind("server")] == ["m1", "m2"]


def test_the_students_machine_runs_only_its_proxy():
    placed = place(topology(), machine_addresses(["10.77.0.9"]))
    assert placed.remote == {"m1", "m2", "lb"}
    assert placed.start_order() == ["proxy"]
    assert placed.local_of_kind("server") == []


def test_a_loopback_topology_is_all_here():
    placed = place(topology(("127.0.0.1", "127.0.0.1"), "127.0.0.1", "localhost"),
                   machine_addresses())
    assert placed.remote == frozenset()
    assert placed.machine >= {"127.0.0.1"}


def test_servers_split_between_machines_each_run_by_its_own_machine():
    split = topology(servers=("10.77.0.1", "10.77.0.2"))
    first = place(split, machine_addresses(["10.77.0.1"]))
    assert first.remote == {"m2", "proxy"} and first.start_order() == ["m1", "lb"]
    second = place(split, machine_addresses(["10.77.0.2"]))
    assert second.remote == {"m1", "lb", "proxy"} and second.start_order() == ["m2"]


def test_a_topology_with_no_node_here_is_refused_with_what_to_do():
    with pytest.raises(TopologyError) as refused:
        place(topology(), machine_addresses(["10.77.0.5"]))
    assert "no node of this topology has an address of this machine (10.77.0.5)" in str(refused.value)
    assert "up --host ADDRESS" in str(refused.value)


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1", "localhost"])
def test_a_node_every_machine_would_call_its_own_is_refused_in_a_topology_over_several(host):
    with pytest.raises(TopologyError) as refused:
        place(topology(balancer=host), machine_addresses(["10.77.0.1"]))
    assert f"node lb listens on {host}" in str(refused.value)


def test_this_machines_addresses_include_loopback_and_what_is_given():
    assert {"127.0.0.1", "::1"} <= machine_addresses()
    assert machine_addresses(["10.77.0.1"]) == {"10.77.0.1", "127.0.0.1", "::1"}
    with pytest.raises(ValueError):
        machine_addresses(["not-an-address"])
