"""The supervisor running the real nodes: up, status, queries through the proxy,
kill -9 and restart, restart NODE, logs, down leaving no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO_ROOT, free_port, wire_request
from tests.integration.supervisorkit import SupervisorRun

DEADLINE_S = 20.0


def cluster_yaml(ports: dict[str, int], extra_servers: tuple[str, ...] = ()) -> str:
    servers = ["m1", "m2", *extra_servers]
    text = f"""\
supervisor:
  control_port: {ports['control']}
  health:
    interval_ms: 200
    timeout_ms: 1000
    fall: 3
  restart:
    backoff_initial_ms: 100
    backoff_max_ms: 2000
    max_restarts: 5
    window_s: 60
nodes:
"""
    for server in servers:
        text += (f"  {server}:\n    kind: server\n    host: 127.0.0.1\n"
                 f"    port: {ports[server]}\n    data: data/{server}\n")
    text += (f"  lb:\n    kind: balancer\n    host: 127.0.0.1\n    port: {ports['lb']}\n"
             f"    backends: [{', '.join(servers)}]\n")
    text += (f"  proxy:\n    kind: proxycache\n    host: 127.0.0.1\n    port: {ports['proxy']}\n"
             f"    upstream: lb\n    ttl_ms: 3000\n    max_entries: 200\n")
    return text


class Cluster(SupervisorRun):
    """A temporary copy of a topology and the supervisor CLI run against it."""

    def __init__(self, workdir: Path):
        super().__init__(workdir, workdir / "topology.yaml")
        self.ports = {name: free_port() for name in ("control", "m1", "m2", "m3", "lb", "proxy")}
        self.write()
        self.foreground: subprocess.Popen | None = None

    def write(self, extra_servers: tuple[str, ...] = (), text: str | None = None) -> None:
        self.topology.write_text(text if text is not None else
                                 cluster_yaml(self.ports, extra_servers))

    def up(self) -> subprocess.CompletedProcess:
        result = self.cli("up", "-d", str(self.topology))
        self.remember_pids()
        return result

    def status(self) -> dict:
        result = self.cli("status", str(self.topology), "--json")
        answer = json.loads(result.stdout)
        answer["exit_code"] = result.returncode
        return answer

    def nodes(self) -> dict[str, dict]:
        nodes = {row["node"]: row for row in self.status()["nodes"]}
        self.remember(row["pid"] for row in nodes.values() if row["pid"])
        return nodes

    def remember_pids(self) -> None:
        try:
            pid = int((self.workdir / "run" / "supervisor.pid").read_text())
            self.remember([pid] + [c.pid for c in psutil.Process(pid).children(recursive=True)])
        except (OSError, ValueError, psutil.Error):
            pass

    def wait_for(self, predicate, what: str) -> dict[str, dict]:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            nodes = self.nodes()
            if predicate(nodes):
                return nodes
            time.sleep(0.1)
        raise AssertionError(f"{what}: not reached; status: {json.dumps(nodes, indent=1)}\n"
                             f"{self.supervisor_log()}")

    def session(self, *statements: str, port: int | None = None) -> list[str]:
        """Run statements one after the other on one connection; their responses."""
        return run_session(port or self.ports["proxy"], statements)

    def down(self) -> None:
        self.remember_pids()
        self.cli("down", str(self.topology))
        if self.foreground is not None and self.foreground.poll() is None:
            self.foreground.send_signal(signal.SIGINT)
            self.foreground.wait(timeout=30)

    def down_and_reap(self) -> list[int]:
        """`down`, then SIGKILL whatever survived it (returned): nothing is ever left behind."""
        self.down()
        leftovers = self.survivors()
        for pid in leftovers:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        return leftovers

    def survivors(self) -> list[int]:
        return self.survivors_of(list(self.seen))

    def survivors_of(self, pids) -> list[int]:
        alive = []
        for pid in pids:
            process = self.seen.get(pid)
            if process is None:
                continue
            try:
                process.wait(timeout=5)  # psutil checks it is still the same process
            except psutil.NoSuchProcess:
                continue
            except psutil.TimeoutExpired:
                alive.append(pid)
        return alive


@pytest.fixture
def cluster(tmp_path):
    running = Cluster(tmp_path)
    yield running
    assert running.down_and_reap() == [], "processes survived `down`"


def run_session(port: int, statements, timeout: float = 10.0) -> list[str]:
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for statement in statements:
            sock.sendall(statement.encode())
            data = b""
            while not (data.endswith(b"\nEND\n") or data == b"END\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed while answering {statement!r}")
                data += chunk
            answers.append(data.decode())
    return answers


def all_running(nodes: dict[str, dict]) -> bool:
    return all(row["state"] == "RUNNING" for row in nodes.values())


def test_up_status_query_and_down(cluster):
    result = cluster.up()
    assert result.returncode == 0, result.stderr + cluster.supervisor_log()
    assert "RUNNING" in result.stdout and "proxycache" in result.stdout
    nodes = cluster.nodes()
    assert all_running(nodes) and list(nodes) == ["m1", "m2", "lb", "proxy"]
    assert all(row["pid"] and row["probe_ms"] is not None for row in nodes.values())

    answers = cluster.session("manamboara tahiry sekoly;", "ampiasao sekoly;",
                              "manamboara tabilao t (id ISA(0,100));",
                              "manampia ao@ t sanda (1),(2);", "alaivo * ao@ t;",
                              "alaivo * ao@ t;")
    assert not any("Hadisoana" in answer for answer in answers), answers
    assert '"rows":[[1],[2]]' in answers[-1] and answers[-1] == answers[-2]
    assert "hit ratio 50%" in cluster.cli("status", str(cluster.topology)).stdout

    again = cluster.cli("up", str(cluster.topology))
    assert again.returncode == 0 and "already runs" in again.stdout

    cluster.down()
    assert cluster.survivors() == []
    stopped = cluster.status()
    assert stopped["exit_code"] == 3 and stopped["running"] is False
    assert {row["state"] for row in stopped["nodes"]} == {"STOPPED"}
    assert list((cluster.workdir / "run").glob("*.json")) == []


def test_killed_server_is_restarted_and_catches_up(cluster):
    assert cluster.up().returncode == 0
    before = cluster.nodes()
    old_pid = before["m1"]["pid"]
    os.kill(old_pid, signal.SIGKILL)
    nodes = cluster.wait_for(lambda n: n["m1"]["restarts"] == 1 and n["m1"]["state"] == "RUNNING",
                             "m1 restarted")
    assert nodes["m1"]["pid"] != old_pid
    assert "code -9" in nodes["m1"]["last_exit"]
    assert nodes["m2"]["pid"] == before["m2"]["pid"] and nodes["m2"]["restarts"] == 0
    assert "PONG" in wire_request(cluster.ports["m1"], ".ping;")
    backends = json.loads((cluster.workdir / "run" / "lb.backends.json").read_text())
    assert all(entry["writable"] for entry in backends["backends"])


def test_restart_command_and_logs(cluster):
    assert cluster.up().returncode == 0
    old_pid = cluster.nodes()["lb"]["pid"]
    result = cluster.cli("restart", "lb", str(cluster.topology))
    assert result.returncode == 0, result.stderr
    nodes = cluster.nodes()
    assert nodes["lb"]["state"] == "RUNNING" and nodes["lb"]["pid"] != old_pid
    unknown = cluster.cli("restart", "nope", str(cluster.topology))
    assert unknown.returncode != 0 and "unknown node 'nope'" in unknown.stderr
    logs = cluster.cli("logs", "m1", str(cluster.topology))
    assert logs.returncode == 0 and "[supervisor] started pid" in logs.stdout
    assert "RUNNING" in cluster.cli("logs", "supervisor", str(cluster.topology)).stdout


def test_invalid_topology_starts_nothing(cluster):
    cluster.write(text=cluster_yaml(cluster.ports).replace("backends: [m1, m2]",
                                                           "backends: [m1, m9]"))
    result = cluster.cli("up", "-d", str(cluster.topology))
    assert result.returncode == 2
    assert "nodes.lb.backends: unknown node 'm9'" in result.stderr
    assert "nothing was started" in result.stderr
    assert not (cluster.workdir / "run").exists()


def test_foreground_up_stops_everything_on_ctrl_c(cluster):
    console = cluster.workdir / "console.err"  # log lines echoed on stderr, for the report
    with console.open("w") as stderr:
        cluster.foreground = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "up", str(cluster.topology)],
            cwd=cluster.workdir, stdout=subprocess.PIPE, stderr=stderr, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    table = []
    for line in cluster.foreground.stdout:  # the table is printed once everything settled
        table.append(line)
        if line.startswith("the cluster"):
            break
    assert sum("RUNNING" in line for line in table) == 4, "".join(table) + console.read_text()
    cluster.remember_pids()
    cluster.nodes()
    cluster.foreground.send_signal(signal.SIGINT)
    assert cluster.foreground.wait(timeout=30) == 0
    assert cluster.survivors() == []


def test_up_after_a_supervisor_crash_stops_its_leftover_nodes(cluster):
    assert cluster.up().returncode == 0
    old = cluster.nodes()
    supervisor_pid = int((cluster.workdir / "run" / "supervisor.pid").read_text())
    os.kill(supervisor_pid, signal.SIGKILL)  # the nodes keep running, orphaned
    psutil.Process(old["m1"]["pid"]).status()  # still there
    result = cluster.up()
    assert result.returncode == 0, result.stderr + cluster.supervisor_log()
    assert cluster.survivors_of([row["pid"] for row in old.values()]) == []
    nodes = cluster.nodes()
    assert all_running(nodes) and nodes["m1"]["pid"] != old["m1"]["pid"]
    assert "left by a supervisor that died" in cluster.supervisor_log()
