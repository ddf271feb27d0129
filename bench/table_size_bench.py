"""Does a write cost the row or the table? Single-row durable writes against tables of growing size.

For each size (1k, 10k, 100k rows; 1M with --huge) a fresh server is filled
with that many 5-column rows, then one connection sends, for a few seconds
each, single-row writes, each acknowledged only once durable: inserts, point
updates (`havaozy t ova c = c + 1 rehefa id = K`, K spread over the table)
and point deletes (`fafao ao@ t rehefa id = K`, K from 0 up). Prints writes/s,
p50/p99 latency and the ratio of each rate to the 1k-row rate measured in
the same run (issue 10's bar: the 100k-row rate within 1.5x of the 1k-row
one), and the table's files on disk after the inserts (snapshot and journal).

    .venv/bin/python bench/table_size_bench.py [--seconds 3] [--huge] [--writes insert,update,delete]
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


# One durable single-row write of each kind; `n` counts the requests of the run.
WRITES = {
    "insert": lambda rows, n: f"manampia ao@ t sanda ({10_000_000 + n}, 'new', 1, 2, 'y');",
    # 7,919 is prime: the ids touched spread over the whole table.
    "update": lambda rows, n: f"havaozy t ova c = c + 1 rehefa id = {n * 7_919 % rows};",
    "delete": lambda rows, n: f"fafao ao@ t rehefa id = {n};",
}


def run_size(rows: int, seconds: float, writes: list[str], workdir: Path) -> dict:
    folder = workdir / f"rows-{rows}"
    folder.mkdir()
    process, port = start("server", "m1", folder, "--data", "data")
    figures: dict[str, tuple[float, float, float]] = {}
    sizes: dict[str, int] = {}
    try:
        fill(port, rows)
        for write in writes:
            figures[write] = measure(
                port, lambda index, n, kind=WRITES[write]: kind(rows, n), seconds, 1)
            if write == "insert":
                tables = folder / "data" / "bench" / "tables"
                sizes = {path.name: path.stat().st_size for path in tables.iterdir()}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    return {"rows": rows, "figures": figures, "files": sizes}


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--seconds", type=float, default=3.0)
    options.add_argument("--huge", action="store_true", help="also 1,000,000 rows")
    options.add_argument("--writes", default="insert,update,delete",
                         help=f"comma-separated among {', '.join(WRITES)}")
    args = options.parse_args()
    writes = [write for write in args.writes.split(",") if write]
    unknown = [write for write in writes if write not in WRITES]
    if unknown:
        options.error(f"unknown writes: {', '.join(unknown)}")
    sizes = [1_000, 10_000, 100_000] + ([1_000_000] if args.huge else [])
    workdir = Path(tempfile.mkdtemp(prefix="table-size-bench-"))
    try:
        results = [run_size(rows, args.seconds, writes, workdir) for rows in sizes]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for write in writes:
        reference = results[0]["figures"][write][0]
        print(f"\n{write}: single-row durable {write}s on one connection")
        print(f"{'rows':>9}  {write + 's/s':>9}  {'p50 ms':>7}  {'p99 ms':>7}  {'1k rate / this':>14}"
              + ("  files after the inserts" if write == "insert" else ""))
        for result in results:
            rate, p50, p99 = result["figures"][write]
            files = ", ".join(f"{name} {size:,} B" for name, size in sorted(result["files"].items()))
            print(f"{result['rows']:>9,}  {rate:>9.0f}  {p50:>7.3f}  {p99:>7.3f}  "
                  f"{reference / rate:>13.2f}x" + (f"  {files}" if write == "insert" else ""))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
