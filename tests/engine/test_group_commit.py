"""engine.storage.store group commit: the write overlay, one durable write per dirty file, failures."""

import json
import os
import threading

import pytest

from engine.session import Session
from engine.storage import atomic_files, group_commit
from engine.storage.object_state import current_document
from engine.storage.store import BatchNotWritten, BatchPartlyWritten, Store
from tests.engine.conftest import one_column_body as body
from tests.faults import disk_full, fail_on_call, io_error


def on_disk(store, folder="tables", name="t"):
    path = store.root / "db" / folder / f"{name}.json"
    return current_document(path)   # the snapshot with its journal applied


def temp_files(store):
    return [p for p in store.root.rglob(".*.tmp")]


def test_writes_wait_in_memory_then_one_file_write_per_object(store):
    store.begin_batch()
    store.write("db", "table", "t", body(1, 2))
    store.write("db", "table", "t", body(1, 2, 3))
    store.write("db", "table", "u", body(9))
    # Seen by reads of the batch, not yet on disk.
    assert store.read("db", "table", "t")["rows"] == [[1], [2], [3]]
    assert store.list_objects("db", "table") == ["t", "u"]
    assert on_disk(store)["rows"] == [[1]] and on_disk(store, name="u") is None
    assert store.commit_batch() == 2
    assert on_disk(store) == {"format": 2, "kind": "table", "name": "t", "change": 2,
                              "dropped": False, **body(1, 2, 3)}
    assert on_disk(store, name="u")["change"] == 1
    assert store.read("db", "table", "t")["change"] == 2
    assert temp_files(store) == []


def test_counter_grows_once_per_commit_and_keeps_growing_after(store):
    with store.write_batch():
        for count in range(2, 6):
            store.write("db", "table", "t", body(*range(count)))
    assert on_disk(store)["change"] == 2
    store.write("db", "table", "t", body(7))
    assert on_disk(store)["change"] == 3


def test_other_threads_see_only_durable_data(store):
    seen = []
    store.begin_batch()
    store.write("db", "table", "t", body(5))
    reader = threading.Thread(target=lambda: seen.append(store.read("db", "table", "t")["rows"]))
    reader.start()
    reader.join(5)
    store.commit_batch()
    assert seen == [[[1]]]


def test_drop_and_recreate_inside_a_batch(store):
    with store.write_batch():
        assert store.drop("db", "table", "t") is True
        assert store.read("db", "table", "t") is None
        assert store.list_objects("db", "table") == []
        assert store.drop("db", "table", "t") is False
    assert on_disk(store)["dropped"] is True and on_disk(store)["change"] == 2
    with store.write_batch():
        store.drop("db", "table", "t")  # already a tombstone: nothing
        store.write("db", "table", "t", body(4))
        store.drop("db", "table", "t")
    assert on_disk(store) == {"format": 2, "kind": "table", "name": "t", "change": 3,
                              "dropped": True}


def test_database_created_and_dropped_in_batches(store):
    with store.write_batch():
        store.create_database("other")
        assert store.database_exists("other")
        assert store.list_databases() == ["db", "other"]
        store.write("other", "table", "x", body(1))
    assert store.list_databases() == ["db", "other"]
    with store.write_batch():
        assert store.drop_database("other") is True
        assert store.list_databases() == ["db"]
    marker = json.loads((store.root / "other" / "database.json").read_text())
    assert marker["dropped"] is True
    assert json.loads((store.root / "other" / "tables" / "x.json").read_text())["dropped"] is True


def test_rollback_to_a_mark_forgets_later_writes(store):
    store.begin_batch()
    store.write("db", "table", "t", body(1, 2))
    mark = store.batch_mark()
    store.write("db", "table", "t", body(1, 2, 3))
    store.write("db", "table", "v", body(0))
    store.batch_rollback(mark)
    assert store.read("db", "table", "v") is None
    store.commit_batch()
    assert on_disk(store)["rows"] == [[1], [2]]
    assert on_disk(store, name="v") is None


def test_abort_writes_nothing_and_an_exception_in_write_batch_aborts(store):
    store.begin_batch()
    store.write("db", "table", "t", body(8))
    store.abort_batch()
    assert store.read("db", "table", "t")["rows"] == [[1]]
    with pytest.raises(RuntimeError):
        with store.write_batch():
            store.write("db", "table", "t", body(8))
            raise RuntimeError("boom")
    assert on_disk(store)["rows"] == [[1]] and on_disk(store)["change"] == 1
    store.write("db", "table", "t", body(2))  # the lock was released
    assert on_disk(store)["change"] == 2


def test_a_failure_while_preparing_writes_nothing(store, monkeypatch):
    monkeypatch.setattr(group_commit, "write_durable_temp",
                        fail_on_call(group_commit.write_durable_temp, 2, disk_full()))
    store.begin_batch()
    store.write("db", "table", "t", body(1, 2))
    store.write("db", "table", "u", body(3))
    with pytest.raises(BatchNotWritten):
        store.commit_batch()
    assert on_disk(store)["rows"] == [[1]] and on_disk(store, name="u") is None
    assert temp_files(store) == []
    assert store.read("db", "table", "t")["rows"] == [[1]]
    assert store.read("db", "table", "u") is None


def test_a_failure_while_renaming_says_which_files_are_in_place_and_no_stale_cache(store, monkeypatch):
    store.begin_batch()
    store.write("db", "table", "t", body(1, 2))
    store.write("db", "table", "u", body(3))
    monkeypatch.setattr(os, "replace", fail_on_call(os.replace, 2, io_error()))
    with pytest.raises(BatchPartlyWritten) as caught:
        store.commit_batch()
    monkeypatch.undo()
    assert "outcome unknown" in caught.value.message
    t, u = (str(store.root / "db" / "tables" / f"{name}.json") for name in "tu")
    assert caught.value.renamed == {t} and caught.value.durable == {t}
    assert temp_files(store) == []
    # Each file is whole: t is new, u never appeared; reads agree with the disk.
    assert store.read("db", "table", "t")["rows"] == on_disk(store)["rows"] == [[1], [2]]
    assert store.read("db", "table", "u") is None


def test_session_statements_in_one_batch_see_each_other(tmp_path):
    store = Store(tmp_path / "data")
    first, second = Session(store), Session(store)
    with store.write_batch():
        assert first.execute_one("manamboara tahiry s;").ok
        assert first.execute_one("ampiasao s;").ok
        assert second.execute_one("ampiasao s;").ok
        assert first.execute_one("manamboara tabilao t (id ISA(null,null));").ok
        assert second.execute_one("manampia ao@ t sanda (1), (2);").ok
        assert first.execute_one("manampia ao@ t sanda (3);").ok
        rows = second.execute_one("alaivo id ao@ t rehefa id > 1;").relation.rows
        assert rows == [[2], [3]]
    document = json.loads((tmp_path / "data" / "s" / "tables" / "t.json").read_text())
    assert document["rows"] == [[1], [2], [3]] and document["change"] == 1


def test_atomic_write_helper_is_shared_with_replication(tmp_path):
    target = tmp_path / "f.json"
    assert atomic_files.atomic_write(target, b"{}") is True
    assert atomic_files.atomic_write(target, b"[]", still_wanted=lambda: False) is False
    assert target.read_bytes() == b"{}"
    phases: list[str] = []  # replication explains its lag with them
    assert atomic_files.atomic_write(target, b"1", timed=lambda phase, ms: phases.append(phase))
    assert phases == ["write_temp", "lock_wait", "locked", "fsync_folder"]
    assert target.read_bytes() == b"1"
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []


def test_a_write_its_peers_did_not_all_receive_is_not_acknowledged(tmp_path, monkeypatch):
    """Write leases on, the new version could not be pushed to a peer (cut meanwhile): it is
    applied and durable here only, so its outcome is unknown. The server's batch answered
    it OK (its keys were listed durable), and the majority, aligning the cut server on its
    own copies, dropped the acknowledged row (CI: test_machines_leases, row 2000010)."""
    from engine.evaluation.outcome import Outcome
    from engine.storage.peers import FixedPeers
    from nodes.server.node import outcomes_after_partial_commit

    peer = tmp_path / "peer"
    store = Store(tmp_path / "data", peers=FixedPeers({"m1": peer}))
    store.create_database("db")
    store.write("db", "table", "t", body(1))
    monkeypatch.setattr(store._sync, "push_written", lambda files: "m1: no answer in time")
    store.begin_batch()
    store.write("db", "table", "t", body(1, 2))
    with pytest.raises(BatchPartlyWritten) as caught:
        store.commit_batch()
    partial = caught.value
    key = next(iter(partial.renamed))
    [outcome] = outcomes_after_partial_commit([Outcome.success("1 andalana")],
                                              [frozenset({key})], partial)
    assert not outcome.ok and "outcome unknown" in outcome.message, outcome
    assert on_disk(store)["rows"] == [[1], [2]]   # applied here all the same


def _fresh(store):
    """The directory as a new process reads it."""
    return Store(store.root)


def test_a_database_drop_cut_short_in_a_batch_leaves_it_gone_whole(store, monkeypatch):
    # t written first in the batch, then the database dropped: the marker's tombstone
    # is still put in place first, so a failure after it leaves no half database.
    store.write("db", "table", "u", body(3))
    store.begin_batch()
    store.write("db", "table", "t", body(1, 2))
    assert store.drop_database("db")
    monkeypatch.setattr(os, "replace", fail_on_call(os.replace, 2, io_error()))
    with pytest.raises(BatchPartlyWritten):
        store.commit_batch()
    monkeypatch.undo()
    after = _fresh(store)
    assert not after.database_exists("db")
    assert after.list_objects("db", "table") != []   # left live under the tombstone...
    after.create_database("db")
    assert after.list_objects("db", "table") == []   # ... and never back with a new one


def test_a_database_created_again_in_a_batch_puts_its_marker_last(store, monkeypatch):
    store.begin_batch()
    assert store.drop_database("db")
    store.create_database("db")
    # The old table's tombstone goes before the new marker: cut short after the first
    # file, the database is still the dropped one, not the old one with its table.
    monkeypatch.setattr(os, "replace", fail_on_call(os.replace, 2, io_error()))
    with pytest.raises(BatchPartlyWritten):
        store.commit_batch()
    monkeypatch.undo()
    after = _fresh(store)
    assert not (after.database_exists("db") and after.list_objects("db", "table") == ["t"])


def _record_renames_and_folder_fsyncs(store, monkeypatch) -> list[str]:
    """What the commit does, in order: `rename <path>` and `fsync <folder>`, relative."""
    events: list[str] = []
    real_replace, real_fsync = os.replace, group_commit.fsync_folder

    def replace(source, target):
        real_replace(source, target)
        events.append(f"rename {os.path.relpath(target, store.root)}")

    def fsync(folder):
        real_fsync(folder)
        events.append(f"fsync {os.path.relpath(folder, store.root)}")
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(group_commit, "fsync_folder", fsync)
    return events


def test_a_database_drop_makes_its_marker_durable_before_any_other_file(store, monkeypatch):
    """The marker's tombstone is the drop's commit point. Renamed first is enough after a
    crash of the process; after a power loss only what was fsynced holds, and the folders
    were fsynced after every rename, in no set order: a table's tombstone could be durable
    and the marker's not (half a database)."""
    store.write("db", "table", "u", body(3))
    store.begin_batch()
    assert store.drop_database("db")
    events = _record_renames_and_folder_fsyncs(store, monkeypatch)
    store.commit_batch()
    assert events[:2] == ["rename db/database.json", "fsync db"]
    assert "rename db/tables/u.json" in events[2:]


def test_a_database_created_again_makes_the_old_tombstones_durable_before_its_marker(
        store, monkeypatch):
    store.begin_batch()
    assert store.drop_database("db")
    store.create_database("db")
    events = _record_renames_and_folder_fsyncs(store, monkeypatch)
    store.commit_batch()
    marker = events.index("rename db/database.json")
    assert "fsync db/tables" in events[:marker]   # the old table's tombstone is durable first
    assert events[marker + 1] == "fsync db"
