"""A full disk on one server, seen by `python -m supervisor status`, and healed when space returns.

The whole cluster runs under the supervisor; m2's data directory is a real
tiny tmpfs, filled up while the cluster runs. Copies to m2 then fail: the
status table and `--json` say so (server, object, "No space left on
device"), and once space is back the copy lands and m2 is "ok" again.
Mounting needs root: the test skips otherwise (one line).
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import wire_request
from tests.faults import fill_up, tiny_tmpfs
from tests.integration.faultkit import logical_objects
from tests.integration.supervisorkit import Cluster

pytestmark = pytest.mark.slow  # a whole supervised cluster on a tmpfs

# Rows wider than a page: the copy's journal lines cannot fit in the slack of
# the last block of m2's journal, so the full disk really refuses them.
PAD = "x" * 5000

@pytest.fixture
def small_m2(tmp_path):
    """A cluster whose m2 data directory is a real 1 MiB tmpfs (needs root): (cluster, m2 dir)."""
    cluster = Cluster(tmp_path)
    with tiny_tmpfs(tmp_path / "data" / "m2", "1m") as data:
        try:
            yield cluster, data
        finally:
            leftovers = cluster.down_and_reap()  # nothing may keep the mount busy
    assert leftovers == [], "processes survived `down`"


def lagging(cluster: Cluster) -> dict[str, bool]:
    """Each server's `lagging` flag as the balancer applies it (its `.status`)."""
    answer = wire_request(cluster.ports["lb"], ".status;").splitlines()
    backends = json.loads(answer[answer.index("RESULT_MESSAGE") + 1])["backends"]
    return {backend: figures["lagging"] for backend, figures in backends.items()}


def wait_for_row(cluster: Cluster, node: str, predicate, what: str) -> dict:
    """`node`'s status row once `predicate` holds for it (Cluster.wait_for's deadline)."""
    return cluster.wait_for(lambda nodes: predicate(nodes[node]), what)[node]


def test_a_full_disk_on_m2_is_shown_by_status_and_the_copy_lands_when_space_returns(small_m2):
    cluster, m2_data = small_m2
    result = cluster.up()
    assert result.returncode == 0, result.stderr + cluster.supervisor_log()
    m1 = cluster.ports["m1"]
    answers = cluster.session("manamboara tahiry school;", "ampiasao school;",
                              "manamboara tabilao t (a ISA(null,null), pad LAHATSORATRA(null,null));",
                              f"manampia ao@ t sanda (1, '{PAD}');", port=m1)
    assert not any("Hadisoana" in answer for answer in answers), answers
    table = m2_data / "school" / "tables" / "t.json"
    wait_for_row(cluster, "m2", lambda row: table.exists() and row["repl_health"] == "ok",
                 "the table replicated to m2")

    filler = fill_up(m2_data)
    answers = cluster.session("ampiasao school;", f"manampia ao@ t sanda (2, '{PAD}'), (3, '{PAD}');",
                              port=m1)
    assert not any("Hadisoana" in answer for answer in answers), answers
    row = wait_for_row(cluster, "m2", lambda row: row["repl_failing"], "a failing copy listed")
    assert row["repl_health"] == "1 copy failing (No space left on device)"
    assert row["repl_failing"][0]["path"] == "school/tables/t.json"
    shown = cluster.cli("status", str(cluster.topology)).stdout
    m2_line = next(line for line in shown.splitlines() if line.startswith("m2 "))
    assert "repl 1 copy failing (No space left on device)" in m2_line, shown
    assert "copy of school/tables/t.json failing since" in m2_line
    # m2 lags for as long as the fault lasts: the balancer sends it no reads meanwhile
    # (a new session's read saw one row of three there, for the whole fault).
    cluster.wait_for(lambda nodes: lagging(cluster) == {"m1": False, "m2": True}, "m2 lagging")
    for _ in range(6):
        answers = cluster.session("ampiasao school;", "alaivo count(a) ao@ t;",
                                  port=cluster.ports["lb"])
        assert '"rows":[[3]]' in answers[1], answers

    filler.unlink()  # space returns: the retried copy lands by itself
    wait_for_row(cluster, "m2", lambda row: row["repl_health"] == "ok", "m2 healthy again")
    cluster.wait_for(lambda nodes: lagging(cluster) == {"m1": False, "m2": False},
                     "m2 takes reads again")
    objects = [logical_objects(root)["school/tables/t.json"]
               for root in (cluster.workdir / "data" / "m1", m2_data)]
    assert objects[0] == objects[1] and objects[0].problem is None
