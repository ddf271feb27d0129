"""The cyclic collector is paused while many rows are built (engine/evaluation/collector.py).

Counted through `gc.callbacks`: building an equality index or a join's rows
allocates one list per row, which would start a collection every few hundred
allocations (dozens here), each rescanning every live row. Paused, at most one
runs: the first allocation after the collector is back on takes the new
objects in one pass.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from engine.evaluation.catalog import EqualityIndex
from engine.evaluation.collector import collector_paused
from tests.engine.sessionkit import prepared_session, rows


@contextmanager
def collections_counted() -> Iterator[list[int]]:
    """The number of collections started inside the block, in a one-item list."""
    started = [0]

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] += 1

    gc.collect()   # the allocation count starts from nothing: only the block's own count
    gc.callbacks.append(count)
    try:
        yield started
    finally:
        gc.callbacks.remove(count)


@pytest.fixture
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_an_equality_index_over_distinct_values_is_built_without_a_collection(collector_on):
    rows = [[number, f"n{number}"] for number in range(30_000)]
    with collections_counted() as started:
        index = EqualityIndex.build(rows, 0)
    assert started[0] <= 1
    assert gc.isenabled()
    assert index.get(29_999) == [rows[29_999]] and index.get(30_000) is None


def test_a_join_of_many_rows_runs_without_a_collection(collector_on, tmp_path_factory):
    session = prepared_session(tmp_path_factory, "join", (
        "manamboara tahiry d; ampiasao d; manamboara tabilao a (x ISA(null,null));"
        "manamboara tabilao b (y ISA(null,null));"
        f"manampia ao@ a sanda {', '.join(f'({n})' for n in range(200))};"
        f"manampia ao@ b sanda {', '.join(f'({n})' for n in range(100))};"))
    with collections_counted() as started:
        joined = rows(session, "alaivo * ao@ a tonona b;")
    assert started[0] <= 1
    assert gc.isenabled()
    assert len(joined) == 20_000


def test_the_collector_stays_off_when_it_was_off():
    was = gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        if was:
            gc.enable()


def test_the_collector_is_back_on_after_an_error(collector_on):
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a query failed")
    assert gc.isenabled()
