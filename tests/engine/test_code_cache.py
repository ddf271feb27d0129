"""engine.evaluation.code_cache: compiled lambdas reused by source text, bounded, bound to each namespace."""

from __future__ import annotations

from engine.evaluation.code_cache import CodeCache
from engine.session import Session
from engine.storage.store import Store


def test_one_compile_per_source_and_each_namespace_gets_its_own_function():
    codes = CodeCache(max_entries=4)
    add_one = codes.function("lambda r: r + c1", {"c1": 1})
    add_ten = codes.function("lambda r: r + c1", {"c1": 10})
    assert (add_one(5), add_ten(5)) == (6, 15)
    assert (codes.misses, codes.hits, len(codes)) == (1, 1, 1)


def test_least_recently_used_sources_go_beyond_the_bound():
    codes = CodeCache(max_entries=2)
    first = codes.code("lambda r: 1")
    codes.code("lambda r: 2")
    assert codes.code("lambda r: 1") is first          # used again: now the newest
    codes.code("lambda r: 3")                           # evicts "lambda r: 2"
    assert len(codes) == 2
    assert codes.code("lambda r: 1") is first
    misses = codes.misses
    codes.code("lambda r: 2")
    assert codes.misses == misses + 1


def test_statements_of_one_shape_share_code_and_keep_their_own_values(tmp_path):
    codes = CodeCache()
    session = Session(Store(tmp_path / "data", durable=False), codes=codes)
    session.execute("manamboara tahiry db; ampiasao db; "
                    "manamboara tabilao t (a ISA(null,null), b LAHATSORATRA(null,null));"
                    "manampia ao@ t sanda (1, 'x'), (2, 'y'), (3, 'x');")
    answers = [session.execute(f"alaivo a ao@ t rehefa b = '{word}' ary a > {low};")[0].relation.rows
               for word, low in (("x", 0), ("x", 1), ("y", 0), ("z", 0))]
    assert answers == [[[1], [3]], [[3]], [[2]], []]
    assert codes.hits > 0
