"""The proxy cache as a real process in front of a real server (same protocol as the balancer)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.integration.wire import WireClient, setup_school


def start_chain(start_node, *proxy_args: str):
    server = start_node("server", "m1", "--data", "data/m1")
    proxy = start_node("proxycache", "proxy", "--upstream", f"127.0.0.1:{server.port}", *proxy_args)
    return server, proxy


def count_rows(client: WireClient, statement: str = "alaivo * ao@ t;") -> int:
    response = client.one(statement)
    assert response.ok, response.message
    return len(response.relation.rows)


def test_ping_and_status_are_answered_by_the_proxy(start_node):
    _, proxy = start_chain(start_node)
    with WireClient(proxy.port) as client:
        assert client.one(".ping;").message == "PONG proxy proxycache"
        counters = client.status()
    assert counters["kind"] == "proxycache"
    assert {"hits", "misses", "evictions", "invalidations", "entries", "bytes"} <= counters.keys()


def test_hit_within_ttl_serves_the_cached_response(start_node):
    server, proxy = start_chain(start_node, "--ttl-ms", "60000")
    with WireClient(proxy.port) as client, WireClient(server.port) as direct:
        setup_school(client)
        assert client.one("manampia ao@ t sanda (1, 'a');").ok
        assert count_rows(client) == 1
        # Written behind the proxy's back: a cache hit still shows one row.
        assert direct.one("ampiasao sekoly;").ok
        assert direct.one("manampia ao@ t sanda (2, 'b');").ok
        assert count_rows(client, "alaivo   *  ao@ t ;") == 1   # same normalised statement
        counters = client.status()
    assert counters["hits"] == 1 and counters["misses"] == 1



def test_reads_sent_behind_others_count_as_misses(start_node):
    """Bug: a read pipelined behind another statement (a `-f` script) was forwarded without
    a cache lookup and counted nowhere: three reads sent together added one miss, so the
    hit ratio and `tahiry_proxy_misses_total` ("reads forwarded upstream") left scripts out."""
    _, proxy = start_chain(start_node, "--ttl-ms", "60000")
    with WireClient(proxy.port) as client:
        setup_school(client)
        before = client.status()["misses"]
        answers = client.run("alaivo * ao@ t; alaivo id ao@ t; alaivo * ao@ t rehefa id = 1;", 3)
        assert all(answer.ok for answer in answers)
        assert client.status()["misses"] == before + 3

def test_miss_after_ttl(start_node):
    server, proxy = start_chain(start_node, "--ttl-ms", "150")
    with WireClient(proxy.port) as client, WireClient(server.port) as direct:
        setup_school(client)
        assert count_rows(client) == 0
        assert direct.one("ampiasao sekoly;").ok
        assert direct.one("manampia ao@ t sanda (2, 'b');").ok
        time.sleep(0.4)
        assert count_rows(client) == 1
        assert client.status()["misses"] == 2


def test_write_through_the_proxy_invalidates(start_node):
    _, proxy = start_chain(start_node, "--ttl-ms", "60000")
    with WireClient(proxy.port) as client:
        setup_school(client)
        assert count_rows(client) == 0
        before = client.status()["invalidations"]
        assert client.one("manampia ao@ t sanda (1, 'a');").ok
        assert count_rows(client) == 1
        counters = client.status()
    assert counters["invalidations"] == before + 1 and counters["hits"] == 0


def test_use_invalidates_and_two_databases_never_mix(start_node):
    _, proxy = start_chain(start_node, "--ttl-ms", "60000")
    with WireClient(proxy.port) as first, WireClient(proxy.port) as second:
        setup_school(first, "db1")
        setup_school(second, "db2")
        assert first.one("manampia ao@ t sanda (1, 'one');").ok
        assert second.one("manampia ao@ t sanda (2, 'two');").ok
        for _ in range(2):
            assert first.one("alaivo anarana ao@ t;").relation.rows == [["one"]]
            assert second.one("alaivo anarana ao@ t;").relation.rows == [["two"]]
        assert first.status()["hits"] == 2
        before = first.status()["invalidations"]
        assert first.one("ampiasao db2;").message == "Ny tahiry : db2 dia miasa ankehitriny"
        assert first.status()["invalidations"] == before + 1
        assert first.one("alaivo anarana ao@ t;").relation.rows == [["two"]]


def test_lru_eviction_at_max_entries(start_node):
    _, proxy = start_chain(start_node, "--ttl-ms", "60000", "--max-entries", "2")
    with WireClient(proxy.port) as client:
        setup_school(client)
        for statement in ("alaivo 1;", "alaivo 2;", "alaivo 3;"):
            assert client.one(statement).ok
        counters = client.status()
        assert counters["evictions"] == 1 and counters["entries"] == 2
        assert client.one("alaivo 1;").ok          # evicted: a miss
        assert client.one("alaivo 3;").ok          # still there: a hit
        counters = client.status()
    assert counters["hits"] == 1 and counters["misses"] == 4


def test_errors_are_never_cached(start_node):
    server, proxy = start_chain(start_node, "--ttl-ms", "60000")
    with WireClient(proxy.port) as client, WireClient(server.port) as direct:
        setup_school(client)
        assert client.one("alaivo * ao@ u;").message.startswith("Hadisoana : ")
        assert direct.one("ampiasao sekoly;").ok
        assert direct.one("manamboara tabilao u (x ISA(null,null));").ok
        assert client.one("alaivo * ao@ u;").ok
        assert client.status()["entries"] == 1


def test_semicolon_in_a_string_round_trips_through_the_proxy(start_node):
    _, proxy = start_chain(start_node)
    with WireClient(proxy.port) as client:
        setup_school(client)
        assert client.one("manampia ao@ t sanda (1, 'x;y'), (2, 'a''b;');").ok
        assert client.one("alaivo anarana ao@ t;").relation.rows == [["x;y"], ["a'b;"]]


def test_garbage_and_ten_megabytes_leave_the_proxy_serving(start_node):
    server, proxy = start_chain(start_node)
    with WireClient(proxy.port, timeout=30) as client:
        # No quotes or comment starters: the ';' really ends the garbage.
        garbage = bytes(b for b in range(256) if b not in b"'\"-/;")
        client.send(garbage * 4 + b";")
        assert client.read()[0].message.startswith("Hadisoana : ")
        sender = threading.Thread(target=lambda: client.send(b"x" * (10 << 20) + b";.ping;"))
        sender.start()
        too_long, pong = client.read(2)
        sender.join(timeout=30)
        assert too_long.message.startswith("Hadisoana : ")
        assert pong.message == "PONG proxy proxycache"
    with WireClient(proxy.port) as other:
        assert other.one("asehoy ny tahiry;").ok
    assert proxy.alive() and server.alive()


@pytest.mark.slow  # waits out the reconnect
def test_upstream_down_gives_an_error_then_reconnects_with_the_database(start_node):
    server, proxy = start_chain(start_node, "--ttl-ms", "1")
    with WireClient(proxy.port) as client:
        setup_school(client)
        assert client.one("manampia ao@ t sanda (1, 'a');").ok
        server.stop()
        down = client.one("alaivo * ao@ t;")
        assert down.message.startswith("Hadisoana : ")
        assert client.one(".ping;").ok                       # the client connection stays
        start_node.restart(server)
        # Reconnects and replays `ampiasao sekoly` on the new upstream connection.
        assert count_rows(client) == 1
        assert client.status()["upstream_errors"] >= 1


def test_fine_invalidation_keeps_entries_of_other_tables(start_node):
    _, proxy = start_chain(start_node, "--ttl-ms", "60000", "--fine-invalidation")
    with WireClient(proxy.port) as client:
        setup_school(client)
        assert client.one("manamboara tabilao u (x ISA(null,null));").ok
        assert client.one("manamboara jery v @ alaivo id ao@ t;").ok
        assert count_rows(client) == 0
        assert count_rows(client, "alaivo * ao@ v;") == 0
        assert client.one("manampia ao@ u sanda (1);").ok
        assert count_rows(client) == 0                     # still cached: a hit
        assert client.status()["hits"] == 1
        assert client.one("manampia ao@ t sanda (5, 'e');").ok
        assert count_rows(client) == 1                     # invalidated by the write to t
        assert count_rows(client, "alaivo * ao@ v;") == 1  # reads a view: invalidated too


class _DiesAfterWriting:
    """An upstream that answers `ampiasao`, takes a write and closes the connection without
    answering it (a balancer killed right after its server committed): the write applied."""

    def __init__(self):
        import socket

        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.writes: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        from nodes.protocol import encode_message

        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                pending = b""
                while True:
                    chunk = connection.recv(1 << 16)
                    if not chunk:
                        break
                    pending += chunk
                    *statements, pending = pending.split(b";")
                    for statement in (s.decode().strip() for s in statements):
                        if statement.startswith("ampiasao"):
                            connection.sendall(encode_message("Tafiditra ao amin'ny x"))
                        elif statement:
                            self.writes.append(statement)
                            break
                    else:
                        continue
                    break   # a write taken: closed unanswered

    def close(self) -> None:
        import socket

        try:
            self.listener.shutdown(socket.SHUT_RDWR)   # stops listening (close alone waits
        except OSError:                                # for the blocked accept)
            pass
        self.listener.close()


def test_a_write_whose_answer_is_lost_upstream_is_reported_outcome_unknown(start_node):
    """The balancer killed after its server committed a write sent through the proxy: the
    proxy answered "Hadisoana : tapaka ny fifandraisana ..." as if it had failed, and a
    client that trusted it lost what it did next (hunt: a delete "failed" but applied took
    away an acknowledged row; 5 inserts "failed" yet stored). Like the balancer's, the
    answer says the outcome is unknown; one never sent still fails plainly."""
    upstream = _DiesAfterWriting()
    proxy = start_node("proxycache", "proxy", "--upstream", f"127.0.0.1:{upstream.port}",
                       "--upstream-patience", "0.2")
    try:
        with WireClient(proxy.port) as client:
            assert client.one("ampiasao x;").ok
            answer = client.one("manampia ao@ t sanda (1);")
            assert upstream.writes == ["manampia ao@ t sanda (1)"]
            assert not answer.ok and "outcome of this write is unknown" in answer.message, \
                answer.message
            upstream.close()   # nothing listens any more: the next write is never sent
            refused = client.one("manampia ao@ t sanda (2);")
            assert not refused.ok and "unknown" not in refused.message, refused.message
            assert upstream.writes == ["manampia ao@ t sanda (1)"]
    finally:
        upstream.close()
