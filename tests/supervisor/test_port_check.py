"""Node ports another program holds: found before anything starts, named with their holder."""

import asyncio
import logging
import os
import socket
from pathlib import Path

import pytest

from supervisor.cluster import Cluster
from supervisor.port_check import addresses, busy_ports, port_holder, port_problems
from supervisor.reload import reload_topology
from supervisor.topology import parse_topology
from tests.conftest import free_port
from tests.integration.supervisorkit import SupervisorRun, cluster_yaml
from tests.supervisor.topologykit import refused_edit


@pytest.fixture
def listener():
    """A socket of this test process listening on a free loopback port (another program's)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", free_port()))
    sock.listen(1)
    yield sock
    sock.close()


def ports(**taken: int) -> dict[str, int]:
    chosen = {name: free_port() for name in ("control", "m1", "m2", "m3", "lb", "proxy")}
    chosen.update(taken)
    return chosen


def topology(tmp_path: Path, chosen: dict[str, int], extra: tuple[str, ...] = ()):
    path = tmp_path / "topology.yaml"
    path.write_text(cluster_yaml(chosen, extra))
    return parse_topology(path.read_text(), path, {})


def test_a_held_port_is_named_with_its_holder(tmp_path, listener):
    port = listener.getsockname()[1]
    [busy] = busy_ports(topology(tmp_path, ports(m2=port)))
    assert (busy.node, busy.port, busy.address) == ("m2", port, f"127.0.0.1:{port}")
    assert busy.holder is not None and busy.holder.startswith(f"pid {os.getpid()} (")
    assert port_holder(port) == busy.holder
    text = busy.describe()
    assert text.startswith(f"m2: port {port} (127.0.0.1:{port}) is not free (Address already "
                           f"in use, held by pid {os.getpid()} ")
    assert "give m2 another port" in text


def test_free_ports_and_the_running_clusters_own_pass(tmp_path, listener):
    port = listener.getsockname()[1]
    assert busy_ports(topology(tmp_path, ports())) == []
    # m2 already runs there (its address is in the topology in force): ours, not tested
    held = topology(tmp_path, ports(m2=port))
    assert port_problems(held, addresses(held)) == []
    assert port_problems(held, {f"127.0.0.1:{port}"}) == []


def test_a_reload_onto_a_held_port_is_refused_before_anything_stops(tmp_path, listener):
    """Bug: the edit was applied, and the new m3 crash-looped into FATAL."""
    port = listener.getsockname()[1]
    chosen = ports(m3=port)
    message = refused_edit(tmp_path / "topology.yaml", cluster_yaml(chosen),
                           cluster_yaml(chosen, ("m3",)))
    assert message.startswith(f"m3: port {port} (127.0.0.1:{port}) is not free")
    assert f"held by pid {os.getpid()}" in message


def test_check_refuses_a_held_port(tmp_path, listener):
    """Bug: `check` said "valid (5 nodes)" for a port another program listens on."""
    port = listener.getsockname()[1]
    run = SupervisorRun(tmp_path, tmp_path / "topology.yaml")
    run.topology.write_text(cluster_yaml(ports(m3=port), ("m3",)))
    result = run.cli("check", str(run.topology))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "topology.yaml: valid, but cannot be applied now:" in result.stderr
    assert f"m3: port {port} (127.0.0.1:{port}) is not free" in result.stderr
    assert f"held by pid {os.getpid()}" in result.stderr
    listener.close()
    result = run.cli("check", str(run.topology))
    assert result.returncode == 0 and "topology.yaml: valid (5 nodes)" in result.stdout


def test_check_warns_of_a_held_status_page_port(tmp_path, listener):
    """Bug: `check` said nothing of the status page's port; `up` then ran without the page,
    which only its log told."""
    port = listener.getsockname()[1]
    run = SupervisorRun(tmp_path, tmp_path / "topology.yaml")
    run.topology.write_text(cluster_yaml(ports(), http=f"  host: 127.0.0.1\n  port: {port}\n"))
    result = run.cli("check", str(run.topology))
    assert result.returncode == 0 and "topology.yaml: valid (4 nodes)" in result.stdout
    assert (f"warning: the status page's port {port} (127.0.0.1) is not free (Address already "
            f"in use, held by pid {os.getpid()}") in result.stderr
    assert "`up` would start the cluster without it" in result.stderr
    listener.close()
    result = run.cli("check", str(run.topology))
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr


def test_up_refuses_a_held_port_and_starts_nothing(tmp_path, listener):
    port = listener.getsockname()[1]
    run = SupervisorRun(tmp_path, tmp_path / "topology.yaml")
    run.topology.write_text(cluster_yaml(ports(lb=port)))
    result = run.cli("up", "-d", str(run.topology))
    assert result.returncode == 1
    assert f"cannot start: lb: port {port} (127.0.0.1:{port}) is not free" in result.stderr
    assert "nothing was started." in result.stderr
    assert not (tmp_path / "run" / "supervisor.pid").exists()


def test_moving_a_node_onto_a_held_port_is_refused_too(tmp_path, listener):
    """A moved node is stopped before its replacement starts: refused before that."""
    chosen = ports()
    logger = logging.getLogger("test-port-check")

    async def scenario():
        cluster = Cluster(topology(tmp_path, chosen, ("m3",)), logger)
        moved = {**chosen, "m3": listener.getsockname()[1]}
        (tmp_path / "topology.yaml").write_text(cluster_yaml(moved, ("m3",)))
        result = await reload_topology(cluster, logger)
        assert not result.ok and result.message.startswith("m3: port ")
        assert cluster.topology.nodes["m3"].port == chosen["m3"]
    asyncio.run(scenario())


def test_a_node_whose_host_is_respelled_is_not_refused_its_own_port(tmp_path, listener):
    """Bug: editing m2's `host: 127.0.0.1` to `host: localhost` (the same address) was
    refused: "m2: port P (localhost:P) is not free (... held by pid N (python -m
    nodes.server --id m2 ...)); stop that program": the cluster's own m2, which the reload
    stops before its replacement starts."""
    port = listener.getsockname()[1]   # (here m2 itself, as the cluster in force runs it)
    held = topology(tmp_path, ports(m2=port))
    respelled = parse_topology(held.path.read_text().replace(
        f"host: 127.0.0.1\n    port: {port}", f"host: localhost\n    port: {port}"), held.path, {})
    assert respelled.nodes["m2"].address == f"localhost:{port}"
    assert port_problems(respelled, addresses(held)) == []
    # Another program on that port is still refused, whatever the spelling.
    [busy] = busy_ports(respelled, addresses(topology(tmp_path, ports())))
    assert (busy.node, busy.port) == ("m2", port)
