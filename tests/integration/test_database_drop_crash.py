"""A database drop killed -9 in the middle: the whole database, or none of it.

`ravao ny tahiry DB` writes a tombstone for every object of the database
and one for its marker, file by file. A real server (under
tests/integration/crashing_server.py) is SIGKILLed after each of those
renames in turn; then, on a restarted server (recovery runs) and on a peer
directory that never saw the drop, brought up to date by the replicator
(newest wins, file by file), the database must be either whole (every
table listed and readable) or gone, and a database created again under
the same name must be empty: an object left live by the interrupted drop
never comes back.
"""

from __future__ import annotations

import logging
import shutil

import pytest

from supervisor.replication import Replicator
from tests.integration.crash_sweep import DATABASE, FIXED_TABLES, create_schema
from tests.integration.faultkit import (
    ConnectionLost,
    WireClient,
    free_port,
    server_command,
    start_process,
    stop_process,
)

DROP = f"ravao ny tahiry {DATABASE}"
# The drop of a database with two tables renames three files (two tables and the
# marker): killed before the first, after the first and after the second.
KILL_POINTS = ("before-replace:1@commit", "after-replace:1@commit", "after-replace:2@commit")


def _drop_killed(tmp_path, data, point: str) -> None:
    port = free_port()
    child = start_process(server_command("m1", port, data, kill_at=point), tmp_path / "m1.log",
                          tmp_path, port)
    try:
        child.wait_ready()
        with WireClient(port, timeout=10) as client:
            with pytest.raises(ConnectionLost):   # the client is told nothing: outcome unknown
                client.execute(DROP)
        assert child.popen.wait(timeout=10) == -9
        assert f"CRASHING_SERVER KILL {point}" in child.log_text()
    finally:
        stop_process(child)


def _seen_by_a_server(tmp_path, data, name: str) -> tuple[bool, list[str], list[str]]:
    """On a plain server over `data`: (database listed, its tables, the tables once it is
    created again), then a clean stop."""
    port = free_port()
    child = start_process(server_command(name, port, data), tmp_path / f"{name}.log",
                          tmp_path, port)
    try:
        child.wait_ready()
        with WireClient(port, timeout=10) as client:
            listed = client.execute("asehoy ny tahiry")
            assert listed.ok, listed.message
            exists = [DATABASE] in [list(row) for row in listed.relation.rows]
            tables: list[str] = []
            if exists:
                assert client.use(DATABASE).ok
                shown = client.execute("asehoy ny tabilao")
                assert shown.ok, shown.message
                tables = [row[0] for row in shown.relation.rows]
                for table in tables:   # listed and readable
                    answer = client.execute(f"alaivo k ao@ {table}")
                    assert answer.ok, answer.message
                dropped = client.execute(DROP)   # finished by hand, as the operator would
                assert dropped.ok, dropped.message
            created = client.execute(f"manamboara tahiry {DATABASE}")
            assert created.ok, created.message
            assert client.use(DATABASE).ok
            shown = client.execute("asehoy ny tabilao")
            assert shown.ok, shown.message
            again = [row[0] for row in shown.relation.rows]
        return exists, tables, again
    finally:
        assert stop_process(child) == 0


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_drop_killed_between_its_files_leaves_the_whole_database_or_none(tmp_path, point):
    data = tmp_path / "data"
    create_schema(data)
    peer = tmp_path / "peer"   # a server that was down during the drop: the old database
    shutil.copytree(data, peer)
    _drop_killed(tmp_path, data, point)

    # The peer catches up from what the crash left, file by file (newest wins).
    Replicator({"m1": data, "m2": peer}, logging.getLogger("test.drop"),
               resync_interval_s=0).sync_all()

    for name, directory in (("m1", data), ("m2", peer)):
        exists, tables, again = _seen_by_a_server(tmp_path, directory, name)
        if exists:
            assert sorted(tables) == sorted(FIXED_TABLES), f"{name}: half a drop: {tables}"
        # Its first file in place, the drop has happened: the marker goes first.
        assert exists == point.startswith("before"), f"{name}: {point}, listed: {exists}"
        assert again == [], f"{name}: the dropped database's tables came back: {again}"
