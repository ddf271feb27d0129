"""A progress line for long script runs, redrawn in place on a terminal.

    load.sql: 12345 / ~20000 statements (62%), 1840/s, 3 errors

Shown only when its stream is a terminal, only once a run has lasted a
moment (short runs never flash it), redrawn at most a few times per second
and erased at the end. Whoever prints anything else calls
`clear_for(stream)` first (it erases the line when that stream shows on a
terminal too), so output never lands in the middle of the line; the next
`update` draws it again. Both the engine runner and the client
use it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TextIO

SHOW_AFTER_S = 1.0        # a run shorter than this never shows the line
REDRAW_EVERY_S = 0.25     # at most four redraws per second
ERASE = "\r\x1b[K"


class ProgressLine:
    """Statements done (of an estimated total), rate and errors, on one terminal line."""

    def __init__(self, stream: TextIO, label: str | None = None, *, enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.stream = stream
        self.label = label
        self.enabled = _is_terminal(stream) if enabled is None else enabled
        self._clock = clock
        self._started = clock()
        self._drawn_at = float("-inf")
        self._visible = False

    def update(self, done: int, errors: int, total: int | None = None) -> None:
        """Note progress; redraws only when it is time to (cheap to call per statement)."""
        if not self.enabled:
            return
        now = self._clock()
        if now - self._started < SHOW_AFTER_S or now - self._drawn_at < REDRAW_EVERY_S:
            return
        self._drawn_at = now
        text = self.text(done, errors, total, now - self._started)
        width = shutil.get_terminal_size((80, 24)).columns
        self.stream.write(ERASE + text[:max(10, width - 1)])
        self.stream.flush()
        self._visible = True

    def text(self, done: int, errors: int, total: int | None, elapsed: float) -> str:
        parts = [f"{done}"]
        if total:
            total = max(total, done)
            parts.append(f" / ~{total} statements ({100 * done // total}%)")
        else:
            parts.append(" statements")
        rate = done / elapsed if elapsed > 0 else 0.0
        line = "".join(parts) + f", {rate:.0f}/s, {errors} error{'s' if errors != 1 else ''}"
        return f"{self.label}: {line}" if self.label else line

    def clear_for(self, stream: TextIO) -> None:
        """Erase the line before writing to `stream`, if that shows on the same terminal."""
        if self._visible and (stream is self.stream or _is_terminal(stream)):
            self.clear()

    def clear(self) -> None:
        """Erase the line (before other output on the same terminal, and at the end)."""
        if self._visible:
            self.stream.write(ERASE)
            self.stream.flush()
            self._visible = False

    finish = clear


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
