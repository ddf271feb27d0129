"""`asehoy ny tsanganana [ao@ T]`: columns of tables and views with their domains."""

from __future__ import annotations

import pytest

from engine.language.ast import Describe
from engine.language.parser import StatementParser
from tests.engine.sessionkit import one, prepared_session, rows

SETUP = """\
manamboara tahiry s; ampiasao s;
manamboara efitra kilasy (TANISA("L3","M1"));
manamboara tabilao naoty (id LAHATSORATRA(2,5), naoty ISA(0,20):TANISA('ABS'), k kilasy, d DATY);
manamboara tabilao olona (id LAHATSORATRA(2,5), taona ISA(null,null));
manamboara jery v @ alaivo n.id, naoty antso isa, naoty + 1, taona
  ao@ naoty n tonona olona ka n.id = olona.id;
manamboara jery w @ alaivo * ao@ v ankambana alaivo * ao@ v;
manamboara jery isany @ alaivo count(*) ao@ naoty;
"""

NAOTY = [["id", "LAHATSORATRA(2,5)"], ["naoty", 'ISA(0,20):TANISA("ABS")'],
         ["k", 'TANISA("L3","M1")'], ["d", "DATY"]]
V = [["id", "LAHATSORATRA(2,5)"], ["isa", 'ISA(0,20):TANISA("ABS")'], ["naoty + 1", None],
     ["taona", "ISA(null,null)"]]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return prepared_session(tmp_path_factory, "describe", SETUP)


@pytest.mark.parametrize("text, name", [
    ("asehoy ny tsanganana ao@ t", "t"),
    ("ASEHOY NY Tsanganana #ao @ t", "t"),
    ("asehoy ny tsanganana ao t", "t"),
    ("asehoy ny tsanganana", None),
])
def test_parse(text, name):
    assert StatementParser().parse(text) == Describe(name)


def test_tsanganana_stays_an_ordinary_name(session):
    assert StatementParser().parse("alaivo tsanganana ao@ tsanganana") is not None


def test_a_table_in_declaration_order(session):
    outcome = one(session, "asehoy ny tsanganana ao@ naoty;")
    assert outcome.ok and outcome.message == "4 andalana"
    assert outcome.relation.name == "naoty"
    assert [c.name for c in outcome.relation.columns] == ["tsanganana", "efitra"]
    assert outcome.relation.rows == NAOTY


def test_a_view_plain_columns_keep_their_domain_computed_ones_are_null(session):
    assert rows(session, "asehoy ny tsanganana ao@ v;") == V
    assert rows(session, "asehoy ny tsanganana ao@ w;") == V        # a view over a view
    assert rows(session, "asehoy ny tsanganana ao@ isany;") == [["count(*)", None]]


def test_everything_sorted_by_name(session):
    outcome = one(session, "asehoy ny tsanganana;")
    assert [c.name for c in outcome.relation.columns] == ["anarana", "karazana", "tsanganana",
                                                          "efitra"]
    listed = outcome.relation.rows
    assert [row[0] for row in listed] == (["isany"] + ["naoty"] * 4 + ["olona"] * 2
                                          + ["v"] * 4 + ["w"] * 4)
    assert listed[1:5] == [["naoty", "tabilao", *row] for row in NAOTY]
    assert listed[0] == ["isany", "jery", "count(*)", None]


def test_errors(tmp_path_factory, session):
    assert one(session, "asehoy ny tsanganana ao@ tsisy;").message == (
        "Hadisoana : La table s.tsisy n'as pas été trouvé")
    assert one(session, "asehoy ny tsanganana ao@ naot;").message == (
        "Hadisoana : La table s.naot n'as pas été trouvé "
        "Angamba 'naoty' no tianao hosoratana (fa tsy 'naot')?")
    fresh = prepared_session(tmp_path_factory, "describe-none", "")
    for text in ("asehoy ny tsanganana;", "asehoy ny tsanganana ao@ t;"):
        assert one(fresh, text).message == "Hadisoana : Tsy nisafidy tahiry ianao"
    assert one(session, "asehoy ny tsanganan;").message.startswith(
        "Hadisoana : Diso ny fanoratana (syntax) amin'ny andalana 1, tsanganana 11 : nandrasana "
        "'efitra', 'jery', 'tabilao', 'tahiry' na 'tsanganana' fa 'tsanganan' no hita")


def test_a_view_that_cannot_run_is_listed_without_columns(tmp_path_factory):
    session = prepared_session(tmp_path_factory, "describe-broken", SETUP + "ravao ny tabilao olona;")
    assert one(session, "asehoy ny tsanganana ao@ v;").message == (
        "Hadisoana : La table s.olona n'as pas été trouvé")
    listed = rows(session, "asehoy ny tsanganana;")
    assert ["v", "jery", None, None] in listed and ["w", "jery", None, None] in listed


def test_describing_a_view_reads_no_rows(tmp_path_factory):
    # A view over a cross join of 3,000 x 3,000 rows: running it hits the
    # result limit; describing it runs it over empty tables.
    setup = ("manamboara tahiry s; ampiasao s; manamboara tabilao a (x ISA(null,null));"
             "manamboara jery big @ alaivo a.x, b.x antso y ao@ a tonona a b;"
             "manampia ao@ a sanda " + ", ".join(f"({i})" for i in range(3000)) + ";")
    session = prepared_session(tmp_path_factory, "describe-big", setup)
    assert "Be loatra" in one(session, "alaivo * ao@ big;").message
    assert rows(session, "asehoy ny tsanganana ao@ big;") == [["x", "ISA(null,null)"],
                                                             ["y", "ISA(null,null)"]]
