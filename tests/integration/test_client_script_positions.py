"""Where a failure is in a script, as the client reports it (issue 15, bug 4 and the caret).

A syntax error inside a statement that starts on line 3 of a file and
fails on its second line is on the file's line 4: the client reports the
file's own line and column (`ml2.sql:4:17:`), and `--format json` adds
`file`, `line` and `column`. On a table display the offending line is shown
with a caret under the position, as PostgreSQL does.
"""

from __future__ import annotations

from tests.integration.clientkit import client, json_lines

SETUP = "manamboara tahiry s; ampiasao s; manamboara tabilao t ( id ISA(0,9) );"
ML2 = "ampiasao s;\nalaivo 1;\nalaivo id\n  ao@ t rehefaa id = 1;\n"


def test_a_file_failure_names_the_file_line_and_column(tmp_path, start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    assert client("--port", str(server.port), "-e", SETUP, cwd=tmp_path).returncode == 0
    script = tmp_path / "ml2.sql"
    script.write_text(ML2)
    done = client("--port", str(server.port), "-f", str(script), cwd=tmp_path)
    assert done.returncode == 1
    failure = next(line for line in done.stdout.splitlines() if "Hadisoana" in line)
    assert failure.startswith(f"{script}:4:17: Hadisoana : "), failure
    assert "andalana 4, tsanganana 17" in failure
    # The offending line, a caret under column 17.
    lines = done.stdout.splitlines()
    shown = lines[lines.index(failure) + 1]
    caret = lines[lines.index(failure) + 2]
    assert shown.endswith("  ao@ t rehefaa id = 1")
    assert caret.index("^") == shown.index("id =")
    as_json = client("--port", str(server.port), "--format", "json", "-f", str(script),
                     cwd=tmp_path)
    last = json_lines(as_json.stdout)[-1]
    assert (last["ok"], last["file"], last["line"], last["column"]) == (False, str(script), 4, 17)
    assert "andalana" in last["error"]


def test_positions_on_a_later_first_line_and_after_comment_lines(tmp_path):
    data = str(tmp_path / "d")
    assert client("--embedded", data, "-e", SETUP, cwd=tmp_path).returncode == 0
    script = tmp_path / "c.tah"
    # The statement starts at column 12 of line 1; comment-only lines before
    # and inside the failing statement are not sent, yet the position is the file's.
    script.write_text("alaivo 1;  alaivo 2 3;\n-- first\n\n  -- second\nalaivo id\n"
                      "-- inside\n  ao@ t rehefaa id = 1;\n")
    done = json_lines(client("--embedded", data, "-d", "s", "--format", "json", "-f",
                             str(script), cwd=tmp_path).stdout)
    assert [(line.get("line"), line.get("column")) for line in done] == [
        (None, None), (1, 21), (7, 17)]


def test_a_not_found_error_points_at_its_statement_start(tmp_path):
    data = str(tmp_path / "d")
    assert client("--embedded", data, "-e", SETUP, cwd=tmp_path).returncode == 0
    script = tmp_path / "n.tah"
    script.write_text("\n\n   alaivo * ao@ tsy_misy;\n")
    done = client("--embedded", data, "-d", "s", "--format", "json", "-f", str(script),
                  cwd=tmp_path)
    line = json_lines(done.stdout)[0]
    assert (line["file"], line["line"], line["column"]) == (str(script), 3, 4)


def test_an_error_without_a_position_after_comment_lines_names_its_statement_line(tmp_path):
    """The comment lines before a statement are no part of it: a failure without a
    position named the first comment line (`n.tah:2:`), not the statement's."""
    data = str(tmp_path / "d")
    assert client("--embedded", data, "-e", SETUP, cwd=tmp_path).returncode == 0
    script = tmp_path / "n.tah"
    script.write_text("alaivo 1;\n-- the grades\n  -- (all of them)\n  manampia ao@ t sanda\n"
                      "  (1), (99);\nalaivo 2; -- note\n   alaivo * ao@ tsy_misy;\n")
    done = client("--embedded", data, "-d", "s", "--format", "json", "-f", str(script),
                  cwd=tmp_path)
    failures = [line for line in json_lines(done.stdout) if not line["ok"]]
    assert [(line["line"], line["column"]) for line in failures] == [(4, 3), (7, 4)]
    shown = client("--embedded", data, "-d", "s", "-f", str(script), cwd=tmp_path)
    assert f"{script}:4: Hadisoana : Ny sanda 99" in shown.stdout + shown.stderr
