"""A server moved to another machine by an edit of topology.yaml hands over what it alone held.

On simulated machines (tests/integration/netkit.py): m1 and m3 on h1, m1's
data on a tiny file system that is full. m3 acknowledges rows that cannot be
copied to m1; then the edit moves m3 to h2 (its `host`), whose supervisor is
not running: the hand over reaches neither m1 (disk full) nor m3's new
incarnation. It used to leave anyway (docs/REPLICATION.md said so), and the
rows stayed in m3's old directory, which nobody read again. Its old directory
now stays a peer of h1's servers as `m3~old`, its hand over retried, so once
m1 has room the rows are there.
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


@pytest.fixture
def machines():
    made = machines_or_skip(["h1", "h2"])
    try:
        yield made
    finally:
        made.__exit__(None, None, None)


def _topology(machines, small, m3_on: str) -> str:
    h1, m3_host = machines.address("h1"), machines.address(m3_on)
    return TOPOLOGY_HEAD + f"""\
  m1: {{kind: server, host: "{h1}", port: 4101, data: {small / 'm1'}}}
  m3: {{kind: server, host: "{m3_host}", port: 4103, data: data/m3}}
"""


def _client(machines, supervisors, port: int, script: str) -> list[dict]:
    done = machines.run("h1", [sys.executable, "-m", "nodes.client", "--host",
                               machines.address("h1"), "--port", str(port), "--format", "json",
                               "-e", script],
                        env=supervisors.environment, cwd=supervisors.folders["h1"])
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_server_moved_to_another_machine_keeps_what_it_alone_held(machines, tmp_path):
    with tiny_tmpfs(tmp_path / "small", "2m") as small:
        supervisors = Supervisors(machines, tmp_path, _topology(machines, small, "h1"),
                                  names=("h1",))
        try:
            supervisors.up()
            wait_until(lambda: all(row["state"] == "RUNNING"
                                   for row in supervisors.rows("h1").values()), 20, "running")
            _client(machines, supervisors, 4103, "manamboara tahiry sekoly; ampiasao sekoly; "
                    "manamboara tabilao t (id ISA(0,null), pad LAHATSORATRA(0,null));")
            wait_until(lambda: (small / "m1" / "sekoly" / "tables" / "t.json").exists(), 10,
                       "the table on m1")
            filler = fill_up(small)
            pad = "x" * 4000
            inserted = _client(machines, supervisors, 4103, "ampiasao sekoly; " + " ".join(
                f"manampia ao@ t sanda ({key}, '{pad}');" for key in range(1, 21)))
            assert all(line.get("ok", True) for line in inserted), inserted
            log = supervisors.folders["h1"] / "logs" / "supervisor.log"
            wait_until(lambda: "copy failing" in log.read_text() or "No space" in log.read_text(),
                       10, "the copies to m1 failing")

            (supervisors.folders["h1"] / "topology.yaml").write_text(
                _topology(machines, small, "h2"))
            wait_until(lambda: "reload applied" in log.read_text(), 30, "the move applied")
            run = supervisors.folders["h1"] / "run"
            # Its old directory: m1's peer (pulled from, fenced against), kept for `up`.
            peers = json.loads((run / "m1.peers.json").read_text())["peers"]
            assert peers["m3~old"] == str(supervisors.folders["h1"] / "data" / "m3"), peers
            assert "address" in peers["m3"]   # its id: the new incarnation, on h2
            assert "m3~old" in json.loads((run / "handing-over.json").read_text())
            filler.unlink()

            def on_m1() -> list:
                lines = _client(machines, supervisors, 4101, "ampiasao sekoly; alaivo id ao@ t;")
                return sorted(row[0] for row in lines[-1].get("rows", []))
            assert wait_until(lambda: on_m1() == list(range(1, 21)), 20,
                              "m3's acknowledged rows on m1")
        finally:
            supervisors.down()
