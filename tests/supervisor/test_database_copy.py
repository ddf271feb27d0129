"""supervisor/database_copy.py `settled_script`: the copy every server gives alike, or none.

Each server is a fake DB-API connection whose one table's rows change from one
read to the next, as a server catching up by replication does; the clock is
fake too (no test waits).
"""

from __future__ import annotations

import pytest

from supervisor.database_copy import CopiesDisagree, settled_script


class FakeServer:
    """A connection whose table `t` holds `rows[k]` at its k-th copy (the last one after)."""

    def __init__(self, *rows: list[int]):
        self.rows = list(rows)
        self.copies = 0

    def cursor(self) -> FakeServer:
        return self

    def execute(self, statement: str) -> None:
        self.statement = statement
        if statement.startswith("alaivo"):
            self.copies += 1

    @property
    def description(self):
        return None if self.statement.startswith("ampiasao") else [("x",)]

    def fetchall(self) -> list[tuple]:
        if self.statement.startswith("asehoy"):
            return [("t", "tabilao", "x", "ISA(null,null)")]
        return [(value,) for value in self.rows[min(self.copies, len(self.rows)) - 1]]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_copy_waits_for_a_server_behind_and_holds_the_newest_rows():
    clock = Clock()
    ahead, behind = FakeServer([1, 2]), FakeServer([1], [1], [1, 2])
    script = settled_script([behind, ahead], "db", [], deadline_s=10, pause_s=0.1,
                            clock=clock, sleep=clock.sleep)
    assert "(2)" in script and behind.copies == 3
    assert clock.now == pytest.approx(0.2)


def test_copies_that_still_differ_at_the_deadline_give_no_copy():
    clock = Clock()
    with pytest.raises(CopiesDisagree, match="still differ after 1 s"):
        settled_script([FakeServer([1]), FakeServer([1, 2])], "db", [], deadline_s=1,
                       pause_s=0.25, clock=clock, sleep=clock.sleep)
    with pytest.raises(CopiesDisagree, match="no server"):
        settled_script([], "db", [])
