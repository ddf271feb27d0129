"""Certified commits (issue 9): no acknowledged write lost when two servers write one table.

Two real server processes that know each other's data directory (`--peer`)
and the replicator running in this process, as the supervisor runs it
(tests/integration/replication_scenarios.py). The reproductions are the ones
that showed acknowledged writes lost before certification: a slow
read-modify-write on m1 while m2 acknowledged a row and replication copied
it under m1 (1), the same through the balancer with m1 frozen in the middle
(2), and clients writing straight to both servers at once (3). Each checks
that every acknowledged row is on both servers afterwards, and that the two
data directories end identical with no replication conflict.
"""

from __future__ import annotations

import pytest

from tests.integration.replication_scenarios import (
    SLOW_ROW,
    ReplicatedPair,
    run_frozen_owner,
    run_multi_master,
    run_slow_write_race,
)

pytestmark = pytest.mark.slow  # timed replication races of several seconds each

SEED_ROW = {1}


@pytest.fixture
def pair(start_node, tmp_path):
    with ReplicatedPair(start_node, tmp_path) as replicated:
        yield replicated


def test_a_slow_write_on_m1_keeps_the_row_m2_acknowledged_meanwhile(pair):
    history, raced = run_slow_write_race(pair)
    assert raced, "the slow statement ended before m2's write: no race was made"
    assert history.failed == [], "the slow write is re-run on the newer version, not refused"
    assert history.acknowledged == {1777, SLOW_ROW}
    assert history.lost == {"m1": set(), "m2": set()}
    assert pair.replicator.conflicts() == []


def test_a_frozen_owner_resuming_its_slow_write_keeps_the_row_written_meanwhile(pair):
    history = run_frozen_owner(pair)
    assert 2222 in history.acknowledged
    assert history.lost == {"m1": set(), "m2": set()}
    assert history.failed_present(SEED_ROW) == set(), "a write that failed cleanly is present"
    assert pair.replicator.conflicts() == []


def test_writers_straight_to_both_servers_lose_nothing(pair):
    history = run_multi_master(pair, seconds=4.0)
    assert len(history.acknowledged) > 50, \
        f"only {len(history.acknowledged)} writes acknowledged: {history.failed[:3]}"
    assert history.lost == {"m1": set(), "m2": set()}
    assert history.failed_present(SEED_ROW) == set(), "a write that failed cleanly is present"
    assert pair.replicator.conflicts() == []
