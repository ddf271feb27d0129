"""Supervisors on simulated machines (tests/integration/netkit.py), for the tests across machines.

`Supervisors(machines, folder, topology_text, names=...)`: one supervisor per
machine, each on its own copy of one topology file (`up`, `down`, `run`, the
`status --json` rows); `SECRET` the class secret those topologies name,
`TOPOLOGY_HEAD` their first lines (then their nodes), `ROOT`
the repository (the machines' PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-class-secret-of-some-length"
# What every topology of these tests starts with; its nodes follow.
TOPOLOGY_HEAD = f"""\
supervisor:
  control_port: 4099
  health: {{interval_ms: 200, timeout_ms: 1000, fall: 3}}
secret: {SECRET}
http: {{enabled: false}}
nodes:
"""


class Supervisors:
    """One supervisor per simulated machine, each on its own copy of one topology file.

    `files`: extra files per machine (relative path -> bytes), e.g. its TLS
    certificate; "MACHINE" in the topology text becomes the machine's name.
    """

    def __init__(self, machines, folder: Path, text: str,
                 files: dict[str, dict[str, bytes]] | None = None,
                 names: tuple[str, ...] = ("h1", "student")):
        self.machines = machines
        self.environment = {**os.environ, "PYTHONPATH": str(ROOT), "TAHIRY_SECRET": SECRET}
        self.folders: dict[str, Path] = {}
        for machine in names:
            self.folders[machine] = folder / machine
            self.folders[machine].mkdir(parents=True)
            (self.folders[machine] / "topology.yaml").write_text(text.replace("MACHINE", machine))
            for name, data in (files or {}).get(machine, {}).items():
                (self.folders[machine] / name).parent.mkdir(parents=True, exist_ok=True)
                (self.folders[machine] / name).write_bytes(data)

    def run(self, machine: str, *args: str) -> subprocess.CompletedProcess:
        return self.machines.run(machine, [sys.executable, "-m", "supervisor", *args,
                                           "topology.yaml"],
                                 cwd=self.folders[machine], env=self.environment, timeout=90)

    def up(self) -> None:
        for machine in self.folders:
            started = self.run(machine, "up", "-d")
            assert started.returncode == 0, started.stdout + started.stderr

    def down(self) -> None:
        for machine in reversed(list(self.folders)):
            self.run(machine, "down")

    def rows(self, machine: str) -> dict[str, dict]:
        answer = self.run(machine, "status", "--json")
        assert answer.returncode == 0, answer.stdout + answer.stderr
        return {row["node"]: row for row in json.loads(answer.stdout)["nodes"]}

    def settled(self, machine: str) -> bool:
        """Whether `machine`'s status shows every node RUNNING (its own) or REMOTE."""
        return all(row["state"] in ("RUNNING", "REMOTE") for row in self.rows(machine).values())

    def up_and_settled(self, timeout_s: float = 30) -> None:
        """`up` on every machine, then wait until each has settled."""
        self.up()
        for machine in self.folders:
            wait_until(lambda machine=machine: self.settled(machine), timeout_s,
                       f"{machine} running")
