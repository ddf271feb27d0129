"""What replication measured and found: lag, copies, errors, conflicts.

`ReplicationStats` is the replicator's bookkeeping, thread-safe, and the
source of `Replicator.stats()` (shown by `python -m supervisor status`).
It also keeps, per phase of an event-driven copy (queue wait, lock wait,
temp file write, ...), the recent durations, so that a lag figure can be
explained (`Replicator.timings()`, printed by bench/replication_bench.py);
and, per destination server, the copy lags as fixed-bucket counts since the
start (`LAG_BUCKETS_S`: the `/metrics` histogram, supervisor/web) beside the
counts of copies, failed attempts and conflicts found. It also logs, once
per new fact: a conflict when it is found and when it is settled, an error
when it differs from the server's previous one. What is wrong
with the replicas now (failing copies, corrupt copies, repairs) is
replication_health.py.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Conflict:
    """Two or more copies with the same counter and different content."""

    path: str
    change: int
    servers: tuple[str, ...]
    detected_at: float  # wall clock, seconds

    def as_dict(self) -> dict:
        return {"path": self.path, "change": self.change, "servers": list(self.servers),
                "detected_at": self.detected_at}


@dataclass
class SyncSummary:
    """What one `sync_all` / `catch_up` / `seed` did."""

    paths: int = 0
    copied: int = 0
    conflicts: list[str] = field(default_factory=list)
    # unreadable, corrupt and not repaired, or not writable: retried later
    unreadable: list[str] = field(default_factory=list)
    healed: list[str] = field(default_factory=list)   # a corrupt copy repaired
    refused: list[str] = field(default_factory=list)  # a symlink somewhere: not replicated
    # servers of other machines that could not be asked (or objects they would not give)
    unreachable: list[str] = field(default_factory=list)
    # a joining server's copies that diverged from the cluster's: replaced, kept aside (`seed`)
    diverged: list[str] = field(default_factory=list)

    def add(self, other: SyncSummary) -> SyncSummary:
        """Both passes' figures, in this one."""
        self.paths += other.paths
        self.copied += other.copied
        for name in ("conflicts", "unreadable", "healed", "refused", "unreachable", "diverged"):
            getattr(self, name).extend(getattr(other, name))
        return self


# Upper bounds (seconds) of the lag histogram's buckets; one more counts the rest.
LAG_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class _ServerCounters:
    lags_ms: deque
    files_copied: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    failures: int = 0  # every error reported for this server, repeated ones too
    conflicts_found: int = 0  # distinct conflicts involving it (settled ones stay counted)
    lag_counts: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS_S) + 1))
    lag_sum_s: float = 0.0


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values) - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class ReplicationStats:
    """Per-server counters and the open conflicts."""

    def __init__(self, logger: logging.Logger, lag_window: int):
        self.log = logger
        self.lag_window = lag_window
        self._lock = threading.Lock()
        self._servers: dict[str, _ServerCounters] = {}
        self._conflicts: dict[str, Conflict] = {}
        self._phases: dict[str, deque] = {}

    def add_server(self, server_id: str) -> None:
        with self._lock:
            self._servers.setdefault(server_id, _ServerCounters(deque(maxlen=self.lag_window)))

    def remove_server(self, server_id: str) -> None:
        with self._lock:
            self._servers.pop(server_id, None)
            for path in [p for p, c in self._conflicts.items() if server_id in c.servers]:
                del self._conflicts[path]

    def copied(self, server_id: str, lag_ms: float | None) -> None:
        with self._lock:
            counters = self._servers.get(server_id)
            if counters is not None:
                counters.files_copied += 1
                if lag_ms is not None:
                    counters.lags_ms.append(lag_ms)
                    counters.lag_counts[bisect_left(LAG_BUCKETS_S, lag_ms / 1000)] += 1
                    counters.lag_sum_s += lag_ms / 1000

    def timed(self, phase: str, ms: float) -> None:
        """One duration (ms) of a phase of replication work."""
        with self._lock:
            samples = self._phases.get(phase)
            if samples is None:
                samples = self._phases[phase] = deque(maxlen=self.lag_window)
            samples.append(ms)

    def timings(self) -> dict[str, list[float]]:
        """Phase -> its recent durations (ms), oldest first."""
        with self._lock:
            return {phase: list(samples) for phase, samples in self._phases.items()}

    def error(self, server_id: str, message: str, log: bool = True) -> None:
        """The server's last error; logged unless `log` is False (logged elsewhere)."""
        with self._lock:
            counters = self._servers.get(server_id)
            repeated = counters is not None and counters.last_error == message
            if counters is not None:
                counters.last_error = message
                counters.last_error_at = time.time()
                counters.failures += 1
        if log and not repeated:
            self.log.warning("replication, %s: %s", server_id, message)

    def conflict(self, path: str, change: int, servers: tuple[str, ...]) -> None:
        found = Conflict(path, change, tuple(sorted(servers)), time.time())
        with self._lock:
            known = self._conflicts.get(path)
            if known is not None and (known.change, known.servers) == (found.change,
                                                                        found.servers):
                return
            self._conflicts[path] = found
            for server_id in found.servers:
                counters = self._servers.get(server_id)
                if counters is not None:
                    counters.conflicts_found += 1
        self.log.warning("replication CONFLICT on %s: change %d differs between %s; "
                         "both copies kept, nothing copied", path, change,
                         ", ".join(found.servers))

    def conflicting(self, path: str) -> tuple[str, ...]:
        """The servers of the open conflict on `path` (none: no conflict open)."""
        with self._lock:
            known = self._conflicts.get(path)
        return known.servers if known is not None else ()

    def settled(self, path: str, unless: set[str] | frozenset[str] = frozenset()) -> None:
        """The copies of `path` agree: its conflict is over, unless it involves a server in
        `unless` (of another machine, not reached this time: not compared, so not settled)."""
        with self._lock:
            known = self._conflicts.get(path)
            if known is None or unless & set(known.servers):
                return
            del self._conflicts[path]
        if known is not None:
            self.log.warning("replication conflict on %s settled (a newer copy won)", path)

    def lag_samples(self, server_id: str) -> list[float]:
        with self._lock:
            counters = self._servers.get(server_id)
            return list(counters.lags_ms) if counters is not None else []

    def conflicts(self) -> list[dict]:
        with self._lock:
            return [conflict.as_dict() for conflict in self._conflicts.values()]

    def snapshot(self) -> dict:
        """Per server: lag p50/p99 (ms), files copied, open conflicts, last error;
        failures (errors reported), conflicts_found and lag_histogram (le: bucket bounds in s,
        counts: per bucket, the last one past the largest bound, sum_s)."""
        with self._lock:
            result = {}
            for server_id, counters in self._servers.items():
                lags = sorted(counters.lags_ms)
                result[server_id] = {
                    "lag_p50_ms": percentile(lags, 0.50),
                    "lag_p99_ms": percentile(lags, 0.99),
                    "lag_samples": len(lags),
                    "files_copied": counters.files_copied,
                    "conflicts": [c.as_dict() for c in self._conflicts.values()
                                  if server_id in c.servers],
                    "last_error": counters.last_error,
                    "last_error_at": counters.last_error_at,
                    "failures": counters.failures,
                    "conflicts_found": counters.conflicts_found,
                    "lag_histogram": {"le": list(LAG_BUCKETS_S),
                                      "counts": list(counters.lag_counts),
                                      "sum_s": counters.lag_sum_s},
                }
            return result
