"""The supervisor CLI run against a topology file in a test's temporary folder.

`SupervisorRun` is what the supervisor integration tests and the cluster
fault scenario share: `cli(...)` runs `python -m supervisor ...` there,
`supervisor_log()` is the tail of its log for failure reports, and
`remember(pids)` keeps psutil handles on every process seen, so that a
test can tell afterwards whether one survived (a reused pid is not it).

`Cluster` is the small supervised cluster of the supervisor tests (m1, m2,
lb, proxy; m3 when added): its topology written from `cluster_yaml`, `up`,
`status`, `wait_for` a state (with a deadline), `down_and_reap`. The
`cluster` fixture (tests/integration/conftest.py) hands one to a test.
`run_session` runs statements one after another on one connection;
`balancer_backends` is what the balancer says of its backends, and
`first_line_time` when a node's log first said something (the order in
which two nodes did things, read from their logs).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from nodes.protocol.wire import ResponseDecoder
from tests.conftest import REPO_ROOT, free_port, read_response, wait_until, wire_request


class SupervisorRun:
    """The supervisor CLI on `topology`, run in `workdir`; the processes it was seen to run."""

    cli_timeout_s = 60.0

    def __init__(self, workdir: Path, topology: Path):
        self.workdir = workdir
        self.topology = topology
        self.seen: dict[int, psutil.Process | None] = {}

    def cli(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        """`python -m supervisor ARGS`; a command past its timeout fails the test with the
        supervisor's log (what it was doing), not a bare TimeoutExpired."""
        limit = timeout if timeout is not None else self.cli_timeout_s
        try:
            return subprocess.run([sys.executable, "-m", "supervisor", *args], cwd=self.workdir,
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  timeout=limit, env=self.cli_environment())
        except subprocess.TimeoutExpired as expired:
            raise AssertionError(f"`supervisor {' '.join(args)}` still running after {limit:g} s; "
                                 f"its output: {expired.stdout!r} {expired.stderr!r}\n"
                                 f"supervisor log:\n{self.supervisor_log()}") from None

    def cli_environment(self) -> dict[str, str]:
        """The environment `cli` runs the supervisor in (a subclass adds a password)."""
        return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def supervisor_log(self) -> str:
        try:
            return (self.workdir / "logs" / "supervisor.log").read_text()[-4000:]
        except OSError:
            return "(no supervisor log)"

    def remember(self, pids) -> None:
        """Keep psutil handles: they tell a reused pid from the process we saw."""
        for pid in pids:
            if pid not in self.seen:
                try:
                    self.seen[pid] = psutil.Process(pid)
                except psutil.NoSuchProcess:
                    pass


DEADLINE_S = 20.0  # for a supervised cluster to reach a state (restarts back off)


def cluster_yaml(ports: dict[str, int], extra_servers: tuple[str, ...] = (),
                 http: str = "  enabled: false\n") -> str:
    """The kit's cluster; `http`: the lines of its `http:` section (the status page is off
    unless a test asks: clusters would otherwise all meet on the default port)."""
    servers = ["m1", "m2", *extra_servers]
    text = servers_yaml(ports, servers, http)
    text += (f"  lb:\n    kind: balancer\n    host: 127.0.0.1\n    port: {ports['lb']}\n"
             f"    backends: [{', '.join(servers)}]\n")
    text += (f"  proxy:\n    kind: proxycache\n    host: 127.0.0.1\n    port: {ports['proxy']}\n"
             f"    upstream: lb\n    ttl_ms: 3000\n    max_entries: 200\n")
    return text


def servers_yaml(ports: dict[str, int], servers, http: str = "  enabled: false\n",
                 sections: str = "") -> str:
    """The kit's supervisor sections, then `sections` (more top-level lines), then `nodes:`
    with the servers: the caller appends the other nodes."""
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
http:
{http}{sections}nodes:
"""
    for server in servers:
        text += (f"  {server}:\n    kind: server\n    host: 127.0.0.1\n"
                 f"    port: {ports[server]}\n    data: data/{server}\n")
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
        """The status rows once `predicate` holds for them; at the deadline, the last ones and the log."""
        last: list[dict[str, dict]] = [{}]

        def reached() -> dict[str, dict] | None:
            last[0] = self.nodes()
            return last[0] if predicate(last[0]) else None
        try:
            return wait_until(reached, DEADLINE_S, what, interval_s=0.1)
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; status: {json.dumps(last[0], indent=1)}\n"
                                 f"{self.supervisor_log()}") from None

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


def run_session(port: int, statements, timeout: float = 10.0) -> list[str]:
    """Run statements one after the other on one connection; the raw text of their responses."""
    answers = []
    decoder = ResponseDecoder()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for statement in statements:
            sock.sendall(statement.encode())
            try:
                response = read_response(sock, decoder)
            except ConnectionError:
                raise ConnectionError(f"closed while answering {statement!r}") from None
            answers.append(response.raw.decode())
    return answers


def all_running(nodes: dict[str, dict]) -> bool:
    return all(row["state"] == "RUNNING" for row in nodes.values())


def balancer_backends(cluster: Cluster) -> dict:
    """The `backends` of the balancer lb's `.status;`: its backends by id, with their state."""
    answer = wire_request(cluster.ports["lb"], ".status;")
    message = answer.splitlines()[answer.splitlines().index("RESULT_MESSAGE") + 1]
    return json.loads(message)["backends"]


def first_line_time(log: Path, text: str, after: str = "") -> str:
    """The timestamp ("YYYY-MM-DD HH:MM:SS.mmm": ordered as text) of `log`'s first line
    holding `text` (logged later than the timestamp `after`, if given), once it is there
    (waited for with a deadline)."""
    def found() -> str | None:
        return next((line[:23] for line in log.read_text().splitlines()
                     if text in line and line[:23] > after), None)
    return wait_until(found, DEADLINE_S, f"{text!r} in {log.name}" + (f" after {after}"
                                                                       if after else ""))
