"""Python's cyclic garbage collector and big tables: paused while rows are built, kept off
what lives long.

Rows are lists, so the collector tracks each one. Building many of them (a
join's result rows, an equality index's buckets) starts a collection every
few hundred allocations, each rescanning the live rows (the cached tables
included): a 100k-row join ran 3-4x slower, a 1M-row equality index 4-5x.
Rows and buckets never form reference cycles, so pausing loses nothing:
`collector_paused` turns it back on (if it was on) when the work ends. Two
threads pausing at once may leave it running for the slower one (never
stopped for good: only the one that found it on turns it back on).

What stays cached, a loaded table and its index, would still be scanned
again by every full collection: with a 1,000,000-row table one took ~0.5 s
and came every ~200 point updates (2.95 ms per update against 0.43 with the
collector off, in process). So a big build that stays (`lasting_build`)
collects the garbage there is first, is made with the collector paused,
then freezes what lives (`gc.freeze`): frozen objects are never scanned
again and are still freed by reference counting when their table version
is dropped (rows hold no cycles). Collecting first is cheap (what was built
before is frozen already) and keeps garbage cycles from being frozen;
objects of other threads made during the build are frozen with it, and a
cycle among them that dies later is never collected: a few kilobytes per big
load, which are rare.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Rows past which an index build, and bytes past which a table's load (its
# snapshot and journal), are big enough to be frozen once built: a full
# collection costs about 35 ms per 100,000 rows on the reference machine.
LASTING_ROWS = 50_000
LASTING_BYTES = 1 << 20


@contextmanager
def collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def lasting_build(big: bool) -> Iterator[None]:
    """The collector paused while a set that stays cached is built; when `big`, the garbage
    there is collected first and what lives frozen once the build succeeded."""
    if big:
        gc.collect()
    with collector_paused():
        yield
        if big:
            gc.freeze()
