"""Pipelined scripts and dumps of any size, through real node processes.

`python -m nodes.client -f` and the driver's `executemany` send statements
ahead; a server commits what one connection pipelined together (its
`.status;` counts fewer batches than statements); a failing statement keeps
its `file:line` and the later ones run; the proxy and the balancer keep the
order and let the statements flow ahead.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys

import nodes.client as dbapi
from tests.conftest import REPO_ROOT
from tests.integration.clientkit import client, json_lines
from tests.integration.wire import WireClient, start_balanced_pair

HEAD = ("manamboara tahiry sekoly;\nampiasao sekoly;\n"
        "manamboara tabilao t (id ISA(null,null), anarana LAHATSORATRA(null,null));\n")


def server_status(port: int) -> dict:
    with WireClient(port) as wire:
        return wire.status()


def test_a_dump_over_a_million_characters_runs_through_client_f(tmp_path, start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    value = "x" * 100_000
    script = tmp_path / "dump.tah"
    script.write_text(HEAD + "".join(f"manampia ao@ t sanda ({n}, '{value}');\n" for n in range(11))
                      + "".join(f"manampia ao@ t sanda ({n}, 'kely');\n" for n in range(11, 500))
                      + "alaivo count(*), sum(id) ao@ t;\n")
    assert script.stat().st_size > 1_000_000
    done = client("--port", str(server.port), "--format", "json", "-f", str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    lines = json_lines(done.stdout)
    assert len(lines) == 3 + 500 + 1 and all(line["ok"] for line in lines)
    assert lines[-1]["rows"] == [[500, sum(range(500))]]
    assert done.stderr == ""                       # no progress line: not a terminal
    counters = server_status(server.port)
    # Statements sent ahead reach the engine together: far fewer group commits.
    assert counters["batches"] < counters["statements"] / 4, counters
    embedded = client("--embedded", str(tmp_path / "e"), "--format", "json",
                      stdin=script.read_text(), cwd=tmp_path)
    assert embedded.returncode == 0 and json_lines(embedded.stdout)[-1] == lines[-1]


def test_a_failing_statement_keeps_its_place_and_the_later_ones_run(tmp_path, start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    rows = [f"manampia ao@ t sanda ({n}, 'a{n}');" for n in range(300)]
    rows[150] = "manampia ao@ tsy_misy sanda (1, 'x');"          # script line 154
    script = tmp_path / "load.tah"
    script.write_text(HEAD + "\n".join(rows) + "\nalaivo count(*) ao@ t;\n")
    done = client("--port", str(server.port), "-f", str(script), cwd=tmp_path)
    assert done.returncode == 1
    out = done.stdout.splitlines()
    # One answer per statement, in order: the failure is the 154th, with its place.
    assert out[153].startswith(f"{script}:154: Hadisoana : "), out[150:156]
    assert "tsy_misy" in out[153]
    assert sum(1 for line in out if "Hadisoana" in line) == 1
    assert "|      299 |" in done.stdout                        # every later insert ran
    counters = server_status(server.port)
    assert counters["batches"] < counters["statements"] / 4, counters


def test_executemany_is_pipelined(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    connection = dbapi.connect("127.0.0.1", server.port, timeout=10)
    cursor = connection.cursor()
    cursor.execute(HEAD)
    before = server_status(server.port)
    cursor.executemany("manampia ao@ t sanda (?, ?)", [(n, f"a{n}") for n in range(400)])
    after = server_status(server.port)
    assert cursor.rowcount == 400
    statements = after["statements"] - before["statements"]
    batches = after["batches"] - before["batches"]
    assert statements == 400 and batches < statements / 4, (statements, batches)
    cursor.execute("alaivo count(*) ao@ t")
    assert cursor.fetchall() == [(400,)]
    try:
        cursor.executemany("manampia ao@ t sanda (?, ?)",
                           [(n, "b") if n != 7 else ("tsy isa", "b") for n in range(20)])
    except dbapi.DatabaseError as error:
        assert "parameters #7" in str(error)
    else:
        raise AssertionError("the failing parameter set was not reported")
    connection.close()


def test_a_pipelined_script_through_proxy_balancer_and_servers_keeps_its_order(
        tmp_path, start_node):
    m1, m2, lb = start_balanced_pair(start_node)
    proxy = start_node("proxycache", "proxy", "--upstream", f"127.0.0.1:{lb.port}")
    script = tmp_path / "load.tah"
    # The update and the queries depend on every insert before them.
    script.write_text(HEAD + "".join(f"manampia ao@ t sanda ({n}, 'a');\n" for n in range(300))
                      + "havaozy t ova anarana = 'b' rehefa id >= 100;\n"
                      + "alaivo anarana, count(*) ao@ t #vondrona (anarana) alaharo anarana;\n"
                      + "".join(f"manampia ao@ t sanda ({n}, 'c');\n" for n in range(300, 400))
                      + "alaivo count(*), max(id) ao@ t;\n")
    done = client("--port", str(proxy.port), "--format", "json", "-f", str(script),
                  cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    lines = json_lines(done.stdout)
    assert len(lines) == 3 + 300 + 1 + 1 + 100 + 1
    assert lines[303]["ok"] and "200" in lines[303]["message"], lines[303]
    assert lines[304]["rows"] == [["a", 100], ["b", 200]]
    assert lines[-1]["rows"] == [[400, 399]]
    balancer = server_status(lb.port)
    assert balancer["counters"]["pipelined_writes"] > 300, balancer["counters"]
    owners = [server_status(port) for port in (m1.port, m2.port)]
    busiest = max(owners, key=lambda counters: counters["statements"])
    assert busiest["batches"] < busiest["statements"] / 4, busiest


def test_statements_from_a_pipe_are_answered_as_they_arrive(tmp_path, start_node):
    # Pipelining must not hold an answer back while the pipe has nothing more yet.
    server = start_node("server", "m1", "--data", "data/m1")
    process = subprocess.Popen(
        [sys.executable, "-m", "nodes.client", "--port", str(server.port), "--format", "json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HOME": str(tmp_path)})
    try:
        process.stdin.write(b"alaivo 40 + 2; alaivo 'a")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], 20)
        assert ready, "the statement was not answered before more input came"
        assert json.loads(process.stdout.readline())["rows"] == [[42]]
        process.stdin.write(b"b';\n")
        process.stdin.close()
        assert process.wait(timeout=20) == 0
        assert json.loads(process.stdout.readline())["rows"] == [["ab"]]
        assert process.stderr.read() == b""
    finally:
        process.kill()
        process.wait()
