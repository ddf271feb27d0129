"""The client as a user runs it: a subprocess, on the engine in-process or a real server.

Covers -e, -f, stdin, --format json, exit statuses, the "nothing is
listening" message, the DB-API driver against a server process, and the
interactive prompt driven through a pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

import nodes.client as dbapi
from tests.conftest import REPO_ROOT, free_port, wait_until
from tests.integration.clientkit import client, json_lines

SETUP = """
manamboara tahiry sekoly;
ampiasao sekoly;
manamboara tabilao naoty ( id LAHATSORATRA(2,5), taranja LAHATSORATRA(null,null), naoty ISA(0,20) );
manampia ao@ naoty sanda ("E1","Algo",14), ("E1","BD",9), ("E2","Algo",16);
"""


def test_embedded_e_runs_every_statement_and_reports_failure(tmp_path):
    data = str(tmp_path / "data")
    done = client("--embedded", data, "--format", "json", "-e",
                  SETUP + "alaivo tsy_misy ao@ naoty; alaivo count(*) ao@ naoty;", cwd=tmp_path)
    lines = json_lines(done.stdout)
    assert done.returncode == 1, done.stderr
    assert [line["ok"] for line in lines] == [True, True, True, True, False, True]
    assert lines[4]["error"].startswith("Hadisoana : ")
    assert lines[5]["rows"] == [[3]] and lines[5]["columns"] == ["count(*)"]
    assert done.stderr == ""


def test_embedded_f_all_ok_exits_zero_and_draws_a_table(tmp_path):
    script = tmp_path / "script.tah"
    script.write_text(SETUP + "alaivo id, naoty ao@ naoty rehefa naoty > 10 alaharo naoty;\n")
    done = client("--embedded", str(tmp_path / "d"), "-f", str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| E1 |    14 |" in done.stdout and "| E2 |    16 |" in done.stdout
    assert "(2 andalana)" in done.stdout


def test_data_persists_between_embedded_runs_and_stdin_is_read_when_not_a_tty(tmp_path):
    data = str(tmp_path / "d")
    assert client("--embedded", data, "-e", SETUP, cwd=tmp_path).returncode == 0
    done = client("--embedded", data, "--format", "json",
                  stdin="ampiasao sekoly;\nalaivo sum(naoty) ao@ naoty;\n", cwd=tmp_path)
    assert json_lines(done.stdout)[-1]["rows"] == [[39]]
    assert done.returncode == 0


def test_miala_stops_a_script(tmp_path):
    done = client("--embedded", str(tmp_path / "d"), "--format", "json",
                  "-e", "alaivo 1; miala; alaivo 2;", cwd=tmp_path)
    assert [line["rows"] for line in json_lines(done.stdout)] == [[[1]]]


def test_unreadable_file_and_bad_arguments_exit_two(tmp_path):
    done = client("--embedded", str(tmp_path / "d"), "-f", str(tmp_path / "missing.tah"), cwd=tmp_path)
    assert done.returncode == 2 and "cannot read" in done.stderr
    assert "Traceback" not in done.stderr
    assert client("--port", "0", "-e", "alaivo 1;", cwd=tmp_path).returncode == 2


def test_nothing_listening_is_a_clear_message_not_a_traceback(tmp_path):
    port = free_port()
    done = client("--port", str(port), "-e", "alaivo 1;", cwd=tmp_path)
    assert done.returncode == 2
    assert f"nothing is listening at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_unterminated_string_gets_a_syntax_error_not_a_hang(tmp_path, start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    done = client("--port", str(server.port), "--format", "json", "-e", "alaivo 'abc", cwd=tmp_path)
    embedded = client("--embedded", str(tmp_path / "e"), "--format", "json", "-e", "alaivo 'abc",
                      cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == embedded.stdout
    assert json_lines(done.stdout)[0]["error"].startswith("Hadisoana : ")


@pytest.mark.parametrize("script", ["alaivo 9223372036854775807 * 10, 12345678901234567891234;",
                                    "alaivo -9223372036854775807 - 2, '12345678901234567890';"])
@pytest.mark.parametrize("output", ["json", "table"])
def test_integers_beyond_64_bits_come_back_exactly_as_embedded(tmp_path, start_node, script, output):
    """The engine computes integers exactly; through a node they came back as the
    nearest float (92233720368547760000), since orjson reads them so."""
    server = start_node("server", "m1", "--data", "data/m1")
    remote = client("--port", str(server.port), "--format", output, "-e", script, cwd=tmp_path)
    embedded = client("--embedded", str(tmp_path / "e"), "--format", output, "-e", script,
                      cwd=tmp_path)
    assert remote.returncode == embedded.returncode == 0, remote.stdout
    assert remote.stdout == embedded.stdout
    assert "92233720368547758070" in remote.stdout or "-9223372036854775809" in remote.stdout


NUMBERS = ("alaivo 0 * -1.5, 2.0, 4 / 2, avg(n), 0.5, 100000000000000000000.0, "
           "123456789012345678901.5, 0.0000001, 1 / 3 ao@ (alaivo 1 antso n) x;")


@pytest.mark.parametrize("where", ["server", "embedded"])
def test_json_numbers_are_the_values_the_table_shows(tmp_path, start_node, where):
    """A number is one value in the language (ISA): the table shows 0 and 2 where
    --format json printed -0.0 and 2.0."""
    if where == "server":
        target = ("--port", str(start_node("server", "m1", "--data", "data/m1").port))
    else:
        target = ("--embedded", str(tmp_path / "e"))
    table = client(*target, "--format", "csv", "-e", NUMBERS, cwd=tmp_path)
    done = client(*target, "--format", "json", "-e", NUMBERS, cwd=tmp_path)
    assert done.returncode == table.returncode == 0, done.stdout + done.stderr
    shown = table.stdout.splitlines()[1].split(",")   # the values as the table shows them
    assert shown[:3] == ["0", "2", "2"], shown
    # The same numbers (exactly, read as decimals), and a whole one written as an integer.
    [row] = json.loads(done.stdout, parse_float=Decimal, parse_int=Decimal)["rows"]
    assert row == [Decimal(text) for text in shown]
    [row] = json_lines(done.stdout)[0]["rows"]
    assert [type(value) for value in row] == [int] * 4 + [float] + [int] * 2 + [float] * 2, \
        done.stdout


def test_include_runs_a_file_in_order_through_a_node_and_a_missing_one_fails_alone(
        tmp_path, start_node):
    """`\\i FILE` as psql's: the statements of FILE run where the command stands (in
    order with the ones around it, though they are pipelined), in the same session; a
    failure in FILE names FILE's line; an included file may include another; a missing
    or unreadable file is one failure, and the rest still runs."""
    server = start_node("server", "m1", "--data", "data/m1")
    (tmp_path / "setup.tah").write_text(SETUP + "\\i more.tah\n")
    (tmp_path / "more.tah").write_text(
        "manampia ao@ naoty sanda ('E3', 'BD', 11);\n\n  alaivo x ao@ naoty;\n")
    (tmp_path / "loop.tah").write_text("alaivo 1;\n\\i loop.tah\n")
    (tmp_path / "locked.tah").write_text("alaivo 1;\n")
    (tmp_path / "locked.tah").chmod(0)
    script = tmp_path / "main.tah"
    script.write_text("\\i setup.tah\nalaivo count(*) ao@ naoty;\n\\i tsy_misy.tah\n"
                      "\\i loop.tah\n\\i locked.tah\n\\i\nalaivo sum(naoty) ao@ naoty;\n")
    done = client("--port", str(server.port), "--format", "json", "-f", str(script),
                  cwd=tmp_path)
    lines = json_lines(done.stdout)
    assert done.returncode == 1, done.stderr
    failures = [line for line in lines if not line["ok"]]
    assert failures[0]["file"] == "more.tah" and (failures[0]["line"], failures[0]["column"]) \
        == (3, 3), failures   # the file as named in the \\i command
    root = os.geteuid() == 0   # root reads any file: locked.tah runs
    assert [line["rows"] for line in lines if "rows" in line] \
        == [[[4]], [[1]], *([[[1]]] if root else []), [[50]]]
    errors = [line["error"] for line in failures[1:]]
    assert errors[0].endswith("\\i tsy_misy.tah: no such file"), errors
    assert "\\i loop.tah: " in errors[1] and "already" in errors[1], errors
    if not root:
        assert errors[2].endswith("\\i locked.tah: permission denied"), errors
    assert errors[-1].endswith("\\i FILE"), errors   # how to use it


@pytest.mark.parametrize("script", ["alaivo 1 -- farany;", "alaivo 5--3;", "alaivo 2 // x;"])
def test_a_last_statement_whose_semicolon_is_in_a_comment_runs_as_embedded(tmp_path, start_node,
                                                                           script):
    """LANGUAGE.md 4b: text after the last `;` at the end of the input is run as a
    statement; here that `;` is inside a trailing comment, so it is no end. The
    client sent the text as it was, and the server waited for the rest of it."""
    server = start_node("server", "m1", "--data", "data/m1")
    remote = client("--port", str(server.port), "--format", "json", "-e", script, cwd=tmp_path)
    embedded = client("--embedded", str(tmp_path / "e"), "--format", "json", "-e", script,
                      cwd=tmp_path)
    assert remote.returncode == embedded.returncode == 0, remote.stdout
    assert remote.stdout == embedded.stdout


def test_user_on_a_cluster_without_accounts_says_nobody_logged_in(tmp_path, start_node):
    """Any name and password "worked": a student believed they were logged in."""
    server = start_node("server", "m1", "--data", "data/m1")
    done = client("--port", str(server.port), "--user", "rabe", "-e", "alaivo 1;", cwd=tmp_path,
                  env={"TAHIRY_PASSWORD": "wrongwrong"})
    assert done.returncode == 0, done.stderr
    assert "accounts are off on this cluster: --user logged nobody in" in done.stderr
    plain = client("--port", str(server.port), "-e", "alaivo 1;", cwd=tmp_path)
    assert "accounts are off" not in plain.stderr


def test_a_missing_database_option_is_refused_in_the_language_asked_for(tmp_path, start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    done = client("--port", str(server.port), "--lang", "en", "-d", "nope", "-e", "alaivo 1;",
                  cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "tahiry: -d nope: Error: No such database: nope", done.stderr
    malagasy = client("--port", str(server.port), "-d", "nope", "-e", "alaivo 1;", cwd=tmp_path)
    assert malagasy.returncode == 2
    assert malagasy.stderr.strip() == "tahiry: -d nope: Hadisoana : Tsy misy ny tahiry : nope"


def test_remote_session_keeps_its_database_and_matches_embedded(tmp_path, start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    script = SETUP + "alaivo taranja, avg(naoty) ao@ naoty #vondrona (taranja) alaharo taranja; fafao ao@ x;"
    remote = client("--port", str(server.port), "--format", "json", "-e", script, cwd=tmp_path)
    embedded = client("--embedded", str(tmp_path / "e"), "--format", "json", "-e", script, cwd=tmp_path)
    assert remote.returncode == embedded.returncode == 1
    assert remote.stdout == embedded.stdout
    assert json_lines(remote.stdout)[4]["rows"] == [["Algo", 15], ["BD", 9]]


# --- DB-API ---------------------------------------------------------------------

def test_dbapi_module_interface():
    assert dbapi.apilevel == "2.0" and dbapi.paramstyle == "qmark"
    assert dbapi.threadsafety in (0, 1, 2, 3)
    assert issubclass(dbapi.ProgrammingError, dbapi.DatabaseError)
    assert issubclass(dbapi.OperationalError, dbapi.Error)
    assert dbapi.NUMBER == "NUMBER" and dbapi.STRING != "NUMBER"


def test_dbapi_against_a_server(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    with dbapi.connect("127.0.0.1", server.port, timeout=10) as connection:
        cursor = connection.cursor()
        for statement in SETUP.split(";")[:-1]:
            cursor.execute(statement)
        assert connection.database == "sekoly"
        cursor.execute("manampia ao@ naoty sanda (?, ?, ?)", ("E3", "it's; -- not a comment", 20))
        cursor.executemany("manampia ao@ naoty (id, taranja, naoty) sanda (?, ?, ?)",
                           [("E4", "A", 1), ("E5", "B", None)])
        cursor.execute("alaivo id, naoty ao@ naoty rehefa naoty >= ? alaharo naoty midina", (14,))
        assert [d[0] for d in cursor.description] == ["id", "naoty"]
        assert cursor.description[1][1] == dbapi.NUMBER and len(cursor.description[0]) == 7
        assert cursor.rowcount == 3
        assert cursor.fetchone() == ("E3", 20)
        assert cursor.fetchmany(1) == [("E2", 16)]
        assert list(cursor) == [("E1", 14)]
        assert cursor.fetchall() == []
        cursor.execute("alaivo taranja ao@ naoty rehefa id = ?", ["E3"])
        assert cursor.fetchall() == [("it's; -- not a comment",)]
        cursor.execute("alaivo naoty ao@ naoty rehefa naoty dia null")
        assert cursor.fetchall() == [(None,)]
        with pytest.raises(dbapi.ProgrammingError):
            cursor.execute("alaivo * ao@")
        with pytest.raises(dbapi.ProgrammingError):
            cursor.execute("alaivo * ao@ tsy_misy")
        with pytest.raises(dbapi.IntegrityError):
            cursor.execute("manampia ao@ naoty sanda ('E9', 'x', 99)")
        with pytest.raises(dbapi.DataError):
            cursor.execute("alaivo 1 / 0")
        with pytest.raises(dbapi.ProgrammingError):
            cursor.execute("alaivo ?", ())
        cursor.execute("manampia ao@ naoty sanda ('E6', 'C', 2)")
        with pytest.raises(dbapi.ProgrammingError):
            cursor.fetchall()         # an insert has no rows
        connection.commit()
        with pytest.raises(dbapi.NotSupportedError):
            connection.rollback()
    with pytest.raises(dbapi.InterfaceError):
        connection.cursor()


def test_dbapi_connection_problems_are_operational_errors(start_node):
    with pytest.raises(dbapi.OperationalError):
        dbapi.connect("127.0.0.1", free_port(), timeout=2)
    server = start_node("server", "m1", "--data", "data/m1")
    connection = dbapi.connect("127.0.0.1", server.port, timeout=10)
    server.stop()
    with pytest.raises(dbapi.OperationalError):
        connection.cursor().execute("alaivo 1")
    connection.close()


def test_dbapi_embedded_and_database_argument(tmp_path):
    first = dbapi.connect(embedded=str(tmp_path / "d"))
    first.cursor().execute(SETUP)
    first.close()
    second = dbapi.connect(embedded=str(tmp_path / "d"), database="sekoly")
    cursor = second.cursor().execute("alaivo count(*) antso isa ao@ naoty")
    assert cursor.fetchall() == [(3,)] and cursor.description[0][0] == "isa"



def test_embedded_refuses_a_directory_a_server_holds(tmp_path, start_node):
    server = start_node("server", "m1", "--data", str(tmp_path / "d"))
    done = client("--embedded", str(tmp_path / "d"), "-e", SETUP, cwd=tmp_path)
    assert done.returncode != 0 and f"node m1 (pid {server.popen.pid}" in done.stderr
    with pytest.raises(dbapi.OperationalError, match="in use by node m1"):
        dbapi.connect(embedded=str(tmp_path / "d"))
    assert not (tmp_path / "d" / "sekoly").exists()

# --- interactive, in a pseudo-terminal ------------------------------------------

_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

class Terminal:
    """A child process on a pseudo-terminal; read with a deadline, never blocking."""

    def __init__(self, args: list[str], cwd: Path):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child
            os.chdir(cwd)
            os.environ.update({"PYTHONPATH": str(REPO_ROOT), "HOME": str(cwd), "TERM": "xterm",
                               "PROMPT_TOOLKIT_NO_CPR": "1", "NO_COLOR": "1"})
            os.execv(sys.executable, [sys.executable, "-m", "nodes.client", *args])
        self.seen = ""

    def expect(self, text: str, deadline_s: float = 20.0) -> str:
        end = time.monotonic() + deadline_s
        while text not in self.seen:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{text!r} not seen; got:\n{self.seen[-2000:]}")
            ready, _, _ = select.select([self.fd], [], [], min(remaining, 0.5))
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{text!r} not seen before exit; got:\n{self.seen[-2000:]}")
                self.seen += chunk.decode("utf-8", "replace")
        return self.seen

    def expect_more(self, text: str, count: int) -> None:
        """Wait until `text` has been seen more than `count` times, terminal codes left out.

        (A busy machine draws a completion in two writes, `nao` then `ty`,
        with cursor codes between them.)
        """
        def seen_more() -> bool:
            self._read_some(0.2)
            return _TERMINAL_CODES.sub("", self.seen).count(text) > count
        try:
            wait_until(seen_more, 20.0, f"{text!r} seen more than {count} times", interval_s=0)
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; got:\n{self.seen[-2000:]}") from None

    def _read_some(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                self.seen += os.read(self.fd, 65536).decode("utf-8", "replace")
            except OSError:
                pass

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode("utf-8"))

    def wait(self, deadline_s: float = 20.0) -> int:
        def exited() -> tuple[int, int] | None:
            try:  # drain its output: a child blocked writing to the terminal never exits
                select.select([self.fd], [], [], 0.1)
                os.read(self.fd, 65536)
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            return (pid, status) if pid else None
        try:
            _, status = wait_until(exited, deadline_s, "the client to exit", interval_s=0)
        except AssertionError:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
            raise
        finally:
            os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def test_interactive_session_in_a_terminal(tmp_path):
    terminal = Terminal(["--embedded", str(tmp_path / "d")], tmp_path)
    terminal.expect("tahiry>")
    terminal.send("manamboara tahiry sekoly; ampiasao sekoly;\r")
    terminal.expect("tahiry(sekoly)>")
    terminal.send("alaivo 1 + 1\r")           # no ';' yet: the input goes on
    terminal.send("antso roa;\r")
    terminal.expect("(1 andalana)")
    assert "roa" in terminal.seen
    terminal.send("manamboara tabilao naoty (a ISA(0,20));\r")
    terminal.expect("Ny tabilao : naoty dia voaforona")
    before = _TERMINAL_CODES.sub("", terminal.seen).count("naoty")
    terminal.send("alaivo * ao@ nao\t")        # Tab completes the table just created
    terminal.expect_more("naoty", before)
    terminal.send(";\r")
    terminal.expect("(0 andalana)")
    terminal.send("?\r")
    terminal.expect("Ctrl-D")
    terminal.send("miala\r")
    assert terminal.wait() == 0
    assert "antso roa" in (tmp_path / ".tahiry_history").read_text()


def test_interactive_nothing_listening(tmp_path):
    terminal = Terminal(["--port", str(free_port())], tmp_path)
    terminal.expect("nothing is listening")
    assert terminal.wait() == 2
    assert "Traceback" not in terminal.seen


def test_file_failures_say_where_their_statement_starts_and_database_option(tmp_path):
    data = str(tmp_path / "d")
    assert client("--embedded", data, "-e", SETUP, cwd=tmp_path).returncode == 0
    script = tmp_path / "s.tah"
    script.write_text("alaivo count(*) ao@ naoty;\n\nalaivo *\n  ao@ tsy_misy;\n")
    done = client("--embedded", data, "--database", "sekoly", "-f", str(script), cwd=tmp_path)
    assert done.returncode == 1
    assert f"{script}:3: Hadisoana : La table sekoly.tsy_misy" in done.stdout
    missing = client("--embedded", data, "-d", "tsy_misy", "-e", "alaivo 1;", cwd=tmp_path)
    assert missing.returncode == 2 and "Tsy misy ny tahiry : tsy_misy" in missing.stderr


def test_dbapi_reconnects_after_a_lost_connection_in_the_same_database(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    connection = dbapi.connect("127.0.0.1", server.port, timeout=10)
    connection.cursor().execute(SETUP)
    server = start_node.restart(server)
    cursor = connection.cursor()
    try:
        cursor.execute("alaivo count(*) ao@ naoty")
    except dbapi.OperationalError:
        cursor.execute("alaivo count(*) ao@ naoty")   # a new connection, same database
    assert cursor.fetchall() == [(3,)]
    assert connection.database == "sekoly"
    connection.close()


def test_stdin_statements_run_as_they_arrive(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "nodes.client", "--embedded", str(tmp_path / "d"), "--format", "json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HOME": str(tmp_path)})
    try:
        process.stdin.write(b"alaivo 40 + 2;\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "the statement did not run before the input ended"
        assert json.loads(process.stdout.readline())["rows"] == [[42]]
        process.stdin.write(b"alaivo '\xff';\n")      # not UTF-8: replaced, no traceback
        process.stdin.close()
        assert process.wait(timeout=20) == 0
        assert json.loads(process.stdout.readline())["rows"] == [["\ufffd"]]
        assert b"Traceback" not in process.stderr.read()
    finally:
        process.kill()
        process.wait()


def test_the_tahiry_command_reads_the_users_paths_from_where_it_is_run(tmp_path):
    """`./tahiry` changes to the repository to set up its venv: `-f x.tah` from another
    folder said "cannot read x.tah", `--embedded DIR` made DIR in the repository, and a
    topology file given to `check` or `up` was refused."""
    (tmp_path / "x.tah").write_text("alaivo 6 * 7 antso valiny;\n")
    wrapper = str(REPO_ROOT / "tahiry")
    done = subprocess.run([wrapper, "client", "--embedded", "emb", "--format", "json",
                           "-f", "x.tah"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json_lines(done.stdout)[-1]["rows"] == [[42]]
    assert (tmp_path / "emb").is_dir() and not (REPO_ROOT / "emb").exists()
    (tmp_path / "mine.yaml").write_text((REPO_ROOT / "topology.yaml").read_text())
    checked = subprocess.run([wrapper, "check", "mine.yaml"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
    assert checked.returncode == 0 and "mine.yaml: valid" in checked.stdout, checked.stderr
    # Options after the node, as the help shows them (the topology went after them, and
    # argparse refused it).
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "m1.log").write_text("".join(f"2026-12-04 10:00:00.000 line {n}\n"
                                                      for n in range(5)))
    logs = subprocess.run([wrapper, "logs", "m1", "-n", "2", "mine.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert logs.returncode == 0 and logs.stdout.splitlines()[-1].endswith("line 4"), logs.stderr
    assert len(logs.stdout.splitlines()) == 2
    unknown = subprocess.run([wrapper, "frobnicate"], cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
    assert unknown.returncode == 2 and "unknown command 'frobnicate'" in unknown.stderr


def test_no_terminal_to_ask_a_password_on_is_said_not_read_from_the_statements(tmp_path):
    """Without a terminal getpass read the password from standard input: the first line
    of the statements piped in (after a GetPassWarning)."""
    done = subprocess.run(
        [sys.executable, "-m", "nodes.client", "--port", str(free_port()), "--user", "rabe"],
        input="alaivo 1;\n", capture_output=True, text=True, timeout=60, cwd=tmp_path,
        start_new_session=True,   # no controlling terminal, as under cron or CI
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "TAHIRY_PASSWORD": ""})
    assert done.returncode == 2
    assert done.stderr.strip() == \
        "tahiry: no terminal to ask the password of rabe on: set TAHIRY_PASSWORD"
