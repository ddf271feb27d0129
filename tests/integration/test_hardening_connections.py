"""Connection floods against real node processes (issue 14, items 1 and 2; docs/SECURITY.md).

- a flood of slow-byte unauthenticated connections beyond every cap: an
  authenticated client is still served at once, and the flood is closed at
  its deadline from accept (bytes do not re-arm it);
- an idle flood beyond a server's cap: the server says so in `.status;`
  ("alerts"), and new clients of the load balancer are still served (by the
  other server), the crowded backend reported, not declared dead.
"""

from __future__ import annotations

import time

import pytest

from nodes.protocol.wire import auth_request
from tests.conftest import wait_until
from tests.integration.hardening_scenarios import (
    SECRET,
    close_all,
    open_flood,
    start_guarded_server,
    trickle,
)
from tests.integration.wire import WireClient

FLOOD = 300


@pytest.mark.slow
def test_an_unauthenticated_flood_never_locks_out_an_authenticated_client(start_node):
    server = start_guarded_server(start_node)
    flood = open_flood(server.port, FLOOD)
    try:
        trickle(flood)
        started = time.monotonic()
        with WireClient(server.port) as client:
            assert client.one(auth_request(SECRET).decode()).ok
            assert client.rows("alaivo 6 * 7;") == [[42]]
            status = client.status()
        latency = time.monotonic() - started
        assert latency < 2.0
        assert status["connections"] <= 2    # the node's own cap counts only authenticated ones
        assert status["unauthenticated_connections"] <= 64
        assert any("unauthenticated" in alert for alert in status["alerts"]), status
        # A byte every 0.5 s does not keep a connection past its deadline
        # (10 s from accept).
        deadline = time.monotonic() + 14
        while time.monotonic() < deadline and trickle(flood):
            time.sleep(0.5)
        assert trickle(flood) == 0, "unauthenticated connections outlived their deadline"
    finally:
        close_all(flood)
    assert "Traceback" not in server.log_text()


def test_a_server_at_its_cap_says_so_in_its_status(start_node):
    server = start_node("server", "m1", "--data", "data/m1", "--max-connections", "3")
    held = [WireClient(server.port) for _ in range(3)]
    try:
        for client in held:
            client.ok("alaivo 1;")
        with WireClient(server.port) as extra:
            refused = extra.one("alaivo 1;")
            assert not refused.ok and "Be loatra ny fifandraisana" in refused.message
        status = held[0].status()
        assert status["alerts"] and "connection cap" in status["alerts"][0], status
        assert all(isinstance(alert, str) and "\n" not in alert for alert in status["alerts"])
    finally:
        for client in held:
            client.close()


@pytest.mark.slow
def test_an_idle_flood_on_one_server_does_not_fail_balancer_clients(start_node):
    m1 = start_node("server", "m1", "--data", "data/m1")
    m2 = start_node("server", "m2", "--data", "data/m2")
    balancer = start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{m1.port}",
                          "--backend", f"m2=127.0.0.1:{m2.port}", "--probe-interval-ms", "100")
    with WireClient(balancer.port) as setup:
        setup.ok("manamboara tahiry sekoly;")
        setup.ok("ampiasao sekoly;")
        setup.ok("manamboara tabilao t (x ISA(null,null));")
    flood = open_flood(m1.port, 260)
    try:
        with WireClient(m1.port) as probe:   # m1 is full: a new client is refused
            refused = probe.one("alaivo 1;")
            assert not refused.ok and "Be loatra ny fifandraisana" in refused.message
        for _ in range(6):   # a first statement on a fresh session, on either server
            with WireClient(balancer.port) as client:
                assert ["sekoly"] in client.rows("asehoy ny tahiry;")
        for number in range(10):
            with WireClient(balancer.port) as client:
                assert ["sekoly"] in client.rows("asehoy ny tahiry;")
                client.ok("ampiasao sekoly;")
                client.ok(f"manampia ao@ t sanda ({number});")
                rows = client.rows("alaivo count(*) ao@ t;")
                assert rows[0][0] >= 1
        with WireClient(balancer.port) as client:
            status = client.status()
        backends = status["backends"]
        assert backends["m1"]["state"] == "ONLINE"      # crowded, not dead
        assert backends["m1"]["busy_refusals"] >= 1, balancer.log_text()[-4000:]
        assert "refuses new connections" in balancer.log_text()
    finally:
        close_all(flood)
    with WireClient(m1.port) as client:
        wait_until(lambda: client.status()["connections"] < 10, 10, "the flood to be gone")
    assert "Traceback" not in balancer.log_text()


def test_a_node_caps_the_connections_of_one_address(start_node):
    # Loopback is exempt by default; the option applies the cap to it, as to
    # any other address.
    server = start_node("server", "m1", "--data", "data/m1", "--max-connections-per-address", "2",
                        "--per-address-on-loopback")
    with WireClient(server.port) as first:
        wait_until(lambda: first.status()["connections"] == 1, 5, "the readiness probe to go")
        with WireClient(server.port) as second:
            second.ok("alaivo 1;")
            with WireClient(server.port) as third:
                refused = third.one("alaivo 1;")
                assert not refused.ok and "Be loatra ny fifandraisana" in refused.message
            assert any("per address" in alert for alert in first.status()["alerts"])
        # A place freed is given again (once the node has seen the close).
        wait_until(lambda: served_once(server.port), 5, "the freed place to be given")


def served_once(port: int) -> bool:
    with WireClient(port) as client:
        return client.one("alaivo 2;").ok
