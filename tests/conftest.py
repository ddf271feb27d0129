"""Shared pytest fixtures: start real node processes on free loopback ports.

`start_node` starts `python -m nodes.<module> --id NAME --host 127.0.0.1
--port 0 --port-file NAME.port ...` in a temporary directory (the node binds
a port of the kernel's choosing and writes it there once it listens: no
port picked ahead that someone else could take first), waits (with a
deadline) for that file and then until the node answers the `.ping;` health
probe, and stops it at the end of the test:
SIGTERM to its process group, then SIGKILL after a grace period. When a test
fails, the log of every node it started is printed into the failure report.

`wait_until` is the one way a test waits for a condition: every polling loop
has a deadline and says what it waited for when it runs out. `wire_request`
decodes responses with the protocol's own sans-IO `ResponseDecoder`
(`unix_request`: the same through a node's Unix socket).
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from nodes.protocol.wire import ProtocolError, Response, ResponseDecoder

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_DEADLINE_S = 15.0
STOP_GRACE_S = 5.0

T = TypeVar("T")


# For what must be known before a node starts (a topology file, a backend
# not started yet, a restart on the same port), `free_port` picks a port
# below Linux's ephemeral range (32768-60999): a port the kernel handed to
# bind(0) can be taken again a moment later as the source port of some
# outgoing connection (a balancer probing its backends), and a node started
# on it then fails to bind. Ports below the range are only ever chosen here.
_TEST_PORTS = range(20000, 32000)
_handed_out: set[int] = set()


def _worker_ports() -> range:
    """This test process's share of _TEST_PORTS: under pytest-xdist (`./tahiry test
    --fast` runs two workers) each worker draws from its own slice, so two
    workers never hand out the same port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")   # "gw0", "gw1", ...
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count <= 1:
        return _TEST_PORTS
    index = int(worker[2:]) % count
    size = len(_TEST_PORTS) // count
    return range(_TEST_PORTS.start + index * size, _TEST_PORTS.start + (index + 1) * size)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, never one
    this test process handed out before."""
    while True:
        port = random.choice(_worker_ports())
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


def wire_request(port: int, text: str, host: str = "127.0.0.1",
                 timeout: float = 5.0) -> str:
    """Send raw request text, return the raw text of the first response (END line included).

    For one statement only: it stops reading once one whole response arrived.
    ConnectionError if the node closes the connection before that.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(text.encode("utf-8"))
        return read_response(sock, ResponseDecoder()).raw.decode("utf-8", errors="replace")


def unix_request(path: str | Path, text: str, timeout: float = 5.0) -> Response:
    """`wire_request` through a node's Unix socket (`--unix-socket PATH`): the first response."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(text.encode("utf-8"))
        return read_response(sock, ResponseDecoder())


def read_response(sock: socket.socket, decoder: ResponseDecoder) -> Response:
    """Read from `sock` until `decoder` completes a response: the first one."""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before a whole response")
        responses = decoder.feed(chunk)
        if responses:
            return responses[0]


def ping(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    try:
        return "PONG" in wire_request(port, ".ping;", host=host, timeout=timeout)
    except (OSError, ProtocolError):
        return False


@dataclass
class NodeProcess:
    """One node started by a test; `port` is read from its port file when first asked for."""

    name: str
    module: str
    port_file: Path
    log_path: Path
    popen: subprocess.Popen
    workdir: Path
    args: list[str] = field(default_factory=list)
    known_port: int | None = None

    @property
    def port(self) -> int:
        """The port the node listens on: waits (with a deadline) until it wrote it."""
        if self.known_port is None:
            def written() -> int | None:
                if not self.alive():
                    raise RuntimeError(f"node {self.name} exited with {self.popen.returncode} "
                                       "before it wrote its port file:\n" + self.log_text())
                try:
                    return int(self.port_file.read_text())
                except (OSError, ValueError):  # not written yet (it appears whole: a rename)
                    return None
            try:
                self.known_port = wait_until(written, READY_DEADLINE_S,
                                             f"node {self.name} to write {self.port_file.name}",
                                             interval_s=0.02)
            except AssertionError as timed_out:
                raise RuntimeError(f"{timed_out}:\n" + self.log_text()) from None
        return self.known_port

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def kill9(self) -> None:
        """Kill the node abruptly, as a crash would, and reap it."""
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def wait_ready(self, deadline_s: float = READY_DEADLINE_S) -> None:
        """Wait until the node answers `.ping;`; RuntimeError (with its log) if it exits or times out."""
        def answers() -> bool:
            if not self.alive():
                raise RuntimeError(
                    f"node {self.name} exited with {self.popen.returncode} before it was ready:\n"
                    + self.log_text())
            return ping(self.port)
        try:
            wait_until(answers, deadline_s, f"node {self.name} to answer .ping;", interval_s=0.02)
        except AssertionError as timed_out:
            raise RuntimeError(f"{timed_out}:\n" + self.log_text()) from None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"


class NodeStarter:
    """Factory behind the `start_node` fixture; remembers what it started."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.nodes: list[NodeProcess] = []

    def __call__(self, module: str, name: str, *args: str, port: int | None = None,
                 wait: bool = True, env: dict[str, str] | None = None) -> NodeProcess:
        log_path = self.workdir / f"{name}.log"
        port_file = self.workdir / f"{name}.port"
        port_file.unlink(missing_ok=True)  # a restart must not read the previous run's port
        command = [sys.executable, "-m", f"nodes.{module}", "--id", name,
                   "--host", "127.0.0.1", "--port", str(port or 0),
                   "--port-file", str(port_file), *args]
        log_file = open(log_path, "ab")
        popen = subprocess.Popen(
            command, cwd=self.workdir, stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})})
        log_file.close()
        node = NodeProcess(name, module, port_file, log_path, popen, self.workdir, list(args))
        self.nodes.append(node)
        if wait:
            node.wait_ready()
        return node

    def restart(self, node: NodeProcess, wait: bool = True) -> NodeProcess:
        """Start the same node again (same port, same arguments)."""
        node.stop()
        fresh = self(node.module, node.name, *node.args, port=node.port, wait=wait)
        return fresh

    def stop_all(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def dump_stacks(self) -> None:
        """Ask every running node for its threads' stacks (SIGUSR1: into its log)."""
        running = [n for n in self.nodes if n.popen.poll() is None]
        sizes = {}
        for node in running:
            sizes[node.name] = node.log_path.stat().st_size if node.log_path.exists() else 0
            try:
                os.kill(node.popen.pid, signal.SIGUSR1)
            except OSError:
                pass
        end = time.monotonic() + 2.0
        while time.monotonic() < end and any(
                n.log_path.stat().st_size <= sizes[n.name] for n in running if n.log_path.exists()):
            time.sleep(0.05)
        time.sleep(0.1)   # the dump is written in several pieces

    def logs(self) -> str:
        return "\n".join(f"----- log of {n.name} ({n.module}, port {n.known_port}) -----\n"
                         f"{n.log_text()}" for n in self.nodes)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)
    # A failed test that started nodes shows their logs in its own report
    # (added here, while the report is being made: a section added in a
    # fixture's teardown comes too late to be shown).
    starter = getattr(item, "node_starter", None)
    if report.failed and report.when in ("setup", "call") and starter is not None and starter.nodes:
        starter.dump_stacks()
        report.sections.append(("node logs", starter.logs()))


@pytest.fixture
def start_node(tmp_path, request):
    """Start node processes: `start_node("server", "m1", "--data", "data/m1")`."""
    starter = NodeStarter(tmp_path)
    request.node.node_starter = starter
    yield starter
    starter.stop_all()


def wait_until(predicate: Callable[[], T], timeout_s: float = 10.0, what: str = "condition",
               interval_s: float = 0.05, *, deadline_s: float | None = None) -> T:
    """Poll `predicate` until it returns a true value, which is returned.

    At the deadline: AssertionError naming `what`, the time waited and the
    predicate's last value. (`deadline_s` is the former name of `timeout_s`,
    kept while tests/supervisor/replicakit.py still passes it.)
    """
    if deadline_s is not None:
        timeout_s = deadline_s
    end = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}; "
                                 f"last value: {value!r}")
        time.sleep(interval_s)


class ManualClock:
    """A clock for unit tests that inject one: it moves only when a test sets `now`."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def public_exception_classes(package) -> list[type]:
    """Every public exception class defined in `package` (a module object) and its
    subpackages, `__main__` modules left out: for the one-root-per-layer tests."""
    found = []
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if (issubclass(value, BaseException) and value.__module__ == module.__name__
                    and not value.__name__.startswith("_")):
                found.append(value)
    return found
