"""nodes.errors.NodeError: the one root of the exceptions of nodes/."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import nodes
from nodes.client.exceptions import Error, Warning
from nodes.client.params import ParameterError
from nodes.errors import NodeError
from nodes.protocol import ProtocolError


def _node_exception_classes():
    for info in pkgutil.walk_packages(nodes.__path__, "nodes."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if (issubclass(value, BaseException) and value.__module__ == module.__name__
                    and not value.__name__.startswith("_")):
                yield value


def test_every_public_node_exception_derives_from_the_root():
    classes = list(_node_exception_classes())
    assert ProtocolError in classes and len(classes) > 10
    assert [c.__name__ for c in classes if not issubclass(c, NodeError)] == []


def test_the_secondary_bases_and_the_client_standard_hierarchy_are_kept():
    assert issubclass(ParameterError, ValueError)
    assert issubclass(Error, NodeError) and issubclass(Warning, NodeError)
