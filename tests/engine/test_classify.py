"""Routing classes of statements (engine/language/classify.py)."""

from __future__ import annotations

import pytest

from engine.language.ast import SetOperation
from engine.language.classify import StatementClass, classify, read_objects
from engine.language.parser import StatementParser

PARSER = StatementParser()


def classify_text(text: str) -> StatementClass:
    return classify(PARSER.parse(text))


@pytest.mark.parametrize("text, expected", [
    ("alaivo 1", StatementClass("read")),
    ("alaivo * ao@ t", StatementClass("read", objects=("t",))),
    ("asehoy ny tabilao", StatementClass("read")),
    ("asehoy ny tsanganana ao@ t", StatementClass("read", objects=("t",))),
    ("asehoy ny tsanganana", StatementClass("read")),
    ("ampiasao sekoly", StatementClass("use", database="sekoly")),
    ("manamboara tahiry sekoly", StatementClass("database", database="sekoly")),
    ("ravao ny tahiry sekoly", StatementClass("database", database="sekoly")),
    ("ravao ny tabilao t", StatementClass("write", objects=("t",))),
    ("ravao ny efitra d", StatementClass("write", objects=("d",))),
    ("ravao ny jery v", StatementClass("write", objects=("v",))),
    ("manamboara tabilao t (a ISA(1,2))", StatementClass("write", objects=("t",))),
    ("manamboara efitra d (DATY)", StatementClass("write", objects=("d",))),
    # A CREATE copies the named domains it uses: they follow the object written.
    ("manamboara tabilao t (a kilasy, b ISA(0,1):naoty, c kilasy)",
     StatementClass("write", objects=("t", "kilasy", "naoty"))),
    ("manamboara efitra d (kilasy:DATY)", StatementClass("write", objects=("d", "kilasy"))),
    ("manamboara jery v @ alaivo * ao@ t tonona u", StatementClass("write", objects=("v", "t", "u"))),
    ("manampia ao@ t sanda (1)", StatementClass("write", objects=("t",))),
    ("manampia ao@ t alaivo * ao@ u", StatementClass("write", objects=("t", "u"))),
    ("manampia ao@ t alaivo * ao@ t", StatementClass("write", objects=("t",))),
    ("havaozy t ova a = 1 rehefa b = 2", StatementClass("write", objects=("t",))),
    ("fafao ao@ t", StatementClass("write", objects=("t",))),
])
def test_classes(text, expected):
    assert classify_text(text) == expected


def test_reads_list_every_source_in_first_seen_order():
    statement = PARSER.parse(
        "alaivo * ao@ a x tonona (alaivo 1 ao@ b tonona:avia c ka 1 = 1) d "
        "ankambana (alaivo 1 ao@ e analana alaivo 2 ao@ a)")
    assert classify(statement).objects == ("a", "b", "c", "e")


def test_read_objects_handles_deep_set_operations_without_recursion():
    query = PARSER.parse("alaivo 1 ao@ t0").select
    for n in range(1, 3000):
        query = SetOperation("union", query, PARSER.parse(f"alaivo 1 ao@ t{n}").select)
    assert read_objects(query) == tuple(f"t{n}" for n in range(3000))


def test_not_a_statement():
    with pytest.raises(TypeError):
        classify("alaivo 1")
