"""The load balancer with real server processes: routing, sessions, DDL, backends file.

There is no supervisor here, hence no replication between m1 and m2: a
write lands only on the server that took it, which makes routing visible.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nodes.balancer.routing import owner_of
from tests.conftest import REPO_ROOT, wait_until
from tests.integration.wire import (
    ClientPool,
    WireClient,
    create_and_use,
    start_balanced_pair,
    tables_owned_by,
)


def publish_backends(backends, *servers) -> None:
    """Replace the balancer's backends file (atomically) by `servers`, all writable."""
    temp = backends.with_name(backends.name + ".tmp")
    temp.write_text(json.dumps({"backends": [
        {"id": s.name, "host": "127.0.0.1", "port": s.port, "writable": True} for s in servers]}))
    os.replace(temp, backends)


@pytest.fixture
def cluster(start_node):
    m1, m2, lb = start_balanced_pair(start_node)
    with ClientPool(lb.port) as connect:
        yield m1, m2, lb, connect


def test_ping_and_status_are_answered_by_the_balancer(cluster):
    _, _, _, connect = cluster
    client = connect()
    assert client.ok(".ping;").message == "PONG lb balancer"
    status = client.status()
    assert status["kind"] == "balancer"
    assert {b: s["state"] for b, s in status["backends"].items()} == {"m1": "ONLINE", "m2": "ONLINE"}



def test_the_balancer_counts_its_client_connections(cluster):
    """Bug: its `.status;` said `connections: 0, connections_total: 0` with clients
    connected (`tahiry_node_open_connections` and the page's "0 conn" with them)."""
    _, _, _, connect = cluster
    first, second = connect(), connect()
    second.ok(".ping;")   # (accepted by now)
    status = first.status()
    assert (status["connections"], status["clients"]) == (2, 2)
    assert status["connections_total"] >= 2
    second.sock.close()
    wait_until(lambda: first.status()["connections"] == 1, 5.0, "the closed connection counted")
    assert first.status()["connections_total"] >= 2

def test_create_database_reaches_every_server(cluster):
    m1, m2, _, connect = cluster
    connect().ok("manamboara tahiry sekoly;")
    for server in (m1, m2):
        assert connect(server.port).one("ampiasao sekoly;").ok


def test_writes_go_to_the_owner_and_the_writer_reads_them_back(cluster):
    m1, m2, _, connect = cluster
    client = connect()
    create_and_use(client, "db")
    tables = tables_owned_by("m1", "db", 2) + tables_owned_by("m2", "db", 2)
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
    create_and_use(client, "db")
    client.ok("manamboara tabilao t (a ISA(null,null));")
    response = client.one("ampiasao tsisy;")
    assert not response.ok and "tsisy" in response.message
    client.ok("manampia ao@ t sanda (7);")
    assert client.rows("alaivo * ao@ t;") == [[7]]


def test_a_write_sent_right_behind_ampiasao_runs_in_the_new_database(cluster):
    """`ampiasao b;` and a write in one chunk (what `./tahiry client -e ... -e ...` sends).

    The write used to be sent at once (the fast path of an idle session)
    while `ampiasao b` had not taken its turn yet: in the database before it,
    on a connection to its owner that had that one selected.
    """
    m1, m2, _, connect = cluster
    client = connect()
    client.ok("manamboara tahiry dba;")
    client.ok("manamboara tahiry dbb;")
    client.ok("ampiasao dba;")
    # A write in dba on each server: both of the session's connections have dba selected.
    before = tables_owned_by("m1", "dba") + tables_owned_by("m2", "dba")
    for table in before:
        client.ok(f"manamboara tabilao {table} (a ISA(null,null));")
    created = tables_owned_by("m1", "dbb", 2) + tables_owned_by("m2", "dbb", 2)
    for table in created:
        client.send(b"ampiasao dba;")
        assert client.read()[0].ok
        client.send(f"ampiasao dbb;manamboara tabilao {table} (a ISA(null,null));".encode())
        used, made = client.read(2)
        assert used.ok and made.ok, made.message
    for server in (m1, m2):
        direct = connect(server.port)
        direct.ok("ampiasao dbb;")
        listed = {row[0] for row in direct.rows("asehoy ny tabilao;")}
        assert listed == {t for t in created if owner_of("dbb", t, ["m1", "m2"]) == server.name}
        direct.ok("ampiasao dba;")
        listed = {row[0] for row in direct.rows("asehoy ny tabilao;")}
        assert listed == {t for t in before if owner_of("dba", t, ["m1", "m2"]) == server.name}


def test_two_clients_in_different_databases_never_see_each_others_results(cluster):
    _, _, _, connect = cluster
    alice, bob = connect(), connect()
    for client, database, value in ((alice, "dba", 1), (bob, "dbb", 2)):
        create_and_use(client, database)
        client.ok("manamboara tabilao t (a ISA(null,null));")
        client.ok(f"manampia ao@ t sanda ({value});")
    for _ in range(20):  # interleaved over the same backends
        assert alice.rows("alaivo a ao@ t;") == [[1]]
        assert bob.rows("alaivo a ao@ t;") == [[2]]
        assert alice.rows("asehoy ny tabilao;") == [["t"]]
    # A fresh session with no database must not inherit anyone's.
    stranger = connect()
    response = stranger.one("alaivo a ao@ t;")
    assert not response.ok


def test_dropping_the_current_database_unselects_it(cluster):
    m1, m2, _, connect = cluster
    client = connect()
    create_and_use(client, "db")
    client.ok("ravao ny tahiry db;")
    response = client.one("manamboara tabilao t (a ISA(null,null));")
    assert not response.ok
    for server in (m1, m2):
        assert not connect(server.port).one("ampiasao db;").ok


def test_partial_database_ddl_names_the_failing_server(cluster):
    _, m2, _, connect = cluster
    (m2.workdir / "data" / "m2" / "efa").write_text("a file where the folder would go")
    response = connect().one("manamboara tahiry efa;")
    assert not response.ok and "m2: " in response.message and "vita tamin'ny: m1" in response.message


def test_database_ddl_already_done_on_a_server_is_not_a_failure(cluster):
    """A server that already holds the outcome (with replication: a copy was
    faster than the broadcast) completes the statement, it does not fail it."""
    m1, m2, _, connect = cluster
    connect(m1.port).ok("manamboara tahiry efa;")  # exists on m1 only
    connect().ok("manamboara tahiry efa;")
    connect(m2.port).ok("ampiasao efa;")
    connect(m2.port).ok("ravao ny tahiry efa;")  # now on m1 only again
    connect().ok("ravao ny tahiry efa;")
    for server in (m1, m2):
        assert not connect(server.port).one("ampiasao efa;").ok


def test_syntax_errors_are_answered_and_the_session_goes_on(cluster):
    _, _, _, connect = cluster
    client = connect()
    response = client.one("alaivo * ao@ ;")
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
        with WireClient(m2.port) as direct:
            assert not direct.one("ampiasao db;").ok  # DDL skipped the read-only one
        client.ok("ampiasao db;")
        for table in tables_owned_by("m2", "db", 3):
            client.ok(f"manamboara tabilao {table} (a ISA(null,null));")
        assert client.status()["backends"]["m2"]["writes"] == 0
    finally:
        client.close()


def test_backends_file_changes_are_picked_up_without_restart(start_node, tmp_path):
    m1 = start_node("server", "m1", "--data", "data/m1")
    m2 = start_node("server", "m2", "--data", "data/m2")
    backends = tmp_path / "backends.json"
    publish_backends(backends, m1)
    lb = start_node("balancer", "lb", "--backends-file", str(backends), "--probe-interval-ms", "100")
    client = WireClient(lb.port)
    try:
        assert set(client.status()["backends"]) == {"m1"}
        publish_backends(backends, m1, m2)
        wait_until(lambda: client.status()["backends"].get("m2", {}).get("state") == "ONLINE",
                   what="m2 to join")
        for _ in range(6):
            client.ok("asehoy ny tahiry;")
        assert client.status()["backends"]["m2"]["reads"] > 0
        publish_backends(backends, m2)
        wait_until(lambda: set(client.status()["backends"]) == {"m2"}, what="m1 to leave")
        backends.write_text("{not json")  # a broken file keeps the current set
        wait_until(lambda: "keeping the current backends" in lb.log_text(), what="the bad file")
        client.ok("asehoy ny tahiry;")
        assert set(client.status()["backends"]) == {"m2"}
    finally:
        client.close()


def test_a_server_back_in_the_pool_does_not_make_a_second_create_or_drop_succeed(start_node, tmp_path):
    """A database created (dropped) through this balancer while m2 was out of the
    pool: once m2 is back without that change, the same statement again is refused
    as it is on m1, not counted done because m2 alone still applies it."""
    m1 = start_node("server", "m1", "--data", "data/m1")
    m2 = start_node("server", "m2", "--data", "data/m2")
    backends = tmp_path / "backends.json"

    def pool_is(*servers):
        states = client.status()["backends"]
        return set(states) == {s.name for s in servers} and all(
            state["state"] == "ONLINE" for state in states.values())

    publish_backends(backends, m1)
    lb = start_node("balancer", "lb", "--backends-file", str(backends), "--probe-interval-ms", "100")
    client = WireClient(lb.port)
    try:
        for statement, refusal in (
                ("manamboara tahiry kilasy;", "Hadisoana : Ny tahiry (kilasy) dia efa misy"),
                ("ravao ny tahiry kilasy;", "Hadisoana : Tsy misy ny tahiry : kilasy")):
            publish_backends(backends, m1)
            wait_until(lambda: pool_is(m1), what="m2 out of the pool")
            client.ok(statement)                         # m1 only
            publish_backends(backends, m1, m2)
            wait_until(lambda: pool_is(m1, m2), what="m2 back in the pool")
            again = client.one(statement)
            assert not again.ok and again.message == refusal, again.message
    finally:
        client.close()


def test_bad_command_line_exits_with_a_clear_message(start_node):
    result = subprocess.run([sys.executable, "-m", "nodes.balancer", "--id", "lb", "--port", "1",
                             "--backend", "m1=nowhere"], capture_output=True, text=True, timeout=30,
                            cwd=REPO_ROOT)
    assert result.returncode == 2
    assert "ID=HOST:PORT" in result.stderr


def test_a_write_whose_owner_lacks_the_database_goes_to_a_server_that_has_it(cluster):
    """The owner may not have the session's database yet (created just before
    a server joined, replication still copying its marker): the write waits
    a moment, then goes to the next owner instead of failing."""
    m1, _, _, connect = cluster
    connect(m1.port).ok("manamboara tahiry vao;")  # on m1 only: m2 never gets it here
    client = connect()
    client.ok("ampiasao vao;")
    [table] = tables_owned_by("m2", "vao")
    client.ok(f"manamboara tabilao {table} (a ISA(0,9));")
    client.ok(f"manampia ao@ {table} sanda (1);")
    assert client.rows(f"alaivo * ao@ {table};") == [[1]]
