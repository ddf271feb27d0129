"""The randomized history test of issue 9: no acknowledged write lost, whatever the nemesis does.

history.py has the workload: writers straight to m1 and m2, through the
balancer and through the proxy, inserting unique ids into shared tables and
incrementing counters, while a seeded nemesis kills (-9) and freezes
(SIGSTOP/SIGCONT) servers, the balancer and the proxy. Afterwards every
server, read directly, must hold every acknowledged insert exactly once, no
cleanly failed one, and counters between the acknowledged increments and
those plus the outcome-unknown ones; the data directories must be identical,
with no conflict and no temp file.

The seed is printed (with the report: `pytest -s` or `-rP`) and in every
failure message; `TAHIRY_HISTORY_SEED=<seed>` replays the same schedule.
"""

from __future__ import annotations

import pytest

from tests.integration.cluster_scenario import SupervisedCluster
from tests.integration.history import SEED_ENV, HistoryConfig, run_history, seed_from_env, stop_cluster


@pytest.fixture
def cluster(tmp_path):
    """The supervised default topology; torn down (no process left) even when the test fails."""
    cluster = SupervisedCluster(tmp_path)
    try:
        cluster.up()
        yield cluster
    finally:
        survivors = stop_cluster(cluster)
    assert survivors == [], f"processes left after down (killed now): {survivors}"


@pytest.mark.slow
def test_history_under_nemesis_loses_no_acknowledged_write(cluster):
    config = HistoryConfig(seed=seed_from_env())
    print(f"\nhistory seed {config.seed} (replay: {SEED_ENV}={config.seed})", flush=True)
    result = run_history(cluster, config)
    report = result.report()
    print(report)
    assert result.problems == [], report
    # It really was a history under faults, on every path.
    assert result.load_s >= config.load_s, report
    assert {f.action for f in result.faults} == {"kill", "stop"}, report
    assert len({f.node for f in result.faults}) >= 3, report
    counts = result.outcomes()
    for writer in result.writers:
        for kind in ("insert", "increment"):
            assert counts[(kind, writer.path, "acked")] >= 20, f"{kind} via {writer.path}\n{report}"
