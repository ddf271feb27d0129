"""Write leases across three machines: the majority side writes on while one is lost or cut.

The machines of tests/integration/test_machines_faults.py (network
namespaces: m1 on h1, m2 on h2, the balancer on h3; each machine's
supervisor is a voter, h3's too), with `write_leases: {enabled: true}`
(docs/REPLICATION.md, "Write leases"). Without it (main's behaviour, the
default), every write stays refused while a server is unreachable: the
assertions "m1 writes again" below fail there.

1. h2 killed whole under load through the balancer: once the majority
   (h1, h3) excluded h2, m1 takes writes again; h2 started again catches
   m2 up and is re-admitted; no acknowledged write lost, replicas identical.
2. h2 cut from h1 and h3 while clients write to m2 straight from h2: m2
   refuses writes once its lease lapses (its supervisor cannot renew it
   without a majority), m1 writes; healed, h2 is re-admitted, m2 writes
   again, nothing acknowledged lost, replicas identical.
"""

from __future__ import annotations

import json
import sys
import time

import pytest

from tests.conftest import wait_until
from tests.integration.machinekit import ROOT
from tests.integration.test_machines_faults import Cluster, _converged, three_machines

pytestmark = pytest.mark.slow

LEASES = "write_leases: {enabled: true, lease_s: 3, renew_s: 1, margin_s: 1}\n"
LAPSE_S = 2.0       # lease_s - margin_s: the lease's end after the last majority's round
EXCLUDED_BY_S = 20  # generous: grants dead after 4 s, then one decision's round trips

# One insert straight to a server; prints the answer's message (run inside a machine).
INSERT = """\
import os, socket, sys
from nodes.protocol import ResponseDecoder, auth_request
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)
s.settimeout(10)
s.sendall(auth_request(os.environ["TAHIRY_SECRET"]) + b"ampiasao sekoly;manampia ao@ t sanda (-5);")
decoder, out = ResponseDecoder(), []
while len(out) < 3:
    out += decoder.feed(s.recv(1 << 16))
print(out[-1].message)
"""


@pytest.fixture
def cluster(tmp_path):
    yield from three_machines(tmp_path, LEASES)


def leases(cluster: Cluster, machine: str) -> dict:
    """What `status --json` on `machine` says of the write leases (epoch, machines, lease)."""
    answer = cluster.supervisors.run(machine, "status", "--json")
    assert answer.returncode == 0, answer.stdout + answer.stderr
    found = json.loads(answer.stdout)["supervisor"].get("write_leases")
    assert found is not None, "write leases are not on"
    return found


def state_of(cluster: Cluster, machine: str, of: str) -> str | None:
    return leases(cluster, machine)["machines"].get(cluster.machines.address(of))


def converged(cluster: Cluster, acked: set[int]) -> list[int]:
    """Both replicas identical with every acknowledged write; else what differs, said."""
    try:
        return wait_until(lambda: _converged(cluster, acked), 60,
                          "both replicas identical, with every acknowledged write")
    except AssertionError:
        first, second = set(cluster.rows("m1") or []), set(cluster.rows("m2") or [])
        raise AssertionError(f"m1 {len(first)} rows, m2 {len(second)}; acknowledged missing "
                             f"on m1 {sorted(acked - first)[:10]}, on m2 "
                             f"{sorted(acked - second)[:10]}; only on m1 "
                             f"{sorted(first - second)[:10]}, only on m2 "
                             f"{sorted(second - first)[:10]}") from None


def grows(cluster: Cluster, server: str, beyond: int) -> list[int] | None:
    rows = cluster.rows(server)
    return rows if rows is not None and len(rows) > beyond else None


def test_a_killed_machine_is_excluded_the_majority_writes_and_it_returns(cluster):
    cluster.up()
    cluster.start_load("h3", "lb", 1)
    wait_until(lambda: len(cluster.rows("m1") or []) >= 20, 20, "writes through the balancer")
    killed_at = time.time()
    assert cluster.machines.kill_all("h2")
    at_kill = len(cluster.rows("m1") or [])
    # Main's code: m1 refuses every write from here on (it cannot certify against m2).
    wait_until(lambda: grows(cluster, "m1", at_kill + 20), EXCLUDED_BY_S,
               "m1 writing again once h2 is excluded by h1 and h3")
    resumed_s = time.time() - killed_at
    assert state_of(cluster, "h1", "h2") == "excluded"
    assert state_of(cluster, "h3", "h2") == "excluded"
    table = cluster.supervisors.run("h1", "status").stdout
    h2 = cluster.machines.address("h2")
    assert f"{h2} excluded" in table and "lease" in table and ": excluded" in table, table
    assert "votes, runs no server" in cluster.supervisors.run("h3", "status").stdout

    back_at = time.time()
    came_back = cluster.supervisors.run("h2", "up", "-d")
    assert came_back.returncode == 0, came_back.stdout + came_back.stderr
    wait_until(lambda: state_of(cluster, "h1", "h2") == "member", 40,
               "h2 re-admitted (joining, caught up, then member)")
    admitted_s = time.time() - back_at
    on_h2 = leases(cluster, "h2")
    assert on_h2["epoch"] >= 3 and on_h2["machines"][cluster.machines.address("h2")] == "member"
    wait_until(lambda: leases(cluster, "h2")["lease_left_s"], 10, "h2 holding a write lease")
    time.sleep(2)   # writes go on through the balancer with both servers (part of the scenario)
    load = cluster.stop_loads()["h3->lb"]
    acked = {pair[0] for pair in load["acked"]}
    rows = converged(cluster, acked)
    during = [pair for pair in load["acked"] if killed_at < pair[1] < back_at]
    print(f"\nmachine loss with write leases: {len(acked)} writes acknowledged, {len(rows)} "
          f"rows on each server; writes resumed {resumed_s:.1f} s after the loss; "
          f"{len(during)} acknowledged while h2 was away; h2 re-admitted {admitted_s:.1f} s "
          f"after its `up`")
    assert acked <= set(rows)
    assert during


def test_a_cut_machine_stops_writing_when_its_lease_lapses_the_majority_writes(cluster):
    cluster.up()
    cluster.start_load("h3", "lb", 1)
    cluster.start_load("h1", "m1", 1_000_000, reads=False)
    cluster.start_load("h2", "m2", 2_000_000, reads=False)
    wait_until(lambda: len(cluster.rows("m1") or []) >= 30, 20, "writes from every client")
    cluster.machines.cut("h2")   # h2 reaches nobody, nobody reaches h2
    cut_at = time.time()   # once `ip` returned: the cut is in force (under load it takes a while)
    at_cut = len(cluster.rows("m1") or [])
    # Main's code: m1 refuses every write while m2 is unreachable.
    wait_until(lambda: grows(cluster, "m1", at_cut + 20), EXCLUDED_BY_S,
               "m1 writing again once h2 is excluded by h1 and h3")
    assert state_of(cluster, "h1", "h2") == "excluded"
    cut_s = time.time() - cut_at
    on_h2 = leases(cluster, "h2")   # h2's own view: no lease, it never learned the exclusion
    assert on_h2["lease_left_s"] is None, on_h2
    refused = cluster.machines.run("h2", [sys.executable, "-c", INSERT,
                                          cluster.machines.address("h2"), "4102"],
                                   env=cluster.supervisors.environment, cwd=str(ROOT))
    assert "fahazoan-dalana" in refused.stdout, refused.stdout + refused.stderr   # no lease

    cluster.machines.heal("h2")
    healed_at = time.time()
    wait_until(lambda: state_of(cluster, "h1", "h2") == "member", 40,
               "h2 re-admitted after the heal")
    readmitted_at = time.time()
    before = set(cluster.rows("m2") or [])
    wait_until(lambda: any(row >= 2_000_000 and row not in before
                           for row in cluster.rows("m2") or []), 20,
               "a write straight to m2 acknowledged after its re-admission")
    results = cluster.stop_loads()
    acked = {pair[0] for result in results.values() for pair in result["acked"]}
    rows = converged(cluster, acked)
    # L1: a write whose lease check comes after the lease's end is refused. One
    # sent after it can only be checked after it; one checked just before may
    # still be answered after it (its fsync and answer come after the check:
    # over a second on a loaded machine), which is no second writer.
    on_m2_late = [pair for pair in results["h2->m2"]["acked"]
                  if cut_at + LAPSE_S + 0.5 < pair[2] < healed_at]
    on_m1 = [pair for pair in results["h1->m1"]["acked"] if cut_at + 3 < pair[1] < healed_at]
    print(f"\npartition with write leases: {len(acked)} acknowledged, {len(rows)} rows on each "
          f"server; m1 writing again {cut_s:.1f} s after the cut ({len(on_m1)} acknowledged "
          f"during it); m2 acknowledged {len(on_m2_late)} sent after its lease's end; h2 re-admitted "
          f"{readmitted_at - healed_at:.1f} s after the heal")
    assert acked <= set(rows)
    assert not on_m2_late, ([[row, round(sent - cut_at, 3), round(at - cut_at, 3)]
                             for row, at, sent in on_m2_late[:5]],
                            [[round(at - cut_at, 3), row, why[:80]]
                             for at, row, why in results["h2->m2"]["write_errors"]
                             if abs(at - cut_at) < 5][:8])
    assert on_m1
