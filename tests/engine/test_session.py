"""engine.session (the entry point) and engine.evaluation.render (tables and JSON lines)."""

import json

import pytest

from engine.evaluation.executor import Limits
from engine.evaluation.outcome import Column, Outcome, Relation
from engine.evaluation.render import render_json, render_outcome, render_table
from engine.session import INTERNAL_ERROR, Session
from engine.storage.store import Store


def test_every_statement_runs_after_a_failure(session):
    outcomes = session.execute("alaivo 1; ampiasao tsisy; alaivo 2;")
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[0].relation.rows == [[1]] and outcomes[2].relation.rows == [[2]]
    assert outcomes[1].message == "Hadisoana : Tsy misy ny tahiry : tsisy"


def test_query_message_counts_rows(session):
    outcome = session.execute("alaivo 1 ankambana alaivo 2;")[0]
    assert outcome.ok and outcome.message == "2 andalana"
    assert [c.name for c in outcome.relation.columns] == ["1"]


def test_empty_statements_and_comments_yield_nothing(session):
    assert session.execute(";;  -- only a comment\n ; // another\n") == []


def test_text_after_the_last_semicolon_runs(session):
    outcomes = session.execute("alaivo 1; alaivo 2")
    assert [o.relation.rows for o in outcomes] == [[[1]], [[2]]]


def test_syntax_error_reports_line_and_column_in_the_script(session):
    outcomes = session.execute("alaivo 1;\n  alaivo 1 +;")
    assert outcomes[0].ok and not outcomes[1].ok
    message = outcomes[1].message
    assert message.startswith("Hadisoana : ") and "andalana 2" in message and "13" in message


def test_internal_error_becomes_a_clean_failure(session, monkeypatch, caplog):
    def explode(statement, state):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(session.executor, "run", explode)
    outcome = session.execute("alaivo 1;")[0]
    assert outcome == Outcome.failure(INTERNAL_ERROR)
    assert "secret" not in outcome.message and "Traceback" not in outcome.message
    assert "internal error" in caplog.text
    monkeypatch.undo()
    assert session.execute("alaivo 1;")[0].ok


def test_script_length_limit(tmp_path):
    session = Session(Store(tmp_path / "data"), limits=Limits(max_statement_chars=20))
    outcomes = session.execute("alaivo 1; alaivo 2; alaivo 3;")
    assert len(outcomes) == 1 and not outcomes[0].ok and "Lava loatra" in outcomes[0].message


def test_execute_one(session):
    assert session.execute_one("alaivo 3;").relation.rows == [[3]]
    assert not session.execute_one(";").ok
    assert session.execute_one("manamboara tahiry x;").message == (
        "Ny tahiry : x dia voaforona soamantsara")


def test_sessions_have_their_own_current_database(tmp_path):
    store = Store(tmp_path / "data")
    first, second = Session(store), Session(store)
    first.execute("manamboara tahiry a; manamboara tahiry b; ampiasao a;")
    second.execute("ampiasao b;")
    assert (first.current_database, second.current_database) == ("a", "b")


def test_view_cycle_is_a_clean_error(session):
    session.execute("manamboara tahiry d; ampiasao d; manamboara tabilao t (a DATY);"
                    "manamboara jery v @ alaivo * ao@ t; ravao ny tabilao t;")
    outcome = session.execute("manamboara jery t @ alaivo * ao@ v;")[0]
    assert not outcome.ok and outcome.message.startswith("Hadisoana : ")
    assert session.execute("asehoy ny jery;")[0].relation.rows == [["v"]]


# ------------------------------------------------------------------ render

RELATION = Relation("t", [Column("id", "t"), Column("anarana", "t"), Column("x", None)],
                    [[1, "Alice", 2.5], [10, None, True], [3, "Bé", 4.0]])


def test_render_table_is_aligned_and_counts_rows():
    assert render_table(RELATION) == "\n".join([
        "+----+---------+------+",
        "| id | anarana | x    |",
        "+----+---------+------+",
        "|  1 | Alice   | 2.5  |",
        "| 10 | NULL    | true |",
        "|  3 | Bé      | 4    |",
        "+----+---------+------+",
        "(3 andalana)"])


def test_render_empty_relation_and_wide_characters():
    assert render_table(Relation("t", [Column("a")], [])) == "+---+\n| a |\n+---+\n(0 andalana)"
    table = render_table(Relation("t", [Column("a")], [["日本"], ["ab"]]))
    assert "| 日本 |" in table and "| ab   |" in table


@pytest.mark.parametrize("value, width", [
    ("👩\u200d💻", 2),      # a joined emoji sequence is one picture
    ("🇲🇬", 2),             # a flag: two regional indicators
    ("❤\ufe0f", 2),         # a variation selector asks for the emoji picture
    ("e\u0301te", 3),       # a combining accent takes no column
    ("漢字", 4),
])
def test_cells_are_as_wide_as_the_terminal_draws_them(value, width):
    table = render_table(Relation("t", [Column("a")], [[value], ["x" * width]])).splitlines()
    assert table[3] == "| " + value + " |", table
    assert table[4] == "| " + "x" * width + " |"


def test_a_cell_shows_a_string_as_it_is_typed_in_a_literal():
    """A line break and a typed backslash-n looked alike (`a\\nb`); a value shows
    now as the literal that makes it, and controls a terminal would obey (an ESC
    colouring the rest of the screen, a bidirectional override) are shown, not sent."""
    rows = [["a\nb"], ["a\\nb"], ["C:\\x"], ["\x1b[31mred"], ["\u202eabc"], ["tab\there"]]
    table = render_table(Relation("t", [Column("a\nb")], rows)).splitlines()
    assert [line.strip("| ") for line in table[3:9]] == [
        "a\\nb", "a\\\\nb", "C:\\\\x", "\\x1b[31mred", "\\u202eabc", "tab\\there"]
    assert table[1].strip("| ") == "a\\nb"   # a header: controls shown too
    assert all(char.isprintable() for char in "".join(table))


def test_render_outcome_messages_and_errors():
    message = "Ny tahiry : a dia voafafa"
    assert render_outcome(Outcome.success(message)) == message
    assert render_outcome(Outcome.failure("Hadisoana : x")) == "Hadisoana : x"


def test_render_json_lines():
    line = render_json(Outcome.success("3 andalana", RELATION))
    assert "\n" not in line
    assert json.loads(line) == {"ok": True, "message": "3 andalana",
                                "columns": ["id", "anarana", "x"],
                                "rows": [[1, "Alice", 2.5], [10, None, True], [3, "Bé", 4.0]]}
    assert json.loads(render_json(Outcome.success("done"))) == {"ok": True, "message": "done"}
    assert json.loads(render_json(Outcome.failure("Hadisoana : x"))) == {
        "ok": False, "error": "Hadisoana : x"}
    big = Relation("t", [Column("n")], [[2**70]])
    assert json.loads(render_json(Outcome.success("1 andalana", big)))["rows"] == [[2**70]]
