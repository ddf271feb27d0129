"""LANGUAGE.md end to end through the Session: each grammar and semantics rule
is run as a statement on a real data directory and its rows (or its error)
are checked."""

import pytest

from tests.engine.sessionkit import one, prepared_session

SETUP = """
manamboara tahiry s; ampiasao s;
manamboara tabilao u (id ISA(null,null), anarana LAHATSORATRA(null,null), taona ISA(null,null));
manampia ao@ u sanda (1, 'Alice', 20), (2, 'Bob', null), (3, 'Cy', 22), (3, 'Cy', 22);
manamboara tabilao n (id ISA(null,null), naoty ISA(0,20));
manampia ao@ n sanda (1, 10), (1, 15), (3, 8), (4, 12);
manamboara tabilao d (x DATY);
manampia ao@ d sanda ('2024-01-10'), ('2023-12-31'), ('2024-02-01');
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return prepared_session(tmp_path_factory, "language", SETUP)


ROWS = [
    # lexical rules
    ("alaivo * ao@ u;", [[1, "Alice", 20], [2, "Bob", None], [3, "Cy", 22], [3, "Cy", 22]]),
    ("ALAIVO id AO@ u REHEFA id = 2;", [[2]]),
    ("alaivo id #ao@ u #rehefa id = 1;", [[1]]),
    ("alaivo id ao @ u # rehefa id = 1;", [[1]]),
    ("alaivo id ao@u rehefa id = 1 -- comment ; still comment\n;", [[1]]),
    ("alaivo id ao@ u // comment\n rehefa id = 2;", [[2]]),
    ("alaivo 'it''s', \"a\\\"b\", 'x\\ny', 'a;b';", [["it's", 'a"b', "x\ny", "a;b"]]),
    ("alaivo 007, 12.5, -3;", [[7, 12.5, -3]]),
    ("alaivo NULL, null;", [[None, None]]),
    # values and operators
    ("alaivo 1 + 1;", [[2]]),
    ("alaivo 7 / 2, 6 / 3, 2 * 3 - 1;", [[3.5, 2, 5]]),
    ("alaivo 1 + 2 * 3, -2 * 3, (1 + 2) * 3;", [[7, -6, 9]]),
    ("alaivo 1 = 1 na 1 = 2 ary 1 = 2;", [[True]]),
    ("alaivo !(1 = 1), 1 != 2, 2 <= 2, 3 >= 4, 1 < 2, 2 > 1;",
     [[False, True, True, False, True, True]]),
    ("alaivo null + 1, null / 0;", [[None, None]]),
    ("alaivo 1 = '1', 1 != '1', 5 = 5.0;", [[False, True, True]]),
    ("alaivo null dia null, 1 dia tsy null;", [[True, True]]),
    # WHERE and NULL logic
    ("alaivo id ao@ u rehefa taona > 20;", [[3], [3]]),
    ("alaivo id ao@ u rehefa !(taona = 20);", [[3], [3]]),
    ("alaivo id ao@ u rehefa taona dia null;", [[2]]),
    ("alaivo id ao@ u rehefa taona dia tsy null;", [[1], [3], [3]]),
    ("alaivo anarana ao@ u rehefa anarana < 'Bz' alaharo anarana;", [["Alice"], ["Bob"]]),
    ("alaivo x ao@ d rehefa x > '2024-01-01' alaharo x;", [["2024-01-10"], ["2024-02-01"]]),
    ("alaivo x ao@ d alaharo x midina;", [["2024-02-01"], ["2024-01-10"], ["2023-12-31"]]),
    ("alaivo 1 rehefa 1 = 2;", []),
    # aggregates
    ("alaivo count(*), count(taona), sum(taona), min(anarana), max(taona) ao@ u;",
     [[4, 3, 64, "Alice", 22]]),
    ("alaivo avg(naoty) ao@ n;", [[11.25]]),
    ("alaivo count(*), sum(taona), avg(taona) ao@ u rehefa id > 100;", [[0, None, None]]),
    ("alaivo id, count(*) ao@ u vondrona id alaharo id;", [[1, 1], [2, 1], [3, 2]]),
    ("alaivo id, sum(naoty * 2) antso s ao@ n #vondrona (id) alaharo id;",
     [[1, 50], [3, 16], [4, 24]]),
    # joins
    ("alaivo u.id, naoty ao@ u tonona n ka u.id = n.id alaharo naoty;",
     [[3, 8], [3, 8], [1, 10], [1, 15]]),
    ("alaivo u.id, naoty ao@ u tonona:anatiny@ n #ka u.id = n.id alaharo naoty;",
     [[3, 8], [3, 8], [1, 10], [1, 15]]),
    ("alaivo u.id, naoty ao@ u tonona:@ n ka u.id = n.id rehefa naoty > 12;", [[1, 15]]),
    ("alaivo u.id, naoty ao@ u tonona:avia@ n ka u.id = n.id rehefa u.id = 2;", [[2, None]]),
    ("alaivo u.id, naoty ao@ u tonona:ankavia n ka u.id = n.id rehefa u.id = 2;", [[2, None]]),
    ("alaivo u.id, n.id ao@ u tonona:avanana@ n ka u.id = n.id rehefa n.id = 4;", [[None, 4]]),
    ("alaivo u.id, n.id ao@ u tonona:feno@ n ka u.id = n.id "
     "rehefa u.id dia null na n.id dia null alaharo u.id;", [[None, 4], [2, None]]),
    ("alaivo * ao@ u tonona:natoraly@ n rehefa naoty > 9 alaharo naoty;",
     [[1, "Alice", 20, 10], [1, "Alice", 20, 15]]),
    ("alaivo count(*) ao@ u tonona n;", [[16]]),
    ("alaivo a.id, b.taona ao@ u a #tonona u b #ka a.id = b.id rehefa a.id = 1;", [[1, 20]]),
    ("alaivo x.id ao@ (alaivo id ao@ u rehefa id = 2) x;", [[2]]),
    ("alaivo x.id ao@ (alaivo id ao@ u rehefa id = 2) antso x;", [[2]]),
    # order and limits
    ("alaivo naoty ao@ n alaharo naoty midina;", [[15], [12], [10], [8]]),
    ("alaivo naoty ao@ n alaharo naoty miakatra fetra 2;", [[8], [10]]),
    ("alaivo id ao@ n fetra 2;", [[1], [1]]),
    ("alaivo id ao@ n #fetra 1 3;", [[1], [3]]),
    ("alaivo taona ao@ u alaharo taona;", [[None], [20], [22], [22]]),
]


@pytest.mark.parametrize("text,expected", ROWS)
def test_rows(session, text, expected):
    outcome = one(session, text)
    assert outcome.ok, outcome.message
    assert outcome.relation.rows == expected


SETS = [
    ("alaivo id ao@ u ankambana alaivo id ao@ n;", [1, 2, 3, 4]),
    ("alaivo id ao@ u + alaivo id ao@ n;", [1, 2, 3, 4]),
    ("alaivo id ao@ u analana@ alaivo id ao@ n;", [2]),
    ("alaivo id ao@ u - alaivo id ao@ n;", [2]),
    ("alaivo id ao@ u atifitra alaivo id ao@ n;", [1, 3]),
    ("alaivo id ao@ u ^@ alaivo id ao@ n;", [1, 3]),
    ("alaivo id ao@ u #ankambana@ alaivo id ao@ n #analana (alaivo 4);", [1, 2, 3]),
]


@pytest.mark.parametrize("text,expected", SETS)
def test_set_operators_return_distinct_rows(session, text, expected):
    outcome = one(session, text)
    assert outcome.ok, outcome.message
    assert sorted(row[0] for row in outcome.relation.rows) == expected
    assert [c.name for c in outcome.relation.columns] == ["id"]


def test_result_column_names(session):
    outcome = one(session, "alaivo id antso x, anarana y, taona   +   1, count(id) ao@ u "
                              "vondrona id, anarana, taona;")
    assert [c.name for c in outcome.relation.columns] == ["x", "y", "taona + 1", "count(id)"]


ERRORS = [
    ("alaivo * ao@ tsisy;", "La table s.tsisy n'as pas été trouvé"),
    ("alaivo tsisy ao@ u;", "Le champ 'tsisy' n'existe pas dans la relation."),
    ("alaivo id ao@ u tonona n ka u.id = n.id;",
     "Le champ 'id' est ambigu. Il apparaît 2 fois dans la relation."),
    ("alaivo x.id ao@ (alaivo id ao@ u);", "Tous les tables dérivé doit avoir leur propre alias"),
    ("alaivo 1 / 0;", ""),
    ("alaivo id / 0 ao@ u;", ""),
    ("alaivo 1 < (1 = 1);", ""),
    ("alaivo 'a' + 1;", ""),
    ("alaivo id ao@ u rehefa 1;", ""),
    ("alaivo sum(anarana) ao@ u;", ""),
    ("alaivo *;", ""),
    ("alaivo id ao@ u ankambana alaivo id, naoty ao@ n;", ""),
    ("alaivo u.id ao@ u tonona:avia@ n;", ""),
    ("alaivo id, count(*) ao@ u;", ""),
    ("alaivo id ao@ u rehefa count(*) > 1;", ""),
    ("alaivo 1 < 2 < 3;", ""),
    ("alaivo id ao@ u x rehefa u.id = 1;", ""),
    ("alaivo 1 fetra -1;", ""),
    ("alaivo id ao@ u rehefa;", "andalana 1"),
    ("alaivo 'unterminated;", "andalana 1"),
    ("alaivox 1;", ""),
    ("alaivo .5;", ""),
]


@pytest.mark.parametrize("text,fragment", ERRORS)
def test_errors(session, text, fragment):
    outcome = one(session, text)
    assert not outcome.ok
    assert outcome.message.startswith("Hadisoana : ")
    assert fragment in outcome.message
    assert "Traceback" not in outcome.message


def test_alias_works_as_a_view_source(session):
    session.execute("manamboara jery tsara @ alaivo id, naoty ao@ n rehefa naoty >= 10 "
                    "alaharo naoty midina fetra 2;")
    outcome = one(session, "alaivo t.naoty ao@ tsara t;")
    assert outcome.relation.rows == [[15], [12]]
