"""The client's interactive features in a pseudo-terminal (pexpect), as a student uses them.

The pager for a result taller than the terminal (and `\\pset pager off`,
`--no-pager`), expanded rows (`\\x`, and automatically when a row is wider
than the terminal), `\\timing`, `\\o FILE`, the caret under a syntax
error, English errors (`\\lang en`), `\\?` and `\\d`.
"""

from __future__ import annotations

import re
import shutil

import pexpect
import pytest

from tests.integration.clientkit import client, json_lines, terminal

ROWS = 100
SETUP = ("manamboara tahiry s; ampiasao s; "
         "manamboara tabilao t ( id ISA(0,1000), anarana LAHATSORATRA(null,null) ); "
         "manampia ao@ t sanda " + ", ".join(f"({n}, 'anarana {n}')" for n in range(1, ROWS + 1))
         + ";")
PROMPT = "tahiry(s)>"


@pytest.fixture
def data(tmp_path):
    done = client("--embedded", str(tmp_path / "d"), "-e", SETUP, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return str(tmp_path / "d")


def session(tmp_path, data: str, *options: str, env: dict | None = None,
            **kwargs) -> pexpect.spawn:
    # LESS from the developer's environment (-F, -X...) would change what less shows.
    env = {"LESS": "", **(env or {})}
    child = terminal("--embedded", data, "-d", "s", *options, cwd=tmp_path, env=env, **kwargs)
    child.expect_exact(PROMPT)
    return child


def quit_session(child: pexpect.spawn) -> None:
    child.sendline("miala")
    child.expect(pexpect.EOF)


@pytest.mark.skipif(shutil.which("less") is None, reason="no less installed (the default pager)")
def test_a_tall_result_goes_through_less_until_the_pager_is_turned_off(tmp_path, data):
    child = session(tmp_path, data)
    child.sendline("alaivo id, anarana ao@ t alaharo id;")
    child.expect_exact("anarana 20 ")
    child.expect(r"\r\n:")              # less waits at the bottom of its first screen
    assert "anarana 90 " not in child.before
    child.send("q")
    child.expect_exact(PROMPT)
    child.sendline("\\pset pager off")
    child.expect_exact("pager: off")
    child.sendline("alaivo id, anarana ao@ t alaharo id;")
    child.expect_exact(f"({ROWS} andalana)")
    assert "anarana 90 " in child.before
    quit_session(child)


def test_no_pager_option_and_pager_variable(tmp_path, data):
    child = session(tmp_path, data, "--no-pager")
    child.sendline("alaivo id ao@ t;")
    child.expect_exact(f"({ROWS} andalana)")
    quit_session(child)
    # $PAGER is the pager: here one that shows it ran by counting the lines.
    child = session(tmp_path, data, env={"PAGER": "wc -l"})
    child.sendline("alaivo id ao@ t;")
    child.expect(r"(?<!\d)10[45]\r\n")   # rules, header and rows, the count line
    child.expect_exact(PROMPT)
    assert f"({ROWS} andalana)" not in child.before
    quit_session(child)


def test_expanded_display_by_command_and_for_wide_rows(tmp_path, data):
    child = session(tmp_path, data, columns=40)
    child.sendline("alaivo id, anarana ao@ t rehefa id = 7;")
    child.expect_exact("(1 andalana)")
    assert "| id |" in child.before             # fits in 40 columns: a table
    child.sendline("alaivo id, anarana, anarana antso faharoa, anarana antso fahatelo "
                   "ao@ t rehefa id = 7;")
    child.expect_exact("-[ ANDALANA 1 ]")       # wider than 40 columns: expanded
    child.expect_exact("(1 andalana)")
    assert re.search(r"fahatelo \| anarana 7", child.before)
    child.sendline("\\x off")
    child.expect_exact("expanded display: off")
    child.sendline("alaivo id, anarana, anarana antso faharoa, anarana antso fahatelo "
                   "ao@ t rehefa id = 7;")
    child.expect_exact("(1 andalana)")
    assert "ANDALANA 1" not in child.before and "| fahatelo" in child.before
    child.sendline("\\x")
    child.expect_exact("expanded display: on")
    child.sendline("alaivo id ao@ t rehefa id = 8;")
    child.expect_exact("-[ ANDALANA 1 ]")
    quit_session(child)


def test_timing_and_output_to_a_file(tmp_path, data):
    child = session(tmp_path, data)
    child.sendline("\\timing")
    child.expect_exact("timing: on")
    child.sendline("alaivo count(*) ao@ t;")
    child.expect(r"Time: \d+\.\d{3} ms")
    child.sendline("\\timing off")
    child.expect_exact("timing: off")
    target = tmp_path / "out.txt"
    child.sendline(f"\\o {target}")
    child.sendline("alaivo id ao@ t rehefa id < 3;")
    child.sendline("\\o")
    child.sendline("alaivo 'back' antso teo;")
    child.expect_exact("'back'")
    child.expect_exact(PROMPT)
    written = target.read_text()
    assert "(2 andalana)" in written and "Time" not in written and "'back'" not in written
    quit_session(child)


def test_a_syntax_error_shows_its_line_with_a_caret_and_english_on_request(tmp_path, data):
    child = session(tmp_path, data)
    child.sendline("alaivo id")
    child.sendline("  ao@ t rehefaa id = 1;")
    child.expect(r"andalana 2:   ao@ t rehefaa id = 1\r\n( *)\^")
    assert len(child.match.group(1)) == len("andalana 2:   ao@ t rehefaa ")
    child.expect_exact(PROMPT)
    child.sendline("\\lang en")
    child.expect_exact("language: en")
    child.sendline("alaivo * ao@ tsy_misy;")
    child.expect(r"Error: .*tsy_misy")
    child.expect_exact(PROMPT)
    quit_session(child)


def test_question_mark_lists_every_client_command(tmp_path, data):
    from nodes.client.commands import COMMANDS
    child = session(tmp_path, data)
    child.sendline("\\?")
    child.expect_exact("Ctrl-C")
    for spec in COMMANDS:
        assert spec.names[0] in child.before, spec.names[0]
    quit_session(child)


@pytest.mark.slow
def test_describe_a_table_and_every_table(tmp_path, data):
    probe = client("--embedded", data, "-d", "s", "-e", "asehoy ny tsanganana ao@ t;",
                   cwd=tmp_path)
    if probe.returncode != 0:
        pytest.skip("the engine has no `asehoy ny tsanganana ao@ T;` statement yet")
    child = session(tmp_path, data)
    child.sendline("\\d t")
    child.expect_exact("andalana)")
    assert "anarana" in child.before and "ISA(0,1000)" in child.before.replace(" ", "")
    child.sendline("\\d")
    child.expect_exact("andalana)")
    assert "anarana" in child.before
    quit_session(child)


def test_describe_through_a_server_in_json(tmp_path, start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    done = client("--port", str(server.port), "--format", "json", "-e",
                  "manamboara tahiry s; ampiasao s; "
                  "manamboara tabilao t ( id ISA(0,9), anarana LAHATSORATRA(1,20) );\n"
                  "\\d t\n\\d\n", cwd=tmp_path)
    if "tsanganana" not in done.stdout:
        pytest.skip("the engine has no `asehoy ny tsanganana ao@ T;` statement yet")
    one, every = json_lines(done.stdout)[-2:]
    assert one["ok"] and [row[0] for row in one["rows"]] == ["id", "anarana"]
    assert every["ok"] and {row[0] for row in every["rows"]} == {"t"}


def test_include_runs_a_file_at_the_prompt_and_names_a_missing_one(tmp_path, data):
    """`\\i FILE` (psql's): the file's statements run in this session, in order; its
    failures name the file's own line; a file that is not there is said so."""
    (tmp_path / "lesona.tq").write_text("ampiasao s;\n-- fanazaran-tena\nalaivo count(*)\n"
                                        "  antso isa ao@ t;\nalaivo tsy_misy ao@ t;\n")
    child = session(tmp_path, data, "--lang", "en")
    child.sendline("\\i lesona.tq")
    child.expect_exact(f"| {ROWS} |")
    child.expect_exact("lesona.tq:5: Error: Column 'tsy_misy'")
    child.expect_exact(PROMPT)
    child.sendline("\\i tsy_misy.tq")
    child.expect_exact("Error: \\i tsy_misy.tq: no such file")
    child.expect_exact(PROMPT)
    quit_session(child)
