"""The replication worker's to-do list: paths to reconcile, coalesced.

A path written several times before the worker gets to it is reconciled
once: pending paths form an ordered set, keyed by path, remembering the time
of the oldest event not yet handled (the lag is measured from it). Three
sources, in priority order:

1. events (a write landed) and retries whose backoff has expired;
2. the periodic background pass that re-queues every object file (a safety
   net for events lost by inotify), handled only when no event waits;
3. nothing: the worker sleeps until an event, a retry or the next pass.

A path whose reconciliation failed (a copy that could not be written: disk
full, read-only file system; a corrupt copy not repaired yet) is retried
with growing delays, the last one (RETRY_DELAYS_S) repeated until it
succeeds: when space comes back the copy lands without another write.
Retries past the first FAST_RETRIES are "parked": `wait_idle` does not
wait for them (a copy failing for an hour is not pending work).
Thread-safe: events come from watchdog threads, several workers take jobs.
A path being worked on is never handed to a second worker: an event for it
meanwhile waits (coalesced) until its job is done, so the copies of one
path happen one at a time and in order, while other paths go in parallel.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

RETRY_DELAYS_S = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)  # then every 2 s until it works
FAST_RETRIES = 5


class PendingPaths:
    """Coalescing priority queue of object paths with retries and resync passes."""

    def __init__(self, list_all: Callable[[], set[str]], resync_interval_s: float):
        self._list_all = list_all
        self.resync_interval_s = resync_interval_s
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._urgent: OrderedDict[str, float] = OrderedDict()   # path -> oldest event time
        self._background: OrderedDict[str, None] = OrderedDict()
        self._retries: dict[str, tuple[float, int, float | None]] = {}  # due, attempt, since
        self._running: set[str] = set()  # paths a worker holds
        self._closed = False
        self._next_resync = time.monotonic() + resync_interval_s

    def add(self, rel: str) -> None:
        """A write landed at `rel` (in some data directory)."""
        with self._lock:
            if rel not in self._urgent:
                self._background.pop(rel, None)
                self._urgent[rel] = time.monotonic()
                # One new job: one worker (waking them all only makes them
                # queue for the lock and the GIL; `done` wakes everyone).
                self._changed.notify()

    def take(self) -> tuple[str, float | None] | None:
        """Block for the next path and its oldest event time (None: background job).

        Returns None once closed. The caller must call `done` afterwards.
        """
        with self._lock:
            while True:
                if self._closed:
                    return None
                now = time.monotonic()
                for rel, (due, attempt, since) in list(self._retries.items()):
                    if due <= now and rel not in self._urgent:
                        self._urgent[rel] = since if since is not None else now
                        # Queued once: `done` schedules the next attempt.
                        self._retries[rel] = (math.inf, attempt, since)
                for rel, since in self._urgent.items():
                    if rel not in self._running:
                        del self._urgent[rel]
                        self._running.add(rel)
                        return rel, since
                for rel in self._background:
                    if rel not in self._running:
                        del self._background[rel]
                        self._running.add(rel)
                        return rel, None
                if self.resync_interval_s > 0 and now >= self._next_resync:
                    self._next_resync = now + self.resync_interval_s
                    self._queue_everything()
                    continue
                # Only paths being worked on (or nothing) wait: sleep until a
                # `done`, an event, a retry or the next pass.
                self._changed.wait(self._sleep_time(now))

    def done(self, rel: str, failed: bool, since: float | None) -> None:
        """The job on `rel` finished; schedule a retry if it failed."""
        with self._lock:
            self._running.discard(rel)
            if not failed:
                self._retries.pop(rel, None)
            else:
                attempt = self._retries.get(rel, (0.0, 0, None))[1]
                delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                self._retries[rel] = (time.monotonic() + delay, attempt + 1, since)
            self._changed.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no event or fast retry is pending and no job runs."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._urgent or self._running or any(
                    attempt <= FAST_RETRIES for _, attempt, _ in self._retries.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.05))
        return True

    def close(self) -> None:
        """Wake the worker with None; forget everything pending."""
        with self._lock:
            self._closed = True
            self._urgent.clear()
            self._background.clear()
            self._retries.clear()
            self._changed.notify_all()

    def reopen(self) -> None:
        with self._lock:
            self._closed = False
            self._next_resync = time.monotonic() + self.resync_interval_s

    def _sleep_time(self, now: float) -> float | None:
        wake_at = [due for due, _, _ in self._retries.values() if due != math.inf]
        if self.resync_interval_s > 0:
            wake_at.append(self._next_resync)
        return max(0.001, min(wake_at) - now) if wake_at else None

    def _queue_everything(self) -> None:
        # Listing directories can take a while: not under the lock.
        self._lock.release()
        try:
            paths = self._list_all()
        finally:
            self._lock.acquire()
        for rel in sorted(paths):
            if rel not in self._urgent:
                self._background[rel] = None
