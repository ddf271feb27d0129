"""The proxy cache's store of responses: TTL, LRU by entry count and by bytes, counters.

Pure and synchronous (no sockets, no clock of its own: `clock` is injected,
so tests control time). Keys are (current database, normalised statement)
or, for a connection logged in to an account, (current database,
normalised statement, account): one account's answer is never another's.
Values are the raw response bytes replayed to clients.

An entry of an account also keeps `rights`, the servers' answer to
`.rights;` asked right before the statement was: the proxy serves it only
while that answer is unchanged (`get_entry` gives both; `drop_rights_other_than`
drops every entry made under other rights). See nodes/proxycache/node.py.

Each entry may carry `tags` (the names its statement reads) for the optional
fine invalidation: `invalidate_tables(db, names)` drops only entries of that
database whose tags meet `names`, plus the entries marked `opaque` (their
dependencies are unknown, e.g. they read a view).

A `generation` counter increases with every invalidation; a response fetched
while an invalidation happened must not be stored (`put(..., generation=g)`
refuses it), or a read racing a write could cache pre-write data.

Replication lag (`settle_ms`): behind a balancer, a write is acknowledged by
the object's owner and reaches the other servers a few milliseconds later.
A read another connection sends right after the write may be answered by a
server that does not have it yet: fine for that one answer, but cached it
would be served to every connection, the writer included, for the whole
TTL. So the proxy notes each write (`note_write(database, writer)`) and a
response is stored (`put(..., fetched_at=t, reader=r)`) only if no *other*
connection wrote in its database within `settle_ms` before it was sent. The
writer's own reads are still stored: the balancer routes a session's reads
to a server holding that session's writes (nodes/balancer/freshness.py), so its
answer includes them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engine.lru import LRUCache

CacheKey = tuple[str | None, str] | tuple[str | None, str, str]
# Databases whose latest writers are remembered for settle_ms (oldest first out).
MAX_REMEMBERED_DATABASES = 4096


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0            # dropped to respect max_entries / max_bytes
    expirations: int = 0          # found past their TTL
    invalidations: int = 0        # invalidation events
    invalidated_entries: int = 0  # entries dropped by them
    refused: int = 0              # too big, or raced an invalidation
    stale_rights: int = 0         # a hit whose rights changed since: dropped, read again


_NO_TAGS: frozenset[str] = frozenset()


@dataclass
class _Entry:
    value: bytes
    expires_at: float
    tags: frozenset[str] = field(default_factory=frozenset)
    opaque: bool = False
    rights: str | None = None     # the `.rights;` answer it was read under (accounts)


class ResponseCache:
    """TTL + LRU cache of response bytes with a byte budget."""

    def __init__(self, ttl_ms: float, max_entries: int, max_bytes: int = 64 << 20,
                 clock: Callable[[], float] = time.monotonic, settle_ms: float = 0.0):
        if ttl_ms < 0 or max_entries < 0 or max_bytes < 0 or settle_ms < 0:
            raise ValueError("ttl_ms, max_entries, max_bytes and settle_ms must not be negative")
        self.ttl_s = ttl_ms / 1000.0
        self.settle_s = settle_ms / 1000.0
        # database -> the two connections that wrote there last, latest first:
        # [(writer, acknowledged at), (another writer, its latest write)].
        # Enough to answer "did anyone but the reader write since t?" exactly.
        self._latest_writers: LRUCache[str | None, list[tuple[object, float]]] = LRUCache(
            MAX_REMEMBERED_DATABASES)
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self.stats = CacheStats()
        self.generation = 0
        self.bytes = 0
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: CacheKey) -> bool:
        entry = self._entries.get(key)
        return entry is not None and entry.expires_at > self.clock()

    def get(self, key: CacheKey) -> bytes | None:
        """The cached response if present and fresh (counts a hit or a miss)."""
        entry = self.get_entry(key)
        return entry.value if entry is not None else None

    def get_entry(self, key: CacheKey) -> _Entry | None:
        """`get`, with the entry (its `rights` too)."""
        entry = self._entries.get(key)
        if entry is not None:
            if entry.expires_at > self.clock():
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return entry
            self._remove(key)
            self.stats.expirations += 1
        self.stats.misses += 1
        return None

    def drop_rights_other_than(self, rights: str) -> int:
        """Drop the accounts' entries read under other rights than `rights` (a hit found them stale)."""
        self.stats.stale_rights += 1
        return self._invalidate_where(
            lambda key, entry: entry.rights is not None and entry.rights != rights)

    def put(self, key: CacheKey, value: bytes, *, tags: Iterable[str] = (), opaque: bool = False,
            generation: int | None = None, fetched_at: float | None = None,
            reader: object = None, rights: str | None = None) -> bool:
        """Store a response; False if refused.

        Refused when too big, when an invalidation happened since
        `generation`, or when a connection other than `reader` wrote in the
        key's database within settle_ms before `fetched_at` (see the module
        docstring).
        """
        if ((generation is not None and generation != self.generation)
                or self.max_entries == 0 or len(value) > self.max_bytes or self.ttl_s <= 0
                or (fetched_at is not None and self._unsettled(key[0], fetched_at, reader))):
            self.stats.refused += 1
            return False
        entries = self._entries
        if key in entries:
            self._remove(key)
        entries[key] = _Entry(value, self.clock() + self.ttl_s,
                              frozenset(tags) if tags else _NO_TAGS, opaque, rights)
        self.bytes += len(value)
        while len(entries) > self.max_entries or self.bytes > self.max_bytes:
            _, oldest = entries.popitem(last=False)   # the least recently used
            self.bytes -= len(oldest.value)
            self.stats.evictions += 1
        return True

    def note_write(self, database: str | None, writer: object) -> None:
        """A write by connection `writer` in `database` was acknowledged (or may have been)."""
        if self.settle_s <= 0:
            return
        now = self.clock()
        latest = self._latest_writers.pop(database, [])
        if latest and latest[0][0] is writer:
            latest[0] = (writer, now)
        else:
            latest = [(writer, now)] + latest[:1]
        self._latest_writers.put(database, latest)

    def _unsettled(self, database: str | None, fetched_at: float, reader: object) -> bool:
        """Whether another connection's write in `database` may not have reached every server."""
        if self.settle_s <= 0:
            return False
        latest = self._latest_writers.peek(database)
        if not latest:   # nobody wrote there lately (a read-only loop: every time)
            return False
        since = fetched_at - self.settle_s
        return any(writer is not reader and when > since for writer, when in latest)

    def invalidate_all(self) -> int:
        """Drop every entry; returns how many."""
        count = len(self._entries)
        self._entries.clear()
        self.bytes = 0
        self._invalidated(count)
        return count

    def invalidate_database(self, database: str | None) -> int:
        return self._invalidate_where(lambda key, entry: key[0] == database)

    def invalidate_tables(self, database: str | None, names: Iterable[str]) -> int:
        """Drop the entries of `database` that read one of `names`, and its opaque ones."""
        names = frozenset(names)
        return self._invalidate_where(
            lambda key, entry: key[0] == database and (entry.opaque or not entry.tags.isdisjoint(names)))

    def remove_expired(self) -> int:
        now = self.clock()
        expired = [key for key, entry in self._entries.items() if entry.expires_at <= now]
        for key in expired:
            self._remove(key)
        self.stats.expirations += len(expired)
        return len(expired)

    def status(self) -> dict:
        stats = self.stats
        return {"hits": stats.hits, "misses": stats.misses, "evictions": stats.evictions,
                "expirations": stats.expirations, "invalidations": stats.invalidations,
                "invalidated_entries": stats.invalidated_entries, "refused": stats.refused,
                "stale_rights": stats.stale_rights,
                "entries": len(self._entries), "bytes": self.bytes,
                "max_entries": self.max_entries, "max_bytes": self.max_bytes,
                "ttl_ms": round(self.ttl_s * 1000), "settle_ms": round(self.settle_s * 1000)}

    def _invalidate_where(self, doomed: Callable[[CacheKey, _Entry], bool]) -> int:
        keys = [key for key, entry in self._entries.items() if doomed(key, entry)]
        for key in keys:
            self._remove(key)
        self._invalidated(len(keys))
        return len(keys)

    def _invalidated(self, count: int) -> None:
        self.generation += 1
        self.stats.invalidations += 1
        self.stats.invalidated_entries += count

    def _remove(self, key: CacheKey) -> None:
        entry = self._entries.pop(key)
        self.bytes -= len(entry.value)
