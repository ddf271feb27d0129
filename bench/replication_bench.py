"""Replication lag: from a write acknowledged on m1 to the file in place on m2.

Starts a `Replicator` in-process on two temporary data directories and writes
table files into the first one through the engine's `Store` (atomic, fsync'd,
exactly as a server writes them). Two runs:

- sequential: write, then wait until the peer's copy has the new counter,
  then the next write. Measured here, end to end (stat polling every 0.2 ms,
  which adds up to that much).
- paced: a write every `--interval-ms` without waiting, spread over several
  tables; lag from the replicator's own figures (rename event -> copy in
  place), which include queueing behind other copies.
- burst: `--writes` writes of one table as fast as possible: how many copies
  coalescing saves, and the lag of the last write.
- load (with `--load N`): N writer threads, each with its own `Store` on
  m1 that knows m2 as its peer (so its commits take both directories' write
  locks and fence, as a server's do), each rewriting its own table as fast
  as it can, as a class of N students writing at once does; lag from the
  replicator's own figures, with where the time went (queue wait, lock
  wait, copy).
- server (with `--via-server`): two real `nodes.server` processes; single-row
  inserts over m1's wire, lag from the acknowledgement to m2's file in place.

    .venv/bin/python bench/replication_bench.py [--writes 500] [--rows 100] [--via-server]
    .venv/bin/python bench/replication_bench.py --load 10 [--writes 1000]   (load mode only)
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchkit import WireConnection, free_port, wait_listening  # noqa: E402

from engine.storage.peers import FixedPeers  # noqa: E402
from engine.storage.store import Store  # noqa: E402
from supervisor.replication import Replicator, percentile  # noqa: E402

COLUMNS = [{"name": "id", "domain": [{"type": "ISA", "min": None, "max": None}]},
           {"name": "name", "domain": [{"type": "LAHATSORATRA", "min": None, "max": None}]}]


def table_body(rows: int, version: int) -> dict:
    return {"columns": COLUMNS, "rows": [[i, f"row {i} v{version}"] for i in range(rows)]}


def peer_change(path: Path, last_inode: tuple | int) -> tuple | int:
    """The peer copy's signature once it changed, else `last_inode`: the snapshot's
    inode and the size of the journal beside it (a format 2 write appends to the
    journal, leaving the snapshot alone; a format 1 write renames a new snapshot)."""
    try:
        inode = os.stat(path).st_ino
    except FileNotFoundError:
        return last_inode
    try:
        journal = os.stat(path.with_suffix(".journal")).st_size
    except FileNotFoundError:
        journal = -1
    return (inode, journal)


def describe(label: str, values_ms: list[float]) -> str:
    ordered = sorted(values_ms)
    if not ordered:
        return f"{label}: no samples"
    return (f"{label}: n={len(ordered)} p50={percentile(ordered, 0.5):.2f} ms "
            f"p99={percentile(ordered, 0.99):.2f} ms max={ordered[-1]:.2f} ms")


def sequential_run(store: Store, peer: Path, writes: int, rows: int) -> list[float]:
    lags = []
    target = peer / "bench" / "tables" / "seq.json"
    inode = peer_change(target, -1)
    for version in range(writes):
        store.write("bench", "table", "seq", table_body(rows, version))
        acknowledged = time.perf_counter()
        deadline = acknowledged + 5.0
        while (new_inode := peer_change(target, inode)) == inode:
            if time.perf_counter() > deadline:
                raise SystemExit(f"write {version} never reached the peer")
            time.sleep(0.0002)
        lags.append((time.perf_counter() - acknowledged) * 1000)
        inode = new_inode
    return lags


def paced_run(store: Store, replicator: Replicator, writes: int, rows: int,
              interval_ms: float) -> None:
    for version in range(writes):
        store.write("bench", "table", f"paced{version % 8}", table_body(rows, version))
        time.sleep(interval_ms / 1000)
    replicator.wait_idle(10)


def burst_run(store: Store, replicator: Replicator, peer: Path, writes: int, rows: int) -> None:
    target = peer / "bench" / "tables" / "burst.json"
    start = time.perf_counter()
    for version in range(writes):
        store.write("bench", "table", "burst", table_body(rows, version))
    written = time.perf_counter()
    last = store.read("bench", "table", "burst")["change"]
    while True:
        try:
            if orjson.loads(target.read_bytes())["change"] == last:
                break
        except (FileNotFoundError, orjson.JSONDecodeError):
            pass
        time.sleep(0.0002)
    done = time.perf_counter()
    replicator.wait_idle(10)
    copies = replicator.stats()["m2"]["files_copied"]
    print(f"burst: {writes} writes in {(written - start) * 1000:.0f} ms -> {copies} copies; "
          f"last write on the peer {(done - written) * 1000:.2f} ms after it was acknowledged")


def load_run(scratch: Path, writers: int, writes: int, rows: int) -> None:
    """`writers` threads, `writes` writes in all, through peer-aware stores into m1."""
    first, second = scratch / "load" / "m1", scratch / "load" / "m2"
    Store(first).create_database("bench")
    replicator = Replicator({"m1": first, "m2": second}, resync_interval_s=0, lag_window=writes)
    replicator.sync_all()
    replicator.start()
    errors: list[str] = []

    def writer(number: int) -> None:
        store = Store(first, peers=FixedPeers({"m2": second}))
        try:
            for version in range(writes // writers):
                store.write("bench", "table", f"student{number}", table_body(rows, version))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(f"writer {number}: {error}")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    start = time.perf_counter()
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        replicator.wait_idle(30)
        stats = replicator.stats()["m2"]
        done = (writes // writers) * writers
        print(f"load: {writers} writers, {done} writes of {rows}-row tables in "
              f"{elapsed * 1000:.0f} ms ({done / elapsed:.0f}/s) -> {stats['files_copied']} "
              f"copies, conflicts={len(stats['conflicts'])}, errors={errors[:3]}")
        print(describe(f"load {writers} writers, replicator's lag", replicator.lag_samples("m2")))
        for phase, values in replicator.timings().items():
            print(describe(f"  {phase}", values))
    finally:
        replicator.stop()


def server_run(scratch: Path, writes: int) -> None:
    data = {name: scratch / "servers" / name for name in ("m1", "m2")}
    replicator = Replicator(data, resync_interval_s=0, lag_window=writes)
    replicator.start()
    processes = []
    try:
        ports = {}
        for name, path in data.items():
            ports[name] = free_port()
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "nodes.server", "--id", name, "--host", "127.0.0.1",
                 "--port", str(ports[name]), "--data", str(path)],
                cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": str(ROOT)}))
        for port in ports.values():
            wait_listening(port)
        with WireConnection(ports["m1"], timeout_s=10) as connection:

            def execute(text: str) -> None:
                response = connection.request(text)
                if not response.ok:
                    raise SystemExit(f"{text}: {response.message}")

            for statement in ("manamboara tahiry bench;", "ampiasao bench;",
                              "manamboara tabilao t ( a ISA(null,null) );"):
                execute(statement)
            target = data["m2"] / "bench" / "tables" / "t.json"
            wait_for_change(target, -1)
            inode = peer_change(target, -1)
            lags = []
            for number in range(writes):
                execute(f"manampia ao@ t sanda ({number});")
                acknowledged = time.perf_counter()
                inode = wait_for_change(target, inode)
                lags.append((time.perf_counter() - acknowledged) * 1000)
        print(describe("real servers, insert acknowledged by m1 -> m2's file in place", lags))
        print(describe("real servers, replicator's own lag", replicator.lag_samples("m2")))
        for phase, values in replicator.timings().items():
            print(describe(f"  {phase}", values))
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        replicator.stop()


def wait_for_change(path: Path, inode: tuple | int) -> tuple | int:
    deadline = time.perf_counter() + 5
    while (new_inode := peer_change(path, inode)) == inode:
        if time.perf_counter() > deadline:
            raise SystemExit(f"{path} never changed")
        time.sleep(0.0002)
    return new_inode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--interval-ms", type=float, default=2.0)
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="only the load run: N writer threads at once")
    parser.add_argument("--via-server", action="store_true",
                        help="also measure through two real server processes")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if options.load > 0:
        with tempfile.TemporaryDirectory() as scratch:
            load_run(Path(scratch), options.load, options.writes, options.rows)
        return
    with tempfile.TemporaryDirectory() as scratch:
        first, second = Path(scratch) / "m1", Path(scratch) / "m2"
        store = Store(first)
        store.create_database("bench")
        replicator = Replicator({"m1": first, "m2": second}, resync_interval_s=0,
                                lag_window=options.writes)
        replicator.sync_all()
        replicator.start()
        try:
            print(f"replication bench: {options.writes} writes of a {options.rows}-row table")
            lags = sequential_run(store, second, options.writes, options.rows)
            print(describe("sequential, write acknowledged -> peer file in place", lags))
            replicator.wait_idle(10)
            print(describe("sequential, replicator's own lag (rename event -> in place)",
                           replicator.lag_samples("m2")))
            replicator.remove_server("m2")
            replicator.add_server("m2", second)  # fresh lag window
            paced_run(store, replicator, options.writes, options.rows, options.interval_ms)
            stats = replicator.stats()["m2"]
            print(describe(f"paced every {options.interval_ms} ms over 8 tables, replicator's lag",
                           replicator.lag_samples("m2")))
            print(f"paced: {options.writes} writes -> {stats['files_copied']} copies, "
                  f"conflicts={len(stats['conflicts'])}")
            replicator.remove_server("m2")
            replicator.add_server("m2", second)
            burst_run(store, replicator, second, options.writes, options.rows)
        finally:
            replicator.stop()
        if options.via_server:
            server_run(Path(scratch), options.writes)


if __name__ == "__main__":
    main()
