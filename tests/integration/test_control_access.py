"""Who may drive a running supervisor, and where its secret may be read (docs/SECURITY.md).

- Run files that may hold the secret are 0600; no other file under run/ or
  logs/ (node command lines included) holds it.
- The control port obeys only its own cluster's operator: `down`, `restart`
  and `reload` need the run's control token (run/control-token, 0600).
- `down`/`status`/`restart`/`reload` given a topology act only on the
  supervisor of that topology: another one on the same control port is
  refused, named, and keeps running.
"""

from __future__ import annotations

import json
import socket
import stat
from pathlib import Path

import psutil

from tests.integration.supervisorkit import Cluster, all_running

SECRET = "Tahiry-s3cret_for-the-tests"


def with_secret(cluster: Cluster) -> None:
    cluster.write(text=f"secret: {SECRET}\n" + cluster.topology.read_text())
    cluster.topology.chmod(0o600)


def raw_command(port: int, request: dict) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_holding_the_secret_are_private_and_logs_never_hold_it(cluster):
    with_secret(cluster)
    result = cluster.up()
    assert result.returncode == 0, result.stderr + cluster.supervisor_log()
    run = cluster.workdir / "run"
    assert mode(run / "loaded-topology.yaml") == 0o600
    assert mode(run / "state.json") == 0o600
    holding = []
    for folder in (run, cluster.workdir / "logs"):
        for path in folder.rglob("*"):
            if path.is_file() and SECRET.encode() in path.read_bytes():
                holding.append(path)
    assert holding, "the loaded topology holds the secret"
    assert [p for p in holding if mode(p) != 0o600] == []
    assert [p for p in holding if p.parent.name == "logs"] == []
    # Nor does any command line (`ps` shows them): the nodes get it by environment.
    supervisor = psutil.Process(int((run / "supervisor.pid").read_text()))
    for process in [supervisor, *supervisor.children(recursive=True)]:
        assert not any(SECRET in arg for arg in process.cmdline()), process.cmdline()


def test_a_raw_down_without_credentials_is_refused(cluster):
    with_secret(cluster)
    assert cluster.up().returncode == 0, cluster.supervisor_log()
    port = cluster.ports["control"]
    for request in ({"cmd": "down"}, {"cmd": "down", "token": "guess"},
                    {"cmd": "restart", "node": "m1"}, {"cmd": "reload"}):
        answer = raw_command(port, request)
        assert answer["ok"] is False and "control token" in answer["error"], answer
    assert all_running(cluster.nodes())
    assert (cluster.workdir / "run" / "control-token").exists()
    assert mode(cluster.workdir / "run" / "control-token") == 0o600


def test_commands_for_another_topology_are_refused_naming_it(cluster, tmp_path_factory):
    assert cluster.up().returncode == 0, cluster.supervisor_log()
    other_dir = tmp_path_factory.mktemp("other")
    other = Cluster(other_dir)
    # Same control port, other nodes: another cluster, from another checkout.
    other.ports["control"] = cluster.ports["control"]
    other.write()
    for command in (["down"], ["status"], ["reload"], ["restart", "m1"]):
        result = other.cli(*command, str(other.topology))
        assert result.returncode != 0, (command, result.stdout)
        assert str(cluster.topology) in result.stderr, (command, result.stderr)
        assert "the cluster is stopped" not in result.stdout
    assert all_running(cluster.nodes())
    assert cluster.cli("down", str(cluster.topology)).returncode == 0
