"""Hostile input against real node processes: each gets a clean error or a
result within the configured limits, and the node keeps serving others.

After every attack the node must still answer `.ping;` and a normal query on
a fresh connection (`assert_still_serving`). Limits exercised: request size
(--max-request-bytes), statement size and rows per INSERT / per result /
join work (engine Limits), connections (--max-connections), idle and
half-open connections (--idle-timeout).
"""

from __future__ import annotations

import random
import socket

import psutil
import pytest

from engine.errors import ERROR_PREFIX
from nodes.protocol.wire import ResponseDecoder
from tests.conftest import wait_until
from tests.integration.wire import WireClient, setup_school

ROWS = 100_000


def assert_still_serving(node, kind: str = "server") -> None:
    assert node.alive(), node.log_text()
    with WireClient(node.port) as client:
        assert client.one(".ping;").message == f"PONG {node.name} {kind}"
        response = client.one("alaivo 6 * 7 antso valiny;")
        assert response.ok and response.relation.rows == [[42]]
    assert "Traceback" not in node.log_text()


def assert_clean_error(response, *words: str) -> None:
    assert not response.ok
    assert response.message.startswith(ERROR_PREFIX)
    assert "Traceback" not in response.message
    for word in words:
        assert word in response.message, response.message


def start_server(start_node, *args: str):
    return start_node("server", "m1", "--data", "data/m1", *args)


# --------------------------------------------------------------------------
# Bytes on the wire


def send_and_read_all(port: int, data: bytes, timeout: float = 30.0) -> list:
    """Send `data`, half-close, decode every response until the node closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        decoder, responses = ResponseDecoder(), []
        while chunk := sock.recv(1 << 16):
            responses.extend(decoder.feed(chunk))
        assert not decoder.pending
        return responses


def assert_only_clean_answers(responses: list) -> None:
    for response in responses:
        assert response.ok or response.message.startswith(ERROR_PREFIX)
        assert "Traceback" not in response.message


def test_random_bytes_get_errors_and_the_node_keeps_serving(start_node):
    server = start_server(start_node)
    garbage = random.Random(6).randbytes(200_000)
    responses = send_and_read_all(server.port, garbage + b"';\n;")
    assert responses and not responses[-1].ok
    assert_only_clean_answers(responses)
    assert_still_serving(server)


@pytest.mark.parametrize("fragment", [
    b"manamboara tahiry halfway",                      # no terminator
    b"manamboara tahiry halfway '; still a string",    # inside a string
    b"manamboara tahiry halfway -- ; in a comment",    # inside a comment
    b"manamboara tahiry halfway \xc3",                 # half a UTF-8 sequence
], ids=["no-terminator", "in-string", "in-comment", "half-utf8"])
def test_truncated_statement_then_close_runs_nothing(start_node, fragment):
    server = start_server(start_node)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(fragment)
    with WireClient(server.port) as client:
        client.one(".ping;")
        shown = client.one("asehoy ny tahiry;")
        assert shown.ok and ["halfway"] not in shown.relation.rows
    assert_still_serving(server)


def test_ten_megabyte_frame_is_refused_and_the_connection_goes_on(start_node):
    server = start_server(start_node)
    with WireClient(server.port, timeout=30) as client:
        client.send(b"alaivo '" + b"x" * (10 << 20) + b"';")
        assert_clean_error(client.read()[0], "Lava loatra")
        assert client.one("alaivo 1;").relation.rows == [[1]]
    assert psutil.Process(server.pid).memory_info().rss < 512 << 20
    assert_still_serving(server)


def test_invalid_utf8_is_an_error_for_that_statement_only(start_node):
    server = start_server(start_node)
    with WireClient(server.port) as client:
        client.send(b"alaivo '\xff\xfe\xc0\x80';")
        assert_clean_error(client.read()[0], "UTF-8")
        client.send(b"alaivo '\xed\xa0\x80';")  # an encoded surrogate is not UTF-8 either
        assert_clean_error(client.read()[0], "UTF-8")
        assert client.one("alaivo 'tsara';").relation.rows == [["tsara"]]
    assert_still_serving(server)


# --------------------------------------------------------------------------
# Statements built to hurt


@pytest.mark.parametrize("text", [
    "alaivo " + "(" * 10_000 + "1" + ")" * 10_000 + ";",
    "alaivo * ao@ " + "(alaivo * ao@ " * 5_000 + "t" + ") x" * 5_000 + ";",
    "alaivo " + "!" * 10_000 + "(1 = 1);",
    "alaivo " + " + ".join(["1"] * 50_000) + ";",
    "alaivo 1" + " ankambana alaivo 1" * 20_000 + ";",
], ids=["parentheses", "derived-tables", "negations", "long-sum", "long-union"])
def test_deep_nesting_is_a_clean_error(start_node, text):
    server = start_server(start_node)
    with WireClient(server.port, timeout=30) as client:
        assert_clean_error(client.one(text), "lalina loatra")
    assert_still_serving(server)


def million_value_insert() -> bytes:
    return ("manampia ao@ t (id) sanda " + ",".join(f"({i})" for i in range(1_000_000))
            + ";").encode()


def test_insert_of_a_million_values_fails_cleanly(start_node):
    server = start_server(start_node)
    statement = million_value_insert()
    assert len(statement) > 1 << 20
    with WireClient(server.port, timeout=60) as client:
        setup_school(client)
        client.send(statement)
        assert_clean_error(client.read()[0], "Lava loatra")
        assert client.one("alaivo count(*) ao@ t;").relation.rows == [[0]]
    assert_still_serving(server)


@pytest.mark.slow  # a million values through the server
def test_insert_of_a_million_values_with_a_raised_request_limit(start_node):
    """The wire lets it through; the engine's statement size limit still refuses it."""
    server = start_server(start_node, "--max-request-bytes", str(16 << 20))
    with WireClient(server.port, timeout=60) as client:
        setup_school(client)
        client.send(million_value_insert())
        assert_clean_error(client.read()[0], "Lava loatra ny baiko")
        assert client.one("alaivo count(*) ao@ t;").relation.rows == [[0]]
    assert_still_serving(server)


@pytest.mark.slow  # runs a join up to the limit
def test_cross_join_of_100k_by_100k_rows_hits_a_limit(start_node):
    server = start_server(start_node)
    with WireClient(server.port, timeout=120) as client:
        client.ok("manamboara tahiry lehibe;")
        client.ok("ampiasao lehibe;")
        client.ok("manamboara tabilao a (x ISA(null,null));")
        client.ok("manamboara tabilao b (x ISA(null,null));")
        client.ok("manampia ao@ a sanda " + ",".join(f"({i})" for i in range(ROWS)) + ";")
        client.ok("manampia ao@ b alaivo * ao@ a;")
        assert client.rows("alaivo count(*) ao@ b;") == [[ROWS]]
        rss_before = psutil.Process(server.pid).memory_info().rss

        assert_clean_error(client.one("alaivo * ao@ a tonona b;"), "Be loatra")
        assert_clean_error(client.one("alaivo count(*) ao@ a tonona b;"), "Be loatra")
        assert_clean_error(client.one("alaivo count(*) ao@ a tonona b ka a.x < b.x;"), "Be loatra")
        # INSERT ... SELECT beyond the rows one INSERT may add.
        assert_clean_error(client.one(
            "manampia ao@ b alaivo x ao@ a ankambana alaivo x + 1000000 ao@ a;"), "Be loatra")
        assert client.rows("alaivo count(*) ao@ b;") == [[ROWS]]
        # An equi-join of the same tables is fine: limits refuse work, not size alone.
        assert client.rows("alaivo count(*) ao@ a tonona b ka a.x = b.x;") == [[ROWS]]
        # Bounded memory: nothing near 10^10 rows was ever built.
        assert psutil.Process(server.pid).memory_info().rss < rss_before + (512 << 20)
    assert_still_serving(server)


# --------------------------------------------------------------------------
# Connections


def wait_until_alone(client: WireClient) -> None:
    """Wait (bounded) until `client` is the node's only connection (probes seen closed)."""
    wait_until(lambda: client.status()["connections"] == 1, 5.0, "earlier connections to close",
               interval_s=0.01)


def test_connections_beyond_the_maximum_are_refused_cleanly(start_node):
    server = start_server(start_node, "--max-connections", "3")
    held = [WireClient(server.port)]
    wait_until_alone(held[0])
    held += [WireClient(server.port) for _ in range(2)]
    try:
        for client in held:
            client.ok("alaivo 1;")
        with WireClient(server.port) as extra:
            assert extra.one(".ping;").ok  # health probes still see the node alive
            assert_clean_error(extra.one("alaivo 1;"), "Be loatra ny fifandraisana")
            assert extra.closed_by_peer()
        for client in held:  # the admitted ones are untouched
            assert client.rows("alaivo 2;") == [[2]]
        for client in held[1:]:
            client.close()
        wait_until_alone(held[0])  # the freed places are given to newcomers again
        assert_still_serving(server)
    finally:
        for client in held:
            client.close()


def test_idle_connection_is_closed_after_the_timeout(start_node):
    server = start_server(start_node, "--idle-timeout", "0.5")
    with WireClient(server.port, timeout=10) as idle:
        idle.ok("alaivo 1;")
        assert idle.closed_by_peer()
    assert_still_serving(server)


def test_half_open_statement_is_dropped_and_the_connection_closed(start_node):
    server = start_server(start_node, "--idle-timeout", "0.5")
    with WireClient(server.port, timeout=10) as silent:
        silent.send(b"manamboara tahiry tsy_vita")  # half a statement, then silence
        assert silent.closed_by_peer()
    with WireClient(server.port) as client:
        assert ["tsy_vita"] not in client.rows("asehoy ny tahiry;")
    assert_still_serving(server)


def test_many_silent_connections_do_not_starve_others(start_node):
    server = start_server(start_node, "--idle-timeout", "1", "--max-connections", "40")
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(30)]
    try:
        for sock in silent:
            sock.sendall(b"alaivo 'never ends")
        assert_still_serving(server)
        for sock in silent:  # every one is closed by the node after its idle timeout
            assert sock.recv(1024) == b""
    finally:
        for sock in silent:
            sock.close()
    assert_still_serving(server)


# --------------------------------------------------------------------------
# The other node kinds share the connection loop: a quick battery for each


def _start_kind(start_node, kind: str):
    server = start_server(start_node)
    if kind == "server":
        return server
    if kind == "proxycache":
        return start_node("proxycache", "p1", "--upstream", f"127.0.0.1:{server.port}",
                          "--idle-timeout", "0.5")
    return start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{server.port}",
                      "--probe-interval-ms", "100", "--idle-timeout", "0.5")


@pytest.mark.parametrize("kind", ["proxycache", "balancer"])
def test_hostile_battery_on_other_node_kinds(start_node, kind):
    node = _start_kind(start_node, kind)
    assert_only_clean_answers(send_and_read_all(node.port, random.Random(2).randbytes(50_000)
                                                + b"';\n;"))
    with WireClient(node.port, timeout=30) as client:
        client.send(b"alaivo '\xff';")
        assert_clean_error(client.read()[0], "UTF-8")
        client.send(b"alaivo " + b"(" * 10_000 + b"1" + b")" * 10_000 + b";")
        assert_clean_error(client.read()[0], "lalina loatra")
        client.send(b"x" * (3 << 20) + b";")
        assert_clean_error(client.read()[0], "Lava loatra")
        assert client.one("alaivo 1;").relation.rows == [[1]]
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
        sock.sendall(b"manamboara tahiry halfway")  # truncated, then closed
    assert_still_serving(node, kind)


@pytest.mark.parametrize("kind", ["proxycache", "balancer"])
def test_half_open_connections_to_other_node_kinds_are_closed(start_node, kind):
    node = _start_kind(start_node, kind)
    with WireClient(node.port, timeout=10) as idle, WireClient(node.port, timeout=10) as half:
        half.send(b"manamboara tahiry tsy_vita")
        assert idle.closed_by_peer()
        assert half.closed_by_peer()
    assert_still_serving(node, kind)


# --------------------------------------------------------------------------
# The per-query time limit (engine QueryLimits.max_seconds), in process


def test_a_query_running_past_its_time_limit_fails_cleanly(tmp_path):
    from engine.evaluation.executor import Limits
    from engine.evaluation.relational import QueryLimits
    from engine.session import Session
    from engine.storage.store import Store

    store = Store(tmp_path / "data", durable=False)
    quick = Session(store, limits=Limits(query=QueryLimits(max_seconds=0.05)))
    for statement in ("manamboara tahiry ela", "ampiasao ela",
                      "manamboara tabilao a (x ISA(null,null))",
                      "manampia ao@ a sanda " + ",".join(f"({i})" for i in range(3000))):
        assert quick.execute_one(statement).ok
    # 9 million comparisons in nested loops: far more than 50 ms anywhere.
    slow = quick.execute_one("alaivo count(*) ao@ a tonona a b ka a.x < b.x - 5000")
    assert not slow.ok and slow.message.startswith(ERROR_PREFIX + "Ela loatra"), slow.message
    assert quick.execute_one("alaivo count(*) ao@ a").relation.rows == [[3000]]
    # INSERT ... SELECT stops before writing anything.
    assert not quick.execute_one("manampia ao@ a alaivo a.x ao@ a tonona a b ka a.x < b.x - 5000").ok
    assert quick.execute_one("alaivo count(*) ao@ a").relation.rows == [[3000]]
