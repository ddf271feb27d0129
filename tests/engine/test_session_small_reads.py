"""`Session.try_small_read` over tables bigger than its row limit (engine/session.py).

A planned point read whose equality index is already built runs whatever
the table's size, giving exactly what the general evaluator gives; anything
else over a big table is turned down (None, nothing run) without the usual
way's second read.
"""

import random

import pytest

from engine.language.parser import StatementParser
from engine.session import Session
from engine.storage.store import Store
from tests.engine.sessionkit import described

LIMIT = 40   # rows: the tables below are bigger
ROWS = 300


@pytest.fixture
def sessions(tmp_path):
    store = Store(tmp_path / "data", durable=False)
    session = Session(store)
    setup = ("manamboara tahiry db; ampiasao db; "
             "manamboara tabilao t (id ISA(0,null), a ISA(null,null), b LAHATSORATRA(null,null));")
    assert all(outcome.ok for outcome in session.execute(setup))
    values = ", ".join(f"({key}, {key % 3}, {'null' if key % 5 == 0 else repr(f's{key % 50}')})"
                       for key in range(ROWS))
    assert session.execute_one(f"manampia ao@ t sanda {values}").ok
    reference = Session(store)
    reference.current_database = "db"
    return session, reference


def _general(reference: Session, text: str):
    """The outcome of `text` by the general evaluator (a fresh parse, no plan)."""
    return reference._run_statement(StatementParser().parse(text), text)


def _other_values(text: str) -> str:
    return text.replace("12.0", "13.0").replace("3", "4").replace("9", "10")


def test_an_indexed_point_read_runs_whatever_the_table_size(sessions, monkeypatch):
    session, reference = sessions
    text = "alaivo * ao@ t rehefa id = 7"
    # Index not built yet: turned down (building it is a pass over the table).
    assert session.try_small_read(text, LIMIT) is None
    assert session.execute_one(text).ok           # the usual way builds it
    assert session.execute_one("alaivo * ao@ t rehefa id = 8").ok
    others = ("alaivo b, id ao@ t rehefa id = 12.0", "alaivo * ao@ t rehefa id = 'x'",
              "alaivo id ao@ t rehefa id = 3 ary a > 1", "alaivo * ao@ t rehefa id = 9 fetra 1")
    for text in others:
        session.execute_one(text)   # its shape seen twice (an error too)
        session.execute_one(_other_values(text))

    def no_tree(*args):
        raise AssertionError("the tree was run")

    monkeypatch.setattr(session.executor, "run", no_tree)
    rng = random.Random(12)
    for key in [0, 5, ROWS - 1, ROWS] + [rng.randrange(ROWS) for _ in range(20)]:
        text = f"alaivo * ao@ t rehefa id = {key}"
        outcome = session.try_small_read(text, LIMIT)
        assert outcome is not None, text
        assert described(outcome) == described(_general(reference, text))
    ran = 0
    for text in others:
        text = _other_values(_other_values(text))
        outcome = session.try_small_read(text, LIMIT)
        if outcome is not None:
            ran += 1
            assert described(outcome) == described(_general(reference, text)), text
    assert ran >= 3


def test_a_point_read_follows_writes_of_a_big_table(sessions):
    session, reference = sessions
    for key in (1, 2):
        assert session.execute_one(f"alaivo * ao@ t rehefa id = {key}").ok
    assert session.execute_one("manampia ao@ t sanda (5000, 1, 'new')").ok
    text = "alaivo * ao@ t rehefa id = 5000"
    outcome = session.try_small_read(text, LIMIT)   # the index derived at commit
    assert outcome is not None and outcome.relation.rows == [[5000, 1, "new"]]
    assert session.execute_one("fafao ao@ t rehefa id = 5000").ok
    assert session.execute_one("alaivo * ao@ t rehefa id = 4").ok   # (a delete may not derive)
    outcome = session.try_small_read(text, LIMIT)
    assert outcome is not None and outcome.relation.rows == []
    assert described(outcome) == described(_general(reference, text))


def test_many_candidates_or_no_index_are_turned_down(sessions, monkeypatch):
    session, _ = sessions
    for text in ("alaivo * ao@ t rehefa a = 1", "alaivo * ao@ t rehefa a = 2",
                 "alaivo * ao@ t rehefa id > 1", "alaivo * ao@ t rehefa id > 2"):
        assert session.execute_one(text).ok

    def no_run(*args):
        raise AssertionError("run")

    monkeypatch.setattr(session.executor, "run", no_run)
    # ~100 rows hold a = 1: more than the limit, so not run here.
    assert session.try_small_read("alaivo * ao@ t rehefa a = 1", LIMIT) is None
    assert session.try_small_read("alaivo * ao@ t rehefa id > 5", LIMIT) is None
    # Within a bigger limit both run.
    assert session.try_small_read("alaivo * ao@ t rehefa a = 1", 10_000) is not None
    assert session.try_small_read("alaivo * ao@ t rehefa id > 5", 10_000) is not None


def test_the_limit_applies_to_unplanned_reads(sessions):
    session, _ = sessions
    # Ordering is not planned: the usual way, turned down over the limit.
    assert session.try_small_read("alaivo * ao@ t rehefa id = 3 alaharo a", LIMIT) is None
    assert session.try_small_read("alaivo * ao@ t rehefa id = 3 alaharo a", 10_000) is not None
