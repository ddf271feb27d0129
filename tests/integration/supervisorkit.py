"""The supervisor CLI run against a topology file in a test's temporary folder.

`SupervisorRun` is what the supervisor integration tests and the cluster
fault scenario share: `cli(...)` runs `python -m supervisor ...` there,
`supervisor_log()` is the tail of its log for failure reports, and
`remember(pids)` keeps psutil handles on every process seen, so that a
test can tell afterwards whether one survived (a reused pid is not it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

from tests.conftest import REPO_ROOT


class SupervisorRun:
    """The supervisor CLI on `topology`, run in `workdir`; the processes it was seen to run."""

    cli_timeout_s = 60.0

    def __init__(self, workdir: Path, topology: Path):
        self.workdir = workdir
        self.topology = topology
        self.seen: dict[int, psutil.Process | None] = {}

    def cli(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "supervisor", *args], cwd=self.workdir,
                              capture_output=True, text=True,
                              timeout=timeout if timeout is not None else self.cli_timeout_s,
                              env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})

    def supervisor_log(self) -> str:
        try:
            return (self.workdir / "logs" / "supervisor.log").read_text()[-4000:]
        except OSError:
            return "(no supervisor log)"

    def remember(self, pids) -> None:
        """Keep psutil handles: they tell a reused pid from the process we saw."""
        for pid in pids:
            if pid not in self.seen:
                try:
                    self.seen[pid] = psutil.Process(pid)
                except psutil.NoSuchProcess:
                    pass
