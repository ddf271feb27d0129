"""Mixed domains (LANGUAGE.md 4, "Mixed domains"): the README's `ISA(0,20):TANISA('ABS')`.

Ordering a number against a string is unknown for that row (like NULL), so
`rehefa naoty > 10` skips the 'ABS' rows instead of failing the whole
query; `alaharo`, `min` and `max` put numbers before strings. The README's
language tour runs as written on a `naoty` table of that domain holding an
'ABS' row.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.session import Session
from engine.storage.store import Store
from tests.engine.sessionkit import one, prepared_session, rows

README = Path(__file__).resolve().parents[2] / "README.md"
HYBRID = "ISA(0,20):TANISA('ABS')"

SETUP = f"""\
manamboara tahiry s; ampiasao s;
manamboara tabilao naoty ( id LAHATSORATRA(2,5), taranja LAHATSORATRA(null,null), naoty {HYBRID} );
manampia ao@ naoty sanda ("E1","Algo",14), ("E1","BD",9), ("E2","Algo",16), ("E2","BD",'ABS');
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return prepared_session(tmp_path_factory, "mixed", SETUP)


def test_a_comparison_with_the_other_type_is_unknown_for_that_row(session):
    # The query: it failed for the whole table once one 'ABS' row existed.
    assert rows(session, "alaivo id, naoty ao@ naoty rehefa naoty > 10;") == [["E1", 14],
                                                                              ["E2", 16]]
    assert rows(session, "alaivo id ao@ naoty rehefa !(naoty > 10);") == [["E1"]]
    assert rows(session, "alaivo id ao@ naoty rehefa naoty = 'ABS';") == [["E2"]]
    assert rows(session, "alaivo id ao@ naoty rehefa naoty != 'ABS';") == [["E1"], ["E1"], ["E2"]]
    assert rows(session, "alaivo naoty > 10 antso x ao@ naoty rehefa taranja = 'BD';") == [
        [False], [None]]


def test_ordering_and_min_max_put_numbers_before_strings(session):
    assert rows(session, "alaivo naoty ao@ naoty alaharo naoty;") == [[9], [14], [16], ["ABS"]]
    assert rows(session, "alaivo min(naoty), max(naoty) ao@ naoty;") == [[9, "ABS"]]


def test_what_stays_an_error(session):
    # Arithmetic and sums on a string: no number to compute with.
    assert one(session, "alaivo naoty + 1 ao@ naoty;").message == (
        "Hadisoana : Tsy azo atao ny 'ABS' + 1 : isa ihany no azo kajiana, ary lahatsoratra ny "
        "'ABS'.")
    assert not one(session, "alaivo avg(naoty) ao@ naoty;").ok
    assert rows(session, "alaivo avg(naoty) ao@ naoty rehefa naoty >= 0;") == [[13]]


def readme_tour() -> list[str]:
    """The statements of README.md's language tour."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"## A short language tour.*?```\n(.*?)```", text, re.DOTALL)
    assert match, "README.md has no language tour code block"
    return [line for line in match.group(1).splitlines() if line.strip()]


def test_the_readme_tour_runs_with_an_abs_row_in_the_hybrid_domain(tmp_path):
    lines = readme_tour()
    script = "\n".join(lines)
    assert "naoty ISA(0,20)" in script
    script = script.replace("naoty ISA(0,20)", f"naoty {HYBRID}")
    insert = next(i for i, line in enumerate(lines) if line.startswith("manampia ao@ naoty"))
    absent = '\nmanampia ao@ naoty sanda ("E2","Fizika","ABS");'
    script = script.replace(lines[insert], lines[insert] + absent)
    session = Session(Store(tmp_path / "data"))
    failures = [o.message for o in session.execute(script) if not o.ok]
    assert failures == []
