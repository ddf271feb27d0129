"""Failover with real processes: kill -9 or freeze a server under reads and writes.

No supervisor, hence no replication: data that must survive a server's
death is created on both servers directly before the balancer is used.
"""

from __future__ import annotations

import signal
import threading
from collections import Counter

import pytest

from nodes.balancer.routing import owner_of
from tests.conftest import wait_until
from tests.integration.wire import WireClient, create_and_use, start_balanced_pair

pytestmark = pytest.mark.slow  # kills under load and health transitions

ROWS = [[i, f"v{i}"] for i in range(5)]


def seed_both(*servers, tables=("t",)):
    """The same database, tables and rows on every server, written directly."""
    for server in servers:
        client = WireClient(server.port)
        try:
            create_and_use(client, "db")
            for table in tables:
                client.ok(f"manamboara tabilao {table} (a ISA(null,null), b LAHATSORATRA(null,null));")
                values = ", ".join(f"({a}, '{b}')" for a, b in ROWS)
                client.ok(f"manampia ao@ {table} sanda {values};")
        finally:
            client.close()


def backend_state(client: WireClient, backend: str) -> str:
    return client.status()["backends"][backend]["state"]


def test_kill_9_during_reads_loses_no_read_and_the_restarted_server_is_used_again(start_node):
    m1, m2, lb = start_balanced_pair(start_node)
    seed_both(m1, m2)
    readers = [WireClient(lb.port) for _ in range(3)]
    failures: list[str] = []
    reads = Counter()
    stop = threading.Event()

    def read_loop(client: WireClient, name: int) -> None:
        client.ok("ampiasao db;")
        while not stop.is_set():
            response = client.one("alaivo a, b ao@ t;")
            if not response.ok or response.relation.rows != ROWS:
                failures.append(response.message)
            reads[name] += 1

    threads = [threading.Thread(target=read_loop, args=(c, i)) for i, c in enumerate(readers)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: sum(reads.values()) >= 60, what="reads before the kill")
        m2.kill9()
        before = sum(reads.values())
        wait_until(lambda: sum(reads.values()) >= before + 150, what="reads after the kill")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert failures == []
    probe = WireClient(lb.port)
    try:
        wait_until(lambda: backend_state(probe, "m2") == "OFFLINE", what="m2 OFFLINE")
        restarted = start_node.restart(m2)
        assert restarted.port == m2.port
        wait_until(lambda: backend_state(probe, "m2") == "ONLINE", what="m2 ONLINE again")
        reads_on_m2 = probe.status()["backends"]["m2"]["reads"]
        probe.ok("ampiasao db;")
        for _ in range(10):
            assert probe.rows("alaivo a, b ao@ t;") == ROWS
        assert probe.status()["backends"]["m2"]["reads"] > reads_on_m2
        assert probe.status()["counters"]["failovers"] >= 1
    finally:
        probe.close()
        for client in readers:
            client.close()


def test_kill_9_during_writes_keeps_every_acknowledged_write(start_node):
    m1, m2, lb = start_balanced_pair(start_node)
    tables = ("w0", "w1", "w2", "w3")
    seed_both(m1, m2, tables=tables)
    assert {owner_of("db", t, ["m1", "m2"]) for t in tables} == {"m1", "m2"}
    acknowledged: list[int] = []
    unknown: list[int] = []
    unexpected: list[str] = []

    def write_loop(first: int) -> None:
        writer = WireClient(lb.port)
        try:
            writer.ok("ampiasao db;")
            for value in range(first, first + 80):
                response = writer.one(f"manampia ao@ {tables[value % 4]} sanda ({value}, 'x');")
                if response.ok:
                    acknowledged.append(value)
                elif "unknown" in response.message:
                    unknown.append(value)
                else:
                    unexpected.append(response.message)
        finally:
            writer.close()

    writers = [threading.Thread(target=write_loop, args=(1000 * (i + 1),)) for i in range(3)]
    for thread in writers:
        thread.start()
    wait_until(lambda: len(acknowledged) >= 40, what="writes before the kill")
    m1.kill9()
    for thread in writers:
        thread.join(timeout=60)
    assert unexpected == []
    assert len(unknown) <= len(writers)  # at most the one in flight per writer
    assert len(acknowledged) + len(unknown) == 3 * 80
    restarted = start_node.restart(m1)
    found: Counter[int] = Counter()
    for server in (restarted, m2):
        direct = WireClient(server.port)
        try:
            direct.ok("ampiasao db;")
            for table in tables:
                found.update(a for a, _ in direct.rows(f"alaivo a, b ao@ {table};") if a >= 1000)
        finally:
            direct.close()
    for value in acknowledged:
        assert found[value] == 1, f"acknowledged write {value} found {found[value]} times"
    for value in unknown:
        assert found[value] <= 1  # never applied twice


def test_frozen_server_is_skipped_and_reads_do_not_fail(start_node):
    m1, m2, lb = start_balanced_pair(start_node)
    seed_both(m1, m2)
    client = WireClient(lb.port)
    try:
        client.ok("ampiasao db;")
        m2.signal(signal.SIGSTOP)
        try:
            for _ in range(30):
                assert client.rows("alaivo a, b ao@ t;") == ROWS
            wait_until(lambda: backend_state(client, "m2") == "OFFLINE", what="m2 OFFLINE")
        finally:
            m2.signal(signal.SIGCONT)
        wait_until(lambda: backend_state(client, "m2") == "ONLINE", what="m2 back")
        assert client.status()["counters"]["retries"] >= 1
    finally:
        client.close()


class VanishingServer:
    """A fake backend that answers probes and `ampiasao`, and dies on a write.

    It counts the writes it received, so a test can tell whether the balancer
    sent a write twice.
    """

    def __init__(self, name: str):
        import socket as socket_module

        self.name = name
        self.writes_received = 0
        self.listener = socket_module.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn) -> None:
        from nodes.protocol.wire import encode_message

        with conn:
            buffer = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
                while b";" in buffer:
                    statement, buffer = buffer.split(b";", 1)
                    text = statement.decode().strip()
                    if text == ".ping":
                        conn.sendall(encode_message(f"PONG {self.name} server"))
                    elif text.startswith("ampiasao"):
                        conn.sendall(encode_message(f"Ny tahiry : {text.split()[1]} dia miasa ankehitriny"))
                    elif text.startswith("manampia"):
                        self.writes_received += 1
                        return  # vanish before answering: the outcome is unknown
                    else:
                        conn.sendall(encode_message("ok"))

    def close(self) -> None:
        self.closed = True
        self.listener.close()


def test_a_write_whose_outcome_is_unknown_is_reported_and_never_resent(start_node):
    fakes = [VanishingServer("f1"), VanishingServer("f2")]
    try:
        lb = start_node("balancer", "lb", *[arg for f in fakes for arg in
                                             ("--backend", f"{f.name}=127.0.0.1:{f.port}")])
        client = WireClient(lb.port)
        try:
            client.ok("ampiasao db;")
            response = client.one("manampia ao@ t sanda (1);")
            assert not response.ok and "unknown" in response.message
            assert sum(f.writes_received for f in fakes) == 1
            assert client.status()["counters"]["unknown_writes"] == 1
            assert client.ok(".ping;").message == "PONG lb balancer"
        finally:
            client.close()
    finally:
        for fake in fakes:
            fake.close()
