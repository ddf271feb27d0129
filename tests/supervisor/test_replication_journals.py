"""Replication of tables stored as a snapshot plus a journal (storage format 2).

Journal lines are appended the way a format 2 store appends them
(engine/storage/journal.py `append_line`: a modification and a close event, no
rename); the replicator runs with its real watchdog observer and workers.
"""

from __future__ import annotations

import logging
import os

import pytest

from engine.storage import journal
from engine.storage.object_state import journal_rel, materialize
from supervisor.objectfiles import list_object_files
from supervisor.replication import Replicator
from supervisor.replication_health import Repair, ReplicaHealth
from tests.supervisor.replicakit import (
    TABLE,
    append_entries,
    appended_rows,
    entry_lines,
    journal_bytes,
    snapshot_bytes,
    version,
    wait_until,
    write_object,
    write_raw,
)

JOURNAL = journal_rel(TABLE)


def rows(root):
    return materialize(root, TABLE).document["rows"]


def corrupt_line(lines: bytes, index: int) -> bytes:
    """`lines` with one byte of line `index` flipped (its checksum no longer matches)."""
    starts = [0] + [n + 1 for n, byte in enumerate(lines) if byte == ord("\n")]
    broken = bytearray(lines)
    broken[starts[index] + 20] ^= 0x01
    return bytes(broken)


def test_an_append_is_shipped_as_an_append(running):
    replicator, a, b = running
    write_object(a, TABLE, 1, rows=[[n] for n in range(2000)])
    assert wait_until(lambda: version(b, TABLE) == 1)
    snapshot = (b / TABLE).stat()
    assert replicator.wait_idle()
    copied_before = replicator.stats()["m2"]["files_copied"]
    lags_before = replicator.stats()["m2"]["lag_samples"]
    lines = append_entries(a, TABLE, 2, appended_rows(2, 1))
    assert wait_until(lambda: version(b, TABLE) == 2)
    assert journal_bytes(b, TABLE) == lines                 # exactly the new line
    lines += append_entries(a, TABLE, 3, appended_rows(3, 2))
    assert wait_until(lambda: version(b, TABLE) == 4)
    assert replicator.wait_idle()
    assert journal_bytes(b, TABLE) == lines == journal_bytes(a, TABLE)
    after = (b / TABLE).stat()
    assert (after.st_ino, after.st_mtime_ns) == (snapshot.st_ino, snapshot.st_mtime_ns)
    stats = replicator.stats()
    assert stats["m2"]["files_copied"] > copied_before
    assert stats["m2"]["lag_samples"] > lags_before          # appends are lag samples too
    assert stats["m1"]["files_copied"] == 0                  # the echoes did nothing
    assert rows(b)[-3:] == [[2], [3], [4]]


def test_appends_flow_both_ways_and_a_burst_ends_with_the_last(running):
    replicator, a, b = running
    write_object(a, TABLE, 1, rows=[])
    assert wait_until(lambda: version(b, TABLE) == 1)
    append_entries(b, TABLE, 2, appended_rows(2, 1))
    assert wait_until(lambda: version(a, TABLE) == 2)
    for change in range(3, 103):
        append_entries(a, TABLE, change, appended_rows(change, 1))
    assert wait_until(lambda: version(b, TABLE) == 102)
    assert replicator.wait_idle()
    assert journal_bytes(a, TABLE) == journal_bytes(b, TABLE)
    assert rows(b) == [[n] for n in range(2, 103)]
    assert replicator.conflicts() == []


def test_a_server_behind_the_checkpoint_gets_the_snapshot_then_the_entries(dirs):
    a, b = dirs
    write_object(a, TABLE, 1, rows=[[1]])
    write_object(b, TABLE, 1, rows=[[1]])
    append_entries(b, TABLE, 2, appended_rows(2, 1))        # b stopped at 2
    append_entries(a, TABLE, 2, appended_rows(2, 3))
    write_object(a, TABLE, 4, rows=[[1], [2], [3], [4]])     # a checkpointed at 4...
    os.unlink(a / JOURNAL)
    lines = append_entries(a, TABLE, 5, appended_rows(5, 2))  # ...and went on
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    summary = replicator.catch_up("m2")
    assert summary.copied == 1 and summary.conflicts == []
    assert snapshot_bytes(b, TABLE) == snapshot_bytes(a, TABLE)
    assert journal_bytes(b, TABLE) == lines
    assert rows(b) == [[1], [2], [3], [4], [5], [6]]


def test_a_checkpointed_copy_and_a_journaled_copy_of_one_version_agree(dirs):
    a, b = dirs
    for root in dirs:
        write_object(root, TABLE, 1, rows=[[1]])
        append_entries(root, TABLE, 2, appended_rows(2, 2))
    write_object(b, TABLE, 3, rows=[[1], [2], [3]], format=2)   # b checkpointed (format 2)
    os.unlink(b / JOURNAL)
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    summary = replicator.sync_all()
    assert summary.conflicts == [] and summary.copied == 0
    assert replicator.sync_all().conflicts == []             # remembered, still no conflict


def test_the_same_version_as_different_lines_is_a_conflict(dirs, caplog):
    a, b = dirs
    for root in dirs:
        write_object(root, TABLE, 1, rows=[[1]])
    append_entries(a, TABLE, 2, [[["append", [["from m1"]]]]])
    append_entries(b, TABLE, 2, [[["append", [["from m2"]]]]])
    before = journal_bytes(a, TABLE), journal_bytes(b, TABLE)
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    with caplog.at_level(logging.WARNING):
        summary = replicator.sync_all()
    assert summary.conflicts == [TABLE] and summary.copied == 0
    assert (journal_bytes(a, TABLE), journal_bytes(b, TABLE)) == before
    assert [(c["path"], c["change"]) for c in replicator.conflicts()] == [(TABLE, 2)]
    assert "CONFLICT" in caplog.text
    # Still open on the next pass: not reported again.
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert replicator.sync_all().conflicts == [TABLE]
    assert "CONFLICT" not in caplog.text and journal_bytes(b, TABLE) == before[1]
    # A newer write settles it, shipped whole (lines on top of m2's 2 would keep its
    # "from m2"); m2's copy is kept in .diverged/.
    append_entries(a, TABLE, 3, appended_rows(3, 1))
    with caplog.at_level(logging.WARNING):
        summary = replicator.sync_all()
    assert summary.conflicts == [] and replicator.conflicts() == []
    assert version(b, TABLE) == 3 and rows(b) == rows(a) == [[1], ["from m1"], [3]]
    assert "settled" in caplog.text
    assert list((b / ".diverged").rglob("t.journal.*"))


def test_a_newer_write_settles_a_snapshot_conflict_whole(dirs, caplog):
    """A hand edit of m2's snapshot (same counter) is a conflict; the next write on m1 was
    shipped as lines appended on top of the edited snapshot: "settled" was logged, and the
    copies still differed. The newer version now goes whole to the conflicting copy, which
    is kept in `.diverged/`."""
    a, b = dirs
    write_object(a, TABLE, 1, rows=[[1], [2]])
    append_entries(a, TABLE, 2, appended_rows(2, 1))
    write_object(b, TABLE, 2, rows=[[1], ["EDITED"], [2]])      # checkpointed, then hand-edited
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    assert replicator.sync_all().conflicts == [TABLE]
    append_entries(a, TABLE, 3, appended_rows(3, 1))            # a newer write on m1
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        summary = replicator.sync_all()
    assert summary.conflicts == [] and replicator.conflicts() == []
    assert version(b, TABLE) == 3 and rows(b) == rows(a) == [[1], [2], [2], [3]]
    assert "settled" in caplog.text
    kept = list((b / ".diverged").rglob("t.json.*"))
    assert kept and b"EDITED" in kept[0].read_bytes()


def test_a_torn_source_tail_is_never_shipped(running):
    replicator, a, b = running
    write_object(a, TABLE, 1, rows=[])
    assert wait_until(lambda: version(b, TABLE) == 1)
    lines = append_entries(a, TABLE, 2, appended_rows(2, 2))
    torn = journal.encode_entry(4, appended_rows(4, 1)[0])[:-6]
    with open(a / JOURNAL, "ab") as handle:                  # a crash in the middle of an append
        handle.write(torn)
    assert wait_until(lambda: version(b, TABLE) == 3)
    assert replicator.wait_idle()
    assert journal_bytes(b, TABLE) == lines
    assert replicator.stats()["m1"]["repairs"] == []         # a torn tail is no corruption
    # The owner cuts its torn tail and appends again: that line is shipped.
    os.truncate(a / JOURNAL, len(lines))
    lines += append_entries(a, TABLE, 4, appended_rows(4, 1))
    assert wait_until(lambda: journal_bytes(b, TABLE) == lines)


def test_a_corrupt_journal_line_is_kept_aside_cut_and_healed_from_the_other(running, caplog):
    replicator, a, b = running
    write_object(a, TABLE, 1, rows=[[1]])
    lines = append_entries(a, TABLE, 2, appended_rows(2, 4))
    assert wait_until(lambda: version(b, TABLE) == 5)
    assert replicator.wait_idle()
    broken = corrupt_line(lines, 1)                           # version 3's line, on m1 only
    with caplog.at_level(logging.ERROR):
        with open(a / JOURNAL, "r+b") as handle:             # rewritten in place, same size
            handle.write(broken)
        replicator.sync_all()
    assert journal_bytes(a, TABLE) == lines == journal_bytes(b, TABLE)
    assert journal_bytes(b, TABLE) == lines                  # never the reverse
    [repair] = replicator.stats()["m1"]["repairs"]
    assert (repair["path"], repair["source"], repair["change"]) == (TABLE, "m2", 5)
    assert repair["reason"].startswith("journal: ")
    kept = a / repair["kept_as"]
    assert kept.read_bytes() == broken and repair["kept_as"].startswith(".corrupt/" + JOURNAL)
    assert replicator.stats()["m1"]["healed"] == 1
    assert "repaired from m2" in caplog.text
    assert not (b / ".corrupt").exists()


def test_a_corrupt_journal_line_landing_is_healed_from_events(running):
    replicator, a, b = running
    write_object(a, TABLE, 1, rows=[[1]])
    lines = append_entries(a, TABLE, 2, appended_rows(2, 3))
    assert wait_until(lambda: version(b, TABLE) == 4)
    broken = corrupt_line(lines, 0)
    write_raw(a, JOURNAL, broken)                            # replaced: an event for the table
    assert wait_until(lambda: journal_bytes(a, TABLE) == lines)
    assert wait_until(lambda: replicator.stats()["m1"]["healed"] == 1)


def test_a_corrupt_snapshot_is_healed_with_its_journal_kept_aside(dirs):
    a, b = dirs
    write_object(a, TABLE, 1, rows=[[1]])
    lines = append_entries(a, TABLE, 2, appended_rows(2, 2))
    write_raw(b, TABLE, b"{torn")
    stale = append_entries(b, TABLE, 2, appended_rows(2, 1))
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    summary = replicator.sync_all()
    assert summary.healed == [TABLE]
    assert snapshot_bytes(b, TABLE) == snapshot_bytes(a, TABLE)
    assert journal_bytes(b, TABLE) == lines
    kept = sorted(p.name for p in (b / ".corrupt" / "school" / "tables").iterdir())
    assert [name.split(".")[1] for name in kept] == ["journal", "json"]
    journal_kept = next((b / ".corrupt" / "school" / "tables").glob("t.journal.*"))
    assert journal_kept.read_bytes() == stale


def test_a_symlinked_journal_is_refused(running, tmp_path):
    replicator, a, b = running
    write_object(a, TABLE, 1)
    assert wait_until(lambda: version(b, TABLE) == 1)
    outside = tmp_path / "outside.journal"
    outside.write_bytes(entry_lines(2, appended_rows(2, 1)))
    (a / JOURNAL).symlink_to(outside)
    replicator.sync_all()
    assert wait_until(lambda: [r["path"] for r in replicator.stats()["m1"]["refused"]] == [TABLE])
    assert version(b, TABLE) == 1 and journal_bytes(b, TABLE) is None
    refused = {}
    assert list_object_files(a, refused) == {TABLE} and refused == {
        TABLE: "its journal is a symlink"}


@pytest.mark.parametrize("workers", [1, 4])
def test_many_tables_appended_at_once_all_arrive(dirs, workers):
    import threading
    a, b = dirs
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0, workers=workers)
    replicator.start()
    try:
        for number in range(6):
            write_object(a, f"db/tables/s{number}.json", 1, rows=[])

        def student(number: int) -> None:
            for change in range(2, 22):
                append_entries(a, f"db/tables/s{number}.json", change,
                               appended_rows(change, 1))

        assert wait_until(lambda: all(version(b, f"db/tables/s{n}.json") == 1
                                      for n in range(6)))
        threads = [threading.Thread(target=student, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert wait_until(lambda: all(version(b, f"db/tables/s{n}.json") == 21
                                      for n in range(6)))
        assert replicator.wait_idle()
        for number in range(6):
            rel = f"db/tables/s{number}.json"
            assert journal_bytes(b, rel) == journal_bytes(a, rel)
        assert replicator.stats()["m2"]["last_error"] is None
    finally:
        replicator.stop()


def test_a_seeded_server_gets_each_table_as_its_snapshot_and_journal(dirs, tmp_path):
    a, b = dirs
    write_object(a, "school/database.json", 1)
    write_object(a, TABLE, 1, rows=[[1]])
    lines = append_entries(a, TABLE, 2, appended_rows(2, 3))
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    replicator.sync_all()
    c = tmp_path / "m3"
    summary = replicator.seed("m3", c)
    assert summary.copied == 2 and summary.conflicts == []
    for root in (b, c):
        assert snapshot_bytes(root, TABLE) == snapshot_bytes(a, TABLE)
        assert journal_bytes(root, TABLE) == lines
        assert rows(root) == [[1], [2], [3], [4]]


def test_one_job_per_append_the_echo_of_our_own_copy_is_not_queued(running):
    """Each append is one modification event in its directory; the copy it
    makes appends to the peer's journal, whose event is recognised as that
    copy's own (same inode and size) instead of queueing a second job."""
    replicator, a, b = running
    write_object(a, TABLE, 1, rows=[[1]])
    assert wait_until(lambda: version(b, TABLE) == 1)
    assert replicator.wait_idle(5)
    jobs_before = len(replicator.timings().get("queue_wait", []))
    appends = 20
    for change in range(2, 2 + appends):
        append_entries(a, TABLE, change, appended_rows(change, 1))
        assert wait_until(lambda change=change: version(b, TABLE) == change)
        assert replicator.wait_idle(5)
    jobs = len(replicator.timings()["queue_wait"]) - jobs_before
    assert appends <= jobs <= appends + 3, jobs   # two per append without the echo check


def test_a_write_right_after_our_copy_is_not_taken_for_its_echo(running):
    replicator, a, b = running
    write_object(a, TABLE, 1, rows=[[1]])
    append_entries(a, TABLE, 2, appended_rows(2, 1))
    assert wait_until(lambda: version(b, TABLE) == 2)
    append_entries(b, TABLE, 3, appended_rows(3, 1))   # m2's own write, after the copy
    assert wait_until(lambda: version(a, TABLE) == 3)


def test_a_copy_cut_back_to_its_own_lines_is_not_said_repaired_from_itself(caplog):
    """The only copy of its machine at the newest version, with a damaged journal, is cut
    back to its valid lines; the log said "repaired from m2's copy" of m2 itself."""
    health = ReplicaHealth(logging.getLogger("test-health"))
    health.add_server("m2")
    with caplog.at_level(logging.ERROR):
        health.healed("m2", Repair(TABLE, "journal: bad line", 0.0, "m2", 7, ".corrupt/x"))
        health.healed("m2", Repair(TABLE, "journal: bad line", 0.0, "m1", 7, ".corrupt/y"))
    first, second = (record.getMessage() for record in caplog.records)
    assert "cut back to its own valid lines (change 7)" in first and "from m2" not in first
    assert "repaired from m1's copy (change 7)" in second
