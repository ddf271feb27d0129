"""The Prometheus view of the cluster: a `prometheus_client` collector over the latest view.

`ClusterCollector(latest)` yields metric families built from the
`ClusterView` that `latest()` returns (sampler.py takes one a second), so a
scrape probes nothing itself; `exposition(collector)` is the text format,
written by prometheus_client's own encoder. Names follow the Prometheus
conventions: counters end in `_total` (the library adds it), times are
`_seconds`, sizes `_bytes`; every family of one node kind carries the label
`node`. A node that is not RUNNING, or did not answer its `.status;`, has
only its `tahiry_node_*` series: its counters reappear from zero once it
runs again (a counter reset, which `rate()` handles). docs/OBSERVABILITY.md
lists every family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from ..keeper import NodeState
from ..remote import REMOTE, UNREACHABLE
from .view import ClusterView

# A keeper's states, and those of a node another machine runs (supervisor/remote.py).
NODE_STATES = [*(state.value for state in NodeState), REMOTE, UNREACHABLE]
ANSWERING = (NodeState.RUNNING.value, REMOTE)
BACKEND_STATES = ("ONLINE", "SHUNNED", "OFFLINE")
CONTENT_TYPE = CONTENT_TYPE_LATEST

# (key in the server's `.status;`, metric name without _total, help)
SERVER_COUNTERS = (
    ("statements", "tahiry_server_statements", "Statements received (admin requests excluded)."),
    ("statement_errors", "tahiry_server_statement_errors", "Statements answered with an error."),
    ("batches", "tahiry_server_batches", "Group-commit batches (lone writes included)."),
    ("batched_statements", "tahiry_server_batched_statements",
     "Statements run inside group-commit batches."),
    ("commits", "tahiry_server_commits",
     "Batches that wrote files durably (each one round of fsyncs)."),
    ("files_committed", "tahiry_server_files_committed", "Object files written durably."),
    ("small_reads", "tahiry_server_small_reads",
     "Small reads answered on the event loop, without the engine thread."),
    ("lone_writes", "tahiry_server_lone_writes",
     "A lone writer's small inserts run on the event loop (each its own durable commit)."),
    ("fenced_commits", "tahiry_server_fenced_commits",
     "Commits refused because a peer held a newer copy (retried after a pull)."),
)
BALANCER_COUNTERS = (
    ("statements", "Statements routed."), ("reads", "Reads routed."),
    ("writes", "Writes routed."), ("retries", "Reads tried again on another backend."),
    ("rerouted_writes", "Writes sent to the next owner."),
    ("unknown_writes", "Writes sent and never answered (outcome unknown)."),
    ("local_errors", "Errors the balancer answered itself."),
    ("version_checks", "Read-your-writes version checks."),
    ("stale_fallbacks", "Reads answered by the freshest backend when none caught up in time."),
    ("storage_faults", "Storage faults reported by backends."),
    ("failovers", "Backends that left ONLINE (traffic moved to the others)."),
)
PROXY_COUNTERS = (
    ("hits", "Reads answered from the cache."), ("misses", "Reads forwarded upstream."),
    ("evictions", "Entries dropped to respect max_entries or max_bytes."),
    ("expirations", "Entries found past their TTL."),
    ("invalidations", "Invalidation events (a write went through)."),
    ("invalidated_entries", "Entries dropped by invalidations."),
    ("refused", "Responses not cached (too big, or raced an invalidation)."),
    ("upstream_errors", "Upstream connection errors."),
)


class ClusterCollector(Collector):
    """Metric families of the latest `ClusterView` (nothing before the first one)."""

    def __init__(self, latest: Callable[[], ClusterView | None]):
        self.latest = latest

    def collect(self) -> Iterator[Metric]:
        view = self.latest()
        if view is None:
            return
        yield from supervisor_families(view)
        yield from node_families(view)
        yield from server_families(view)
        yield from balancer_families(view)
        yield from proxy_families(view)
        yield from replication_families(view)
        yield from account_families(view)


def exposition(collector: Collector) -> bytes:
    """The Prometheus text format of one collector (a registry of its own, no process metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)


def supervisor_families(view: ClusterView) -> Iterator[Metric]:
    info = view.supervisor
    uptime = GaugeMetricFamily("tahiry_supervisor_uptime_seconds",
                               "Seconds since the supervisor started.")
    uptime.add_metric([], float(info.get("uptime_s") or 0.0))
    yield uptime
    sampled = GaugeMetricFamily("tahiry_supervisor_sample_timestamp_seconds",
                                "When these figures were taken (Unix time).")
    sampled.add_metric([], view.taken_at)
    yield sampled
    handing_over = GaugeMetricFamily(
        "tahiry_supervisor_servers_handing_over",
        "Servers removed from the topology (or moved to another machine) whose newest copies "
        "have not all reached the others yet: their directories hold writes nobody else has.")
    handing_over.add_metric([], float(len(info.get("handing_over") or {})))
    yield handing_over
    reload = info.get("last_reload")
    if reload:
        edit = GaugeMetricFamily("tahiry_supervisor_last_reload_success",
                                 "1 if the last topology edit was applied, 0 if refused.")
        edit.add_metric([], 1.0 if reload.get("ok") else 0.0)
        yield edit
        when = GaugeMetricFamily("tahiry_supervisor_last_reload_timestamp_seconds",
                                 "When the last topology edit was applied or refused (Unix time).")
        when.add_metric([], float(reload.get("at") or 0.0))
        yield when


def node_families(view: ClusterView) -> Iterator[Metric]:
    labels = ["node", "kind"]
    up = GaugeMetricFamily("tahiry_node_up", "1 if the node is RUNNING (or, run by another "
                           "machine, answers its probes).", labels=labels)
    state = GaugeMetricFamily("tahiry_node_state",
                              "1 for the node's current state (the keeper's), 0 for the others.",
                              labels=[*labels, "state"])
    restarts = CounterMetricFamily("tahiry_node_restarts",
                                   "Restarts of the node by the supervisor, by reason.",
                                   labels=[*labels, "reason"])
    probe = GaugeMetricFamily("tahiry_node_probe_seconds",
                              "Latency of the node's last health probe (absent while it fails).",
                              labels=labels)
    probe_failures = GaugeMetricFamily("tahiry_node_probe_failures",
                                       "Health probes failed in a row by the RUNNING node "
                                       "(restarted when it reaches the topology's fall).",
                                       labels=labels)
    uptime = GaugeMetricFamily("tahiry_node_uptime_seconds",
                               "Seconds the node has been RUNNING.", labels=labels)
    connections = GaugeMetricFamily("tahiry_node_open_connections", "Open client connections.",
                                    labels=labels)
    accepted = CounterMetricFamily("tahiry_node_connections",
                                   "Client connections accepted.", labels=labels)
    refused = CounterMetricFamily("tahiry_node_refused_connections",
                                  "Connections refused (over max_connections).", labels=labels)
    slow_readers = GaugeMetricFamily("tahiry_node_slow_readers",
                                     "Clients with answer bytes waiting because they read slower "
                                     "than they are answered.", labels=labels)
    unsent = GaugeMetricFamily("tahiry_node_unsent_bytes",
                               "Answer bytes slow readers have not taken yet: in memory (at most "
                               "the outbox cap each) or waiting on disk.",
                               labels=[*labels, "where"])
    for row in view.rows:
        values = [row["node"], row["kind"]]
        up.add_metric(values, 1.0 if row["state"] in ANSWERING else 0.0)
        for name in NODE_STATES:
            state.add_metric([*values, name], 1.0 if row["state"] == name else 0.0)
        if row.get("probe_ms") is not None:
            probe.add_metric(values, row["probe_ms"] / 1000)
        if row.get("remote"):
            continue  # its restarts and uptime are its own machine's supervisor's
        probe_failures.add_metric(values, float(row.get("probe_failures") or 0))
        for reason, count in restart_counts(row).items():
            restarts.add_metric([*values, reason], float(count))
        uptime.add_metric(values, float(row.get("uptime_s") or 0.0))
        counters = view.counters(row["node"])
        if counters:
            connections.add_metric(values, float(counters.get("connections") or 0))
            accepted.add_metric(values, float(counters.get("connections_total") or 0))
            refused.add_metric(values, float(counters.get("connections_refused") or 0))
            slow_readers.add_metric(values, float(counters.get("slow_readers") or 0))
            unsent.add_metric([*values, "memory"],
                              float(counters.get("unsent_bytes_in_memory") or 0))
            unsent.add_metric([*values, "disk"], float(counters.get("unsent_bytes_spilled") or 0))
    yield from (up, state, restarts, probe, probe_failures, uptime, connections, accepted, refused,
                slow_readers, unsent)


def restart_counts(row: dict) -> dict[str, int]:
    """Restarts by reason: crash (the keeper's own, after an exit or missed probes) and
    manual (`restart NODE`), from the status row's `restarts` and `manual_restarts`."""
    return {"crash": int(row.get("restarts") or 0),
            "manual": int(row.get("manual_restarts") or 0)}


def _histogram(name: str, documentation: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, documentation, labels=labels)


def add_histogram(family: HistogramMetricFamily, values: list[str], figures: dict | None) -> None:
    """Add one histogram in the nodes' form (bounds `le`, per-bucket `counts`, `sum_s`)."""
    if not figures or len(figures.get("counts") or []) != len(figures.get("le") or []) + 1:
        return
    buckets, running = [], 0
    for bound, count in zip([*figures["le"], float("inf")], figures["counts"], strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(running)))
    family.add_metric(values, buckets, float(figures.get("sum_s") or 0.0))


def server_families(view: ClusterView) -> Iterator[Metric]:
    servers = [row for row in view.rows if row["kind"] == "server"]
    counters = [CounterMetricFamily(name, documentation, labels=["node"])
                for _, name, documentation in SERVER_COUNTERS]
    statement_time = _histogram("tahiry_server_statement_seconds",
                                "Time the engine took per statement (no queueing, no commit).",
                                ["node"])
    commit_time = _histogram("tahiry_server_commit_seconds",
                             "Time per durable group commit (write, rename or append, fsync).",
                             ["node"])
    writable = GaugeMetricFamily("tahiry_server_writable",
                                 "1 if the balancers may send it writes (0: catching up).",
                                 labels=["node"])
    faults = GaugeMetricFamily("tahiry_server_storage_faults",
                               "Objects the server could not read or write lately.",
                               labels=["node"])
    for row in servers:
        node_id = row["node"]
        if row.get("writable") is not None:
            writable.add_metric([node_id], 1.0 if row["writable"] else 0.0)
        status = view.counters(node_id)
        if not status:
            continue
        for family, (key, _, _) in zip(counters, SERVER_COUNTERS, strict=True):
            if key in status:
                family.add_metric([node_id], float(status[key]))
        add_histogram(statement_time, [node_id], status.get("statement_seconds"))
        add_histogram(commit_time, [node_id], status.get("commit_seconds"))
        faults.add_metric([node_id], float(len(status.get("storage_faults") or [])))
    yield from (*counters, statement_time, commit_time, writable, faults)


def balancer_families(view: ClusterView) -> Iterator[Metric]:
    counters = [CounterMetricFamily(f"tahiry_balancer_{key}", documentation, labels=["node"])
                for key, documentation in BALANCER_COUNTERS]
    routed = CounterMetricFamily("tahiry_balancer_routed",
                                 "Statements sent to each backend, by kind (read, write).",
                                 labels=["node", "backend", "kind"])
    backend_state = GaugeMetricFamily("tahiry_balancer_backend_state",
                                      "1 for each backend's health state as the balancer sees "
                                      "it (ONLINE, SHUNNED, OFFLINE), 0 for the others.",
                                      labels=["node", "backend", "state"])
    transitions = CounterMetricFamily("tahiry_balancer_backend_transitions",
                                      "Times a backend entered a health state.",
                                      labels=["node", "backend", "state"])
    outstanding = GaugeMetricFamily("tahiry_balancer_backend_outstanding",
                                    "Statements sent to a backend and not answered yet.",
                                    labels=["node", "backend"])
    for row in view.rows:
        status = view.balancer_counters(row)
        if not status:
            continue
        node_id = row["node"]
        figures = status.get("counters") or {}
        for family, (key, _) in zip(counters, BALANCER_COUNTERS, strict=True):
            if key in figures:
                family.add_metric([node_id], float(figures[key]))
        for backend, about in (status.get("backends") or {}).items():
            routed.add_metric([node_id, backend, "read"], float(about.get("reads") or 0))
            routed.add_metric([node_id, backend, "write"], float(about.get("writes") or 0))
            for name in BACKEND_STATES:
                backend_state.add_metric([node_id, backend, name],
                                         1.0 if about.get("state") == name else 0.0)
            outstanding.add_metric([node_id, backend], float(about.get("outstanding") or 0))
        for backend, entered in (status.get("transitions") or {}).items():
            for state, count in entered.items():
                transitions.add_metric([node_id, backend, state], float(count))
    yield from (*counters, routed, backend_state, transitions, outstanding)


def proxy_families(view: ClusterView) -> Iterator[Metric]:
    counters = [CounterMetricFamily(f"tahiry_proxy_{key}", documentation, labels=["node"])
                for key, documentation in PROXY_COUNTERS]
    entries = GaugeMetricFamily("tahiry_proxy_entries", "Responses in the cache.",
                                labels=["node"])
    size = GaugeMetricFamily("tahiry_proxy_cached_bytes", "Bytes of the cached responses.",
                             labels=["node"])
    limit = GaugeMetricFamily("tahiry_proxy_max_bytes", "Bound on the cached bytes.",
                              labels=["node"])
    for row in view.rows:
        status = view.counters(row["node"]) if row["kind"] == "proxycache" else None
        if not status:
            continue
        node_id = row["node"]
        for family, (key, _) in zip(counters, PROXY_COUNTERS, strict=True):
            if key in status:
                family.add_metric([node_id], float(status[key]))
        entries.add_metric([node_id], float(status.get("entries") or 0))
        size.add_metric([node_id], float(status.get("bytes") or 0))
        limit.add_metric([node_id], float(status.get("max_bytes") or 0))
    yield from (*counters, entries, size, limit)


def replication_families(view: ClusterView) -> Iterator[Metric]:
    labels = ["server"]
    copies = CounterMetricFamily("tahiry_replication_copies",
                                 "Object copies made into this server.", labels=labels)
    failures = CounterMetricFamily("tahiry_replication_failures",
                                   "Failed copy or repair attempts into this server.",
                                   labels=labels)
    conflicts = CounterMetricFamily("tahiry_replication_conflicts",
                                    "Conflicts found on this server's copies (same version, "
                                    "different content).", labels=labels)
    open_conflicts = GaugeMetricFamily("tahiry_replication_open_conflicts",
                                       "Conflicts not settled yet.", labels=labels)
    lag = _histogram("tahiry_replication_lag_seconds",
                     "From a change seen on the source to its copy in place, per destination server.",
                     labels)
    for server_id, figures in view.replication.items():
        copies.add_metric([server_id], float(figures.get("files_copied") or 0))
        failures.add_metric([server_id], float(figures.get("failures") or 0))
        conflicts.add_metric([server_id], float(figures.get("conflicts_found") or 0))
        open_conflicts.add_metric([server_id], float(len(figures.get("conflicts") or [])))
        add_histogram(lag, [server_id], figures.get("lag_histogram"))
    yield from (copies, failures, conflicts, open_conflicts, lag)


def account_families(view: ClusterView) -> Iterator[Metric]:
    """Accounts on: per server and account, logins, failed logins and open sessions (counts
    only: supervisor/account_stats.py); failed logins naming no account, per server."""
    labels = ["node", "account"]
    logins = CounterMetricFamily("tahiry_account_logins", "Successful logins, per server and "
                                 "account, since the server started.", labels=labels)
    failures = CounterMetricFamily("tahiry_account_login_failures", "Failed logins naming the "
                                   "account, per server, since the server started.",
                                   labels=labels)
    sessions = GaugeMetricFamily("tahiry_account_sessions", "Connections logged in as the "
                                 "account now, per server.", labels=labels)
    unknown = CounterMetricFamily("tahiry_account_login_failures_unknown", "Failed logins "
                                  "naming no account, per server.", labels=["node"])
    for row in view.rows:
        accounts = row.get("accounts") if row["kind"] == "server" else None
        if not isinstance(accounts, dict):
            continue
        node_id = row["node"]
        for name, figures in accounts.items():
            logins.add_metric([node_id, name], float(figures.get("logins") or 0))
            failures.add_metric([node_id, name], float(figures.get("failures") or 0))
            sessions.add_metric([node_id, name], float(figures.get("sessions") or 0))
        if "login_failures_unknown" in row:
            unknown.add_metric([node_id], float(row["login_failures_unknown"]))
    yield from (logins, failures, sessions, unknown)
