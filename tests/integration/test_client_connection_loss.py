"""The client when its connection goes away (issue 15, bugs 3, 5 and 6).

An idle connection the node closed is noticed before the next statement
and reopened quietly, database replayed; a node being restarted is waited
for a few seconds, saying so, instead of the advice to start the cluster;
a read cut off by a node that went away is sent again, a write stays
"outcome unknown"; `tahiry-client ... | head -1` ends without a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pexpect
import pytest

import nodes.client as dbapi
from tests.conftest import REPO_ROOT, wait_until
from tests.integration.clientkit import CuttingRelay, client, json_lines, terminal

SETUP = ("manamboara tahiry sekoly; ampiasao sekoly; "
         "manamboara tabilao naoty ( id LAHATSORATRA(2,5), naoty ISA(0,20) ); "
         "manampia ao@ naoty sanda ('E1', 14), ('E2', 9), ('E3', 16);")


def test_an_idle_connection_the_node_closed_is_reopened_quietly(tmp_path, start_node):
    server = start_node("server", "m1", "--data", "data/m1", "--idle-timeout", "0.5")
    assert client("--port", str(server.port), "-e", SETUP, cwd=tmp_path).returncode == 0
    before = server.log_text().count("closing idle connection")
    session = terminal("--port", str(server.port), "-d", "sekoly", cwd=tmp_path)
    session.expect_exact("tahiry(sekoly)>")
    wait_until(lambda: server.log_text().count("closing idle connection") > before, 10,
               "the node to close the idle connection")
    session.sendline("alaivo count(*) antso isa ao@ naoty;")
    index = session.expect_exact(["(1 andalana)", "lost", "Hadisoana"])
    assert index == 0, session.before
    assert "unknown" not in session.before and "|   3 |" in session.before
    session.sendline("miala")
    session.expect(pexpect.EOF)


def test_a_restarting_node_is_waited_for_not_sent_to_tahiry_up(tmp_path, start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    port = server.port
    assert client("--port", str(port), "-e", SETUP, cwd=tmp_path).returncode == 0
    session = terminal("--port", str(port), "-d", "sekoly", cwd=tmp_path)
    session.expect_exact("tahiry(sekoly)>")
    server.kill9()
    session.sendline("alaivo count(*) antso isa ao@ naoty;")
    session.expect("restarting")
    assert "./tahiry up" not in session.before
    start_node("server", "m1", "--data", "data/m1", port=port)
    session.expect_exact("(1 andalana)")
    assert "|   3 |" in session.before and "unknown" not in session.before
    session.sendline("miala")
    session.expect(pexpect.EOF)


def test_a_node_that_stays_away_is_reported_after_the_wait(tmp_path, start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    connection = dbapi.connect("127.0.0.1", server.port, timeout=10, restart_wait=0.5)
    server.kill9()
    with pytest.raises(dbapi.OperationalError, match="nothing is listening .*tried for 0.5s"):
        connection.cursor().execute("alaivo 1")
    connection.close()


def test_a_read_cut_off_is_sent_again_a_write_is_outcome_unknown(tmp_path, start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    relay = CuttingRelay(server.port)
    try:
        connection = dbapi.connect("127.0.0.1", relay.port, timeout=10)
        cursor = connection.cursor()
        cursor.execute(SETUP)
        relay.cut("'cut read'")
        cursor.execute("alaivo count(*), 'cut read' ao@ naoty")
        assert cursor.fetchall() == [(3, "cut read")] and relay.cuts == 1
        assert connection.database == "sekoly"
        relay.cut("cut write")
        with pytest.raises(dbapi.OperationalError, match="outcome is unknown"):
            cursor.execute("manampia ao@ naoty sanda ('E4', 1) -- cut write\n")
        assert relay.cuts == 2
        connection.close()
        # The same in a pipelined script.
        relay.cut("'script read'")
        done = client("--port", str(relay.port), "--format", "json", "-e",
                      "ampiasao sekoly; alaivo 'script read';", cwd=tmp_path)
        assert [line["ok"] for line in json_lines(done.stdout)] == [True, True], done.stdout
        assert json_lines(done.stdout)[1]["rows"] == [["script read"]] and relay.cuts == 3
    finally:
        relay.close()


def test_the_console_command_ends_quietly_when_its_reader_goes_away(tmp_path):
    command = os.path.join(os.path.dirname(sys.executable), "tahiry-client")
    if not os.path.exists(command):
        pytest.skip("no tahiry-client console command in this environment (pip install .)")
    statements = "".join(f"alaivo {n}; " for n in range(3000))
    for _ in range(3):
        process = subprocess.Popen(
            [command, "--embedded", str(tmp_path / "d"), "-e", statements],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HOME": str(tmp_path)})
        assert process.stdout.readline()
        process.stdout.close()      # as `| head -1` does
        stderr = process.stderr.read().decode()
        process.wait(timeout=30)
        assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


@pytest.mark.slow
def test_a_proxy_the_supervisor_restarts_is_waited_for(cluster, tmp_path):
    """The issue's case: a student's session while the supervisor restarts a killed proxy."""
    assert cluster.up().returncode == 0
    port = cluster.ports["proxy"]
    setup = client("--port", str(port), "-e", SETUP, cwd=tmp_path)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    session = terminal("--port", str(port), "-d", "sekoly", cwd=tmp_path)
    session.expect_exact("tahiry(sekoly)>")
    before = cluster.nodes()["proxy"]
    os.kill(before["pid"], signal.SIGKILL)
    session.sendline("alaivo count(*) antso isa ao@ naoty;")
    session.expect_exact("(1 andalana)", timeout=30)
    assert "|   3 |" in session.before
    assert "unknown" not in session.before and "./tahiry up" not in session.before
    session.sendline("miala")
    session.expect(pexpect.EOF)
    assert cluster.nodes()["proxy"]["pid"] != before["pid"]


def test_a_script_fed_slowly_survives_the_idle_timeout(tmp_path, start_node):
    """`tail -f statements | tahiry-client`: the write after a long pause is not lost."""
    server = start_node("server", "m1", "--data", "data/m1", "--idle-timeout", "0.5")
    assert client("--port", str(server.port), "-e", SETUP, cwd=tmp_path).returncode == 0
    before = server.log_text().count("closing idle connection")
    process = subprocess.Popen(
        [sys.executable, "-m", "nodes.client", "--port", str(server.port), "--format", "json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HOME": str(tmp_path)})
    try:
        process.stdin.write(b"ampiasao sekoly;\n")
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["ok"]
        wait_until(lambda: server.log_text().count("closing idle connection") > before, 10,
                   "the node to close the idle connection")
        process.stdin.write(b"manampia ao@ naoty sanda ('E4', 11);\n")
        process.stdin.close()
        assert json.loads(process.stdout.readline())["ok"], process.stderr.read()
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        process.wait()
    done = client("--port", str(server.port), "-d", "sekoly", "--format", "json",
                  "-e", "alaivo count(*) ao@ naoty;", cwd=tmp_path)
    assert json_lines(done.stdout)[-1]["rows"] == [[4]]


def test_a_login_typed_in_the_terminal_is_made_again_on_a_reopened_connection(tmp_path,
                                                                               start_node):
    from tests.integration.test_accounts_wire import TEACHER, TEACHER_PW, start_server

    server = start_server(start_node, "m1", "--idle-timeout", "0.5")
    before = server.log_text().count("closing idle connection")
    session = terminal("--port", str(server.port), cwd=tmp_path)
    session.expect_exact("tahiry>")
    session.sendline(f'.login {TEACHER} "{TEACHER_PW}";')
    session.expect_exact("Tonga soa")
    session.sendline("manamboara tahiry kilasy;")
    session.expect_exact("kilasy")   # its answer names it
    wait_until(lambda: server.log_text().count("closing idle connection") > before, 10,
               "the node to close the idle connection")
    session.sendline("asehoy ny tahiry;")
    index = session.expect([r"\| kilasy", "login", "Hadisoana"])
    assert index == 0, f"{session.before}{session.after}{session.buffer}"
    session.sendline("miala")
    session.expect(pexpect.EOF)
