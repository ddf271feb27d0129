"""Healing and conflicts across machines: a corrupt copy repaired over the network, and two
copies at one version with different contents reported as a CONFLICT.

Two machines (network namespaces, tests/integration/netkit.py): m1 on h1, m2
on h2, each machine's supervisor running its own server from one topology.
No folder of the other machine is ever read or written by a supervisor: it
asks that machine's server (`.peer fetch` for a repair, `.peer digest` to
compare; supervisor/replication_remote.py). The test itself reads and
edits both data directories from outside, as an operator's mistake would.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson
import pytest

from engine.storage.object_state import current_document, journal_rel, version_of
from tests.conftest import wait_until
from tests.integration.machinekit import TOPOLOGY_HEAD, Supervisors
from tests.integration.netkit import machines_or_skip
from tests.objectkit import write_raw

pytestmark = pytest.mark.slow

TABLE = "sekoly/tables/t.json"


def _topology(machines) -> str:
    h1, h2 = machines.address("h1"), machines.address("h2")
    return TOPOLOGY_HEAD + f"""\
  m1: {{kind: server, host: "{h1}", port: 4101, data: data/m1}}
  m2: {{kind: server, host: "{h2}", port: 4102, data: data/m2}}
"""


class TwoMachines:
    """h1 (m1) and h2 (m2), a supervisor each; their data directories and status rows."""

    def __init__(self, machines, folder: Path):
        self.machines = machines
        self.supervisors = Supervisors(machines, folder, _topology(machines), names=("h1", "h2"))
        self.data = {"m1": self.supervisors.folders["h1"] / "data" / "m1",
                     "m2": self.supervisors.folders["h2"] / "data" / "m2"}

    def answers(self, machine: str, port: int, text: str) -> str:
        """What the client prints for `text`, run on `machine` against its server at `port`."""
        done = self.machines.run(machine, [sys.executable, "-m", "nodes.client", "--host",
                                           self.machines.address(machine), "--port", str(port),
                                           "-e", text],
                                 env=self.supervisors.environment,
                                 cwd=self.supervisors.folders[machine])
        return done.stdout + done.stderr

    def statements(self, machine: str, port: int, text: str) -> str:
        out = self.answers(machine, port, text)
        assert "Hadisoana" not in out, out
        return out

    def rows(self, server: str) -> list | None:
        try:
            found = current_document(self.data[server] / TABLE)
        except (OSError, ValueError):
            return None
        return None if found is None else sorted(row[0] for row in found["rows"])

    def row_once(self, machine: str, server: str, field: str, what: str) -> dict:
        """`server`'s row in `status --json` on `machine`, once its `field` is set."""
        return wait_until(lambda: (lambda row: row if row.get(field) else None)(
            self.supervisors.rows(machine)[server]), 30, what, 0.5)

    def log(self, machine: str) -> str:
        return (self.supervisors.folders[machine] / "logs" / "supervisor.log").read_text()

    def up_with_rows(self) -> None:
        """Both supervisors up, a table written on m1 with rows 1, 2, 3, the same on m2."""
        self.supervisors.up()
        self.statements("h1", 4101, "manamboara tahiry sekoly; ampiasao sekoly;"
                        "manamboara tabilao t (id ISA(null,null));"
                        "manampia ao@ t sanda (1), (2); manampia ao@ t sanda (3);")
        wait_until(lambda: self.rows("m2") == [1, 2, 3], 15, "the rows shipped to m2")
        wait_until(lambda: version_of(self.data["m1"], TABLE) == version_of(self.data["m2"], TABLE),
                   10, "both copies at one version")


def _files(root: Path) -> tuple[bytes, bytes | None]:
    """The table's snapshot and journal (None: no journal) in one data directory."""
    journal = root / journal_rel(TABLE)
    return (root / TABLE).read_bytes(), journal.read_bytes() if journal.exists() else None


@pytest.fixture
def two_machines(tmp_path):
    machines = machines_or_skip(["h1", "h2"])
    made = TwoMachines(machines, tmp_path)
    try:
        yield made
    finally:
        try:
            made.supervisors.down()
        finally:
            machines.__exit__(None, None, None)


def test_a_corrupt_copy_is_repaired_from_a_server_of_another_machine(two_machines):
    """m1's table file truncated, and h1 holds no other copy: while m2 cannot be reached the
    copy is reported corrupt and m1 answers that table with a storage fault (as for a local
    corrupt copy); once it can, h1's supervisor fetches m2's copy over the network, installs
    it under m1's lock, keeps the corrupt file aside, counts and logs the repair, and
    `status` shows it as a local repair."""
    cluster = two_machines
    cluster.up_with_rows()
    m1 = cluster.data["m1"]
    whole = (m1 / TABLE).read_bytes()
    truncated = whole[:len(whole) // 2]
    cluster.machines.cut_between("h1", "h2")
    write_raw(m1, TABLE, truncated)

    row = cluster.row_once("h1", "m1", "repl_corrupt", "m1's copy reported corrupt")
    [corrupt] = row["repl_corrupt"]
    assert corrupt["path"] == TABLE and "m2:" in corrupt["not_healed"], corrupt
    assert not row["repl_healed"] and "corrupt, not repaired" in row["repl_health"], row
    refused = cluster.answers("h1", 4101, "ampiasao sekoly; alaivo id ao@ t;")
    assert "Hadisoana" in refused and "Simba" in refused, refused
    assert (m1 / TABLE).read_bytes() == truncated
    cluster.machines.heal_between("h1", "h2")

    row = cluster.row_once("h1", "m1", "repl_healed", "m1's corrupt copy repaired over the network")
    [repair] = row["repl_repairs"]
    assert (repair["path"], repair["source"]) == (TABLE, "m2"), repair
    assert repair["change"] == version_of(cluster.data["m2"], TABLE).change
    assert row["repl_corrupt"] == [] and row["repl_health"] == "ok", row
    assert cluster.rows("m1") == [1, 2, 3]
    assert (m1 / repair["kept_as"]).read_bytes() == truncated
    assert f"m1's copy of {TABLE} was corrupt" in cluster.log("h1")
    assert "repaired from m2's copy" in cluster.log("h1")
    # m1 serves the object again, and takes its writes (certified against m2 as before).
    assert "4" in cluster.statements("h1", 4101, "ampiasao sekoly; manampia ao@ t sanda (4);"
                                     "alaivo id ao@ t;")
    wait_until(lambda: cluster.rows("m2") == [1, 2, 3, 4], 15, "m1's next write shipped to m2")


def test_one_version_with_two_contents_on_two_machines_is_a_conflict(two_machines):
    """m2's copy rewritten by hand at the version both copies hold, with other rows: each
    machine's supervisor finds it with `.peer digest` (no shipment ever meets it), reports a
    CONFLICT in `status` and its log, and neither copy is overwritten."""
    cluster = two_machines
    cluster.up_with_rows()
    m1, m2 = cluster.data["m1"], cluster.data["m2"]
    version = version_of(m2, TABLE).change
    edited = current_document(m2 / TABLE)
    assert edited is not None and edited["change"] == version
    edited["rows"] = [[99]]
    m1_before = _files(m1)
    # One version, another content: a snapshot at that version, without a journal.
    write_raw(m2, TABLE, orjson.dumps(edited))
    if (m2 / journal_rel(TABLE)).exists():
        os.unlink(m2 / journal_rel(TABLE))
    m2_written = _files(m2)

    for machine, server in (("h2", "m2"), ("h1", "m1")):
        row = cluster.row_once(machine, server, "repl_conflicts",
                               f"{machine}'s supervisor reporting the conflict")
        assert row["repl_conflicts"] == 1
        assert f"CONFLICT on {TABLE}: change {version} differs between m1, m2" \
            in cluster.log(machine)
    # Nothing was copied either way.
    assert _files(m1) == m1_before and _files(m2) == m2_written
    assert cluster.rows("m1") == [1, 2, 3] and cluster.rows("m2") == [99]
