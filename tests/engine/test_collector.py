"""Python's cyclic collector and big tables (engine/collector.py).

- Paused while many rows are built, counted through `gc.callbacks`:
  building an equality index or a join's rows allocates one list per row,
  which would start a collection every few hundred allocations (dozens
  here), each rescanning every live row. Paused, at most one runs: the first
  allocation after the collector is back on takes the new objects in one pass.
- A big table loaded from disk and a big equality index are frozen once
  built: no later collection scans them (`gc.get_objects` lists what the
  collections scan; frozen objects are not in it).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from engine.collector import collector_paused
from engine.evaluation import catalog
from engine.evaluation.catalog import EqualityIndex
from engine.session import Session
from engine.storage import cached_reads
from engine.storage.store import Store
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


def scanned_ids() -> set[int]:
    """The ids of the objects the collector's generations hold (frozen ones are not there)."""
    return {id(found) for found in gc.get_objects()}


def test_a_big_equality_index_is_frozen_once_built(monkeypatch):
    monkeypatch.setattr(catalog, "LASTING_ROWS", 1_000)
    rows = [[number % 700, "x"] for number in range(2_000)]
    frozen_before = gc.get_freeze_count()
    index = EqualityIndex.build(rows, 0)
    buckets = [index.get(value) for value in range(700)]
    assert gc.get_freeze_count() >= frozen_before + len(buckets)
    scanned = scanned_ids()
    assert not any(id(bucket) in scanned for bucket in buckets)
    small = EqualityIndex.build(rows[:999], 0)   # below the mark: left to the collector
    assert id(small.get(5)) in scanned_ids()


def test_a_big_table_loaded_from_disk_is_frozen_with_its_journal_rows(tmp_path, monkeypatch):
    writer = Session(Store(tmp_path / "data"))
    for text in ("manamboara tahiry d", "ampiasao d", "manamboara tabilao t (a ISA(null,null))",
                 "manampia ao@ t sanda " + ", ".join(f"({n})" for n in range(3_000)),
                 "manampia ao@ t sanda (-1)"):   # a journal entry beside the snapshot
        assert writer.execute_one(text).ok
    monkeypatch.setattr(cached_reads, "LASTING_BYTES", 1_000)
    reader = Session(Store(tmp_path / "data"))   # loads from disk
    assert reader.execute_one("ampiasao d").ok
    answer = reader.execute_one("alaivo * ao@ t rehefa a = -1")
    assert answer.ok and answer.relation.rows == [[-1]]
    loaded = reader.store.read("d", "table", "t")["rows"]
    assert len(loaded) == 3_001
    scanned = scanned_ids()
    assert not any(id(row) in scanned for row in loaded)
