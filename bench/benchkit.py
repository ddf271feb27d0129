"""What the bench scripts share: free ports, waiting for a node, one blocking wire connection.

Importing it puts the repository root on `sys.path` (the scripts run as
`python bench/X.py`, with only bench/ on the path). Responses are read with
the nodes' own sans-IO `ResponseDecoder` (nodes/protocol), never by looking
for an `END` line by hand. `decode_relations=False` keeps relation pages as
raw bytes: a benchmark of the nodes' latency should not measure the
client's JSON decoding.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nodes.protocol import ProtocolError, Response, ResponseDecoder  # noqa: E402

RECEIVE_CHUNK = 1 << 16


def free_port() -> int:
    """A loopback port nobody listens on right now (the system's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, deadline_s: float = 15.0) -> None:
    """Until something accepts connections on 127.0.0.1:`port`; SystemExit after `deadline_s`."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on port {port} after {deadline_s:g} s")


class WireConnection:
    """One blocking connection to a node; one statement at a time, answered by a `Response`."""

    def __init__(self, port: int, timeout_s: float = 30.0, decode_relations: bool = True,
                 host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = ResponseDecoder(decode_relations=decode_relations)

    def request(self, text: str) -> Response:
        """Send one statement (`;` included) and read its response."""
        self.sock.sendall(text.encode("utf-8"))
        while True:
            chunk = self.sock.recv(RECEIVE_CHUNK)
            if not chunk:
                raise ConnectionError("the node closed the connection")
            try:
                responses = self.decoder.feed(chunk)
            except ProtocolError as error:
                raise ConnectionError(f"not a wire response: {error}") from None
            if responses:
                return responses[0]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireConnection:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def request_once(port: int, text: str, timeout_s: float = 10.0) -> Response:
    """One statement on a connection of its own (an admin request, a status)."""
    with WireConnection(port, timeout_s) as connection:
        return connection.request(text)
