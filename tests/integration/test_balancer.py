"""The load balancer with real server processes: routing, sessions, DDL, backends file.

There is no supervisor here, hence no replication between m1 and m2: a
write lands only on the server that took it, which makes routing visible.
"""

from __future__ import annotations

import json
import os
import socket
import time

import pytest

from nodes.protocol import Response, ResponseDecoder
from nodes.routing import owner_of

TIMEOUT_S = 10.0


class WireClient:
    """A blocking test client: one connection, one statement at a time."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        self.decoder = ResponseDecoder()

    def run(self, statement: str) -> Response:
        self.sock.sendall(statement.encode("utf-8"))
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed")
            responses = self.decoder.feed(data)
            if responses:
                assert len(responses) == 1
                return responses[0]

    def ok(self, statement: str) -> Response:
        response = self.run(statement)
        assert response.ok, f"{statement!r} -> {response.message}"
        return response

    def rows(self, statement: str) -> list[list]:
        response = self.ok(statement)
        assert response.relation is not None, response.message
        return response.relation.rows

    def status(self) -> dict:
        return json.loads(self.ok(".status;").message)

    def close(self) -> None:
        self.sock.close()


def wait_until(predicate, deadline_s: float = 10.0, what: str = "condition"):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start_cluster(start_node, *extra_lb_args: str):
    m1 = start_node("server", "m1", "--data", "data/m1")
    m2 = start_node("server", "m2", "--data", "data/m2")
    lb = start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{m1.port}",
                    "--backend", f"m2=127.0.0.1:{m2.port}", "--probe-interval-ms", "100",
                    "--probe-timeout-ms", "500", *extra_lb_args)
    return m1, m2, lb


@pytest.fixture
def cluster(start_node):
    m1, m2, lb = start_cluster(start_node)
    clients: list[WireClient] = []

    def connect(port: int = lb.port) -> WireClient:
        client = WireClient(port)
        clients.append(client)
        return client

    yield m1, m2, lb, connect
    for client in clients:
        client.close()


def table_names_with_owner(owner: str, database: str, count: int) -> list[str]:
    names = (f"t{i}" for i in range(1000))
    return [n for n in names if owner_of(database, n, ["m1", "m2"]) == owner][:count]


def test_ping_and_status_are_answered_by_the_balancer(cluster):
    _, _, _, connect = cluster
    client = connect()
    assert client.ok(".ping;").message == "PONG lb balancer"
    status = client.status()
    assert status["kind"] == "balancer"
    assert {b: s["state"] for b, s in status["backends"].items()} == {"m1": "ONLINE", "m2": "ONLINE"}


def test_create_database_reaches_every_server(cluster):
    m1, m2, _, connect = cluster
    connect().ok("manamboara tahiry sekoly;")
    for server in (m1, m2):
        assert connect(server.port).run("ampiasao sekoly;").ok


def test_writes_go_to_the_owner_and_the_writer_reads_them_back(cluster):
    m1, m2, _, connect = cluster
    client = connect()
    client.ok("manamboara tahiry db;")
    client.ok("ampiasao db;")
    tables = table_names_with_owner("m1", "db", 2) + table_names_with_owner("m2", "db", 2)
    for value, table in enumerate(tables):
        client.ok(f"manamboara tabilao {table} (a ISA(null,null));")
        client.ok(f"manampia ao@ {table} sanda ({value});")
    # Read-your-writes, although each table exists on one server only.
    for value, table in enumerate(tables):
        assert client.rows(f"alaivo a ao@ {table};") == [[value]]
    for server in (m1, m2):
        direct = connect(server.port)
        direct.ok("ampiasao db;")
        listed = {row[0] for row in direct.rows("asehoy ny tabilao;")}
        assert listed == {t for t in tables if owner_of("db", t, ["m1", "m2"]) == server.name}


def test_use_of_a_missing_database_fails_and_keeps_the_current_one(cluster):
    _, _, _, connect = cluster
    client = connect()
    client.ok("manamboara tahiry db;")
    client.ok("ampiasao db;")
    client.ok("manamboara tabilao t (a ISA(null,null));")
    response = client.run("ampiasao tsisy;")
    assert not response.ok and "tsisy" in response.message
    client.ok("manampia ao@ t sanda (7);")
    assert client.rows("alaivo * ao@ t;") == [[7]]


def test_two_clients_in_different_databases_never_see_each_others_results(cluster):
    _, _, _, connect = cluster
    alice, bob = connect(), connect()
    for client, database, value in ((alice, "dba", 1), (bob, "dbb", 2)):
        client.ok(f"manamboara tahiry {database};")
        client.ok(f"ampiasao {database};")
        client.ok("manamboara tabilao t (a ISA(null,null));")
        client.ok(f"manampia ao@ t sanda ({value});")
    for _ in range(20):  # interleaved over the same backends
        assert alice.rows("alaivo a ao@ t;") == [[1]]
        assert bob.rows("alaivo a ao@ t;") == [[2]]
        assert alice.rows("asehoy ny tabilao;") == [["t"]]
    # A fresh session with no database must not inherit anyone's.
    stranger = connect()
    response = stranger.run("alaivo a ao@ t;")
    assert not response.ok


def test_dropping_the_current_database_unselects_it(cluster):
    m1, m2, _, connect = cluster
    client = connect()
    client.ok("manamboara tahiry db;")
    client.ok("ampiasao db;")
    client.ok("ravao ny tahiry db;")
    response = client.run("manamboara tabilao t (a ISA(null,null));")
    assert not response.ok
    for server in (m1, m2):
        assert not connect(server.port).run("ampiasao db;").ok


def test_partial_database_ddl_names_the_failing_server(cluster):
    m1, _, _, connect = cluster
    connect(m1.port).ok("manamboara tahiry efa;")  # exists on m1 only
    response = connect().run("manamboara tahiry efa;")
    assert not response.ok and "m1" in response.message


def test_syntax_errors_are_answered_and_the_session_goes_on(cluster):
    _, _, _, connect = cluster
    client = connect()
    response = client.run("alaivo * ao@ ;")
    assert response.message.startswith("Hadisoana : ")
    client.ok("manamboara tahiry db;")
    assert client.ok("ampiasao db;").message == "Ny tahiry : db dia miasa ankehitriny"


def test_read_only_backend_gets_no_writes(start_node, tmp_path):
    m1 = start_node("server", "m1", "--data", "data/m1")
    m2 = start_node("server", "m2", "--data", "data/m2")
    backends = tmp_path / "backends.json"
    backends.write_text(json.dumps({"backends": [
        {"id": "m1", "host": "127.0.0.1", "port": m1.port, "writable": True},
        {"id": "m2", "host": "127.0.0.1", "port": m2.port, "writable": False}]}))
    lb = start_node("balancer", "lb", "--backends-file", str(backends), "--probe-interval-ms", "100")
    client = WireClient(lb.port)
    try:
        client.ok("manamboara tahiry db;")
        assert not WireClient(m2.port).run("ampiasao db;").ok  # DDL skipped the read-only one
        client.ok("ampiasao db;")
        for table in table_names_with_owner("m2", "db", 3):
            client.ok(f"manamboara tabilao {table} (a ISA(null,null));")
        assert client.status()["backends"]["m2"]["writes"] == 0
    finally:
        client.close()


def test_backends_file_changes_are_picked_up_without_restart(start_node, tmp_path):
    m1 = start_node("server", "m1", "--data", "data/m1")
    m2 = start_node("server", "m2", "--data", "data/m2")
    backends = tmp_path / "backends.json"

    def publish(*servers):
        temp = tmp_path / "backends.json.tmp"
        temp.write_text(json.dumps({"backends": [
            {"id": s.name, "host": "127.0.0.1", "port": s.port, "writable": True} for s in servers]}))
        os.replace(temp, backends)

    publish(m1)
    lb = start_node("balancer", "lb", "--backends-file", str(backends), "--probe-interval-ms", "100")
    client = WireClient(lb.port)
    try:
        assert set(client.status()["backends"]) == {"m1"}
        publish(m1, m2)
        wait_until(lambda: client.status()["backends"].get("m2", {}).get("state") == "ONLINE",
                   what="m2 to join")
        for _ in range(6):
            client.ok("asehoy ny tahiry;")
        assert client.status()["backends"]["m2"]["reads"] > 0
        publish(m2)
        wait_until(lambda: set(client.status()["backends"]) == {"m2"}, what="m1 to leave")
        backends.write_text("{not json")  # a broken file keeps the current set
        wait_until(lambda: "keeping the current backends" in lb.log_text(), what="the bad file")
        client.ok("asehoy ny tahiry;")
        assert set(client.status()["backends"]) == {"m2"}
    finally:
        client.close()


def test_backend_options_and_file_are_validated():
    from nodes.balancer import BackendSpec, parse_backend_option, parse_backends_document

    assert parse_backend_option("m1=127.0.0.1:3948") == BackendSpec("m1", "127.0.0.1", 3948)
    for bad in ("m1", "m1=host", "=h:1", "m1=h:0", "m1=h:x"):
        with pytest.raises(ValueError, match="--backend"):
            parse_backend_option(bad)
    good = '{"backends":[{"id":"m1","host":"h","port":1,"writable":false}]}'
    assert parse_backends_document(good) == [BackendSpec("m1", "h", 1, False)]
    for bad, where in (("[]", "backends"), ('{"backends":[{"id":"m1","host":"h"}]}', "port"),
                       ('{"backends":[{"id":"m1","host":"h","port":1,"writable":"yes"}]}', "writable"),
                       ('{"backends":[{"id":"a","host":"h","port":1},{"id":"a","host":"h","port":2}]}',
                        "twice"), ("{", "JSON")):
        with pytest.raises(ValueError, match=where):
            parse_backends_document(bad)


def test_bad_command_line_exits_with_a_clear_message(start_node):
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    result = subprocess.run([sys.executable, "-m", "nodes.balancer", "--id", "lb", "--port", "1",
                             "--backend", "m1=nowhere"], capture_output=True, text=True, timeout=30,
                            cwd=REPO_ROOT)
    assert result.returncode == 2
    assert "ID=HOST:PORT" in result.stderr
