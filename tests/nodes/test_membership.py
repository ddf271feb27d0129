"""Cluster membership as a server sees it (nodes/server/membership.py).

`--peer` options and the peers file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from nodes.server.membership import PeerDirectories, parse_peer_address, parse_peer_option


def test_peers_file_is_reread_when_it_changes_and_a_bad_one_keeps_the_last(tmp_path, caplog):
    peers_file = tmp_path / "m1.peers.json"
    peers_file.write_text(json.dumps({"peers": {"m2": str(tmp_path / "m2")}}))
    peers = PeerDirectories({"fixed": tmp_path / "f"}, peers_file)
    assert peers.current() == {"m2": tmp_path / "m2", "fixed": tmp_path / "f"}
    peers_file.write_text(json.dumps({"peers": {"m2": str(tmp_path / "m2"),
                                                "m3": "m3"}}))   # relative: to the file's folder
    os.utime(peers_file, ns=(1, 1))
    assert peers.current()["m3"] == tmp_path / "m3"
    peers_file.write_text("{not json")
    with caplog.at_level(logging.ERROR, logger="nodes"):
        assert set(peers.current()) == {"m2", "m3", "fixed"}
    assert "bad peers file" in caplog.text


def test_peer_option_syntax():
    assert parse_peer_option("m2=/srv/m2") == ("m2", Path("/srv/m2"))
    for bad in ("m2", "=x", "m2="):
        with pytest.raises(ValueError):
            parse_peer_option(bad)


def test_a_peer_on_another_machine_is_named_by_its_address(tmp_path, caplog):
    made = []

    def remote(peer_id, host, port):
        made.append((peer_id, host, port))
        return f"remote {peer_id} {host}:{port}"   # stands for a RemotePeer

    peers_file = tmp_path / "m1.peers.json"
    peers_file.write_text(json.dumps({"peers": {
        "m2": str(tmp_path / "m2"), "m3": {"address": "10.0.0.3:3950"},
        "m4": {"data": str(tmp_path / "m4"), "address": "10.0.0.1:3952"}}}))
    peers = PeerDirectories(None, peers_file, addresses={"m5": ("[::1]", 4000)}, remote=remote)
    current = peers.current()
    assert current == {"m2": tmp_path / "m2", "m3": "remote m3 10.0.0.3:3950",
                       "m4": tmp_path / "m4", "m5": "remote m5 [::1]:4000"}
    assert peers.current() is current, "the same mapping while nothing changed"
    # Rewritten with the same address: the same peer (and connection); a new address: a new one.
    peers_file.write_text(json.dumps({"peers": {"m3": {"address": "10.0.0.3:3950"}}}))
    os.utime(peers_file, ns=(1, 1))
    assert peers.current()["m3"] == "remote m3 10.0.0.3:3950" and len(made) == 2
    peers_file.write_text(json.dumps({"peers": {"m3": {"address": "10.0.0.9:3950"}}}))
    os.utime(peers_file, ns=(2, 2))
    assert peers.current()["m3"] == "remote m3 10.0.0.9:3950" and len(made) == 3
    for bad in ({"m3": {"address": "nowhere"}}, {"m3": {"port": 1}}, {"m3": 7}):
        peers_file.write_text(json.dumps({"peers": bad}))
        os.utime(peers_file, ns=(3, 3))
        with caplog.at_level(logging.ERROR, logger="nodes"):
            assert peers.current()["m3"] == "remote m3 10.0.0.9:3950", "the last good list"


def test_peer_address_option_syntax():
    assert parse_peer_address("m2=10.0.0.2:3950") == ("m2", ("10.0.0.2", 3950))
    for bad in ("m2", "m2=host", "m2=host:x", "m2=host:0", "=h:1"):
        with pytest.raises(ValueError):
            parse_peer_address(bad)


# ----------------------------------------------------------- write leases (L1)

def _write(peers_file: Path, document: dict) -> None:
    peers_file.write_text(json.dumps(document))
    stat = peers_file.stat()
    os.utime(peers_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # seen as changed


def test_a_server_writes_only_while_its_peers_file_holds_a_lease(tmp_path):
    """docs/REPLICATION.md, "Write leases", L1: no `lease` key, writes as always; a lease
    with time left, writes; none, or one run out, a clean storage fault, nothing written."""
    import time

    from engine import Session, Store

    peers_file = tmp_path / "m1.peers.json"
    other = tmp_path / "m2"
    other.mkdir()
    _write(peers_file, {"peers": {"m2": str(other)}})
    peers = PeerDirectories(None, peers_file)
    session = Session(Store(tmp_path / "m1", peers=peers, node_id="m1", lock_timeout_s=1))
    assert session.execute_one("manamboara tahiry sekoly;").ok   # leases off: as before
    assert session.execute_one("ampiasao sekoly;").ok
    assert session.execute_one("manamboara tabilao t (id ISA(null,null));").ok

    _write(peers_file, {"peers": {"m2": str(other)},
                        "lease": {"epoch": 3, "until": time.monotonic() + 30}})
    assert session.execute_one("manampia ao@ t sanda (1);").ok
    assert peers.write_lease_problem() is None

    for lease, reason in ((None, "no majority"), ({"epoch": 3, "until": time.monotonic() - 1},
                                                   "ran out")):
        _write(peers_file, {"peers": {"m2": str(other)}, "lease": lease})
        refused = session.execute_one("manampia ao@ t sanda (2);")
        assert not refused.ok and "fahazoan-dalana" in refused.message, refused.message
        assert refused.message.endswith("[storage:write]"), refused.message
        assert reason in (peers.write_lease_problem() or "")
    rows = session.execute_one("alaivo id ao@ t;")
    assert rows.ok and [row[0] for row in rows.relation.rows] == [1]   # reads go on

    _write(peers_file, {"peers": {"m2": str(other)}, "lease": {"epoch": "x", "until": 1}})
    assert peers.write_lease_problem() is not None   # a bad lease: the last good one kept
