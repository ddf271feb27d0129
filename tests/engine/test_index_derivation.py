"""Equality indexes derived from the previous version's (catalog.EqualityIndex.derive,
TableData.successor, document_cache.derive_memo): always exactly the index built from
scratch over the new rows, and the old version's index never changes."""

from __future__ import annotations

import random
import shutil

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.evaluation import catalog
from engine.evaluation.catalog import ColumnInfo, EqualityIndex, TableData
from engine.session import Session
from engine.storage import journal
from engine.storage.document_cache import derive_memo
from engine.storage.row_list import CHUNK, RowList
from engine.storage.store import Store

WIDTH = 3
VALUES = [0, 1, 2, -1, 2.0, 2.5, 0.0, "a", "b", "2", "", None]
COLUMNS = [{"name": f"c{i}", "domain": []} for i in range(WIDTH)]


def document(rows: list) -> dict:
    return {"name": "t", "columns": COLUMNS, "rows": rows}


def table_of(rows: list) -> TableData:
    return TableData("t", [ColumnInfo(c["name"], []) for c in COLUMNS], rows)


def shape(index: EqualityIndex | dict) -> dict:
    """value -> the ids of its rows, in order: what an index must hold, objects included."""
    plain = index.as_dict() if isinstance(index, EqualityIndex) else index
    return {value: [id(row) for row in bucket] for value, bucket in plain.items()}


value = st.sampled_from(VALUES)
new_row = st.lists(value, min_size=WIDTH, max_size=WIDTH)


@st.composite
def entry_ops(draw, rows: int) -> list:
    """One journal entry's ops on a table of `rows` rows (1 to 3 ops, as batches chain them)."""
    ops: list = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["append", "append", "set", "set", "remove"]))
        if kind == "append" or rows == 0:
            added = draw(st.lists(new_row, min_size=1, max_size=4))
            ops.append(["append", added])
            rows += len(added)
        elif kind == "set":
            positions = draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=3))
            ops.append(["set", [[position, draw(new_row)] for position in positions]])
        else:
            positions = sorted(draw(st.sets(st.integers(0, rows - 1), min_size=1, max_size=3)))
            ops.append(["remove", positions])
            rows -= len(positions)
    return ops


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(new_row, max_size=40), st.data())
def test_a_chain_of_derived_indexes_equals_the_index_built_from_scratch(start, data):
    table = table_of([list(row) for row in start])
    for column in range(WIDTH):
        table.equality_index(column)
    for _ in range(data.draw(st.integers(1, 8))):
        ops = data.draw(entry_ops(len(table.rows)))
        before = {column: shape(index) for column, index in table._indexes.items()}
        rows = journal.apply(table.rows, ops, WIDTH)
        following = table.successor(document(rows), ops)
        assert following.rows is rows
        for column in range(WIDTH):
            # The old version's index is untouched; the new one is exact (derived or rebuilt).
            assert shape(table._indexes[column]) == before[column]
            assert shape(following.equality_index(column)) == shape(EqualityIndex.build(rows, column))
            for probe in VALUES:
                expected = EqualityIndex.build(rows, column).get(probe)
                found = following.equality_index(column).get(probe)
                assert (found or []) == (expected or [])
        table = following


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(new_row, max_size=10), st.data())
def test_derived_indexes_over_rows_shared_in_chunks_equal_a_rebuild(tail, data):
    """The same chain over a table past one chunk, whose appends share its rows
    (engine/storage/row_list.py) instead of copying them."""
    base = [[VALUES[i % len(VALUES)], VALUES[i * 7 % len(VALUES)], i] for i in range(CHUNK)]
    table = table_of(base + [list(row) for row in tail])
    for column in range(WIDTH):
        table.equality_index(column)
    for _ in range(data.draw(st.integers(1, 5))):
        ops = data.draw(entry_ops(len(table.rows)))
        shared = type(table.rows) is RowList or len(table.rows) >= CHUNK
        rows = journal.apply(table.rows, ops, WIDTH)
        if shared and all(kind == "append" for kind, _ in ops):
            assert type(rows) is RowList
        following = table.successor(document(rows), ops)
        for column in range(WIDTH):
            rebuilt = EqualityIndex.build(list(rows), column)
            assert shape(following.equality_index(column)) == shape(rebuilt)
        table = following


def test_appends_are_always_derived_and_fold_past_the_limit():
    rows = [[i, i % 7, f"s{i}"] for i in range(1000)]
    table = table_of(rows)
    for column in range(WIDTH):
        table.equality_index(column)
    base = table._indexes[0]._base
    folded = False
    for step in range(300):
        ops = [["append", [[1000 + step, step % 7, None]]]]
        following = table.successor(document(journal.apply(table.rows, ops, WIDTH)), ops)
        assert set(following._indexes) == {0, 1, 2}          # nothing left to rebuild
        folded = folded or following._indexes[0]._base is not base
        assert len(following._indexes[0]._delta) <= catalog.fold_limit(len(base)) or folded
        table = following
    assert folded
    for column in range(WIDTH):
        assert shape(table._indexes[column]) == shape(EqualityIndex.build(table.rows, column))


def test_a_row_moved_among_other_rows_of_its_new_value_is_rebuilt_not_guessed():
    rows = [[1, "a", None], [2, "b", None], [3, "a", None]]
    table = table_of(rows)
    table.equality_index(1)
    ops = [["set", [[1, [2, "a", None]]]]]   # row 1 joins rows 0 and 2 in bucket 'a'
    following = table.successor(document(journal.apply(rows, ops, WIDTH)), ops)
    assert 1 not in following._indexes                   # built again on first use
    assert [row[0] for row in following.equality_index(1).get("a")] == [1, 2, 3]


def test_a_row_object_held_twice_is_not_derived():
    shared = [1, "a", None]
    rows = [shared, [2, "b", None], shared]
    table = table_of(rows)
    table.equality_index(0)
    ops = [["remove", [2]]]
    following = table.successor(document(journal.apply(rows, ops, WIDTH)), ops)
    assert 0 not in following._indexes
    assert following.equality_index(0).get(1) == [shared]


def test_derive_memo_keeps_successors_only_and_never_raises():
    class Broken:
        def successor(self, document, ops):
            raise RuntimeError("a bug")

    table = table_of([[1, "a", None]])
    table.equality_index(0)
    ops = [["append", [[2, "b", None]]]]
    new = document(journal.apply(table.rows, ops, WIDTH))
    memo = derive_memo({"table": table, "broken": Broken(), "plain": 3}, new, ops)
    assert set(memo) == {"table"}
    assert memo["table"].rows is new["rows"]
    assert shape(memo["table"]._indexes[0]) == shape(EqualityIndex.build(new["rows"], 0))


def _statements(rng: random.Random, count: int) -> list[str]:
    statements = []
    for step in range(count):
        kind = rng.choice(["insert", "insert", "update", "update_key", "delete", "read"])
        key = rng.randrange(60)
        if kind == "insert":
            statements.append(f"manampia ao@ t sanda ({key}, {rng.randrange(5)}, 'v{step}');")
        elif kind == "update":
            statements.append(f"havaozy t ova b = {rng.randrange(5)} rehefa id = {key};")
        elif kind == "update_key":
            moved, named = rng.randrange(60), rng.randrange(step + 1)
            statements.append(f"havaozy t ova id = {moved} rehefa c = 'v{named}';")
        elif kind == "delete":
            statements.append(f"fafao ao@ t rehefa id = {key};")
        else:
            statements.append(f"alaivo c ao@ t rehefa id = {key};")
    return statements


def test_the_store_commits_derived_indexes_that_match_a_rebuild(tmp_path):
    """Through Session and Store: after each write the cached version's indexes were derived
    (present before any read of it) and equal what a fresh build over its rows gives."""
    session = Session(Store(tmp_path / "data", durable=False))
    session.execute("manamboara tahiry db; ampiasao db; "
                    "manamboara tabilao t (id ISA(null,null), b ISA(null,null), "
                    "c LAHATSORATRA(null,null));")
    values = ", ".join(f"({i % 50}, {i % 5}, 'v{i}')" for i in range(200))
    session.execute(f"manampia ao@ t sanda {values};")
    session.execute("alaivo c ao@ t rehefa id = 1 ary b = 1;")   # builds the index of id
    session.execute("alaivo c ao@ t rehefa b = 1;")               # and of b
    derived = 0
    rng = random.Random(12)
    for statement in _statements(rng, 150):
        outcome = session.execute(statement)[0]
        assert outcome.ok, (statement, outcome.message)
        document, memo = session.store.read_with_memo("db", "table", "t")
        table = memo.get("table")
        if table is not None:
            assert table.rows is document["rows"]
            for column, index in table._indexes.items():
                assert shape(index) == shape(EqualityIndex.build(document["rows"], column))
            derived += statement.startswith("manampia") and 0 in table._indexes
        key = rng.randrange(60)
        found = session.execute(f"alaivo c ao@ t rehefa id = {key};")[0].relation.rows
        scanned = session.execute(f"alaivo c ao@ t rehefa id + 0 = {key};")[0].relation.rows
        assert found == scanned
    assert derived > 10


def test_a_batch_of_several_writes_derives_from_the_version_it_read(tmp_path):
    store = Store(tmp_path / "data", durable=False)
    session = Session(store)
    session.execute("manamboara tahiry db; ampiasao db; "
                    "manamboara tabilao t (id ISA(null,null), b ISA(null,null), "
                    "c LAHATSORATRA(null,null));")
    values = ", ".join(f"({i}, {i % 5}, 'v{i}')" for i in range(100))
    session.execute(f"manampia ao@ t sanda {values};")
    session.execute("alaivo c ao@ t rehefa id = 1;")
    old = store.read_with_memo("db", "table", "t")[1]["table"]
    old_shape = shape(old._indexes[0])
    with store.write_batch():
        for statement in ("manampia ao@ t sanda (7, 1, 'x');", "havaozy t ova b = 9 rehefa id = 3;",
                          "fafao ao@ t rehefa id = 4;", "manampia ao@ t sanda (4, 2, 'y');"):
            store.begin_statement()
            assert session.execute(statement)[0].ok
    document, memo = store.read_with_memo("db", "table", "t")
    assert shape(old._indexes[0]) == old_shape
    table = memo["table"]
    assert 0 in table._indexes
    assert shape(table._indexes[0]) == shape(EqualityIndex.build(document["rows"], 0))
    assert [row[2] for row in table.equality_index(0).get(4)] == ["y"]
    assert [row[2] for row in table.equality_index(0).get(7)] == ["v7", "x"]


def test_a_checkpoint_keeps_the_cached_version_and_its_indexes(tmp_path):
    store = Store(tmp_path / "data", durable=False)
    session = Session(store)
    session.execute("manamboara tahiry db; ampiasao db; "
                    "manamboara tabilao t (id ISA(null,null), c LAHATSORATRA(null,null));")
    session.execute("manampia ao@ t sanda " + ", ".join(f"({i}, 'v{i}')" for i in range(100)) + ";")
    session.execute("manampia ao@ t sanda (5, 'again');")
    session.execute("alaivo c ao@ t rehefa id = 5;")
    document, memo = store.read_with_memo("db", "table", "t")
    path = store.object_path("db", "table", "t")
    assert journal.journal_path(path).exists()
    assert store.checkpoint(path)
    assert not journal.journal_path(path).exists()
    after, kept = store.read_with_memo("db", "table", "t")
    assert after is document and kept is memo               # not decoded again
    assert after == Store(tmp_path / "data").read("db", "table", "t")   # what the file holds
    assert session.execute("alaivo c ao@ t rehefa id = 5;")[0].relation.rows == [["v5"], ["again"]]
    session.execute("manampia ao@ t sanda (5, 'third');")
    assert 0 in store.read_with_memo("db", "table", "t")[1]["table"]._indexes
    assert session.execute("alaivo c ao@ t rehefa id = 5;")[0].relation.rows == [
        ["v5"], ["again"], ["third"]]


def test_reads_inside_a_batch_reuse_and_derive_the_pending_versions_indexes(tmp_path):
    """A pipelined insert / read / insert / read in one group commit: each read of the
    pending version finds its index derived (the row list even grows in place), exact."""
    store = Store(tmp_path / "data", durable=False)
    session = Session(store)
    session.execute("manamboara tahiry db; ampiasao db; "
                    "manamboara tabilao t (id ISA(null,null), c LAHATSORATRA(null,null));")
    session.execute("manampia ao@ t sanda " + ", ".join(f"({i % 40}, 'v{i}')" for i in range(100)) + ";")
    session.execute("alaivo c ao@ t rehefa id = 1;")
    cached = store.read_with_memo("db", "table", "t")[1]["table"]
    cached_shape = shape(cached._indexes[0])
    with store.write_batch():
        for step in range(6):
            store.begin_statement()
            assert session.execute(f"manampia ao@ t sanda ({step}, 'n{step}');")[0].ok
            document, memo = store.read_with_memo("db", "table", "t")
            assert 0 in memo["table"]._indexes                    # derived, not built
            assert shape(memo["table"]._indexes[0]) == shape(EqualityIndex.build(document["rows"], 0))
            store.begin_statement()
            rows = session.execute(f"alaivo c ao@ t rehefa id = {step};")[0].relation.rows
            assert rows[-1] == [f"n{step}"]
        mark = store.batch_mark()
        store.begin_statement()
        assert session.execute("fafao ao@ t rehefa id = 3;")[0].ok
        store.batch_rollback(mark)                                 # as a failed statement
        store.begin_statement()
        assert session.execute("alaivo c ao@ t rehefa id = 3;")[0].relation.rows[-1] == ["n3"]
    assert shape(cached._indexes[0]) == cached_shape               # the old version untouched
    document, memo = store.read_with_memo("db", "table", "t")
    assert shape(memo["table"].equality_index(0)) == shape(EqualityIndex.build(document["rows"], 0))
    fresh = Store(tmp_path / "data").read("db", "table", "t")
    assert fresh == document
    assert session.execute("alaivo c ao@ t rehefa id = 5;")[0].relation.rows == [
        ["v5"], ["v45"], ["v85"], ["n5"]]


def test_the_document_cache_keeps_a_given_memo_and_shows_it():
    from engine.storage.document_cache import DocumentCache

    cache = DocumentCache()
    memo = {"table": 1}
    assert cache.remember("k", (1, 2, 3), {"name": "t"}, memo) is memo
    assert cache.get("k", (1, 2, 3)) == ({"name": "t"}, memo)
    assert cache.peek_entry("k") == ((1, 2, 3), {"name": "t"}, memo)
    assert cache.remember("k", (1, 2, 4), {"name": "t"}) == {}
    assert cache.peek_entry("missing") is None


def test_a_successor_keeps_the_columns_object_when_they_are_the_same():
    table = table_of([[1, "a", None]])
    ops = [["append", [[2, "b", None]]]]
    rows = journal.apply(table.rows, ops, WIDTH)
    assert table.successor(document(rows), ops).columns is table.columns
    renamed = {"name": "t", "columns": [{"name": "x", "domain": []}] + COLUMNS[1:], "rows": rows}
    other = table.successor(renamed, ops)
    assert other.columns is not table.columns and other.columns[0].name == "x"


def test_a_replica_grown_by_shipped_journal_lines_derives_its_indexes(tmp_path):
    """Replication appends the writer's journal lines to the replica's journal
    (engine/storage/object_copy.py): the replica's next read extends its cached
    version by those lines and derives its indexes too, rather than rebuilding."""
    writer_store = Store(tmp_path / "m1", durable=False)
    writer = Session(writer_store)
    writer.execute("manamboara tahiry db; ampiasao db; "
                   "manamboara tabilao t (id ISA(null,null), c LAHATSORATRA(null,null));")
    writer.execute("manampia ao@ t sanda " + ", ".join(f"({i}, 'v{i}')" for i in range(100)) + ";")
    path = writer_store.object_path("db", "table", "t")
    assert journal.journal_path(path).exists()              # the replica holds a journal too
    shutil.copytree(tmp_path / "m1", tmp_path / "m2",
                    ignore=shutil.ignore_patterns(".tahiry.*"))
    copied = journal.journal_path(path).stat().st_size
    replica_store = Store(tmp_path / "m2", durable=False)
    replica = Session(replica_store)
    replica.execute("ampiasao db;")
    assert replica.execute("alaivo c ao@ t rehefa id = 7;")[0].relation.rows == [["v7"]]
    before = replica_store.read_with_memo("db", "table", "t")[1]["table"]
    assert 0 in before._indexes
    writer.execute("manampia ao@ t sanda (7, 'again'), (200, 'new');")
    writer.execute("fafao ao@ t rehefa id = 3;")
    shipped = journal.journal_path(path).read_bytes()[copied:]   # the lines the replica lacks
    with open(journal.journal_path(replica_store.object_path("db", "table", "t")), "ab") as out:
        out.write(shipped)                                   # as replication appends them
    document, memo = replica_store.read_with_memo("db", "table", "t")
    table = memo["table"]
    assert table is not before and 0 in table._indexes     # derived, before any lookup
    assert shape(table._indexes[0]) == shape(EqualityIndex.build(document["rows"], 0))
    assert replica.execute("alaivo c ao@ t rehefa id = 7;")[0].relation.rows == [["v7"], ["again"]]
    assert replica.execute("alaivo c ao@ t rehefa id = 3;")[0].relation.rows == []
