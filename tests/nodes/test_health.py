"""Unit tests of nodes.health: the ONLINE / SHUNNED / OFFLINE state machine."""

from __future__ import annotations

import pytest

from nodes.balancer.health import BackendHealth, BackendState, HealthPolicy
from tests.conftest import ManualClock


def make(rise=2, fall=2, initial=BackendState.ONLINE):
    clock = ManualClock()
    return BackendHealth("m1", HealthPolicy(rise=rise, fall=fall), clock, initial), clock


def test_first_failure_shuns_at_once():
    health, _ = make()
    transition = health.record_failure("connection refused")
    assert health.state is BackendState.SHUNNED and not health.routable
    assert (transition.old, transition.new) == (BackendState.ONLINE, BackendState.SHUNNED)
    assert health.last_error == "connection refused"


def test_fall_failures_take_it_offline():
    health, _ = make(fall=3)
    health.record_failure("a")
    health.record_failure("b")
    assert health.state is BackendState.SHUNNED
    transition = health.record_failure("c")
    assert health.state is BackendState.OFFLINE
    assert transition.new is BackendState.OFFLINE and transition.reason == "c"
    assert health.record_failure("d") is None  # already offline: no new transition


def test_fall_of_one_goes_straight_offline():
    health, _ = make(fall=1)
    health.record_failure("x")
    assert health.state is BackendState.OFFLINE


def test_shunned_recovers_on_one_success():
    health, _ = make(fall=3)
    health.record_failure("slow")
    transition = health.record_success(0.001)
    assert health.state is BackendState.ONLINE and health.routable
    assert transition.new is BackendState.ONLINE


def test_offline_needs_rise_consecutive_successes():
    health, _ = make(rise=3, fall=1)
    health.record_failure("dead")
    assert health.record_success() is None
    assert health.record_success() is None
    assert health.state is BackendState.OFFLINE
    assert health.record_success().new is BackendState.ONLINE


def test_failure_restarts_the_rise_count():
    health, _ = make(rise=2, fall=1)
    health.record_failure("dead")
    health.record_success()
    health.record_failure("flap")
    health.record_success()
    assert health.state is BackendState.OFFLINE
    health.record_success()
    assert health.state is BackendState.ONLINE


def test_success_while_online_changes_nothing_but_latency():
    health, _ = make()
    assert health.record_success(0.0025) is None
    assert health.state is BackendState.ONLINE
    assert health.snapshot()["last_latency_ms"] == 2.5


def test_clock_measures_time_in_state():
    health, clock = make()
    clock.now += 5
    assert health.seconds_in_state() == 5
    health.record_failure("x")
    clock.now += 1.5
    snap = health.snapshot()
    assert snap["state"] == "SHUNNED" and snap["for_s"] == 1.5
    assert snap["consecutive_failures"] == 1


def test_can_start_offline():
    health, _ = make(initial=BackendState.OFFLINE)
    assert not health.routable
    health.record_success()
    health.record_success()
    assert health.routable


def test_policy_rejects_zero():
    with pytest.raises(ValueError):
        HealthPolicy(rise=0)
