"""/metrics of a supervised cluster: the counters move as the workload says, a kill -9
shows as a state change and a crash restart, `restart NODE` as a manual one; an
HTTP port that is taken does not stop the cluster, a topology edit of the
`http:` section moves the page while everything runs, a refused one leaves it."""

from __future__ import annotations

import json
import os
import signal
import socket

import pytest

from supervisor.topology import load_topology
from supervisor.web import page_address
from tests.conftest import free_port, wait_until
from tests.integration.supervisorkit import all_running
from tests.integration.webkit import fetch, scrape, total, web_yaml

INSERTS = 200
READS = 20
# A killed node stays in BACKOFF this long: long enough to be seen, not a race.
SLOW_BACKOFF = ("backoff_initial_ms: 100\n    backoff_max_ms: 2000",
                "backoff_initial_ms: 2000\n    backoff_max_ms: 4000")


def slow_backoff(text: str) -> str:
    assert SLOW_BACKOFF[0] in text
    return text.replace(*SLOW_BACKOFF)


def workload(cluster, inserts: int, reads: int) -> None:
    """A database, a table, `inserts` single-row inserts and `reads` equal reads (proxy)."""
    answers = cluster.session("manamboara tahiry metrika;", "ampiasao metrika;",
                              "manamboara tabilao t (id ISA(0,1000000));",
                              *(f"manampia ao@ t sanda ({i});" for i in range(inserts)),
                              *(["alaivo * ao@ t rehefa id = 1;"] * reads))
    assert not any("Hadisoana" in answer for answer in answers), answers[:5]


@pytest.mark.slow
def test_metrics_follow_the_workload_a_kill_and_a_restart(cluster):
    taken, free = free_port(), free_port()
    cluster.ports["http"] = taken
    cluster.write(text=slow_backoff(web_yaml(cluster.ports)))
    with socket.socket() as squatter:   # another program holds the page's port
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        assert cluster.up().returncode == 0, cluster.supervisor_log()
        assert all_running(cluster.nodes())
        assert "status page: cannot listen on 127.0.0.1:" in cluster.supervisor_log()
        assert page_address(load_topology(cluster.topology)) is None

        # A topology edit of the http section moves the page, nothing else restarts.
        pids = {node: row["pid"] for node, row in cluster.nodes().items()}
        cluster.ports["http"] = free
        cluster.write(text=slow_backoff(web_yaml(cluster.ports)))
        base = f"http://127.0.0.1:{free}"
        wait_until(lambda: page_address(load_topology(cluster.topology)) == base + "/",
                   20, "the page on its new port")
    assert {node: row["pid"] for node, row in cluster.nodes().items()} == pids
    assert cluster.status()["supervisor"]["page"] == base + "/"
    table = cluster.cli("status")
    assert f"status page: {base}/   (metrics: {base}/metrics)" in table.stdout, table.stdout

    def scraped_when(predicate, what: str):
        return wait_until(lambda: (lambda s: s if predicate(s) else None)(scrape(base + "/metrics")),
                          20, what)

    before = scraped_when(lambda s: total(s, "tahiry_node_up") == 4, "every node up")
    workload(cluster, INSERTS, READS)
    after = scraped_when(
        lambda s: total(s, "tahiry_server_statements_total")
        >= total(before, "tahiry_server_statements_total") + INSERTS
        and total(s, "tahiry_replication_copies_total") > 0
        and total(s, "tahiry_proxy_hits_total") >= READS - 1,
        f"{INSERTS} more statements on the servers, copies, cache hits")
    written = total(after, "tahiry_balancer_routed_total", kind="write") \
        - total(before, "tahiry_balancer_routed_total", kind="write")
    assert written >= INSERTS
    timed = total(after, "tahiry_server_statement_seconds_count") \
        - total(before, "tahiry_server_statement_seconds_count")
    assert timed >= INSERTS
    assert total(after, "tahiry_server_commits_total") >= INSERTS   # one at a time: no batching
    assert total(after, "tahiry_replication_lag_seconds_count") > 0
    assert total(after, "tahiry_proxy_misses_total") >= 1

    # kill -9 m1: down, then a crash restart.
    os.kill(cluster.nodes()["m1"]["pid"], signal.SIGKILL)
    down = scraped_when(lambda s: total(s, "tahiry_node_up", node="m1") == 0, "m1 down")
    assert total(down, "tahiry_node_state", node="m1", state="RUNNING") == 0
    assert total(down, "tahiry_node_up", node="m2") == 1
    scraped_when(lambda s: total(s, "tahiry_node_up", node="m1") == 1
                 and total(s, "tahiry_node_restarts_total", node="m1", reason="crash") == 1
                 and total(s, "tahiry_balancer_backend_transitions_total", node="lb",
                           backend="m1", state="ONLINE") >= 1,
                 "m1 running again after one crash restart, lb sees it back ONLINE")

    # The operator's restart counts as manual, not as a crash.
    assert cluster.cli("restart", "m2", str(cluster.topology)).returncode == 0
    final = scraped_when(lambda s: total(s, "tahiry_node_restarts_total", node="m2",
                                         reason="manual") == 1, "m2's manual restart")
    assert total(final, "tahiry_node_restarts_total", node="m2", reason="crash") == 0
    status = json.loads(fetch(base + "/api/status"))
    assert [row["node"] for row in status["nodes"]] == ["m1", "m2", "lb", "proxy"]
    assert status["history"] and "throughput" in status["history"][-1]
    assert total(final, "tahiry_supervisor_last_reload_success") == 1   # the port's move

    # A refused edit leaves the page where it is, and says why.
    cluster.write(text=slow_backoff(web_yaml(cluster.ports)).replace(
        f"port: {free}", "port: 99999"))
    scraped_when(lambda s: total(s, "tahiry_supervisor_last_reload_success") == 0,
                 "the refused edit")
    refused = json.loads(fetch(base + "/api/status"))["supervisor"]["last_reload"]
    assert not refused["ok"] and "http.port: must be between 1 and 65535" in refused["message"]


@pytest.mark.slow
def test_status_says_why_the_page_is_not_served(cluster):
    """Bug: with the page's port held by another program, `status` printed no page line at
    all (and `--json` a null page): nothing told the operator the page was down, or why."""
    taken = free_port()
    cluster.ports["http"] = taken
    cluster.write(text=web_yaml(cluster.ports))
    with socket.socket() as squatter:   # another program holds the page's port
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        assert cluster.up().returncode == 0, cluster.supervisor_log()
        table = cluster.cli("status", str(cluster.topology)).stdout
        assert f"status page: not served: cannot listen on 127.0.0.1:{taken}" in table, table
        assert cluster.status()["supervisor"]["page_error"].startswith(
            f"cannot listen on 127.0.0.1:{taken}")
