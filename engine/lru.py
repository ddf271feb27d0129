"""A bounded mapping that forgets its least recently used entries.

The engine keeps several caches of this kind (parsed statements by text,
statement shapes, compiled expression code) and the nodes a few more; each
used to hand-roll the same `OrderedDict` moves. `LRUCache` is that one
pattern: `get` marks an entry as just used, `put` adds or replaces one and
drops the oldest beyond `maxsize`, returning what it dropped so that a
caller keeping a second index can forget those keys too.

Not thread-safe on its own (a plain `OrderedDict` underneath): a cache
shared between threads takes its own lock around these calls.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Generic, TypeVar, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")


class LRUCache(Generic[K, V]):
    """At most `maxsize` entries (0: keeps nothing); the least recently used go first."""

    def __init__(self, maxsize: int):
        if maxsize < 0:
            raise ValueError("maxsize must not be negative")
        self._maxsize = maxsize
        self._entries: OrderedDict[K, V] = OrderedDict()

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        """Whether `key` is cached (does not count as a use)."""
        return key in self._entries

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key, default=None):
        """The value of `key`, now the most recently used; `default` if absent.

        Values may be None: pass a sentinel `default` to tell None from absent.
        """
        entries = self._entries
        try:
            value = entries[key]
        except KeyError:
            return default
        entries.move_to_end(key)
        return value

    @overload
    def peek(self, key: K) -> V | None: ...
    @overload
    def peek(self, key: K, default: D) -> V | D: ...

    def peek(self, key, default=None):
        """The value of `key` without marking it as used; `default` if absent."""
        return self._entries.get(key, default)

    def put(self, key: K, value: V) -> list[tuple[K, V]]:
        """Store `value` under `key` as the most recently used; the evicted (key, value) pairs."""
        entries = self._entries
        entries[key] = value
        entries.move_to_end(key)
        evicted: list[tuple[K, V]] = []
        while len(entries) > self._maxsize:
            evicted.append(entries.popitem(last=False))
        return evicted

    @overload
    def pop(self, key: K) -> V | None: ...
    @overload
    def pop(self, key: K, default: D) -> V | D: ...

    def pop(self, key, default=None):
        """Remove `key` and return its value; `default` if absent."""
        return self._entries.pop(key, default)

    def clear(self) -> None:
        self._entries.clear()

    def items(self) -> Iterator[tuple[K, V]]:
        """The entries, least recently used first (a snapshot: safe to modify the cache meanwhile)."""
        return iter(list(self._entries.items()))
