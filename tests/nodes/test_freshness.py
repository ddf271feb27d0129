"""nodes.freshness alone: write marks, which marks a statement needs, and the bounded wait for a holder."""

from __future__ import annotations

import asyncio

from nodes.balancer.classifier import DROPPED, TABLE, VIEW
from nodes.balancer.freshness import (
    GIVE_UP_HOLD_S,
    WriteMemory,
    best_effort_order,
    covers,
    find_holders,
    holding_all,
    read_needs,
    write_needs,
)
from tests.conftest import ManualClock


def test_covers_compares_kind_by_kind():
    assert covers({"table": 3}, {"table": 3})
    assert covers({"table": 4, "view": 1}, {"table": 3})
    assert not covers({"table": 2}, {"table": 3})
    assert not covers({}, {"table": 1})
    assert not covers({"table": 9}, {"table": 1, "view": 1})


def test_memory_is_bounded_and_forgets_a_database():
    memory = WriteMemory(max_marks=2)
    memory.remember("db", "a", "m1", {"table": 1}, TABLE)
    memory.remember("db", "b", "m2", {"table": 1}, TABLE)
    memory.remember("other", "c", "m1", None, TABLE)
    assert set(memory.marks("db")) == {"b"}
    assert memory.latest_backend("db") == "m2"
    memory.forget_database("db")
    assert memory.marks("db") == {} and memory.latest_backend("db") is None
    assert set(memory.marks("other")) == {"c"}
    assert memory.marks(None) == {}


def test_a_new_write_replaces_the_mark_and_its_holders():
    memory = WriteMemory()
    first = memory.remember("db", "t", "m1", {"table": 1}, TABLE)
    first.holders.add("m2")
    second = memory.remember("db", "t", "m2", {"table": 2}, TABLE)
    assert memory.mark("db", "t") is second and second.holders == {"m2"}


def test_reads_of_known_tables_need_only_their_marks_anything_else_needs_all():
    memory = WriteMemory()
    memory.remember("db", "t1", "m1", {"table": 1}, TABLE)
    memory.remember("db", "t2", "m2", {"table": 1}, TABLE)
    memory.remember("db", "v", "m1", {"view": 1}, VIEW)
    memory.remember("db", "gone", "m2", {"table": 2}, DROPPED)
    marks = memory.marks("db")
    assert set(read_needs(marks, ("t1",))) == {"t1"}
    assert set(read_needs(marks, ("t1", "gone"))) == {"t1", "gone"}
    assert set(read_needs(marks, ("v",))) == {"t1", "t2", "v", "gone"}           # a view
    assert set(read_needs(marks, ("t1", "unknown"))) == {"t1", "t2", "v", "gone"}  # maybe a view
    assert set(read_needs(marks, ())) == {"t1", "t2", "v", "gone"}               # asehoy ...
    assert read_needs({}, ("t1",)) == {}


def test_writes_need_their_own_mark_or_all_when_they_read_others():
    memory = WriteMemory()
    memory.remember("db", "t1", "m1", {"table": 1}, TABLE)
    memory.remember("db", "t2", "m2", {"table": 1}, TABLE)
    marks = memory.marks("db")
    assert set(write_needs(marks, ("t1",))) == {"t1"}
    assert write_needs(marks, ("t3",)) == {}
    assert set(write_needs(marks, ("t3", "t1"))) == {"t1", "t2"}


def test_fallback_order_prefers_the_most_and_the_latest_writes():
    memory = WriteMemory()
    memory.remember("db", "a", "m1", None, TABLE)
    memory.remember("db", "b", "m2", None, TABLE)
    marks = memory.marks("db")
    assert best_effort_order(["m1", "m2", "m3"], marks) == ["m2", "m1", "m3"]
    marks["a"].holders.add("m3")
    marks["b"].holders.add("m3")
    assert holding_all(["m1", "m2", "m3"], marks) == ["m3"]


class FakeCluster:
    """`.versions` answers per backend, changed by the test; records every question."""

    def __init__(self, versions: dict[str, dict[str, dict[str, int]]]):
        self.versions = versions
        self.questions: list[tuple[str, tuple[str, ...]]] = []

    async def ask(self, backend: str, database: str, names: list[str]):
        self.questions.append((backend, tuple(names)))
        held = self.versions.get(backend)
        if held is None:
            return None  # unreachable
        return {name: held.get(name, {}) for name in names}


def advance(clock: ManualClock, seconds: float) -> None:
    clock.now += seconds


def run(coroutine):
    return asyncio.run(coroutine)


def test_holders_known_already_need_no_question():
    memory = WriteMemory()
    memory.remember("db", "t", "m1", {"table": 1}, TABLE)
    cluster = FakeCluster({})
    assert run(find_holders("db", memory.marks("db"), ["m1", "m2"], cluster.ask)) == ["m1"]
    assert cluster.questions == []


def test_a_backend_that_caught_up_is_found_by_asking():
    memory = WriteMemory()
    memory.remember("db", "t1", "m1", {"table": 3}, TABLE)
    memory.remember("db", "t2", "m2", {"table": 5}, TABLE)
    cluster = FakeCluster({"m1": {"t1": {"table": 3}, "t2": {"table": 4}},
                           "m2": {"t1": {"table": 3}, "t2": {"table": 5}}})
    marks = memory.marks("db")
    assert run(find_holders("db", marks, ["m1", "m2"], cluster.ask)) == ["m2"]
    assert ("m1", ("t2",)) in cluster.questions and ("m2", ("t1",)) in cluster.questions
    assert marks["t1"].holders == {"m1", "m2"}


def test_waiting_is_bounded_then_gives_up_and_does_not_wait_again_soon():
    memory = WriteMemory()
    memory.remember("db", "t1", "m1", {"table": 1}, TABLE)
    memory.remember("db", "t2", "m2", {"table": 1}, TABLE)
    cluster = FakeCluster({"m1": {"t1": {"table": 1}}, "m2": {"t2": {"table": 1}}})
    clock = ManualClock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        advance(clock, seconds)

    marks = memory.marks("db")
    start = clock()
    assert run(find_holders("db", marks, ["m1", "m2"], cluster.ask, bound_s=0.2,
                            clock=clock, sleep=sleep)) == []
    assert abs(sum(slept) - 0.2) < 1e-9 and clock() - start <= 0.2 + 1e-9
    slept.clear()
    assert run(find_holders("db", marks, ["m1", "m2"], cluster.ask, bound_s=0.2,
                            clock=clock, sleep=sleep)) == []
    assert slept == []  # given up recently: one check, no wait
    advance(clock, GIVE_UP_HOLD_S)
    cluster.versions["m2"]["t1"] = {"table": 1}  # replication caught up meanwhile
    assert run(find_holders("db", marks, ["m1", "m2"], cluster.ask, bound_s=0.2,
                            clock=clock, sleep=sleep)) == ["m2"]


def test_unknown_counters_take_the_acknowledging_servers_current_ones():
    memory = WriteMemory()
    memory.remember("db", "t1", "m1", None, TABLE)
    memory.remember("db", "t2", "m2", {"table": 1}, TABLE)
    cluster = FakeCluster({"m1": {"t1": {"table": 7}},
                           "m2": {"t1": {"table": 6}, "t2": {"table": 1}}})
    clock = ManualClock()

    async def sleep(seconds: float) -> None:
        advance(clock, seconds)

    marks = memory.marks("db")
    assert run(find_holders("db", marks, ["m2"], cluster.ask, bound_s=0.05,
                            clock=clock, sleep=sleep)) == []
    assert marks["t1"].versions == {"table": 7}  # stricter than the write itself, never weaker
    cluster.versions["m2"]["t1"] = {"table": 7}
    advance(clock, GIVE_UP_HOLD_S)
    assert run(find_holders("db", marks, ["m2"], cluster.ask, bound_s=0.05,
                            clock=clock, sleep=sleep)) == ["m2"]


def test_an_unreachable_acknowledger_leaves_the_requirement_unknown():
    memory = WriteMemory()
    memory.remember("db", "t1", "m1", None, TABLE)
    cluster = FakeCluster({"m2": {"t1": {"table": 99}}})
    clock = ManualClock()

    async def sleep(seconds: float) -> None:
        advance(clock, seconds)

    # m2 has some t1, but whether it holds the session's write cannot be known.
    assert run(find_holders("db", memory.marks("db"), ["m2"], cluster.ask, bound_s=0.05,
                            clock=clock, sleep=sleep)) == []
