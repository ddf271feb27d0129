"""run/handing-over.json (supervisor/handing_over.py): servers whose newest copies could not all
land elsewhere, kept the others' peers until they have, across supervisors."""

from __future__ import annotations

import asyncio
import json
import logging

import psutil

from supervisor.cluster import Cluster
from supervisor.handing_over import (
    HANDING_OVER_FILE,
    PendingHandOver,
    add_pending,
    read_pending,
    write_pending,
)
from supervisor.leftovers import Leftover, hand_over_departed
from supervisor.replicalink import ReplicationLink
from supervisor.topology import parse_topology
from tests.conftest import free_port
from tests.faults import fill_up, tiny_tmpfs
from tests.objectkit import TABLE, write_object

LOGGER = logging.getLogger("test-handing-over")


def test_entries_round_trip_and_one_is_added_beside_the_others(tmp_path):
    first = PendingHandOver("m3", "127.0.0.1", 3953, tmp_path / "data" / "m3")
    write_pending(tmp_path, [first])
    add_pending(tmp_path, PendingHandOver("m9", "127.0.0.1", 3959, tmp_path / "m9"), LOGGER)
    add_pending(tmp_path, PendingHandOver("m9", "127.0.0.1", 4000, tmp_path / "m9"), LOGGER)
    assert read_pending(tmp_path, LOGGER) == [
        first, PendingHandOver("m9", "127.0.0.1", 4000, tmp_path / "m9")]
    write_pending(tmp_path, [])
    assert not (tmp_path / HANDING_OVER_FILE).exists()


def test_an_entry_without_a_directory_is_ignored_with_a_log_line(tmp_path, caplog):
    """An empty `data` read as Path(""), the current folder: a directory that exists."""
    (tmp_path / HANDING_OVER_FILE).write_text(json.dumps(
        {"m3": {"host": "127.0.0.1", "port": 1, "data": ""}, "m4": {"host": "h", "port": 2}}))
    with caplog.at_level(logging.ERROR):
        assert read_pending(tmp_path, LOGGER) == []
    assert caplog.text.count("lists it wrongly") == 2


def test_a_departed_leftover_whose_copies_cannot_land_is_kept_for_the_next_supervisor(tmp_path):
    """Bug: a server a dead supervisor left, removed from the file meanwhile, was handed over
    by `down` (or `up`) once; copies that could not land (m1's disk full) were dropped, and
    nothing read its directory again: what only it had acknowledged was gone from the
    cluster. It is now kept in run/handing-over.json, so the next `up` keeps it a peer and
    retries (tests/supervisor/test_reload.py: the retries)."""
    with tiny_tmpfs(tmp_path / "small", "1m") as small:
        path = tmp_path / "topology.yaml"
        path.write_text(f"""\
supervisor: {{control_port: {free_port()}}}
http: {{enabled: false}}
nodes:
  m1: {{kind: server, host: 127.0.0.1, port: {free_port()}, data: {small / 'm1'}}}
""")
        topology = parse_topology(path.read_text(), path, {})
        (small / "m1").mkdir()
        departed = tmp_path / "data" / "m9"
        write_object(departed, TABLE, 7, rows=[[index, "x" * 200] for index in range(3000)])
        filler = fill_up(small)
        leftover = Leftover("m9", "server", "127.0.0.1:3959", psutil.Process(), data=departed)
        hand_over_departed(topology, [leftover], LOGGER)
        run = topology.supervisor.run
        assert read_pending(run, LOGGER) == [
            PendingHandOver("m9", "127.0.0.1", 3959, departed)]
        cluster = Cluster(topology, LOGGER)
        cluster.load_handing_over()
        assert list(cluster.handing_over) == ["m9"]
        filler.unlink()


def test_a_departed_leftover_handed_over_whole_is_not_kept(tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text(f"""\
supervisor: {{control_port: {free_port()}}}
http: {{enabled: false}}
nodes:
  m1: {{kind: server, host: 127.0.0.1, port: {free_port()}, data: data/m1}}
""")
    topology = parse_topology(path.read_text(), path, {})
    (tmp_path / "data" / "m1").mkdir(parents=True)
    departed = tmp_path / "data" / "m9"
    write_object(departed, TABLE, 7)
    leftover = Leftover("m9", "server", "127.0.0.1:3959", psutil.Process(), data=departed)
    assert hand_over_departed(topology, [leftover], LOGGER) >= 1
    assert (tmp_path / "data" / "m1" / TABLE).exists()
    assert read_pending(topology.supervisor.run, LOGGER) == []


def test_a_server_that_leaves_with_copies_undone_says_where_they_are(tmp_path, caplog):
    """A server that leaves although its copies could not land (a server moved to another
    machine did, until it was kept as `<id>~old`) said so at INFO, as if it had left whole.
    It is an error naming the directory to keep."""
    with tiny_tmpfs(tmp_path / "small", "1m") as small:
        (small / "m1").mkdir()
        leaving = tmp_path / "data" / "m3"
        write_object(leaving, TABLE, 7, rows=[[index, "x" * 200] for index in range(3000)])
        filler = fill_up(small)
        link = ReplicationLink({"m1": small / "m1", "m3": leaving}, True, LOGGER)
        with caplog.at_level(logging.INFO):
            assert asyncio.run(link.remove("m3", keep_if_undone=True)) is False   # kept
            assert asyncio.run(link.remove("m3")) is True                         # leaves
        filler.unlink()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR
              and "left with copies not handed over" in r.getMessage()]
    assert len(errors) == 1 and str(leaving) in errors[0], caplog.text
    assert "m3" not in link.replicator.servers()
