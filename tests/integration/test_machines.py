"""Nodes on different (simulated) machines: the request path over a real network.

Machines are Linux network namespaces (tests/integration/netkit.py): a
server on h1, the balancer on h2, the proxy cache and the client on the
student's machine, each reaching the next by its address on the test
network, with the shared secret (required off loopback).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.integration.netkit import machines_or_skip

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-class-secret-of-some-length"
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
