"""The one relay under the supervisor: a proxy cache running the balancer in its process.

One supervised cluster (m1, m2 and `relay`, a `proxycache` given
`backends: [m1, m2]` instead of an upstream; no separate balancer) with
accounts on. Through the relay:

- `status` shows the relay's hit ratio and its servers as its balancer
  sees them, and its `.status;` carries both the cache's and the
  balancer's figures;
- reads are answered from the cache, and a write makes the next read
  fresh;
- a student's login works, a wrong password is refused and closes the
  connection, and a revoke stops the student's cached read at once;
- kill -9 of a server under reads loses none (the in-process balancer
  fails over, as a separate one does: tests/integration/test_failover.py),
  and the supervisor brings the server back.

The tests run in this order on the one cluster.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.integration.supervisorkit import Cluster, all_running, servers_yaml
from tests.integration.wire import WireClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ADMIN = "mpampianatra"
ADMIN_PASSWORD_ENV = "TAHIRY_ADMIN_PASSWORD"
ADMIN_PW = "teacher-" + secrets.token_hex(10)
STUDENT_PW = "student-" + secrets.token_hex(10)
DEADLINE_S = 20.0
ROWS = [[i, f"v{i}"] for i in range(5)]


def relay_yaml(ports: dict[str, int]) -> str:
    return servers_yaml(ports, ("m1", "m2"), sections=f"accounts: {{admin: {ADMIN}}}\n") + (
        f"  relay:\n    kind: proxycache\n    host: 127.0.0.1\n"
        f"    port: {ports['proxy']}\n    backends: [m1, m2]\n"
        f"    ttl_ms: 3000\n    max_entries: 200\n")


class RelayCluster(Cluster):
    """m1, m2 and the one relay, accounts on; the CLI runs with the teacher's password."""

    def __init__(self, workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir)
        self.write(text=relay_yaml(self.ports))

    def cli_environment(self) -> dict[str, str]:
        return {**super().cli_environment(), ADMIN_PASSWORD_ENV: ADMIN_PW}

    def login(self, name: str = ADMIN, password: str | None = None) -> WireClient:
        client = WireClient(self.ports["proxy"])
        answer = client.one(f'.login {name} "{password or ADMIN_PW}";')
        assert answer.ok, f"login of {name}: {answer.message}"
        return client

    def relay_status(self) -> dict:
        with WireClient(self.ports["proxy"]) as probe:   # `.status;` needs no login
            return probe.status()


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    cluster = RelayCluster(tmp_path_factory.mktemp("relay") / "cluster")
    try:
        started = cluster.up()
        assert started.returncode == 0, f"{started.stdout}{started.stderr}{cluster.supervisor_log()}"
        cluster.wait_for(all_running, "every node RUNNING")
        yield cluster
    finally:
        leftovers = cluster.down_and_reap()
        assert leftovers == [], f"processes survived `down`: {leftovers}"


def served_from_cache(cluster: RelayCluster, client: WireClient, statement: str,
                      rows: list[list]) -> bool:
    """`statement` gives `rows`, and the relay answered it from its cache."""
    hits = cluster.relay_status()["hits"]
    assert client.rows(statement) == rows
    return cluster.relay_status()["hits"] > hits


def test_status_shows_the_cache_and_the_balancer_of_the_relay(relay):
    status = relay.relay_status()
    assert status["kind"] == "proxycache" and status["upstream"] == "in-process balancer"
    assert {"hits", "misses", "entries"} <= set(status)
    assert {b: f["state"] for b, f in status["balancer"]["backends"].items()} == {
        "m1": "ONLINE", "m2": "ONLINE"}
    assert "counters" in status["balancer"]
    table = relay.cli("status", str(relay.topology))
    line = next(line for line in table.stdout.splitlines() if line.startswith("relay "))
    assert "proxycache" in line and "balancer in process: m1 ONLINE, m2 ONLINE" in line
    rows = {row["node"]: row for row in relay.status()["nodes"]}
    assert rows["relay"]["backends"] == {"m1": "ONLINE", "m2": "ONLINE"}
    assert "lb" not in rows   # no separate balancer process


def test_reads_are_cached_and_a_write_makes_the_next_read_fresh(relay):
    with relay.login() as admin:
        admin.ok("manamboara tahiry db;")
        admin.ok("ampiasao db;")
        admin.ok("manamboara tabilao t (a ISA(null,null), b LAHATSORATRA(null,null));")
        values = ", ".join(f"({a}, '{b}')" for a, b in ROWS)
        admin.ok(f"manampia ao@ t sanda {values};")
        # An account's read is cached once every server holds the same rights (milliseconds).
        wait_until(lambda: served_from_cache(relay, admin, "alaivo a, b ao@ t;", ROWS),
                   DEADLINE_S, "a read answered from the relay's cache")
        admin.ok("manampia ao@ t sanda (5, 'v5');")
        assert admin.rows("alaivo a, b ao@ t;") == [*ROWS, [5, "v5"]]
        admin.ok("fafao ao@ t rehefa a = 5;")
        assert admin.rows("alaivo a, b ao@ t;") == ROWS
    assert relay.relay_status()["balancer"]["counters"]["writes"] >= 3


def test_a_login_is_checked_and_a_revoke_refuses_a_cached_read_at_once(relay):
    with relay.login() as admin:
        admin.ok(f'manamboara mpampiasa soa tenimiafina "{STUDENT_PW}";')
        admin.ok("omeo soa zo mamaky ao@ db;")
    with WireClient(relay.ports["proxy"]) as guessing:
        answer = guessing.one('.login soa "not-the-password";')
        assert not answer.ok and "not-the-password" not in answer.message
        assert guessing.closed_by_peer()
    with relay.login("soa", STUDENT_PW) as soa, relay.login() as admin:
        soa.ok("ampiasao db;")
        wait_until(lambda: served_from_cache(relay, soa, "alaivo a, b ao@ t;", ROWS),
                   DEADLINE_S, "soa's read answered from the relay's cache")
        assert not soa.one("manampia ao@ t sanda (9, 'soa');").ok
        admin.ok("esory soa zo mamaky ao@ db;")
        answer = soa.one("alaivo a, b ao@ t;")   # at once: the cached answer is not served
        assert not answer.ok and "Tsy manana zo mamaky ny tahiry db" in answer.message


def test_kill_9_of_a_server_under_reads_loses_no_read(relay):
    readers = [relay.login() for _ in range(3)]
    failures: list[str] = []
    reads: Counter = Counter()
    stop = threading.Event()

    def read_loop(client: WireClient, name: int) -> None:
        client.ok("ampiasao db;")
        n = 0
        while not stop.is_set():
            # Each read its own text: a cache miss, answered through the balancer.
            n += 1
            response = client.one(f"alaivo a, b ao@ t rehefa a < {5 + n * 10 + name};")
            if not response.ok or response.relation.rows != ROWS:
                failures.append(response.message)
            reads[name] += 1

    threads = [threading.Thread(target=read_loop, args=(c, i)) for i, c in enumerate(readers)]
    for thread in threads:
        thread.start()
    before_kill = relay.nodes()
    try:
        wait_until(lambda: sum(reads.values()) >= 60, DEADLINE_S, "reads before the kill")
        os.kill(before_kill["m2"]["pid"], signal.SIGKILL)
        killed_at = sum(reads.values())
        wait_until(lambda: sum(reads.values()) >= killed_at + 150, DEADLINE_S,
                   "reads after the kill")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for client in readers:
            client.close()
    assert failures == []
    relay.wait_for(lambda nodes: all_running(nodes)
                   and nodes["m2"]["pid"] != before_kill["m2"]["pid"],
                   "m2 restarted by the supervisor")
    assert relay.relay_status()["balancer"]["counters"]["statements"] > 150
