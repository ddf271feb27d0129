"""The supervisor's command line without a cluster: pipes closed early, `status --watch`,
the table's columns, where `up` says to connect, `./tahiry`'s list of commands, and the
control port answered by another topology's supervisor."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading

import pexpect
import pytest

from nodes.client import cli as client_cli
from supervisor import cli, status_table
from supervisor.machine import machine_addresses
from supervisor.topology import load_topology, parse_topology
from tests.conftest import REPO_ROOT, free_port
from tests.integration.supervisorkit import cluster_yaml
from tests.supervisor.test_topology import SHIPPED
from tests.tlskit import Certificates

ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


@pytest.fixture
def topology_file(tmp_path):
    """A topology on free ports with no cluster running: `status` prints STOPPED rows."""
    path = tmp_path / "topology.yaml"
    path.write_text(cluster_yaml({name: free_port() for name in
                                  ("control", "m1", "m2", "m3", "lb", "proxy")}))
    return path


def run_into_closed_pipe(tmp_path, *args: str) -> subprocess.CompletedProcess:
    """`python -m supervisor ARGS` writing to a pipe whose reader is already gone
    (`| head -1` once head has exited): every write fails, on every run."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "supervisor", *args], cwd=tmp_path,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, env=ENV,
                              timeout=30)
    finally:
        os.close(write_end)


def test_status_into_a_closed_pipe_ends_quietly(tmp_path, topology_file):
    """Bug: `./tahiry status | head -1` printed a BrokenPipeError traceback."""
    result = run_into_closed_pipe(tmp_path, "status", str(topology_file))
    assert result.stderr == ""
    assert result.returncode == cli.EXIT_BROKEN_PIPE


def test_logs_into_a_closed_pipe_ends_quietly(tmp_path, topology_file):
    """Bug: `./tahiry logs m1 -n 200 | head -1` printed a BrokenPipeError traceback."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "m1.log").write_text("".join(f"2026-12-02 10:00:00.000 line {n}\n" for n in range(300)))
    result = run_into_closed_pipe(tmp_path, "logs", "m1", str(topology_file), "-n", "200")
    assert result.stderr == ""
    assert result.returncode == cli.EXIT_BROKEN_PIPE


@pytest.mark.parametrize("arguments, complaint", [
    (["logs", "m1", "-n", "0"], "must be at least 1: 0"),     # printed the whole log
    (["logs", "m1", "-n", "-5"], "must be at least 1: -5"),   # printed nothing, exit 0
    (["status", "--watch", "-n", "0"], "must be at least 0.1: 0"),   # redrew without pause
    (["logs", "m1", "-n", "many"], "not a number: 'many'"),
])
def test_counts_and_intervals_below_their_least_are_refused(topology_file, arguments, complaint):
    result = subprocess.run([sys.executable, "-m", "supervisor", *arguments, str(topology_file)],
                            capture_output=True, text=True, env=ENV, timeout=30)
    assert result.returncode == 2 and complaint in result.stderr, result.stderr


def test_status_watch_redraws_until_ctrl_c(topology_file):
    child = pexpect.spawn(sys.executable, ["-m", "supervisor", "status", "--watch", "-n", "0.2",
                                           str(topology_file)],
                          cwd=str(topology_file.parent), env=ENV, encoding="utf-8", timeout=20)
    try:
        for _ in range(2):  # drawn, then drawn again
            child.expect_exact("\x1b[H\x1b[2J")
            child.expect_exact("(Ctrl-C ends)")
            child.expect(r"NODE +KIND +ADDRESS +PID +STATE +UPTIME +RESTARTS +MANUAL")
            child.expect_exact("proxy")
        child.sendintr()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, child.before
    assert "Traceback" not in child.before


def row(**values) -> dict:
    base = {"node": "m3", "kind": "server", "address": "127.0.0.1:3952", "pid": None,
            "state": "RUNNING", "uptime_s": 5.0, "restarts": 2, "manual_restarts": 1,
            "probe_ms": 0.4, "last_exit": None}
    return {**base, **values}


def test_the_table_counts_manual_restarts_apart_and_shows_alerts():
    table = status_table.render_table([row(alerts=["disk 93% full", "slow fsync"])])
    header, line = table.splitlines()
    assert header.split() == list(status_table.COLUMNS)
    cells = line.split()
    assert cells[6:8] == ["2", "1"]  # RESTARTS (by the supervisor), MANUAL
    assert line.endswith("alert: disk 93% full, alert: slow fsync")


def test_the_table_shows_a_running_node_whose_probes_fail():
    """Bug: a frozen node's row kept its last good probe and said nothing of the failing ones."""
    table = status_table.render_table([row(probe_ms=None, probe_failures=2, probe_fall=3,
                                           probe_error="no answer within 1000 ms")])
    line = table.splitlines()[1]
    assert line.split()[8] == "-"   # PROBE: no answered probe to show
    assert line.endswith("probe failed 2/3: no answer within 1000 ms")
    assert "probe failed" not in status_table.render_table([row(probe_failures=0)])


def test_the_table_says_in_one_line_why_a_node_is_fatal():
    why = ("exited with code 1 before answering its probe: cannot listen on 127.0.0.1:3952: "
           "address already in use, held by pid 7 (python3 -m http.server 3952)")
    table = status_table.render_table([row(state="FATAL", uptime_s=None, last_exit=why)])
    assert table.splitlines()[1].endswith(why)
    assert len(table.splitlines()) == 2


def test_up_says_where_to_connect(tmp_path):
    shipped = parse_topology(SHIPPED.read_text(), tmp_path / "topology.yaml", {})
    assert cli.connect_line(shipped) == ("connect with: ./tahiry client   (proxy cache proxy at "
                                         "127.0.0.1:3951; python -m nodes.client)")
    assert (cli.CLIENT_DEFAULT_HOST, cli.CLIENT_DEFAULT_PORT) == (client_cli.DEFAULT_HOST,
                                                                  client_cli.DEFAULT_PORT)
    moved = parse_topology(SHIPPED.read_text().replace("port: 3951", "port: 4951"),
                           tmp_path / "topology.yaml", {})
    assert cli.connect_line(moved).startswith("connect with: ./tahiry client --port 4951   (")


def test_tahiry_without_arguments_lists_every_command():
    result = subprocess.run(["bash", str(REPO_ROOT / "tahiry")], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0
    listed = set(re.findall(r"^\s*\./tahiry ([a-z|]+)", result.stdout, re.MULTILINE))
    named = {name for entry in listed for name in entry.split("|")}
    for command in ("up", "status", "down", "restart", "logs", "reload", "check", "test",
                    "lint", "client", "bench", "py"):
        assert command in named, f"{command} missing from:\n{result.stdout}"
    parser_commands = set(cli.build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert parser_commands <= named


def test_a_node_starting_again_says_how_its_last_run_ended():
    table = status_table.render_table([row(state="STARTING", uptime_s=None, last_exit="exited with code 3")])
    assert table.splitlines()[1].endswith("restarting; last run exited with code 3")


def test_the_table_shows_a_servers_epoch_machine_state_and_lease():
    held = status_table.render_table([row(write_lease={"epoch": 3, "machine": "member",
                                                       "left_s": 1.8})])
    assert held.splitlines()[1].endswith("epoch 3: member, lease 1.8 s left")
    none = status_table.render_table([row(write_lease={"epoch": 1, "machine": "excluded",
                                                       "left_s": None})])
    assert none.splitlines()[1].endswith("epoch 1: excluded, no write lease")
    theirs = status_table.render_table([row(write_lease={"epoch": 2, "machine": "joining"})])
    assert theirs.splitlines()[1].endswith("epoch 2: joining")   # another machine's server


def test_logs_of_a_node_of_another_machine_say_where_it_is(tmp_path):
    """It said "no log yet: logs/m2.log", as if the node had not started."""
    mine = machine_addresses()
    one, two = [address for address in (f"203.0.113.{n}" for n in range(1, 255))
                if address not in mine][:2]   # (documentation addresses: none of this machine's)
    path = tmp_path / "topology.yaml"
    path.write_text(f"supervisor: {{control_port: {free_port()}}}\n"
                    "secret: a-class-secret-of-some-length\nnodes:\n"
                    f"  m1: {{kind: server, host: {one}, port: 4101, data: data/m1}}\n"
                    f"  m2: {{kind: server, host: {two}, port: 4102, data: data/m2}}\n")
    result = subprocess.run([sys.executable, "-m", "supervisor", "logs", "m2", str(path)],
                            cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=30)
    assert result.returncode == cli.EXIT_FAILED
    assert result.stderr.strip() == \
        f"m2 runs on another machine ({two}): its log is there, in logs/m2.log"


def test_a_detached_up_whose_supervisor_exits_says_why(topology_file, capsys):
    """Bug: `up -d` said `(see logs/supervisor.log)` when the supervisor exited before it
    logged anything there (a traceback, a refusal): the cause was only in
    logs/supervisor.console.log."""
    topology = load_topology(topology_file)
    topology_file.write_text("nodes: [\n")   # edited while `up` starts: the supervisor refuses it
    assert cli._up_detached(topology) == cli.EXIT_FAILED
    said = capsys.readouterr().err
    assert "the supervisor exited with code 2" in said, said
    assert "topology.yaml line 2: invalid YAML" in said, said
    assert "supervisor.console.log" in said, said


@pytest.mark.parametrize("state", ["FATAL", "BACKOFF"])
def test_a_server_that_does_not_run_is_not_said_to_be_catching_up(state):
    """Bug: a FATAL server (its port held by another program) read `catching up (read-only)`
    in INFO: the last `writable` seen, kept while no process ran."""
    why = "exited with code 1 before answering its probe: cannot listen on 127.0.0.1:3952"
    table = status_table.render_table([row(state=state, uptime_s=None, last_exit=why,
                                           writable=False)])
    line = table.splitlines()[1]
    assert "catching up" not in line and line.endswith(why)
    starting = status_table.render_table([row(state="STARTING", writable=False)])
    assert "catching up (read-only)" in starting


def test_up_says_how_to_stop_the_cluster_of_another_topology_file(tmp_path):
    """Bug: `./tahiry up -d other.yaml` ended with "`./tahiry down` stops it": that stops
    topology.yaml's cluster (another one), not this."""
    other = parse_topology(SHIPPED.read_text(), tmp_path / "other.yaml", {})
    hint = cli.stop_hint(other)
    assert f"`./tahiry down {tmp_path / 'other.yaml'}`" in hint, hint
    assert f"`python -m supervisor down {tmp_path / 'other.yaml'}`" in hint, hint
    default = parse_topology(SHIPPED.read_text(), REPO_ROOT / "topology.yaml", {})
    assert cli.stop_hint(default) == "`python -m supervisor down` (`./tahiry down`)"
    spaced = parse_topology(SHIPPED.read_text(), tmp_path / "my class.yaml", {})
    assert f"`./tahiry down '{tmp_path / 'my class.yaml'}'`" in cli.stop_hint(spaced)


def test_a_bad_topology_file_falls_back_only_on_its_own_running_copy(tmp_path, capsys):
    """Bug: `status typo.yaml` (no such file) printed "(using the topology the running
    supervisor loaded: .../typo.yaml)": the folder's run/loaded-topology.yaml, which is
    topology.yaml's, relabelled as typo.yaml's."""
    ports = {name: free_port() for name in ("control", "m1", "m2", "m3", "lb", "proxy")}
    run = tmp_path / "run"
    run.mkdir()
    (run / "loaded-topology.yaml").write_text(cluster_yaml(ports))
    (run / "state.json").write_text(json.dumps({"topology": str(tmp_path / "topology.yaml"),
                                                "supervisor_pid": None, "nodes": []}))
    assert cli.main(["status", str(tmp_path / "typo.yaml")]) == cli.EXIT_INVALID
    said = capsys.readouterr().err
    assert "typo.yaml: cannot read the file" in said and "using the topology" not in said, said
    (tmp_path / "topology.yaml").write_text("nodes: [\n")   # its own file, edited badly
    cli.main(["status", str(tmp_path / "topology.yaml")])
    said = capsys.readouterr().err
    assert f"(using the topology the running supervisor loaded: {tmp_path / 'topology.yaml'})" \
        in said, said


def test_up_says_how_to_connect_over_tls(tmp_path):
    """Bug: with a `tls:` section, `up` said `connect with: ./tahiry client --port P`, which
    fails (`connection lost ... outcome unknown`): the client needs the class's CA."""
    tls = tmp_path / "tls"
    Certificates(tls).machine("machine", ["127.0.0.1"])
    text = SHIPPED.read_text().replace(
        "nodes:\n", "tls: {cert: tls/machine.crt, key: tls/machine.key, ca: tls/ca.crt}\nnodes:\n", 1)
    topology = parse_topology(text, tmp_path / "topology.yaml", {})
    line = cli.connect_line(topology)
    assert line.startswith(f"connect with: ./tahiry client --tls-ca {tls / 'ca.crt'}   ("), line
    strict = parse_topology(text.replace("ca: tls/ca.crt}", "ca: tls/ca.crt, client_certs: true}"),
                            tmp_path / "topology.yaml", {})
    assert (f"--tls-ca {tls / 'ca.crt'} --tls-cert {tls / 'machine.crt'} "
            f"--tls-key {tls / 'machine.key'}") in cli.connect_line(strict)


def test_the_log_of_a_node_removed_from_the_topology_can_still_be_read(tmp_path, topology_file):
    """Bug: after a hot reload removed m3, `logs m3` said "unknown node 'm3'" though
    logs/m3.log holds its last run (why it was removed may be there)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "m3.log").write_text("2026-12-02 10:00:00.000 m3 INFO nodes.server: stopping\n")
    result = subprocess.run([sys.executable, "-m", "supervisor", "logs", "m3", str(topology_file)],
                            cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("m3 INFO nodes.server: stopping\n")
    assert "no longer lists m3" in result.stderr
    unknown = subprocess.run([sys.executable, "-m", "supervisor", "logs", "m9", str(topology_file)],
                             cwd=tmp_path, capture_output=True, text=True, env=ENV, timeout=30)
    assert unknown.returncode == cli.EXIT_FAILED and "unknown node 'm9'" in unknown.stderr


@pytest.mark.parametrize("command", ["check", "up"])
def test_a_host_that_is_not_an_address_is_refused_without_a_traceback(topology_file, command):
    """Bug: `check --host nonsense` (or `up --host h1`) ended in a ValueError traceback."""
    result = subprocess.run([sys.executable, "-m", "supervisor", command, "--host", "nonsense",
                             str(topology_file)], capture_output=True, text=True, env=ENV,
                            timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "argument --host: not an IP address: 'nonsense'" in result.stderr, result.stderr


@pytest.mark.parametrize("command", [["status"], ["down"], ["restart", "m1"], ["reload"],
                                     ["backup"]])
def test_a_command_refused_by_the_supervisor_of_another_topology_says_so(
        tmp_path, topology_file, command, capsys):
    """Every command that asks the supervisor acts on its topology's cluster or on none:
    when the control port is another topology's, it says whose and changes nothing."""
    port = load_topology(topology_file).supervisor.control_port
    asked: list[dict] = []
    with socket.create_server(("127.0.0.1", port)) as server:
        def answer_hello() -> None:   # a supervisor of another file, answering one question
            connection, _ = server.accept()
            with connection:
                asked.append(json.loads(connection.makefile("rb").readline()))
                connection.sendall(json.dumps({"ok": True, "topology": "/elsewhere/other.yaml",
                                               "pid": 4242}).encode() + b"\n")
        answering = threading.Thread(target=answer_hello, daemon=True)
        answering.start()
        code = cli.main([*command, str(topology_file)])
        answering.join(timeout=5)
    error = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert "is used by the supervisor of /elsewhere/other.yaml (pid 4242)" in error
    assert "nothing was done" in error
    assert [request["cmd"] for request in asked] == ["hello"]   # nothing else was asked
