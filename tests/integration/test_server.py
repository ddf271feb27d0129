"""The database server as a real process on loopback: protocol, sessions, limits, robustness."""

from __future__ import annotations

import signal
import threading

import orjson
import pytest

from tests.conftest import wait_until
from tests.integration.wire import WireClient, setup_school


@pytest.fixture
def server(start_node):
    return start_node("server", "m1", "--data", "data/m1")


def test_ping_and_status_touch_no_data(server):
    with WireClient(server.port) as client:
        assert client.one(".ping;").message == "PONG m1 server"
        status = orjson.loads(client.one(".status;").message)
    assert status["id"] == "m1" and status["kind"] == "server"
    assert status["statements"] == 0 and status["connections"] >= 1
    assert not (server.workdir / "data" / "m1" / "sekoly").exists()


def test_use_message_and_relation_over_the_wire(server):
    with WireClient(server.port) as client:
        assert (client.one("manamboara tahiry sekoly;").message
                == "Ny tahiry : sekoly dia voaforona soamantsara")
        assert client.one("ampiasao sekoly;").message == "Ny tahiry : sekoly dia miasa ankehitriny"
        [shown] = client.run("asehoy ny tahiry;")
    assert shown.ok and shown.relation.rows == [["sekoly"]]
    assert [c.name for c in shown.relation.columns] == ["fanasehoana"]


def test_semicolon_inside_a_string_round_trips(server):
    with WireClient(server.port) as client:
        setup_school(client)
        assert client.one("manampia ao@ t sanda (1, 'a;b'), (2, \"c;--d\");").ok
        rows = client.one("alaivo anarana ao@ t;").relation.rows
    assert rows == [["a;b"], ["c;--d"]]


def test_each_connection_has_its_own_database(server):
    with WireClient(server.port) as first, WireClient(server.port) as second:
        setup_school(first, "db1")
        setup_school(second, "db2")
        assert first.one("manampia ao@ t sanda (1, 'one');").ok
        assert second.one("manampia ao@ t sanda (2, 'two');").ok
        assert first.one("alaivo anarana ao@ t;").relation.rows == [["one"]]
        assert second.one("alaivo anarana ao@ t;").relation.rows == [["two"]]
    with WireClient(server.port) as third:
        assert third.one("alaivo * ao@ t;").message.startswith("Hadisoana : ")


def test_pipelined_statements_are_answered_in_order(server):
    with WireClient(server.port) as client:
        setup_school(client)
        script = "".join(f"manampia ao@ t sanda ({i}, 'r{i}');" for i in range(50))
        responses = client.run(script + "alaivo count(*) ao@ t; .ping;", count=52)
    assert all(r.ok for r in responses[:50])
    assert responses[50].relation.rows == [[50]]
    assert responses[51].message == "PONG m1 server"


def test_errors_keep_the_connection_open(server):
    with WireClient(server.port) as client:
        assert client.one("alaivo ao@;").message.startswith("Hadisoana : ")
        assert client.one("zavatra tsy misy;").message.startswith("Hadisoana : ")
        assert client.one(".ping;").message == "PONG m1 server"


def test_garbage_bytes_get_errors_and_the_node_keeps_serving(server):
    with WireClient(server.port) as client:
        client.send(bytes(range(256)) * 8 + b"\xff\xfe;\x00\x01;")
        client.send(b"'\n;.ping;")
        # Whatever the garbage framed into, each piece got an error, and the
        # connection still answers.
        responses = []
        while not responses or responses[-1].message != "PONG m1 server":
            responses.extend(client.read())
        assert all(r.message.startswith("Hadisoana : ") for r in responses[:-1])
    with WireClient(server.port) as other:
        assert other.one(".ping;").message == "PONG m1 server"
    assert server.alive()


def test_ten_megabyte_request_is_refused_and_the_node_keeps_serving(server):
    with WireClient(server.port, timeout=30) as client:
        setup_school(client)
        chunk = b"x" * (1 << 20)
        sent = 0
        # Send the 10 MB in a thread: the server answers the error before the
        # request ends, and a client must be able to read while it sends.
        sender = threading.Thread(target=lambda: client.send(
            b"manampia ao@ t sanda (1, '" + chunk * 10 + b"');alaivo count(*) ao@ t;"))
        sender.start()
        first, second = client.read(2)
        sender.join(timeout=30)
        sent = 1
        assert first.message.startswith("Hadisoana : ")
        assert second.ok and second.relation.rows == [[0]]
        assert client.one(".ping;").message == "PONG m1 server"
    assert sent and server.alive()


def test_many_concurrent_connections_insert_without_losing_rows(server):
    with WireClient(server.port) as client:
        setup_school(client)
    errors: list[str] = []

    def worker(worker_id: int) -> None:
        try:
            with WireClient(server.port) as connection:
                assert connection.one("ampiasao sekoly;").ok
                for i in range(10):
                    response = connection.one(f"manampia ao@ t sanda ({worker_id * 100 + i}, 'w');")
                    if not response.ok:
                        errors.append(response.message)
        except Exception as error:  # reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with WireClient(server.port) as client:
        assert client.one("ampiasao sekoly;").ok
        assert client.one("alaivo count(*) ao@ t;").relation.rows == [[120]]


def test_connections_beyond_the_maximum_get_an_error(start_node):
    node = start_node("server", "m1", "--data", "data/m1", "--max-connections", "2")
    with WireClient(node.port) as a:
        # Readiness probes may still be counted until the server reads their EOF.
        wait_until(lambda: orjson.loads(a.one(".status;").message)["connections"] == 1, 10.0,
                   "the readiness probes' connections to close", interval_s=0.01)
        b = WireClient(node.port)
        assert b.one("asehoy ny tahiry;").ok
        with WireClient(node.port) as extra:
            assert extra.one(".ping;").message == "PONG m1 server"  # probes still work
            refused = extra.one("asehoy ny tahiry;")
            assert refused.message.startswith("Hadisoana : ")
            assert extra.closed_by_peer()
        assert a.one("asehoy ny tahiry;").ok
        b.close()


def test_idle_connections_are_closed(start_node):
    node = start_node("server", "m1", "--data", "data/m1", "--idle-timeout", "0.3")
    with WireClient(node.port, timeout=10) as client:
        assert client.one(".ping;").ok
        assert client.closed_by_peer()


def test_sigterm_stops_the_server_cleanly(server):
    with WireClient(server.port) as client:
        setup_school(client)
        server.signal(signal.SIGTERM)
        assert client.closed_by_peer()
    assert server.popen.wait(timeout=10) == 0
    assert "stopped" in server.log_text()


def test_inline_mode_serves_too(start_node):
    node = start_node("server", "m1", "--data", "data/m1", "--inline")
    with WireClient(node.port) as client:
        setup_school(client)
        assert client.one("manampia ao@ t sanda (1, 'x');").ok
        assert client.one("alaivo id ao@ t;").relation.rows == [[1]]


def test_a_server_removes_every_temp_file_left_by_a_killed_predecessor(start_node):
    data = start_node.workdir / "data" / "m1"
    debris = data / "db" / "tables" / ".t.json.0123456789ab.tmp"
    debris.parent.mkdir(parents=True)
    debris.write_bytes(b'{"format":1,"kind":"table","name":"t","change":')  # seconds old, not 60
    start_node("server", "m1", "--data", str(data))
    assert not debris.exists(), "the server holds the directory: no temp file is anyone's"
