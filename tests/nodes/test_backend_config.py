"""Unit tests of nodes.backend_config: --backend options and the backends file."""

from __future__ import annotations

import logging
import os

import pytest

from nodes.balancer.backend_config import (
    BackendsFile,
    BackendSpec,
    parse_backend_option,
    parse_backends_document,
)

LOG = logging.getLogger("test.backend_config")


def test_backend_options_and_documents_are_validated():
    assert parse_backend_option("m1=127.0.0.1:3948") == BackendSpec("m1", "127.0.0.1", 3948)
    for bad in ("m1", "m1=host", "=h:1", "m1=h:0", "m1=h:x"):
        with pytest.raises(ValueError, match="--backend"):
            parse_backend_option(bad)
    good = '{"backends":[{"id":"m1","host":"h","port":1,"writable":false}]}'
    assert parse_backends_document(good) == [BackendSpec("m1", "h", 1, False)]
    lagging = '{"backends":[{"id":"m1","host":"h","port":1,"lagging":true}]}'
    assert parse_backends_document(lagging) == [BackendSpec("m1", "h", 1, lagging=True)]
    for bad, where in (("[]", "backends"), ('{"backends":[{"id":"m1","host":"h"}]}', "port"),
                       ('{"backends":[{"id":"m1","host":"h","port":1,"writable":"yes"}]}', "writable"),
                       ('{"backends":[{"id":"m1","host":"h","port":1,"lagging":1}]}', "lagging"),
                       ('{"backends":[{"id":"a","host":"h","port":1},{"id":"a","host":"h","port":2}]}',
                        "twice"), ("{", "JSON")):
        with pytest.raises(ValueError, match=where):
            parse_backends_document(bad)


def publish(path, text: str) -> None:
    """Replace the file atomically, as the supervisor does."""
    temp = path.with_suffix(".tmp")
    temp.write_text(text)
    os.replace(temp, path)


def test_backends_file_is_read_only_when_it_changes(tmp_path, caplog):
    path = tmp_path / "backends.json"
    watched = BackendsFile(str(path), LOG)
    with caplog.at_level(logging.ERROR):
        assert watched.read_if_changed() is None          # missing: logged once
        assert watched.read_if_changed() is None
    assert sum("keeping the current backends" in r.message for r in caplog.records) == 1
    publish(path, '{"backends":[{"id":"m1","host":"h","port":1}]}')
    assert watched.read_if_changed() == [BackendSpec("m1", "h", 1)]
    assert watched.read_if_changed() is None              # unchanged
    publish(path, '{"backends":[]}')
    assert watched.read_if_changed() == []                # empty is a change, not "no news"
    publish(path, "{not json")
    assert watched.read_if_changed() is None              # broken: keep the current set
