"""Fixed-bucket histograms of durations, cheap enough for the request path.

`DurationHistogram.observe(seconds)` is one `bisect` over a short tuple and
two additions: no lock (each histogram is written by one thread: the
engine thread or the event loop; `.status;` reads plain integers, a torn
read is at worst one observation behind). `as_dict()` is what `.status;`
carries and what the supervisor turns into a Prometheus histogram
(supervisor/web/metrics.py): bucket upper bounds in seconds, the count of
each bucket (not cumulative; the last one counts what is past every bound)
and the sum of the observations.
"""

from __future__ import annotations

from bisect import bisect_left

# Statements take from a few microseconds (a point read) to seconds (a big join).
STATEMENT_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                       0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class DurationHistogram:
    """Counts of durations per fixed bucket, with their sum."""

    __slots__ = ("bounds", "counts", "sum_s")

    def __init__(self, bounds: tuple[float, ...] = STATEMENT_BUCKETS_S):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum_s = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum_s += seconds

    def as_dict(self) -> dict:
        return {"le": list(self.bounds), "counts": list(self.counts), "sum_s": self.sum_s}
