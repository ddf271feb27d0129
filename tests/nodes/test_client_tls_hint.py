"""The client over a plain connection to a node that speaks TLS: it says why, in one line."""

from __future__ import annotations

import pytest

from nodes.client.connection import ConnectionLost, ConnectionProblem, ServerConnection
from nodes.protocol.tls import client_context
from tests.conftest import wait_until
from tests.tlskit import Certificates


def test_a_plain_connection_to_a_tls_node_is_told_about_tls(start_node, tmp_path):
    machine = Certificates(tmp_path / "tls").machine("host", ["127.0.0.1"])
    node = start_node("server", "m1", "--data", str(tmp_path / "data"), *machine.argv(),
                      wait=False)   # (its readiness probe speaks plain TCP)
    context = client_context(machine)

    def answers_over_tls() -> bool:
        try:
            connection = ServerConnection("127.0.0.1", node.port, tls=context, connect_timeout=1)
        except (ConnectionProblem, OSError):   # not listening yet
            return False
        try:
            return "PONG" in connection.request(".ping;").message
        finally:
            connection.close()

    wait_until(answers_over_tls, 15, "the TLS node to answer")
    connection = ServerConnection("127.0.0.1", node.port, timeout=5)
    with pytest.raises(ConnectionLost) as lost:
        connection.request("alaivo * ao@ t;")
    assert "before any answer" in str(lost.value) and "--tls-ca" in str(lost.value)


def test_a_node_gone_after_answering_is_not_blamed_on_tls(start_node, tmp_path):
    node = start_node("server", "m1", "--data", str(tmp_path / "data"))
    connection = ServerConnection("127.0.0.1", node.port, timeout=5)
    assert "PONG" in connection.request(".ping;").message
    node.stop()
    with pytest.raises(ConnectionLost) as lost:
        connection.request(".ping;")
    assert "TLS" not in str(lost.value)
