"""supervisor/web in-process: the collector's families from a hand-made view, the
chart points, the last error of a row, and the counters the nodes and the
replicator keep for them (histograms as bucket counts)."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nodes.server.latency import DurationHistogram
from supervisor.replication_stats import LAG_BUCKETS_S, ReplicationStats
from supervisor.web.metrics import ClusterCollector, exposition
from supervisor.web.view import ClusterView, History, chart_point, last_error


def row(node: str, kind: str, state: str = "RUNNING", **extra) -> dict:
    return {"node": node, "kind": kind, "address": "127.0.0.1:1", "pid": 10,
            "state": state, "uptime_s": 5.0, "restarts": 0, "manual_restarts": 0,
            "probe_ms": 1.5, "last_exit": None, **extra}


def histogram(counts: list[int], sum_s: float) -> dict:
    bounds = [0.001, 0.01, 0.1]
    assert len(counts) == len(bounds) + 1
    return {"le": bounds, "counts": counts, "sum_s": sum_s}


def view(taken_at: float = 100.0, statements: int = 7, m2_state: str = "BACKOFF",
         restarts: int = 2, manual: int = 1) -> ClusterView:
    return ClusterView(
        taken_at=taken_at,
        supervisor={"pid": 1, "uptime_s": 12.0,
                    "last_reload": {"ok": False, "message": "bad port", "at": 99.0}},
        rows=[row("m1", "server", restarts=restarts, manual_restarts=manual, writable=True),
              row("m2", "server", state=m2_state, pid=None, last_exit="killed by SIGKILL"),
              row("lb", "balancer"), row("proxy", "proxycache")],
        nodes={
            "m1": {"statements": statements, "statement_errors": 1, "batches": 3, "commits": 2,
                   "files_committed": 2, "connections": 4, "connections_total": 9,
                   "slow_readers": 2, "unsent_bytes_in_memory": 2_500_000,
                   "unsent_bytes_spilled": 40_000_000,
                   "statement_seconds": histogram([5, 1, 1, 0], 0.02),
                   "commit_seconds": histogram([0, 2, 0, 0], 0.006), "storage_faults": []},
            "lb": {"connections": 1, "counters": {"statements": 5, "reads": 3, "writes": 2,
                                                  "failovers": 1},
                   "backends": {"m1": {"state": "ONLINE", "reads": 3, "writes": 2,
                                       "outstanding": 0},
                                "m2": {"state": "OFFLINE", "reads": 0, "writes": 0,
                                       "outstanding": 0, "last_error": "refused"}},
                   "transitions": {"m2": {"SHUNNED": 1, "OFFLINE": 1}}},
            "proxy": {"hits": 3, "misses": 1, "invalidations": 2, "entries": 1, "bytes": 120,
                      "max_bytes": 1000},
        },
        replication={"m1": {"files_copied": 4, "failures": 1, "conflicts_found": 1,
                            "conflicts": [], "last_error": None,
                            "lag_histogram": histogram([1, 2, 1, 0], 0.06)},
                     "m2": {"files_copied": 0, "failures": 0, "conflicts_found": 0,
                            "conflicts": [], "last_error": "copy of db/t failed: disk full",
                            "lag_histogram": histogram([0, 0, 0, 0], 0.0)}})


def scraped(cluster_view: ClusterView | None) -> dict:
    text = exposition(ClusterCollector(lambda: cluster_view)).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in families.values() for s in family.samples}
    return {"families": families, "samples": samples, "text": text}


def test_no_view_yet_gives_an_empty_page():
    assert scraped(None)["text"] == ""


def test_node_families_state_restarts_and_probe():
    samples = scraped(view())["samples"]
    assert samples[("tahiry_node_up", (("kind", "server"), ("node", "m1")))] == 1.0
    assert samples[("tahiry_node_up", (("kind", "server"), ("node", "m2")))] == 0.0
    assert samples[("tahiry_node_state",
                    (("kind", "server"), ("node", "m2"), ("state", "BACKOFF")))] == 1.0
    assert samples[("tahiry_node_state",
                    (("kind", "server"), ("node", "m2"), ("state", "RUNNING")))] == 0.0
    assert samples[("tahiry_node_restarts_total",
                    (("kind", "server"), ("node", "m1"), ("reason", "crash")))] == 2.0
    assert samples[("tahiry_node_restarts_total",
                    (("kind", "server"), ("node", "m1"), ("reason", "manual")))] == 1.0
    assert samples[("tahiry_node_probe_seconds", (("kind", "server"), ("node", "m1")))] == 0.0015
    assert samples[("tahiry_node_slow_readers", (("kind", "server"), ("node", "m1")))] == 2.0
    assert samples[("tahiry_node_unsent_bytes",
                    (("kind", "server"), ("node", "m1"), ("where", "memory")))] == 2_500_000
    assert samples[("tahiry_node_unsent_bytes",
                    (("kind", "server"), ("node", "m1"), ("where", "disk")))] == 40_000_000
    assert samples[("tahiry_node_slow_readers", (("kind", "balancer"), ("node", "lb")))] == 0.0


def test_a_node_failing_its_probes_has_them_counted():
    failing = view()
    failing.rows[0].update(probe_ms=None, probe_failures=2, probe_fall=3)
    samples = scraped(failing)["samples"]
    m1, lb = (("kind", "server"), ("node", "m1")), (("kind", "balancer"), ("node", "lb"))
    assert samples[("tahiry_node_probe_failures", m1)] == 2.0
    assert samples[("tahiry_node_probe_failures", lb)] == 0.0
    assert ("tahiry_node_probe_seconds", m1) not in samples
    assert samples[("tahiry_node_probe_seconds", lb)] == 0.0015


def test_a_stopped_node_keeps_only_its_node_series():
    stopped = view(m2_state="STOPPED")
    samples = scraped(stopped)["samples"]
    assert samples[("tahiry_node_state",
                    (("kind", "server"), ("node", "m2"), ("state", "STOPPED")))] == 1.0
    assert samples[("tahiry_node_up", (("kind", "server"), ("node", "m2")))] == 0.0
    assert not [key for key in samples if key[0].startswith("tahiry_server_")
                and ("node", "m2") in key[1]]


def test_server_counters_and_histograms_are_cumulative():
    result = scraped(view())
    samples = result["samples"]
    assert samples[("tahiry_server_statements_total", (("node", "m1"),))] == 7.0
    assert samples[("tahiry_server_commits_total", (("node", "m1"),))] == 2.0
    buckets = {dict(labels)["le"]: value for (name, labels), value in samples.items()
               if name == "tahiry_server_statement_seconds_bucket"}
    assert buckets == {"0.001": 5.0, "0.01": 6.0, "0.1": 7.0, "+Inf": 7.0}
    assert samples[("tahiry_server_statement_seconds_count", (("node", "m1"),))] == 7.0
    assert samples[("tahiry_server_statement_seconds_sum", (("node", "m1"),))] == 0.02
    assert result["families"]["tahiry_server_statement_seconds"].type == "histogram"
    assert result["families"]["tahiry_server_statements"].type == "counter"


def test_balancer_routes_per_backend_failovers_and_transitions():
    samples = scraped(view())["samples"]
    assert samples[("tahiry_balancer_routed_total",
                    (("backend", "m1"), ("kind", "read"), ("node", "lb")))] == 3.0
    assert samples[("tahiry_balancer_routed_total",
                    (("backend", "m1"), ("kind", "write"), ("node", "lb")))] == 2.0
    assert samples[("tahiry_balancer_failovers_total", (("node", "lb"),))] == 1.0
    assert samples[("tahiry_balancer_backend_transitions_total",
                    (("backend", "m2"), ("node", "lb"), ("state", "OFFLINE")))] == 1.0
    assert samples[("tahiry_balancer_backend_state",
                    (("backend", "m2"), ("node", "lb"), ("state", "OFFLINE")))] == 1.0


def test_proxy_and_replication_families():
    samples = scraped(view())["samples"]
    assert samples[("tahiry_proxy_hits_total", (("node", "proxy"),))] == 3.0
    assert samples[("tahiry_proxy_misses_total", (("node", "proxy"),))] == 1.0
    assert samples[("tahiry_proxy_invalidations_total", (("node", "proxy"),))] == 2.0
    assert samples[("tahiry_proxy_entries", (("node", "proxy"),))] == 1.0
    assert samples[("tahiry_proxy_cached_bytes", (("node", "proxy"),))] == 120.0
    assert samples[("tahiry_replication_copies_total", (("server", "m1"),))] == 4.0
    assert samples[("tahiry_replication_failures_total", (("server", "m1"),))] == 1.0
    assert samples[("tahiry_replication_conflicts_total", (("server", "m1"),))] == 1.0
    assert samples[("tahiry_replication_lag_seconds_count", (("server", "m1"),))] == 4.0
    assert samples[("tahiry_replication_lag_seconds_bucket",
                    (("le", "0.01"), ("server", "m1")))] == 3.0
    assert samples[("tahiry_supervisor_last_reload_success", ())] == 0.0
    assert samples[("tahiry_supervisor_servers_handing_over", ())] == 0.0
    pending = view()
    pending.supervisor["handing_over"] = {"m3": "/srv/data/m3"}
    assert scraped(pending)["samples"][("tahiry_supervisor_servers_handing_over", ())] == 1.0


def test_every_name_follows_the_conventions():
    families = scraped(view())["families"]
    for name, family in families.items():
        assert name.startswith("tahiry_"), name
        assert family.documentation, name
        if family.type == "histogram":
            assert name.endswith("_seconds"), name
        if family.type == "counter":
            assert not name.endswith(("_seconds", "_bytes")), name


def test_chart_point_rates_and_a_restarted_counter():
    first, second = view(taken_at=100.0, statements=10), view(taken_at=102.0, statements=50)
    point = chart_point(first, second)
    assert point["throughput"]["m1"] == 20.0
    assert "proxy" not in point["hit_ratio"]   # no read looked the cache up meanwhile
    restarted = chart_point(second, view(taken_at=103.0, statements=3))
    assert "m1" not in restarted["throughput"]  # no rate across a restart, never negative


def test_chart_point_hit_ratio_is_that_of_the_interval_not_since_the_proxy_started():
    """Bug: the chart plotted hits / (hits + misses) since the proxy started: after a
    morning of hits, ten minutes of misses only still drew a line near 100 %."""
    before, after = view(taken_at=100.0), view(taken_at=101.0)
    before.nodes["proxy"].update(hits=990, misses=10)
    after.nodes["proxy"].update(hits=991, misses=13)   # 1 hit, 3 misses in this second
    assert chart_point(before, after)["hit_ratio"]["proxy"] == 0.25
    assert "proxy" not in chart_point(None, after)["hit_ratio"]
    restarted = view(taken_at=102.0)
    restarted.nodes["proxy"].update(hits=2, misses=1)
    assert "proxy" not in chart_point(after, restarted)["hit_ratio"]


def test_chart_point_lag_is_the_mean_of_the_new_copies_only():
    before = view()
    after = view(taken_at=101.0)
    after.replication["m1"]["lag_histogram"] = histogram([1, 3, 1, 0], 0.08)
    assert chart_point(before, after)["lag_ms"]["m1"] == 20.0   # one copy, 0.02 s
    assert "m1" not in chart_point(before, view(taken_at=101.0))["lag_ms"]  # no copy: no lag


def test_history_keeps_only_its_span():
    history = History(span_s=10.0)
    for second in range(30):
        history.add(view(taken_at=100.0 + second))
    assert [point["t"] for point in history.as_list()] == [119.0 + s for s in range(11)]


def test_last_error_prefers_faults_then_replication_then_backends_then_the_exit():
    faulty = row("m1", "server", storage_faults=[
        {"object": "db/tables/t.json", "operation": "read", "reason": "corrupt", "last_seen": 1}])
    assert last_error(faulty, {}, None) == "storage fault: db/tables/t.json (read: corrupt)"
    assert last_error(row("m2", "server", last_exit="killed"), {},
                      {"last_error": "copy failed"}) == "replication: copy failed"
    assert last_error(row("lb", "balancer"), view().nodes["lb"], None) == "backend m2: refused"
    assert last_error(row("m2", "server", last_exit="killed by SIGKILL"), {}, None) \
        == "killed by SIGKILL"
    assert view().as_dict()["nodes"][1]["last_error"] == "replication: copy of db/t failed: disk full"


def test_duration_histogram_buckets_are_upper_bounds():
    timed = DurationHistogram((0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.002, 0.5):
        timed.observe(seconds)
    assert timed.as_dict() == {"le": [0.001, 0.01], "counts": [2, 1, 1],
                               "sum_s": pytest.approx(0.5035)}


def test_replication_stats_count_lags_failures_and_conflicts_per_destination():
    stats = ReplicationStats(logging.getLogger("test"), lag_window=10)
    stats.add_server("m1")
    stats.add_server("m2")
    for lag_ms in (3.0, 40.0, 40_000.0):
        stats.copied("m2", lag_ms)
    stats.copied("m2", None)            # a repair: copied, no lag
    stats.error("m2", "disk full", log=False)
    stats.error("m2", "disk full", log=False)
    stats.conflict("db/tables/t.json", 4, ("m1", "m2"))
    stats.conflict("db/tables/t.json", 4, ("m1", "m2"))   # the same one: counted once
    m2 = stats.snapshot()["m2"]
    assert m2["files_copied"] == 4 and m2["failures"] == 2 and m2["conflicts_found"] == 1
    lag = m2["lag_histogram"]
    assert lag["le"] == list(LAG_BUCKETS_S) and sum(lag["counts"]) == 3
    assert lag["counts"][0] == 1 and lag["counts"][-1] == 1   # 3 ms, and past 30 s
    assert lag["sum_s"] == pytest.approx(40.043)
    assert stats.snapshot()["m1"]["lag_histogram"]["counts"] == [0] * (len(LAG_BUCKETS_S) + 1)


def test_a_node_another_machine_runs_is_up_while_it_answers_with_no_restart_series():
    remote = view()
    remote.rows.append(row("proxy2", "proxycache", state="REMOTE", pid=None, restarts=None,
                           manual_restarts=None, uptime_s=None, remote=True))
    remote.rows.append(row("lb2", "balancer", state="UNREACHABLE", pid=None, restarts=None,
                           manual_restarts=None, uptime_s=None, probe_ms=None, remote=True))
    samples = scraped(remote)["samples"]
    assert samples[("tahiry_node_up", (("kind", "proxycache"), ("node", "proxy2")))] == 1.0
    assert samples[("tahiry_node_up", (("kind", "balancer"), ("node", "lb2")))] == 0.0
    assert samples[("tahiry_node_state",
                    (("kind", "balancer"), ("node", "lb2"), ("state", "UNREACHABLE")))] == 1.0
    assert not [key for key in samples if key[0] in ("tahiry_node_restarts_total",
                                                     "tahiry_node_uptime_seconds")
                and ("node", "proxy2") in key[1]]
