"""The shared secret, with real node processes on loopback (docs/SECURITY.md).

Nodes started with `--require-secret` behave as a node on a non-loopback
address does: the first request on every connection must be
`.auth <secret>;`. The secret travels only in the TAHIRY_SECRET environment
variable. No test sends traffic outside 127.0.0.0/8: non-loopback hosts are
only used where the node must refuse to start before binding.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ERROR_PREFIX
from nodes.client.connection import AuthenticationFailed, ServerConnection
from nodes.protocol.wire import auth_request
from supervisor.keeper import ping as supervisor_ping
from supervisor.keeper import probe as supervisor_probe
from supervisor.topology import TopologyError, parse_topology
from tests.conftest import REPO_ROOT, wait_until
from tests.integration.wire import WireClient

SECRET = "s3cret-Tahiry_42"
WITH_SECRET = {"TAHIRY_SECRET": SECRET}
NO_SECRET = {"TAHIRY_SECRET": ""}


def authenticated(port: int, secret: str = SECRET) -> WireClient:
    client = WireClient(port)
    response = client.run(auth_request(secret).decode())[0]
    assert response.ok, response.message
    return client


def wait_ready(node, secret: str = SECRET, deadline_s: float = 15.0):
    """conftest's readiness probe cannot authenticate: ping with the secret instead."""
    def answers() -> bool:
        assert node.alive(), node.log_text()
        try:
            with authenticated(node.port, secret) as client:
                return client.one(".ping;").ok
        except (OSError, AssertionError):
            return False
    try:
        wait_until(answers, deadline_s, f"{node.name} to answer an authenticated .ping;")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}\n" + node.log_text()) from None
    return node


def start_guarded_server(start_node, name: str = "m1", *args: str):
    node = start_node("server", name, "--data", f"data/{name}", "--require-secret", *args,
                      wait=False, env=WITH_SECRET)
    return wait_ready(node)


def assert_refused_and_closed(client: WireClient, statement: str, *words: str) -> None:
    response = client.one(statement)
    assert not response.ok and response.message.startswith(ERROR_PREFIX)
    for word in words:
        assert word in response.message, response.message
    assert client.closed_by_peer()


# --------------------------------------------------------------------------
# A node that requires the secret


@pytest.mark.parametrize("first", [".ping;", ".status;", "asehoy ny tahiry;",
                                   "manamboara tahiry tsy_tokony;", "garbage \xff;"])
def test_anything_but_auth_first_is_refused_and_closed(start_node, first):
    server = start_guarded_server(start_node)
    with WireClient(server.port) as client:
        assert_refused_and_closed(client, first, "authentication required", ".auth")
    with authenticated(server.port) as client:
        assert ["tsy_tokony"] not in client.rows("asehoy ny tahiry;")


def test_wrong_or_missing_secret_is_refused_logged_and_counted(start_node):
    server = start_guarded_server(start_node)
    for wrong in (".auth wrong;", ".auth;", f".auth {SECRET}x;", f".auth {SECRET[:-1]};"):
        with WireClient(server.port) as client:
            assert_refused_and_closed(client, wrong, "wrong secret")
    with authenticated(server.port) as client:
        assert client.status()["auth_failures"] >= 4
    assert "refused connection from 127.0.0.1" in server.log_text()
    assert SECRET not in server.log_text()


def test_the_right_secret_opens_a_normal_session(start_node):
    server = start_guarded_server(start_node)
    with authenticated(server.port) as client:
        assert client.one(".ping;").message == "PONG m1 server"
        client.ok("manamboara tahiry sekoly;")
        client.ok("ampiasao sekoly;")
        assert client.one(f".auth {SECRET};").ok  # again: harmless
        assert client.rows("alaivo 1 + 1;") == [[2]]
    # Pipelined in one write: the secret, then statements.
    with WireClient(server.port) as client:
        responses = client.run(f".auth {SECRET};.ping;alaivo 3;", count=3)
        assert [r.ok for r in responses] == [True, True, True]


@pytest.mark.slow
def test_unauthenticated_connections_do_not_linger(start_node):
    # Closed at the deadline from accept (10 s), whatever the idle timeout:
    # an unauthenticated connection is not the node's yet.
    server = start_guarded_server(start_node, "m1", "--idle-timeout", "0.5")
    with WireClient(server.port, timeout=20) as silent:
        assert silent.closed_by_peer()


def test_a_loopback_node_accepts_auth_harmlessly_and_works_without(start_node):
    server = start_node("server", "m1", "--data", "data/m1", env=NO_SECRET)
    with WireClient(server.port) as client:
        assert client.one(".auth whatever;").ok
        assert client.rows("alaivo 1;") == [[1]]
    with WireClient(server.port) as client:
        assert client.rows("alaivo 2;") == [[2]]


# --------------------------------------------------------------------------
# Refusing to start


@pytest.mark.parametrize("args, env, words", [
    (("--require-secret",), NO_SECRET, ["--require-secret", "TAHIRY_SECRET"]),
    (("--host", "192.0.2.10"), NO_SECRET, ["192.0.2.10", "not a loopback", "TAHIRY_SECRET"]),
    (("--require-secret",), {"TAHIRY_SECRET": "has space"}, ["unusable secret"]),
    (("--require-secret",), {"TAHIRY_SECRET": "semi;colon"}, ["unusable secret"]),
])
def test_node_refuses_to_start_without_a_usable_secret(start_node, args, env, words):
    node = start_node("server", "m1", "--data", "data/m1", *args, wait=False, env=env)
    assert node.popen.wait(timeout=15) != 0
    log = node.log_text()
    for word in words:
        assert word in log, log
    assert "listening" not in log


@pytest.mark.parametrize("module", ["proxycache", "balancer"])
def test_other_node_kinds_refuse_a_non_loopback_host_without_secret(start_node, module):
    extra = ["--upstream", "127.0.0.1:9"] if module == "proxycache" else ["--backend",
                                                                          "m1=127.0.0.1:9"]
    node = start_node(module, "n1", "--host", "192.0.2.10", *extra, wait=False, env=NO_SECRET)
    assert node.popen.wait(timeout=15) != 0
    assert "not a loopback" in node.log_text()


# --------------------------------------------------------------------------
# Every client side presents the secret


def test_client_connection_sends_the_secret(start_node, monkeypatch):
    server = start_guarded_server(start_node)
    connection = ServerConnection("127.0.0.1", server.port, timeout=5, secret=SECRET)
    assert connection.request("alaivo 5;").relation.rows == [[5]]
    connection.close()
    monkeypatch.setenv("TAHIRY_SECRET", SECRET)  # picked up when none is given
    connection = ServerConnection("127.0.0.1", server.port, timeout=5)
    assert connection.request("alaivo 6;").relation.rows == [[6]]
    connection.close()
    with pytest.raises(AuthenticationFailed, match="wrong secret"):
        ServerConnection("127.0.0.1", server.port, timeout=5, secret="nope")
    monkeypatch.setenv("TAHIRY_SECRET", "")
    connection = ServerConnection("127.0.0.1", server.port, timeout=5)
    refused = connection.request("alaivo 7;")
    assert not refused.ok and "authentication required" in refused.message
    connection.close()


def run_cli(port: int, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nodes.client", "--port", str(port), *args, "-e", "alaivo 40 + 2;"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env})


def test_client_cli_uses_the_environment_secret(start_node):
    server = start_guarded_server(start_node)
    good = run_cli(server.port, WITH_SECRET)
    assert "42" in good.stdout, good.stdout + good.stderr
    bad = run_cli(server.port, NO_SECRET)
    assert "42" not in bad.stdout
    assert "authentication required" in bad.stdout + bad.stderr


@pytest.mark.slow  # a three-node chain started twice
def test_proxy_presents_the_secret_upstream_and_can_require_it(start_node):
    server = start_guarded_server(start_node)
    open_proxy = start_node("proxycache", "p1", "--upstream", f"127.0.0.1:{server.port}",
                            env=WITH_SECRET)
    with WireClient(open_proxy.port) as client:  # loopback proxy: clients need nothing
        assert client.rows("alaivo 1;") == [[1]]
    guarded = start_node("proxycache", "p2", "--upstream", f"127.0.0.1:{server.port}",
                         "--require-secret", wait=False, env=WITH_SECRET)
    wait_ready(guarded)
    with WireClient(guarded.port) as client:
        assert_refused_and_closed(client, "alaivo 1;", "authentication required")
    with authenticated(guarded.port) as client:
        assert client.rows("alaivo 2;") == [[2]]
    wrong = start_node("proxycache", "p3", "--upstream", f"127.0.0.1:{server.port}",
                       env={"TAHIRY_SECRET": "not-the-one"})
    with WireClient(wrong.port) as client:
        response = client.one("alaivo 3;")
        assert not response.ok and "wrong secret" in response.message


def test_balancer_presents_the_secret_to_its_backends(start_node):
    server = start_guarded_server(start_node)
    balancer = start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{server.port}",
                          "--probe-interval-ms", "100", "--require-secret", wait=False,
                          env=WITH_SECRET)
    wait_ready(balancer)
    with WireClient(balancer.port) as client:
        assert_refused_and_closed(client, ".ping;", "authentication required")
    with authenticated(balancer.port) as client:
        # Answered once its prober (with the secret) sees m1 healthy.
        def answered():
            response = client.one("alaivo 4;")
            return response if response.ok else None
        response = wait_until(answered, 10.0, "the balancer to answer a read")
        assert response.relation.rows == [[4]], response.message
        client.ok("manamboara tahiry lb_db;")
    with authenticated(server.port) as direct:
        assert ["lb_db"] in direct.rows("asehoy ny tahiry;")


# --------------------------------------------------------------------------
# The supervisor


def test_supervisor_probes_authenticate(start_node):
    server = start_guarded_server(start_node)
    assert asyncio.run(supervisor_ping("127.0.0.1", server.port, 5.0, SECRET)) >= 0
    status = asyncio.run(supervisor_probe("127.0.0.1", server.port, 5.0, b".status;", SECRET))
    assert json.loads(status.splitlines()[1])["auth_required"] is True
    with pytest.raises(ConnectionError):
        asyncio.run(supervisor_ping("127.0.0.1", server.port, 5.0))
    with pytest.raises(ConnectionError, match="secret refused"):
        asyncio.run(supervisor_ping("127.0.0.1", server.port, 5.0, "wrong-one"))


TOPOLOGY = """\
supervisor:
  control_port: 4947
nodes:
  m1:
    kind: server
    host: {host}
    port: 4948
    data: data/m1
"""


def test_topology_refuses_a_non_loopback_node_without_secret():
    path = Path("/tmp/cluster/topology.yaml")
    with pytest.raises(TopologyError) as caught:
        parse_topology(TOPOLOGY.format(host="0.0.0.0"), path, {})
    assert "not a loopback address" in str(caught.value) and "line 6" in str(caught.value)
    assert parse_topology(TOPOLOGY.format(host="0.0.0.0"), path, WITH_SECRET).secret == SECRET
    with_key = f"secret: {SECRET}\n" + TOPOLOGY.format(host="10.1.2.3")
    assert parse_topology(with_key, path, {}).secret == SECRET
    assert parse_topology(TOPOLOGY.format(host="127.0.0.1"), path, {}).secret is None
    with pytest.raises(TopologyError, match="secret"):
        parse_topology("secret: 'a b'\n" + TOPOLOGY.format(host="10.1.2.3"), path, {})
    with pytest.raises(TopologyError, match="TAHIRY_SECRET"):
        parse_topology(TOPOLOGY.format(host="10.1.2.3"), path, {"TAHIRY_SECRET": "x;y"})


def test_supervisor_check_command_refuses_it_too(tmp_path):
    (tmp_path / "topology.yaml").write_text(TOPOLOGY.format(host="0.0.0.0"))
    result = subprocess.run([sys.executable, "-m", "supervisor", "check",
                             str(tmp_path / "topology.yaml")],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **NO_SECRET})
    assert result.returncode != 0
    assert "not a loopback address" in result.stderr


def check_command(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "supervisor", "check", str(path)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or NO_SECRET)})


def test_supervisor_check_and_up_refuse_a_weak_secret_off_loopback(tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text("secret: x\n" + TOPOLOGY.format(host="0.0.0.0"))
    path.chmod(0o600)
    for command in ("check", "up"):
        result = subprocess.run([sys.executable, "-m", "supervisor", command, str(path)],
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **NO_SECRET})
        assert result.returncode == 2, result.stdout
        assert "secret: too weak: 1 character(s)" in result.stderr
        assert "at least 16" in result.stderr
    assert not (tmp_path / "run").exists()
    path.write_text(TOPOLOGY.format(host="0.0.0.0"))
    result = check_command(path, {"TAHIRY_SECRET": "weak-one"})
    assert result.returncode == 2 and "TAHIRY_SECRET" in result.stderr
    assert "weak-one" not in result.stderr


def test_supervisor_check_warns_of_a_weak_secret_on_loopback(tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text("secret: x\n" + TOPOLOGY.format(host="127.0.0.1"))
    path.chmod(0o600)
    result = check_command(path)
    assert result.returncode == 0, result.stderr
    assert "warning: topology.yaml line 1: secret: weak: 1 character(s)" in result.stderr


def test_supervisor_check_warns_of_a_secret_others_may_read(tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text(f"secret: {SECRET}\n" + TOPOLOGY.format(host="127.0.0.1"))
    path.chmod(0o644)
    result = check_command(path)
    assert result.returncode == 0, result.stderr
    assert "holds the secret and users other than its owner may read it (mode 0644)" \
        in result.stderr
    assert SECRET not in result.stderr + result.stdout
    path.chmod(0o600)
    assert "warning" not in check_command(path).stderr
    path.write_text(TOPOLOGY.format(host="127.0.0.1"))  # the secret from the environment
    path.chmod(0o644)
    assert "warning" not in check_command(path, WITH_SECRET).stderr


def test_supervisor_gives_children_the_secret_by_environment_only(tmp_path):
    from supervisor.cluster import Cluster, node_command

    path = tmp_path / "topology.yaml"
    path.write_text(f"secret: {SECRET}\n" + TOPOLOGY.format(host="127.0.0.1"))
    topology = parse_topology(path.read_text(), path, {})
    import logging

    cluster = Cluster(topology, logging.getLogger("test"))
    keeper = cluster._make_keeper(topology.nodes["m1"])
    assert keeper.env["TAHIRY_SECRET"] == SECRET
    assert keeper.secret == SECRET
    assert not any(SECRET in arg for arg in keeper.argv)
    assert not any(SECRET in arg for arg in node_command(topology, "m1", tmp_path))
