"""nodes.server, in process: storage faults fail cleanly and show in `.status;`.

A fault clears once the object works again.
"""

import pytest

from engine.errors import storage_fault_operation
from engine.storage import group_commit, journal
from engine.storage import store as store_module
from nodes.server import node as node_module
from tests.faults import disk_full
from tests.nodes.serverkit import prepared_server, run, session, table_rows

T = "s/tables/t.json"


@pytest.fixture
def server(tmp_path):
    return prepared_server(tmp_path / "data", "manamboara tahiry s", "ampiasao s",
                           "manamboara tabilao t (id ISA(0,100))",
                           "manampia ao@ t sanda (1)",
                           "manamboara tabilao u (id ISA(0,100))")


def faults_of(server):
    return {item["object"]: item for item in server.status()["storage_faults"]}


def test_a_corrupt_table_is_reported_until_it_reads_again(server):
    path = server.store.root / T
    good = path.read_bytes()
    path.write_bytes(good[:25])
    a = session(server)
    read, write, other = run(server, (a, "alaivo id ao@ t"), (a, "manampia ao@ t sanda (2)"),
                             (a, "manampia ao@ u sanda (3)"))
    assert storage_fault_operation(read.message) == "read"
    assert storage_fault_operation(write.message) == "read"   # the write could not read t
    assert other.ok  # the rest of the batch is not affected
    reported = faults_of(server)
    assert list(reported) == [T]
    assert reported[T]["operation"] == "read" and reported[T]["count"] == 2
    assert reported[T]["reason"].startswith("corrupt")
    path.write_bytes(good)  # repaired (replication, by hand): the next status re-tests it
    assert faults_of(server) == {}


def full(*args, **kwargs):
    raise disk_full()


def fill_the_disk(monkeypatch) -> None:
    """Every file write of the store fails as on a full disk (its writes and its test write)."""
    monkeypatch.setattr(group_commit, "write_durable_temp", full)
    monkeypatch.setattr(journal, "append_entry", full)
    monkeypatch.setattr(store_module, "write_durable_temp", full)


def test_a_disk_that_cannot_take_writes_is_reported_until_a_write_succeeds(server, monkeypatch):
    fill_the_disk(monkeypatch)
    a, b = session(server), session(server)
    first, second = run(server, (a, "manampia ao@ t sanda (2)"), (b, "alaivo id ao@ t"))
    assert storage_fault_operation(first.message) == "write"
    assert second.ok and second.relation.rows == [[1]]
    reported = faults_of(server)[T]
    assert reported["operation"] == "write"
    assert reported["reason"] == "not writable: No space left on device"
    # Reads still work: the write fault stays (status re-tests reads only).
    assert run(server, (a, "alaivo id ao@ t"))[0].ok and T in faults_of(server)
    monkeypatch.undo()
    assert run(server, (a, "manampia ao@ t sanda (2)"))[0].ok
    assert faults_of(server) == {}
    assert table_rows(server.store.root) == [[1], [2]]


def test_a_write_fault_clears_once_a_test_write_beside_the_object_goes_through(server, monkeypatch):
    """No statement writes the object again (the balancer sends its writes elsewhere):
    the status's re-test writes a page beside it and removes it. Before, the fault of a
    freed disk stayed until that object was written here again."""
    monkeypatch.setattr(node_module, "WRITE_RETEST_S", 0.0)
    test_write = store_module.write_durable_temp
    fill_the_disk(monkeypatch)
    first = run(server, (session(server), "manampia ao@ t sanda (2)"))[0]
    assert storage_fault_operation(first.message) == "write"
    assert faults_of(server)[T]["operation"] == "write"   # re-tested: still full
    assert faults_of(server)[T]["count"] == 1             # (a re-test is not a statement)
    monkeypatch.setattr(store_module, "write_durable_temp", test_write)   # space again
    assert faults_of(server) == {}
    assert list(server.store.root.rglob("*.tmp")) == []
    assert table_rows(server.store.root) == [[1]]        # the test write changed nothing
