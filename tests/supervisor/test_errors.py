"""Every supervisor exception derives from SupervisorError and keeps the standard base callers catch."""

import pytest

from supervisor.control import NotRunning
from supervisor.errors import OverlappingDataDirectories, SupervisorError, UnknownNode
from supervisor.topology import TopologyError


@pytest.mark.parametrize("error, also", [
    (TopologyError(["nodes.m1.port: missing (line 3)"]), Exception),
    (NotRunning("no supervisor answers on 127.0.0.1:3900"), Exception),
    (UnknownNode("m9"), KeyError),
    (OverlappingDataDirectories("data/m1 overlaps data/m1/inner"), ValueError),
])
def test_one_root_and_the_standard_base(error, also):
    assert isinstance(error, SupervisorError) and isinstance(error, also)


def test_unknown_node_reads_as_the_key_error_it_was():
    assert str(UnknownNode("m9")) == str(KeyError("m9"))
