"""Engine benchmark: the same data and queries on Tahiry and on sqlite3, side by side.

Run: .venv/bin/python bench/engine_bench.py [--sizes 10000 100000] [--repeat 3]

Tahiry runs in-process through the full `Session(Store(tmpdir))` (parse,
catalog, evaluate); the "eval" column is the evaluator alone on a pre-parsed
query, to show where the time goes. sqlite3 runs in memory without indexes.
Each figure is the best of --repeat runs, in milliseconds; ratio is
Tahiry (session) / sqlite3. Showing two sizes side by side exposes anything
quadratic (ratios should stay flat from one size to the next).

A second table times the parser alone (no cache hits) on three shapes: a
point query, a ~600-character query with joins, grouping and ordering, and
an INSERT of 10,000 literal rows through the literal-rows fast path and
through the full grammar.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.evaluation.executor import Limits  # noqa: E402
from engine.evaluation.query import evaluate_query  # noqa: E402
from engine.language.parser import StatementParser  # noqa: E402
from engine.session import Session  # noqa: E402
from engine.storage.store import Store  # noqa: E402

GROUPS = 100


def best_of(repeat: int, action) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best * 1000.0


def values_text(n: int) -> str:
    return ", ".join(f"({i}, 'anarana{i}', {i % GROUPS}, {(i * 7919) % 1000})" for i in range(n))


class Pair:
    """One Tahiry session and one sqlite3 connection holding the same data."""

    def __init__(self, root: str):
        limits = Limits(max_statement_chars=50_000_000, max_insert_rows=1_000_000)
        self.session = Session(Store(root), limits=limits)
        self.parser = StatementParser()
        self.sqlite = sqlite3.connect(":memory:")

    def tahiry(self, text: str):
        outcomes = self.session.execute(text)
        for outcome in outcomes:
            if not outcome.ok:
                raise RuntimeError(f"{text[:80]}: {outcome.message}")
        return outcomes

    def evaluator(self, text: str):
        select = self.parser.parse_select(text)
        catalog = self.session.executor.catalog("bench")
        return lambda: evaluate_query(select, catalog)

    def sql(self, text: str):
        return self.sqlite.execute(text).fetchall()


def prepare(pair: Pair, n: int) -> None:
    pair.tahiry("manamboara tahiry bench; ampiasao bench;")
    for name in ("t",):
        pair.tahiry(f"manamboara tabilao {name} (id ISA(null,null), anarana LAHATSORATRA(null,null), "
                    "grp ISA(null,null), v ISA(null,null));")
    pair.tahiry("manamboara tabilao a (id ISA(null,null), x ISA(null,null));")
    pair.tahiry("manamboara tabilao b (id ISA(null,null), y ISA(null,null));")
    pair.sql("CREATE TABLE t (id INTEGER, anarana TEXT, grp INTEGER, v INTEGER)")
    pair.sql("CREATE TABLE a (id INTEGER, x INTEGER)")
    pair.sql("CREATE TABLE b (id INTEGER, y INTEGER)")


def measure(n: int, repeat: int) -> dict[str, tuple[float, float | None, float]]:
    """operation -> (tahiry ms, evaluator-only ms or None, sqlite ms)."""
    results: dict[str, tuple[float, float | None, float]] = {}
    with tempfile.TemporaryDirectory() as root:
        pair = Pair(root)
        prepare(pair, n)
        text = values_text(n)
        tahiry_insert = best_of(1, lambda: pair.tahiry(f"manampia ao@ t sanda {text};"))
        sqlite_insert = best_of(1, lambda: pair.sql(f"INSERT INTO t VALUES {text}"))
        results[f"bulk insert {n} rows (1 statement)"] = (tahiry_insert, None, sqlite_insert)
        pair.tahiry("manampia ao@ a alaivo id, v ao@ t; manampia ao@ b alaivo id, grp ao@ t;")
        pair.sql("INSERT INTO a SELECT id, v FROM t")
        pair.sql("INSERT INTO b SELECT id, grp FROM t")
        half = n // 2
        queries = [
            ("full scan + filter",
             "alaivo * ao@ t rehefa v > 500 ary anarana != 'x'",
             "SELECT * FROM t WHERE v > 500 AND anarana != 'x'"),
            ("equi-join",
             "alaivo a.id, x, y ao@ a tonona b ka a.id = b.id",
             "SELECT a.id, x, y FROM a JOIN b ON a.id = b.id"),
            ("natural join",
             "alaivo * ao@ a tonona:natoraly@ b",
             "SELECT * FROM a NATURAL JOIN b"),
            (f"group into {GROUPS}: count/sum/avg",
             "alaivo grp, count(*), sum(v), avg(v) ao@ t vondrona grp",
             "SELECT grp, count(*), sum(v), avg(v) FROM t GROUP BY grp"),
            (f"union of two {half}-row results",
             f"alaivo id, anarana ao@ t rehefa id < {half} ankambana "
             f"alaivo id, anarana ao@ t rehefa id >= {half}",
             f"SELECT id, anarana FROM t WHERE id < {half} UNION "
             f"SELECT id, anarana FROM t WHERE id >= {half}"),
            ("order by v desc, id",
             "alaivo id, v ao@ t alaharo v midina, id",
             "SELECT id, v FROM t ORDER BY v DESC, id"),
        ]
        for label, tahiry_text, sql_text in queries:
            expected = len(pair.sql(sql_text))
            got = len(pair.tahiry(tahiry_text + ";")[0].relation.rows)
            if got != expected:
                raise RuntimeError(f"{label}: Tahiry {got} rows, sqlite3 {expected}")
            session_ms = best_of(repeat, lambda text=tahiry_text: pair.tahiry(text + ";"))
            evaluator_ms = best_of(repeat, pair.evaluator(tahiry_text))
            sqlite_ms = best_of(repeat, lambda text=sql_text: pair.sql(text))
            results[f"{label}"] = (session_ms, evaluator_ms, sqlite_ms)
        count = n // 10
        statements = [f"alaivo id, v + {i} ao@ t rehefa id = {i} ary v > 3" for i in range(count)]
        sql_statements = [f"SELECT id, v + {i} FROM tiny WHERE id = {i} AND v > 3"
                          for i in range(count)]
        pair.sql("CREATE TABLE tiny (id INTEGER, v INTEGER)")

        def parse_all():
            parser = StatementParser()  # fresh: no LRU hits
            for statement in statements:
                parser.parse(statement)

        def sqlite_all():
            for statement in sql_statements:
                pair.sqlite.execute(statement)

        results[f"parse {count} short statements"] = (
            best_of(1, parse_all), None, best_of(1, sqlite_all))
    return results


POINT_QUERY = "alaivo * ao@ t rehefa id = 123"
LONG_QUERY = (
    "alaivo m.anarana antso anarana, count(n.taranja) antso isa, avg(n.naoty) antso salanisa, "
    "sum(n.naoty * 2 + 1) antso totaly, max(n.naoty) ao@ mpianatra m "
    "tonona naoty n ka m.id = n.mpianatra_id tonona:avia@ kilasy k ka k.id = m.kilasy_id "
    "rehefa n.naoty >= 10 ary (m.taona > 2000 na m.anarana != 'Rabe') ary k.anarana dia tsy null "
    "ary n.taranja != 'fanatanjahantena' ary m.id < 100000 ary n.naoty + 1 > 3 * 2 "
    "ary (n.naoty <= 20 na n.naoty dia null) ary m.taona - 1990 < 40 ary k.id != -1 "
    "vondrona m.anarana, k.anarana, m.taona alaharo isa midina, anarana miakatra, salanisa midina "
    "fetra 10 20")


def parse_figures(repeat: int) -> list[tuple[str, float]]:
    """(label, microseconds per parse), best of `repeat` rounds."""
    insert = "manampia ao@ t sanda " + ", ".join(
        f"({i}, 'anarana{i}', {i % 100}, {(i * 7919) % 1000}, -{i}.5)" for i in range(10_000))
    parser = StatementParser(cache_size=0)
    cases = [
        (f"point query ({len(POINT_QUERY)} chars)", parser.parse, POINT_QUERY, 2000),
        (f"joins/grouping/ordering ({len(LONG_QUERY)} chars)", parser.parse, LONG_QUERY, 200),
        ("INSERT 10k literal rows, fast path", parser.parse, insert, 1),
        ("INSERT 10k literal rows, full grammar", parser.parse_with_grammar, insert, 1),
    ]
    figures = []
    for label, parse, text, count in cases:
        def run(parse=parse, text=text, count=count):
            for _ in range(count):
                parse(text)
        figures.append((label, best_of(repeat, run) * 1000.0 / count))
    return figures


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    arguments.add_argument("--repeat", type=int, default=3)
    options = arguments.parse_args()
    by_size = {n: measure(n, options.repeat) for n in options.sizes}
    labels = [[label for label in results] for results in by_size.values()]
    header = f"{'operation':38}" + "".join(
        f" | {f'{n} rows: tahiry  eval  sqlite3  ratio':>40}" for n in options.sizes)
    print(header)
    print("-" * len(header))
    for row in range(len(labels[0])):
        label = labels[0][row].replace(f" {options.sizes[0]} ", " N ")
        label = label.replace(f"{options.sizes[0] // 10} short", "N/10 short")
        label = label.replace(f"{options.sizes[0] // 2}-row", "N/2-row")
        line = f"{label:38}"
        for n in options.sizes:
            tahiry_ms, eval_ms, sqlite_ms = list(by_size[n].values())[row]
            shown_eval = f"{eval_ms:8.1f}" if eval_ms is not None else f"{'-':>8}"
            ratio = tahiry_ms / sqlite_ms if sqlite_ms else float("inf")
            line += f" | {tahiry_ms:9.1f} {shown_eval} {sqlite_ms:8.1f} {ratio:7.1f}x"
        print(line)
    print("\nms, best of", options.repeat, "(inserts and parsing: one run);"
          " ratio = tahiry session / sqlite3")
    print(f"\n{'parser alone (no cache)':48} {'us/statement':>14}")
    for label, micros in parse_figures(options.repeat):
        print(f"{label:48} {micros:14.1f}")


if __name__ == "__main__":
    main()
