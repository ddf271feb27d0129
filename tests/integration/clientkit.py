"""Running `python -m nodes.client` as a user would, for the integration tests.

`client(*args, stdin=..., cwd=...)` runs it as a subprocess (with a
deadline) and returns the finished process; `json_lines` decodes what it
printed with `--format json`. Shared by the client, chain and pipelining
tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT


def client(*args: str, stdin: str | None = None, cwd: Path | None = None,
           env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nodes.client", *args], input=stdin if stdin is not None else "",
        capture_output=True, text=True, timeout=60, cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HOME": str(cwd or REPO_ROOT),
             **(env or {})})


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]
