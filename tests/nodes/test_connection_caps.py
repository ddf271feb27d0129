"""Connection caps and guessing limits, one module at a time (issue 14; docs/SECURITY.md).

nodes/runtime/admission.py over real sockets served in-process (caps per
peer address, on unauthenticated connections, the alerts), the pure
AuthLimiter of nodes/protocol/auth.py with a hand-driven clock, the
balancer's view of a crowded backend and of a joining one.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from nodes.balancer.backend_config import BackendSpec
from nodes.balancer.backend_pool import BackendPool
from nodes.balancer.backends import BUSY_PREFIX, BackendUnavailable
from nodes.balancer.health import HealthPolicy
from nodes.protocol.auth import AuthGuard, AuthLimiter, AuthRates, node_auth_guard
from nodes.protocol.wire import ResponseDecoder, auth_request, encode_message
from nodes.runtime.admission import Admission, ConnectionLimits
from nodes.runtime.serving import ClientConnection, ClientHandler, ConnectionStats
from tests.conftest import ManualClock

LOG = logging.getLogger("test-connection-caps")
SECRET = "s3cret-Tahiry_42"


async def serve(admission: Admission, auth: AuthGuard | None = None):
    """A listening socket whose connections share `admission`; (server, port, opened, stats)."""
    opened: list[int] = []
    stats = ConnectionStats(admission=admission)

    def open_client():
        opened.append(1)
        return ClientHandler(lambda request: encode_message(f"ok {request.text}"), None, 30.0)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ClientConnection(open_client, stats, LOG, 1 << 20, auth, set(), admission),
        "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], opened, stats


async def ask(port: int, data: bytes, count: int = 1):
    """Send `data` on a new connection; (the first `count` responses, the open streams)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    decoder, responses = ResponseDecoder(), []
    while len(responses) < count:
        chunk = await asyncio.wait_for(reader.read(1 << 16), 5)
        if not chunk:
            break
        responses.extend(decoder.feed(chunk))
    return responses, (reader, writer)


def test_connections_from_one_address_beyond_its_cap_are_refused_and_it_shows():
    async def scenario():
        admission = Admission(ConnectionLimits(max_per_address=3, per_address_on_loopback=True))
        server, port, opened, stats = await serve(admission)
        held = [await ask(port, b"a;") for _ in range(3)]
        assert all(responses[0].message == "ok a" for responses, _ in held)
        refused, _ = await ask(port, b"b;")
        assert not refused[0].ok and "Be loatra ny fifandraisana" in refused[0].message
        status = stats.as_dict()
        assert status["refused_per_address"] == 1
        assert any("per address" in alert and "127.0.0.1" in alert for alert in status["alerts"])
        assert len(opened) == 3   # the refused one never reached the node
        held.pop()[1][1].close()   # a place is freed: the next one gets it
        for _ in range(100):
            if admission.from_address("127.0.0.1") == 2:
                break
            await asyncio.sleep(0.01)
        again, _ = await ask(port, b"c;")
        assert again[0].message == "ok c"
        server.close()

    asyncio.run(scenario())


def test_loopback_is_exempt_from_the_per_address_cap_by_default():
    admission = Admission(ConnectionLimits(max_per_address=1))
    assert all(admission.admit("127.0.0.1") for _ in range(5))
    assert admission.admit("10.0.0.7") and not admission.admit("10.0.0.7")
    admission.release("10.0.0.7")
    assert admission.admit("10.0.0.7")


def test_the_oldest_unauthenticated_connection_makes_room_and_only_authenticated_ones_open():
    async def scenario():
        admission = Admission(ConnectionLimits(max_unauthenticated=4))
        server, port, opened, stats = await serve(admission, AuthGuard(SECRET, required=True))
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(10)]
        responses, _ = await ask(port, auth_request(SECRET) + b"x;", count=2)
        assert [r.message for r in responses][1] == "ok x"
        assert len(opened) == 1   # only the authenticated connection reached the node
        assert admission.unauthenticated <= 4
        # The evicted ones were told why, then closed.
        first = await asyncio.wait_for(silent[0][0].read(), 5)
        assert b"too many unauthenticated" in first
        assert any("unauthenticated" in alert for alert in stats.as_dict()["alerts"])
        server.close()

    asyncio.run(scenario())


def test_the_unauthenticated_deadline_is_not_moved_by_bytes():
    async def scenario():
        admission = Admission(ConnectionLimits(unauthenticated_deadline_s=0.4))
        server, port, opened, _ = await serve(admission, AuthGuard(SECRET, required=True))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        closed_at = None
        while loop.time() - started < 3:
            writer.write(b"a")   # half a statement, a byte at a time
            try:
                data = await asyncio.wait_for(reader.read(1 << 16), 0.1)
            except TimeoutError:
                continue
            if not data or b"END" in data:
                closed_at = loop.time() - started
                break
        assert closed_at is not None and closed_at < 1.5
        assert opened == []
        server.close()

    asyncio.run(scenario())


# --------------------------------------------------------------------------
# Guessing the secret


def test_an_address_that_fails_too_often_is_locked_out_once_and_logged_once():
    clock = ManualClock()
    limiter = AuthLimiter(AuthRates(per_address_failures=3, window_s=10, lockout_s=30),
                          clock=clock)
    for _ in range(3):
        assert limiter.admit("10.0.0.9") == 0.0
        limiter.failed("10.0.0.9", loopback=False)
        clock.now += 1
    assert limiter.admit("10.0.0.9") is None          # locked out: refused unchecked
    assert limiter.admit("10.0.0.8") == 0.0           # others are not
    events = limiter.events()
    assert len(events) == 1 and "10.0.0.9 locked out" in events[0]
    assert limiter.events() == []                     # once, not per attempt
    clock.now += 31
    assert limiter.admit("10.0.0.9") == 0.0
    # Loopback is never locked out (the cluster's own nodes share it).
    for _ in range(10):
        limiter.failed("127.0.0.1", loopback=True)
    assert limiter.locked_for("127.0.0.1") == 0.0


def test_fast_failures_anywhere_make_every_attempt_wait_its_turn():
    clock = ManualClock()
    limiter = AuthLimiter(AuthRates(global_failures_per_s=5, throttle_s=10, max_wait_s=2),
                          clock=clock)
    for _ in range(6):
        limiter.failed("127.0.0.1", loopback=True)
    assert len(limiter.events()) == 1
    waits = [limiter.admit("127.0.0.1") for _ in range(12)]
    admitted = [w for w in waits if w is not None]
    assert admitted[:3] == pytest.approx([0.0, 0.2, 0.4])
    assert max(admitted) <= 2.0 and None in waits     # beyond the longest wait: refused, busy
    clock.now += 11
    assert limiter.admit("127.0.0.1") == 0.0           # the episode is over
    assert limiter.status()["auth_throttled"] is False


def test_a_node_off_loopback_refuses_a_short_secret():
    class Args:
        id, host, require_secret = "m1", "10.1.2.3", False

    with pytest.raises(SystemExit, match="too weak"):
        node_auth_guard(Args(), LOG, {"TAHIRY_SECRET": "short"})
    Args.host = "127.0.0.1"
    assert node_auth_guard(Args(), LOG, {"TAHIRY_SECRET": "short"}).secret == "short"
    Args.host = "10.1.2.3"
    assert node_auth_guard(Args(), LOG, {"TAHIRY_SECRET": SECRET}).required


# --------------------------------------------------------------------------
# The balancer's view


def _pool(clock, caplog) -> BackendPool:
    pool = BackendPool(HealthPolicy(rise=2, fall=2), logging.getLogger("test-pool"), clock)
    pool.apply_specs([BackendSpec("m1", "127.0.0.1", 1), BackendSpec("m2", "127.0.0.1", 2)])
    return pool


def test_a_crowded_backend_is_passed_over_for_a_while_not_declared_sick(caplog):
    clock = ManualClock()
    caplog.set_level(logging.INFO)
    pool = _pool(clock, caplog)
    for backend in pool:
        pool.record_success(backend)
    m1 = pool["m1"]
    refusal = BackendUnavailable("m1", "Hadisoana : Be loatra ny fifandraisana", sent=False,
                                 busy=True)
    assert refusal.reason.startswith(BUSY_PREFIX)
    for _ in range(5):
        pool.record_failure(m1, refusal.reason)
    assert m1.health.state.value == "ONLINE"     # its sessions are not aborted
    assert pool.candidates() == ["m2"]
    assert sorted(pool.candidates(writable_only=True)) == ["m1", "m2"]   # writes keep owners
    assert pool.status()["m1"]["busy_refusals"] == 5
    assert caplog.text.count("refuses new connections") == 1
    clock.now += 5
    assert sorted(pool.candidates()) == ["m1", "m2"]


def test_a_backend_added_is_logged_as_joining_not_as_answering_again(caplog):
    clock = ManualClock()
    caplog.set_level(logging.INFO)
    pool = _pool(clock, caplog)
    pool.record_success(pool["m1"])
    assert "backend m1 joining" in caplog.text and "backend m1 joined" in caplog.text
    assert "answered again" not in caplog.text
    pool.record_failure(pool["m1"], "refused")
    pool.record_success(pool["m1"])
    assert "SHUNNED -> ONLINE (answered again)" in caplog.text   # a real return still says so


def test_idle_connections_may_stay_for_a_lesson_by_default():
    # Issue 15 bug 5: a student's session left open for hours is not cut at 10 minutes.
    from nodes.balancer.node import build_argument_parser
    from nodes.runtime.serving import DEFAULT_IDLE_TIMEOUT_S

    assert DEFAULT_IDLE_TIMEOUT_S >= 8 * 3600
    args = build_argument_parser().parse_args(["--id", "lb", "--backend", "m1=127.0.0.1:1"])
    assert args.idle_timeout == DEFAULT_IDLE_TIMEOUT_S
    assert args.max_connections_per_address == 64 and args.max_unauthenticated == 64
