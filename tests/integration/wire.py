"""Talking to node processes over the wire protocol, for integration tests.

Shared by the integration tests of the server, balancer, proxy cache and
failover, with `start_balanced_pair` (two servers behind a balancer),
`ClientPool` (the connections a test opens, closed at its end) and
`tables_owned_by` (table names the balancer routes to a given server).

`WireClient` is one blocking TCP connection (every operation bounded by the
socket timeout) that decodes responses with the real `ResponseDecoder`:
`one()` for a statement's response, `ok()` when it must succeed, `rows()`
for its relation, `send()`/`read()` for raw bytes and pipelining.
"""

from __future__ import annotations

import json
import socket

from nodes.balancer.routing import owner_of
from nodes.protocol.wire import Response, ResponseDecoder

TIMEOUT_S = 10.0


class WireClient:
    """One blocking TCP connection (with timeouts) speaking the wire protocol."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT_S):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.decoder = ResponseDecoder()
        self.ready: list[Response] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, count: int = 1) -> list[Response]:
        while len(self.ready) < count:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError(f"closed after {len(self.ready)} of {count} responses")
            self.ready.extend(self.decoder.feed(chunk))
        taken, self.ready = self.ready[:count], self.ready[count:]
        return taken

    def run(self, text: str, count: int = 1) -> list[Response]:
        """Send `text` and read `count` responses (one per statement in it)."""
        self.send(text.encode("utf-8"))
        return self.read(count)

    def one(self, statement: str) -> Response:
        return self.run(statement)[0]

    def ok(self, statement: str) -> Response:
        response = self.one(statement)
        assert response.ok, f"{statement!r} -> {response.message}"
        return response

    def rows(self, statement: str) -> list[list]:
        response = self.ok(statement)
        assert response.relation is not None, response.message
        return response.relation.rows

    def status(self) -> dict:
        """The node's `.status;` counters."""
        return json.loads(self.ok(".status;").message)

    def closed_by_peer(self) -> bool:
        """Wait (up to the socket timeout) for the peer to close the connection."""
        try:
            while True:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    return True
                self.ready.extend(self.decoder.feed(chunk))
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def create_and_use(client: WireClient, database: str) -> None:
    """Create `database` and make it the session's current one."""
    client.ok(f"manamboara tahiry {database};")
    client.ok(f"ampiasao {database};")


def setup_school(client: WireClient, database: str = "sekoly") -> None:
    """`database` with a table t (id ISA, anarana LAHATSORATRA), selected."""
    create_and_use(client, database)
    client.ok("manamboara tabilao t (id ISA(null,null), anarana LAHATSORATRA(null,null));")


def start_balanced_pair(start_node, *balancer_args: str):
    """Servers m1 and m2 (no replication) behind balancer lb probing every 100 ms."""
    m1 = start_node("server", "m1", "--data", "data/m1")
    m2 = start_node("server", "m2", "--data", "data/m2")
    lb = start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{m1.port}",
                    "--backend", f"m2=127.0.0.1:{m2.port}", "--probe-interval-ms", "100",
                    "--probe-timeout-ms", "500", *balancer_args)
    return m1, m2, lb


def tables_owned_by(owner: str, database: str, count: int = 1,
                    servers: tuple[str, ...] = ("m1", "m2")) -> list[str]:
    """The first `count` names t0, t1, ... whose owner among `servers` is `owner`."""
    names = (f"t{i}" for i in range(1000))
    return [n for n in names if owner_of(database, n, list(servers)) == owner][:count]


class ClientPool:
    """Opens WireClients (to `default_port` unless told) and closes them all on exit."""

    def __init__(self, default_port: int):
        self.default_port = default_port
        self.clients: list[WireClient] = []

    def __call__(self, port: int | None = None) -> WireClient:
        client = WireClient(port if port is not None else self.default_port)
        self.clients.append(client)
        return client

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc) -> None:
        for client in self.clients:
            client.close()
