"""Unit tests of nodes.backend_pool: applying configurations, candidates, transitions."""

from __future__ import annotations

import logging

from nodes.balancer.backend_config import BackendSpec
from nodes.balancer.backend_pool import BUSY_HOLD_S, BackendPool
from nodes.balancer.backends import BUSY_PREFIX
from nodes.balancer.health import BackendState, HealthPolicy
from tests.conftest import ManualClock

LOG = logging.getLogger("test.backend_pool")


class RecordingConnection:
    """Stands in for a BackendConnection: only `close`, and how many answers it awaits,
    matter to the pool."""

    def __init__(self, backend, waiting: int = 0):
        self.backend = backend
        self.closed = False
        self.waiting = waiting
        backend.connections.add(self)

    def close(self) -> None:
        self.closed = True
        self.backend.connections.discard(self)


def pool_of(*specs: BackendSpec) -> BackendPool:
    pool = BackendPool(HealthPolicy(rise=2, fall=2), LOG, ManualClock())
    pool.apply_specs(list(specs))
    return pool


def test_new_backends_wait_for_a_probe_and_shunned_ones_are_a_last_resort():
    pool = pool_of(BackendSpec("m1", "h", 1), BackendSpec("m2", "h", 2, writable=False))
    assert {b.health.state for b in pool} == {BackendState.SHUNNED}
    assert sorted(pool.candidates()) == ["m1", "m2"]            # none ONLINE: fall back
    pool.record_success(pool["m2"])
    assert pool.candidates() == ["m2"]
    assert pool.candidates(writable_only=True) == ["m1"]        # SHUNNED fallback for writes
    assert pool.online_writable() == []                         # but never for database DDL


def test_apply_specs_keeps_unchanged_backends_and_replaces_moved_ones():
    pool = pool_of(BackendSpec("m1", "h", 1), BackendSpec("m2", "h", 2))
    m1, m2 = pool["m1"], pool["m2"]
    pool.record_success(m1)
    connection = RecordingConnection(m2)
    pool.apply_specs([BackendSpec("m1", "h", 1, writable=False), BackendSpec("m2", "h", 9),
                      BackendSpec("m3", "h", 3)])
    assert pool["m1"] is m1 and not m1.spec.writable and m1.health.state is BackendState.ONLINE
    assert pool["m2"] is not m2 and not pool.holds(m2) and connection.closed
    assert sorted(b.id for b in pool) == ["m1", "m2", "m3"]
    assert pool.retiring() == {}
    busy, idle = RecordingConnection(m1, waiting=2), RecordingConnection(m1)
    pool.apply_specs([])
    assert len(pool) == 0
    # A statement on its way to a removed backend is not cut: its connection stays
    # until answered (BackendConnection.let_go_if_idle), the backend listed meanwhile.
    assert idle.closed and not busy.closed
    assert pool.retiring() == {"m1": 2}
    busy.close()
    assert pool.retiring() == {}


def test_reads_avoid_a_lagging_backend_while_another_answers():
    pool = pool_of(BackendSpec("m1", "h", 1), BackendSpec("m2", "h", 2, lagging=True))
    for backend in pool:
        pool.record_success(backend)
    assert pool.candidates() == ["m1"]                           # reads: not the lagging one
    assert sorted(pool.candidates(writable_only=True)) == ["m1", "m2"]   # writes unchanged
    pool.record_failure(pool["m1"], "down")
    pool.record_failure(pool["m1"], "down")
    assert pool.candidates() == ["m2"]                           # the only one: still used
    m2 = pool["m2"]
    pool.apply_specs([BackendSpec("m1", "h", 1), BackendSpec("m2", "h", 2)])
    assert pool["m2"] is m2 and not m2.spec.lagging and pool.status()["m2"]["lagging"] is False


def test_going_offline_aborts_connections_and_counts_one_failover():
    pool = pool_of(BackendSpec("m1", "h", 1))
    backend = pool["m1"]
    pool.record_success(backend)
    connection = RecordingConnection(backend)
    pool.record_failure(backend, "refused")
    assert backend.health.state is BackendState.SHUNNED and not connection.closed
    pool.record_failure(backend, "refused")
    assert backend.health.state is BackendState.OFFLINE and connection.closed
    assert pool.failovers == 1
    assert pool.status()["m1"]["state"] == "OFFLINE"


def test_an_accounts_statement_avoids_backends_behind_on_the_rights_and_never_empties():
    pool = pool_of(BackendSpec("m1", "h", 1), BackendSpec("m2", "h", 2), BackendSpec("m3", "h", 3))
    for backend in pool:
        pool.record_success(backend)
    assert sorted(pool.candidates(rights_current=True)) == ["m1", "m2", "m3"]  # nothing known
    pool.saw_rights("m1", 7)
    pool.saw_rights("m2", 6)          # a revoke on m1 that m2 has not received yet
    assert sorted(pool.candidates(rights_current=True)) == ["m1", "m3"]   # m3 not known: kept
    assert sorted(pool.candidates()) == ["m1", "m2", "m3"]                # others: every one
    pool.saw_rights("m2", 7)          # replication brought it
    assert sorted(pool.candidates(rights_current=True)) == ["m1", "m2", "m3"]
    pool.saw_rights("m1", 8)
    pool.record_failure(pool["m1"], "down")
    pool.record_failure(pool["m1"], "down")   # OFFLINE: the newest among those left counts
    assert sorted(pool.candidates(rights_current=True)) == ["m2", "m3"]
    pool.saw_rights("nobody", 9)      # an id the pool does not hold: ignored
    assert pool.status()["m2"]["rights_generation"] == 7


def test_kept_candidates_follow_every_health_configuration_and_busy_change():
    """The candidates are kept between events: each event that may change them is seen."""
    clock = ManualClock()
    pool = BackendPool(HealthPolicy(rise=1, fall=1), LOG, clock)
    pool.apply_specs([BackendSpec("m1", "h", 1), BackendSpec("m2", "h", 2)])
    for backend in pool:
        pool.record_success(backend)

    def fresh(writable_only: bool = False) -> list[str]:
        return pool._work_out_candidates(writable_only)

    assert pool.candidates() == fresh() == ["m1", "m2"]
    pool.candidates().append("junk")                    # a caller's copy
    assert pool.candidates() == ["m1", "m2"]
    pool.record_failure(pool["m1"], "connection refused")   # health moves
    assert pool.candidates() == fresh() == ["m2"]
    assert pool.candidates(writable_only=True) == fresh(True) == ["m2"]
    pool.record_success(pool["m1"])
    assert pool.candidates() == fresh() == ["m1", "m2"]
    pool.apply_specs([BackendSpec("m1", "h", 1), BackendSpec("m2", "h", 2, lagging=True)])
    assert pool.candidates() == fresh() == ["m1"]       # configuration changes
    pool.apply_specs([BackendSpec("m1", "h", 1), BackendSpec("m2", "h", 2)])
    assert pool.candidates() == fresh() == ["m1", "m2"]
    pool.record_failure(pool["m2"], BUSY_PREFIX + "too many connections")   # a busy hold
    assert pool.candidates() == fresh() == ["m1"]
    assert pool.candidates(writable_only=True) == ["m1", "m2"]   # writes keep their owners
    clock.now += BUSY_HOLD_S + 1                        # the hold ends with time alone
    assert pool.candidates() == fresh() == ["m1", "m2"]


def test_write_fallbacks_offer_the_shunned_the_rising_the_offline_never_a_catching_up_one():
    pool = pool_of(BackendSpec("m1", "h", 1), BackendSpec("m2", "h", 2), BackendSpec("m3", "h", 3),
                   BackendSpec("m4", "h", 4, writable=False))
    for backend in pool:
        pool.record_success(backend)                  # all ONLINE
    for backend_id in ("m1", "m2", "m4"):
        pool.record_failure(pool[backend_id], "Connection refused")
        pool.record_failure(pool[backend_id], "Connection refused")   # OFFLINE
    pool.record_failure(pool["m3"], "Connection refused")             # SHUNNED
    assert pool.candidates(writable_only=True) == ["m3"]
    assert pool.write_fallbacks(["m3"]) == ["m1", "m2"]   # (one attempt each)
    pool.record_success(pool["m2"])                   # back: one good probe of `rise` 2
    pool.record_success(pool["m4"])
    assert pool["m2"].health.state is BackendState.OFFLINE
    assert pool.write_fallbacks(["m3"]) == ["m2", "m1"]   # the rising first; never m4,
    assert pool.write_fallbacks([]) == ["m3", "m2", "m1"]  # which is catching up
    rereads = []
    pool.reread_configuration = lambda: (rereads.append(1), pool.apply_specs(
        [BackendSpec("m1", "h", 1), BackendSpec("m2", "h", 2), BackendSpec("m3", "h", 3),
         BackendSpec("m4", "h", 4)]))   # the supervisor: m4 caught up
    assert pool.write_fallbacks(["m3"]) == ["m2", "m4", "m1"] and rereads == [1]
