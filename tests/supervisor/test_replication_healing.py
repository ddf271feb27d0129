"""Replicas heal: a corrupt copy is repaired from a valid peer copy, never the reverse.

The corrupt file is kept in `<data>/.corrupt/` and the repair is logged,
counted and listed in the replicator's stats. Detection happens on events,
on the periodic pass and at sync_all / catch_up.
"""

from __future__ import annotations

import logging

import orjson
import pytest

from engine.storage.atomic_files import encode_document
from supervisor.objectfiles import list_object_files
from supervisor.replication import Replicator
from tests.supervisor.replicakit import TABLE, document, read_change, wait_until, write_object, write_raw

GOOD = encode_document(document(TABLE, 3, rows=[[1], [2], [3]]))
CORRUPT = {
    "a changed byte": GOOD.replace(b"[[1],[2],[3]]", b"[[1],[7],[3]]"),   # still JSON
    "truncated": GOOD[:len(GOOD) // 2 + 20],   # the header survives, the rows do not
    "garbage": b"\x00\x01 not json at all",
    "wrong kind": orjson.dumps({**document(TABLE, 3), "kind": "view"}),
    "wrong name": orjson.dumps({**document(TABLE, 3), "name": "other"}),
    "bad header": orjson.dumps({**document(TABLE, 3), "format": 7}),
    "bad rows": orjson.dumps({**document(TABLE, 4), "rows": [[1, 2]]}),
}


def kept_files(root) -> list:
    folder = root / ".corrupt" / "school" / "tables"
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize("kind", sorted(CORRUPT))
def test_a_corrupt_copy_landing_is_repaired_from_the_peer(running, kind, caplog):
    replicator, a, b = running
    write_raw(a, TABLE, GOOD)
    assert wait_until(lambda: read_change(b, TABLE) == 3)
    with caplog.at_level(logging.ERROR):
        write_raw(a, TABLE, CORRUPT[kind])
        assert wait_until(lambda: (a / TABLE).read_bytes() == GOOD)
        assert wait_until(lambda: replicator.stats()["m1"]["healed"] == 1)
    assert (b / TABLE).read_bytes() == GOOD                 # never the reverse
    [kept] = kept_files(a)
    assert kept.read_bytes() == CORRUPT[kind] and kept.name.startswith("t.json.")
    assert kept_files(b) == []
    stats = replicator.stats()["m1"]
    assert stats["corrupt"] == []
    [repair] = stats["repairs"]
    assert (repair["path"], repair["source"], repair["change"]) == (TABLE, "m2", 3)
    assert repair["reason"] and repair["healed_at"] > 0
    assert repair["kept_as"] == kept.relative_to(a).as_posix()
    assert "repaired from m2" in caplog.text
    # The kept file is no object: listings and replication ignore it.
    assert list_object_files(a) == {TABLE}
    assert not (b / ".corrupt").exists()


def test_the_repair_comes_from_the_valid_copy_with_the_highest_counter(tmp_path):
    roots = {name: tmp_path / name for name in ("m1", "m2", "m3")}
    write_raw(roots["m1"], TABLE, CORRUPT["truncated"])
    write_object(roots["m2"], TABLE, 4)
    write_object(roots["m3"], TABLE, 6)
    write_raw(roots["m3"], "school/tables/u.json", b"{torn")   # corrupt, no valid copy anywhere
    replicator = Replicator(roots, resync_interval_s=0)
    summary = replicator.sync_all()
    assert summary.healed == [TABLE]
    assert {read_change(root, TABLE) for root in roots.values()} == {6}
    assert replicator.stats()["m1"]["repairs"][0]["source"] == "m3"
    # No valid copy anywhere: reported, left alone, never copied.
    assert summary.unreadable == ["school/tables/u.json"]
    assert (roots["m3"] / "school/tables/u.json").read_bytes() == b"{torn"
    assert not (roots["m1"] / "school/tables/u.json").exists()
    assert not (roots["m3"] / ".corrupt").exists()
    [corrupt] = replicator.stats()["m3"]["corrupt"]
    assert corrupt["path"] == "school/tables/u.json" and "no server holds a valid copy" in \
        corrupt["not_healed"]


def test_a_corrupt_copy_without_a_valid_peer_copy_is_reported_and_left_alone(running, caplog):
    replicator, a, b = running
    with caplog.at_level(logging.ERROR):
        write_raw(a, TABLE, b"{torn")
        assert wait_until(lambda: replicator.stats()["m1"]["corrupt"])
    assert (a / TABLE).read_bytes() == b"{torn" and not (b / TABLE).exists()
    assert "is corrupt" in caplog.text
    # A valid copy arriving later on the peer heals it (the path keeps being retried).
    write_object(b, TABLE, 2)
    assert wait_until(lambda: read_change(a, TABLE) == 2)
    assert wait_until(lambda: replicator.stats()["m1"]["healed"] == 1)
    assert replicator.stats()["m1"]["corrupt"] == []


def test_the_periodic_pass_repairs_a_copy_corrupted_without_an_event(dirs):
    a, b = dirs
    write_raw(a, TABLE, GOOD)
    write_raw(b, TABLE, GOOD)
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0.2)
    replicator.start()
    try:
        replicator.remove_server("m2")
        write_raw(b, TABLE, CORRUPT["truncated"])  # while m2 was not watched
        replicator.add_server("m2", b)
        assert wait_until(lambda: (b / TABLE).read_bytes() == GOOD)
        assert len(kept_files(b)) == 1
    finally:
        replicator.stop()


def test_catch_up_repairs_the_server_catching_up_only(dirs):
    a, b = dirs
    write_raw(a, TABLE, GOOD)
    write_raw(b, TABLE, CORRUPT["garbage"])
    write_raw(a, "school/tables/u.json", b"{torn")
    write_object(b, "school/tables/u.json", 1)
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    summary = replicator.catch_up("m2")
    assert summary.healed == [TABLE] and (b / TABLE).read_bytes() == GOOD
    # m1's corrupt copy is not written by a catch-up of m2: reported, repaired later.
    assert (a / "school/tables/u.json").read_bytes() == b"{torn"
    assert [c["path"] for c in replicator.stats()["m1"]["corrupt"]] == ["school/tables/u.json"]
    assert replicator.sync_all().healed == ["school/tables/u.json"]
    assert read_change(a, "school/tables/u.json") == 1


def test_a_copy_rewritten_before_its_repair_is_not_replaced(dirs):
    a, b = dirs
    write_raw(a, TABLE, GOOD)
    write_raw(b, TABLE, b"{torn")
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    original_heal = replicator._copies._heal

    def server_writes_first(*args):
        write_object(b, TABLE, 9)  # m2's server commits a valid version meanwhile
        return original_heal(*args)

    replicator._copies._heal = server_writes_first
    replicator.sync_all()
    assert read_change(b, TABLE) == 9 and kept_files(b) == []
    replicator._copies._heal = original_heal
    replicator.sync_all()
    assert read_change(a, TABLE) == 9   # and the newer write then wins everywhere
