"""The first read after a write, in one process: what the write leaves behind for the next read.

For 1k, 10k and 100k rows (a 5-column table, as bench/peers_bench.py's), a
point read through `Session.try_small_read` (the server's small-read path)
right after a one-row insert, against one right after another read; no
server, no network and fsync off, so what differs is what the insert did
to memory (docs/PERFORMANCE.md, "The first read after a write"). Prints
the medians in microseconds and their ratio per size.

    .venv/bin/python bench/read_after_write_bench.py [--pairs 1000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peers_bench import TAHIRY_COLUMNS, row  # noqa: E402

from engine.session import Session  # noqa: E402
from engine.storage.store import Store  # noqa: E402

FILL_CHUNK = 5_000
SMALL_READ_ROWS = 10_000   # the server's (nodes/server/node.py): a point read of any table


def run(session: Session, statement: str) -> None:
    outcome = session.execute_one(statement)
    assert outcome.ok, outcome.message


def read(session: Session, table: str, rows: int) -> float:
    """Seconds for one uncached point read on the small-read path."""
    statement = f"alaivo * ao@ {table} rehefa id = {random.randrange(rows)}"
    began = time.perf_counter()
    outcome = session.try_small_read(statement, SMALL_READ_ROWS)
    elapsed = time.perf_counter() - began
    assert outcome is not None and outcome.ok, "not answered on the small-read path"
    return elapsed


def measure(session: Session, rows: int, pairs: int) -> tuple[float, float]:
    """(median µs of a read after an insert, of a read after a read) for a table of `rows`."""
    table = f"t{rows}"
    run(session, f"manamboara tabilao {table} ({TAHIRY_COLUMNS})")
    for first in range(0, rows, FILL_CHUNK):
        run(session, f"manampia ao@ {table} sanda "
                     + ", ".join(map(row, range(first, min(rows, first + FILL_CHUNK)))))
    run(session, f"alaivo * ao@ {table} rehefa id = 0")   # builds the equality index
    for _ in range(2):   # learns the shape; then the small-read path answers
        session.try_small_read(f"alaivo * ao@ {table} rehefa id = 0", SMALL_READ_ROWS)
    after_write, after_read = [], []
    for pair in range(pairs):
        run(session, f"manampia ao@ {table} sanda {row(10_000_000 + pair)}")
        after_write.append(read(session, table, rows))
        after_read.append(read(session, table, rows))
    return statistics.median(after_write) * 1e6, statistics.median(after_read) * 1e6


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--pairs", type=int, default=1000, help="pairs per table size")
    args = options.parse_args()
    with tempfile.TemporaryDirectory(prefix="read-after-write-") as folder:
        session = Session(Store(Path(folder) / "data", durable=False))
        run(session, "manamboara tahiry bench")
        run(session, "ampiasao bench")
        print(f"{'rows':>8}{'after write us':>16}{'after read us':>15}{'ratio':>8}")
        for rows in (1_000, 10_000, 100_000):
            written, read_only = measure(session, rows, args.pairs)
            print(f"{rows:>8}{written:>16.1f}{read_only:>15.1f}{written / read_only:>8.2f}")


if __name__ == "__main__":
    main()
