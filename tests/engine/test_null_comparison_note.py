"""A comparison with the `null` literal is never true: the answer says so (LANGUAGE.md 4, 5b).

`rehefa n = null` keeps no row (SQL's rule, kept on purpose): a student
could not tell why the result was empty. The success message now ends
with one sentence naming the comparison and the test that finds NULLs;
the relation and its row count stay exactly what they were. A column
that merely holds NULL is data like any other: no note.
"""

from __future__ import annotations

import pytest

from engine.language.parser import StatementParser
from engine.session import Session
from tests.engine.sessionkit import described, one, prepared_session

SETUP = """\
manamboara tahiry s; ampiasao s;
manamboara tabilao t (id ISA(0,100), n ISA(null,null), m ISA(null,null));
manampia ao@ t sanda (1, 10, null), (2, null, null), (3, 30, 3);
manamboara tabilao u (id ISA(0,100), k ISA(null,null));
manampia ao@ u sanda (1, null), (2, 20);
"""


def note(comparison: str, test: str) -> str:
    return f" Tsy marina mihitsy ny '{comparison}', na dia null aza ny sanda : {test} no manamarina ny null."


IS_NULL = "'n dia null'"


@pytest.fixture
def session(tmp_path_factory):
    return prepared_session(tmp_path_factory, "nullnote", SETUP)


@pytest.mark.parametrize("text, count, comparison, test", [
    ("alaivo * ao@ t rehefa n = null", 0, "n = null", IS_NULL),
    ("alaivo * ao@ t rehefa n != null", 0, "n != null", "'n dia tsy null'"),
    ("alaivo * ao@ t rehefa null = n", 0, "null = n", IS_NULL),
    ("alaivo * ao@ t rehefa NULL = n", 0, "null = n", IS_NULL),
    ("alaivo * ao@ t rehefa n > null", 0, "n > null", "'n dia null' na 'n dia tsy null'"),
    ("alaivo * ao@ t rehefa t.n = null", 0, "t.n = null", "'t.n dia null'"),
    ("alaivo * ao@ t rehefa n + 1 = null", 0, "n + 1 = null", "'n + 1 dia null'"),
    # Not true either way: `!(n = null)` keeps no row.
    ("alaivo * ao@ t rehefa !(n = null)", 0, "n = null", IS_NULL),
    # The other side of `na` still keeps its rows; the comparison is still never true.
    ("alaivo id ao@ t rehefa n = null na id = 1", 1, "n = null", IS_NULL),
    # A join's `ka`.
    ("alaivo * ao@ t tonona u ka t.id = u.id ary u.k = null", 0, "u.k = null", "'u.k dia null'"),
    ("alaivo * ao@ t tonona:avia u ka u.k = null", 3, "u.k = null", "'u.k dia null'"),
    # Tahiry's HAVING: a derived table filtered after its groups.
    ("alaivo * ao@ (alaivo n, count(*) antso c ao@ t vondrona n) x rehefa x.n = null", 0,
     "x.n = null", "'x.n dia null'"),
    ("alaivo * ao@ (alaivo * ao@ t rehefa n = null) x", 0, "n = null", IS_NULL),
    ("alaivo id ao@ t ankambana alaivo id ao@ u rehefa k = null", 3, "k = null", "'k dia null'"),
    # In a select list the comparison's value is NULL on every row.
    ("alaivo n = null antso x ao@ t", 3, "n = null", IS_NULL),
])
def test_a_query_comparing_with_null_keeps_its_rows_and_says_why(session, text, count,
                                                                comparison, test):
    outcome = one(session, text)
    assert outcome.ok, outcome.message
    assert len(outcome.relation.rows) == count
    assert outcome.message == f"{count} andalana" + note(comparison, test)


def test_the_relation_is_the_one_without_the_note(session):
    noted = one(session, "alaivo * ao@ t rehefa n = null na id > 1")
    plain = one(session, "alaivo * ao@ t rehefa id > 1")
    assert noted.relation == plain.relation
    assert noted.message.startswith(plain.message + " ")


@pytest.mark.parametrize("text, count", [
    ("havaozy t ova m = 1 rehefa n = null", 0),
    ("fafao ao@ t rehefa n = null", 0),
    ("manampia ao@ u alaivo id, n ao@ t rehefa n = null", 0),
])
def test_a_write_comparing_with_null_says_why_after_its_count(session, text, count):
    outcome = one(session, text)
    assert outcome.ok, outcome.message
    assert outcome.message == (f"Tafinditra ny fiovana ny tabilao ({count} andalana)"
                               + note("n = null", IS_NULL))


def test_a_view_comparing_with_null_says_so_when_created(session):
    outcome = one(session, "manamboara jery v @ alaivo * ao@ t rehefa n = null")
    assert outcome.message == "Ny jery : v dia voaforona soamantsara" + note("n = null", IS_NULL)
    # Reading the view compares nothing with `null` in its own text: no note.
    assert one(session, "alaivo * ao@ v").message == "0 andalana"


@pytest.mark.parametrize("text", [
    "alaivo * ao@ t rehefa n dia null",
    "alaivo * ao@ t rehefa n dia tsy null",
    # A column that holds NULL is data: `n = m` is not true on those rows, as documented.
    "alaivo * ao@ t rehefa n = m",
    "alaivo * ao@ t tonona u ka t.n = u.k",
    # `null` as a value, not compared.
    "alaivo null antso x, n ao@ t",
    "alaivo * ao@ t rehefa n = 'null'",
    "alaivo * ao@ t rehefa n + null dia null",
])
def test_no_note_without_a_comparison_with_the_null_literal(session, text):
    outcome = one(session, text)
    assert outcome.ok, outcome.message
    assert outcome.message == f"{len(outcome.relation.rows)} andalana"


@pytest.mark.parametrize("text, message", [
    ("manampia ao@ u sanda (5, null)", "Tafinditra ny fiovana ny tabilao (1 andalana)"),
    ("havaozy u ova k = null rehefa id = 2", "Tafinditra ny fiovana ny tabilao (1 andalana)"),
    ("fafao ao@ u rehefa k dia null", "Tafinditra ny fiovana ny tabilao (1 andalana)"),
])
def test_no_note_on_writes_that_only_store_or_test_null(session, text, message):
    assert one(session, text).message == message


def test_sql_not_equal_stays_a_syntax_error_with_its_hint(session):
    outcome = one(session, "alaivo * ao@ t rehefa n <> null")
    assert not outcome.ok
    assert outcome.message.endswith(" Amin'ny Tahiry, '!=' no ilazana ny '<>'.")


def test_a_failing_statement_gets_no_note(session):
    outcome = one(session, "alaivo * ao@ t rehefa tsy_misy = null")
    assert not outcome.ok
    assert "Tsy marina mihitsy" not in outcome.message


def _general(session: Session, text: str):
    """`text` run by the general evaluator: a fresh parse, no shape, no plan."""
    return session._run_statement(StatementParser().parse(text), text)


def test_a_planned_query_gets_the_note_of_the_general_path(session, monkeypatch):
    # A shape seen twice is learnt; with `null` in it, it is planned like any other.
    texts = [f"alaivo id, n ao@ t rehefa id = {key} ary n = null" for key in (1, 2, 3, 4)]
    general = [_general(session, text) for text in texts]
    for text in texts[:2]:
        session.execute_one(text)

    def no_tree(*args):
        raise AssertionError("the tree was run, not the plan")

    monkeypatch.setattr(session.executor, "run", no_tree)
    for text, expected in zip(texts[2:], general[2:], strict=True):
        outcome = session.execute_one(text)
        assert described(outcome) == described(expected)
        assert outcome.message == "0 andalana" + note("n = null", IS_NULL)
        small = session.try_small_read(text, 100)
        assert small is not None and described(small) == described(expected)


def test_a_planned_shape_with_literals_beside_null_names_the_real_values(session, monkeypatch):
    texts = [f"alaivo id ao@ t rehefa n + {key} = null" for key in (1, 2, 3)]
    for text in texts[:2]:
        session.execute_one(text)
    monkeypatch.setattr(session.executor, "run", lambda *args: pytest.fail("not planned"))
    outcome = session.execute_one(texts[2])
    assert outcome.message == "0 andalana" + note("n + 3 = null", "'n + 3 dia null'")


def test_a_planned_shape_without_null_gets_no_note(session, monkeypatch):
    texts = [f"alaivo id ao@ t rehefa id = {key}" for key in (1, 2, 3)]
    for text in texts[:2]:
        session.execute_one(text)
    monkeypatch.setattr(session.executor, "run", lambda *args: pytest.fail("not planned"))
    assert session.execute_one(texts[2]).message == "1 andalana"


def test_the_test_shown_keeps_the_parentheses_it_needs(session):
    outcome = one(session, "alaivo (n = 1) = null antso x ao@ t")
    assert outcome.message == "3 andalana" + note("(n = 1) = null", "'(n = 1) dia null'")
