"""Logins, failures and sessions per account: from a server's `.status;` to the status row,
the `status` command's accounts table and the Prometheus families (counts only)."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client.parser import text_string_to_metric_families

from supervisor.account_stats import account_totals, server_accounts
from supervisor.cluster import Cluster
from supervisor.status_table import render_accounts, render_running
from supervisor.topology import parse_topology
from supervisor.web.metrics import ClusterCollector, exposition
from supervisor.web.view import ClusterView
from tests.conftest import free_port
from tests.integration.supervisorkit import cluster_yaml
from tests.supervisor.test_cluster_status import stand_in_node

M1_STATUS = {"statements": 4, "login_failures_unknown": 2,
             "accounts": {"rabe": {"logins": 3, "failures": 1, "sessions": 1},
                          "mpampianatra": {"logins": 1, "failures": 0, "sessions": 0}}}
M2_STATUS = {"accounts": {"rabe": {"logins": 2, "failures": 0, "sessions": 1},
                          "soa": {"logins": 1, "failures": 4, "sessions": 0}}}


def server_row(node: str, status: dict | None) -> dict:
    return {"node": node, "kind": "server", "address": "127.0.0.1:1", "pid": 10,
            "state": "RUNNING", "uptime_s": 5.0, "restarts": 0, "manual_restarts": 0,
            "probe_ms": 1.5, "last_exit": None, **server_accounts(status)}


def test_a_server_status_gives_the_row_its_counts_per_account():
    assert server_row("m1", M1_STATUS)["accounts"] == {
        "mpampianatra": {"logins": 1, "failures": 0, "sessions": 0},
        "rabe": {"logins": 3, "failures": 1, "sessions": 1}}
    assert server_row("m1", M1_STATUS)["login_failures_unknown"] == 2


def test_without_a_separate_count_of_unknown_names_that_line_is_left_out():
    rows = [server_row("m2", M2_STATUS)]
    assert account_totals(rows)[1] is None  # type: ignore[index]
    assert render_accounts(rows).splitlines()[-1].startswith("soa ")  # type: ignore[union-attr]


def test_accounts_off_or_an_unanswered_status_adds_nothing():
    assert server_accounts({"statements": 3}) == {}
    assert server_accounts(None) == {}
    assert render_accounts([server_row("m1", {"statements": 3}), server_row("m2", None)]) is None
    # What a server with accounts off answers (`./tahiry status` showed an empty table).
    off = {"statements": 3, "accounts_required": False, "login_failures_unknown": 0,
           "accounts": {}}
    assert server_accounts(off) == {}
    assert render_accounts([server_row("m1", off), server_row("m2", off)]) is None


def test_malformed_figures_are_left_out_not_trusted():
    status = {"accounts": {"rabe": {"logins": -3, "failures": "many", "sessions": True},
                           "soa": ["not", "a", "mapping"], "7": {"logins": 1}},
              "login_failures_unknown": "x"}
    assert server_accounts(status) == {"accounts": {
        "7": {"logins": 1, "failures": 0, "sessions": 0},
        "rabe": {"logins": 0, "failures": 0, "sessions": 0}}, "running_statements": []}
    assert server_accounts({"accounts": "rabe"}) == {}


def test_the_statements_running_now_are_listed_longest_first_and_malformed_ones_left_out():
    slow = {"account": "rabe", "database": "rabe_db", "seconds": 2.5,
            "statement": "alaivo count(*) ao@ t a tonona t b ka a.x > b.x"}
    status = {**M1_STATUS, "running": [slow, {"account": 3, "seconds": 1, "statement": "x"},
                                       {"account": "soa", "seconds": True, "statement": "x"},
                                       "alaivo", {"account": "soa", "database": None,
                                                  "seconds": 9, "statement": "alaivo 1"}]}
    row = {**server_row("m1", status),
           "running_statements": server_accounts(status, "m1")["running_statements"]}
    assert row["running_statements"] == [{"server": "m1", **slow},
                              {"server": "m1", "account": "soa", "database": None,
                               "seconds": 9.0, "statement": "alaivo 1"}]
    lines = render_running([row, server_row("m2", M2_STATUS)]).splitlines()  # type: ignore[union-attr]
    assert lines[0].startswith("running now") and "accounts stop NAME" in lines[0]
    assert lines[1].split() == ["SERVER", "ACCOUNT", "DATABASE", "SECONDS", "STATEMENT"]
    assert lines[2].split()[:4] == ["m1", "soa", "-", "9.0"]
    assert lines[3].split()[:4] == ["m1", "rabe", "rabe_db", "2.5"] and lines[3].endswith("b.x")
    assert render_running([server_row("m2", M2_STATUS)]) is None


def test_the_status_command_sums_the_servers_per_account():
    rows = [server_row("m1", M1_STATUS), server_row("m2", M2_STATUS),
            {"node": "lb", "kind": "balancer", "accounts": {"ignored": {"logins": 9}}}]
    totals, unknown = account_totals(rows) or ({}, -1)
    assert {name: (t.sessions, t.logins, t.failures) for name, t in totals.items()} == {
        "mpampianatra": (0, 1, 0), "rabe": (2, 5, 1), "soa": (0, 1, 4)}
    assert unknown == 2
    # One student through the balancer holds a connection on each server it reached: the
    # column said SESSIONS 2 for one session. It says what it counts.
    assert render_accounts(rows) == (
        "accounts (counted by the servers since they started; CONNECTIONS: logged in on the "
        "servers now, not students: one session through the balancer holds one, and counted "
        "a login, on each server it reached):\n"
        "ACCOUNT       CONNECTIONS  LOGINS  FAILURES\n"
        "mpampianatra  0            1       0\n"
        "rabe          2            5       1\n"
        "soa           0            1       4\n"
        "failed logins naming no account: 2")


def test_the_metrics_have_one_series_per_server_and_account():
    view = ClusterView(taken_at=1.0, supervisor={"uptime_s": 1.0},
                       rows=[server_row("m1", M1_STATUS), server_row("m2", M2_STATUS)])
    families = {family.name: family for family in text_string_to_metric_families(
        exposition(ClusterCollector(lambda: view)).decode())}
    logins = {(s.labels["node"], s.labels["account"]): s.value
              for s in families["tahiry_account_logins"].samples if s.name.endswith("_total")}
    assert logins == {("m1", "mpampianatra"): 1.0, ("m1", "rabe"): 3.0, ("m2", "rabe"): 2.0,
                      ("m2", "soa"): 1.0}
    sessions = {(s.labels["node"], s.labels["account"]): s.value
                for s in families["tahiry_account_sessions"].samples}
    assert sessions[("m1", "rabe")] == 1.0 and sessions[("m2", "soa")] == 0.0
    failures = {(s.labels["node"], s.labels["account"]): s.value
                for s in families["tahiry_account_login_failures"].samples
                if s.name.endswith("_total")}
    assert failures[("m2", "soa")] == 4.0
    unknown = [(s.labels["node"], s.value)
               for s in families["tahiry_account_login_failures_unknown"].samples
               if s.name.endswith("_total")]
    assert unknown == [("m1", 2.0)]
    text = exposition(ClusterCollector(lambda: view)).decode()
    assert "password" not in text.lower()


def test_the_cluster_status_row_of_a_server_carries_its_accounts(tmp_path):
    ports = {name: free_port() for name in ("control", "m1", "m2", "m3", "lb", "proxy")}
    path = tmp_path / "topology.yaml"
    path.write_text(cluster_yaml(ports) + "accounts: true\n")
    cluster = Cluster(parse_topology(path.read_text(), path, {}), logging.getLogger("test"))

    async def scenario() -> dict:
        asked: list[bytes] = []
        node = await stand_in_node(ports["m1"], M1_STATUS, asked)
        try:
            row = {"node": "m1", "kind": "server", "state": "RUNNING"}
            return {**row, **await cluster._node_extra(row, {})}
        finally:
            node.close()
    row = asyncio.run(scenario())
    assert row["accounts"]["rabe"] == {"logins": 3, "failures": 1, "sessions": 1}
    assert row["login_failures_unknown"] == 2
