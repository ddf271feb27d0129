"""Hops between nodes of one machine over Unix sockets, and their fallback to TCP.

The balancer reaches a server through the `unix_socket` of its backends
file entry, the proxy cache its upstream through `--upstream-socket`
(nodes/runtime/upstream.py `open_upstream`): with a TCP port where nothing
listens, everything goes through the socket; with the socket file absent
(a node restarted without it), the attempt falls back to TCP. Then a
supervised cluster: its servers and balancer listen on run/<id>.sock, mode
0600, the statements of a client of the proxy go through them, and `down`
removes them.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import stat

import psutil
import pytest

from tests.conftest import free_port, wait_until
from tests.integration.supervisorkit import all_running
from tests.integration.wire import WireClient, setup_school


def write_backends(path, server, unix_socket, port: int) -> None:
    path.write_text(json.dumps({"backends": [{"id": server, "host": "127.0.0.1", "port": port,
                                              "writable": True, "unix_socket": str(unix_socket)}]}))


def reads_and_writes(port: int, database: str = "sekoly") -> None:
    """A write and a read through the node at `port` succeed (and agree)."""
    with WireClient(port) as client:
        write_and_read(client, database)


def write_and_read(client: WireClient, database: str) -> None:
    setup_school(client, database)
    client.ok('manampia ao@ t sanda (1, "Rabe");')
    assert client.rows("alaivo anarana ao@ t rehefa id = 1;") == [["Rabe"]]


def online(port: int, backend: str) -> bool:
    with WireClient(port) as client:
        return client.status()["backends"][backend]["state"] == "ONLINE"


def writable_online(port: int, backends) -> bool:
    """Whether the balancer at `port` takes writes to each of `backends` (ONLINE, writable)."""
    with WireClient(port) as client:
        rows = client.status()["backends"]
    return all(rows[backend]["state"] == "ONLINE" and rows[backend]["writable"]
               for backend in backends)


def test_the_balancer_reaches_a_server_through_its_socket_alone(start_node, tmp_path):
    socket_path = tmp_path / "m1.sock"
    start_node("server", "m1", "--data", "data/m1", "--unix-socket", str(socket_path))
    backends = tmp_path / "lb.backends.json"
    write_backends(backends, "m1", socket_path, free_port())   # nothing listens on that port
    lb = start_node("balancer", "lb", "--backends-file", str(backends),
                    "--probe-interval-ms", "100")
    wait_until(lambda: online(lb.port, "m1"), 10, "m1 ONLINE through its socket")
    reads_and_writes(lb.port)


def test_the_balancer_falls_back_to_tcp_when_the_socket_file_is_gone(start_node, tmp_path):
    socket_path = tmp_path / "m1.sock"
    m1 = start_node("server", "m1", "--data", "data/m1", "--unix-socket", str(socket_path))
    backends = tmp_path / "lb.backends.json"
    write_backends(backends, "m1", socket_path, m1.port)
    lb = start_node("balancer", "lb", "--backends-file", str(backends),
                    "--probe-interval-ms", "100")
    wait_until(lambda: online(lb.port, "m1"), 10, "m1 ONLINE")
    reads_and_writes(lb.port, "voalohany")
    # Restarted without its socket (removed at its stop): the balancer goes on over TCP.
    port = m1.port
    m1.stop()
    assert not socket_path.exists()
    start_node("server", "m1", "--data", "data/m1", port=port)
    wait_until(lambda: online(lb.port, "m1"), 10, "m1 ONLINE again, over TCP")
    reads_and_writes(lb.port, "faharoa")


def test_the_proxy_reaches_its_upstream_through_its_socket_alone(start_node, tmp_path):
    socket_path = tmp_path / "m1.sock"
    start_node("server", "m1", "--data", "data/m1", "--unix-socket", str(socket_path))
    proxy = start_node("proxycache", "proxy", "--upstream", f"127.0.0.1:{free_port()}",
                       "--upstream-socket", str(socket_path))
    reads_and_writes(proxy.port)


def test_the_proxy_falls_back_to_tcp_when_the_socket_file_is_absent(start_node, tmp_path):
    m1 = start_node("server", "m1", "--data", "data/m1")
    proxy = start_node("proxycache", "proxy", "--upstream", f"127.0.0.1:{m1.port}",
                       "--upstream-socket", str(tmp_path / "absent.sock"))
    reads_and_writes(proxy.port)


def accepted_at(pid: int, path: str) -> bool:
    """Whether a process has a connection accepted on its socket `path` (beside its listener)."""
    bound = [c for c in psutil.Process(pid).net_connections(kind="unix") if c.laddr == path]
    return len(bound) >= 2


@pytest.mark.slow
def test_a_supervised_cluster_links_its_nodes_through_private_sockets(cluster):
    result = cluster.up()
    assert result.returncode == 0, result.stderr + cluster.supervisor_log()
    nodes = cluster.wait_for(all_running, "every node RUNNING")
    run = cluster.workdir / "run"
    sockets = {node: run / f"{node}.sock" for node in ("m1", "m2", "lb")}
    for path in sockets.values():
        info = os.lstat(path)
        assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600, path
    assert not (run / "proxy.sock").exists()   # clients, and so the proxy, keep TCP
    with WireClient(cluster.ports["proxy"]) as client:
        write_and_read(client, "sekoly")
        # The hops used them (this client's session still open): each server
        # accepted the balancer's connections there, the balancer the proxy's.
        for node, path in sockets.items():
            wait_until(functools.partial(accepted_at, nodes[node]["pid"], str(path)), 10,
                       f"a connection accepted on {path}")
    cluster.down()
    assert not [path for path in sockets.values() if path.exists()]


@pytest.mark.slow
def test_nodes_restarted_over_a_socket_path_taken_by_a_file_keep_tcp_and_run(cluster):
    """Something that is not a socket at run/<node>.sock (an operator's file, a directory)
    is left as it is; the node restarted there serves over TCP only, as its peers fall
    back to: a stray file in the run folder must not keep a server down (FATAL)."""
    assert cluster.up().returncode == 0, cluster.supervisor_log()
    before = cluster.wait_for(all_running, "every node RUNNING")
    run = cluster.workdir / "run"
    (run / "m1.sock").unlink()
    (run / "m1.sock").write_text("an operator's notes\n")
    (run / "m2.sock").unlink()
    (run / "m2.sock").mkdir()
    for node in ("m1", "m2"):
        os.kill(before[node]["pid"], signal.SIGKILL)
    cluster.wait_for(lambda nodes: all_running(nodes) and all(
        nodes[node]["pid"] != before[node]["pid"] for node in ("m1", "m2")),
        "m1 and m2 RUNNING again (restarted by the supervisor)")
    wait_until(lambda: writable_online(cluster.ports["lb"], ("m1", "m2")), 20,
               "m1 and m2 ONLINE and writable again (caught up)")
    with WireClient(cluster.ports["proxy"]) as client:
        write_and_read(client, "sekoly")
    assert (run / "m1.sock").read_text() == "an operator's notes\n"
    assert (run / "m2.sock").is_dir()
