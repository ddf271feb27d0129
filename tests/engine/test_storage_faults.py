"""Storage faults: a server's own file that cannot be read or written is a `StorageFault`.

It names the object (path relative to the data directory), the operation and
the reason; its wire message is the usual Malagasy sentence plus the marker
a load balancer recognises; and it always means "nothing was applied" (an
outcome-unknown write is never one).
"""

import json
import os

import pytest

from engine.errors import StorageFault, TahiryError, is_storage_fault, storage_fault_operation
from engine.session import Session
from engine.storage import group_commit, object_copy
from engine.storage.peers import FixedPeers
from engine.storage.store import BatchNotWritten, BatchPartlyWritten, Store
from tests.engine.conftest import one_column_body as body
from tests.faults import disk_full, fail_on_call, io_error

T = "db/tables/t.json"


def session_of(store):
    session = Session(store)
    session.current_database = "db"
    return session


def truncate(store, rel=T, keep=20):
    path = store.root / rel
    path.write_bytes(path.read_bytes()[:keep])


def test_a_truncated_file_is_a_read_fault_naming_the_object(store):
    truncate(store)
    with pytest.raises(StorageFault) as caught:
        store.read("db", "table", "t")
    fault = caught.value
    assert (fault.object, fault.operation) == (T, "read")
    assert fault.reason.startswith("corrupt")
    # The sentence clients saw before, plus the marker.
    assert fault.message == f"Hadisoana : Simba na tsy voavaky ny rakitra {T} [storage:read]"
    assert storage_fault_operation(fault.message) == "read"


def test_a_byte_changed_in_a_snapshot_is_a_read_fault_not_a_wrong_answer(store):
    """A digit changed on disk still reads as JSON: it was served as the table's row."""
    path = store.root / T
    path.write_bytes(path.read_bytes().replace(b"[[1]]", b"[[7]]"))
    fresh = Store(store.root)   # no cached version
    with pytest.raises(StorageFault, match="Simba") as caught:
        fresh.read("db", "table", "t")
    assert caught.value.reason.startswith("corrupt: checksum"), caught.value.reason


def test_a_document_without_a_checksum_is_still_read(store):
    """Files written before documents carried one (and hand-made ones) are read as before."""
    (store.root / T).write_text(json.dumps({"format": 2, "kind": "table", "name": "t",
                                            "change": 5, "dropped": False, **body(4)}))
    assert Store(store.root).read("db", "table", "t")["rows"] == [[4]]


def test_other_unreadable_documents_are_read_faults_too(store):
    (store.root / T).write_text("[1, 2]")
    with pytest.raises(StorageFault, match="Simba ny rakitra") as caught:
        store.read("db", "table", "t")
    assert caught.value.reason == "corrupt: not a JSON object"
    (store.root / T).write_text(json.dumps({"format": 9, "kind": "table", "name": "t",
                                            "change": 1, "dropped": False}))
    with pytest.raises(StorageFault, match="format tsy fantatra") as caught:
        store.read("db", "table", "t")
    assert caught.value.reason == "unknown format 9"


def test_a_session_outcome_carries_the_fault_and_a_write_on_a_corrupt_copy_changes_nothing(store):
    truncate(store)
    before = (store.root / T).read_bytes()
    session = session_of(store)
    for text in ("alaivo a ao@ t;", "manampia ao@ t sanda (2);"):
        outcome = session.execute_one(text)
        assert not outcome.ok and is_storage_fault(outcome.message)
        assert outcome.fault.object == T and outcome.fault.operation == "read"
    assert (store.root / T).read_bytes() == before


def test_user_errors_are_not_storage_faults(store):
    outcome = session_of(store).execute_one("alaivo a ao@ tsisy;")
    assert not outcome.ok and outcome.fault is None and not is_storage_fault(outcome.message)


def test_a_write_that_cannot_be_prepared_is_a_write_fault_and_changes_nothing(store, monkeypatch):
    monkeypatch.setattr(group_commit, "write_durable_temp",
                        fail_on_call(group_commit.write_durable_temp, 1, disk_full()))
    with pytest.raises(StorageFault) as caught:
        store.write("db", "table", "t", body(1, 2))
    fault = caught.value
    assert (fault.object, fault.operation) == (T, "write")
    assert fault.reason == "not writable: No space left on device"
    assert fault.message.startswith(f"Hadisoana : Tsy voasoratra ny rakitra {T}")
    assert storage_fault_operation(fault.message) == "write"
    assert store.read("db", "table", "t")["rows"] == [[1]]


def test_a_batch_whose_temp_file_cannot_be_written_carries_the_fault(store, monkeypatch):
    monkeypatch.setattr(group_commit, "write_durable_temp",
                        fail_on_call(group_commit.write_durable_temp, 1, disk_full()))
    store.begin_batch()
    store.write("db", "table", "t", body(1, 2))
    with pytest.raises(BatchNotWritten) as caught:
        store.commit_batch()
    assert caught.value.retry
    assert caught.value.fault is not None and caught.value.fault.object == T
    assert caught.value.fault.operation == "write"


def test_a_first_rename_that_fails_is_a_write_fault(store, monkeypatch):
    monkeypatch.setattr(os, "replace", fail_on_call(os.replace, 1, io_error()))
    with pytest.raises(StorageFault) as caught:
        store.write("db", "table", "t", body(1, 2))
    monkeypatch.undo()
    assert caught.value.object == T and "Input/output error" in caught.value.reason
    assert store.read("db", "table", "t")["rows"] == [[1]]


def test_an_outcome_unknown_write_is_never_a_storage_fault(store, monkeypatch):
    store.begin_batch()
    store.write("db", "table", "t", body(1, 2))
    store.write("db", "table", "u", body(3))
    monkeypatch.setattr(os, "replace", fail_on_call(os.replace, 2, io_error()))
    with pytest.raises(BatchPartlyWritten) as caught:
        store.commit_batch()
    assert not isinstance(caught.value, StorageFault)
    assert not is_storage_fault(caught.value.message)


def test_a_newer_peer_copy_that_cannot_be_pulled_in_is_a_write_fault(tmp_path, monkeypatch):
    mine, theirs = tmp_path / "m1", tmp_path / "m2"
    peer = Store(theirs)
    peer.create_database("db")
    peer.write("db", "table", "t", body(7))
    store = Store(mine, peers=FixedPeers({"m2": str(theirs)}))
    monkeypatch.setattr(object_copy, "write_durable_temp",
                        fail_on_call(object_copy.write_durable_temp, 1, disk_full()))
    with pytest.raises(StorageFault) as caught:
        store.pull_newer("db", "table", "t")
    assert (caught.value.object, caught.value.operation) == (T, "write")


def test_only_a_trailing_marker_on_an_error_counts():
    assert not is_storage_fault("Simba ny rakitra x [storage:read]")       # not an error message
    assert not is_storage_fault("Hadisoana : [storage:read] voalohany")
    assert not is_storage_fault("Hadisoana : x [storage:other]")
    assert storage_fault_operation("Hadisoana : x [storage:write]") == "write"
    assert isinstance(StorageFault("x", "o", "read", "r"), TahiryError)


def test_a_database_whose_folders_cannot_be_made_is_a_write_fault(tmp_path, monkeypatch):
    store = Store(tmp_path / "data")
    real_mkdir = type(tmp_path).mkdir

    def full(self, *args, **kwargs):
        if self.name in ("db", "tables"):
            raise disk_full()
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(type(tmp_path), "mkdir", full)
    outcome = Session(store).execute_one("manamboara tahiry db;")
    assert not outcome.ok and storage_fault_operation(outcome.message) == "write", outcome.message
    assert "internal error" not in outcome.message
    assert not store.database_exists("db")
