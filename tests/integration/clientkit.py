"""Running `python -m nodes.client` as a user would, for the integration tests.

`client(*args, stdin=..., cwd=...)` runs it as a subprocess (with a
deadline) and returns the finished process; `json_lines` decodes what it
printed with `--format json`. `terminal(*args, cwd=...)` starts it on a
pseudo-terminal (pexpect) of a chosen size, for the interactive features.
`CuttingRelay` stands between a client and a node and cuts the connection
after forwarding a request that holds a marker, as a node killed while it
answers would. Shared by the client, chain and pipelining tests.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pexpect

from tests.conftest import REPO_ROOT


def client(*args: str, stdin: str | None = None, cwd: Path | None = None,
           env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nodes.client", *args], input=stdin if stdin is not None else "",
        capture_output=True, text=True, timeout=60, cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HOME": str(cwd or REPO_ROOT),
             **(env or {})})


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def terminal(*args: str, cwd: Path, rows: int = 24, columns: int = 80,
             env: dict | None = None) -> pexpect.spawn:
    """The client on a pseudo-terminal of rows x columns (PAGER unset unless given)."""
    environment = {key: value for key, value in os.environ.items() if key != "PAGER"}
    environment.update({"PYTHONPATH": str(REPO_ROOT), "HOME": str(cwd), "TERM": "xterm",
                        "PROMPT_TOOLKIT_NO_CPR": "1", "NO_COLOR": "1", **(env or {})})
    return pexpect.spawn(sys.executable, ["-m", "nodes.client", *args], cwd=str(cwd),
                         env=environment, dimensions=(rows, columns), encoding="utf-8",
                         timeout=20)


class CuttingRelay:
    """A TCP relay to `port` that cuts a connection once, after forwarding a request with `marker`.

    The request reaches the node (a write may be applied) but its answer
    never comes back: what a client sees when the node is killed while
    answering. Each marker cuts once (`cut(marker)` arms one); `port` is
    where clients connect.
    """

    def __init__(self, target_port: int):
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.markers: list[bytes] = []
        self.cuts = 0
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self, marker: str) -> None:
        with self.lock:
            self.markers.append(marker.encode())

    def _accept(self) -> None:
        while not self.closed:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._forward_requests, args=(downstream, upstream),
                             daemon=True).start()
            threading.Thread(target=self._copy, args=(upstream, downstream), daemon=True).start()

    def _armed(self, data: bytes) -> bool:
        with self.lock:
            for marker in self.markers:
                if marker in data:
                    self.markers.remove(marker)
                    self.cuts += 1
                    return True
        return False

    def _forward_requests(self, downstream: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := downstream.recv(65536):
                if self._armed(data):
                    # Stop relaying answers first, then let the request reach the node.
                    downstream.shutdown(socket.SHUT_RDWR)
                    upstream.sendall(data)
                    break
                upstream.sendall(data)
        except OSError:
            pass
        for sock in (downstream, upstream):
            _close(sock)

    @staticmethod
    def _copy(source: socket.socket, destination: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                destination.sendall(data)
        except OSError:
            pass
        for sock in (source, destination):
            _close(sock)

    def close(self) -> None:
        self.closed = True
        _close(self.listener)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
