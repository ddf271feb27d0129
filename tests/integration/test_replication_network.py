"""The replicator ships to, and catches up from, a server it reaches only over the network.

One real server process (m2) answers `.peer` requests on its port; the
replicator holds m1's directory on "this machine" and knows m2 only by its
address (supervisor/replication_remote.py, supervisor/peer_link.py): no
folder of m2 is ever read or written by it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from engine.storage.object_state import current_document, version_of
from engine.storage.store import Store
from supervisor.peer_link import PeerAddress, PeerLink
from supervisor.replication import Replicator
from tests.conftest import wait_until
from tests.integration.wire import WireClient
from tests.objectkit import write_raw

TABLE = "s/tables/t.json"
COLUMNS = [{"name": "id", "domain": []}]


def _rows(root, rel=TABLE) -> list:
    try:
        return sorted(row[0] for row in current_document(root / rel)["rows"])
    except (OSError, TypeError, KeyError):
        return []


@pytest.fixture
def remote_m2(start_node):
    m2_dir = start_node.workdir / "data" / "m2"
    m2 = start_node("server", "m2", "--data", str(m2_dir))
    return m2, m2_dir


@dataclass
class OverTheNetwork:
    """m1's directory here (its store, and a replicator over it) and m2 known only by address."""

    m2: object
    m2_dir: Path
    m1_dir: Path
    store: Store
    replicator: Replicator


@pytest.fixture
def over_the_network(remote_m2, tmp_path):
    """The replicator is stopped afterwards (not started: each test says when)."""
    m2, m2_dir = remote_m2
    m1_dir = tmp_path / "m1"
    store = Store(m1_dir)
    replicator = Replicator({"m1": m1_dir}, remote={
        "m2": PeerAddress("m2", "127.0.0.1", m2.port)})
    try:
        yield OverTheNetwork(m2, m2_dir, m1_dir, store, replicator)
    finally:
        replicator.stop()


def test_writes_here_are_shipped_there_and_a_returning_server_catches_up(over_the_network):
    net = over_the_network
    m2, m2_dir, m1_dir, store, replicator = net.m2, net.m2_dir, net.m1_dir, net.store, net.replicator
    # Written before the replicator watches: the first pass ships it.
    with WireClient(m2.port) as sql:   # the database exists on both (a DDL broadcast)
        sql.ok("manamboara tahiry s;")
        sql.ok("ampiasao s;")
        sql.ok("manamboara tabilao t (id ISA(null,null));")
    assert replicator.sync_all().copied >= 1    # m2's database pulled into m1
    assert version_of(m1_dir, TABLE) is not None
    replicator.start()
    store.append_rows("s", "t", COLUMNS, [[1], [2]])
    wait_until(lambda: _rows(m2_dir) == [1, 2], 10, "rows shipped to m2 over the network")
    store.append_rows("s", "t", COLUMNS, [[3]])
    wait_until(lambda: _rows(m2_dir) == [1, 2, 3], 10, "the next line shipped")
    stats = wait_until(lambda: (lambda s: s if s["lag_samples"] >= 2 else None)(
        replicator.stats()["m2"]), 5, "both copies counted as lag samples into m2")
    assert stats["lag_p99_ms"] < 5000

    # m2 takes writes itself while m1's server is "down": m1 catches up before it writes.
    replicator.stop()
    with WireClient(m2.port) as sql:
        sql.ok("ampiasao s;")
        sql.ok("manampia ao@ t sanda (4), (5);")
        sql.ok("manamboara tabilao u (x ISA(null,null));")
    summary = replicator.catch_up("m1")
    assert summary.copied >= 2 and not summary.unreachable
    assert _rows(m1_dir) == [1, 2, 3, 4, 5]
    assert version_of(m1_dir, "s/tables/u.json") is not None
    assert replicator.catch_up("m1").copied == 0   # nothing newer any more


def test_an_unreachable_server_is_a_failing_copy_retried_until_it_returns(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    m1_dir = tmp_path / "m1"
    Store(m1_dir)
    replicator = Replicator({"m1": m1_dir}, remote={"m2": PeerAddress("m2", "127.0.0.1", port)})
    try:
        summary = replicator.sync_all()
        assert summary.unreachable and "m2" in summary.unreachable[0]
    finally:
        replicator.stop()


def test_a_server_of_another_name_is_refused(remote_m2):
    m2, _ = remote_m2
    wrong = PeerLink(PeerAddress("m9", "127.0.0.1", m2.port))
    with pytest.raises(ConnectionError, match="is server m2, not m9"):
        wrong.hello()
    assert PeerLink(PeerAddress("m2", "127.0.0.1", m2.port)).hello() == "m2"


def test_equal_versions_are_compared_over_the_network_and_a_corrupt_copy_fetched(
        over_the_network):
    """m1 (this machine) and m2 (reached only over the network) at one version: the same
    content in two shapes is no conflict; another content is one, and nothing is copied
    either way; a corrupt copy of m1 is repaired from m2's."""
    net = over_the_network
    m2, m2_dir, m1_dir, store, replicator = net.m2, net.m2_dir, net.m1_dir, net.store, net.replicator
    with WireClient(m2.port) as sql:
        sql.ok("manamboara tahiry s;")
        sql.ok("ampiasao s;")
        sql.ok("manamboara tabilao t (id ISA(null,null));")
        sql.ok("manampia ao@ t sanda (1), (2);")
        sql.ok("manampia ao@ t sanda (3);")
    replicator.sync_all()
    assert _rows(m1_dir) == [1, 2, 3]
    version = version_of(m2_dir, TABLE)
    assert version_of(m1_dir, TABLE) == version and version.change > version.snapshot_change
    # The same content, folded into a snapshot here (its journal line gone): no conflict.
    assert store.checkpoint_all() == 1
    summary = replicator.sync_all()
    assert summary.conflicts == [] and summary.copied == 0
    assert replicator.conflicts() == []

    # Another content at the very version: a conflict, both copies kept as they are.
    other = current_document(m1_dir / TABLE)
    other["rows"] = [[7]]
    write_raw(m1_dir, TABLE, orjson.dumps(other))
    m2_before = {path.name: path.read_bytes() for path in (m2_dir / "s" / "tables").iterdir()}
    summary = replicator.sync_all()
    assert summary.conflicts == [TABLE] and summary.copied == 0
    [conflict] = replicator.conflicts()
    assert (conflict["path"], conflict["change"], conflict["servers"]) == (
        TABLE, version.change, ["m1", "m2"])
    assert replicator.stats()["m1"]["conflicts_found"] == 1
    assert _rows(m1_dir) == [7]
    assert {path.name: path.read_bytes()
            for path in (m2_dir / "s" / "tables").iterdir()} == m2_before
    replicator.sync_all()   # found again, not counted again
    assert replicator.stats()["m1"]["conflicts_found"] == 1

    # A truncated copy here, and no other server on this machine: m2's is fetched.
    data = (m1_dir / TABLE).read_bytes()
    write_raw(m1_dir, TABLE, data[:len(data) // 2])
    summary = replicator.sync_all()
    assert summary.healed == [TABLE], summary
    [repair] = replicator.stats()["m1"]["repairs"]
    assert (repair["source"], repair["change"]) == ("m2", version.change)
    assert (m1_dir / repair["kept_as"]).read_bytes() == data[:len(data) // 2]
    assert _rows(m1_dir) == [1, 2, 3] and replicator.conflicts() == []
