"""The per-query time limit (QueryLimits.max_seconds) holds wherever a query spends time.

Issue 14, item 3: with tables of 2,000 rows, a filter of 60 products over
their cross join ran 93 s past a 30 s limit, because the limit was only
tested between operators. Here the limit is 0.5 s and every query must stop
with the limit's own error within LIMIT + SLACK_S (the row loops test the
clock every few milliseconds; the slack is for a loaded machine), whichever
operator it is in:
filter, joins, grouping, ordering, set operators, views, a one-table plan.

The second half drives each relational operator with a deadline already
past: it must refuse before doing its work (no timing involved).
"""

import time

import pytest

from engine.errors import TahiryError
from engine.evaluation import relational
from engine.evaluation.catalog import ColumnInfo, TableData
from engine.evaluation.executor import Limits
from engine.evaluation.query import plan_query
from engine.evaluation.relational import AggregateSpec, EquiJoin, QueryLimits
from engine.language.parser import StatementParser
from engine.session import Session
from engine.storage.store import Store

LIMIT = 0.5
# What a loaded CI machine may add to the limit. The queries themselves run
# for tens of seconds without one, so the bound still tells them apart.
SLACK_S = 2.5
BOUND = LIMIT + SLACK_S
ROWS = 2000
TERMS = " + ".join(["x*y"] * 60)  # the condition: 60 products
TIMED_OUT = "Hadisoana : Ela loatra ny fangatahana"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A session whose queries may run LIMIT seconds, over a(x, k) and b(y, k) of ROWS rows.

    The view is made before the rows are there (making it runs its query).
    """
    store = Store(tmp_path_factory.mktemp("limit") / "data", durable=False)
    session = Session(store, limits=Limits(query=QueryLimits(max_seconds=LIMIT)))
    numbers = ",".join(f"({i}, 1)" for i in range(1, ROWS + 1))
    for statement in ("manamboara tahiry ela", "ampiasao ela",
                      "manamboara tabilao a (x ISA(null,null), k ISA(null,null))",
                      "manamboara tabilao b (y ISA(null,null), k ISA(null,null))",
                      f"manamboara jery v @ alaivo x, y ao@ a tonona@ b rehefa {TERMS} > 0",
                      f"manampia ao@ a sanda {numbers}",
                      f"manampia ao@ b sanda {numbers}"):
        outcome = session.execute_one(statement)
        assert outcome.ok, outcome.message
    return session


def stops_in_time(session, text):
    started = time.monotonic()
    outcome = session.execute_one(text)
    took = time.monotonic() - started
    assert not outcome.ok and outcome.message.startswith(TIMED_OUT), outcome.message[:200]
    assert took < BOUND, f"{took:.2f} s"
    # The session goes on: the next statements run, a write included.
    assert session.execute_one("alaivo count(*) ao@ a").relation.rows == [[ROWS]]


SLOW_QUERIES = {
    "filter over a cross join (the issue)": f"alaivo count(x) ao@ a tonona@ b rehefa {TERMS} > 0",
    "nested-loop join": f"alaivo count(*) ao@ a tonona b ka {TERMS} > x",
    "left nested-loop join": f"alaivo count(*) ao@ a tonona:avia@ b ka {TERMS} < x",
    "hash join with a residual": f"alaivo count(*) ao@ a tonona b ka a.k = b.k ary {TERMS} > 0",
    "right hash join with a residual":
        f"alaivo count(*) ao@ a tonona:avanana@ b ka a.k = b.k ary {TERMS} < 0",
    "hash join on a costly key": f"alaivo count(*) ao@ a tonona b ka a.k * {TERMS} = b.k",
    "natural join on booleans (nested loops)":
        "alaivo count(*) ao@ (alaivo x > 0 antso p ao@ a) s "
        "tonona:natoraly@ (alaivo y > 0 antso p ao@ b) u",
    "grouping": f"alaivo x, sum({TERMS}) ao@ a tonona@ b vondrona x",
    "aggregate without grouping": f"alaivo max({TERMS}) ao@ a tonona@ b",
    "ordering": f"alaivo x ao@ a tonona@ b alaharo {TERMS} fetra 1",
    "projection": f"alaivo {TERMS} ao@ a tonona@ b fetra 4000000",
    "set operator": f"alaivo x ao@ a tonona@ b rehefa {TERMS} > 0 ankambana alaivo x ao@ a",
    "set operator, right side": f"alaivo x ao@ a analana alaivo x ao@ a tonona@ b rehefa {TERMS} > 0",
    "view": "alaivo count(*) ao@ v",
    "derived table": f"alaivo count(*) ao@ (alaivo x ao@ a tonona@ b rehefa {TERMS} > 0) d",
}


@pytest.mark.parametrize("text", list(SLOW_QUERIES.values()), ids=list(SLOW_QUERIES))
def test_a_slow_query_stops_with_the_limit_error_in_time(quick, text):
    stops_in_time(quick, text)


# Joins whose every row is cheap (C-level loops) but that build 4M rows: more
# than a tenth of a second, so they must stop at a limit of 0.1 s.
BIG_QUERIES = {
    "cross join": "alaivo count(*) ao@ a tonona@ b",
    "natural join": "alaivo count(*) ao@ a tonona:natoraly@ b",
    "hash join": "alaivo count(*) ao@ a tonona b ka a.k = b.k",
    "full hash join": "alaivo count(*) ao@ a tonona:feno@ b ka a.k = b.k",
    "right hash join": "alaivo count(*) ao@ a tonona:avanana@ b ka a.k = b.k",
    "union": "alaivo x, y ao@ a tonona@ b ankambana alaivo y, x ao@ a tonona@ b",
}


@pytest.mark.parametrize("text", list(BIG_QUERIES.values()), ids=list(BIG_QUERIES))
def test_a_big_join_stops_with_the_limit_error_in_time(quick, text):
    tenth = Session(quick.store, limits=Limits(query=QueryLimits(max_seconds=0.1)))
    tenth.execute_one("ampiasao ela")
    started = time.monotonic()
    outcome = tenth.execute_one(text)
    took = time.monotonic() - started
    assert not outcome.ok and outcome.message.startswith(TIMED_OUT), outcome.message[:200]
    # Some of these joins take only 1-3 s whole: stopping in time means well
    # before the end, measured on the same machine in the same moment.
    whole = seconds_to_run(quick.store, text, cap_s=5.0)
    assert took < min(0.1 + SLACK_S, whole / 2), f"{took:.2f} s (whole: {whole:.2f} s)"


def seconds_to_run(store: Store, text: str, cap_s: float) -> float:
    """How long `text` takes without a tight limit (at most about `cap_s`)."""
    session = Session(store, limits=Limits(query=QueryLimits(max_seconds=cap_s)))
    session.execute_one("ampiasao ela")
    started = time.monotonic()
    session.execute_one(text)
    return time.monotonic() - started


def test_insert_of_a_slow_select_stops_before_writing(quick):
    stops_in_time(quick, f"manampia ao@ a alaivo x, y ao@ a tonona@ b rehefa {TERMS} > 0")


def test_fast_queries_still_answer(quick):
    assert quick.execute_one("alaivo count(*) ao@ a tonona b ka x = y").relation.rows \
        == [[ROWS]]
    assert quick.execute_one("alaivo x ao@ a alaharo x midina fetra 2").relation.rows \
        == [[ROWS], [ROWS - 1]]


# --------------------------------------------------------------------------
# Every operator refuses a deadline already past


PAST = QueryLimits(max_seconds=1.0, deadline=time.monotonic() - 1.0)
MANY = 5000  # more rows than one part


def refused(action):
    with pytest.raises(TahiryError) as caught:
        action()
    assert caught.value.message.startswith(TIMED_OUT), caught.value.message


def rows_of(count, width=2):
    return [[i] * width for i in range(count)]


def test_filter_and_map_refuse_a_past_deadline():
    refused(lambda: relational.filter_rows(bool, rows_of(MANY), PAST))
    refused(lambda: relational.map_rows(len, rows_of(MANY), PAST))


def test_joins_refuse_a_past_deadline():
    left, right = rows_of(MANY), rows_of(MANY)
    key = relational.key_getter([0])
    plain = EquiJoin(key, key, True)
    residual = EquiJoin(key, key, True, lambda row: row[1] == row[3])
    refused(lambda: relational.cross_join(left, right[:100], PAST))
    for kind in ("inner", "left", "right", "full"):
        refused(lambda kind=kind: relational.hash_join(kind, left, right, plain, 2, 2, PAST))
        refused(lambda kind=kind: relational.hash_join(kind, left, right, residual, 2, 2, PAST))
        refused(lambda kind=kind: relational.loop_join(
            kind, left, right[:100], lambda row: row[0] < row[2], 2, 2, PAST))
    refused(lambda: relational.natural_join(left, right, plain, relational.row_getter([1]), PAST))


def test_grouping_refuses_a_past_deadline():
    specs = [AggregateSpec("sum", relational.key_getter([1]), "sum(b)")]
    refused(lambda: relational.group_rows(rows_of(MANY), relational.key_getter([0]), [0], specs,
                                          PAST))
    refused(lambda: relational.group_rows(rows_of(MANY), None, [], specs, PAST))


@pytest.fixture
def small_sorts(monkeypatch):
    """A sort of more than 1,000 rows is a long one, sampled on its first 256."""
    monkeypatch.setattr(relational, "_SORT_AT_ONCE", 1000)
    monkeypatch.setattr(relational, "_SORT_SAMPLE", 256)


def test_sorting_refuses_a_past_deadline(small_sorts):
    keys = [(relational.key_getter([0]), False, "a")]
    refused(lambda: relational.sort_rows(rows_of(MANY), keys, PAST))
    refused(lambda: relational._sorted(range(MANY), list(range(MANY)).__getitem__, True, PAST))


@pytest.mark.parametrize("tagged", [False, True])
@pytest.mark.parametrize("op", ["union", "intersect", "except"])
def test_set_operators_refuse_a_past_deadline(op, tagged):
    refused(lambda: relational.set_operation(op, rows_of(MANY), rows_of(MANY), tagged, PAST))


class TickingClock:
    """A monotonic clock that moves one second each time it is read."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        self.now += 1.0
        return self.now


def test_a_sort_that_would_end_past_the_deadline_stops_at_once(small_sorts, monkeypatch):
    count = 100_000
    column = [str(i * 7919 % count) for i in range(count)]
    monkeypatch.setattr(relational, "time", TickingClock())
    # Sorting the first 256 rows "took" 1 s: the whole sort would take some
    # 800 s, past a deadline 100 s away: refused before it starts.
    refused(lambda: relational._sorted(range(count), column.__getitem__, False,
                                       QueryLimits(max_seconds=100.0, deadline=100.0)))
    # With time enough, the sampled sort is the plain sort (stable, both ways).
    later = QueryLimits(max_seconds=10_000.0, deadline=10_000.0)
    unbounded = QueryLimits(max_seconds=None)
    for descending in (False, True):
        expected = sorted(range(count), key=column.__getitem__, reverse=descending)
        assert relational._sorted(range(count), column.__getitem__, descending, later) == expected
        assert relational._sorted(range(count), column.__getitem__, descending,
                                  unbounded) == expected
        # Many equal keys: earlier rows stay first.
        ties = [i % 7 for i in range(count)]
        assert relational._sorted(range(count), ties.__getitem__, descending, later) \
            == sorted(range(count), key=ties.__getitem__, reverse=descending)


def test_a_one_table_plan_refuses_a_past_deadline():
    parser = StatementParser()
    query = parser.parse("alaivo x * x ao@ t rehefa x > 0")
    domain = [{"type": "ISA", "min": None, "max": None}]
    table = TableData("t", [ColumnInfo("x", domain)], [[i] for i in range(1, MANY + 1)])
    plan = plan_query(query.select, table, {})
    assert plan is not None
    assert len(plan.run(table, []).rows) == MANY
    refused(lambda: plan.run(table, [], PAST))


def test_a_planned_read_follows_the_sessions_limit(tmp_path):
    """A repeated one-table shape runs from its compiled plan (engine/session.py): that
    path must apply the session's limit too, not the default one."""
    store = Store(tmp_path / "data", durable=False)
    loader = Session(store)
    numbers = ",".join(f"({i})" for i in range(6000))   # above the plan's deadline threshold
    for statement in ("manamboara tahiry ela", "ampiasao ela",
                      "manamboara tabilao big (x ISA(null,null))",
                      f"manampia ao@ big sanda {numbers}"):
        assert loader.execute_one(statement).ok
    limited = Session(store, limits=Limits(query=QueryLimits(max_seconds=1e-9)))
    assert limited.execute_one("ampiasao ela").ok
    for bound in (1, 2, 3):   # the first run learns the shape, the next ones use its plan
        outcome = limited.execute_one(f"alaivo x ao@ big rehefa x * x > {bound}")
        assert not outcome.ok and outcome.message.startswith(TIMED_OUT), outcome.message


def test_a_cancelled_query_stops_within_a_part_of_its_rows(tmp_path):
    """`QueryLimits.cancel` (a server sets it when the client resets its connection):
    tested where the deadline is, so the query stops long before its limit."""
    import threading

    cancel = threading.Event()
    store = Store(tmp_path / "data", durable=False)
    session = Session(store, limits=Limits(query=QueryLimits(max_seconds=60.0, cancel=cancel)))
    numbers = ",".join(f"({i})" for i in range(1, ROWS + 1))
    for statement in ("manamboara tahiry ela", "ampiasao ela",
                      "manamboara tabilao a (x ISA(null,null))",
                      "manamboara tabilao b (y ISA(null,null))",
                      f"manampia ao@ a sanda {numbers}", f"manampia ao@ b sanda {numbers}"):
        assert session.execute_one(statement).ok
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    started = time.monotonic()
    outcome = session.execute_one(f"alaivo count(x) ao@ a tonona@ b rehefa {TERMS} > 0")
    took = time.monotonic() - started
    timer.join()
    assert not outcome.ok and "Najanona ny fangatahana" in outcome.message
    assert took < 0.3 + SLACK_S, took
