"""Pull on write and the commit fence (engine/storage/peers.py, Store with peers), on real folders.

Two stores on two data directories, each knowing the other as a peer, and
no replication between them: whatever reaches one directory from the other
does so through the pull or not at all.
"""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from engine.errors import TahiryError
from engine.session import Session
from engine.storage.group_commit import BatchFenced, BatchNotWritten
from engine.storage.journal import journal_path
from engine.storage.object_state import current_document, version_of
from engine.storage.peers import DirectoryLock, FixedPeers, LockTimeout, holding
from engine.storage.store import Store

COLUMNS = [{"name": "a", "domain": [{"type": "ISA", "min": None, "max": None}]}]


def table_file(root, name="t", database="db"):
    return root / database / "tables" / f"{name}.json"


def on_disk(root, name="t", database="db"):
    path = table_file(root, name, database)
    return current_document(path)   # the snapshot with its journal applied


def rows(root, name="t"):
    return [row[0] for row in on_disk(root, name)["rows"]]


def temp_files(root):
    return sorted(p.name for p in root.rglob(".*.tmp"))


def ok(session, text):
    outcome = session.execute_one(text)
    assert outcome.ok, outcome.message
    return outcome


@pytest.fixture
def pair(tmp_path):
    """(store a, store b): same database and table t holding [1], at change 2 on both."""
    a_root, b_root = tmp_path / "a", tmp_path / "b"
    seed = Session(Store(a_root))
    ok(seed, "manamboara tahiry db;")
    ok(seed, "ampiasao db;")
    ok(seed, "manamboara tabilao t (a ISA(null, null));")
    ok(seed, "manampia ao@ t sanda (1);")
    shutil.copytree(a_root, b_root)
    a = Store(a_root, peers=FixedPeers({"b": b_root}), lock_timeout_s=0.3)
    b = Store(b_root, peers=FixedPeers({"a": a_root}), lock_timeout_s=0.3)
    return a, b


def session_on(store):
    session = Session(store)
    ok(session, "ampiasao db;")
    return session


# --------------------------------------------------------------------------
# pull on write


def test_a_newer_peer_copy_is_adopted_then_written_on_top(pair):
    a, b = pair
    ok(session_on(b), "manampia ao@ t sanda (2);")           # b: change 3, rows [1, 2]
    assert on_disk(a.root)["change"] == 2 and rows(a.root) == [1]
    ok(session_on(a), "manampia ao@ t sanda (3);")
    assert on_disk(a.root)["change"] == on_disk(b.root)["change"] + 1
    assert rows(a.root) == [1, 2, 3]
    assert rows(b.root) == [1, 2]                              # the pull never writes a peer
    assert temp_files(a.root) == temp_files(b.root) == []


def test_pull_inside_a_group_commit_batch(pair):
    a, b = pair
    ok(session_on(b), "manampia ao@ t sanda (2);")
    first, second = session_on(a), session_on(a)
    with a.write_batch():
        ok(first, "manampia ao@ t sanda (3);")
        ok(second, "manampia ao@ t sanda (4);")
        ok(second, "havaozy t ova a = a * 10 rehefa a = 1;")
    document = on_disk(a.root)
    assert [row[0] for row in document["rows"]] == [10, 2, 3, 4]
    assert document["change"] == on_disk(b.root)["change"] + 1   # one file write per batch


def _replicate_after_the_read(monkeypatch, source, target, peer_write=None):
    """Copy `source`'s t.json over `target`'s right after a statement read the table.

    What the replicator does when a peer's write lands while a slow statement
    runs: the file changes under the statement, between its read and its
    write. `peer_write`, if given, runs first (the peer's write being copied).
    """
    from engine.evaluation.executor import Executor
    from engine.storage.maintenance import write_snapshot

    original = Executor._writable_table
    done = []

    def read_then_replicate(self, database, name):
        found = original(self, database, name)
        if not done:
            done.append(True)
            if peer_write is not None:
                peer_write()
            # The source's current version (snapshot and journal) as the target's snapshot.
            write_snapshot(table_file(target), current_document(table_file(source)))
            journal_path(table_file(target)).unlink(missing_ok=True)
        return found

    monkeypatch.setattr(Executor, "_writable_table", read_then_replicate)


def test_a_copy_replicated_between_read_and_write_is_not_overwritten(pair, monkeypatch):
    a, b = pair
    # After a's statement read t (change 2), b commits row 2 (change 3) and
    # replication copies it into a: the file changes under a's statement.
    _replicate_after_the_read(monkeypatch, b.root, a.root,
                              peer_write=lambda: ok(session_on(b), "manampia ao@ t sanda (2);"))
    ok(session_on(a), "manampia ao@ t sanda (3);")
    assert rows(a.root) == [1, 2, 3], "the write was re-run on top of the replicated copy"
    assert on_disk(a.root)["change"] == 4


def test_a_statement_of_a_batch_is_refused_when_its_read_version_was_replaced(pair, monkeypatch):
    a, b = pair
    ok(session_on(b), "manampia ao@ t sanda (2);")
    _replicate_after_the_read(monkeypatch, b.root, a.root)
    session = session_on(a)
    a.begin_batch()
    ok(session, "manampia ao@ t sanda (3);")    # pulled b's 3 first: the copy changes nothing
    a.commit_batch()
    assert rows(a.root) == [1, 2, 3]
    monkeypatch.undo()
    ok(session_on(b), "manampia ao@ t sanda (4);")            # b: 5 (pulled a's 4)
    _replicate_after_the_read(monkeypatch, b.root, a.root)
    a.begin_batch()
    a._batch.pulled.add(str(table_file(a.root)))              # as if pulled earlier in the batch
    ok(session, "manampia ao@ t sanda (5);")                  # based on 4; file is 5 by now
    with pytest.raises(BatchFenced):
        a.commit_batch()
    assert rows(a.root) == [1, 2, 3, 4], "the replicated row stays"


def test_a_writer_always_beaten_by_a_peer_wins_on_its_last_pessimistic_attempt(pair, monkeypatch):
    from engine.evaluation.executor import Executor
    from engine.storage.certified import CERTIFY_ATTEMPTS

    a, b = pair
    original = Executor._writable_table
    peer_answers = []

    def read_then_peer_commits(self, database, name):
        found = original(self, database, name)
        if self.store is a:   # b commits a row after every read a's statement makes
            outcome = session_on(b).execute_one(f"manampia ao@ t sanda ({100 + len(peer_answers)});")
            peer_answers.append(outcome)
        return found

    monkeypatch.setattr(Executor, "_writable_table", read_then_peer_commits)
    ok(session_on(a), "manampia ao@ t sanda (7);")
    assert len(peer_answers) == CERTIFY_ATTEMPTS
    assert all(outcome.ok for outcome in peer_answers[:-1])
    # On a's last attempt a held every commit lock: b could not commit in between.
    assert not peer_answers[-1].ok and "mihidy" in peer_answers[-1].message
    peer_rows = [100 + i for i in range(CERTIFY_ATTEMPTS - 1)]
    assert rows(a.root) == [1] + peer_rows + [7]
    assert a.certification_report()["fenced_commits"] == CERTIFY_ATTEMPTS - 1


def test_directory_locks_are_reentrant(tmp_path):
    lock, other = DirectoryLock(tmp_path), DirectoryLock(tmp_path)
    with holding([lock]):
        with holding([lock], timeout_s=0.05):
            pass
        assert not other.try_acquire(), "the inner release must not unlock"
    assert other.try_acquire()
    other.release()


def test_a_table_dropped_on_a_peer_is_not_resurrected(pair):
    a, b = pair
    ok(session_on(b), "ravao ny tabilao t;")
    tombstone = on_disk(b.root)
    session = session_on(a)
    outcome = session.execute_one("manampia ao@ t sanda (5);")
    assert not outcome.ok and "t n'as pas été trouvé" in outcome.message
    assert on_disk(a.root) == tombstone                        # the drop reached a, nothing more
    assert ok(session, "asehoy ny tabilao;").relation.rows == []
    ok(session, "manamboara tabilao t (a ISA(null, null));")  # continues from the tombstone
    assert on_disk(a.root)["change"] == tombstone["change"] + 1
    assert on_disk(a.root)["rows"] == []


def test_a_database_dropped_on_a_peer_stays_dropped(pair):
    a, b = pair
    dropper = Session(b)
    ok(dropper, "ravao ny tahiry db;")
    session = session_on(a)  # a still has db: the session selects it
    outcome = session.execute_one("manampia ao@ t sanda (5);")
    assert not outcome.ok and "Tsy misy ny tahiry" in outcome.message
    assert json.loads((a.root / "db" / "database.json").read_bytes())["dropped"] is True
    assert on_disk(a.root) == on_disk(b.root)                  # b's tombstone, nothing more
    assert on_disk(a.root)["dropped"] is True


def test_pulling_a_database_brings_every_newer_object_and_skips_odd_names(pair):
    a, b = pair
    ok(session_on(b), "manamboara tabilao u (a ISA(null, null));")
    ok(session_on(b), "manampia ao@ t sanda (2);")
    (b.root / "db" / "tables" / "not-a-name.json").write_text("{}")
    a.pull_newer_objects("db")
    assert on_disk(a.root, "u") == on_disk(b.root, "u") and rows(a.root) == [1, 2]
    assert not (a.root / "db" / "tables" / "not-a-name.json").exists()
    a.pull_newer_objects("../db")   # not a database name: the statement reports it, no pull


def test_a_torn_or_garbage_peer_copy_is_ignored(pair, caplog):
    a, b = pair
    table_file(b.root).write_bytes(b'{"format":1,"kind":"table","name":"t","change":99,"dr')
    with caplog.at_level(logging.WARNING, logger="engine"):
        ok(session_on(a), "manampia ao@ t sanda (2);")
    assert rows(a.root) == [1, 2] and on_disk(a.root)["change"] == 3
    assert "ignoring" in caplog.text and "b/db/tables/t.json" in caplog.text


def test_one_version_in_two_shapes_is_no_conflict(pair, caplog):
    """A checkpointed copy (the journal folded into the snapshot) and a copy holding its
    snapshot and journal are one version: their snapshots' sizes differ. Comparing them
    logged "both have change N but differ" at every write and kept each in a set that
    only grew (the server's `.status`, replica_conflicts)."""
    a, b = pair
    ok(session_on(a), "manampia ao@ t sanda (2);")       # a: snapshot + journal
    shutil.rmtree(b.root / "db")
    shutil.copytree(a.root / "db", b.root / "db")
    folded = on_disk(b.root)                             # b: the same version, checkpointed
    table_file(b.root).write_text(json.dumps(folded, separators=(",", ":")))
    journal_path(table_file(b.root)).unlink()
    assert on_disk(a.root) == on_disk(b.root)
    with caplog.at_level(logging.WARNING, logger="engine"):
        ok(session_on(a), "manampia ao@ t sanda (3);")
        ok(session_on(b), "manampia ao@ t sanda (4);")
    assert "but differ" not in caplog.text
    assert a.certification_report()["replica_conflicts"] == []
    assert b.certification_report()["replica_conflicts"] == []


def test_equal_counters_with_different_content_keep_the_local_copy(pair, caplog):
    a, b = pair
    snapshot = json.loads(table_file(b.root).read_text())   # a hand edit: the rows, not the counter
    snapshot["rows"] = [[7], [8]]
    table_file(b.root).write_text(json.dumps(snapshot, separators=(",", ":")))
    with caplog.at_level(logging.WARNING, logger="engine"):
        ok(session_on(a), "manampia ao@ t sanda (2);")
    assert rows(a.root) == [1, 2] and on_disk(a.root)["change"] == 3
    assert "both have change 2 but differ" in caplog.text
    assert a.certification_report()["replica_conflicts"] == [
        {"object": "db/tables/t.json", "peer": "b", "change": 2}]   # in the server's .status;


def test_an_object_created_on_a_peer_is_pulled_before_a_create(pair):
    a, b = pair
    ok(session_on(b), "manamboara tabilao u (a ISA(null, null));")
    outcome = session_on(a).execute_one("manamboara tabilao u (b ISA(null, null));")
    assert not outcome.ok and "efa misy" in outcome.message
    assert on_disk(a.root, "u") == on_disk(b.root, "u")


def test_the_peer_header_is_read_without_parsing_the_whole_file(tmp_path):
    path = tmp_path / "db" / "tables" / "t.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b'{"format":1,"kind":"table","name":"t","change":42,"dropped":false,"rows":['
                     + b"1," * 5000 + b"1]}")
    assert version_of(tmp_path, "db/tables/t.json").change == 42
    path.write_text('{ "format": 1, "kind": "table", "name": "t", "change": 7, "dropped": false }')
    assert version_of(tmp_path, "db/tables/t.json").change == 7   # not compact: full parse
    assert version_of(tmp_path, "db/tables/missing.json") is None


# --------------------------------------------------------------------------
# the fence at commit


def test_fence_refuses_a_batch_when_a_peer_committed_the_same_counter(pair):
    a, b = pair
    session = session_on(a)
    a.begin_batch()
    ok(session, "manampia ao@ t sanda (3);")                  # pulled: b is not newer yet
    ok(session_on(b), "manampia ao@ t sanda (2);")            # b commits change 3 meanwhile
    before = table_file(a.root).read_bytes()
    with pytest.raises(BatchFenced) as caught:
        a.commit_batch()
    assert caught.value.retry and "change 3" in caught.value.message
    assert a.certification_report()["fenced_commits"] == 1
    assert table_file(a.root).read_bytes() == before          # nothing renamed
    assert temp_files(a.root) == []
    assert rows(b.root) == [1, 2]
    # Run again, the statement pulls b's copy first and lands on top of it.
    ok(session, "manampia ao@ t sanda (3);")
    assert rows(a.root) == [1, 2, 3] and on_disk(a.root)["change"] == 4


def test_fence_on_a_write_outside_a_batch_is_a_clean_error(pair):
    a, b = pair
    ok(session_on(b), "manampia ao@ t sanda (2);")
    before = table_file(a.root).read_bytes()
    with pytest.raises(TahiryError) as caught:   # Store.write itself does not pull
        a.write("db", "table", "t", {"columns": COLUMNS, "rows": [[1], [9]]})
    assert "Tsy voasoratra" in caught.value.message and "unknown" not in caught.value.message
    assert table_file(a.root).read_bytes() == before and temp_files(a.root) == []


def test_identical_database_markers_written_on_both_sides_are_not_a_conflict(pair):
    a, b = pair
    ok(Session(b), "manamboara tahiry other;")
    ok(Session(a), "manamboara tahiry other;")   # the balancer sends it to every server
    assert (a.root / "other" / "database.json").read_bytes() == \
        (b.root / "other" / "database.json").read_bytes()


def test_a_held_peer_lock_refuses_the_commit_cleanly(pair):
    a, b = pair
    other_holder = DirectoryLock(b.root)
    session = session_on(a)
    before = table_file(a.root).read_bytes()
    with holding([other_holder]):
        a.begin_batch()
        ok(session, "manampia ao@ t sanda (3);")
        with pytest.raises(BatchNotWritten) as caught:
            a.commit_batch()
    assert not caught.value.retry and "mihidy" in caught.value.message
    assert table_file(a.root).read_bytes() == before and temp_files(a.root) == []
    ok(session, "manampia ao@ t sanda (3);")                  # released: writes go on
    assert rows(a.root) == [1, 3]


def test_locks_time_out_and_release_what_they_took(tmp_path):
    first, second = DirectoryLock(tmp_path / "x"), DirectoryLock(tmp_path / "y")
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    blocker = DirectoryLock(tmp_path / "y")
    with holding([blocker]):
        with pytest.raises(LockTimeout):
            with holding([second, first], timeout_s=0.05):
                pass
    assert first.try_acquire()                                # x was released on the timeout
    first.release()


def test_a_store_without_peers_takes_no_lock_and_leaves_no_lock_file(tmp_path):
    store = Store(tmp_path / "data")
    ok(Session(store), "manamboara tahiry db;")
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["db"]
