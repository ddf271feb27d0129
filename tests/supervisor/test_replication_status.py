"""`status` shows each server's replica health: ok, failing copies, corrupt and repaired objects.

The cluster's status rows come from the real replicator over real data
directories (no node processes): m2's `school/tables` is a file where the
folder should be (every copy into it fails, without root tricks), and m1
holds a corrupt copy of `u` that m2 can repair.
"""

from __future__ import annotations

import asyncio
import logging

from supervisor.cli import render_table
from supervisor.cluster import Cluster
from supervisor.replication_stats import ReplicationStats
from supervisor.topology import parse_topology
from tests.supervisor.replicakit import write_object, write_raw
from tests.supervisor.test_topology import GOOD


def rows_by_node(cluster: Cluster) -> dict[str, dict]:
    return {row["node"]: row for row in asyncio.run(cluster.status())}


def test_status_rows_and_table_show_failing_copies_and_repairs(tmp_path):
    topology = parse_topology(GOOD, tmp_path / "topology.yaml", {})
    cluster = Cluster(topology, logging.getLogger("test"))
    m1, m2 = (tmp_path / "data" / name for name in ("m1", "m2"))
    replicator = cluster.replication.replicator
    rows = rows_by_node(cluster)
    assert rows["m1"]["repl_health"] == "ok" and rows["m1"]["repl_failing"] == []
    assert "repl ok" in render_table(list(rows.values()))

    write_object(m1, "school/tables/t.json", 1)
    (m2 / "school").mkdir(parents=True)
    (m2 / "school" / "tables").write_text("a file where the folder should be")
    write_object(m2, "school/views/u.json", 2)
    write_raw(m1, "school/views/u.json", b"{torn")
    replicator.sync_all()

    rows = rows_by_node(cluster)
    m2_row = rows["m2"]
    assert m2_row["repl_health"] == "1 copy failing (school/tables is not a folder)"
    [failing] = m2_row["repl_failing"]
    assert failing["path"] == "school/tables/t.json" and failing["attempts"] == 1
    m1_row = rows["m1"]
    assert m1_row["repl_health"] == "ok" and m1_row["repl_healed"] == 1
    [repair] = m1_row["repl_repairs"]
    assert (repair["path"], repair["source"]) == ("school/views/u.json", "m2")
    table = render_table(list(rows.values()))
    m2_line = next(line for line in table.splitlines() if line.startswith("m2 "))
    assert "repl 1 copy failing (school/tables is not a folder)" in m2_line
    assert "copy of school/tables/t.json failing since" in m2_line
    m1_line = next(line for line in table.splitlines() if line.startswith("m1 "))
    assert "healed 1 corrupt (last school/views/u.json from m2" in m1_line

    (m2 / "school" / "tables").unlink()   # fixed: the next pass copies and clears it
    replicator.sync_all()
    assert rows_by_node(cluster)["m2"]["repl_health"] == "ok"


def test_a_conflict_with_a_server_not_reached_stays_open():
    """A conflict with a server of another machine is settled only once that server's copy
    was compared again (an unreachable one may still hold the other content)."""
    stats = ReplicationStats(logging.getLogger("test"), lag_window=10)
    for server_id in ("m1", "m2"):
        stats.add_server(server_id)
    stats.conflict("s/tables/t.json", 3, ("m1", "m2"))
    stats.settled("s/tables/t.json", unless={"m2"})
    assert [c["servers"] for c in stats.conflicts()] == [["m1", "m2"]]
    stats.settled("s/tables/t.json", unless={"m3"})
    assert stats.conflicts() == []
