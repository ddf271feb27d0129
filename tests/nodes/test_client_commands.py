"""The client's own commands, what it sends for a statement, and its result formats (unit tests).

Comment-only lines are not sent (issue 15, item 7) and positions are mapped
back to the statement's lines; backslash commands are recognised with or
without `;`, before a statement on the next line too; CSV is RFC 4180;
expanded rows; the `\\?` list and docs/CLIENT.md name every command.
"""

from __future__ import annotations

import csv
import io

import pytest

from engine.evaluation.outcome import Column, Outcome, Relation
from nodes.client.batch import run_text
from nodes.client.cheatsheet import GENERAL
from nodes.client.commands import COMMANDS, ClientCommand, apply, client_command, command_list
from nodes.client.display import Display
from nodes.client.explain import CARET_CONTEXT, caret_lines
from nodes.client.formats import render_csv, render_expanded, render_rows
from nodes.client.positions import ScriptPlace, sendable
from nodes.protocol import LOGIN_REQUIRED
from tests.conftest import REPO_ROOT


class RecordingRunner:
    """Answers every statement with one row, remembering what it was sent."""

    database = None
    where = "test"

    def __init__(self):
        self.statements: list[str] = []

    def run(self, statement):
        self.statements.append(statement)
        if "tsy_misy" in statement:
            return Outcome.failure("Hadisoana : Diso ny fanoratana (syntax) amin'ny andalana 2, "
                                   "tsanganana 5 : fa 'tsy_misy' no hita")
        return Outcome.success("", Relation("r", [Column("a")], [[1]]))

    def interrupted(self):
        pass

    def close(self):
        pass


def test_comment_only_lines_are_not_sent():
    runner = RecordingRunner()
    run_text("-- a comment before\nalaivo 1\n  -- inside\n// another\n  ao@ t; // after\n"
             "alaivo '\n-- in a string, kept\n';", runner, Display("table", io.StringIO()))
    assert runner.statements == ["alaivo 1\n  ao@ t", "alaivo '\n-- in a string, kept\n'"]


def test_positions_in_the_sent_text_map_back_to_the_statement():
    sent = sendable("-- c\n   alaivo 1\n-- d\n  ao@ t")
    assert sent.text == "alaivo 1\n  ao@ t"
    assert sent.statement_position(1, 8) == (2, 11)    # the stripped indentation counts
    assert sent.statement_position(2, 3) == (4, 3)
    place = ScriptPlace.of("Hadisoana : ... andalana 2, tsanganana 3 : x", "f.tah",
                           "-- c\n   alaivo 1\n-- d\n  ao@ t", sent, 10, 5)
    assert (place.line, place.column, place.text, place.prefix()) == (13, 3, "  ao@ t",
                                                                     "f.tah:13:3: ")


def test_no_line_is_shown_under_an_error_in_a_statement_with_a_password():
    """The caret's line repeated the password the node keeps out of its messages (a
    `-f` run's output may be logged); the position stays in the prefix."""
    statement = "manamboara mpampiasa xx\n  tenimiafina 'SecretPW-123' mpitantanaa"
    place = ScriptPlace.of("Hadisoana : ... andalana 2, tsanganana 31 : x", "f.tah", statement,
                           sendable(statement), 4, 1)
    assert place.prefix() == "f.tah:5:31: " and caret_lines(place) == []
    out = io.StringIO()
    Display("table", out).outcome(Outcome.failure("Hadisoana : ... andalana 2, tsanganana 31 : x"),
                                  place)
    assert "SecretPW" not in out.getvalue()


def test_a_failure_in_a_file_names_its_line_and_shows_a_caret():
    out = io.StringIO()
    run_text("alaivo 1;\n-- note\nalaivo\n-- skipped\n tsy_misy;", RecordingRunner(),
             Display("table", out), source="f.tah")
    lines = out.getvalue().splitlines()
    failure = lines.index(next(line for line in lines if "Hadisoana" in line))
    assert lines[failure].startswith("f.tah:5:5: Hadisoana : ")
    assert "andalana 5, tsanganana 5" in lines[failure]
    assert lines[failure + 1:failure + 3] == ["andalana 5:  tsy_misy", " " * 16 + "^"]


def test_a_caret_under_a_long_line_shows_the_line_around_it():
    """A 4000-character line was printed whole above its caret."""
    text = "x" * 2000 + "HERE" + "y" * 2000
    place = ScriptPlace(None, 1, 1, exact=True, text=text, text_column=2001)
    line, caret = caret_lines(place)
    assert line == "andalana 1: ..." + "x" * CARET_CONTEXT + "HERE" + "y" * (CARET_CONTEXT - 4) + "..."
    assert line[len(caret) - 1:].startswith("HERE")
    escaped = ScriptPlace(None, 1, 1, exact=True, text="a\x1bb c", text_column=5)
    line, caret = caret_lines(escaped)
    assert line == "andalana 1: a\\x1bb c" and line[len(caret) - 1] == "c"


@pytest.mark.parametrize("text, expected", [
    ("\\x", ClientCommand("expanded")),
    ("\\x auto;", ClientCommand("expanded", ("auto",))),
    ("\\pset pager off", ClientCommand("pset", ("pager", "off"))),
    ("\\o /tmp/a file.txt", ClientCommand("output", ("/tmp/a file.txt",))),
    ("\\d naoty;", ClientCommand("describe", ("naoty",))),
    ("\\?", ClientCommand("commands")),
    ("\\lang en", ClientCommand("lang", ("en",))),
    ("miala", ClientCommand("quit")),
    ("miala be", None),
    ("\\foo bar", ClientCommand("unknown", ("\\foo", "bar"))),   # (`\\c DB`: its database)
    ("alaivo 1", None),
])
def test_client_commands_are_recognised(text, expected):
    assert client_command(text) == expected


def test_a_command_line_before_a_statement_and_describe_is_sent_as_its_statement():
    runner = RecordingRunner()
    out = io.StringIO()
    display = Display("table", out)
    run_text("\\x on\nalaivo 1;\n\\d naoty\n\\d\n\\timing\n", runner, display)
    assert runner.statements == ["alaivo 1", "asehoy ny tsanganana ao@ naoty",
                                 "asehoy ny tsanganana"]
    assert display.settings.expanded == "on" and display.settings.timing is True
    assert "-[ ANDALANA 1 ]" in out.getvalue()


def test_a_command_line_after_comment_lines_is_a_command():
    """docs/CLIENT.md: lines holding only a comment are not sent; a backslash command
    behind them was read as the start of a statement (`marika tsy fantatra '\\'`)."""
    runner = RecordingRunner()
    out = io.StringIO()
    display = Display("table", out)
    result = run_text("-- jereo ny tabilao\n// sy ity\n\n  \\d naoty\n-- farany\n\\x on\n"
                      "alaivo 1;\n-- miala\n\\q\nalaivo 2;\n", runner, display)
    assert result.ok and result.quit, out.getvalue()
    assert runner.statements == ["asehoy ny tsanganana ao@ naoty", "alaivo 1"]
    assert display.settings.expanded == "on"


def test_miala_alone_on_a_line_of_a_file_quits_as_at_the_prompt():
    """`-e 'alaivo 5; miala; alaivo 6;'` quit; in a file, `miala` on its own line was read
    as the start of `miala alaivo 6` (a syntax error)."""
    runner = RecordingRunner()
    result = run_text("alaivo 5;\nmiala\nalaivo 6;\n", runner, Display("table", io.StringIO()))
    assert result.ok and result.quit and runner.statements == ["alaivo 5"]
    runner = RecordingRunner()
    run_text("-- farany\nmiala be;\n", runner, Display("table", io.StringIO()))
    assert runner.statements == ["miala be"]   # not the command: a (mistyped) statement


def test_a_misused_command_says_how_to_use_it():
    out = io.StringIO()
    runner = RecordingRunner()
    result = run_text("\\x sometimes\n\\pset pager\n\\lang fr\n\\dt\n", runner,
                      Display("table", out))
    assert not result.ok and runner.statements == []
    assert out.getvalue().count("Hadisoana : ") == 4
    assert "unknown client command \\dt: \\? lists them" in out.getvalue()
    assert "\\x [on|off|auto]" in out.getvalue() and "\\pset pager on|off" in out.getvalue()


@pytest.mark.parametrize("line, statement", [
    ("\\dt", "asehoy ny tabilao;"), ("\\dv", "asehoy ny jery;"), ("\\dD", "asehoy ny efitra;"),
    ("\\l", "asehoy ny tahiry;"), ("\\du", "asehoy ny mpampiasa;"),
    ("\\c sekoly", "ampiasao sekoly;"), ("\\connect sekoly;", "ampiasao sekoly;"),
    ("\\c", "ampiasao TAHIRY;")])
def test_a_psql_command_says_the_statement_to_write(line, statement):
    """A student used to psql types `\\dt` or `\\c sekoly`: the error said only "unknown
    client command", not that a statement of the language does it."""
    out = io.StringIO()
    runner = RecordingRunner()
    result = run_text(line + "\n", runner, Display("table", out))
    assert not result.ok and runner.statements == []
    assert out.getvalue().strip().endswith(
        f"\\? lists them ; amin'ny Tahiry / in Tahiry: {statement}"), out.getvalue()


def test_errors_stay_on_the_terminal_while_output_goes_to_a_file(tmp_path):
    """`\\o FILE` sends results to FILE (docs/CLIENT.md); a student whose error went
    there too saw nothing at all."""
    out, errors = io.StringIO(), io.StringIO()
    display = Display("table", out, errors=errors)
    target = tmp_path / "o.txt"
    apply(ClientCommand("output", (str(target),)), display)
    display.outcome(Outcome.failure("Hadisoana : Le champ 'tsisy' n'existe pas"))
    display.outcome(Outcome.success("", Relation("r", [Column("a")], [[5]])))
    apply(ClientCommand("output"), display)
    assert "tsisy" in errors.getvalue() and out.getvalue() == ""
    assert "tsisy" not in target.read_text() and "| 5 |" in target.read_text()


def test_output_to_a_file_and_back(tmp_path):
    out = io.StringIO()
    display = Display("table", out)
    target = tmp_path / "o.txt"
    assert apply(ClientCommand("output", (str(target),)), display) is None
    display.outcome(Outcome.success("", Relation("r", [Column("a")], [[5]])))
    apply(ClientCommand("output"), display)
    display.outcome(Outcome.success("done"))
    assert "|  5 |" in target.read_text() or "| 5 |" in target.read_text()
    assert out.getvalue() == "done\n"


RELATION = Relation("r", [Column("id"), Column("anarana"), Column("naoty")],
                    [[1, 'Rabe, "Koto"', 12.5], [2, "a\nb", None]])


def test_csv_is_rfc_4180_with_a_header():
    text = render_csv(RELATION)
    assert text == 'id,anarana,naoty\r\n1,"Rabe, ""Koto""",12.5\r\n2,"a\nb",\r\n'
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["id", "anarana", "naoty"], ["1", 'Rabe, "Koto"', "12.5"], ["2", "a\nb", ""]]


def test_csv_keeps_messages_off_the_standard_output():
    out, errors = io.StringIO(), io.StringIO()
    display = Display("csv", out, errors=errors)
    display.outcome(Outcome.success("Ny tahiry : s dia miasa ankehitriny"))
    display.outcome(Outcome.success("", RELATION))
    display.failure("tsy fantatra")
    display.text("Fotoana / timing: on")
    assert out.getvalue() == render_csv(RELATION)
    assert errors.getvalue().splitlines() == ["Ny tahiry : s dia miasa ankehitriny",
                                              "Hadisoana : tsy fantatra", "Fotoana / timing: on"]


NULL_NOTE = ("Tsy marina mihitsy ny 'naoty = null', na dia null aza ny sanda : 'naoty dia null' "
             "no manamarina ny null.")


@pytest.mark.parametrize("expanded", ["off", "on"])
def test_a_note_of_the_message_is_shown_under_the_rows(expanded):
    out = io.StringIO()
    display = Display("table", out)
    display.settings.expanded = expanded
    empty = Relation("naoty", RELATION.columns, [])
    display.outcome(Outcome.success("0 andalana " + NULL_NOTE, empty))
    display.outcome(Outcome.success("2 andalana", RELATION))   # no note: the rows alone
    shown = out.getvalue()
    assert shown == (render_rows(empty, expanded, None) + "\n" + NULL_NOTE + "\n"
                     + render_rows(RELATION, expanded, None) + "\n")


def test_csv_shows_a_note_beside_the_other_messages():
    out, errors = io.StringIO(), io.StringIO()
    Display("csv", out, errors=errors).outcome(Outcome.success("2 andalana " + NULL_NOTE, RELATION))
    assert out.getvalue() == render_csv(RELATION)
    assert errors.getvalue() == NULL_NOTE + "\n"


def test_with_lang_en_a_note_is_shown_in_english():
    """The note stayed Malagasy under `--lang en` (only errors were translated): it is now
    shown in English, under the rows as in Malagasy, and at the end of a message."""
    out = io.StringIO()
    display = Display("table", out)
    display.set_lang("en")
    english = ("'naoty = null' is never true, not even when the value is null: 'naoty dia null' "
               "is what tests for null.")
    empty = Relation("naoty", RELATION.columns, [])
    display.outcome(Outcome.success("0 andalana " + NULL_NOTE, empty))
    display.outcome(Outcome.success("Tafinditra ny fiovana ny tabilao (0 andalana) " + NULL_NOTE))
    assert out.getvalue() == (render_rows(empty, "off", None) + "\n" + english + "\n"
                              + "Tafinditra ny fiovana ny tabilao (0 andalana) " + english + "\n")


def test_expanded_rows_and_the_automatic_choice():
    assert render_expanded(RELATION).splitlines()[:4] == [
        "-[ ANDALANA 1 ]-------", "id      | 1", "anarana | Rabe, \"Koto\"",
        "naoty   | 12.5"]
    assert render_rows(RELATION, "auto", 200).startswith("+----")
    assert render_rows(RELATION, "auto", 20).startswith("-[ ANDALANA 1 ]")
    assert render_rows(RELATION, "auto", None).startswith("+----")   # not a terminal
    assert render_rows(RELATION, "off", 20).startswith("+----")


def test_expanded_rows_show_values_as_the_table_does():
    relation = Relation("t", [Column("a\tb")], [["x\ny"], ["x\\ny"], ["\x1b[2J"]])
    assert render_expanded(relation).splitlines() == [
        "-[ ANDALANA 1 ]", "a\\tb | x\\ny", "-[ ANDALANA 2 ]", "a\\tb | x\\\\ny",
        "-[ ANDALANA 3 ]", "a\\tb | \\x1b[2J", "(3 andalana)"]


def test_an_expanded_rule_is_never_wider_than_the_terminal():
    relation = Relation("t", [Column("a")], [["x" * 240]])
    rule = render_rows(relation, "auto", 80).splitlines()[0]
    assert rule.startswith("-[ ANDALANA 1 ]") and len(rule) == 80
    assert len(render_expanded(relation).splitlines()[0]) == 244   # no terminal: the line's


def test_every_command_is_listed_by_question_mark_and_in_docs():
    listed = command_list()
    guide = (REPO_ROOT / "docs" / "CLIENT.md").read_text()
    for spec in COMMANDS:
        for name in spec.names:
            assert name in listed, name
        assert f"`{spec.names[0]}" in guide, spec.names[0]


def test_the_help_overview_names_every_backslash_command_a_student_types():
    # `\\i FILE` came after the overview was written: only `\\?` listed it.
    for command in ("\\d", "\\x", "\\timing", "\\o FILE", "\\i FILE", "\\q"):
        assert command in GENERAL, command


def test_help_names_the_way_to_run_the_client():
    from nodes.client.cli import build_parser
    text = build_parser().format_help()
    assert text.startswith("usage: ./tahiry client")
    assert "tahiry-client" in text and "--format {table,json,csv}" in text
    assert "--no-pager" in text and "--lang {mg,en}" in text


def test_help_on_an_english_keyword_names_the_malagasy_one():
    out = io.StringIO()
    run_text("fanampiana select; fanampiana describe;", RecordingRunner(), Display("table", out))
    text = out.getvalue()
    assert "'select' is written 'alaivo'" in text and "alaivo: SELECT" in text
    assert "asehoy ny tsanganana ao@" in text


def test_help_on_a_sql_keyword_tahiry_has_no_word_for_shows_how_it_is_written():
    out = io.StringIO()
    run_text("fanampiana distinct; fanampiana BETWEEN;", RecordingRunner(), Display("table", out))
    text = out.getvalue()
    assert "Tahiry has no 'distinct'" in text and "vondrona a, b;" in text
    assert "Tahiry has no 'between'" in text and "a >= 1 ary a <= 5;" in text


def test_help_has_a_topic_on_accounts_logins_and_rights():
    out = io.StringIO()
    run_text("fanampiana mpampiasa; fanampiana .login; fanampiana grant; fanampiana password;",
             RecordingRunner(), Display("table", out))
    text = out.getvalue()
    accounts = text.split("mpampiasa: ")[1]
    for part in ('.login NAME "PW"', "--user NAME", "TAHIRY_PASSWORD",
                 'manamboara mpampiasa NAME tenimiafina "PW" [mpitantana]',
                 'ovay ny tenimiafina NAME "PW"', "ravao ny mpampiasa NAME", "asehoy ny mpampiasa",
                 "omeo|esory NAME zo mamaky|manoratra ao@ DB", "owner", "administrator",
                 ".stop NAME;", "./tahiry accounts stop NAME"):
        assert part in accounts, part
    assert text.count("mpampiasa: ACCOUNTS") == 2   # `.login` is answered by the same topic
    assert "'grant' is written 'omeo'" in text and "omeo: GRANT" in text
    assert 'ovay: change a password' in text
    assert "fanampiana mpampiasa" in GENERAL and ".login" in GENERAL


@pytest.mark.parametrize("lang, prefix", [("mg", "Hadisoana : "), ("en", "Error: ")])
def test_a_misused_command_in_a_file_says_where_in_the_chosen_language(lang, prefix):
    """Like a statement's error: `file:line: ` first, and the prefix of `--lang`."""
    out = io.StringIO()
    display = Display("table", out)
    display.set_lang(lang)
    result = run_text("-- fampiharana\n\\x sometimes\n\\dt\n", RecordingRunner(), display,
                      source="lesona.tq")
    assert not result.ok
    assert out.getvalue().splitlines() == [
        f"lesona.tq:2: {prefix}\\x [on|off|auto]",
        f"lesona.tq:3: {prefix}Baiko tsy fantatra / unknown client command \\dt: \\? lists them"
        " ; amin'ny Tahiry / in Tahiry: asehoy ny tabilao;"]


def test_csv_tells_null_from_the_empty_string():
    relation = Relation("valiny", [Column("a"), Column("b"), Column("c")], [[None, "", 1], [None, None, ""]])
    assert render_csv(relation) == 'a,b,c\r\n,"",1\r\n,,""\r\n'
    one = Relation("valiny", [Column("a")], [[None], [""]])
    assert render_csv(one) == 'a\r\n\r\n""\r\n'


def test_login_required_says_how_to_log_in_with_this_client():
    out = io.StringIO()
    Display("table", out).outcome(Outcome.failure(LOGIN_REQUIRED))
    assert out.getvalue().rstrip("\n") == LOGIN_REQUIRED + " (na / or: ./tahiry client --user NAME)"
