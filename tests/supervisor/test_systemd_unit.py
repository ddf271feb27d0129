"""The systemd unit shipped in docs/deploy/ is valid (`systemd-analyze verify`)."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "docs" / "deploy" / "tahiry-supervisor.service"


def _installed_unit(tmp_path: Path, text: str) -> Path:
    """The unit as an operator would install it here: this checkout, this user, this python."""
    text = (text.replace("/opt/tahiry/.venv/bin/python", sys.executable)
                .replace("/opt/tahiry", str(ROOT))
                .replace("User=tahiry", f"User={getpass.getuser()}"))
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


def _verify(path: Path) -> subprocess.CompletedProcess:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the unit cannot be verified here")
    return subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True,
                          timeout=60)


def test_the_shipped_unit_verifies(tmp_path):
    done = _verify(_installed_unit(tmp_path, UNIT.read_text()))
    assert done.returncode == 0, done.stderr
    assert UNIT.name not in done.stderr, done.stderr   # no warning about it either


def test_the_unit_runs_the_supervisor_in_the_foreground_and_stops_it_alone():
    text = UNIT.read_text()
    assert "ExecStart=/opt/tahiry/.venv/bin/python -m supervisor up topology.yaml" in text
    assert "KillMode=mixed" in text and "Restart=on-failure" in text
    assert "WantedBy=multi-user.target" in text


def test_verify_finds_a_broken_unit(tmp_path):
    """The check above can fail: a relative ExecStart is refused."""
    broken = UNIT.read_text().replace("ExecStart=/opt/tahiry/.venv/bin/python", "ExecStart=python")
    done = _verify(_installed_unit(tmp_path, broken.replace("ExecStart=python", "ExecStart=./python")))
    assert done.returncode != 0 or UNIT.name in done.stderr
