"""`--unix-socket PATH`: `run_server` also listens on a Unix socket (nodes/runtime/unix_socket.py).

Real node processes: a proxy cache, the lightest node (its `.ping;` and
`.status;` need no upstream); every node listens through the same
`run_server`. The file is made mode 0600, a stale one is replaced, a live
listener's socket is refused and left as it was, anything else there (a
regular file, a directory) is left as it was while the node serves over
TCP only, and the file goes at a clean stop.
"""

from __future__ import annotations

import os
import socket
import stat

import pytest

from tests.conftest import READY_DEADLINE_S, ping, unix_request
from tests.tlskit import Certificates


def start_proxy(start_node, path, *args: str, wait: bool = True):
    """A proxy cache also listening at `path` (its upstream is never asked)."""
    return start_node("proxycache", "p", "--upstream", "127.0.0.1:9", "--unix-socket", str(path),
                      *args, wait=wait)


def refused(node) -> str:
    """The log of a node that must exit non-zero at start (waited for with a deadline)."""
    code = node.popen.wait(timeout=READY_DEADLINE_S)
    assert code != 0, node.log_text()
    return node.log_text()


def test_a_node_answers_on_its_socket_made_0600_and_removes_it_at_stop(start_node, tmp_path):
    path = tmp_path / "p.sock"
    node = start_proxy(start_node, path)
    info = os.lstat(path)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert unix_request(path, ".ping;").message == "PONG p proxycache"
    node.stop()
    assert node.popen.returncode == 0, node.log_text()
    assert not path.exists()


def test_a_stale_socket_left_by_a_crash_is_replaced(start_node, tmp_path):
    path = tmp_path / "p.sock"
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(str(path))   # the file stays, nobody listens: what a killed node leaves
    crashed.close()
    start_proxy(start_node, path)
    assert unix_request(path, ".ping;").message == "PONG p proxycache"


@pytest.mark.parametrize("kind", ["regular file", "directory"])
def test_a_file_that_is_not_a_socket_is_left_as_it_was_and_the_node_keeps_tcp(
        start_node, tmp_path, kind):
    path = tmp_path / "p.sock"
    if kind == "directory":
        path.mkdir()
    else:
        path.write_text("a student's notes\n")
    node = start_proxy(start_node, path)   # started: it answers on its TCP port
    assert ping(node.port)
    log = node.log_text()
    assert "not a socket" in log and str(path) in log and "serving over TCP only" in log
    assert path.is_dir() if kind == "directory" else path.read_text() == "a student's notes\n"
    node.stop()
    assert node.popen.returncode == 0, node.log_text()
    assert path.is_dir() if kind == "directory" else path.read_text() == "a student's notes\n"


def test_a_socket_a_live_process_listens_on_is_refused_and_left_as_it_was(start_node, tmp_path):
    path = tmp_path / "p.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(path))
        live.listen()
        inode = os.lstat(path).st_ino
        log = refused(start_proxy(start_node, path, wait=False))
        assert "another process listens there" in log
        assert os.lstat(path).st_ino == inode
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))   # still the live process's


def test_clients_of_the_socket_are_local_peers_not_one_capped_address(start_node, tmp_path):
    """A Unix socket's client has no address; counted as one, the cluster's own
    balancer (many connections to a server) would hit the per-address cap."""
    path = tmp_path / "p.sock"
    start_proxy(start_node, path, "--max-connections-per-address", "1")
    sockets = []
    try:
        for _ in range(3):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.connect(str(path))
        for sock in sockets:
            sock.settimeout(5)
            sock.sendall(b".ping;")
            assert b"PONG p proxycache" in sock.recv(4096)
    finally:
        for sock in sockets:
            sock.close()


def test_a_node_with_tls_refuses_a_unix_socket(start_node, tmp_path):
    tls = Certificates(tmp_path / "tls").machine("h1", ["127.0.0.1"])
    path = tmp_path / "p.sock"
    log = refused(start_proxy(start_node, path, "--tls-cert", str(tls.cert), "--tls-key",
                              str(tls.key), "--tls-ca", str(tls.ca), wait=False))
    assert "carry" in log and "TLS" in log
    assert not path.exists()
