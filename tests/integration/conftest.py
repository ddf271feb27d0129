"""Fixtures shared by the integration tests (the node-starting ones are in tests/conftest.py).

`cluster`: a supervised cluster (`supervisorkit.Cluster`: m1, m2, lb, proxy)
in the test's temporary folder, not started yet; at the end it is brought
down and anything that survived `down` is killed and fails the test.
Plain helpers live in the kit modules beside the tests (`supervisorkit`,
`clientkit`, `wire`, `faultkit`, ...): test modules import those, never
another test module.
"""

from __future__ import annotations

import pytest

from tests.integration.supervisorkit import Cluster


@pytest.fixture
def cluster(tmp_path):
    """A `Cluster` in tmp_path (call `.up()`); everything it ran is stopped at the end."""
    running = Cluster(tmp_path)
    yield running
    assert running.down_and_reap() == [], "processes survived `down`"
