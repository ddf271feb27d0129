"""A query whose client went away stops (issue 14: "the query is cancelled when the client goes away").

The server runs statements on one engine thread: a long read left running
after its client left would hold every write on that server until the
time limit (30 s). A client that resets its connection (Tahiry's client on
Ctrl-C, a killed process with unread data) cancels its query: it stops at
its next time test. One that only ends its stream (FIN) may still read the
answer (a statement piped through `nc`), so that query runs on.
"""

from __future__ import annotations

import json
import time

import pytest

from nodes.client.connection import NoAnswer, ServerConnection
from tests.conftest import wait_until
from tests.integration.hardening_scenarios import LONG_QUERY, make_tables
from tests.integration.wire import WireClient

pytestmark = pytest.mark.slow



def test_a_write_is_not_held_by_the_long_query_of_a_client_that_left(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    with WireClient(server.port) as setup:
        make_tables(setup, 2000, 2000)
    leaving = ServerConnection("127.0.0.1", server.port)
    assert leaving.request("ampiasao db;").ok
    before = _statements(server.port)
    leaving.send_some(LONG_QUERY.encode())
    wait_until(lambda: _statements(server.port) > before, 10, "the long query received")
    wait_until(lambda: _engine_busy(server.port), 10, "the long query running")
    leaving.abort()   # what the client does on Ctrl-C: a reset, nobody will read
    # The client is gone; a write of another client must not wait for that query.
    started = time.monotonic()
    with WireClient(server.port, timeout=60) as writer:
        writer.ok("ampiasao db;")
        writer.ok("manampia ao@ a sanda (-1);")
    waited = time.monotonic() - started
    assert waited < 5.0, f"the write waited {waited:.1f} s behind a query nobody waits for"


def test_the_client_that_stays_gets_its_answer(start_node):
    """Cancelling is for clients that left: with its client still there the same
    query runs to its answer."""
    server = start_node("server", "m1", "--data", "data/m1")
    with WireClient(server.port, timeout=60) as client:
        make_tables(client, 300, 300)
        answer = client.one(LONG_QUERY)
        assert answer.ok, answer.message


def _statements(port: int) -> int:
    with WireClient(port) as probe:
        return json.loads(probe.one(".status;").message)["statements"]


def _engine_busy(port: int) -> bool:
    """Whether the engine thread is taken: a write sent now gets no answer within 0.3 s.

    (The probe then resets its connection: its own write is dropped unrun.)"""
    probe = ServerConnection("127.0.0.1", port, timeout=0.3)
    try:
        probe.request("ampiasao db;")   # answered on the event loop, engine or not
        probe.request("manampia ao@ b sanda (-2);")
        return False
    except NoAnswer:
        return True
    finally:
        probe.abort()
