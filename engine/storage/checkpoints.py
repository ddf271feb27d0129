"""When a table's journal is folded into a new snapshot (a checkpoint): the policy, no I/O.

A write appends to the table's journal (engine/storage/journal.py); reading the
table costs its snapshot plus its journal, so the journal must not grow
without bound, and a person opening `<t>.json` after a clean stop must find
the whole table there (docs/STORAGE.md). `engine/storage/store.py` does the
checkpoint itself (new snapshot, journal removed); this module only says
which tables are due:

- **large**: the journal passed `max(min_bytes, snapshot bytes x ratio)`:
  a checkpoint writes the snapshot's bytes, so with a ratio of 1 the bytes
  written per row change stay within a small constant factor of the change
  itself, whatever the table's size;
- **idle**: nothing was appended for `idle_s`, so a table a class stopped
  writing is soon a plain snapshot again;
- and at a clean stop, every table (the store scans its directory).

Journals the store did not append itself (replication's, or older than the
process) are found by a periodic scan (`seen`), so a replica's journals are
folded too.

The clock is injected (tests move it by hand).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MIN_BYTES = 256 * 1024
DEFAULT_RATIO = 1.0
DEFAULT_IDLE_S = 2.0


@dataclass
class JournalState:
    """What the policy knows of one table's journal."""

    journal_bytes: int
    snapshot_bytes: int
    last_append: float


class CheckpointPolicy:
    """Which tables' journals are due for a checkpoint."""

    def __init__(self, min_bytes: int = DEFAULT_MIN_BYTES, ratio: float = DEFAULT_RATIO,
                 idle_s: float = DEFAULT_IDLE_S, clock: Callable[[], float] = time.monotonic):
        self.min_bytes = min_bytes
        self.ratio = ratio
        self.idle_s = idle_s
        self._clock = clock
        self._journals: dict[str, JournalState] = {}

    def __len__(self) -> int:
        return len(self._journals)

    def appended(self, key: str, journal_bytes: int, snapshot_bytes: int) -> None:
        """A journal grew to `journal_bytes` (the snapshot beside it has `snapshot_bytes`)."""
        self._journals[key] = JournalState(journal_bytes, snapshot_bytes, self._clock())

    def seen(self, key: str, journal_bytes: int, snapshot_bytes: int) -> None:
        """A journal found on disk (replication appends to it, or it is from before a restart).

        Its idle time counts from when it was last seen growing.
        """
        known = self._journals.get(key)
        if known is None or journal_bytes != known.journal_bytes:
            self._journals[key] = JournalState(journal_bytes, snapshot_bytes, self._clock())

    def done(self, key: str) -> None:
        """The table was checkpointed (or is gone): nothing due until it grows again."""
        self._journals.pop(key, None)

    def is_large(self, state: JournalState) -> bool:
        return state.journal_bytes > max(self.min_bytes, state.snapshot_bytes * self.ratio)

    def large(self, keys) -> list[str]:
        """Those of `keys` whose journal is large (checkpointed right after their commit)."""
        return [key for key in keys
                if key in self._journals and self.is_large(self._journals[key])]

    def due(self) -> list[str]:
        """The tables to checkpoint now: large journals first, then idle ones."""
        now = self._clock()
        large = [key for key, state in self._journals.items() if self.is_large(state)]
        idle = [key for key, state in self._journals.items()
                if key not in large and now - state.last_append >= self.idle_s]
        return large + idle
