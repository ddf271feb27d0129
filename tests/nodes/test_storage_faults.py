"""nodes.storage_faults: the server's record of objects it could not read or write (injected clock)."""

from engine.errors import StorageFault
from nodes.server.storage_faults import PEER_FAULT_TTL_S, StorageFaults
from tests.conftest import ManualClock


def fault(obj="s/tables/t.json", operation="read", reason="corrupt: x"):
    return StorageFault("Simba", obj, operation, reason)


def test_a_record_counts_faults_with_first_and_last_seen():
    clock = ManualClock(1000.0)
    faults = StorageFaults(clock)
    faults.record(fault())
    clock.now = 1002.5
    faults.record(fault(reason="corrupt: y"))
    assert faults.snapshot() == [{"object": "s/tables/t.json", "operation": "read",
                                  "reason": "corrupt: y", "count": 2,
                                  "first_seen": 1000.0, "last_seen": 1002.5}]


def test_a_write_clears_every_fault_a_read_only_read_faults():
    faults = StorageFaults(ManualClock())
    faults.record(fault("s/tables/r.json", "read"))
    faults.record(fault("s/tables/w.json", "write", "not writable: No space left on device"))
    # A full disk still serves reads: a read must not hide the write fault.
    assert faults.read(["s/tables/r.json", "s/tables/w.json"]) == ["s/tables/r.json"]
    assert faults.objects() == ["s/tables/w.json"]
    assert faults.written(["s/tables/w.json", "s/tables/other.json"]) == ["s/tables/w.json"]
    assert len(faults) == 0 and faults.snapshot() == []


def test_the_latest_fault_decides_what_clears_it():
    faults = StorageFaults(ManualClock())
    faults.record(fault(operation="read"))
    faults.record(fault(operation="write", reason="not writable: Read-only file system"))
    assert faults.objects("read") == [] and faults.objects("write") == ["s/tables/t.json"]
    assert faults.read(["s/tables/t.json"]) == []


def test_bounded_the_object_seen_longest_ago_goes():
    clock = ManualClock(0.0)
    faults = StorageFaults(clock, max_objects=2)
    for index, name in enumerate("abc"):
        clock.now = float(index)
        faults.record(fault(f"s/tables/{name}.json"))
    assert faults.objects() == ["s/tables/b.json", "s/tables/c.json"]


def test_a_peers_fault_ends_with_a_write_or_once_not_met_again_for_a_while():
    """A server that wrote nothing after the peer came back (its writes went through
    another server) showed `peer unreachable` for ever."""
    clock = ManualClock(1000.0)
    faults = StorageFaults(clock)
    faults.record(fault("s/database.json", "write", "peer unreachable: m2"))
    faults.record(fault("s/tables/t.json", "write", "No space left on device"))
    clock.now = 1000.0 + PEER_FAULT_TTL_S - 1
    assert len(faults) == 2
    clock.now = 1000.0 + PEER_FAULT_TTL_S + 1
    assert [record["object"] for record in faults.snapshot()] == ["s/tables/t.json"]
    assert len(faults) == 1   # the disk's fault stays until the object is written
    faults.record(fault("s/database.json", "write", "peer unreachable: m3"))
    assert faults.peers_reached() == ["s/database.json"] and len(faults) == 1


def test_only_a_disk_refusing_writes_is_re_tested_by_a_test_write():
    """A test write beside the object tells the end of a full, over-quota or read-only
    disk; not of an I/O error (an unsynced write may pass), a damaged journal or a peer."""
    faults = StorageFaults(ManualClock())
    for name, reason in (("full", "not writable: No space left on device"),
                         ("quota", "not writable: Disk quota exceeded"),
                         ("ro", "not writable: Read-only file system"),
                         ("eio", "not writable: Input/output error"),
                         ("damaged", "not writable: the journal holds valid lines after ..."),
                         ("peer", "peer unreachable: m2")):
        faults.record(fault(f"s/tables/{name}.json", "write", reason))
    faults.record(fault("s/tables/read.json", "read", "corrupt: x"))
    assert faults.disk_write_faults() == ["s/tables/full.json", "s/tables/quota.json",
                                          "s/tables/ro.json"]
