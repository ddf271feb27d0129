"""How long writes pause while `backup` takes its point, and what the whole backup costs.

    .venv/bin/python bench/backup_bench.py [--rows N] [--tables T] [--runs R]

A throw-away cluster (m1, m2, lb; temporary folder, free loopback ports):
T tables of N/T rows each, then one writer inserting one row at a time
through the balancer while `backup` runs R times. Printed per run: the
time the commit locks were held (`paused`: what a write may wait for),
the wait for them, the whole backup, the archive's size; and, as the
reference measured in the same run, the writer's insert latency (p50, and
the worst one overlapping a backup against the worst one without).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchkit import WireConnection, free_port  # noqa: E402
from cluster_bench import start_foreground, stop_foreground  # noqa: E402


def topology_text(ports: dict[str, int]) -> str:
    return f"""\
supervisor:
  control_port: {ports['control']}
http: {{enabled: false}}
nodes:
  m1: {{kind: server, host: 127.0.0.1, port: {ports['m1']}, data: data/m1}}
  m2: {{kind: server, host: 127.0.0.1, port: {ports['m2']}, data: data/m2}}
  lb: {{kind: balancer, host: 127.0.0.1, port: {ports['lb']}, backends: [m1, m2]}}
"""


def fill(port: int, tables: int, rows: int) -> None:
    with WireConnection(port, timeout_s=120, decode_relations=False) as connection:
        for statement in ("manamboara tahiry bench;", "ampiasao bench;"):
            assert connection.request(statement).ok
        for table in range(tables):
            assert connection.request(f"manamboara tabilao t{table} ( id ISA(0,null), "
                                      f"anarana LAHATSORATRA(null,null) );").ok
            for start in range(0, rows // tables, 1000):
                values = ", ".join(f"({n}, \"mpianatra {n}\")"
                                   for n in range(start, min(start + 1000, rows // tables)))
                answer = connection.request(f"manampia ao@ t{table} sanda {values};")
                assert answer.ok, answer.message


class Writer(threading.Thread):
    """One row at a time into w; (start, seconds) of each insert."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port = port
        self.latencies: list[tuple[float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with WireConnection(self.port, timeout_s=30, decode_relations=False) as connection:
            assert connection.request("ampiasao bench;").ok
            assert connection.request("manamboara tabilao w ( id ISA(0,null) );").ok
            n = 0
            while not self.stop.is_set():
                n += 1
                started = time.monotonic()
                answer = connection.request(f"manampia ao@ w sanda ({n});")
                assert answer.ok, answer.message
                self.latencies.append((started, time.monotonic() - started))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tables", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tahiry-backup-bench-") as folder:
        work = Path(folder)
        ports = {name: free_port() for name in ("control", "m1", "m2", "lb")}
        topology = work / "topology.yaml"
        topology.write_text(topology_text(ports))
        process, _ = start_foreground(topology)
        try:
            fill(ports["lb"], args.tables, args.rows)
            writer = Writer(ports["lb"])
            writer.start()
            time.sleep(1.0)   # the writer's own table made and warm
            windows = []
            print(f"{args.rows:,} rows in {args.tables} tables, one writer through the balancer")
            print("| run | paused ms | lock wait ms | backup s | archive bytes |")
            print("| --- | --- | --- | --- | --- |")
            for run in range(args.runs):
                started = time.monotonic()
                result = subprocess.run(
                    [sys.executable, "-m", "supervisor", "backup", str(topology), "--to",
                     str(work / f"b{run}.tar.gz")], cwd=work, capture_output=True, text=True,
                    timeout=600)
                windows.append((started, time.monotonic()))
                if result.returncode != 0:
                    raise SystemExit(result.stderr)
                manifest = _manifest(work / f"b{run}.tar.gz")
                print(f"| {run + 1} | {manifest['paused_ms']:.2f} | "
                      f"{manifest['lock_wait_ms']:.2f} | {windows[-1][1] - started:.2f} | "
                      f"{(work / f'b{run}.tar.gz').stat().st_size:,} |")
                time.sleep(0.5)
            writer.stop.set()
            writer.join(30)
        finally:
            stop_foreground(process)
    during = [seconds for start, seconds in writer.latencies
              if any(begin <= start + seconds and start <= end for begin, end in windows)]
    outside = [seconds for start, seconds in writer.latencies
               if not any(begin <= start + seconds and start <= end for begin, end in windows)]
    print(f"writer: {len(writer.latencies)} inserts; p50 {statistics.median(outside) * 1000:.2f} ms "
          f"without a backup, {statistics.median(during) * 1000:.2f} ms during one; worst "
          f"{max(outside) * 1000:.1f} ms without, {max(during) * 1000:.1f} ms during")


def _manifest(path: Path) -> dict:
    import tarfile
    with tarfile.open(path, "r:gz") as archive:
        member = archive.extractfile("tahiry-backup/manifest.json")
        assert member is not None
        return json.loads(member.read())


if __name__ == "__main__":
    main()
