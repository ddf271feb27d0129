"""Two server processes that know each other's data directory (`--peer`), without replication.

What reaches one server's files from the other does so only through pull on
write: a write on m2 lands on top of m1's latest version of the table, and a
table dropped on one server is not written again on the other.
"""

from __future__ import annotations

import json

from tests.integration.wire import WireClient


def test_writes_moving_between_servers_build_on_each_other(start_node):
    m1_dir = start_node.workdir / "data" / "m1"
    m2_dir = start_node.workdir / "data" / "m2"
    m1 = start_node("server", "m1", "--data", str(m1_dir), "--peer", f"m2={m2_dir}")
    m2 = start_node("server", "m2", "--data", str(m2_dir), "--peer", f"m1={m1_dir}")
    with WireClient(m1.port) as one, WireClient(m2.port) as two:
        for client in (one, two):  # the balancer sends database DDL to every server
            assert client.one("manamboara tahiry s;").ok
            assert client.one("ampiasao s;").ok
        assert one.one("manamboara tabilao t (id ISA(null,null));").ok
        assert one.one("manampia ao@ t sanda (1), (2);").ok
        # m2 never received t: the write pulls m1's copy first.
        assert two.one("manampia ao@ t sanda (3);").ok, "pull on write"
        assert sorted(r[0] for r in two.one("alaivo id ao@ t;").relation.rows) == [1, 2, 3]
        # ... and back: m1 builds on m2's version.
        assert one.one("fafao ao@ t rehefa id = 1;").ok
        assert sorted(r[0] for r in one.one("alaivo id ao@ t;").relation.rows) == [2, 3]
        assert two.one("ravao ny tabilao t;").ok
        answer = one.one("manampia ao@ t sanda (4);")
        assert not answer.ok and "t n'as pas été trouvé" in answer.message
    m1_copy = json.loads((m1_dir / "s" / "tables" / "t.json").read_text())
    m2_copy = json.loads((m2_dir / "s" / "tables" / "t.json").read_text())
    assert m1_copy == m2_copy and m1_copy["dropped"] is True and m1_copy["change"] == 5
