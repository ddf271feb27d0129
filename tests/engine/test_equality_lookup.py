"""engine.evaluation.equality_lookup: the equality index answers exactly as the full scan does."""

from __future__ import annotations

from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import TahiryError
from engine.evaluation import equality_lookup
from engine.evaluation.catalog import ColumnInfo, TableData
from engine.evaluation.query import evaluate_query
from engine.language.parser import StatementParser
from engine.session import Session
from engine.storage.store import Store

PARSER = StatementParser()
WIDTH = 3
VALUES = [0, 1, 2, -1, 2.0, 2.5, 0.0, "a", "b", "2", "", None]
LITERALS = ["0", "1", "2", "2.0", "2.5", "-1", "'a'", "'b'", "'2'", "''", "null"]


class OneTable:
    """A Catalog holding one table `t` (no views)."""

    database = "db"

    def __init__(self, table: TableData):
        self._table = table

    def table(self, name):
        return self._table if name == "t" else None

    def view_query(self, name):
        return None


def make_table(rows) -> TableData:
    columns = [ColumnInfo(f"c{i}", []) for i in range(WIDTH)]
    return TableData("t", columns, [list(row) for row in rows])


column = st.sampled_from([f"c{i}" for i in range(WIDTH)] + ["t.c0", "x.c1"])
literal = st.sampled_from(LITERALS)
equality = st.one_of(
    st.builds(lambda c, v: f"{c} = {v}", column, literal),
    st.builds(lambda c, v: f"{v} = {c}", column, literal))
other = st.one_of(
    st.builds(lambda c, v: f"{c} != {v}", column, literal),
    st.builds(lambda c, v: f"{c} < {v}", column, literal),   # may raise: string vs number
    st.builds(lambda c: f"{c} dia null", column),
    st.builds(lambda c: f"{c} + 1 = 2", column),               # may raise: a string
    st.sampled_from(["1 = 1", "1 = 2", "null = 1"]))
atom = st.one_of(equality, equality, other)


def conditions():
    return st.recursive(atom, lambda inner: st.one_of(
        st.builds(lambda a, b: f"({a}) ary ({b})", inner, inner),
        st.builds(lambda a, b: f"{a} ary {b}", inner, inner),
        st.builds(lambda a, b: f"({a}) na ({b})", inner, inner),
        st.builds(lambda a: f"!({a})", inner)), max_leaves=5)


def answer(query_text: str, table: TableData, indexed: bool):
    """(rows, column names) or ('error', message)."""
    select = PARSER.parse(query_text).select
    minimum = 0 if indexed else 10**9
    with mock.patch.object(equality_lookup, "MIN_INDEXED_ROWS", minimum):
        try:
            relation = evaluate_query(select, OneTable(table))
        except TahiryError as error:
            return "error", error.message
    return relation.rows, [c.name for c in relation.columns]


rows_strategy = st.lists(st.tuples(*[st.sampled_from(VALUES)] * WIDTH), min_size=0, max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_strategy, condition=conditions(),
       head=st.sampled_from(["alaivo * ao@ t antso x", "alaivo c2, c0 ao@ t antso x",
                             "alaivo * ao@ t"]))
def test_indexed_and_scanned_answers_agree(rows, condition, head):
    if "x." in condition and "antso x" not in head:
        condition = condition.replace("x.", "t.")
    if "t." in condition and "antso x" in head:
        condition = condition.replace("t.", "x.")
    table = make_table(rows)
    text = f"{head} rehefa {condition}"
    try:
        PARSER.parse(text)
    except TahiryError:
        return
    assert answer(text, table, indexed=True) == answer(text, table, indexed=False)


def test_the_index_follows_the_language_equality():
    rows = [[5, "a", None], [5.0, "b", None], ["5", "c", None], [None, "d", None],
            [6, "e", None]] * 10
    table = make_table(rows)
    found, _ = answer("alaivo c1 ao@ t rehefa c0 = 5", table, indexed=True)
    assert found == [["a"], ["b"]] * 10                  # 5 = 5.0, never '5', order kept
    assert answer("alaivo c1 ao@ t rehefa c0 = '5'", table, indexed=True)[0] == [["c"]] * 10
    assert answer("alaivo c1 ao@ t rehefa c0 = null", table, indexed=True)[0] == []
    assert answer("alaivo c1 ao@ t rehefa c0 = 5 ary c1 = 'b'", table, indexed=True)[0] == [["b"]] * 10


def test_an_error_the_scan_raises_before_the_equality_is_still_raised():
    rows = [[1, "text"]] + [[2, 3]] * 40
    table = TableData("t", [ColumnInfo("c0", []), ColumnInfo("c1", [])], rows)
    text = "alaivo * ao@ t rehefa c1 + 1 < 5 ary c0 = 2"   # 'text' + 1 raises on the first row
    scanned = answer(text, table, indexed=False)
    assert scanned[0] == "error"
    assert answer(text, table, indexed=True) == scanned


def test_the_index_is_built_once_per_version_of_the_table(tmp_path):
    session = Session(Store(tmp_path / "data", durable=False))
    session.execute("manamboara tahiry db; ampiasao db; "
                    "manamboara tabilao t (id ISA(null,null), v LAHATSORATRA(null,null));")
    values = ", ".join(f"({i % 50}, 'v{i}')" for i in range(200))
    session.execute(f"manampia ao@ t sanda {values};")
    first = session.store.read_with_memo("db", "table", "t")
    assert session.execute("alaivo v ao@ t rehefa id = 7;")[0].relation.rows == [
        ["v7"], ["v57"], ["v107"], ["v157"]]
    table = first[1]["table"]
    index = table._indexes[0]
    session.execute("alaivo v ao@ t rehefa id = 8;")
    assert table._indexes[0] is index                     # same version: same index
    session.execute("manampia ao@ t sanda (7, 'new');")
    assert session.store.read_with_memo("db", "table", "t")[1] is not first[1]
    assert session.execute("alaivo v ao@ t rehefa id = 7;")[0].relation.rows == [
        ["v7"], ["v57"], ["v107"], ["v157"], ["new"]]
    session.execute("fafao ao@ t rehefa id = 7;")
    assert session.execute("alaivo v ao@ t rehefa id = 7;")[0].relation.rows == []
