"""Storage format 2 in the store: row changes appended to journals, checkpoints, recovery, upgrade.

Real files in tmp_path; stores with `journal_writes=True`. Another Store on
the same directory plays the next process (a restart) or replication.
"""

from __future__ import annotations

import json

import orjson
import pytest

from engine.session import Session
from engine.storage import journal, maintenance
from engine.storage.checkpoints import CheckpointPolicy
from engine.storage.group_commit import BatchFenced
from engine.storage.journal import journal_path
from engine.storage.object_format import decode_document
from engine.storage.object_state import current_document, version_of
from engine.storage.peers import FixedPeers
from engine.storage.store import Store
from tests.conftest import ManualClock

SETUP = ("manamboara tahiry db; ampiasao db; "
         "manamboara tabilao t (id ISA(0,null), w LAHATSORATRA(null,null));")


def snapshot(root):
    return root / "db" / "tables" / "t.json"


def open_store(root, **options):
    options.setdefault("journal_writes", True)
    return Store(root, **options)


def run(store, text, database="db"):
    session = Session(store)
    session.current_database = database
    outcomes = session.execute(text)
    assert all(o.ok for o in outcomes), [o.message for o in outcomes if not o.ok]
    return outcomes


def ids(store):
    return [row[0] for row in store.read("db", "table", "t")["rows"]]


@pytest.fixture
def root(tmp_path):
    store = open_store(tmp_path / "data")
    run(store, SETUP, database=None)
    values = ", ".join(f"({i}, 'row {i}')" for i in range(10_000))
    run(store, f"manampia ao@ t sanda {values};")
    store.checkpoint_all()
    return tmp_path / "data"


def test_an_insert_appends_its_row_and_leaves_the_snapshot_alone(root):
    store = open_store(root)
    before = snapshot(root).read_bytes()
    run(store, "manampia ao@ t sanda (10000, 'new');")
    assert snapshot(root).read_bytes() == before
    added = journal_path(snapshot(root)).stat().st_size
    assert added < 200, f"one row cost {added} journal bytes on a {len(before)}-byte table"
    assert ids(store)[-1] == 10000 and len(ids(store)) == 10_001
    assert ids(open_store(root)) == ids(store), "the next process reads the same table"
    assert version_of(root, "db/tables/t.json").change == current_document(snapshot(root))["change"]


def test_update_and_delete_are_journaled_and_replayed_in_order(root):
    store = open_store(root)
    run(store, "havaozy t ova w = 'changed' rehefa id < 3; fafao ao@ t rehefa id >= 5;"
               "manampia ao@ t sanda (99, 'last');")
    entries = journal.read(journal_path(snapshot(root)))[0].entries
    assert [op[0] for entry in entries for op in entry.ops] == ["set", "remove", "append"]
    fresh = open_store(root).read("db", "table", "t")
    assert fresh["rows"] == [[0, "changed"], [1, "changed"], [2, "changed"], [3, "row 3"],
                             [4, "row 4"], [99, "last"]]
    assert fresh["change"] == entries[-1].change


def test_a_group_commit_writes_one_entry_per_table(root):
    store = open_store(root)
    first, second = Session(store), Session(store)
    first.current_database = second.current_database = "db"
    store.begin_batch()
    assert first.execute_one("manampia ao@ t sanda (20000, 'a');").ok
    assert second.execute_one("havaozy t ova w = 'b' rehefa id = 20000;").ok
    store.commit_batch()
    entries = journal.read(journal_path(snapshot(root)))[0].entries
    assert len(entries) == 1 and [op[0] for op in entries[0].ops] == ["append", "set"]
    assert open_store(root).read("db", "table", "t")["rows"][-1] == [20000, "b"]


def test_a_torn_tail_is_never_applied_and_the_owner_cuts_it(root):
    store = open_store(root)
    run(store, "manampia ao@ t sanda (10000, 'kept');")
    path = journal_path(snapshot(root))
    whole = path.stat().st_size
    torn = journal.encode_entry(99, [["append", [[77777, "torn"]]]])[:-7]
    with open(path, "ab") as handle:
        handle.write(torn)
    assert 77777 not in ids(open_store(root))
    owner = open_store(root, exclusive=True)                 # a server restarting: recovery
    assert path.stat().st_size == whole
    run(owner, "manampia ao@ t sanda (10001, 'after');")
    assert ids(open_store(root))[-2:] == [10000, 10001]


def test_a_damaged_journal_line_is_kept_aside_before_the_owner_cuts_the_valid_lines_after_it(
        root, caplog):
    # Not a torn tail: acknowledged entries follow the damaged line. Recovery still
    # cuts the journal there (nothing after it chains), but keeps its bytes in
    # .corrupt/ first, as replication does, and says what it cut.
    store = open_store(root)
    for key in (10000, 10001, 10002):
        run(store, f"manampia ao@ t sanda ({key}, 'acknowledged');")
    path = journal_path(snapshot(root))
    whole = path.read_bytes()
    first = whole.index(b"\n") + 1
    damaged = bytearray(whole)
    damaged[first + 12] ^= 0x01                                # a bit of the second line
    path.write_bytes(bytes(damaged))
    owner = open_store(root, exclusive=True)                   # a server restarting: recovery
    assert ids(owner)[-1] == 10000 and path.read_bytes() == whole[:first]
    kept = list((root / ".corrupt" / "db" / "tables").glob("t.journal.*"))
    assert len(kept) == 1 and kept[0].read_bytes() == bytes(damaged)
    assert any(record.levelname == "ERROR" and "t.json" in record.getMessage()
               and str(kept[0].relative_to(root)) in record.getMessage()
               for record in caplog.records)


def test_a_running_store_never_appends_behind_bytes_its_version_did_not_apply(root):
    """Bug: with a journal damaged under a running store (a line's bit flipped), reads
    stopped at the damage and the next insert was appended after it, acknowledged, where
    no read ever finds it: gone at the next open (the helper's chaos run, in process: 3 of
    3 acknowledged inserts). The append is refused instead, a storage fault (a peer takes
    the write; replication repairs the copy), and nothing is appended."""
    store = open_store(root)
    for key in (10000, 10001, 10002):
        run(store, f"manampia ao@ t sanda ({key}, 'acknowledged');")
    path = journal_path(snapshot(root))
    damaged = bytearray(path.read_bytes())
    damaged[damaged.index(b"\n") + 13] ^= 0x01                 # a bit of the second line
    path.write_bytes(bytes(damaged))
    store = open_store(root)     # (one that reads the journal again: not the owner's recovery)
    assert ids(store)[-1] == 10000                              # reads stop at the damage
    session = Session(store)
    session.current_database = "db"
    [outcome] = session.execute("manampia ao@ t sanda (10003, 'after the damage');")
    assert not outcome.ok and outcome.fault is not None, outcome.message
    assert outcome.fault.object == "db/tables/t.json" and outcome.fault.operation == "write"
    assert path.read_bytes() == bytes(damaged)                  # nothing appended
    assert 10003 not in ids(open_store(root))


def test_a_torn_tail_under_a_running_store_is_cut_before_its_next_append(root):
    """Half a line at the end of the journal (an append cut short) while a store runs: its
    next insert went after it, and the half line swallowed the entry (the row, acknowledged,
    gone at the next open). It is cut first, as replication does."""
    store = open_store(root)
    run(store, "manampia ao@ t sanda (10000, 'acknowledged');")
    path = journal_path(snapshot(root))
    whole = path.read_bytes()
    with open(path, "ab") as journal_file:
        journal_file.write(b"0badc0de {\"change\":9")            # torn: no newline
    store = open_store(root)
    run(store, "manampia ao@ t sanda (10001, 'after the torn tail');")
    assert path.read_bytes().startswith(whole) and b"0badc0de" not in path.read_bytes()
    assert ids(open_store(root))[-2:] == [10000, 10001]


def test_a_large_journal_is_folded_into_the_snapshot_right_after_its_commit(root):
    store = open_store(root, checkpoints=CheckpointPolicy(min_bytes=0, ratio=0.0001))
    run(store, "manampia ao@ t sanda (10000, 'big enough');")
    assert not journal_path(snapshot(root)).exists()
    on_disk = json.loads(snapshot(root).read_text())
    assert on_disk["rows"][-1] == [10000, "big enough"] and on_disk["format"] == 2


def test_an_idle_journal_is_checkpointed_and_a_clean_stop_leaves_plain_json(root):
    clock = ManualClock()
    store = open_store(root, checkpoints=CheckpointPolicy(idle_s=2.0, clock=clock))
    run(store, "manampia ao@ t sanda (10000, 'x');")
    assert store.maintain() == 0 and journal_path(snapshot(root)).exists()
    clock.now += 2.5
    assert store.maintain() == 1 and not journal_path(snapshot(root)).exists()
    run(store, "manampia ao@ t sanda (10001, 'y');")
    assert store.checkpoint_all() == 1
    document = json.loads(snapshot(root).read_text())
    assert [row[0] for row in document["rows"][-2:]] == [10000, 10001]
    assert list(root.rglob("*.journal")) == []


def test_a_checkpoint_keeps_what_replication_appended_meanwhile(root):
    reader = open_store(root)
    assert len(ids(reader)) == 10_000
    writer = open_store(root)                                   # replication's appends
    run(writer, "manampia ao@ t sanda (10000, 'a'); manampia ao@ t sanda (10001, 'b');")
    assert ids(reader)[-2:] == [10000, 10001], "the reader extends its cached version"
    assert reader.checkpoint(snapshot(root))
    assert ids(open_store(root))[-2:] == [10000, 10001]


def test_a_format_1_directory_is_upgraded_once_and_crash_safely(tmp_path):
    root = tmp_path / "data"
    (root / "db" / "tables").mkdir(parents=True)
    (root / "db" / "database.json").write_bytes(orjson.dumps(
        {"format": 1, "kind": "database", "name": "db", "change": 1, "dropped": False}))
    table = {"format": 1, "kind": "table", "name": "t", "change": 4, "dropped": False,
             "columns": [{"name": "id", "domain": [{"type": "ISA", "min": 0, "max": None}]}],
             "rows": [[1], [2]]}
    snapshot(root).write_bytes(orjson.dumps(table))
    store = open_store(root, exclusive=True)
    upgraded = decode_document(snapshot(root).read_bytes(), "t")
    assert upgraded == {**table, "format": 2}, "same content and counter, format 2"
    assert json.loads((root / ".tahiry.format").read_text()) == {"format": 2}
    assert maintenance.upgrade(root) == 0, "done once"
    run(store, "manampia ao@ t sanda (3);")
    assert current_document(snapshot(root))["rows"] == [[1], [2], [3]]
    assert current_document(snapshot(root))["change"] == 5


def test_a_format_1_snapshot_is_rewritten_whole_rather_than_journaled(tmp_path):
    root = tmp_path / "data"
    store = open_store(root)
    run(store, SETUP + "manampia ao@ t sanda (1, 'a');", database=None)
    document = decode_document(snapshot(root).read_bytes(), "t")
    snapshot(root).write_bytes(orjson.dumps({**document, "format": 1}))   # a peer not upgraded yet
    run(open_store(root), "manampia ao@ t sanda (2, 'b');")
    assert not journal_path(snapshot(root)).exists()
    assert json.loads(snapshot(root).read_text())["format"] == 2


def test_the_fence_sees_a_peer_s_journaled_version(tmp_path):
    a_root, b_root = tmp_path / "a", tmp_path / "b"
    seed = open_store(a_root)
    run(seed, SETUP + "manampia ao@ t sanda (1, 'seed');", database=None)
    maintenance.write_snapshot(snapshot(b_root), current_document(snapshot(a_root))) \
        if snapshot(b_root).parent.mkdir(parents=True) is None else None
    (b_root / "db" / "database.json").write_bytes((a_root / "db" / "database.json").read_bytes())
    a = open_store(a_root, peers=FixedPeers({"b": b_root}), lock_timeout_s=0.3)
    b = open_store(b_root, peers=FixedPeers({"a": a_root}), lock_timeout_s=0.3)
    session = Session(a)
    session.current_database = "db"
    a.begin_batch()
    assert session.execute_one("manampia ao@ t sanda (3, 'a');").ok
    run(b, "manampia ao@ t sanda (2, 'b');")                   # b's journal moves past a's read
    with pytest.raises(BatchFenced):
        a.commit_batch()
    run(a, "manampia ao@ t sanda (3, 'a');")                   # pulls b's version, then writes
    assert ids(a) == [1, 2, 3]


def test_inserts_of_one_batch_grow_the_batch_s_own_rows_and_savepoints_still_hold(root):
    store = open_store(root)
    session = Session(store)
    session.current_database = "db"
    store.begin_batch()
    assert session.execute_one("manampia ao@ t sanda (20000, 'a');").ok
    first = store._batch.pending[str(snapshot(root))][1]["rows"]
    mark = store.batch_mark()
    failed = session.execute_one("manampia ao@ t sanda (-1, 'out of domain');")
    assert not failed.ok
    store.batch_rollback(mark)
    assert session.execute_one("manampia ao@ t sanda (20001, 'b');").ok
    second = store._batch.pending[str(snapshot(root))][1]["rows"]
    assert second is first, "the batch's own row list grew in place (no copy per insert)"
    store.commit_batch()
    assert ids(open_store(root))[-2:] == [20000, 20001]
    assert len(ids(open_store(root))) == 10_002


def test_a_replica_folds_journals_that_replication_appended(root):
    clock = ManualClock()
    replica = open_store(root, checkpoints=CheckpointPolicy(idle_s=2.0, clock=clock))
    run(open_store(root), "manampia ao@ t sanda (10000, 'shipped');")   # not the replica's append
    assert replica.maintain() == 0 and journal_path(snapshot(root)).exists()
    clock.now += 2.5
    assert replica.maintain() == 1 and not journal_path(snapshot(root)).exists()
    assert json.loads(snapshot(root).read_text())["rows"][-1] == [10000, "shipped"]
