"""Parsing a topology text in the supervisor's tests: the topology, or the messages refusing it;
a hot reload that must be refused."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from supervisor.cluster import Cluster
from supervisor.reload import reload_topology
from supervisor.topology import Topology, TopologyError, parse_topology


def parse(text: str, environ: dict | None = None) -> Topology:
    """`text` parsed as /tmp/cluster/topology.yaml (nothing is read from disk)."""
    return parse_topology(text, Path("/tmp/cluster/topology.yaml"), environ or {})


def errors_of(text: str, environ: dict | None = None) -> list[str]:
    """The messages of the TopologyError `text` is refused with (fails if it is accepted)."""
    with pytest.raises(TopologyError) as caught:
        parse(text, environ)
    return caught.value.messages


def refused_edit(path: Path, before: str, after: str) -> str:
    """The message refusing a hot reload of `path` from `before` to `after`; fails unless the
    reload is refused and changes nothing (the topology in force kept, no node started)."""
    path.write_text(before)
    logger = logging.getLogger("test-reload")

    async def scenario() -> str:
        cluster = Cluster(parse_topology(before, path, {}), logger)
        kept = cluster.topology
        path.write_text(after)
        result = await reload_topology(cluster, logger)
        assert not result.ok, result.message
        assert cluster.topology is kept and cluster.keepers == {}
        return result.message
    return asyncio.run(scenario())
