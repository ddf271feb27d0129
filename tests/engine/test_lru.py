"""engine.lru: the bounded least-recently-used mapping the caches share."""

from __future__ import annotations

import pytest

from engine.lru import LRUCache


def test_put_beyond_maxsize_evicts_the_least_recently_used_and_returns_it():
    cache: LRUCache[str, int] = LRUCache(2)
    assert cache.put("a", 1) == []
    cache.put("b", 2)
    assert cache.get("a") == 1                  # "a" is now the newest
    assert cache.put("c", 3) == [("b", 2)]
    assert "b" not in cache and "a" in cache and "c" in cache
    assert len(cache) == 2 and cache.maxsize == 2


def test_peek_and_contains_do_not_count_as_a_use():
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.peek("a") == 1 and "a" in cache
    assert cache.put("c", 3) == [("a", 1)]


def test_replacing_a_key_makes_it_the_newest_without_growing():
    cache: LRUCache[str, int] = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.put("a", 10) == []
    assert cache.put("c", 3) == [("b", 2)]
    assert list(cache.items()) == [("a", 10), ("c", 3)]


def test_none_values_are_told_from_absent_keys_by_a_sentinel_default():
    cache: LRUCache[str, None] = LRUCache(1)
    missing = object()
    assert cache.get("a", missing) is missing
    cache.put("a", None)
    assert cache.get("a", missing) is None


def test_pop_clear_and_a_zero_maxsize_that_keeps_nothing():
    cache: LRUCache[str, int] = LRUCache(3)
    cache.put("a", 1)
    assert cache.pop("a") == 1 and cache.pop("a", -1) == -1
    cache.put("b", 2)
    cache.clear()
    assert len(cache) == 0
    nothing: LRUCache[str, int] = LRUCache(0)
    assert nothing.put("a", 1) == [("a", 1)] and len(nothing) == 0
    with pytest.raises(ValueError):
        LRUCache(-1)
