"""What the status page and /metrics show: one `ClusterView` per sample, and its history.

A `ClusterView` is plain data taken at one moment by the sampler
(sampler.py): the supervisor's facts, the status rows of `./tahiry status`
(`Cluster.status()`), each answering node's own `.status;` counters and the
replicator's figures per server. Everything the collector (metrics.py) and
the page (server.py, static/) show is read from the latest view, never from
the live objects, so a scrape or a page costs no probe of its own.

`History` keeps the last minutes as chart points, each from the counters'
differences since the previous point, so a point says what happened in its
interval, not over the run: per server, statements per second and the mean
replication lag of the copies made (none when no copy was made); per proxy,
the hit ratio of the lookups made (none when no read looked the cache up).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from ..account_stats import RUNNING_STATEMENTS

HISTORY_S = 600.0  # the charts show the last ten minutes


@dataclass(frozen=True)
class ClusterView:
    """One sample of the cluster; plain values only (JSON as it is)."""

    taken_at: float                      # wall clock, seconds
    supervisor: dict                     # pid, topology, uptime_s, last_reload
    rows: list[dict]                     # the status rows, one per node of the topology
    nodes: dict[str, dict] = field(default_factory=dict)        # id -> its `.status;`
    replication: dict[str, dict] = field(default_factory=dict)  # server -> replicator stats

    def counters(self, node_id: str) -> dict:
        return self.nodes.get(node_id) or {}

    def balancer_counters(self, row: dict) -> dict:
        """A balancer's `.status;`, or the one relay's balancer part ({} for other nodes)."""
        if row["kind"] == "balancer":
            return self.counters(row["node"])
        if row["kind"] == "proxycache":
            return self.counters(row["node"]).get("balancer") or {}
        return {}

    def as_dict(self) -> dict:
        """The page's form: rows with their last error and a few counters beside them."""
        return {"taken_at": self.taken_at, "supervisor": self.supervisor,
                "nodes": [self._row(row) for row in self.rows]}

    def _row(self, row: dict) -> dict:
        node_id, kind = row["node"], row["kind"]
        counters = self.counters(node_id)
        # (Not the statements the students run now: the page is open to every local user.)
        shown = {**{key: value for key, value in row.items() if key != RUNNING_STATEMENTS},
                 "last_error": last_error(row, counters, self.replication.get(node_id))}
        if kind == "server" and counters:
            shown["statements"] = counters.get("statements")
            shown["connections"] = counters.get("connections")
        elif kind == "balancer" and counters:
            shown["backends"] = {backend: figures.get("state") for backend, figures
                                 in (counters.get("backends") or {}).items()}
            shown["connections"] = counters.get("connections")
        elif kind == "proxycache" and counters:
            for key in ("hits", "misses", "entries", "bytes", "invalidations"):
                shown[key] = counters.get(key)
            shown["hit_ratio"] = hit_ratio(counters)
            shown["connections"] = counters.get("connections")
            if counters.get("balancer"):   # the one relay: its balancer's backends too
                shown["backends"] = backend_states(counters["balancer"])
        return shown


def backend_states(balancer: dict) -> dict[str, str | None]:
    """Each backend's health state in a balancer's `.status;`."""
    return {backend: figures.get("state") for backend, figures
            in (balancer.get("backends") or {}).items()}


def hit_ratio(counters: dict) -> float | None:
    hits, misses = counters.get("hits") or 0, counters.get("misses") or 0
    return round(hits / (hits + misses), 4) if hits + misses else None


def last_error(row: dict, counters: dict, replication: dict | None) -> str | None:
    """The most recent thing that went wrong with a node, in one line (None: nothing known).

    Checked from the most to the least pressing: a storage fault of a server,
    the error replication met copying into it, a backend the balancer sees
    failing, then why the node's last run ended (kept after a restart).
    """
    faults = row.get("storage_faults") or counters.get("storage_faults") or []
    if row["kind"] == "server" and faults:
        fault = max(faults, key=lambda f: f.get("last_seen") or f.get("hold_s") or 0)
        return f"storage fault: {fault.get('object')} ({fault.get('operation')}: " \
               f"{fault.get('reason')})"
    if replication and replication.get("last_error"):
        return f"replication: {replication['last_error']}"
    balancer = counters if row["kind"] == "balancer" else counters.get("balancer")
    if balancer:   # a balancer, or the one relay's
        failing = [(backend, figures.get("last_error")) for backend, figures
                   in (balancer.get("backends") or {}).items()
                   if figures.get("state") != "ONLINE" and figures.get("last_error")]
        if failing:
            return "; ".join(f"backend {backend}: {error}" for backend, error in failing)
    return row.get("last_exit")


class History:
    """Chart points of the last `span_s` seconds, one per full sample."""

    def __init__(self, span_s: float = HISTORY_S):
        self.span_s = span_s
        self.points: deque[dict] = deque()
        self._previous: ClusterView | None = None

    def add(self, view: ClusterView) -> dict:
        """The point `view` makes (appended, older ones past the span dropped)."""
        point = chart_point(self._previous, view)
        self._previous = view
        self.points.append(point)
        while self.points and view.taken_at - self.points[0]["t"] > self.span_s:
            self.points.popleft()
        return point

    def as_list(self) -> list[dict]:
        return list(self.points)


def chart_point(before: ClusterView | None, now: ClusterView) -> dict:
    """{t, throughput: {server: statements/s}, lag_ms: {server: mean lag}, hit_ratio: {proxy}},
    each over the interval since `before`.

    A rate needs two samples of the same process: a counter that went down
    (the node restarted) gives no rate for that point, never a negative one.
    """
    point: dict = {"t": round(now.taken_at, 3), "throughput": {}, "lag_ms": {}, "hit_ratio": {}}
    elapsed = now.taken_at - before.taken_at if before is not None else 0.0
    for row in now.rows:
        node_id, kind = row["node"], row["kind"]
        counters = now.counters(node_id)
        if kind == "server" and before is not None and elapsed > 0:
            done, earlier = counters.get("statements"), before.counters(node_id).get("statements")
            if done is not None and earlier is not None and done >= earlier:
                point["throughput"][node_id] = round((done - earlier) / elapsed, 1)
            lag = _mean_lag_ms(before.replication.get(node_id), now.replication.get(node_id))
            if lag is not None:
                point["lag_ms"][node_id] = lag
        elif kind == "proxycache" and before is not None:
            ratio = _interval_hit_ratio(before.counters(node_id), counters)
            if ratio is not None:
                point["hit_ratio"][node_id] = ratio
    return point


def _interval_hit_ratio(before: dict, now: dict) -> float | None:
    """The hit ratio of the cache lookups made between two samples; None when none was
    made, or the counters went down (the proxy restarted): a gap in the chart, never the
    ratio since the proxy started, which hides what the last minutes did."""
    if not before or not now:
        return None
    hits = (now.get("hits") or 0) - (before.get("hits") or 0)
    misses = (now.get("misses") or 0) - (before.get("misses") or 0)
    if hits < 0 or misses < 0 or hits + misses == 0:
        return None
    return round(hits / (hits + misses), 4)


def _mean_lag_ms(before: dict | None, now: dict | None) -> float | None:
    """Mean lag (ms) of the copies into a server between two samples; None when none was made
    (no copy, no lag measured: a gap in the chart, not a zero)."""
    if not now or "lag_histogram" not in now:
        return None
    histogram = now["lag_histogram"]
    count, total = sum(histogram["counts"]), histogram["sum_s"]
    if before and "lag_histogram" in before:
        count -= sum(before["lag_histogram"]["counts"])
        total -= before["lag_histogram"]["sum_s"]
    if count <= 0:
        return None
    return round(total / count * 1000, 2)
