"""engine/progress.py: shown on a terminal only, after a moment, rate-limited, erased."""

from __future__ import annotations

import io

from engine.progress import ERASE, ProgressLine
from tests.conftest import ManualClock


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_drawn_on_a_terminal_after_a_moment_at_most_four_times_a_second_then_erased():
    clock, stream = ManualClock(0.0), Terminal()
    progress = ProgressLine(stream, "load.sql", clock=clock)
    progress.update(10, 0, 20000)
    assert stream.getvalue() == ""                     # a short run never shows it
    clock.now = 2.0
    progress.update(4000, 1, 20000)
    assert stream.getvalue() == ERASE + "load.sql: 4000 / ~20000 statements (20%), 2000/s, 1 error"
    clock.now = 2.1
    progress.update(4200, 1, 20000)                    # too soon: not redrawn
    assert stream.getvalue().count(ERASE) == 1
    clock.now = 2.5
    progress.update(5000, 3, None)
    assert stream.getvalue().endswith(ERASE + "load.sql: 5000 statements, 2000/s, 3 errors")
    progress.finish()
    assert stream.getvalue().endswith(ERASE)
    progress.finish()                                  # once erased, nothing more is written
    assert stream.getvalue().count(ERASE) == 3


def test_quiet_when_not_a_terminal():
    clock, stream = ManualClock(0.0), io.StringIO()
    progress = ProgressLine(stream, "load.sql", clock=clock)
    clock.now = 5.0
    progress.update(100, 0, 200)
    progress.finish()
    assert stream.getvalue() == ""
