"""`python -m engine`: the embedded runner, run as a real child process."""

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 30


def runner(data, *arguments, stdin=""):
    return subprocess.run(
        [sys.executable, "-m", "engine", "--data", str(data), *arguments],
        input=stdin, capture_output=True, text=True, cwd=REPO_ROOT, timeout=TIMEOUT_S)


def json_lines(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def test_e_with_json_format_reports_every_statement_and_exit_1(tmp_path):
    result = runner(tmp_path, "--format", "json", "-e",
                    "manamboara tahiry d; ampiasao d; manamboara tabilao t (a ISA(0,9), b DATY);"
                    "manampia ao@ t sanda (1, '2024-01-01'), (2, null);"
                    "manampia ao@ t sanda (10, null);"
                    "alaivo * ao@ t;")
    assert result.returncode == 1
    lines = json_lines(result.stdout)
    assert lines[:4] == [
        {"ok": True, "message": "Ny tahiry : d dia voaforona soamantsara"},
        {"ok": True, "message": "Ny tahiry : d dia miasa ankehitriny"},
        {"ok": True, "message": "Ny tabilao : t dia voaforona soamantsara"},
        {"ok": True, "message": "Tafinditra ny fiovana ny tabilao (2 andalana)"}]
    assert lines[4] == {"ok": False, "error": "Hadisoana : Ny sanda 10 dia tsy mifanaraka "
                        "amin'ny efitra ISA(0,9) an'ny tsanganana 'a'"}
    assert lines[5] == {"ok": True, "message": "2 andalana", "columns": ["a", "b"],
                        "rows": [[1, "2024-01-01"], [2, None]]}
    assert len(lines) == 6


def test_exit_0_when_everything_succeeds_and_data_persists(tmp_path):
    first = runner(tmp_path, "-e", "manamboara tahiry d; ampiasao d;"
                                   "manamboara tabilao t (a LAHATSORATRA(null,null));"
                                   "manampia ao@ t sanda ('x');")
    assert first.returncode == 0, first.stderr
    second = runner(tmp_path, "--format", "json", "-e", "ampiasao d; alaivo * ao@ t;")
    assert second.returncode == 0
    assert json_lines(second.stdout)[1]["rows"] == [["x"]]
    assert (tmp_path / "d" / "tables" / "t.json").is_file()


def test_table_format_draws_boxes_and_errors_go_to_stderr(tmp_path):
    result = runner(tmp_path, "-e", "alaivo 1 antso a, 'x' antso b; alaivo 1 / 0;")
    assert result.returncode == 1
    assert result.stdout == ("+---+---+\n| a | b |\n+---+---+\n| 1 | x |\n+---+---+\n"
                             "(1 andalana)\n")
    assert result.stderr.startswith("Hadisoana : ")
    assert "Traceback" not in result.stderr


NULL_NOTE = ("Tsy marina mihitsy ny 'a = null', na dia null aza ny sanda : 'a dia null' no "
             "manamarina ny null.")


def test_a_comparison_with_null_shows_its_note_under_the_table_and_in_json(tmp_path):
    setup = "manamboara tahiry d; ampiasao d; manamboara tabilao t (a ISA(null,null));"
    query = "manampia ao@ t sanda (1), (null); alaivo * ao@ t rehefa a = null;"
    result = runner(tmp_path, "-e", setup + query)
    assert result.returncode == 0, result.stderr
    # The rows are those of the rule (none); the note comes after the row count.
    assert result.stdout.endswith("+---+\n| a |\n+---+\n(0 andalana)\n" + NULL_NOTE + "\n")
    again = runner(tmp_path, "--format", "json", "-e", "ampiasao d;" + query.split(";")[1] + ";")
    assert json_lines(again.stdout)[1] == {"ok": True, "message": "0 andalana " + NULL_NOTE,
                                           "columns": ["a"], "rows": []}


def test_file_argument(tmp_path):
    script = tmp_path / "script.tah"
    script.write_text("manamboara tahiry d;\n-- a comment; still a comment\nasehoy ny tahiry;\n",
                      encoding="utf-8")
    result = runner(tmp_path / "data", "--format", "json", "-f", str(script))
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout)[1]["rows"] == [["d"]]


def test_missing_file_is_a_clean_error(tmp_path):
    result = runner(tmp_path, "-f", str(tmp_path / "nope.tah"))
    assert result.returncode == 2
    assert result.stderr.startswith("Hadisoana : ") and "Traceback" not in result.stderr


def test_reads_stdin_without_e_or_f(tmp_path):
    result = runner(tmp_path, "--format", "json",
                    stdin="manamboara tahiry s;\nampiasao tsisy;\nasehoy ny tahiry")
    assert result.returncode == 1
    assert json_lines(result.stdout) == [
        {"ok": True, "message": "Ny tahiry : s dia voaforona soamantsara"},
        {"ok": False, "error": "Hadisoana : Tsy misy ny tahiry : tsisy"},
        {"ok": True, "message": "1 andalana", "columns": ["fanasehoana"], "rows": [["s"]]}]


def test_syntax_error_and_escaping_name(tmp_path):
    result = runner(tmp_path / "data", "--format", "json",
                    "-e", "alaivo ) ; ampiasao ../etc; manamboara tahiry ok;")
    assert result.returncode == 1
    lines = json_lines(result.stdout)
    assert [line["ok"] for line in lines] == [False, False, True]
    assert "andalana 1" in lines[0]["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_script_file_starting_with_a_byte_order_mark_runs(tmp_path):
    # Windows editors (Notepad) save UTF-8 with a BOM; it is not part of the script
    script = tmp_path / "script.tq"
    script.write_bytes("\ufeffalaivo 'é' antso x;".encode("utf-8"))
    result = runner(tmp_path / "data", "--format", "json", "-f", str(script))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json_lines(result.stdout) == [
        {"ok": True, "message": "1 andalana", "columns": ["x"], "rows": [["é"]]}]
    piped = runner(tmp_path / "data", "--format", "json", stdin="\ufeffalaivo 1;")
    assert piped.returncode == 0, piped.stdout + piped.stderr


def test_a_directory_a_server_holds_is_refused_and_left_untouched(tmp_path):
    import os

    from engine.storage.data_owner import OwnerLock, OwnerRecord

    data = tmp_path / "data"
    held = OwnerLock.acquire(data, OwnerRecord(node="m1", pid=os.getpid(), host="127.0.0.1",
                                               port=3948, cluster="/srv/topology.yaml"))
    try:
        result = runner(data, "-e", "manamboara tahiry db;")
        assert result.returncode == 2
        assert "node m1" in result.stderr and "3948" in result.stderr
        assert not (data / "db").exists()
    finally:
        held.release()
    assert runner(data, "-e", "manamboara tahiry db;").returncode == 0


def test_a_script_over_the_statement_limit_runs_statement_by_statement(tmp_path):
    # 1.1 million characters in all; each statement is well under the limit.
    value = "x" * 100_000
    script = tmp_path / "dump.tah"
    script.write_text("manamboara tahiry d; ampiasao d;\n"
                      "manamboara tabilao t (n ISA(0,99), s LAHATSORATRA(null,null));\n"
                      + "".join(f"manampia ao@ t sanda ({n}, '{value}');\n" for n in range(11))
                      + "alaivo count(*), sum(n) ao@ t;\n")
    assert script.stat().st_size > 1_000_000
    result = runner(tmp_path / "data", "--format", "json", "-f", str(script))
    assert result.returncode == 0, result.stderr[:500]
    lines = json_lines(result.stdout)
    assert len(lines) == 3 + 11 + 1
    assert lines[-1]["rows"] == [[11, 55]]
    piped = runner(tmp_path / "data2", "--format", "json", stdin=script.read_text())
    assert piped.returncode == 0 and json_lines(piped.stdout)[-1]["rows"] == [[11, 55]]


def test_one_statement_over_the_limit_is_refused_with_its_line_and_the_rest_runs(tmp_path):
    script = tmp_path / "s.tah"
    # The second statement never ends: its text is dropped as it is read.
    script.write_text("alaivo 1;\n\n  alaivo 'abc\n" + "y" * 1_200_000 + "\n")
    result = runner(tmp_path / "data", "--format", "json", "-f", str(script))
    assert result.returncode == 1
    lines = json_lines(result.stdout)
    assert lines[0]["rows"] == [[1]]
    assert lines[1]["error"].startswith("Hadisoana : Lava loatra ny baiko : 1200")
    assert lines[1]["error"].endswith("(max 1000000) (andalana 3)")
    assert len(lines) == 2


def test_a_data_directory_that_is_a_file_is_refused_saying_so(tmp_path):
    """Bug: `--data FILE` (and `./tahiry client --embedded FILE`) said `File exists`, the
    error of a mkdir, not that a file stands where the data directory should be."""
    data = tmp_path / "notes.txt"
    data.write_text("not a directory\n")
    result = runner(data, "-e", "asehoy ny tahiry;")
    assert result.returncode == 2
    assert "it is a file, not a directory" in result.stderr, result.stderr
    client = subprocess.run([sys.executable, "-m", "nodes.client", "--embedded", str(data),
                             "-e", "asehoy ny tahiry;"], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=TIMEOUT_S)
    assert client.returncode == 2
    assert f"cannot use {data}: it is a file, not a directory" in client.stderr, client.stderr
    assert data.read_text() == "not a directory\n"
