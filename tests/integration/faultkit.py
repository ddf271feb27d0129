"""Shared helpers of the fault tests: a wire client that says what it knows, data-dir checks.

- `WireClient`: one connection speaking the wire protocol with a timeout on
  every socket operation. When the connection fails it raises
  `ConnectionLost` saying whether the statement may have been sent (then a
  write's outcome is unknown) or certainly was not (connection refused).
- `WriteLedger`: what a workload client knows about its writes:
  acknowledged, failed (an error answer), unknown (connection lost or an
  error saying the outcome is unknown).
- `object_files`, `torn_files`, `dir_differences`, `wait_converged`: the
  data directories compared object by object (temp files ignored).
- `start_process`, `stop_process`: child processes in their own process
  group, with a log file, stopped by pid (never by name).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from nodes.protocol import ProtocolError, Response, ResponseDecoder, statement_bytes
from tests.conftest import REPO_ROOT, free_port, ping

HEADER_KEYS = ("format", "kind", "name", "change", "dropped")
UNKNOWN_MARKERS = ("unknown", "tapaka ny fifandraisana")


# --------------------------------------------------------------------------
# the wire


class ConnectionLost(Exception):
    """The connection failed. `sent`: the statement may have reached the peer."""

    def __init__(self, reason: str, sent: bool, timed_out: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.sent = sent
        self.timed_out = timed_out


class WireClient:
    """One connection, one statement at a time, every socket operation bounded."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0):
        self.address = (host, port)
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._decoder = ResponseDecoder()
        self.database: str | None = None

    def connect(self) -> None:
        try:
            self._sock = socket.create_connection(self.address, timeout=self.timeout)
        except OSError as error:
            self._sock = None
            raise ConnectionLost(f"connect: {error.strerror or error}", sent=False,
                                 timed_out=isinstance(error, TimeoutError)) from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._decoder = ResponseDecoder()
        if self.database is not None:  # a new connection starts with no database
            try:
                answer = self._roundtrip(f"ampiasao {self.database}")
            except ConnectionLost as lost:  # the statement itself was not sent
                raise ConnectionLost(f"connect: lost while replaying ampiasao: {lost.reason}",
                                     sent=False, timed_out=lost.timed_out) from None
            if not answer.ok:
                self.close()
                raise ConnectionLost(f"ampiasao after reconnect: {answer.message}", sent=False)

    def execute(self, text: str) -> Response:
        """The response to one statement; ConnectionLost if the connection failed."""
        if self._sock is None:
            self.connect()
        return self._roundtrip(text)

    def use(self, database: str) -> Response:
        answer = self.execute(f"ampiasao {database}")
        if answer.ok:
            self.database = database
        return answer

    def _roundtrip(self, text: str) -> Response:
        assert self._sock is not None
        try:
            self._sock.sendall(statement_bytes(text))
            while True:
                chunk = self._sock.recv(65536)
                if not chunk:
                    raise ConnectionLost("closed by the peer", sent=True)
                responses = self._decoder.feed(chunk)
                if responses:
                    return responses[0]
        except ConnectionLost:
            self.close()
            raise
        except TimeoutError:
            self.close()
            raise ConnectionLost(f"no answer within {self.timeout:g}s", sent=True,
                                 timed_out=True) from None
        except (OSError, ProtocolError) as error:
            self.close()
            raise ConnectionLost(str(error) or type(error).__name__, sent=True) from None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def __enter__(self) -> "WireClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def rows_of(response: Response) -> list[list]:
    if not response.ok or response.relation is None:
        raise AssertionError(f"expected rows, got {response.message!r}")
    return [list(row) for row in response.relation.rows]


def outcome_unknown(message: str) -> bool:
    """Whether an error answer says the write may or may not have been applied."""
    lowered = message.lower()
    return any(marker in lowered for marker in UNKNOWN_MARKERS)


# --------------------------------------------------------------------------
# what a client knows about its writes


@dataclass
class WriteLedger:
    """Writes of one workload, by the unique key each one inserted."""

    acknowledged: set = field(default_factory=set)
    failed: dict = field(default_factory=dict)    # key -> error message
    unknown: dict = field(default_factory=dict)   # key -> reason
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ack(self, key) -> None:
        with self.lock:
            self.acknowledged.add(key)

    def fail(self, key, message: str) -> None:
        with self.lock:
            self.failed[key] = message

    def lose(self, key, reason: str) -> None:
        with self.lock:
            self.unknown[key] = reason


# --------------------------------------------------------------------------
# data directories


def object_files(root: Path) -> dict[str, bytes]:
    """Every object file under a data directory (temp files skipped): path -> bytes."""
    files = {}
    root = Path(root)
    for path in sorted(root.rglob("*.json")):
        if path.name.startswith("."):
            continue
        files[str(path.relative_to(root))] = path.read_bytes()
    return files


def temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob(".*.tmp"))


def torn_files(root: Path) -> list[str]:
    """Object files that do not parse as a document with the five header keys."""
    torn = []
    for relative, data in object_files(root).items():
        try:
            document = json.loads(data)
        except ValueError as error:
            torn.append(f"{relative}: {error}")
            continue
        if not isinstance(document, dict) or tuple(document)[:5] != HEADER_KEYS:
            torn.append(f"{relative}: not a document with the header {HEADER_KEYS}")
    return torn


def dir_differences(first: Path, second: Path) -> list[str]:
    """Object by object: what differs between two data directories (empty: identical)."""
    a, b = _stable_files(first), _stable_files(second)
    differences = []
    for relative in sorted(a.keys() | b.keys()):
        if relative not in a:
            differences.append(f"{relative}: only in {second}")
        elif relative not in b:
            differences.append(f"{relative}: only in {first}")
        elif a[relative] != b[relative]:
            changes = [_change_of(a[relative]), _change_of(b[relative])]
            differences.append(f"{relative}: differs (change {changes[0]} vs {changes[1]})")
    return differences


def _stable_files(root: Path) -> dict[str, bytes]:
    for _ in range(5):  # a file replaced while we list: list again
        try:
            return object_files(root)
        except FileNotFoundError:
            time.sleep(0.01)
    return object_files(root)


def _change_of(data: bytes):
    try:
        return json.loads(data).get("change")
    except ValueError:
        return "torn"


def wait_converged(first: Path, second: Path, deadline_s: float = 30.0,
                   settle_s: float = 0.3) -> tuple[float | None, list[str]]:
    """Seconds until both directories are identical (and stay so for settle_s).

    Returns (None, last differences) if they did not converge in time.
    """
    started = time.monotonic()
    identical_since = None
    differences: list[str] = []
    while time.monotonic() - started < deadline_s:
        differences = dir_differences(first, second)
        now = time.monotonic()
        if differences:
            identical_since = None
        elif identical_since is None:
            identical_since = now
        elif now - identical_since >= settle_s:
            return identical_since - started, []
        time.sleep(0.05)
    return None, differences


# --------------------------------------------------------------------------
# child processes


@dataclass
class Child:
    """A child process in its own process group, with its log file."""

    popen: subprocess.Popen
    log_path: Path
    port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def wait_ready(self, deadline_s: float = 15.0) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.popen.poll() is not None:
                raise RuntimeError(f"exited with {self.popen.returncode} before it was ready:\n"
                                   + self.log_text()[-3000:])
            if ping(self.port, timeout=0.5):
                return
            time.sleep(0.01)
        raise RuntimeError(f"not ready after {deadline_s}s:\n" + self.log_text()[-3000:])


def start_process(command: list[str], log_path: Path, cwd: Path, port: int | None = None) -> Child:
    log_file = open(log_path, "ab")
    try:
        popen = subprocess.Popen(command, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    finally:
        log_file.close()
    return Child(popen, log_path, port)


def stop_process(child: Child, sig: int = signal.SIGTERM, grace_s: float = 5.0) -> int:
    """Signal the child's process group; SIGKILL after the grace period; its exit code."""
    if child.popen.poll() is None:
        try:
            os.killpg(child.popen.pid, sig)
        except OSError:
            pass
        try:
            child.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(child.popen.pid, signal.SIGKILL)
            except OSError:
                pass
            child.popen.wait(timeout=10)
    return child.popen.returncode


def server_command(node_id: str, port: int, data: Path, kill_at: str | None = None) -> list[str]:
    args = ["--id", node_id, "--host", "127.0.0.1", "--port", str(port), "--data", str(data)]
    if kill_at is None:
        return [sys.executable, "-m", "nodes.server", *args]
    wrapper = Path(__file__).with_name("crashing_server.py")
    return [sys.executable, str(wrapper), "--kill-at", kill_at, "--", *args]


__all__ = ["ConnectionLost", "WireClient", "WriteLedger", "Child", "free_port", "rows_of",
           "outcome_unknown", "object_files", "temp_files", "torn_files", "dir_differences",
           "wait_converged", "start_process", "stop_process", "server_command"]
