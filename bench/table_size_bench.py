"""Does a write cost the row or the table? Single-row durable inserts against tables of growing size.

For each size (1k, 10k, 100k rows; 1M with --huge) a fresh server is filled
with that many 5-column rows, then one connection sends single-row inserts
for a few seconds, each acknowledged only once durable. Prints inserts/s,
p50/p99 latency and the ratio of each rate to the 1k-row rate measured in
the same run (issue 10's bar: the 100k-row rate within 1.5x of the 1k-row
one), and the table's files on disk afterwards (snapshot and journal).

    .venv/bin/python bench/table_size_bench.py [--seconds 3] [--huge]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chain_bench import connect, measure, start  # noqa: E402

FILL_CHUNK = 20_000  # rows per INSERT while filling (under the 1 MiB request limit)


def fill(port: int, rows: int) -> None:
    client = connect(port)
    for statement in ("manamboara tahiry bench;", "ampiasao bench;",
                      "manamboara tabilao t (id ISA(0,null), a LAHATSORATRA(null,null), "
                      "b ISA(null,null), c ISA(null,null), d LAHATSORATRA(null,null));"):
        answer = client.request(statement)
        assert answer.ok, answer.message
    for first in range(0, rows, FILL_CHUNK):
        values = ", ".join(f"({i}, 'name {i}', {i % 97}, {i * 7}, 'x')"
                           for i in range(first, min(rows, first + FILL_CHUNK)))
        answer = client.request(f"manampia ao@ t sanda {values};")
        assert answer.ok, answer.message


def run_size(rows: int, seconds: float, workdir: Path) -> dict:
    folder = workdir / f"rows-{rows}"
    folder.mkdir()
    process, port = start("server", "m1", folder, "--data", "data")
    try:
        fill(port, rows)
        base = 10_000_000
        rate, p50, p99 = measure(
            port, lambda index, n: f"manampia ao@ t sanda ({base + n}, 'new', 1, 2, 'y');",
            seconds, 1)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    tables = folder / "data" / "bench" / "tables"
    sizes = {path.name: path.stat().st_size for path in tables.iterdir()}
    return {"rows": rows, "rate": rate, "p50": p50, "p99": p99, "files": sizes}


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--seconds", type=float, default=3.0)
    options.add_argument("--huge", action="store_true", help="also 1,000,000 rows")
    args = options.parse_args()
    sizes = [1_000, 10_000, 100_000] + ([1_000_000] if args.huge else [])
    workdir = Path(tempfile.mkdtemp(prefix="table-size-bench-"))
    try:
        results = [run_size(rows, args.seconds, workdir) for rows in sizes]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    reference = results[0]["rate"]
    print(f"{'rows':>9}  {'inserts/s':>9}  {'p50 ms':>7}  {'p99 ms':>7}  {'1k rate / this':>14}"
          f"  files after a clean stop")
    for result in results:
        files = ", ".join(f"{name} {size:,} B" for name, size in sorted(result["files"].items()))
        print(f"{result['rows']:>9,}  {result['rate']:>9.0f}  {result['p50']:>7.3f}  "
              f"{result['p99']:>7.3f}  {reference / result['rate']:>13.2f}x  {files}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
