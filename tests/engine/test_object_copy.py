"""Shipping a copy between two real data directories (engine/storage/object_copy.py)."""

from __future__ import annotations

import os

import pytest

from engine.storage import journal, object_copy
from engine.storage.nofollow import ObjectRefused
from engine.storage.object_copy import DamagedCopy, DivergedCopy, bring_up_to_date, cut_journal, replace_copy
from engine.storage.object_format import InvalidDocument
from engine.storage.object_state import journal_rel, materialize, read_state, version_of
from engine.storage.peers import DirectoryLock
from tests.objectkit import (
    TABLE,
    append_entries,
    appended_rows,
    entry_lines,
    journal_bytes,
    snapshot_bytes,
    write_object,
    write_raw,
)


@pytest.fixture
def pair(tmp_path):
    source, dest = tmp_path / "m1", tmp_path / "m2"
    source.mkdir()
    dest.mkdir()
    return source, dest


def ship(source, dest, rel=TABLE, **options) -> bool:
    return bring_up_to_date(source, dest, rel, DirectoryLock(dest), **options)


def logical(root, rel=TABLE):
    found = materialize(root, rel)
    return None if found is None else (found.version, found.document["rows"])


def test_an_append_ships_exactly_the_new_lines_and_leaves_the_snapshot(pair):
    source, dest = pair
    for root in pair:
        write_object(root, TABLE, 1, rows=[[n] for n in range(500)])
    append_entries(source, TABLE, 2, appended_rows(2, 2))
    assert ship(source, dest)
    snapshot = (dest / TABLE).stat()
    before = journal_bytes(dest, TABLE)
    new = append_entries(source, TABLE, 4, appended_rows(4, 3))
    phases = {}
    assert ship(source, dest, timed=lambda phase, ms: phases.setdefault(phase, ms))
    assert journal_bytes(dest, TABLE) == before + new                # grew by exactly those
    after = (dest / TABLE).stat()
    assert (after.st_ino, after.st_mtime_ns) == (snapshot.st_ino, snapshot.st_mtime_ns)
    assert logical(dest) == logical(source) and logical(dest)[0] == 6
    assert {"read_source", "lock_wait", "locked"} <= set(phases)
    assert not ship(source, dest)                                     # up to date: nothing


def test_an_append_reads_the_source_tail_not_the_table(pair, monkeypatch):
    source, dest = pair
    for root in pair:
        write_object(root, TABLE, 1, rows=[[n] for n in range(20000)])
    append_entries(source, TABLE, 2, appended_rows(2, 1))
    monkeypatch.setattr(object_copy, "read_copy", None)   # a whole read would fail here
    assert ship(source, dest)
    assert version_of(dest, TABLE).change == 2


def test_a_dest_behind_the_source_checkpoint_gets_the_snapshot_then_the_entries(pair):
    source, dest = pair
    write_object(dest, TABLE, 1, rows=[[1]])
    append_entries(dest, TABLE, 2, appended_rows(2, 1))
    write_object(source, TABLE, 4, rows=[[1], [2], [3], [4]])         # checkpointed at 4
    lines = append_entries(source, TABLE, 5, appended_rows(5, 2))
    assert ship(source, dest)
    assert snapshot_bytes(dest, TABLE) == snapshot_bytes(source, TABLE)
    assert journal_bytes(dest, TABLE) == lines                        # the old journal is gone
    assert logical(dest) == (6, [[1], [2], [3], [4], [5], [6]])


def test_a_new_copy_and_other_kinds_are_whole_copies(pair):
    source, dest = pair
    write_object(source, TABLE, 1, rows=[[1]])
    lines = append_entries(source, TABLE, 2, appended_rows(2, 2))
    write_object(source, "school/views/v.json", 3)
    assert ship(source, dest)
    assert ship(source, dest, "school/views/v.json")
    assert snapshot_bytes(dest, TABLE) == snapshot_bytes(source, TABLE)
    assert journal_bytes(dest, TABLE) == lines
    assert version_of(dest, "school/views/v.json").change == 3
    assert not [name for name in os.listdir(dest / "school" / "tables") if name.endswith(".tmp")]


def test_a_tombstone_replaces_the_table_and_its_journal(pair):
    source, dest = pair
    write_object(dest, TABLE, 1)
    append_entries(dest, TABLE, 2, appended_rows(2, 2))
    write_object(source, TABLE, 4, dropped=True)
    assert ship(source, dest)
    assert version_of(dest, TABLE).dropped and journal_bytes(dest, TABLE) is None


def test_a_torn_source_tail_is_never_shipped(pair):
    source, dest = pair
    for root in pair:
        write_object(root, TABLE, 1)
    lines = append_entries(source, TABLE, 2, appended_rows(2, 2))
    with open(source / journal_rel(TABLE), "ab") as handle:
        handle.write(journal.encode_entry(4, appended_rows(4, 1)[0])[:-5])
    assert ship(source, dest)
    assert journal_bytes(dest, TABLE) == lines
    assert version_of(dest, TABLE).change == 3


def test_a_torn_dest_tail_is_cut_before_the_append(pair):
    source, dest = pair
    for root in pair:
        write_object(root, TABLE, 1)
    lines = append_entries(source, TABLE, 2, appended_rows(2, 2))
    (dest / journal_rel(TABLE)).write_bytes(lines[:len(lines) // 2 + 3])   # 2 whole, 3 torn
    assert version_of(dest, TABLE).change == 2
    assert ship(source, dest)
    assert journal_bytes(dest, TABLE) == lines


def test_a_dest_never_moves_backwards(pair):
    source, dest = pair
    for root in pair:
        write_object(root, TABLE, 1)
    append_entries(source, TABLE, 2, appended_rows(2, 1))
    dest_lines = append_entries(dest, TABLE, 2, appended_rows(2, 3))
    assert not ship(source, dest)
    assert journal_bytes(dest, TABLE) == dest_lines
    write_object(dest, TABLE, 9)
    write_object(source, TABLE, 5)
    assert not ship(source, dest) and version_of(dest, TABLE).change == 9


def test_the_dest_version_is_checked_again_under_the_lock(pair, monkeypatch):
    source, dest = pair
    for root in pair:
        write_object(root, TABLE, 1)
    append_entries(source, TABLE, 2, appended_rows(2, 2))
    real_plan = object_copy.plan_shipment
    calls = []

    def dest_commits_meanwhile(root, rel, found):
        shipment = real_plan(root, rel, found)
        if not calls:   # the dest's server commits 2 between the plan and the lock
            append_entries(dest, TABLE, 2, appended_rows(2, 1))
        calls.append(shipment)
        return shipment

    monkeypatch.setattr(object_copy, "plan_shipment", dest_commits_meanwhile)
    assert ship(source, dest)                   # planned again: only line 3 is left
    assert [(c.base, c.version) for c in calls] == [(1, 3), (2, 3)]
    assert journal_bytes(dest, TABLE) == entry_lines(2, appended_rows(2, 2))
    # Caught up by itself between the plan and the lock: nothing is copied.
    calls.clear()
    append_entries(source, TABLE, 4, appended_rows(4, 1))
    monkeypatch.setattr(object_copy, "plan_shipment", lambda root, rel, found: (
        real_plan(root, rel, found), append_entries(dest, TABLE, 4, appended_rows(4, 1)))[0])
    assert not ship(source, dest)
    assert journal_bytes(dest, TABLE) == entry_lines(2, appended_rows(2, 3))


def test_still_wanted_runs_under_the_lock_and_can_refuse(pair):
    source, dest = pair
    write_object(source, TABLE, 1)
    lock = DirectoryLock(dest)
    seen = []

    def check():
        other = DirectoryLock(dest)
        seen.append(other.try_acquire())
        other.close()
        return False

    assert not bring_up_to_date(source, dest, TABLE, lock, still_wanted=check)
    assert seen == [False] and version_of(dest, TABLE) is None


def test_a_different_line_at_the_dest_version_is_a_conflict(pair):
    source, dest = pair
    for root in pair:
        write_object(root, TABLE, 1)
    append_entries(source, TABLE, 2, appended_rows(2, 2))
    append_entries(dest, TABLE, 2, [[["append", [[99]]]]])
    with pytest.raises(DivergedCopy) as raised:
        ship(source, dest)
    assert raised.value.change == 2 and version_of(dest, TABLE).change == 2


def test_a_damaged_dest_is_refused_then_cut_then_shipped(pair):
    source, dest = pair
    for root in pair:
        write_object(root, TABLE, 1)
    lines = append_entries(source, TABLE, 2, appended_rows(2, 3))
    broken = bytearray(lines)
    second = lines.index(b"\n") + 1
    broken[second + 20] ^= 0x01
    (dest / journal_rel(TABLE)).write_bytes(bytes(broken))
    with pytest.raises(DamagedCopy):
        ship(source, dest)
    state = read_state(dest, TABLE)
    kept = []
    assert cut_journal(dest, TABLE, DirectoryLock(dest), state.journal,
                       lambda: kept.append(journal_bytes(dest, TABLE))) == 2
    assert kept == [bytes(broken)] and journal_bytes(dest, TABLE) == lines[:second]
    assert cut_journal(dest, TABLE, DirectoryLock(dest), state.journal) is None   # done already
    assert ship(source, dest)
    assert journal_bytes(dest, TABLE) == lines


def test_an_invalid_source_is_never_copied(pair):
    source, dest = pair
    write_raw(source, TABLE, b'{"format":1,"kind":"table","name":"t","change":3,"dropped":false,'
                             b'"columns":[')
    assert not ship(source, dest)
    assert version_of(dest, TABLE) is None
    # A source whose lines stop at a gap ships only what chains.
    write_object(source, TABLE, 1)
    append_entries(source, TABLE, 2, appended_rows(2, 1))
    append_entries(source, TABLE, 4, appended_rows(4, 1))
    assert ship(source, dest)
    assert version_of(dest, TABLE).change == 2


def test_an_unreadable_dest_is_left_to_a_repair(pair):
    source, dest = pair
    write_object(source, TABLE, 2)
    write_raw(dest, TABLE, b"{torn")
    with pytest.raises(InvalidDocument):
        ship(source, dest)
    assert snapshot_bytes(dest, TABLE) == b"{torn"
    lock = DirectoryLock(dest)
    assert replace_copy(source, dest, TABLE, lock, still_wanted=lambda: False) is None
    assert replace_copy(source, dest, TABLE, lock, still_wanted=lambda: True) == 2
    assert snapshot_bytes(dest, TABLE) == snapshot_bytes(source, TABLE)


def test_symlinks_are_never_followed_nor_written_through(pair, tmp_path):
    source, dest = pair
    write_object(source, TABLE, 1)
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "school").symlink_to(outside)
    with pytest.raises(ObjectRefused):
        ship(source, dest)
    assert list(outside.iterdir()) == []
    (dest / "school").unlink()
    write_object(dest, TABLE, 1)
    append_entries(source, TABLE, 2, appended_rows(2, 1))
    (dest / journal_rel(TABLE)).symlink_to(outside / "t.journal")
    with pytest.raises(ObjectRefused):
        ship(source, dest)
    assert list(outside.iterdir()) == []


def test_a_failed_append_leaves_the_dest_as_it_was(pair, monkeypatch):
    source, dest = pair
    for root in pair:
        write_object(root, TABLE, 1)
    append_entries(source, TABLE, 2, appended_rows(2, 1))
    before = append_entries(dest, TABLE, 2, appended_rows(2, 1))
    append_entries(source, TABLE, 3, appended_rows(3, 1))

    def disk_full(descriptor, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError):
        ship(source, dest)
    monkeypatch.undo()
    assert journal_bytes(dest, TABLE) == before           # the failed append was cut back
    assert ship(source, dest) and version_of(dest, TABLE).change == 3


def test_an_append_whose_fsync_fails_is_reported_and_stays(pair, monkeypatch):
    """The copy's fsync runs after the destination's lock is released (its
    writers never wait for it): a failure is reported, the lines stay (they
    may have been read already), and a crash would only lose a copy that the
    next pass makes again."""
    source, dest = pair
    for root in pair:
        write_object(root, TABLE, 1)
    append_entries(source, TABLE, 2, appended_rows(2, 1))
    append_entries(dest, TABLE, 2, appended_rows(2, 1))
    append_entries(source, TABLE, 3, appended_rows(3, 1))

    def failing(descriptor):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(OSError):
        ship(source, dest)
    monkeypatch.undo()
    assert version_of(dest, TABLE).change == 3
    assert journal_bytes(dest, TABLE) == journal_bytes(source, TABLE)


def test_the_source_is_read_under_its_lock_unless_its_holder_is_frozen(pair, monkeypatch):
    source, dest = pair
    for root in pair:
        write_object(root, TABLE, 1)
    append_entries(source, TABLE, 2, appended_rows(2, 1))
    frozen = DirectoryLock(source)          # a source server stopped while holding its lock
    assert frozen.try_acquire()
    monkeypatch.setattr(object_copy, "SOURCE_LOCK_TIMEOUT_S", 0.05)
    try:
        assert ship(source, dest, source_lock=DirectoryLock(source))
    finally:
        frozen.release()
    assert version_of(dest, TABLE).change == 2
    seen = []
    real_plan = object_copy.plan_shipment

    def plan_while_locked(root, rel, found):
        other = DirectoryLock(source)
        seen.append(other.try_acquire())
        other.close()
        return real_plan(root, rel, found)

    monkeypatch.setattr(object_copy, "plan_shipment", plan_while_locked)
    append_entries(source, TABLE, 3, appended_rows(3, 1))
    assert ship(source, dest, source_lock=DirectoryLock(source))
    assert seen == [False]                  # read while the source's lock was held


def test_paths_may_be_given_as_path_objects(pair):
    from pathlib import Path
    source, dest = pair
    write_object(source, TABLE, 1)
    assert bring_up_to_date(str(source), str(dest), Path(TABLE), DirectoryLock(dest))
    assert version_of(str(dest), Path(TABLE)).change == 1
