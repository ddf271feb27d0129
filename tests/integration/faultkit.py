"""Shared helpers of the fault tests: a wire client that says what it knows, data-dir checks.

- `WireClient`: one connection speaking the wire protocol with a timeout on
  every socket operation. When the connection fails it raises
  `ConnectionLost` saying whether the statement may have been sent (then a
  write's outcome is unknown) or certainly was not (connection refused).
- `WriteLedger`: what a workload client knows about its writes:
  acknowledged, failed (an error answer), unknown (connection lost or an
  error saying the outcome is unknown).
- `logical_objects`, `torn_files`, `torn_tails`, `dir_differences`, `wait_converged`: the
  data directories compared object by object, logically: each object's
  version and document as a store reads it (snapshot plus chained journal
  entries, engine/storage/object_state.py; without the `format` key), since two
  servers may hold one version as a snapshot and a journal on one side and
  a checkpointed snapshot on the other (temp files ignored).
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

from engine.storage.journal import JournalError
from engine.storage.object_format import InvalidDocument
from engine.storage.object_state import materialize, without_format
from nodes.protocol.wire import ProtocolError, Response, ResponseDecoder, statement_bytes
from supervisor.objectfiles import list_object_files
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

    def __enter__(self) -> WireClient:
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


@dataclass(frozen=True)
class LogicalObject:
    """One object of a data directory as a store reads it."""

    version: int | None        # None: it does not read
    document: dict | None      # at that version, without its `format` key
    problem: str | None        # why it does not read, or what is damaged past its version
    # A torn journal tail after the version (a crash mid-append, cut at the owner's next
    # start): no problem, and not part of the object (two copies compare without it).
    torn: bool = field(default=False, compare=False)

    def describe(self) -> str:
        return f"change {self.version}" if self.problem is None else self.problem


def logical_objects(root: Path) -> dict[str, LogicalObject]:
    """Every object of a data directory (no symlink followed): path -> its version and document.

    A torn journal tail (a crash in the middle of an append) is no problem:
    the owner cuts it, and the version is the part before it.
    """
    found = {}
    for relative in sorted(list_object_files(Path(root))):
        try:
            copy = materialize(Path(root), relative)
        except (InvalidDocument, JournalError) as error:
            found[relative] = LogicalObject(None, None, f"torn: {error}")
            continue
        if copy is None:
            raise FileNotFoundError(relative)  # gone while listed: list again
        problem = f"damaged journal: {copy.damaged}" if copy.damaged else None
        found[relative] = LogicalObject(copy.version, without_format(copy.document), problem,
                                        copy.torn)
    return found


def temp_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob(".*.tmp"))


def torn_files(root: Path) -> list[str]:
    """Objects that do not read whole: a snapshot that is no document with the five header keys
    first, or a damaged journal (not a torn tail: see `logical_objects`)."""
    torn = [f"{relative}: {found.problem}"
            for relative, found in _stable_objects(root).items() if found.problem is not None]
    for relative in sorted(list_object_files(Path(root))):
        try:
            document = json.loads((Path(root) / relative).read_bytes())
        except (ValueError, OSError):
            continue  # reported above
        if not isinstance(document, dict) or tuple(document)[:5] != HEADER_KEYS:
            torn.append(f"{relative}: not a document with the header {HEADER_KEYS}")
    return torn


def torn_tails(root: Path) -> list[str]:
    """The objects whose journal ends with a torn tail (allowed until the owner starts again)."""
    return [relative for relative, found in _stable_objects(root).items() if found.torn]


def dir_differences(first: Path, second: Path) -> list[str]:
    """Object by object: what differs logically between two data directories (empty: the same)."""
    a, b = _stable_objects(first), _stable_objects(second)
    differences = []
    for relative in sorted(a.keys() | b.keys()):
        if relative not in a:
            differences.append(f"{relative}: only in {second}")
        elif relative not in b:
            differences.append(f"{relative}: only in {first}")
        elif a[relative] != b[relative]:
            differences.append(f"{relative}: differs ({a[relative].describe()} vs "
                               f"{b[relative].describe()})")
    return differences


def _stable_objects(root: Path) -> dict[str, LogicalObject]:
    for _ in range(5):  # a file replaced or removed while we read: read again
        try:
            return logical_objects(root)
        except OSError:
            time.sleep(0.01)
    return logical_objects(root)


def wait_converged(first: Path, second: Path, deadline_s: float = 30.0,
                   settle_s: float = 0.3) -> tuple[float | None, list[str]]:
    """Seconds until both directories hold the same objects (and stay so for settle_s).

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


def server_command(node_id: str, port: int, data: Path, kill_at: str | None = None,
                   server_args: tuple[str, ...] = (), harness_args: tuple[str, ...] = ()) -> list[str]:
    """A server's command line; with `kill_at`, under crashing_server.py (`harness_args`: its own)."""
    args = ["--id", node_id, "--host", "127.0.0.1", "--port", str(port), "--data", str(data),
            *server_args]
    if kill_at is None:
        return [sys.executable, "-m", "nodes.server", *args]
    wrapper = Path(__file__).with_name("crashing_server.py")
    return [sys.executable, str(wrapper), "--kill-at", kill_at, *harness_args, "--", *args]


__all__ = ["ConnectionLost", "WireClient", "WriteLedger", "Child", "free_port", "rows_of",
           "outcome_unknown", "LogicalObject", "logical_objects", "temp_files", "torn_files",
           "torn_tails",
           "dir_differences", "wait_converged", "start_process", "stop_process",
           "server_command"]
