"""`.versions DB obj ...;` on a real server: change counters per kind, for the balancer's read-your-writes."""

from __future__ import annotations

import json

from nodes.protocol.wire import (
    ADMIN_VERSIONS,
    RequestFramer,
    decode_versions,
    versions_arguments,
    versions_request,
)
from tests.integration.wire import WireClient, create_and_use


def test_framing_of_versions_requests():
    framer = RequestFramer()
    request, = framer.feed(versions_request("db", ["t1", "t2"]))
    assert request.admin == ADMIN_VERSIONS
    assert versions_arguments(request) == ("db", ["t1", "t2"])
    assert framer.feed(b".VERSIONS  db\n t;")[0].admin == ADMIN_VERSIONS
    assert framer.feed(b".versionsx db t;")[0].admin is None
    assert decode_versions('{"t":{"table":2}}') == {"t": {"table": 2}}
    assert decode_versions('{"t":{"table":"2"}}') is None
    assert decode_versions("not json") is None


def test_counters_follow_writes_drops_and_kinds(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    with WireClient(server.port) as client:
        create_and_use(client, "db")
        client.ok("manamboara tabilao t (a ISA(null,null));")
        client.ok("manampia ao@ t sanda (1);")
        client.ok("manampia ao@ t sanda (2);")
        client.ok("manamboara jery v @ alaivo a ao@ t;")
        answer = json.loads(client.ok(".versions db t v nothing;").message)
        assert answer == {"t": {"table": 3}, "v": {"view": 1}, "nothing": {}}
        client.ok("ravao ny jery v;")
        assert json.loads(client.ok(".versions db v;").message) == {"v": {"view": 2}}  # tombstone
        # Works on any connection, whatever database it uses (or none).
        with WireClient(server.port) as other:
            assert json.loads(other.ok(".versions db t;").message) == {"t": {"table": 3}}
            assert json.loads(other.ok(".versions tsisy t;").message) == {"t": {}}


def test_bad_versions_requests_are_errors_and_change_nothing(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    with WireClient(server.port) as client:
        for bad in (".versions;", ".versions db;", ".versions db ../x;", ".versions ../.. t;"):
            response = client.one(bad)
            assert not response.ok and response.message.startswith("Hadisoana : "), bad
        assert client.ok(".ping;").message.startswith("PONG")
