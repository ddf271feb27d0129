"""Replication between real temp data directories (no server processes).

Object files are written the way the engine writes them (temp file in the
same folder, then `os.replace`), and the replicator runs with its real
watchdog observer and worker thread.
"""

from __future__ import annotations

import logging
import os
import time

import orjson
import pytest

from engine.storage.object_format import object_relpath
from supervisor.objectfiles import list_object_files
from supervisor.replication import Replicator, percentile
from tests.supervisor.replicakit import (
    DEADLINE_S,
    TABLE,
    document,
    read_change,
    wait_until,
    write_object,
    write_raw,
)


def test_write_in_one_directory_appears_in_the_other(running):
    replicator, a, b = running
    write_object(a, "school/database.json", 1)
    write_object(a, TABLE, 1, rows=[[1], [2]])
    assert wait_until(lambda: read_change(b, TABLE) == 1)
    assert (b / TABLE).read_bytes() == (a / TABLE).read_bytes()
    assert wait_until(lambda: read_change(b, "school/database.json") == 1)
    assert replicator.wait_idle()
    stats = replicator.stats()
    assert stats["m2"]["files_copied"] == 2
    assert stats["m2"]["lag_samples"] == 2 and stats["m2"]["lag_p99_ms"] is not None
    assert stats["m1"]["files_copied"] == 0  # the echo of the copy did nothing


def test_replication_works_in_both_directions_and_does_not_loop(running):
    replicator, a, b = running
    write_object(a, TABLE, 1)
    assert wait_until(lambda: read_change(b, TABLE) == 1)
    write_object(b, TABLE, 2)
    assert wait_until(lambda: read_change(a, TABLE) == 2)
    # The echo events of the two copies may not have reached the replicator
    # yet. A directory's events arrive in order: once a marker written after
    # them on each side has been copied across, the echoes were queued before
    # it, and wait_idle covers them.
    write_object(a, "school/tables/marker_a.json", 1)
    write_object(b, "school/tables/marker_b.json", 1)
    assert wait_until(lambda: read_change(b, "school/tables/marker_a.json") == 1,
                      what="the marker written in m1 to reach m2")
    assert wait_until(lambda: read_change(a, "school/tables/marker_b.json") == 1,
                      what="the marker written in m2 to reach m1")
    assert replicator.wait_idle()
    stats = replicator.stats()
    # One copy of the table each way, and the marker: no echo was copied back.
    assert (stats["m1"]["files_copied"], stats["m2"]["files_copied"]) == (2, 2)
    assert not list(a.rglob("*.tmp")) and not list(b.rglob("*.tmp"))


def test_an_older_copy_never_overwrites_a_newer_one(dirs):
    a, b = dirs
    write_object(a, TABLE, 3)
    write_object(b, TABLE, 7)
    newer = (b / TABLE).read_bytes()
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    summary = replicator.sync_all()
    assert (b / TABLE).read_bytes() == newer
    assert (a / TABLE).read_bytes() == newer
    assert summary.copied == 1


def test_an_old_write_arriving_later_is_not_copied_over_newer(running):
    replicator, a, b = running
    write_object(b, TABLE, 9)
    assert wait_until(lambda: read_change(a, TABLE) == 9)
    write_object(a, TABLE, 4)  # stale file appearing on m1 (e.g. a restored backup)
    # Its event handled, the newer copy wins everywhere: m1 gets 9 back (had
    # the stale one been copied over m2, no 9 would be left to bring back).
    assert wait_until(lambda: read_change(a, TABLE) == 9,
                      what="m2's newer copy to replace the stale one in m1")
    assert replicator.wait_idle()
    assert read_change(b, TABLE) == 9


def test_tombstone_propagates_and_blocks_resurrection(dirs):
    a, b = dirs
    write_object(a, TABLE, 5, dropped=True)
    write_object(b, TABLE, 4, rows=[[1]])  # m2 was away when the table was dropped
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    replicator.sync_all()
    copied = orjson.loads((b / TABLE).read_bytes())
    assert copied["dropped"] is True and copied["change"] == 5
    assert orjson.loads((a / TABLE).read_bytes())["dropped"] is True


def test_tombstone_reaches_a_peer_that_never_had_the_object(running):
    replicator, a, b = running
    write_object(a, TABLE, 2, dropped=True)
    assert wait_until(lambda: read_change(b, TABLE) == 2)
    assert orjson.loads((b / TABLE).read_bytes())["dropped"] is True


def test_same_counter_different_content_is_a_conflict(dirs, caplog):
    a, b = dirs
    write_object(a, TABLE, 3, rows=[["from m1"]])
    write_object(b, TABLE, 3, rows=[["from m2"]])
    before_a, before_b = (a / TABLE).read_bytes(), (b / TABLE).read_bytes()
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    with caplog.at_level(logging.WARNING):
        summary = replicator.sync_all()
    assert summary.conflicts == [TABLE] and summary.copied == 0
    assert (a / TABLE).read_bytes() == before_a and (b / TABLE).read_bytes() == before_b
    conflicts = replicator.stats()["m1"]["conflicts"]
    assert [(c["path"], c["change"], c["servers"]) for c in conflicts] == [
        (TABLE, 3, ["m1", "m2"])]
    assert replicator.stats()["m2"]["conflicts"] == conflicts
    assert "CONFLICT" in caplog.text and TABLE in caplog.text
    # A newer write on one side settles it.
    write_object(b, TABLE, 4, rows=[["settled"]])
    replicator.sync_all()
    assert read_change(a, TABLE) == 4
    assert replicator.conflicts() == []


def test_same_counter_same_content_is_not_a_conflict(dirs):
    a, b = dirs
    doc = document(TABLE, 3)
    write_raw(a, TABLE, orjson.dumps(doc))
    # Same object, different key order: not a conflict.
    write_raw(b, TABLE, orjson.dumps(dict(reversed(list(doc.items())))))
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    summary = replicator.sync_all()
    assert summary.conflicts == [] and summary.copied == 0


def test_conflict_is_detected_from_events_too(running):
    replicator, a, b = running
    replicator.remove_server("m2")
    write_object(a, TABLE, 2, rows=[["a"]])
    write_object(b, TABLE, 2, rows=[["b"]])
    replicator.add_server("m2", b)
    write_object(a, "school/tables/u.json", 1)  # unrelated traffic
    assert wait_until(lambda: read_change(b, "school/tables/u.json") == 1)
    replicator.sync_all()
    assert [c["path"] for c in replicator.conflicts()] == [TABLE]
    assert orjson.loads((b / TABLE).read_bytes())["rows"] == [["b"]]


def test_burst_of_writes_is_coalesced_and_ends_with_the_last(running):
    replicator, a, b = running
    for change in range(1, 101):
        write_object(a, TABLE, change)
    assert wait_until(lambda: read_change(b, TABLE) == 100)
    assert replicator.wait_idle()
    assert read_change(b, TABLE) == 100
    assert replicator.stats()["m2"]["files_copied"] < 100


def test_catch_up_pulls_what_a_directory_missed(dirs, tmp_path):
    a, b = dirs
    c = tmp_path / "m3"
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    replicator.start()
    try:
        write_object(a, TABLE, 1)
        assert wait_until(lambda: read_change(b, TABLE) == 1)
        replicator.remove_server("m2")  # m2 away: it misses the next writes
        write_object(a, TABLE, 2)
        write_object(a, "school/tables/new.json", 1)
        write_object(a, "school/views/v.json", 1)
        assert replicator.wait_idle()
        assert read_change(b, TABLE) == 1
        replicator.add_server("m2", b)
        replicator.catch_up("m2")
        # Late events of the writes above may have copied some already.
        assert replicator.stats()["m2"]["files_copied"] == 3
        assert read_change(b, TABLE) == 2
        assert read_change(b, "school/tables/new.json") == 1
        assert read_change(b, "school/views/v.json") == 1
        # A new server gets a full copy.
        replicator.seed("m3", c)
        assert list_object_files(c) == list_object_files(a)
        write_object(a, TABLE, 3)
        assert wait_until(lambda: read_change(c, TABLE) == 3)
    finally:
        replicator.stop()


def test_a_server_added_back_takes_the_clusters_copies_its_own_kept_aside(dirs, tmp_path):
    """A server removed from the topology, its directory written meanwhile (the embedded
    runner), then added back: its copies had higher counters than the cluster's and won,
    overwriting an acknowledged write on every server. Now the cluster's copy is
    installed over the newcomer's differing one, which is kept in `.diverged/`."""
    a, b = dirs
    c = tmp_path / "m3"
    for root in (a, b, c):
        write_object(root, TABLE, 5, rows=[[1]])
    acknowledged = [[1], [2]]
    write_object(a, TABLE, 6, rows=acknowledged)
    write_object(b, TABLE, 6, rows=acknowledged)
    write_object(c, TABLE, 7, rows=[[1], [50002], [50003]])   # written while out, past 6
    write_object(c, "school/tables/only_here.json", 1)          # nothing in the cluster to lose
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    replicator.start()
    try:
        summary = replicator.seed("m3", c)
        assert replicator.wait_idle()
        assert summary.diverged == [TABLE]
        for root in (a, b, c):
            assert orjson.loads((root / TABLE).read_bytes())["rows"] == acknowledged, root
        kept = list((c / ".diverged").rglob("*.json*"))
        assert len(kept) == 1 and orjson.loads(kept[0].read_bytes())["rows"][1] == [50002]
        assert read_change(c, "school/tables/only_here.json") == 1   # kept: nothing to lose
    finally:
        replicator.stop()


def test_a_server_leaving_hands_over_what_it_acknowledged_before_it_may_join_again(dirs, tmp_path):
    """A server stopped and removed (or changed) right after acknowledging a write not yet
    copied: the others get it when it leaves, so re-joining cannot drop it."""
    a, b = dirs
    c = tmp_path / "m3"
    for root in (a, b, c):
        write_object(root, TABLE, 5, rows=[[1]])
    write_object(c, TABLE, 6, rows=[[1], [6]])   # acknowledged by m3, not copied yet
    replicator = Replicator({"m1": a, "m2": b, "m3": c}, resync_interval_s=0)
    summary = replicator.hand_over("m3")
    replicator.remove_server("m3")
    assert summary.copied == 2 and read_change(a, TABLE) == read_change(b, TABLE) == 6
    write_object(c, TABLE, 7, rows=[[1], [6], [7]])  # written while out (not acknowledged)
    replicator.seed("m3", c)
    for root in (a, b, c):
        assert orjson.loads((root / TABLE).read_bytes())["rows"] == [[1], [6]], root


def test_catch_up_only_writes_into_the_server_catching_up(dirs):
    a, b = dirs
    write_object(a, TABLE, 1)
    write_object(b, "school/tables/only_b.json", 1)
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    replicator.catch_up("m2")
    assert read_change(b, TABLE) == 1
    assert read_change(a, "school/tables/only_b.json") is None
    with pytest.raises(KeyError):
        replicator.catch_up("nobody")


def test_stray_temp_files_and_other_files_are_ignored(running):
    replicator, a, b = running
    folder = a / "school" / "tables"
    folder.mkdir(parents=True)
    (folder / ".t.json.abc123.tmp").write_bytes(orjson.dumps(document(TABLE, 1)))
    (folder / "notes.txt").write_text("hello")
    (a / "README").write_text("hello")
    write_object(a, "school/tables/marker.json", 1)
    assert wait_until(lambda: read_change(b, "school/tables/marker.json") == 1)
    assert replicator.wait_idle()
    assert sorted(p.name for p in (b / "school" / "tables").iterdir()) == ["marker.json"]


@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2]", b'{"format":1}',
                                     b'{"format":1,"kind":"table","name":"t","change":"x"}',
                                     b'{"format":1,"kind":"view","name":"t","change":2}',
                                     b'{"format":1,"kind":"table","name":"zz","change":2}',
                                     b"\xff\xfe"])
def test_garbage_object_files_are_never_copied(running, garbage):
    replicator, a, b = running
    write_raw(a, TABLE, garbage)
    write_object(a, "school/tables/ok.json", 1)
    assert wait_until(lambda: read_change(b, "school/tables/ok.json") == 1)
    assert wait_until(lambda: TABLE in (replicator.stats()["m1"]["last_error"] or ""))
    assert not (b / TABLE).exists()
    # The worker survived: replication goes on, and a valid rewrite flows.
    write_object(a, TABLE, 3)
    assert wait_until(lambda: read_change(b, TABLE) == 3)


def test_garbage_at_the_destination_is_kept_aside_and_repaired(dirs):
    a, b = dirs
    write_object(a, TABLE, 2)
    write_raw(b, TABLE, b"{torn")
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    summary = replicator.sync_all()
    assert summary.healed == [TABLE] and summary.unreadable == []
    assert (b / TABLE).read_bytes() == (a / TABLE).read_bytes()
    [kept] = (b / ".corrupt" / "school" / "tables").iterdir()
    assert kept.read_bytes() == b"{torn"


def test_files_written_into_a_new_database_folder_are_all_replicated(running):
    replicator, a, b = running
    for index in range(20):
        write_object(a, f"fresh/tables/t{index}.json", 1)
    write_object(a, "fresh/database.json", 1)
    assert wait_until(lambda: len(list_object_files(b)) == 21)
    assert list_object_files(b) == list_object_files(a)


def test_periodic_resync_repairs_a_missed_event(dirs):
    a, b = dirs
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0.2)
    replicator.start()
    try:
        replicator.remove_server("m2")
        write_object(b, TABLE, 4)  # written while m2 was not watched
        replicator.add_server("m2", b)
        assert wait_until(lambda: read_change(a, TABLE) == 4)
    finally:
        replicator.stop()


def test_overlapping_data_directories_are_refused(tmp_path):
    with pytest.raises(ValueError):
        Replicator({"m1": tmp_path / "d", "m2": tmp_path / "d" / "inner"})
    with pytest.raises(ValueError):
        Replicator({"m1": tmp_path / "d", "m2": tmp_path / "d"})


def test_object_paths_are_recognised_exactly():
    assert object_relpath(["db", "database.json"]) == "db/database.json"
    assert object_relpath(["db", "tables", "t.json"]) == "db/tables/t.json"
    assert object_relpath(["db", "views", "v.json"]) == "db/views/v.json"
    assert object_relpath(["db", "domains", "d.json"]) == "db/domains/d.json"
    for parts in (["db", "tables", ".t.json.1a2b.tmp"], ["db", "tables", "t.txt"],
                  [".db", "database.json"], ["db", "other", "t.json"],
                  ["db", "tables", ".json"], ["database.json"], ["a", "b", "c", "d.json"]):
        assert object_relpath(parts) is None, parts


def test_percentile_is_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.99) == 99.0


def test_a_failed_copy_is_reported_and_retried(running):
    replicator, a, b = running
    (b / "school").mkdir()
    (b / "school" / "tables").write_text("a file where the folder should be")
    write_object(a, TABLE, 1)
    assert wait_until(lambda: "copy of" in (replicator.stats()["m2"]["last_error"] or ""))
    assert not (b / "school" / "tables").is_dir()
    (b / "school" / "tables").unlink()  # the operator fixes it: the retry goes through
    assert wait_until(lambda: read_change(b, TABLE) == 1)


def test_a_symlinked_folder_cannot_lead_a_copy_outside_the_data_directory(dirs, tmp_path):
    a, b = dirs
    outside = tmp_path / "outside"
    outside.mkdir()
    (b / "school").symlink_to(outside)  # school/tables does not exist yet
    write_object(a, TABLE, 1)
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    summary = replicator.sync_all()
    assert summary.refused == [TABLE] and summary.copied == 0
    assert list(outside.iterdir()) == []
    assert "symlink" in replicator.stats()["m2"]["last_error"]


def test_pending_paths_coalesce_prioritise_events_and_retry():
    from supervisor.replication_queue import PendingPaths
    pending = PendingPaths(lambda: {"db/tables/old.json", "db/tables/t.json"},
                           resync_interval_s=0.001)
    created = time.monotonic()
    # The background pass is due before the events come: they still go first.
    wait_until(lambda: time.monotonic() >= created + pending.resync_interval_s,
               what="the first background pass to be due")
    pending.add("db/tables/t.json")
    pending.add("db/tables/t.json")
    pending.add("db/views/v.json")
    first, since = pending.take()
    assert first == "db/tables/t.json" and since is not None
    pending.done(first, failed=True, since=since)  # retried later, with its first event time
    second, _ = pending.take()
    assert second == "db/views/v.json"
    pending.done(second, failed=False, since=None)
    # Background pass entries come after events; the retry comes back when due.
    jobs = [pending.take() for _ in range(2)]
    assert sorted(rel for rel, _ in jobs) == ["db/tables/old.json", "db/tables/t.json"]
    assert dict(jobs)["db/tables/t.json"] in (since, None)
    pending.close()
    assert pending.take() is None


def test_pending_paths_never_hand_one_path_to_two_workers():
    from supervisor.replication_queue import PendingPaths
    pending = PendingPaths(lambda: set(), resync_interval_s=0)
    pending.add("db/tables/a.json")
    first, _ = pending.take()
    pending.add("db/tables/a.json")  # written again while a worker copies it
    pending.add("db/tables/b.json")
    second, _ = pending.take()
    assert (first, second) == ("db/tables/a.json", "db/tables/b.json")
    assert not pending.wait_idle(0.01)  # a.json waits for its first job to end
    pending.done(first, failed=False, since=None)
    third, since = pending.take()
    assert third == "db/tables/a.json" and since is not None
    pending.done(second, failed=False, since=None)
    pending.done(third, failed=False, since=None)
    assert pending.wait_idle(1.0)
    pending.close()


def test_each_worker_thread_has_its_own_handle_on_a_destination_lock(dirs):
    import threading
    a, b = dirs
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    mine = replicator._copies.lock_of("m2", b.resolve())
    assert mine.try_acquire()
    try:
        others: list[bool] = []

        def other_thread() -> None:
            lock = replicator._copies.lock_of("m2", b.resolve())
            others.append(lock is mine or lock.try_acquire())
            replicator._close_thread_locks()

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(5)
        assert others == [False]  # flock excludes the other worker too
    finally:
        mine.release()
        replicator._close_thread_locks()


def test_a_copy_waits_for_the_destination_lock_and_gives_up_after_the_timeout(tmp_path):
    from engine.storage.peers import PROMPT_LOCK_POLL_MAX_S, DirectoryLock, LockTimeout, holding
    server_lock = DirectoryLock(tmp_path)  # a server committing in that directory
    assert server_lock.try_acquire()
    try:
        with pytest.raises(LockTimeout):
            with holding([DirectoryLock(tmp_path)], 0.05, PROMPT_LOCK_POLL_MAX_S):
                pass
    finally:
        server_lock.release()
    replicator_lock = DirectoryLock(tmp_path)
    with holding([replicator_lock], 1.0, PROMPT_LOCK_POLL_MAX_S):
        assert not server_lock.try_acquire()
    assert server_lock.try_acquire()
    server_lock.release()


def test_many_tables_written_at_once_all_arrive_newest_last(dirs):
    import threading
    a, b = dirs
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0, workers=4)
    replicator.start()
    try:
        def student(number: int) -> None:
            for change in range(1, 21):
                write_object(a, f"db/tables/s{number}.json", change)

        threads = [threading.Thread(target=student, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        wait_until(lambda: all(read_change(b, f"db/tables/s{n}.json") == 20 for n in range(8)))
        assert replicator.wait_idle(DEADLINE_S)
        stats = replicator.stats()["m2"]
        assert stats["conflicts"] == [] and stats["last_error"] is None
        assert all(read_change(b, f"db/tables/s{n}.json") == 20 for n in range(8))
        assert {"queue_wait", "write_temp", "lock_wait", "locked"} <= set(replicator.timings())
        assert not [name for name in os.listdir(b / "db" / "tables") if name.endswith(".tmp")]
    finally:
        replicator.stop()


def test_a_removed_data_directory_is_filled_again(dirs):
    import shutil
    a, b = dirs
    write_object(a, TABLE, 1)
    replicator = Replicator({"m1": a, "m2": b}, resync_interval_s=0)
    shutil.rmtree(b)
    assert replicator.sync_all().copied == 1
    assert read_change(b, TABLE) == 1
