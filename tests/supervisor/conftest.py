"""Fixtures of the replication tests: two data directories, and a replicator running over them."""

from __future__ import annotations

import logging

import pytest

from supervisor.replication import Replicator


@pytest.fixture
def dirs(tmp_path):
    """Two empty data directories, m1 and m2."""
    a, b = tmp_path / "m1", tmp_path / "m2"
    a.mkdir()
    b.mkdir()
    return a, b


@pytest.fixture
def running(dirs):
    """A started replicator over `dirs` (no periodic pass): (replicator, m1, m2)."""
    a, b = dirs
    replicator = Replicator({"m1": a, "m2": b}, logging.getLogger("test.replication"),
                            resync_interval_s=0)
    replicator.start()
    yield replicator, a, b
    replicator.stop()
