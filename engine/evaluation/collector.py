"""Pausing Python's cyclic garbage collector while many rows are built.

Building a big set of lists (a join's result rows, an equality index's
buckets) triggers a collection every few hundred allocations, and each
rescans the live rows (the cached tables included): a 100k-row join ran 3-4x
slower, a 1M-row equality index 4-5x. Rows and buckets never form reference
cycles, so pausing loses nothing; the collector is re-enabled (if it was on)
as soon as the work ends. Two threads pausing at once may leave it running
for the slower one (never stopped for good: only the one that found it on
turns it back on).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
