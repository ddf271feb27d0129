"""Storage and DML figures through the Session (prints, asserts nothing).

    .venv/bin/python bench/storage_bench.py

Single-row inserts into a 1,000-row table (whole-file rewrite + fsync),
reads served from the decoded-object cache, and a 100k-row table: write,
first decode, cached reads, single-row inserts.
"""

import tempfile
import time

from engine.session import Session
from engine.storage.store import Store


def timed(label, count, action):
    start = time.perf_counter()
    for _ in range(count):
        action()
    elapsed = time.perf_counter() - start
    print(f"{label:48s} {count / elapsed:10.0f}/s  {elapsed / count * 1000:8.3f} ms each")


def once(label, action):
    start = time.perf_counter()
    action()
    print(f"{label:48s} {(time.perf_counter() - start) * 1000:10.1f} ms")


def check(outcomes):
    for outcome in outcomes:
        if not outcome.ok:
            raise SystemExit(outcome.message)


def main():
    with tempfile.TemporaryDirectory() as data:
        session = Session(Store(data))
        check(session.execute(
            "manamboara tahiry b; ampiasao b; manamboara tabilao t (id ISA(null,null),"
            " anarana LAHATSORATRA(null,null), naoty ISA(0,20), daty DATY,"
            " kilasy TANISA('L1','L2'));"))
        values = ", ".join(f"({i}, 'anarana{i}', {i % 21}, '2024-01-{i % 28 + 1:02d}', 'L1')"
                           for i in range(1000))
        once("bulk insert of 1,000 rows (one statement)",
             lambda: check(session.execute(f"manampia ao@ t sanda {values};")))
        counter = iter(range(10**9))
        timed("single-row insert into a ~1,000-row table", 200,
              lambda: check(session.execute(
                  f"manampia ao@ t sanda ({next(counter)}, 'x', 1, '2024-02-02', 'L2');")))
        timed("alaivo count(*) on that table", 200,
              lambda: check(session.execute("alaivo count(*) ao@ t;")))
        check(session.execute("manamboara tabilao big (id ISA(null,null), a LAHATSORATRA(null,null),"
                              " b ISA(null,null), c DATY, d LAHATSORATRA(null,null));"))
        columns = session.store.read("b", "table", "big")["columns"]
        rows = [[i, f"name{i}", i * 1.5, "2024-01-01", "xxxxxxxxxx"] for i in range(100_000)]
        once("store.write of a 100k-row table",
             lambda: session.store.write("b", "table", "big", {"columns": columns, "rows": rows}))
        fresh = Session(Store(data))
        check(fresh.execute("ampiasao b;"))
        once("first read of the 100k-row table (decode)",
             lambda: check(fresh.execute("alaivo count(*) ao@ big;")))
        timed("next reads (cache hit, stat only)", 20,
              lambda: check(fresh.execute("alaivo count(*) ao@ big;")))
        timed("single-row insert into the 100k-row table", 10,
              lambda: check(fresh.execute(
                  "manampia ao@ big sanda (1, 'x', 2, '2024-01-01', 'y');")))


if __name__ == "__main__":
    main()
