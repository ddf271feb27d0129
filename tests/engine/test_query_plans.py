"""Plans per statement shape (engine/session.py, query.plan_query): exactly what the evaluator gives.

Every statement is run twice: by a session (whose repeated shapes run by
their plan) and by the executor over a freshly parsed tree (the general
evaluator, nothing cached). Outcomes must be identical: success or failure,
message, relation name, columns, and rows with their value types.
"""

import random

import pytest

from engine.evaluation.query import QueryPlan
from engine.language.parser import StatementParser
from engine.session import Session
from engine.storage.store import Store
from tests.engine.sessionkit import described

SETUP = """
manamboara tahiry db; ampiasao db;
manamboara tabilao t (id ISA(0,null), a ISA(null,null), b LAHATSORATRA(null,null));
manamboara tabilao small (id ISA(0,null), b LAHATSORATRA(null,null));
manampia ao@ small sanda (1, 'x'), (2, 'y'), (2, null);
manamboara jery v @ alaivo id, b ao@ t rehefa a > 3;
"""

# {i}: an int, {f}: a float, {s}: a string literal, {z}: 0 or 1 (a divisor), {p}: an
# `alaharo` position (4: none there).
TEMPLATES = [
    "alaivo * ao@ t rehefa id = {i}",
    "alaivo * ao@ t rehefa {i} = id",
    "alaivo * ao@ t rehefa id = {f}",
    "alaivo * ao@ t rehefa b = {s}",
    "alaivo * ao@ t rehefa b = {i}",
    "alaivo * ao@ t rehefa b < {i}",                       # string against number: an error
    "alaivo id, b ao@ t rehefa id = {i} ary a > {i}",
    "alaivo b, id ao@ t rehefa a dia null ary id = {i}",
    "alaivo * ao@ t rehefa a > {i} ary id = {i}",          # an ordering first: no index
    "alaivo * ao@ t rehefa b = {s} na id = {i}",
    "alaivo * ao@ t antso u rehefa u.id = {i}",
    "alaivo u.b ao@ t u rehefa u.id = {i}",
    "alaivo * ao@ t rehefa id = {i} + {i}",                # folded: no plan
    "alaivo * ao@ t rehefa a / {z} = {i}",                 # division by zero on some rows
    "alaivo a * id antso x, b ao@ t rehefa id < {i}",
    "alaivo * ao@ t rehefa id = {i} fetra 2",
    "alaivo * ao@ t rehefa id != {i} fetra 1 3",
    "alaivo * ao@ t rehefa !(id = {i}) ary a != {i}",
    "alaivo * ao@ small rehefa id = {i}",                  # below the index size
    "alaivo * ao@ v rehefa id = {i}",                      # a view: no plan
    "alaivo * ao@ missing rehefa id = {i}",
    "alaivo nothing ao@ t rehefa id = {i}",
    "alaivo * ao@ t rehefa nothing = {i}",
    "alaivo * ao@ t rehefa id = {i} alaharo a",            # ordering: no plan
    "alaivo a, b, id ao@ t rehefa id < {i} alaharo {p}, 3",  # a column by its position
    "alaivo count(*) ao@ t rehefa id = {i}",               # aggregate: no plan
]


def _fill(session: Session, rows: int) -> None:
    values = []
    for key in range(rows):
        a = "null" if key % 7 == 0 else str(key % 11)
        b = "null" if key % 5 == 0 else f"'s{key % 13}'"
        values.append(f"({key}, {a}, {b})")
    assert session.execute_one(f"manampia ao@ t sanda {', '.join(values)}").ok


def _literal(kind: str, rng: random.Random) -> str:
    if kind == "i":
        return str(rng.randrange(0, 60))
    if kind == "f":
        return rng.choice(["5.0", "7.5", "12.0", "0.5"])
    if kind == "z":
        return rng.choice(["0", "1"])
    if kind == "p":
        return rng.choice(["1", "2", "3", "4"])
    return rng.choice(["'s1'", "'s12'", "'x'", "'it''s'", '"s3"'])


def _fill_template(template: str, rng: random.Random) -> str:
    parts = template.split("{")
    text = parts[0]
    for part in parts[1:]:
        text += _literal(part[0], rng) + part[2:]
    return text


@pytest.fixture
def sessions(tmp_path):
    store = Store(tmp_path / "data")
    planned = Session(store)
    assert all(outcome.ok for outcome in planned.execute(SETUP))
    _fill(planned, 50)
    reference = Session(store)
    reference.current_database = "db"
    return planned, reference


def _general(reference: Session, text: str):
    """The outcome of `text` by the general evaluator (a fresh parse, no plan)."""
    statement = StatementParser().parse(text)
    return reference._run_statement(statement, text)


@pytest.mark.parametrize("template", TEMPLATES)
def test_plans_give_what_the_evaluator_gives(sessions, template):
    planned, reference = sessions
    rng = random.Random(template)
    for _ in range(12):
        text = _fill_template(template, rng)
        expected = described(_general(reference, text))
        assert described(planned.execute_one(text)) == expected, text
        small = planned.try_small_read(text, 10_000)
        if small is not None:
            assert described(small) == expected, text
    if template in PLANNED:
        assert _plans(planned), "no plan made"


# The templates that must run by a plan (the others need the general evaluator).
PLANNED = set(TEMPLATES[:12]) | {TEMPLATES[13], TEMPLATES[14], TEMPLATES[17],
                                 TEMPLATES[18]}  # (a `fetra` bound is no shape)


def _plans(session: Session) -> list[QueryPlan]:
    shapes = session.statements._shapes
    return [plan for key in list(shapes._entries)
            for plan in (shapes.peek(key).plans.values() if shapes.peek(key) else ())
            if isinstance(plan, QueryPlan)]


def test_a_repeated_point_read_runs_by_its_plan(sessions, monkeypatch):
    planned, _ = sessions
    for key in range(3):
        assert planned.execute_one(f"alaivo * ao@ t rehefa id = {key}").ok
    assert len(_plans(planned)) == 1

    def no_tree(*args):
        raise AssertionError("the tree was built")

    monkeypatch.setattr(planned.executor, "run", no_tree)
    outcome = planned.try_small_read("alaivo * ao@ t rehefa id = 43", 10_000)
    assert outcome.relation.rows == [[43, 43 % 11, f"s{43 % 13}"]]
    assert outcome.message == "1 andalana"


def test_a_plan_follows_writes_and_new_columns(sessions):
    planned, reference = sessions
    for key in range(3):
        planned.execute_one(f"alaivo * ao@ t rehefa id = {key}")
    assert planned.execute_one("manampia ao@ t sanda (1000, 1, 'new')").ok
    assert planned.execute_one("alaivo * ao@ t rehefa id = 1000").relation.rows == [[1000, 1, "new"]]
    assert planned.execute_one("fafao ao@ t rehefa id = 1000").ok
    assert planned.execute_one("alaivo * ao@ t rehefa id = 1000").relation.rows == []
    # The same name, other columns: the plan is made again for them.
    assert planned.execute_one("ravao ny tabilao t").ok
    assert planned.execute_one("manamboara tabilao t (x ISA(0,null), id ISA(0,null))").ok
    assert planned.execute_one("manampia ao@ t sanda (7, 3), (8, 4)").ok
    for key in (3, 4, 5):
        text = f"alaivo * ao@ t rehefa id = {key}"
        assert described(planned.execute_one(text)) == described(_general(reference, text))
    # Gone, then a view of that name: the plan is not used.
    assert planned.execute_one("ravao ny tabilao t").ok
    assert planned.execute_one("manamboara jery t @ alaivo id ao@ small").ok
    text = "alaivo * ao@ t rehefa id = 2"
    assert described(planned.execute_one(text)) == described(_general(reference, text))
    assert planned.execute_one(text).relation.rows == [[2], [2]]


def test_no_database_and_a_dropped_database(sessions):
    planned, reference = sessions
    for key in range(3):
        planned.execute_one(f"alaivo * ao@ t rehefa id = {key}")
    assert planned.execute_one("ravao ny tahiry db").ok
    planned.current_database = "db"
    text = "alaivo * ao@ t rehefa id = 4"
    outcome = planned.execute_one(text)
    assert not outcome.ok
    assert described(outcome) == described(_general(reference, text))
    assert planned.try_small_read(text, 10_000) is None


@pytest.mark.parametrize("condition", ["id = {0} + {1}", "id = -{0} + a", "({0} = {1}) ary id = a",
                                       "id = {0} / ({1} - {1})"])
def test_a_value_folded_at_compile_time_makes_no_plan(sessions, condition):
    planned, reference = sessions
    for first, second in ((1, 2), (3, 4), (5, 6), (7, 0)):
        text = "alaivo * ao@ t rehefa " + condition.format(first, second)
        assert described(planned.execute_one(text)) == described(_general(reference, text))
    assert _plans(planned) == []


def test_a_plan_is_not_reused_when_a_column_became_daty(sessions):
    """A plan made for a text column skipped the DATY check (LANGUAGE.md 3) once
    the table was made again with the same column names and a DATY column."""
    planned, reference = sessions
    assert planned.execute_one("manamboara tabilao d (x LAHATSORATRA(null,null))").ok
    assert planned.execute_one("manampia ao@ d sanda ('2024-05-01')").ok
    text = "alaivo * ao@ d rehefa x > '2024-1-1'"
    for _ in range(3):
        assert planned.execute_one(text).relation.rows == []   # text against text
    assert planned.execute_one("ravao ny tabilao d").ok
    assert planned.execute_one("manamboara tabilao d (x DATY)").ok
    assert planned.execute_one("manampia ao@ d sanda ('2024-05-01')").ok
    expected = described(_general(reference, text))
    assert not expected[0] and "YYYY-MM-DD" in expected[1]
    assert described(planned.execute_one(text)) == expected
    assert described(planned.try_small_read(text, 10_000)) == expected
