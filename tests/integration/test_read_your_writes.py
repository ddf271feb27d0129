"""Read-your-writes across servers through the load balancer (nodes.freshness).

Two servers WITHOUT replication behind a balancer: a session writes t1
(owned by m1) and t2 (owned by m2), so no server holds both. A join of the
two cannot be answered correctly anywhere: the balancer waits for a backend
to catch up (bounded by --freshness-wait-ms), then answers from the most
up-to-date one (here: an error, the other table is missing there). Copying
the files by hand, as replication would, lets the `.versions` check find a
backend holding both, and the same join then succeeds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.wire import ClientPool, create_and_use, start_balanced_pair, tables_owned_by
from tests.objectkit import ship

WAIT_MS = 150


def replicate(source: Path, target: Path) -> None:
    """Replicate one object (given by its file in each data directory) as replication does."""
    source_root, target_root = source.parents[2], target.parents[2]
    ship(source_root, target_root, str(source.relative_to(source_root)))


@pytest.fixture
def pair(start_node):
    m1, m2, lb = start_balanced_pair(start_node, "--freshness-wait-ms", str(WAIT_MS))
    with ClientPool(lb.port) as connect:
        yield m1, m2, lb, connect


def test_a_join_of_tables_written_on_different_servers_waits_for_one_holding_both(pair):
    m1, m2, lb, connect = pair
    client = connect()
    create_and_use(client, "db")
    t1, t2 = tables_owned_by("m1", "db")[0], tables_owned_by("m2", "db")[0]
    for table, value in ((t1, 1), (t2, 2)):
        client.ok(f"manamboara tabilao {table} (a ISA(null,null));")
        client.ok(f"manampia ao@ {table} sanda ({value});")
    join = f"alaivo * ao@ {t1} tonona {t2};"

    # No server has both tables: after the bounded wait, the most up-to-date
    # backend answers, and it lacks one of them.
    stale = client.one(join)
    assert not stale.ok and (t1 in stale.message or t2 in stale.message)
    status = connect().status()
    assert status["counters"]["stale_fallbacks"] >= 1
    assert status["counters"]["version_checks"] >= 1
    # Each table alone is still read where it was written.
    assert client.rows(f"alaivo a ao@ {t1};") == [[1]]
    assert client.rows(f"alaivo a ao@ {t2};") == [[2]]

    # "Replicate" t1 into m2's data directory by hand.
    table_file = Path("db") / "tables" / f"{t1}.json"
    replicate(m1.workdir / "data" / "m1" / table_file, m2.workdir / "data" / "m2" / table_file)
    assert client.rows(join) == [[1, 2]]
    # m2 is now known to hold both: the next join needs no question.
    checks = connect().status()["counters"]["version_checks"]
    assert client.rows(join) == [[1, 2]]
    assert connect().status()["counters"]["version_checks"] == checks


def test_a_new_write_makes_an_older_copy_stale_again(pair):
    m1, m2, lb, connect = pair
    client = connect()
    create_and_use(client, "db")
    t1, t2 = tables_owned_by("m1", "db")[0], tables_owned_by("m2", "db")[0]
    for table in (t1, t2):
        client.ok(f"manamboara tabilao {table} (a ISA(null,null));")
    client.ok(f"manampia ao@ {t1} sanda (1);")
    table_file = Path("db") / "tables" / f"{t1}.json"
    replicate(m1.workdir / "data" / "m1" / table_file, m2.workdir / "data" / "m2" / table_file)
    join = f"alaivo * ao@ {t1} tonona {t2};"
    assert client.rows(join) == []          # t2 is empty; m2 holds both
    client.ok(f"manampia ao@ {t2} sanda (2);")
    assert client.rows(join) == [[1, 2]]    # m2 took the write and holds t1's copy

    # A second row in t1 on m1 only: m2's copy of t1 is now older than the
    # session's write, so the join is not answered from it (which would
    # silently miss the row): after the wait, m1 (holding the latest write)
    # answers, and it has no t2 ...
    client.ok(f"manampia ao@ {t1} sanda (3);")
    stale = client.one(join)
    assert not stale.ok and t2 in stale.message
    # ... until the new version is copied over too.
    replicate(m1.workdir / "data" / "m1" / table_file, m2.workdir / "data" / "m2" / table_file)
    assert sorted(client.rows(join)) == [[1, 2], [3, 2]]


def test_a_session_that_wrote_on_one_server_asks_nothing(pair):
    _, _, _, connect = pair
    client = connect()
    create_and_use(client, "db")
    t1 = tables_owned_by("m1", "db")[0]
    client.ok(f"manamboara tabilao {t1} (a ISA(null,null));")
    client.ok(f"manampia ao@ {t1} sanda (5);")
    for _ in range(5):
        assert client.rows(f"alaivo a ao@ {t1};") == [[5]]
        assert client.rows("asehoy ny tabilao;") == [[t1]]
    assert connect().status()["counters"]["version_checks"] == 0


def test_versions_are_answered_by_servers_only(pair):
    m1, _, lb, connect = pair
    client = connect()
    create_and_use(client, "db")
    t1 = tables_owned_by("m1", "db")[0]
    client.ok(f"manamboara tabilao {t1} (a ISA(null,null));")
    assert not connect().one(f".versions db {t1};").ok   # the balancer does not answer it
    direct = connect(m1.port)
    assert direct.ok(f".versions db {t1};").message == f'{{"{t1}":{{"table":1}}}}'
