"""Parsing a topology text in the supervisor's tests: the topology, or the messages refusing it."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.topology import Topology, TopologyError, parse_topology


def parse(text: str, environ: dict | None = None) -> Topology:
    """`text` parsed as /tmp/cluster/topology.yaml (nothing is read from disk)."""
    return parse_topology(text, Path("/tmp/cluster/topology.yaml"), environ or {})


def errors_of(text: str, environ: dict | None = None) -> list[str]:
    """The messages of the TopologyError `text` is refused with (fails if it is accepted)."""
    with pytest.raises(TopologyError) as caught:
        parse(text, environ)
    return caught.value.messages
