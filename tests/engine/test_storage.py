"""engine.storage.store: file layout, atomic writes, change counters, tombstones, cache, names."""

import json
import os
import time

import orjson
import pytest

from engine.errors import TahiryError
from engine.storage.object_format import decode_document
from engine.storage.store import Store, validate_name

TABLE_BODY = {"columns": [{"name": "a", "domain": [{"type": "ISA", "min": None, "max": None}]}],
              "rows": [[1], [2]]}


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "data")
    store.create_database("db")
    return store


def read_json(path):
    """A document file's content (its checksum checked and removed)."""
    return decode_document(path.read_bytes(), path)


def test_files_are_at_the_documented_paths(store, tmp_path):
    store.write("db", "table", "t", TABLE_BODY)
    store.write("db", "view", "v", {"query": "alaivo * ao@ t"})
    store.write("db", "domain", "d", {"domain": [{"type": "DATY"}]})
    root = tmp_path / "data"
    assert read_json(root / "db" / "database.json") == {
        "format": 2, "kind": "database", "name": "db", "change": 1, "dropped": False}
    assert read_json(root / "db" / "tables" / "t.json") == {
        "format": 2, "kind": "table", "name": "t", "change": 1, "dropped": False, **TABLE_BODY}
    assert read_json(root / "db" / "views" / "v.json")["query"] == "alaivo * ao@ t"
    assert read_json(root / "db" / "domains" / "d.json")["domain"] == [{"type": "DATY"}]


def test_change_counter_increases_on_every_write(store, tmp_path):
    changes = [store.write("db", "table", "t", TABLE_BODY)["change"] for _ in range(3)]
    assert changes == [1, 2, 3]
    assert read_json(tmp_path / "data" / "db" / "tables" / "t.json")["change"] == 3


def test_drop_writes_a_tombstone_and_recreate_continues_the_counter(store, tmp_path):
    store.write("db", "table", "t", TABLE_BODY)
    assert store.drop("db", "table", "t") is True
    path = tmp_path / "data" / "db" / "tables" / "t.json"
    assert read_json(path) == {"format": 2, "kind": "table", "name": "t", "change": 2,
                               "dropped": True}
    assert store.read("db", "table", "t") is None
    assert store.list_objects("db", "table") == []
    assert store.drop("db", "table", "t") is False  # nothing written
    assert read_json(path)["change"] == 2
    assert store.write("db", "table", "t", TABLE_BODY)["change"] == 3
    assert store.list_objects("db", "table") == ["t"]


def test_dropping_a_database_tombstones_marker_and_every_object(store, tmp_path):
    store.write("db", "table", "t", TABLE_BODY)
    store.write("db", "view", "v", {"query": "alaivo 1"})
    store.write("db", "domain", "d", {"domain": [{"type": "DATY"}]})
    assert store.drop_database("db") is True
    base = tmp_path / "data" / "db"
    for path in (base / "database.json", base / "tables" / "t.json",
                 base / "views" / "v.json", base / "domains" / "d.json"):
        assert read_json(path)["dropped"] is True, path
    assert store.list_databases() == []
    assert not store.database_exists("db")
    store.create_database("db")
    assert read_json(base / "database.json")["change"] == 3
    assert store.list_objects("db", "table") == []  # objects stay dropped


def test_listing_is_sorted_and_skips_tombstones_and_temp_files(store, tmp_path):
    for name in ("b", "a", "C"):
        store.write("db", "table", name, TABLE_BODY)
    store.drop("db", "table", "b")
    folder = tmp_path / "data" / "db" / "tables"
    (folder / ".a.json.123.tmp").write_text("garbage")
    assert store.list_objects("db", "table") == ["C", "a"]
    store.create_database("other")
    assert store.list_databases() == ["db", "other"]


def test_listing_sniffs_large_tombstone_flag(store):
    big = {"columns": TABLE_BODY["columns"], "rows": [[i] for i in range(5000)]}
    store.write("db", "table", "big", big)
    fresh = Store(store.root)  # empty cache: must sniff or decode
    assert fresh.list_objects("db", "table") == ["big"]
    fresh.drop("db", "table", "big")
    assert Store(store.root).list_objects("db", "table") == []


def test_failed_replace_leaves_old_file_intact_and_no_temp(store, tmp_path, monkeypatch):
    store.write("db", "table", "t", TABLE_BODY)
    path = tmp_path / "data" / "db" / "tables" / "t.json"
    before = path.read_bytes()

    def broken_replace(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(TahiryError) as caught:
        store.write("db", "table", "t", {"columns": TABLE_BODY["columns"], "rows": []})
    assert "Tsy voasoratra" in str(caught.value)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["t.json"]
    assert store.read("db", "table", "t")["rows"] == [[1], [2]]


def test_stale_temp_files_are_removed_when_the_store_opens(store, tmp_path):
    folder = tmp_path / "data" / "db" / "tables"
    stale = folder / ".t.json.abcdef.tmp"
    stale.write_text("half a file")
    fresh = folder / ".u.json.123456.tmp"
    fresh.write_text("being written right now")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    Store(tmp_path / "data")
    assert not stale.exists()
    assert fresh.exists()  # too recent: may belong to a writer in another process
    Store(tmp_path / "data", stale_temp_age_s=0)
    assert not fresh.exists()


def test_cache_sees_a_file_replaced_by_another_process(store, tmp_path):
    store.write("db", "table", "t", TABLE_BODY)
    assert store.read("db", "table", "t")["rows"] == [[1], [2]]
    path = tmp_path / "data" / "db" / "tables" / "t.json"
    document = read_json(path)
    document["rows"] = [[7]]
    document["change"] += 1
    temp = path.parent / ".t.json.x.tmp"
    temp.write_bytes(orjson.dumps(document))
    os.replace(temp, path)  # what replication does
    assert store.read("db", "table", "t")["rows"] == [[7]]


def test_cache_returns_the_same_decoded_object_while_unchanged(store):
    store.write("db", "table", "t", TABLE_BODY)
    first = store.read("db", "table", "t")
    assert store.read("db", "table", "t") is first


def test_unreadable_file_gives_a_clear_error(store, tmp_path):
    (tmp_path / "data" / "db" / "tables" / "bad.json").write_text("{not json")
    with pytest.raises(TahiryError) as caught:
        store.read("db", "table", "bad")
    assert "bad.json" in str(caught.value)


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", "a\0b", "/etc",
                                  "1abc", "a-b", "a b", "x" * 200])
def test_names_that_could_escape_or_are_not_identifiers_are_rejected(name):
    with pytest.raises(TahiryError):
        validate_name(name, "table")


@pytest.mark.parametrize("name", ["t", "_x", "Mpianatra2", "été", "naoty_2024"])
def test_identifiers_are_accepted(name):
    assert validate_name(name, "table") == name


def test_store_rejects_escaping_names_everywhere(store):
    with pytest.raises(TahiryError, match="tsy azo ekena"):
        store.create_database("../evil")
    with pytest.raises(TahiryError):
        store.write("db", "table", "../../x", TABLE_BODY)
    with pytest.raises(TahiryError):
        store.read("..", "table", "t")
    assert not (store.root.parent / "evil").exists()


def test_symlink_pointing_outside_is_refused(store, tmp_path):
    outside = tmp_path / "outside"
    (outside / "tables").mkdir(parents=True)
    (outside / "tables" / "t.json").write_text(json.dumps(
        {"format": 1, "kind": "table", "name": "t", "change": 1, "dropped": False,
         **TABLE_BODY}))
    (outside / "database.json").write_text(json.dumps(
        {"format": 1, "kind": "database", "name": "link", "change": 1, "dropped": False}))
    os.symlink(outside, tmp_path / "data" / "link")
    with pytest.raises(TahiryError, match="ivelan"):
        store.read("link", "table", "t")
    with pytest.raises(TahiryError, match="ivelan"):
        store.write("link", "table", "u", TABLE_BODY)
    assert not (outside / "tables" / "u.json").exists()
    # a symlinked file inside a real database folder
    os.symlink(outside / "tables" / "t.json", tmp_path / "data" / "db" / "tables" / "s.json")
    with pytest.raises(TahiryError, match="ivelan"):
        store.read("db", "table", "s")


def test_huge_integers_fall_back_to_json_encoding():
    from engine.storage.atomic_files import encode_document
    assert decode_document(encode_document({"rows": [[2**70]]}), "t") == {"rows": [[2**70]]}


def test_listing_ignores_symlinked_database_outside_and_corrupt_files(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "database.json").write_text(json.dumps(
        {"format": 1, "kind": "database", "name": "link", "change": 1, "dropped": False}))
    os.symlink(outside, tmp_path / "data" / "link")
    (tmp_path / "data" / "db" / "tables" / "bad.json").write_text("{not json")
    store.write("db", "table", "good", TABLE_BODY)
    assert store.list_databases() == ["db"]
    assert not store.database_exists("link")
    assert store.list_objects("db", "table") == ["good"]


def test_unknown_format_version_is_a_clear_error(store, tmp_path):
    (tmp_path / "data" / "db" / "tables" / "future.json").write_text(json.dumps(
        {"format": 3, "kind": "table", "name": "future", "change": 1, "dropped": False}))
    with pytest.raises(TahiryError, match="format"):
        store.read("db", "table", "future")


def test_cache_stays_within_its_budgets(tmp_path):
    store = Store(tmp_path / "data", cache_entries=3, cache_bytes=10_000)
    store.create_database("db")
    for index in range(6):
        store.write("db", "table", f"t{index}", TABLE_BODY)
    assert len(store._cache) <= 3
    big = {"columns": TABLE_BODY["columns"], "rows": [[i] for i in range(3000)]}
    store.write("db", "table", "big", big)
    assert store._cache.cached_bytes <= 10_000 or len(store._cache) == 1
    assert store.read("db", "table", "t0")["rows"] == [[1], [2]]  # evicted, read again
