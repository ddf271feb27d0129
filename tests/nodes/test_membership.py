"""Cluster membership as a server sees it (nodes/server/membership.py).

`--peer` options and the peers file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from nodes.server.membership import PeerDirectories, parse_peer_option


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
