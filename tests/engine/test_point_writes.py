"""Point updates and deletes (`rehefa id = 5`) write their rows without scanning the table.

- `RowPositions` (engine/evaluation/row_positions.py): derived from one
  version to the next over appends, sets and removes (entries of several
  ops), it always gives each row's position in its own version, and never
  a position for a row that is not there (a replaced or removed row, an
  equal copy).
- The executor: a write whose condition the equality index narrows tests
  only the rows holding the value (on the code before, every row), and
  gives exactly what a full scan gives (outcome, message, rows, the rows
  read back from disk), over tables with duplicate values, NULLs, `2` and
  `2.0`, mixed numbers and strings, conditions that raise on some rows,
  and tables past one chunk (engine/storage/row_list.py).
"""

from __future__ import annotations

from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.evaluation import query
from engine.evaluation.catalog import ColumnInfo, TableData
from engine.evaluation.row_positions import RowPositions
from engine.session import Session
from engine.storage import journal
from engine.storage.row_list import CHUNK
from engine.storage.store import Store

# -- RowPositions ---------------------------------------------------------------------------


COLUMNS = [{"name": "a", "domain": []}, {"name": "b", "domain": []}]


def table_of(rows: list) -> TableData:
    return TableData("t", [ColumnInfo(c["name"], c["domain"]) for c in COLUMNS], rows)


def draw_op(data, rows: list, next_key: int) -> list:
    """One journal op over `rows`: set, remove (positions ascending) or append."""
    kind = data.draw(st.sampled_from(["set", "remove", "append"] if rows else ["append"]))
    if kind == "append":
        return ["append", [[next_key + n, "new"] for n in range(data.draw(st.integers(1, 3)))]]
    chosen = sorted(data.draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=3,
                                       unique=True)))
    if kind == "remove":
        return ["remove", chosen]
    return ["set", [[p, [-p, "set"]] for p in chosen]]


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 40), st.data())
def test_derived_positions_find_every_row_of_each_version(size, data):
    table = table_of([[i, "x"] for i in range(size)])
    # The first point write searches; the second in a row builds the map.
    table.positions_of(table.rows[:1])
    assert table._positions is None
    table = table.successor({"name": "t", "columns": COLUMNS, "rows": table.rows}, [])
    next_key = size
    for _ in range(data.draw(st.integers(1, 12))):
        rows = table.rows
        ops: list = []
        current = list(rows)
        for _ in range(data.draw(st.integers(1, 3))):   # an entry of one to three ops
            op = draw_op(data, current, next_key)
            next_key += 10
            ops.append(op)
            current = list(journal.apply(current, [op], 2))
        assert table.positions_of(list(rows)) == list(range(len(rows)))
        assert table._positions is not None, "this version has its map"
        following = table.successor({"name": "t", "columns": COLUMNS,
                                     "rows": journal.apply(rows, ops, 2)}, ops)
        assert following._positions is not None, "every write is derived"
        assert following.positions_of(list(following.rows)) == list(range(len(following.rows)))
        kept = {id(row) for row in following.rows}
        for row in rows:   # gone from this version (replaced or removed): never a position
            if id(row) not in kept:
                assert following.positions_of([row]) is None
        table = following


def test_a_point_write_without_a_map_searches_and_the_second_builds_it():
    table = table_of([[i, "x"] for i in range(50)])
    assert table.positions_of([table.rows[7]]) == [7]   # a search
    assert table._positions is None
    after_delete = table.successor({"name": "t", "columns": COLUMNS, "rows": table.rows[1:]},
                                   [["remove", [0]]])
    assert after_delete.positions_of([after_delete.rows[7]]) == [7]
    assert after_delete._positions is not None, "the second point write in a row builds it"
    again = after_delete.successor({"name": "t", "columns": COLUMNS, "rows": after_delete.rows[2:]},
                                   [["remove", [0, 1]]])
    assert again._positions is not None, "a delete's successor derives it"
    assert again.positions_of([again.rows[9]]) == [9]


def test_removes_leave_holes_and_an_equal_copy_is_not_the_row():
    rows = [[i, "x"] for i in range(8)]
    positions = RowPositions.build(rows)
    # Remove positions 1 and 4, then (in the rows left) 0; then set the row now at 2.
    ops = [["remove", [1, 4]], ["remove", [0]], ["set", [[2, ["new", "x"]]]]]
    after = journal.apply(rows, ops, 2)
    assert [row[0] for row in after] == [2, 3, "new", 6, 7]
    derived = positions.derive(ops, after)
    assert derived.positions_of(after, list(after)) == [0, 1, 2, 3, 4]
    for gone in (rows[0], rows[1], rows[4], rows[5]):
        assert derived.positions_of(after, [gone]) is None
    assert derived.positions_of(after, [list(after[3])]) is None
    assert derived.positions_of(after, [after[4], after[0]]) == [4, 0]


def test_a_map_with_many_holes_is_built_again():
    rows = [[i, "x"] for i in range(100)]
    positions = RowPositions.build(rows)
    for _ in range(70):   # past the fold limit (64 at this size)
        ops = [["remove", [0]]]
        rows = journal.apply(rows, ops, 2)
        positions = positions.derive(ops, rows)
    assert len(positions._holes) < 70
    assert positions.positions_of(rows, list(rows)) == list(range(30))


# -- the executor ---------------------------------------------------------------------------

VALUES = ["0", "1", "2", "2.0", "2.5", "-1", "null", "'a'", "'b'", "'2'"]
SIZES = st.sampled_from([40, 70, CHUNK + 40])
CONDITIONS = [
    "c0 = {v}", "c0 = {v} ary c2 > 0", "c2 > 0 ary c0 = {v}", "c0 = {v} na c2 = 1",
    "c0 = {v} ary 10 / c2 > 1", "c0 = {v} ary c0 = {w}", "c1 = 'k{n}'", "c0 = {v} ary c1 = 'k{n}'",
    "! c0 = {v}", "c0 = null",
]
CHANGES = [
    "havaozy t ova c2 = c2 + 1 rehefa {c};", "havaozy t ova c0 = {w} rehefa {c};",
    "havaozy t ova c1 = 'k{n}', c0 = c2 rehefa {c};", "havaozy t ova c2 = 6 / c2 rehefa {c};",
    "fafao ao@ t rehefa {c};", "manampia ao@ t sanda ({v}, 'k{n}', {n});",
]
value = st.sampled_from(VALUES)


def session_on(path, rows: list[str]) -> Session:
    session = Session(Store(path, journal_writes=True))
    for script in ("manamboara tahiry db; ampiasao db;",
                   "manamboara tabilao t (c0 ISA(null,null):LAHATSORATRA(null,null), "
                   "c1 LAHATSORATRA(null,null), c2 ISA(null,null));",
                   f"manampia ao@ t sanda {', '.join(rows)};"):
        outcomes = session.execute(script)
        assert all(o.ok for o in outcomes), [o.message for o in outcomes if not o.ok]
    return session


def run_as_one_batch(session: Session, statements: list[str]) -> list[tuple[bool, str]]:
    """Statements committed together, as the server's group commit runs them: a failed
    one rolled back to its savepoint (nodes/server/node.py, `_batch_outcomes`)."""
    store = session.store
    outcomes = []
    store.begin_batch()
    try:
        for statement in statements:
            mark = store.batch_mark()
            outcome = session.execute_one(statement)
            if not outcome.ok:
                store.batch_rollback(mark)
            outcomes.append((outcome.ok, outcome.message))
        store.commit_batch()
    finally:
        store.abort_batch()
    return outcomes


def scanning():
    """The executor with no equality index for writes (nor reads): every row tested."""
    return mock.patch.object(query, "table_candidates", lambda where, table: None)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(size=SIZES, data=st.data())
def test_point_writes_give_what_a_full_scan_gives(tmp_path_factory, size, data):
    rows = [f"({data.draw(value)}, 'k{n % 5}', {n % 4})" for n in range(size)]
    folder = tmp_path_factory.mktemp("point")
    indexed, scanned = session_on(folder / "indexed", rows), session_on(folder / "scanned", rows)
    read = "alaivo * ao@ t;"
    for _ in range(data.draw(st.integers(1, 6))):
        statements = []
        for _ in range(data.draw(st.integers(1, 4))):
            words = {"v": data.draw(value), "w": data.draw(value), "n": data.draw(st.integers(0, 5))}
            condition = data.draw(st.sampled_from(CONDITIONS)).format(**words)
            statements.append(data.draw(st.sampled_from(CHANGES)).format(c=condition, **words))
        mine = run_as_one_batch(indexed, statements)
        with scanning():
            theirs = run_as_one_batch(scanned, statements)
        assert mine == theirs, statements
        # Read both ways: the indexed session through its derived indexes.
        with scanning():
            expected = scanned.execute_one(read).relation.rows
        assert indexed.execute_one(read).relation.rows == expected, statements
    indexed.store.checkpoint_all()
    reopened = Session(Store(folder / "indexed"))
    reopened.current_database = "db"
    with scanning():
        assert reopened.execute_one(read).relation.rows == scanned.execute_one(read).relation.rows


def test_a_point_update_or_delete_tests_only_the_rows_holding_the_value(tmp_path):
    size = 3 * CHUNK
    session = session_on(tmp_path, [f"({n}, 'k{n % 5}', {n % 4})" for n in range(size)])
    tested: list[int] = []
    compile_predicate = query.compile_table_predicate

    def counting(where, table, codes=None):
        predicate = compile_predicate(where, table, codes)

        def counted(row):
            tested.append(row[0])
            return predicate(row)
        return counted

    with mock.patch.object(query, "compile_table_predicate", counting):
        for statement in ("havaozy t ova c1 = 'x' rehefa c0 = 5;",
                          f"havaozy t ova c2 = 9 rehefa c0 = {size - 3} ary c2 > 0;",
                          "fafao ao@ t rehefa c0 = 7;", f"fafao ao@ t rehefa c0 = {size - 1};"):
            tested.clear()
            assert "(1 andalana)" in session.execute_one(statement).message, statement
            assert tested == [int(statement.split("c0 = ")[1].split()[0].rstrip(";"))], statement
    rows = session.execute_one("alaivo * ao@ t rehefa c0 < 9;").relation.rows
    assert [row[0] for row in rows] == [0, 1, 2, 3, 4, 5, 6, 8] and rows[5][1] == "x"
    assert session.execute_one(f"alaivo c2 ao@ t rehefa c0 = {size - 3};").relation.rows == [[9]]
