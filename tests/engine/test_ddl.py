"""Session + executor: use, show, create and drop of databases, tables, domains, views."""

import json

import pytest

from engine.evaluation.executor import Executor
from engine.language import ast
from engine.language.messages import translate
from engine.session import Session
from engine.storage.store import Store
from tests.engine.sessionkit import one, rows, run


@pytest.fixture
def school(session):
    run(session, "manamboara tahiry sekoly; ampiasao sekoly;")
    return session


def test_create_and_use_database_messages(session):
    assert run(session, "manamboara tahiry sekoly; ampiasao sekoly;") == [
        "Ny tahiry : sekoly dia voaforona soamantsara",
        "Ny tahiry : sekoly dia miasa ankehitriny"]
    assert session.current_database == "sekoly"


def test_create_existing_database_is_an_error(session):
    run(session, "manamboara tahiry a;")
    assert run(session, "manamboara tahiry a;") == ["Hadisoana : Ny tahiry (a) dia efa misy"]


def test_use_missing_database_is_an_error_and_keeps_the_current_one(school):
    assert run(school, "ampiasao tsisy;") == ["Hadisoana : Tsy misy ny tahiry : tsisy"]
    assert school.current_database == "sekoly"


def test_show_databases_sorted_in_one_column(session):
    run(session, "manamboara tahiry b; manamboara tahiry a; manamboara tahiry C;")
    outcome = one(session, "asehoy ny tahiry;")
    assert [c.name for c in outcome.relation.columns] == ["fanasehoana"]
    assert outcome.relation.rows == [["C"], ["a"], ["b"]]


def test_show_tables_lists_tables_only_and_views_separately(school):
    run(school, "manamboara tabilao t (a ISA(null,null)); manamboara tabilao s (a DATY);"
                "manamboara jery v @ alaivo * ao@ t; manamboara efitra d (DATY);")
    assert rows(school, "asehoy ny tabilao;") == [["s"], ["t"]]
    assert rows(school, "asehoy ny jery;") == [["v"]]
    assert rows(school, "asehoy ny efitra;") == [["d"]]


@pytest.mark.parametrize("text", ["asehoy ny tabilao;", "manamboara tabilao t (a DATY);",
                                  "manamboara efitra d (DATY);", "ravao ny tabilao t;",
                                  "alaivo * ao@ t;", "manampia ao@ t sanda (1);",
                                  "havaozy t ova a = 1;", "fafao ao@ t;"])
def test_no_database_selected(session, text):
    assert run(session, text) == ["Hadisoana : Tsy nisafidy tahiry ianao"]


def test_query_without_source_needs_no_database(session):
    assert rows(session, "alaivo 1 + 1;") == [[2]]


def test_create_table_message_and_file(school, tmp_path):
    assert run(school, "manamboara tabilao t (a ISA(0,10):DATY, b LAHATSORATRA(1,null));") == [
        "Ny tabilao : t dia voaforona soamantsara"]
    document = json.loads((tmp_path / "data/sekoly/tables/t.json").read_text())
    assert document["columns"] == [
        {"name": "a", "domain": [{"type": "ISA", "min": 0, "max": 10}, {"type": "DATY"}]},
        {"name": "b", "domain": [{"type": "LAHATSORATRA", "min": 1, "max": None}]}]
    assert document["rows"] == []


def test_create_table_errors(school):
    run(school, "manamboara tabilao t (a DATY); manamboara jery v @ alaivo * ao@ t;")
    assert run(school, "manamboara tabilao t (a DATY);") == [
        "Hadisoana : Ny tabilao : t dia efa misy"]
    assert run(school, "manamboara tabilao v (a DATY);") == ["Hadisoana : Ny jery : v dia efa misy"]
    assert run(school, "manamboara tabilao u (a DATY, A ISA(1,2));") == [
        "Hadisoana : Ny tsanganana 'A' dia voatonona indroa"]
    assert run(school, "manamboara tabilao u (a ISA(3,1));") == [
        "Hadisoana : Ny ISA(3,1) dia tsy mety : min > max"]
    assert run(school, "manamboara tabilao u (a tsisy);") == [
        "Hadisoana : Tsy misy ny efitra : tsisy"]
    for text in ("manamboara tabilao u ();", "manamboara tabilao u (a TANISA());",
                 "manamboara tabilao u (a LAHATSORATRA(1.5, 2));"):
        outcome = one(school, text)
        assert not outcome.ok and outcome.message.startswith("Hadisoana : "), text
    assert rows(school, "asehoy ny tabilao;") == [["t"]]


def test_named_domain_is_copied_into_the_table(school):
    assert run(school, 'manamboara efitra kilasy (TANISA("L3","M1"));') == [
        "Ny efitra : kilasy dia voaforona soamantsara"]
    assert run(school, 'manamboara efitra kilasy (DATY);') == [
        "Hadisoana : Ny efitra : kilasy dia efa misy"]
    run(school, "manamboara tabilao t (k kilasy); ravao ny efitra kilasy;")
    assert run(school, 'manampia ao@ t sanda ("L3");') == [
        "Tafinditra ny fiovana ny tabilao (1 andalana)"]
    outcome = one(school, 'manampia ao@ t sanda ("L1");')
    assert outcome.message == ("Hadisoana : Ny sanda 'L1' dia tsy mifanaraka amin'ny efitra "
                               "TANISA(\"L3\",\"M1\") an'ny tsanganana 'k'")


def test_domain_built_from_another_domain(school):
    run(school, "manamboara efitra d1 (ISA(0,1)); manamboara efitra d2 (d1:DATY);"
                "manamboara tabilao t (x d2);")
    assert run(school, "manampia ao@ t sanda (1), ('2024-01-01');") == [
        "Tafinditra ny fiovana ny tabilao (2 andalana)"]


def test_create_view_message_and_check_at_creation(school):
    run(school, "manamboara tabilao t (a ISA(null,null)); manampia ao@ t sanda (1), (5);")
    assert run(school, "manamboara jery v @ alaivo a ao@ t rehefa a > 2;") == [
        "Ny jery : v dia voaforona soamantsara"]
    assert rows(school, "alaivo * ao@ v;") == [[5]]
    assert run(school, "manamboara jery v @ alaivo a ao@ t;") == [
        "Hadisoana : Ny jery : v dia efa misy"]
    assert run(school, "manamboara jery t @ alaivo a ao@ t;") == [
        "Hadisoana : Ny tabilao : t dia efa misy"]
    assert run(school, "manamboara jery w @ alaivo a ao@ tsisy;") == [
        "Hadisoana : La table sekoly.tsisy n'as pas été trouvé"]
    assert run(school, "manamboara jery w @ alaivo b ao@ t;") == [
        "Hadisoana : Le champ 'b' n'existe pas dans la relation."]
    assert rows(school, "asehoy ny jery;") == [["v"]]


def test_a_view_with_two_columns_of_one_name_is_refused(school):
    """Made, it could be read only with `*`: `alaivo id ao@ v` was ambiguous for good."""
    run(school, "manamboara tabilao t (id ISA(null,null)); manampia ao@ t sanda (1);")
    twice = ("Hadisoana : Ny tsanganana 'id' dia indroa ao amin'ny jery v : omeo anarana hafa "
             "ny iray amin'izy ireo (antso)")
    assert run(school, "manamboara jery v @ alaivo x.id, y.id ao@ t x tonona t y ka x.id = y.id;") \
        == [twice]
    assert run(school, "manamboara jery v @ alaivo * ao@ t x tonona t y;") == [twice]
    assert rows(school, "asehoy ny jery;") == []
    assert run(school, "manamboara jery v @ alaivo x.id, y.id antso id2 ao@ t x tonona t y;") == [
        "Ny jery : v dia voaforona soamantsara"]
    assert rows(school, "alaivo id, id2 ao@ v;") == [[1, 1]]


def test_view_follows_its_table_and_breaks_when_the_table_is_dropped(school):
    run(school, "manamboara tabilao t (a ISA(null,null)); manamboara jery v @ alaivo * ao@ t;")
    run(school, "manampia ao@ t sanda (3);")
    assert rows(school, "alaivo * ao@ v;") == [[3]]
    assert run(school, "ravao ny tabilao t;") == ["Ny tabilao : t dia voafafa"]
    assert run(school, "alaivo * ao@ v;") == [
        "Hadisoana : La table sekoly.t n'as pas été trouvé"]


def test_a_view_over_a_column_its_table_lost_says_which_view(school):
    """Bug: `alaivo * ao@ w` said only that column 'b' does not exist, a column the
    student's query never named (w reads v, whose query reads b of a table made again
    without it)."""
    run(school, "manamboara tabilao t (a ISA(null,null), b ISA(null,null)); "
                "manamboara jery v @ alaivo b ao@ t; manamboara jery w @ alaivo * ao@ v;")
    run(school, "ravao ny tabilao t; manamboara tabilao t (a ISA(null,null));")
    missing = "Le champ 'b' n'existe pas dans la relation."
    assert run(school, "alaivo * ao@ v;") == [f"Hadisoana : jery v : {missing}"]
    assert run(school, "alaivo * ao@ w;") == [f"Hadisoana : jery w : jery v : {missing}"]
    assert translate(run(school, "alaivo * ao@ w;")[0], "en") == \
        "Error: view w: view v: Column 'b' does not exist in the relation."


def test_drop_messages_and_missing_objects(school):
    run(school, "manamboara tabilao t (a DATY); manamboara efitra d (DATY);"
                "manamboara jery v @ alaivo * ao@ t;")
    assert run(school, "ravao ny jery v; ravao ny efitra d; ravao ny tabilao t;") == [
        "Ny jery : v dia voafafa", "Ny efitra : d dia voafafa", "Ny tabilao : t dia voafafa"]
    assert run(school, "ravao ny jery v; ravao ny efitra d; ravao ny tabilao t;") == [
        "Hadisoana : Tsy misy ny jery : v", "Hadisoana : Tsy misy ny efitra : d",
        "Hadisoana : La table sekoly.t n'as pas été trouvé"]
    assert rows(school, "asehoy ny tabilao;") == []


def test_drop_table_on_a_view_and_view_on_a_table_are_errors(school):
    run(school, "manamboara tabilao t (a DATY); manamboara jery v @ alaivo * ao@ t;")
    assert not one(school, "ravao ny tabilao v;").ok
    assert not one(school, "ravao ny jery t;").ok
    assert rows(school, "asehoy ny tabilao;") == [["t"]]
    assert rows(school, "asehoy ny jery;") == [["v"]]


def test_recreated_table_starts_empty(school):
    run(school, "manamboara tabilao t (a ISA(null,null)); manampia ao@ t sanda (1);"
                "ravao ny tabilao t; manamboara tabilao t (a ISA(null,null));")
    assert rows(school, "alaivo * ao@ t;") == []


def test_dropping_the_current_database_unselects_it(school):
    run(school, "manamboara tabilao t (a DATY);")
    assert run(school, "ravao ny tahiry sekoly;") == ["Ny tahiry : sekoly dia voafafa"]
    assert school.current_database is None
    assert run(school, "asehoy ny tabilao;") == ["Hadisoana : Tsy nisafidy tahiry ianao"]
    assert rows(school, "asehoy ny tahiry;") == []
    assert run(school, "ravao ny tahiry sekoly;") == ["Hadisoana : Tsy misy ny tahiry : sekoly"]
    run(school, "manamboara tahiry sekoly; ampiasao sekoly;")
    assert rows(school, "asehoy ny tabilao;") == []


def test_database_dropped_by_another_session_is_noticed(school, tmp_path):
    other = Session(Store(tmp_path / "data"))
    run(other, "ravao ny tahiry sekoly;")
    assert run(school, "asehoy ny tabilao;") == ["Hadisoana : Tsy misy ny tahiry : sekoly"]


@pytest.mark.parametrize("text", ["ampiasao ../x;", "manamboara tahiry ../x;",
                                  "manamboara tahiry /etc;", "ampiasao ..;",
                                  "manamboara tabilao ../t (a DATY);"])
def test_escaping_names_in_statements_are_rejected(school, tmp_path, text):
    outcome = one(school, text)
    assert not outcome.ok and outcome.message.startswith("Hadisoana : ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert school.current_database == "sekoly"


@pytest.mark.parametrize("statement", [
    ast.CreateDatabase("../x"), ast.Use(".."), ast.CreateDatabase("a/b"),
    ast.CreateDatabase("a\0b"), ast.CreateDatabase(""), ast.Drop("database", "/tmp"),
    ast.CreateTable("..", (ast.ColumnDef("a", ast.DomainSpec((ast.DateAtom(),))),)),
    ast.CreateDomain("x\\y", ast.DomainSpec((ast.DateAtom(),))),
    ast.Drop("table", "../../etc"),
])
def test_escaping_names_reaching_the_executor_are_rejected(school, tmp_path, statement):
    executor = Executor(school.store, school.parser)
    from engine.errors import TahiryError
    with pytest.raises(TahiryError) as caught:
        executor.run(statement, school)
    assert "tsy azo ekena" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["sekoly"]
