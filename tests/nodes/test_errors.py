"""nodes.errors.NodeError: the one root of the exceptions of nodes/."""

from __future__ import annotations

import nodes
from nodes.client.exceptions import Error, Warning
from nodes.client.params import ParameterError
from nodes.errors import NodeError
from nodes.protocol import ProtocolError
from tests.conftest import public_exception_classes


def test_every_public_node_exception_derives_from_the_root():
    classes = public_exception_classes(nodes)
    assert ProtocolError in classes and len(classes) > 10
    assert [c.__name__ for c in classes if not issubclass(c, NodeError)] == []


def test_the_secondary_bases_and_the_client_standard_hierarchy_are_kept():
    assert issubclass(ParameterError, ValueError)
    assert issubclass(Error, NodeError) and issubclass(Warning, NodeError)
