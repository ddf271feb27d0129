"""`--port 0 --port-file PATH`: a real node process binds an ephemeral port and says which.

Server, balancer and proxy cache share the option (nodes/runtime): each is
started as `python -m nodes.<kind>`, the test waits for the port file and
sends `.ping;` to the port it names.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nodes.protocol import ResponseDecoder

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 15.0


def wait_for_port_file(path: Path, node: subprocess.Popen) -> int:
    """The port written to `path`, once it exists (the node must stay up meanwhile)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text()
            assert text.endswith("\n") and text.strip().isdigit(), repr(text)
            return int(text)
        assert node.poll() is None, f"node exited with {node.returncode}: {node.stderr.read()!r}"
        time.sleep(0.02)
    raise AssertionError(f"no port file {path} after {DEADLINE_S} s")


def ping(port: int) -> str:
    """The message answering `.ping;` on 127.0.0.1:`port`."""
    decoder = ResponseDecoder()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b".ping;")
        while True:
            chunk = sock.recv(1 << 16)
            assert chunk, "connection closed before the answer"
            responses = decoder.feed(chunk)
            if responses:
                return responses[0].message


@pytest.mark.parametrize("kind, options", [
    ("server", ["--data", "{tmp}/data"]),
    ("balancer", []),
    ("proxycache", ["--upstream", "127.0.0.1:9"]),
])
def test_port_zero_binds_an_ephemeral_port_written_to_the_port_file(tmp_path, kind, options):
    port_file = tmp_path / "run" / f"{kind}.port"
    port_file.parent.mkdir()
    command = [sys.executable, "-m", f"nodes.{kind}", "--id", f"{kind}1", "--port", "0",
               "--port-file", str(port_file), *(o.format(tmp=tmp_path) for o in options)]
    environment = {key: value for key, value in os.environ.items() if key != "TAHIRY_SECRET"}
    node = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        port = wait_for_port_file(port_file, node)
        assert 0 < port < 65536
        assert ping(port) == f"PONG {kind}1 {kind}"
        if kind == "server":  # its data directory's owner record names the same port
            assert json.loads((tmp_path / "data" / ".tahiry.owner").read_text())["port"] == port
        # Only the port file itself: its temp file was renamed over it.
        assert [p.name for p in port_file.parent.iterdir()] == [port_file.name]
    finally:
        node.terminate()
        node.wait(timeout=10)
    assert node.returncode == 0 or node.returncode == -15


def test_port_out_of_range_is_refused_by_the_command_line():
    finished = subprocess.run([sys.executable, "-m", "nodes.server", "--id", "m1", "--port", "70000",
                               "--data", "unused"], cwd=ROOT, capture_output=True, text=True,
                              timeout=30)
    assert finished.returncode == 2
    assert "out of range" in finished.stderr


@pytest.mark.parametrize("kind, options", [
    ("server", ["--data", "{tmp}/data"]),
    ("balancer", []),
    ("proxycache", ["--upstream", "127.0.0.1:9"]),
])
@pytest.mark.parametrize("port_file, refusal", [
    ("{tmp}", "is a directory"),
    ("{tmp}/missing/port", "no such folder"),
])
def test_a_port_file_that_cannot_be_written_is_refused_by_the_command_line(
        tmp_path, kind, options, port_file, refusal):
    """Bug: the node bound its port, then died with a traceback (IsADirectoryError,
    FileNotFoundError) writing the port file; now one line and exit 2, before anything."""
    finished = subprocess.run(
        [sys.executable, "-m", f"nodes.{kind}", "--id", "n1", "--port", "0",
         "--port-file", port_file.format(tmp=tmp_path),
         *(option.format(tmp=tmp_path) for option in options)],
        cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert finished.returncode == 2, finished.stderr
    assert "--port-file" in finished.stderr and refusal in finished.stderr, finished.stderr
    assert "Traceback" not in finished.stderr


def test_a_data_directory_that_is_a_file_is_refused_in_one_line(tmp_path):
    """Bug: `--data /dev/null` (or any file) ended the server with a NotADirectoryError
    traceback, exit 1."""
    (tmp_path / "file").write_text("x")
    for data in ("/dev/null", str(tmp_path / "file")):
        finished = subprocess.run([sys.executable, "-m", "nodes.server", "--id", "m1", "--port",
                                   "0", "--data", data], cwd=ROOT, capture_output=True,
                                  text=True, timeout=30)
        assert finished.returncode == 2, finished.stderr
        assert f"--data {data}: not a directory" in finished.stderr, finished.stderr
        assert "Traceback" not in finished.stderr
