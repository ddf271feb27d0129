"""What one durable append costs on this disk, and what changes it: the floor under every insert.

A durable insert's journal entry is one `write` at the end of the table's
journal, then one `fdatasync` (engine/storage/journal.py). This measures
that pair alone, in one process, for `--appends` entries of `--bytes`
bytes each, in a folder of the data's filesystem, five ways in interleaved
rounds:

- `append, back to back`: the journal's way, one pair after the other (the reference);
- `append, after a pause`: each pair after a `--pause-us` sleep, as a server's
  next insert comes after a round trip: the CPU has gone idle meanwhile;
- `append, after the caches are emptied`: each pair after copying 16 MiB,
  as a server's comes after the Python of a request;
- `overwrite, back to back` and `overwrite, after a pause`: the same bytes
  written in place over a file filled beforehand (a preallocated journal,
  as PostgreSQL's WAL segments are): the file's size does not change, so
  `fdatasync` need not commit the inode's new size through the
  filesystem's own journal.

Printed: the median of the rounds' p10/p50/p90 µs of the pair, and each
p50's ratio to the reference measured in the same run. docs/PERFORMANCE.md
("The fdatasync under an insert") says what the figures mean for Tahiry.

    ./tahiry py bench/fsync_bench.py [--dir FOLDER] [--appends 1000] [--rounds 3]
        [--bytes 90] [--pause-us 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

THRASH_BYTES = 16 << 20
PAGE = 4096
ROOT = Path(__file__).resolve().parent.parent


def measure(folder: Path, appends: int, size: int, before: Callable[[], None],
            in_place: bool) -> tuple[float, float, float]:
    """(p10, p50, p90) µs of one `write` + `fdatasync`, each after `before()`."""
    line = b"x" * (size - 1) + b"\n"
    descriptor, name = tempfile.mkstemp(dir=folder, prefix="fsync-bench-")
    try:
        if in_place:
            os.write(descriptor, b"\0" * (appends * size + PAGE))
            os.fsync(descriptor)
        else:
            os.close(descriptor)
            descriptor = os.open(name, os.O_WRONLY | os.O_APPEND)
        took = []
        for index in range(appends):
            before()
            started = time.perf_counter()
            if in_place:
                os.pwrite(descriptor, line, index * size)
            else:
                os.write(descriptor, line)
            os.fdatasync(descriptor)
            took.append((time.perf_counter() - started) * 1e6)
    finally:
        os.close(descriptor)
        os.unlink(name)
    took.sort()
    return took[len(took) // 10], took[len(took) // 2], took[len(took) * 9 // 10]


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--dir", type=Path, default=None,
                         help="a folder on the filesystem to measure (made if missing; "
                              "default: a temporary one in the project folder)")
    options.add_argument("--appends", type=int, default=1000)
    options.add_argument("--rounds", type=int, default=3)
    options.add_argument("--bytes", type=int, default=90, help="one entry (an insert's is ~90)")
    options.add_argument("--pause-us", type=float, default=300.0)
    arguments = options.parse_args()
    if arguments.appends < 10 or arguments.rounds < 1 or arguments.bytes < 1:
        options.error("--appends >= 10, --rounds >= 1, --bytes >= 1")
    if arguments.dir is None:
        with tempfile.TemporaryDirectory(prefix=".fsync-bench-", dir=ROOT) as folder:
            arguments.dir = Path(folder)
            run(arguments)
    else:
        arguments.dir.mkdir(parents=True, exist_ok=True)
        run(arguments)


def run(arguments: argparse.Namespace) -> None:
    pause_s = arguments.pause_us / 1e6
    buffer, source = bytearray(THRASH_BYTES), bytes(THRASH_BYTES)

    def nothing() -> None:
        pass

    def pause() -> None:
        time.sleep(pause_s)

    def thrash() -> None:
        buffer[:] = source   # (a copy larger than the CPU's caches: they hold it afterwards)

    ways = {
        "append, back to back": (nothing, False),
        "append, after a pause": (pause, False),
        "append, after the caches are emptied": (thrash, False),
        "overwrite, back to back": (nothing, True),
        "overwrite, after a pause": (pause, True),
    }
    figures: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ways}
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    load = os.getloadavg()
    print(f"start: {started}  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  "
          f"nproc {os.cpu_count()}  folder {arguments.dir.resolve()}")
    for round_number in range(arguments.rounds):
        order = list(ways)
        shift = round_number % len(order)   # each way goes first in turn
        for name in order[shift:] + order[:shift]:
            before, in_place = ways[name]
            figures[name].append(measure(arguments.dir, arguments.appends, arguments.bytes,
                                         before, in_place))
    print(f"one write of {arguments.bytes} bytes + fdatasync, {arguments.appends} per cell, "
          f"median of {arguments.rounds} rounds; /ref: p50 over the back-to-back append's")
    print(f"{'way':40s} {'p10 us':>8s} {'p50 us':>8s} {'p90 us':>8s} {'/ref':>6s}")
    reference = statistics.median(cell[1] for cell in figures["append, back to back"])
    for name, cells in figures.items():
        p10, p50, p90 = (statistics.median(cell[i] for cell in cells) for i in range(3))
        print(f"{name:40s} {p10:8.0f} {p50:8.0f} {p90:8.0f} {p50 / reference:6.2f}")


if __name__ == "__main__":
    main()
