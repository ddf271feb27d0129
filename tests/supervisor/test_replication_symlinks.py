"""Replication never follows a symlink out of (or inside) a data directory.

A server's data directory may hold a symlink placed by hand or by an
attacker: a table file, a database folder or a kind folder pointing
elsewhere. Its target must never be read and copied into a peer (which
would then serve it), and a copy must never be written through it.
"""

from __future__ import annotations

import logging

import orjson

from supervisor.objectfiles import list_object_files
from supervisor.replication import Replicator
from tests.supervisor.replicakit import document, read_change, wait_until, write_object


def plant_outside(tmp_path, a, b):
    """m1 holds three symlinks leading out of it; m2 holds a real `evil` database."""
    outside = tmp_path / "outside"
    write_object(outside, "secret/tables/leak.json", 5)
    (a / "school" / "tables").mkdir(parents=True)
    write_object(a, "school/database.json", 1)
    (a / "school" / "tables" / "leak.json").symlink_to(outside / "secret/tables/leak.json")
    write_object(outside, "evil/database.json", 7)
    write_object(outside, "evil/tables/x.json", 7)
    (a / "evil").symlink_to(outside / "evil")                     # a database folder
    write_object(outside, "other/tables/t.json", 3)
    (a / "other").mkdir()
    write_object(a, "other/database.json", 1)
    (a / "other" / "tables").symlink_to(outside / "other/tables")  # a kind folder
    write_object(b, "evil/database.json", 1)
    write_object(b, "evil/tables/x.json", 9)  # newer: would be written through m1's symlink
    return outside


def assert_nothing_crossed(outside, b, marker_change=1):
    assert not (b / "school/tables/leak.json").exists()
    assert not (b / "other/tables/t.json").exists()
    assert read_change(b, "evil/database.json") == marker_change  # never the outside one (7)
    assert read_change(outside, "evil/tables/x.json") == 7  # not written through the symlink
    assert read_change(outside, "secret/tables/leak.json") == 5


def test_sync_all_neither_reads_nor_writes_through_symlinks(dirs, tmp_path, caplog):
    a, b = dirs
    outside = plant_outside(tmp_path, a, b)
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    with caplog.at_level(logging.WARNING):
        summary = replicator.sync_all()
    assert_nothing_crossed(outside, b)
    assert read_change(b, "school/database.json") == 1    # the real files still replicate
    assert "evil/database.json" in summary.refused
    refused = {entry["path"] for entry in replicator.stats()["m1"]["refused"]}
    assert {"school/tables/leak.json", "evil", "other/tables"} <= refused
    assert "symlink" in replicator.stats()["m1"]["last_error"]
    assert "school/tables/leak.json" in caplog.text and "not followed" in caplog.text


def test_events_never_copy_a_symlink_target(running, tmp_path):
    replicator, a, b = running
    outside = plant_outside(tmp_path, a, b)
    # Events: a new symlinked table file appears in m1, and m2 writes the
    # database marker whose m1 folder is a symlink (its reconciliation
    # would read m1's "copy" through it).
    (a / "school" / "tables" / "leak2.json").symlink_to(outside / "secret/tables/leak.json")
    write_object(b, "evil/database.json", 2)
    write_object(a, "school/tables/ok.json", 1)
    assert wait_until(lambda: read_change(b, "school/tables/ok.json") == 1)
    assert replicator.wait_idle()
    assert not (b / "school/tables/leak2.json").exists()
    assert_nothing_crossed(outside, b, marker_change=2)
    assert wait_until(lambda: any(entry["path"] == "school/tables/leak2.json"
                                  for entry in replicator.stats()["m1"]["refused"]))
    assert orjson.loads((outside / "evil/database.json").read_bytes()) == document(
        "evil/database.json", 7)


def test_listing_reports_symlinks_instead_of_following_them(tmp_path):
    a = tmp_path / "m1"
    plant_outside(tmp_path, a, tmp_path / "m2")
    refused: dict[str, str] = {}
    assert list_object_files(a, refused) == {"school/database.json", "other/database.json"}
    assert set(refused) == {"school/tables/leak.json", "evil", "other/tables"}


def test_each_symlink_is_reported_once_not_at_every_pass(dirs, tmp_path, caplog):
    a, b = dirs
    plant_outside(tmp_path, a, b)
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            replicator.sync_all()
    reports = [record.getMessage() for record in caplog.records]
    for path in ("evil/database.json", "school/tables/leak.json", "other/tables:"):
        assert len([m for m in reports if path in m]) == 1, (path, reports)
    (a / "school" / "tables" / "leak.json").unlink()   # removed: no longer listed
    replicator.sync_all()
    assert "school/tables/leak.json" not in {
        entry["path"] for entry in replicator.stats()["m1"]["refused"]}
