"""A server moved to another machine: the other machines' servers certify against its old directory.

Three simulated machines (tests/integration/netkit.py): h1 runs m1 and m3,
h3 runs m2, h2 a balancer. m1's and m2's data are on tiny file systems that
are full, so the rows m3 acknowledges stay in m3's directory on h1 alone.
Then an edit moves m3 to h2: h1 cannot hand m3's copies over (m1 full, m2
full, m3's new incarnation not up yet) and keeps the directory as `m3~old`.

A write of m3's table made on h2 right after m3 starts there, and one made
on m2 (h3) once its disk has room, used to be certified against m1 and m2
only: they committed counters m3's old directory had already used, and its
rows (or theirs) were lost when the hand over landed. Now h1 serves that
directory to the other machines as a leaving peer at m3's old address: both
writes pull its newest copy first and are fenced against it. Every
acknowledged row ends on every server, with no CONFLICT.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import wait_until
from tests.faults import fill_up, tiny_tmpfs
from tests.integration.machinekit import TOPOLOGY_HEAD, Supervisors
from tests.integration.netkit import machines_or_skip

pytestmark = pytest.mark.slow

MACHINES = ("h1", "h2", "h3")


@pytest.fixture
def machines():
    made = machines_or_skip(list(MACHINES))
    try:
        yield made
    finally:
        made.__exit__(None, None, None)


def _topology(machines, small1, small2, m3_on: str) -> str:
    h1, h2, h3 = (machines.address(name) for name in MACHINES)
    m3_host = machines.address(m3_on)
    return TOPOLOGY_HEAD + f"""\
  m1: {{kind: server, host: "{h1}", port: 4101, data: {small1 / 'm1'}}}
  m2: {{kind: server, host: "{h3}", port: 4102, data: {small2 / 'm2'}}}
  m3: {{kind: server, host: "{m3_host}", port: 4103, data: data/m3}}
  lb: {{kind: balancer, host: "{h2}", port: 4100, backends: [m1, m2, m3]}}
"""


def _client(machines, supervisors, machine: str, port: int,
            script: str) -> tuple[bool, list[dict]]:
    """(whether every statement succeeded, the JSON lines) of a client on `machine` to
    that machine's server at `port`."""
    done = machines.run(machine, [sys.executable, "-m", "nodes.client", "--host",
                                  machines.address(machine), "--port", str(port), "--format",
                                  "json", "-e", script],
                        env=supervisors.environment, cwd=supervisors.folders[machine], timeout=30)
    try:
        lines = [json.loads(line) for line in done.stdout.splitlines()]
    except ValueError:
        return False, []
    return done.returncode == 0 and all(line.get("ok", True) for line in lines), lines


def _rows(machines, supervisors, machine: str, port: int) -> list[int] | None:
    ok, lines = _client(machines, supervisors, machine, port, "ampiasao sekoly; alaivo id ao@ t;")
    return sorted(row[0] for row in lines[-1].get("rows", [])) if ok and lines else None


def _peers(supervisors, machine: str, server: str) -> dict:
    return json.loads((supervisors.folders[machine] / "run" / f"{server}.peers.json")
                      .read_text())["peers"]


def _rows_only_m3_holds(machines, supervisors, small1, small2):
    """Up, a table made on m3 (h1), m1's and m2's disks filled, rows 1-20 acknowledged by
    m3: in its directory only. (The files filling the disks, each machine's supervisor log.)"""
    supervisors.up_and_settled()
    ok, lines = _client(machines, supervisors, "h1", 4103,
                        "manamboara tahiry sekoly; ampiasao sekoly; manamboara tabilao t "
                        "(id ISA(0,null), pad LAHATSORATRA(0,null));")
    assert ok, lines
    for small, name in ((small1, "m1"), (small2, "m2")):
        wait_until(lambda small=small, name=name:
                   (small / name / "sekoly" / "tables" / "t.json").exists(), 10,
                   f"the table on {name}")
    fillers = [fill_up(small1), fill_up(small2)]
    pad = "x" * 4000
    ok, lines = _client(machines, supervisors, "h1", 4103, "ampiasao sekoly; " + " ".join(
        f"manampia ao@ t sanda ({key}, '{pad}');" for key in range(1, 21)))
    assert ok, lines
    log = {machine: supervisors.folders[machine] / "logs" / "supervisor.log"
           for machine in MACHINES}
    wait_until(lambda: "No space" in log["h1"].read_text(), 10, "the copies to m1 and m2 failing")
    return fillers, log


def _every_row_everywhere(machines, supervisors, log: dict, wanted: list[int],
                          servers: tuple[tuple[str, int], ...]) -> None:
    """Each server (machine, port) comes to hold exactly `wanted`, every acknowledged row
    (what it holds instead is said when it does not), and no supervisor logged a CONFLICT."""
    seen: dict[str, list[int] | None] = {}

    def holds_every_row(machine: str, port: int) -> bool:
        seen[machine] = _rows(machines, supervisors, machine, port)
        return seen[machine] == wanted
    for machine, port in servers:
        try:
            wait_until(lambda machine=machine, port=port: holds_every_row(machine, port),
                       30, f"every acknowledged row on the server at {machine}:{port}")
        except AssertionError as error:
            raise AssertionError(f"{error}: it holds {seen[machine]}") from None
    for machine in MACHINES:
        assert "CONFLICT" not in log[machine].read_text(), machine


def test_writes_on_other_machines_are_fenced_against_a_moved_servers_old_directory(
        machines, tmp_path):
    with tiny_tmpfs(tmp_path / "small1", "2m") as small1, \
            tiny_tmpfs(tmp_path / "small2", "2m") as small2:
        supervisors = Supervisors(machines, tmp_path, _topology(machines, small1, small2, "h1"),
                                  names=MACHINES)
        try:
            fillers, log = _rows_only_m3_holds(machines, supervisors, small1, small2)

            for machine in MACHINES:
                (supervisors.folders[machine] / "topology.yaml").write_text(
                    _topology(machines, small1, small2, "h2"))
            insert = "ampiasao sekoly; manampia ao@ t sanda ({}, 'x');"
            # On h2, as soon as m3 answers there (its first write).
            wait_until(lambda: _client(machines, supervisors, "h2", 4103, insert.format(101))[0],
                       60, "a write acknowledged by m3 on h2")
            wait_until(lambda: "m3~old" in (supervisors.folders["h1"] / "run"
                                            / "handing-over.json").read_text(), 30,
                       "m3's old directory kept on h1")
            h1_m3 = f"{machines.address('h1')}:4103"   # m3's old address: m3~old's now
            for machine, server in (("h2", "m3"), ("h3", "m2")):
                assert _peers(supervisors, machine, server)["m3~old"] == {
                    "address": h1_m3, "leaving": True}, machine
            # A supervisor started again meanwhile asks h1 which old directories it serves.
            for command in (("down",), ("up", "-d")):
                done = supervisors.run("h3", *command)
                assert done.returncode == 0, done.stdout + done.stderr
            wait_until(lambda: supervisors.settled("h3"), 30, "h3 again")
            assert _peers(supervisors, "h3", "m2")["m3~old"] == {
                "address": h1_m3, "leaving": True}
            # On h3, once m2's disk has room (m1's stays full: m3~old stays).
            fillers[1].unlink()
            wait_until(lambda: _client(machines, supervisors, "h3", 4102, insert.format(201))[0],
                       30, "a write acknowledged by m2 on h3")
            fillers[0].unlink()

            wanted = [*range(1, 21), 101, 201]
            _every_row_everywhere(machines, supervisors, log, wanted,
                                  (("h1", 4101), ("h3", 4102), ("h2", 4103)))
            # Handed over: no longer anyone's peer, its process on h1 stopped.
            for machine, server in (("h1", "m1"), ("h2", "m3"), ("h3", "m2")):
                wait_until(lambda machine=machine, server=server:
                           "m3~old" not in _peers(supervisors, machine, server), 20,
                           f"m3~old gone from {server}'s peers")
        finally:
            supervisors.down()


def _dead_machine_topology(machines, m3_on: str) -> str:
    h1, h2, h3 = (machines.address(name) for name in MACHINES)
    return TOPOLOGY_HEAD + f"""\
  m2: {{kind: server, host: "{h3}", port: 4102, data: data/m2}}
  m3: {{kind: server, host: "{machines.address(m3_on)}", port: 4103, data: data/m3}}
  lb: {{kind: balancer, host: "{h2}", port: 4100, backends: [m2, m3]}}
"""


def test_a_server_moved_off_a_dead_machine_leaves_no_old_directory_to_wait_for(
        machines, tmp_path):
    """h1, which ran m3, is dead (every process killed, its link cut) when the edit moves
    m3 to h2: nobody serves m3's old directory, so the others must not certify against
    it (every write of the cluster would be refused until their supervisors restart)."""
    supervisors = Supervisors(machines, tmp_path, _dead_machine_topology(machines, "h1"),
                              names=MACHINES)
    try:
        supervisors.up_and_settled()
        ok, lines = _client(machines, supervisors, "h3", 4102,
                            "manamboara tahiry sekoly; ampiasao sekoly; manamboara tabilao t "
                            "(id ISA(0,null), pad LAHATSORATRA(0,null)); "
                            "manampia ao@ t sanda (1, 'x');")
        assert ok, lines
        wait_until(lambda: _rows(machines, supervisors, "h1", 4103) == [1], 20, "row 1 on m3")
        machines.kill_all("h1")
        machines.cut("h1")
        for machine in ("h2", "h3"):
            (supervisors.folders[machine] / "topology.yaml").write_text(
                _dead_machine_topology(machines, "h2"))
        insert = "ampiasao sekoly; manampia ao@ t sanda ({}, 'x');"
        wait_until(lambda: _client(machines, supervisors, "h3", 4102, insert.format(2))[0],
                   30, "a write acknowledged by m2 once m3 moved off the dead machine")
        wait_until(lambda: _client(machines, supervisors, "h2", 4103, insert.format(3))[0],
                   30, "a write acknowledged by m3 on h2")
        for machine, server in (("h2", "m3"), ("h3", "m2")):
            assert "m3~old" not in _peers(supervisors, machine, server), machine
        wait_until(lambda: _rows(machines, supervisors, "h2", 4103) == [1, 2, 3], 30,
                   "every row on m3 at h2")
    finally:
        machines.heal("h1")
        supervisors.down()


def _removal_topology(machines, small1, small2, with_m3: bool) -> str:
    text = _topology(machines, small1, small2, "h1")
    if with_m3:
        return text
    return "\n".join(line for line in text.splitlines() if not line.startswith("  m3:")) \
        .replace("backends: [m1, m2, m3]", "backends: [m1, m2]") + "\n"


def test_writes_on_other_machines_are_fenced_against_a_removed_servers_directory(
        machines, tmp_path):
    """The same with m3 removed from the topology rather than moved: h1 keeps m3's directory
    while it cannot hand it over, and a write of m3's table on h3 once m2's disk has room
    must pull its newest copy and be fenced against it."""
    with tiny_tmpfs(tmp_path / "small1", "2m") as small1, \
            tiny_tmpfs(tmp_path / "small2", "2m") as small2:
        supervisors = Supervisors(machines, tmp_path,
                                  _removal_topology(machines, small1, small2, True),
                                  names=MACHINES)
        try:
            fillers, log = _rows_only_m3_holds(machines, supervisors, small1, small2)
            for machine in MACHINES:
                (supervisors.folders[machine] / "topology.yaml").write_text(
                    _removal_topology(machines, small1, small2, False))
            pending = supervisors.folders["h1"] / "run" / "handing-over.json"
            wait_until(lambda: pending.exists() and "m3" in pending.read_text(), 30,
                       "m3's directory kept on h1")
            wait_until(lambda: "m3" not in supervisors.rows("h3")
                       or supervisors.rows("h3")["m3"]["state"] != "REMOTE", 30,
                       "the removal applied on h3")
            fillers[1].unlink()
            insert = "ampiasao sekoly; manampia ao@ t sanda ({}, 'x');"
            wait_until(lambda: _client(machines, supervisors, "h3", 4102, insert.format(201))[0],
                       30, "a write acknowledged by m2 on h3")
            fillers[0].unlink()
            wanted = [*range(1, 21), 201]
            _every_row_everywhere(machines, supervisors, log, wanted, (("h1", 4101), ("h3", 4102)))
            wait_until(lambda: "m3" not in _peers(supervisors, "h3", "m2"), 20,
                       "m3 gone from m2's peers once handed over")
        finally:
            supervisors.down()
