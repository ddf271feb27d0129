"""Nodes on different (simulated) machines: the request path over a real network.

Machines are Linux network namespaces (tests/integration/netkit.py): a
server on h1, the balancer on h2, the proxy cache and the client on the
student's machine, each reaching the next by its address on the test
network, with the shared secret (required off loopback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import wait_until
from tests.integration.machinekit import ROOT, SECRET, TOPOLOGY_HEAD, Supervisors
from tests.integration.netkit import machines_or_skip

PORT = 4100   # every machine has its own ports: the same number is fine everywhere

pytestmark = pytest.mark.slow


def _reachable(machines, name: str, address: str, port: int) -> bool:
    probe = ("import socket,sys\n"
             "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()\n"
             "except OSError:\n sys.exit(1)\n")
    return machines.run(name, [sys.executable, "-c", probe, address, str(port)]).returncode == 0


@pytest.fixture
def machines():
    made = machines_or_skip(["h1", "h2", "student"])
    try:
        yield made
    finally:
        made.__exit__(None, None, None)


def test_a_machine_reaches_another_by_its_address_and_a_cut_link_reaches_nobody(machines):
    listener = machines.popen("h1", [sys.executable, "-c",
                                     "import socket,time\n"
                                     f"s=socket.create_server(('0.0.0.0', {PORT}))\n"
                                     "while True: s.accept()[0].close()"])
    try:
        address = machines.address("h1")
        wait_until(lambda: _reachable(machines, "h2", address, PORT), 10, "h1 reachable from h2")
        machines.cut("h1")
        assert not _reachable(machines, "h2", address, PORT)
        machines.heal("h1")
        wait_until(lambda: _reachable(machines, "h2", address, PORT), 10, "h1 reachable again")
    finally:
        listener.kill()
        listener.wait()


ECHO = ("import socket\ns=socket.create_server(('0.0.0.0', 4300))\nwhile True:\n"
        " c=s.accept()[0]\n while d:=c.recv(100): c.sendall(d)\n")
ROUND_TRIPS = """import socket,sys,time
c=socket.create_connection((sys.argv[1], 4300), 5)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
times=[]
for _ in range(20):
    started=time.perf_counter(); c.sendall(b'x'); c.recv(10)
    times.append((time.perf_counter()-started)*1000)
print(sorted(times)[10])
"""


def test_a_delayed_machine_waits_and_a_lost_machine_has_no_process_left(machines):
    echo = machines.popen("h1", [sys.executable, "-c", ECHO])
    try:
        address = machines.address("h1")
        wait_until(lambda: _reachable(machines, "h2", address, 4300), 10, "the echo on h1")

        def round_trip_ms() -> float:
            done = machines.run("h2", [sys.executable, "-c", ROUND_TRIPS, address])
            assert done.returncode == 0, done.stderr
            return float(done.stdout)

        assert round_trip_ms() < 4
        machines.delay("h1", 5)
        machines.delay("h2", 5)
        delayed = round_trip_ms()
        assert 10 <= delayed < 40, delayed
        machines.undelay("h2")
        assert 5 <= round_trip_ms() < 10 + 20
        assert echo.pid in machines.pids("h1")
        killed = machines.kill_all("h1")
        assert killed and machines.pids("h1") == []
        assert echo.wait(timeout=10) != 0
        assert not _reachable(machines, "h2", address, 4300)
    finally:
        echo.kill()
        echo.wait()


def test_the_chain_answers_across_machines_with_the_secret(machines, tmp_path):
    environment = {**os.environ, "TAHIRY_SECRET": SECRET, "PYTHONPATH": str(ROOT)}
    h1, h2 = machines.address("h1"), machines.address("h2")
    nodes = [
        ("h1", ["nodes.server", "--id", "m1", "--host", h1, "--data", str(tmp_path / "m1")]),
        ("h2", ["nodes.balancer", "--id", "lb", "--host", h2, "--backend", f"m1={h1}:{PORT}"]),
        ("student", ["nodes.proxycache", "--id", "proxy", "--host", "127.0.0.1",
                     "--upstream", f"{h2}:{PORT}"]),
    ]
    started: list[subprocess.Popen] = []
    try:
        for machine, argv in nodes:
            log = open(tmp_path / f"{argv[2]}.log", "ab")  # noqa: SIM115 - closed with the process
            started.append(machines.popen(machine, [sys.executable, "-m", *argv, "--port", str(PORT)],
                                          env=environment, cwd=tmp_path, stdout=log,
                                          stderr=subprocess.STDOUT))
        wait_until(lambda: _reachable(machines, "student", h1, PORT), 15, "m1 listening on h1")
        wait_until(lambda: _reachable(machines, "student", "127.0.0.1", PORT), 15,
                   "the proxy listening on the student's machine")

        def client(statements: str) -> subprocess.CompletedProcess:
            return machines.run("student", [sys.executable, "-m", "nodes.client", "--host", "127.0.0.1",
                                            "--port", str(PORT), "-e", statements],
                                env=environment, cwd=tmp_path)

        deadline = time.monotonic() + 15   # the balancer needs a good probe of m1 first
        while True:
            created = client("manamboara tahiry sekoly;")
            if created.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert created.returncode == 0, created.stdout + created.stderr
        done = client("ampiasao sekoly; manamboara tabilao t (id ISA(0,null));"
                      "manampia ao@ t sanda (41), (42); alaivo * ao@ t rehefa id > 41;")
        assert done.returncode == 0, done.stdout + done.stderr
        cells = {word for line in done.stdout.splitlines() for word in line.replace("|", " ").split()}
        assert "42" in cells and "41" not in cells, done.stdout
        # Without the secret, the server on h1 refuses a client from the student's machine.
        bare = {key: value for key, value in environment.items() if key != "TAHIRY_SECRET"}
        refused = machines.run("student", [sys.executable, "-m", "nodes.client", "--host", h1,
                                           "--port", str(PORT), "-e", "asehoy ny tahiry;"],
                               env=bare, cwd=tmp_path)
        assert refused.returncode != 0
        assert "sekoly" not in refused.stdout
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if any(process.returncode not in (0, -15) for process in started):
            for log in tmp_path.glob("*.log"):
                print(log.name, log.read_text()[-2000:])


def _topology(machines) -> str:
    h1, student = machines.address("h1"), machines.address("student")
    return TOPOLOGY_HEAD + f"""\
  m1: {{kind: server, host: "{h1}", port: 4101, data: data/m1}}
  m2: {{kind: server, host: "{h1}", port: 4102, data: data/m2}}
  lb: {{kind: balancer, host: "{h1}", port: 4103, backends: [m1, m2]}}
  proxy: {{kind: proxycache, host: "{student}", port: 4104, upstream: lb, ttl_ms: 3000,
          max_entries: 200}}
"""




def test_one_topology_two_machines_each_supervisor_runs_its_own_nodes(machines, tmp_path):
    """The same topology.yaml on h1 (servers, balancer) and on the student's machine
    (its proxy cache): each supervisor starts its machine's nodes and probes the others."""
    supervisors = Supervisors(machines, tmp_path, _topology(machines))
    rows, folders, environment = supervisors.rows, supervisors.folders, supervisors.environment
    try:
        supervisors.up()
        on_h1 = wait_until(lambda: (lambda r: r if r["proxy"]["state"] == "REMOTE" else None)(
            rows("h1")), 15, "h1's supervisor seeing the student's proxy answer")
        assert {node: on_h1[node]["state"] for node in ("m1", "m2", "lb")} == dict.fromkeys(
            ("m1", "m2", "lb"), "RUNNING")
        assert on_h1["proxy"]["pid"] is None and on_h1["proxy"]["remote"]
        on_student = wait_until(lambda: (lambda r: r if r["lb"]["state"] == "REMOTE" else None)(
            rows("student")), 15, "the student's supervisor seeing h1's nodes answer")
        assert on_student["proxy"]["state"] == "RUNNING"
        assert {on_student[node]["state"] for node in ("m1", "m2", "lb")} == {"REMOTE"}
        # What h1's own supervisor says about its nodes (asked over the control channel).
        for node in ("m1", "m2", "lb"):
            reported = on_student[node].get("reported")
            assert reported is not None, on_student[node]
            assert reported["state"] == "RUNNING" and reported["pid"] == on_h1[node]["pid"]
        assert "its supervisor: RUNNING, pid" in supervisors.run("student", "status").stdout
        assert not (folders["student"] / "data").exists()   # no server runs there

        client = machines.run("student", [
            sys.executable, "-m", "nodes.client", "--host", machines.address("student"),
            "--port", "4104", "-e", "manamboara tahiry sekoly; ampiasao sekoly;"
            "manamboara tabilao t (id ISA(0,null)); manampia ao@ t sanda (7); alaivo * ao@ t;"],
            env=environment, cwd=tmp_path)
        assert client.returncode == 0 and "|  7 |" in client.stdout, client.stdout + client.stderr
        assert wait_until(lambda: any((folders["h1"] / "data" / server / "sekoly").exists()
                                      for server in ("m1", "m2")), 10, "the data on h1")

        table = supervisors.run("student", "status")
        assert "on another machine" in table.stdout, table.stdout
        machines.cut("student")
        gone = wait_until(lambda: (lambda r: r if r["proxy"]["state"] == "UNREACHABLE" else None)(
            rows("h1")), 15, "h1's supervisor seeing the student's machine gone")
        assert "reported" not in gone["proxy"] and gone["proxy"]["report_error"]
        machines.heal("student")
    finally:
        supervisors.down()


RELAY = """\
import socket, sys, threading
listen, target, record = int(sys.argv[1]), (sys.argv[2], int(sys.argv[3])), sys.argv[4]
server = socket.create_server(("0.0.0.0", listen))
def pump(source, sink, log):
    while data := source.recv(65536):
        log.write(data); log.flush(); sink.sendall(data)
    sink.close()
while True:
    client, _ = server.accept()
    upstream = socket.create_connection(target)
    log = open(record, "ab")
    threading.Thread(target=pump, args=(client, upstream, log), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client, log), daemon=True).start()
"""


# A TLS client reaching h1's balancer through the relay: the certificate it checks names h1.
TLS_THROUGH_RELAY = """\
import socket, sys
from pathlib import Path
from nodes.protocol.tls import TlsSettings, client_context
ca, relay_host, node_host, secret = sys.argv[1:]
context = client_context(TlsSettings(ca=Path(ca)))
with context.wrap_socket(socket.create_connection((relay_host, 4200)), server_hostname=node_host) as s:
    s.sendall(f".auth {secret};ampiasao sekoly;alaivo * ao@ t;".encode())
    answers = b""
    while answers.count(b"END") < 3:
        answers += s.recv(65536)
print(answers.decode())
"""


def test_the_whole_chain_over_tls_across_machines(machines, tmp_path):
    """Client and proxy on the student's machine, balancer and servers on h1, every link
    over TLS: the bytes on the wire are not the statements; a client without the CA, or a
    node with a certificate from another CA, is refused."""
    from tests.tlskit import Certificates

    h1, student = machines.address("h1"), machines.address("student")
    certificates = Certificates(tmp_path / "tls")
    for machine, address in (("h1", h1), ("student", student)):
        certificates.machine(machine, [address])
    # m2 on the student's machine: replication between m1 and m2 crosses machines, over TLS.
    text = _topology(machines).replace("http: {enabled: false}\n", "http: {enabled: false}\n"
                                       "tls: {cert: tls/MACHINE.crt, key: tls/MACHINE.key, "
                                       "ca: tls/ca.crt}\n").replace(
        f'm2: {{kind: server, host: "{h1}"', f'm2: {{kind: server, host: "{student}"')
    supervisors = Supervisors(machines, tmp_path / "machines", text, {
        machine: {f"tls/{name}": (tmp_path / "tls" / name).read_bytes()
                  for name in ("ca.crt", f"{machine}.crt", f"{machine}.key")}
        for machine in ("h1", "student")})
    folders, environment = supervisors.folders, supervisors.environment
    record = tmp_path / "wire.bin"
    relay = machines.popen("student", [sys.executable, "-c", RELAY, "4200", h1, "4103",
                                       str(record)])

    def client(*options: str, port: str = "4104", host: str = student) -> subprocess.CompletedProcess:
        return machines.run("student", [sys.executable, "-m", "nodes.client", "--host", host,
                                        "--port", port, *options], env=environment, cwd=tmp_path)

    try:
        supervisors.up()
        ca = str(folders["student"] / "tls" / "ca.crt")
        statements = ("manamboara tahiry sekoly; ampiasao sekoly; manamboara tabilao t "
                      "(anarana LAHATSORATRA(null,null)); manampia ao@ t sanda ('tsiambaratelo');"
                      "alaivo * ao@ t;")
        done = client("--tls-ca", ca, "-e", statements)
        assert done.returncode == 0 and "tsiambaratelo" in done.stdout, done.stdout + done.stderr
        # Replicated between the machines (over TLS): the row is in both servers' files.
        for machine, server in (("h1", "m1"), ("student", "m2")):
            table = folders[machine] / "data" / server / "sekoly" / "tables" / "t.json"
            wait_until(lambda table=table: table.exists() and b"tsiambaratelo" in b"".join(
                path.read_bytes() for path in table.parent.glob("t.*")), 15,
                f"the row on {server}")

        # Through the recording relay, straight to the balancer on h1 (its certificate names
        # h1's address, so the client checks it against that name).
        relayed = machines.run("student", [sys.executable, "-c", TLS_THROUGH_RELAY, ca, student,
                                           h1, SECRET], env=environment, cwd=tmp_path)
        assert "tsiambaratelo" in relayed.stdout, relayed.stdout + relayed.stderr
        wire = record.read_bytes()
        assert len(wire) > 200
        for plain in (b"tsiambaratelo", b"alaivo", SECRET.encode(), b"END"):
            assert plain not in wire

        refused = client("-e", "alaivo 1;")                       # no CA: plain TCP to a TLS node
        assert refused.returncode != 0
        stranger = Certificates(tmp_path / "other", ca_name="other").ca
        wrong = client("--tls-ca", str(stranger), "-e", "alaivo 1;")
        assert wrong.returncode != 0 and "not who it should be" in wrong.stdout + wrong.stderr
    finally:
        relay.kill()
        relay.wait()
        supervisors.down()


def _two_servers_two_machines(machines, with_m2: bool = True) -> str:
    h1, student = machines.address("h1"), machines.address("student")
    m2 = f'  m2: {{kind: server, host: "{student}", port: 4102, data: data/m2}}\n'
    backends = "m1, m2" if with_m2 else "m1"
    return TOPOLOGY_HEAD + f"""\
  m1: {{kind: server, host: "{h1}", port: 4101, data: data/m1}}
{m2 if with_m2 else ""}  lb: {{kind: balancer, host: "{h1}", port: 4103, backends: [{backends}]}}
"""


def test_a_machine_whose_last_server_is_removed_stops_it_and_hands_its_writes_over(
        machines, tmp_path):
    """The edit that removes m2 copied to both machines: m2's machine refused it ("no node
    of this topology has an address of this machine") and left m2 running with its old
    peers, acknowledging writes that the other servers no longer took into account (lost
    in the conflicts that followed). Now that machine's supervisor applies it: m2 hands
    its newest copies over to m1 and stops; the supervisor stays up for `down`."""
    supervisors = Supervisors(machines, tmp_path, _two_servers_two_machines(machines))
    environment, student = supervisors.environment, machines.address("student")

    def m1_rows() -> list:
        done = machines.run("h1", [
            sys.executable, "-m", "nodes.client", "--host", machines.address("h1"), "--port",
            "4101", "--format", "json", "-e", "ampiasao sekoly; alaivo id ao@ t;"],
            env=environment, cwd=tmp_path)
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        return lines[-1].get("rows", []) if lines else []

    try:
        supervisors.up()
        wait_until(lambda: supervisors.rows("h1")["m2"]["state"] == "REMOTE", 20,
                   "h1's supervisor seeing m2 answer")
        client = machines.run("student", [
            sys.executable, "-m", "nodes.client", "--host", student, "--port", "4102", "-e",
            "manamboara tahiry sekoly; ampiasao sekoly; manamboara tabilao t (id ISA(0,null));"
            "manampia ao@ t sanda (7);"], env=environment, cwd=tmp_path)
        assert client.returncode == 0, client.stdout + client.stderr
        for folder in supervisors.folders.values():
            (folder / "topology.yaml").write_text(
                _two_servers_two_machines(machines, with_m2=False))
        wait_until(lambda: "m2" not in supervisors.rows("student"), 20,
                   "the student's supervisor applying the edit")
        assert not _reachable(machines, "student", student, 4102), "m2 still listens"
        assert wait_until(lambda: m1_rows() == [[7]], 15, "m2's write on m1")
        log = (supervisors.folders["student"] / "logs" / "supervisor.log").read_text()
        assert "gives this machine no node any more" in log
    finally:
        supervisors.down()


def test_with_its_supervisor_dead_status_still_probes_the_other_machines(machines, tmp_path):
    """`status` on a machine whose supervisor was killed called every node of the other
    machines STOPPED (they ran on): they are probed, REMOTE or UNREACHABLE."""
    supervisors = Supervisors(machines, tmp_path, _two_servers_two_machines(machines))
    try:
        supervisors.up()
        wait_until(lambda: supervisors.rows("student")["m1"]["state"] == "REMOTE", 20,
                   "the student's supervisor seeing m1 answer")
        pid = json.loads((supervisors.folders["student"] / "run" / "state.json").read_text())[
            "supervisor_pid"]
        os.kill(pid, 9)
        wait_until(lambda: supervisors.run("student", "status", "--json").returncode != 0, 10,
                   "the student's supervisor gone")
        answer = supervisors.run("student", "status", "--json")
        rows = {row["node"]: row for row in json.loads(answer.stdout)["nodes"]}
        assert {node: rows[node]["state"] for node in ("m1", "lb", "m2")} == \
            {"m1": "REMOTE", "lb": "REMOTE", "m2": "UNSUPERVISED"}
        assert rows["m1"]["restarts"] is None   # its supervisor's to say, not asked
        assert "replication from this machine's servers is paused" in \
            json.loads(answer.stdout)["message"]
        assert supervisors.run("student", "up", "-d").returncode == 0   # takes m2 over again
    finally:
        supervisors.down()


def test_down_says_when_its_last_replication_pass_could_not_reach_another_machine(
        machines, tmp_path):
    """It printed "the cluster is stopped." alone: only the log said that the final pass
    had not reached the other machines (a backup taken then may lack their copies)."""
    supervisors = Supervisors(machines, tmp_path, _two_servers_two_machines(machines))
    try:
        supervisors.up()
        wait_until(lambda: supervisors.rows("student")["m1"]["state"] == "REMOTE", 20,
                   "the student's supervisor seeing m1 answer")
        machines.cut("h1")
        stopped = supervisors.run("student", "down")
        assert stopped.returncode == 0 and stopped.stdout.strip() == "the cluster is stopped."
        assert "warning: the final replication pass left something undone (other machines " \
               "not reached" in stopped.stderr, stopped.stderr
        machines.heal("h1")
    finally:
        supervisors.down()


def test_a_server_removed_while_its_supervisor_is_dead_is_drained_first(machines, tmp_path):
    """m2's supervisor killed, m2 ran on and acknowledged writes nobody shipped; the edit
    removing m2 then reached h1, whose m1 stopped pulling from m2: those writes were lost
    (347 in the helper's run). Now h1 lists m2 `leaving` (it writes nothing more), pulls
    its newest copies into m1, and only then drops it."""
    supervisors = Supervisors(machines, tmp_path, _two_servers_two_machines(machines))
    environment, student, h1 = supervisors.environment, machines.address("student"), \
        machines.address("h1")

    def client(machine: str, host: str, port: int, text: str) -> subprocess.CompletedProcess:
        return machines.run(machine, [sys.executable, "-m", "nodes.client", "--host", host,
                                      "--port", str(port), "--format", "json", "-e", text],
                            env=environment, cwd=tmp_path)

    try:
        supervisors.up()
        wait_until(lambda: supervisors.rows("h1")["m2"]["state"] == "REMOTE", 20,
                   "h1's supervisor seeing m2 answer")
        made = client("student", student, 4102, "manamboara tahiry sekoly; ampiasao sekoly;"
                      "manamboara tabilao t (id ISA(0,null));")
        assert made.returncode == 0, made.stdout + made.stderr
        wait_until(lambda: client("h1", h1, 4101, "ampiasao sekoly; alaivo id ao@ t;")
                   .returncode == 0, 15, "the table on m1")
        pid = json.loads((supervisors.folders["student"] / "run" / "state.json").read_text())[
            "supervisor_pid"]
        os.kill(pid, 9)   # m2 runs on, unsupervised: nothing ships its writes any more
        written = client("student", student, 4102, "ampiasao sekoly; manampia ao@ t sanda (7);")
        assert written.returncode == 0, written.stdout + written.stderr
        (supervisors.folders["h1"] / "topology.yaml").write_text(
            _two_servers_two_machines(machines, with_m2=False))
        wait_until(lambda: "m2" not in supervisors.rows("h1"), 20, "h1 applying the edit")
        rows = json.loads(client("h1", h1, 4101, "ampiasao sekoly; alaivo id ao@ t;")
                          .stdout.splitlines()[-1])["rows"]
        assert rows == [[7]], "m2's acknowledged write was not pulled before m2 was dropped"
        refused = client("student", student, 4102, "ampiasao sekoly; manampia ao@ t sanda (8);")
        assert refused.returncode != 0 and "m2 is not a peer of m1" in refused.stdout
    finally:
        supervisors.run("student", "up", "-d")   # takes m2 over, for `down` to stop it
        supervisors.down()
