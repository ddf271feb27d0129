"""The on-disk object format's one implementation (engine/storage/object_format.py), shared by all readers."""

from __future__ import annotations

import orjson
import pytest

from engine.storage import object_format, peers
from engine.storage import store as storage
from engine.storage.object_format import InvalidDocument, check_document, kind_and_name, object_relpath
from engine.storage.object_state import read_state, version_of

TABLE = {"format": 1, "kind": "table", "name": "t", "change": 3, "dropped": False,
         "columns": [{"name": "a", "domain": [{"type": "ISA", "min": None, "max": None}]},
                     {"name": "b", "domain": [{"type": "DATY"}]}],
         "rows": [[1, "2024-01-02"], [2, None]]}


def encoded(**changes) -> bytes:
    return orjson.dumps({**TABLE, **changes})


def test_valid_documents_of_every_kind_pass_whole():
    assert check_document(encoded(), "t.json", "table", "t") == TABLE
    view = {"format": 1, "kind": "view", "name": "v", "change": 1, "dropped": False,
            "query": "alaivo * ao@ t"}
    domain = {"format": 1, "kind": "domain", "name": "d", "change": 1, "dropped": False,
              "domain": [{"type": "TANISA", "values": ["a"]}]}
    marker = {"format": 1, "kind": "database", "name": "db", "change": 4, "dropped": False}
    tombstone = {"format": 1, "kind": "table", "name": "t", "change": 9, "dropped": True}
    for document in (view, domain, marker, tombstone):
        assert check_document(orjson.dumps(document), "x") == document


@pytest.mark.parametrize("data, reason", [
    (encoded()[:60], "not valid JSON"),                               # truncated, header intact
    (b"\xff\xfe garbage", "not valid JSON"),
    (b"[1, 2]", "not a JSON object"),
    (encoded(format=3), "unknown format"),
    (encoded(format=True), "unknown format"),
    (encoded(change="7"), "change counter"),
    (encoded(change=-1), "change counter"),
    (encoded(dropped="no"), "'dropped'"),
    (encoded(kind="view"), "do not match"),
    (encoded(name="other"), "do not match"),
    (encoded(rows=[[1]]), "a row that is not a list of 2 values"),
    (encoded(rows={"1": 2}), "without its rows"),
    (encoded(columns=[{"name": "a"}]), "no valid domain"),
])
def test_invalid_documents_raise_one_exception_with_a_reason(data, reason):
    with pytest.raises(InvalidDocument) as caught:
        check_document(data, "db/tables/t.json", "table", "t")
    assert reason in caught.value.reason
    assert str(caught.value).startswith("db/tables/t.json: ")


def test_paths_map_to_kind_and_name_and_back():
    for rel, expected in [("db/database.json", ("database", "db")),
                          ("db/tables/t.json", ("table", "t")),
                          ("db/views/v.json", ("view", "v")),
                          ("db/domains/d.json", ("domain", "d"))]:
        assert object_relpath(rel.split("/")) == rel
        assert kind_and_name(rel) == expected
    assert object_relpath([object_format.CORRUPT_FOLDER, "db", "tables", "t.json.1"]) is None
    assert object_relpath([object_format.CORRUPT_FOLDER, "database.json"]) is None


def test_the_store_and_the_peers_use_these_facts_and_checks():
    assert storage.FORMAT_VERSION is object_format.FORMAT_VERSION
    assert storage.KIND_FOLDERS is object_format.KIND_FOLDERS
    assert storage.DATABASE_MARKER is object_format.DATABASE_MARKER
    assert peers.UnreadableCopy is InvalidDocument


def test_a_peer_copy_is_checked_whole_and_its_header_alone_for_the_counter(tmp_path):
    path = tmp_path / "db" / "tables" / "t.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(encoded(rows=[[1]]))               # a row too short: not a usable copy
    assert version_of(tmp_path, "db/tables/t.json").change == 3   # the counter still reads
    with pytest.raises(InvalidDocument):
        read_state(tmp_path, "db/tables/t.json")
    path.write_bytes(encoded())
    assert read_state(tmp_path, "db/tables/t.json").version == 3
