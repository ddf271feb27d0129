"""The proxy's response cache alone: TTL, LRU, byte cap, invalidation, counters (clock injected)."""

import pytest

from nodes.proxycache.cache import ResponseCache
from nodes.proxycache.node import READ, USE, WRITE, statement_kind
from tests.conftest import ManualClock


@pytest.fixture
def clock():
    return ManualClock()


def test_hit_within_ttl_and_miss_after(clock):
    cache = ResponseCache(ttl_ms=3000, max_entries=10, clock=clock)
    key = ("db", "alaivo * ao@ t")
    assert cache.get(key) is None
    assert cache.put(key, b"response")
    clock.now += 2.999
    assert cache.get(key) == b"response"
    clock.now += 0.002
    assert cache.get(key) is None
    status = cache.status()
    assert (status["hits"], status["misses"], status["expirations"], status["entries"]) == (1, 2, 1, 0)


def test_lru_eviction_at_max_entries(clock):
    cache = ResponseCache(ttl_ms=1000, max_entries=2, clock=clock)
    cache.put(("d", "a"), b"A")
    cache.put(("d", "b"), b"B")
    assert cache.get(("d", "a")) == b"A"      # a is now the most recently used
    cache.put(("d", "c"), b"C")
    assert ("d", "b") not in cache
    assert cache.get(("d", "a")) == b"A" and cache.get(("d", "c")) == b"C"
    assert cache.stats.evictions == 1 and len(cache) == 2


def test_byte_cap_evicts_and_refuses_oversized(clock):
    cache = ResponseCache(ttl_ms=1000, max_entries=100, max_bytes=10, clock=clock)
    cache.put(("d", "a"), b"12345")
    cache.put(("d", "b"), b"12345")
    cache.put(("d", "c"), b"123")
    assert ("d", "a") not in cache and cache.bytes == 8
    assert not cache.put(("d", "big"), b"x" * 11)
    assert cache.stats.refused == 1


def test_replacing_an_entry_keeps_the_byte_count_right(clock):
    cache = ResponseCache(ttl_ms=1000, max_entries=5, clock=clock)
    cache.put(("d", "a"), b"1234")
    cache.put(("d", "a"), b"12")
    assert cache.bytes == 2 and len(cache) == 1


def test_databases_are_separate_keys(clock):
    cache = ResponseCache(ttl_ms=1000, max_entries=5, clock=clock)
    cache.put(("db1", "alaivo * ao@ t"), b"one")
    assert cache.get(("db2", "alaivo * ao@ t")) is None
    assert cache.get(("db1", "alaivo * ao@ t")) == b"one"


def test_invalidate_all_counts_and_bumps_generation(clock):
    cache = ResponseCache(ttl_ms=1000, max_entries=5, clock=clock)
    cache.put(("d", "a"), b"A")
    cache.put(("d", "b"), b"B")
    generation = cache.generation
    assert cache.invalidate_all() == 2
    assert len(cache) == 0 and cache.bytes == 0
    assert cache.stats.invalidations == 1 and cache.stats.invalidated_entries == 2
    # A response fetched before the invalidation must not be stored after it.
    assert not cache.put(("d", "a"), b"stale", generation=generation)
    assert cache.put(("d", "a"), b"fresh", generation=cache.generation)


def test_fine_invalidation_by_table_and_opaque_entries(clock):
    cache = ResponseCache(ttl_ms=1000, max_entries=10, clock=clock)
    cache.put(("d", "reads t"), b"1", tags=["t"])
    cache.put(("d", "reads u"), b"2", tags=["u"])
    cache.put(("d", "reads a view"), b"3", tags=["v"], opaque=True)
    cache.put(("e", "reads t elsewhere"), b"4", tags=["t"])
    assert cache.invalidate_tables("d", ["t"]) == 2
    assert ("d", "reads u") in cache and ("e", "reads t elsewhere") in cache
    assert ("d", "reads t") not in cache and ("d", "reads a view") not in cache
    assert cache.invalidate_database("e") == 1


def test_zero_entries_or_zero_ttl_caches_nothing(clock):
    assert not ResponseCache(ttl_ms=1000, max_entries=0, clock=clock).put(("d", "a"), b"A")
    assert not ResponseCache(ttl_ms=0, max_entries=5, clock=clock).put(("d", "a"), b"A")
    with pytest.raises(ValueError):
        ResponseCache(ttl_ms=-1, max_entries=5)


def test_remove_expired(clock):
    cache = ResponseCache(ttl_ms=1000, max_entries=5, clock=clock)
    cache.put(("d", "a"), b"A")
    clock.now += 2
    cache.put(("d", "b"), b"B")
    assert cache.remove_expired() == 1 and len(cache) == 1


@pytest.mark.parametrize("text, kind", [
    ("alaivo * ao@ t", READ), ("ALAIVO 1", READ), ("asehoy ny tabilao", READ),
    ("ampiasao db", USE), ("manampia ao@ t sanda (1)", WRITE), ("alaivox", WRITE),
    ("ravao ny tahiry db", WRITE), ("", WRITE)])
def test_statement_kind_by_first_keyword(text, kind):
    assert statement_kind(text) == kind


def test_reads_sent_soon_after_another_connections_write_are_not_stored(clock):
    """Replication lag: such a read may come from a server without the write."""
    cache = ResponseCache(ttl_ms=3000, max_entries=10, clock=clock, settle_ms=500)
    writer, reader, third = object(), object(), object()
    cache.note_write("db", writer)
    clock.now += 0.1
    fetched_at = clock.now
    assert not cache.put(("db", "alaivo * ao@ t"), b"maybe stale", fetched_at=fetched_at,
                         reader=reader)
    # The writer's own session reads where its writes are: stored.
    assert cache.put(("db", "alaivo * ao@ t"), b"fresh", fetched_at=fetched_at, reader=writer)
    # Another database was not written.
    assert cache.put(("other", "alaivo * ao@ t"), b"x", fetched_at=fetched_at, reader=reader)
    # Two writers: the second one's read may lack the first one's write.
    cache.note_write("db", third)
    assert not cache.put(("db", "alaivo 1"), b"x", fetched_at=clock.now, reader=third)
    assert not cache.put(("db", "alaivo 1"), b"x", fetched_at=clock.now, reader=writer)
    clock.now += 0.45  # the first write has settled, not the second
    assert cache.put(("db", "alaivo 2"), b"x", fetched_at=clock.now, reader=third)
    assert not cache.put(("db", "alaivo 3"), b"x", fetched_at=clock.now, reader=writer)
    clock.now += 0.1
    assert cache.put(("db", "alaivo 4"), b"x", fetched_at=clock.now, reader=reader)
    # A read sent before the window ended but answered after it is still refused.
    cache.note_write("db", writer)
    sent = clock.now
    clock.now += 2
    assert not cache.put(("db", "alaivo 5"), b"x", fetched_at=sent, reader=reader)
    assert cache.status()["settle_ms"] == 500


def test_without_settle_every_read_is_stored(clock):
    cache = ResponseCache(ttl_ms=3000, max_entries=10, clock=clock)
    cache.note_write("db", object())
    assert cache.put(("db", "alaivo 1"), b"x", fetched_at=clock.now, reader=object())


def test_an_accounts_entries_are_its_own_and_go_with_rights_that_changed(clock):
    cache = ResponseCache(ttl_ms=1000, max_entries=10, clock=clock)
    assert cache.put(("db", "alaivo * ao@ t", "ana"), b"ana's", rights='{"m1":3}')
    assert cache.put(("db", "alaivo * ao@ t"), b"anonymous")
    assert cache.get(("db", "alaivo * ao@ t", "bob")) is None
    entry = cache.get_entry(("db", "alaivo * ao@ t", "ana"))
    assert entry is not None and entry.value == b"ana's" and entry.rights == '{"m1":3}'
    assert cache.drop_rights_other_than('{"m1":4}') == 1
    assert cache.get(("db", "alaivo * ao@ t", "ana")) is None
    assert cache.get(("db", "alaivo * ao@ t")) == b"anonymous"   # no account, no rights
    assert cache.status()["stale_rights"] == 1
