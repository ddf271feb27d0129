"""The interactive loop, driven through prompt_toolkit's pipe input.

The runner is a stand-in recording what it was asked (a unit test of the
loop alone); the real engine and nodes are exercised in the CLI tests.
"""

import io

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from engine.evaluation.outcome import Column, Outcome, Relation
from nodes.client.batch import client_command, run_text
from nodes.client.completion import Vocabulary
from nodes.client.connection import ConnectionLost
from nodes.client.display import Display
from nodes.client.repl import Repl, input_complete, prompt_text, trailing_command


class RecordingRunner:
    """Answers like a node would, remembering every statement it got."""

    def __init__(self):
        self.statements = []
        self.database = None
        self.where = "test"
        self.closed = 0
        self.lose_next = False

    def run(self, statement):
        self.statements.append(statement)
        if statement == "alaivo miandry":
            raise KeyboardInterrupt  # as if Ctrl-C came while it ran
        if self.lose_next:
            self.lose_next = False
            raise ConnectionLost("connection lost")
        if statement.startswith("ampiasao"):
            self.database = statement.split()[1]
            return Outcome.success(f"Ny tahiry : {self.database} dia miasa ankehitriny")
        if statement.startswith("alaivo"):
            return Outcome.success("", Relation("r", [Column("a")], [[1], [2]]))
        return Outcome.failure("Hadisoana : tsy fantatra")

    def interrupted(self):
        self.closed += 1

    def close(self):
        self.closed += 1


@pytest.mark.parametrize("text, complete", [
    ("alaivo 1;", True),
    ("alaivo 1", False),
    ("alaivo 1\n  ao@ t;", True),
    ("alaivo ';'", False),
    ("alaivo ';';", True),
    ("alaivo 1; -- done", True),
    ("alaivo 1; alaivo", False),
    ("alaivo 1 -- ;", False),
    ("miala", True),
    ("\\h", True),
    ("?", True),
    ("fanampiana alaivo", True),
    ("   ", True),
    # A line holding only a comment runs nothing: Enter ends it, so a command typed
    # on the next line is one (it was appended to the comment, and even \\q stuck).
    ("-- jereo ny tabilao", True),
    ("// fanamarihana\n", True),
    ("-- jereo\n\\d naoty", True),
    ("-- jereo\n  \\q", True),
    ("-- jereo\nalaivo 1", False),
    # A backslash command on a line of its own, a statement pending above it, runs (the
    # buffer is kept, as in psql): `\\q` after a forgotten `;` stuck in the statement.
    ("alaivo 5\n\\q", True),
    ("alaivo id\n  \\d naoty", True),
    ("alaivo 'a\n\\q", False),              # inside a string: the string's text
    ("alaivo 1 -- \\q", False),
])
def test_enter_submits_only_complete_input(text, complete):
    assert input_complete(text) is complete


def test_client_commands():
    assert client_command("miala;").kind == "quit"
    assert client_command("MIALA").kind == "quit"
    assert client_command("fanampiana tonona;").topic == "tonona"
    assert client_command("alaivo 1") is None
    assert client_command("miala be") is None


def test_prompt_shows_the_database():
    assert prompt_text(None) == "tahiry> "
    assert prompt_text("sekoly") == "tahiry(sekoly)> "


def drive(keys: str, runner=None):
    """Run the REPL on typed keys; returns (runner, printed text, status)."""
    runner = runner or RecordingRunner()
    out = io.StringIO()
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        pipe.send_text(keys)
        repl = Repl(runner, Display("table", out), history=InMemoryHistory(),
                    input=pipe, output=DummyOutput(), vocabulary=Vocabulary())
        status = repl.run()
    return runner, out.getvalue(), status


def test_multi_line_statement_runs_once_complete_then_miala_quits():
    runner, printed, status = drive("alaivo a\rao@ t;\rmiala\r")
    assert runner.statements == ["alaivo a\nao@ t"]
    assert "(2 andalana)" in printed and "| a |" in printed
    assert status == 0


def test_several_statements_on_one_line_and_errors_shown():
    runner, printed, _ = drive("ampiasao sekoly; fafao ao@ x;\rmiala;\r")
    assert runner.statements == ["ampiasao sekoly", "fafao ao@ x"]
    assert "Hadisoana : tsy fantatra" in printed
    assert runner.database == "sekoly"


def test_help_is_printed_and_sent_nowhere():
    runner, printed, _ = drive("?\rfanampiana fetra\r\x04")
    assert runner.statements == []
    assert "fanampiana" in printed and "LIMIT" in printed


def test_a_backslash_command_under_a_pending_statement_runs_and_keeps_it():
    """`alaivo 5` (`;` forgotten) then `\\q`: both were one statement, and so was every
    `\\q` or `miala` after; `\\x` on a continuation line was a syntax error."""
    runner, printed, status = drive("alaivo id\r\\x\rao@ t;\r\\q\r")
    assert "expanded display: on" in printed
    assert runner.statements == ["alaivo id\nao@ t"]
    assert "-[ ANDALANA 1 ]" in printed
    runner, _, status = drive("alaivo 5\r\\q\r")
    assert runner.statements == [] and status == 0


def test_a_pasted_statement_ended_above_the_command_runs_with_it():
    assert trailing_command("alaivo 1;\nalaivo 2\n\\x") == ("alaivo 1;\n\\x", "alaivo 2\n")
    assert trailing_command("alaivo 2\n  \\q ") == ("\n\\q", "alaivo 2\n")
    assert trailing_command("alaivo 1;\n\\x") == ("alaivo 1;\n\\x", "")
    assert input_complete("alaivo 1;\n\\x")
    assert trailing_command("alaivo 'a\n\\x") is None   # the string's own text


def test_ctrl_d_quits():
    runner, _, status = drive("\x04")
    assert status == 0 and runner.statements == []


def test_lost_connection_is_reported_and_the_loop_goes_on():
    runner = RecordingRunner()
    runner.lose_next = True
    runner, printed, _ = drive("alaivo 1;\ralaivo 2;\rmiala\r", runner)
    assert "connection lost" in printed
    assert runner.statements == ["alaivo 1", "alaivo 2"]
    assert "(2 andalana)" in printed


def test_json_display_of_a_batch():
    out = io.StringIO()
    result = run_text("alaivo 1; fafao ao@ t; -- nothing\n", RecordingRunner(), Display("json", out))
    lines = out.getvalue().splitlines()
    assert lines == ['{"ok":true,"message":"","columns":["a"],"rows":[[1],[2]]}',
                     '{"ok":false,"error":"Hadisoana : tsy fantatra"}']
    assert result.ok is False and result.statements == 2


def test_ctrl_c_while_a_statement_runs_drops_the_connection_and_goes_on():
    runner, printed, status = drive("alaivo miandry;\ralaivo 1;\rmiala\r")
    assert "interrupted" in printed and "(2 andalana)" in printed
    assert runner.closed == 1 and status == 0


def test_a_folded_long_line_is_not_drawn_as_a_new_line():
    repl = Repl.__new__(Repl)   # (the prompt only: no session needed)
    assert repl._continuation(8, 1, 0) == "   ...> "
    assert repl._continuation(8, 1, 2) == " " * 8
