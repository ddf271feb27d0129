"""Server memory benchmark: resident memory of a real server through a load and a full scan.

Run: .venv/bin/python bench/memory_bench.py [--rows 100000] [--batch 5000] [--scans 2]

Starts `python -m nodes.server` on a free loopback port with a temporary
data directory, creates a 5-column table through the wire (INSERT batches
of --batch literal rows), runs full scans through the wire, and prints the
server's resident memory (psutil RSS, and the peak from /proc when known)
at each step, with the time each step took. Target: under 150 MB after the
scan. The client side decodes no relation JSON but the row counts.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from benchkit import WireConnection, free_port  # noqa: E402 (puts the repository on sys.path)

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_MB = 150.0
TIMEOUT_S = 300.0


class Wire:
    """One blocking connection; one statement at a time; a failed statement raises."""

    def __init__(self, port: int):
        # Relation pages stay raw bytes: only their rows are counted.
        self.connection = WireConnection(port, TIMEOUT_S, decode_relations=False)
        self.sock = self.connection.sock

    def request(self, text: str) -> bytes:
        response = self.connection.request(text)
        if not response.ok:
            raise RuntimeError(f"{text[:60]}...: {response.message}")
        return response.raw

    def close(self) -> None:
        self.connection.close()


def relation_rows(response: bytes) -> int:
    """How many rows the relation pages of a response carry."""
    count = 0
    lines = response.split(b"\n")
    for header, body in itertools.pairwise(lines):
        if header.startswith(b"RELATION_JSON_PAGE "):
            count += len(json.loads(body)["rows"])
    return count


def wait_ready(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            wire = Wire(port)
            wire.sock.settimeout(2)
            if b"PONG" in wire.request(".ping;"):
                wire.close()
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not answer .ping; in time")


def peak_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) from /proc, when the platform has it."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def batch_text(start: int, count: int) -> str:
    rows = ", ".join(
        f"({i}, 'anarana{i}', {i % 100}, {(i * 7919) % 1000}, {i % 977}.25)"
        for i in range(start, start + count))
    return f"manampia ao@ t sanda {rows};"


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--rows", type=int, default=100_000)
    arguments.add_argument("--batch", type=int, default=5_000)
    arguments.add_argument("--scans", type=int, default=2)
    options = arguments.parse_args()

    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        log = open(Path(data) / "server.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "nodes.server", "--id", "m1", "--host", "127.0.0.1",
             "--port", str(port), "--data", str(Path(data) / "m1")],
            cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_ready(port, process)
            server = psutil.Process(process.pid)
            figures: list[tuple[str, float, float | None, float]] = []

            def record(label: str, seconds: float) -> None:
                figures.append((label, server.memory_info().rss / 2**20, peak_mb(process.pid),
                                seconds))

            record("idle after start", 0.0)
            wire = Wire(port)
            wire.request("manamboara tahiry membench;")
            wire.request("ampiasao membench;")
            wire.request("manamboara tabilao t (id ISA(null,null), anarana LAHATSORATRA(null,null), "
                         "grp ISA(null,null), v ISA(null,null), x ISA(null,null));")
            record("empty table created", 0.0)
            started = time.perf_counter()
            for start in range(0, options.rows, options.batch):
                wire.request(batch_text(start, min(options.batch, options.rows - start)))
            record(f"after loading {options.rows} rows", time.perf_counter() - started)
            for scan in range(1, options.scans + 1):
                started = time.perf_counter()
                response = wire.request("alaivo * ao@ t;")
                if relation_rows(response) != options.rows:
                    raise RuntimeError(f"the scan returned {relation_rows(response)} rows")
                record(f"after full scan {scan} ({len(response) / 2**20:.1f} MB response)",
                       time.perf_counter() - started)
            wire.close()
            time.sleep(0.5)
            record("idle after the client left", 0.0)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.close()

    print(f"{'step':48} {'RSS MB':>8} {'peak MB':>8} {'seconds':>8}")
    for label, rss, peak, seconds in figures:
        shown_peak = f"{peak:8.1f}" if peak is not None else f"{'-':>8}"
        print(f"{label:48} {rss:8.1f} {shown_peak} {seconds:8.2f}")
    worst = max(max(rss, peak or 0.0) for _, rss, peak, _ in figures)
    verdict = "within" if worst <= TARGET_MB else "OVER"
    print(f"\nhighest resident figure {worst:.1f} MB: {verdict} the {TARGET_MB:.0f} MB target")


if __name__ == "__main__":
    main()
