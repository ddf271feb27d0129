"""nodes.fault_avoidance: routing away from a backend's storage faults, with an injected clock."""

from nodes.balancer.fault_avoidance import TRANSITIONS, FaultAvoidance, Phase
from tests.conftest import ManualClock


def table(**kwargs):
    clock = ManualClock(100.0)
    return clock, FaultAvoidance(clock, **kwargs)


def test_a_write_fault_moves_writes_of_that_object_only_and_not_its_reads():
    clock, faults = table()
    faults.fault("m2", "db", ("t",), "write", "disk full")
    assert faults.order_for_write(["m2", "m1"], "db", "t") == ["m1", "m2"]
    assert faults.order_for_write(["m2", "m1"], "db", "u") == ["m2", "m1"]
    assert faults.order_for_write(["m2", "m1"], "other", "t") == ["m2", "m1"]
    # A full disk still serves reads.
    assert faults.filter_for_read(["m1", "m2"], "db", ("t",)) == ["m1", "m2"]


def test_a_read_fault_moves_reads_and_writes_of_every_object_read():
    clock, faults = table()
    faults.fault("m1", "db", ("t", "u"), "read", "corrupt")
    assert faults.filter_for_read(["m1", "m2"], "db", ("t",)) == ["m2"]
    assert faults.filter_for_read(["m1", "m2"], "db", ("u", "v")) == ["m2"]
    assert faults.filter_for_read(["m1", "m2"], "db", ("v",)) == ["m1", "m2"]
    assert faults.order_for_write(["m1", "m2"], "db", "u") == ["m2", "m1"]


def test_avoiding_is_a_preference_never_a_refusal():
    clock, faults = table()
    for backend in ("m1", "m2"):
        faults.fault(backend, "db", ("t",), "read", "corrupt")
    assert faults.filter_for_read(["m1", "m2"], "db", ("t",)) == ["m1", "m2"]
    assert faults.order_for_write(["m2", "m1"], "db", "t") == ["m2", "m1"]


def test_after_the_hold_the_backend_is_retested_and_a_failed_retest_waits_longer():
    clock, faults = table(hold_s=2.0, max_hold_s=5.0)
    faults.fault("m1", "db", ("t",), "write", "disk full")
    clock.now += 1.0
    faults.fault("m1", "db", ("t",), "write", "disk full")   # in flight before the mark
    clock.now += 1.0
    assert faults.order_for_write(["m1", "m2"], "db", "t") == ["m1", "m2"], "re-test"
    assert faults.snapshot()[0]["phase"] == Phase.RETESTING.value
    faults.fault("m1", "db", ("t",), "write", "disk full")   # the re-test failed
    entry = faults.snapshot()[0]
    assert entry["phase"] == "avoided" and entry["hold_s"] == 4.0 and entry["faults"] == 3
    clock.now += 3.9
    assert faults.order_for_write(["m1", "m2"], "db", "t") == ["m2", "m1"]
    clock.now += 0.2
    faults.fault("m1", "db", ("t",), "write", "disk full")
    assert faults.snapshot()[0]["hold_s"] == 5.0  # capped


def test_a_success_forgets_what_it_proves():
    clock, faults = table()
    faults.fault("m1", "db", ("t",), "write", "disk full")
    faults.fault("m1", "db", ("t", "u"), "read", "corrupt")
    faults.success("m1", "db", ("t",), wrote=False)   # reading t works: the write fault stays
    assert {(e["object"], e["operation"]) for e in faults.snapshot()} == {("t", "write"), ("u", "read")}
    faults.success("m1", "db", ("t",), wrote=True)
    faults.success("m2", "db", ("u",), wrote=False)   # another backend proves nothing about m1
    assert [(e["object"], e["operation"]) for e in faults.snapshot()] == [("u", "read")]


def test_status_snapshot_and_bounds():
    clock, faults = table(max_entries=2)
    faults.fault("m1", "db", ("a",), "write", "disk full")
    clock.now += 1
    faults.fault("m1", "db", ("b",), "write", "disk full")
    clock.now += 1
    faults.fault("m1", "db", ("c",), "write", "Read-only file system")
    snapshot = faults.snapshot()
    assert [e["object"] for e in snapshot] == ["b", "c"]
    assert snapshot[1] == {"backend": "m1", "database": "db", "object": "c", "operation": "write",
                           "reason": "Read-only file system", "faults": 1, "phase": "avoided",
                           "hold_s": 2.0, "retest_in_s": 2.0}


def test_every_phase_has_an_answer_to_every_event():
    for phase in (None, *Phase):
        for event in ("fault", "success"):
            assert (phase, event) in TRANSITIONS
