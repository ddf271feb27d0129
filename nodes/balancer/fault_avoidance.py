"""Which backends the load balancer keeps an object's statements away from, after storage faults.

A server answers a statement with a storage fault (`engine.errors`: the
message ends `[storage:read]` or `[storage:write]`) when it cannot read its
copy of an object (corrupt, unreadable) or cannot write it (disk full,
read-only). Nothing was applied, so the balancer sends the statement once to
another server, and records the fault here so that the next statements of
that object go elsewhere from the start:

- a *write* fault of backend X on object O: writes of O prefer other
  backends (reads of O still go to X: a full disk still serves them);
- a *read* fault: reads and writes of O prefer other backends (a write
  reads the object first). A failed statement reading several objects does
  not say which one is bad: all of them are marked.

Avoiding is a preference, never a refusal: a backend whose every candidate
is avoided is still used. An entry is a small state machine (`TRANSITIONS`):
AVOIDED for `hold_s`, then RETESTING (the next statement may go there
again: it is the re-test); a fault while retesting doubles the hold (up to
`max_hold_s`), a success of that backend with that object forgets the entry.
Pure: no sockets, an injected clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

DEFAULT_HOLD_S = 2.0
DEFAULT_MAX_HOLD_S = 60.0
# A re-testing entry nobody touches any more is dropped after this long.
FORGET_AFTER_S = 600.0
DEFAULT_MAX_ENTRIES = 4096

READ, WRITE = "read", "write"


class Phase(Enum):
    AVOIDED = "avoided"      # statements of the object prefer other backends
    RETESTING = "retesting"  # the hold is over: the next statement may go there again


FAULT, SUCCESS = "fault", "success"

# (phase or None for no entry, event) -> (next phase or None to forget, what the hold does)
TRANSITIONS: dict[tuple[Phase | None, str], tuple[Phase | None, str]] = {
    (None, FAULT): (Phase.AVOIDED, "start"),
    # Statements already on their way when the first fault came back.
    (Phase.AVOIDED, FAULT): (Phase.AVOIDED, "keep"),
    # The re-test failed: still broken, wait longer before the next one.
    (Phase.RETESTING, FAULT): (Phase.AVOIDED, "double"),
    (Phase.AVOIDED, SUCCESS): (None, "forget"),
    (Phase.RETESTING, SUCCESS): (None, "forget"),
    (None, SUCCESS): (None, "forget"),
}

Key = tuple[str, str, str, str]   # (backend, database, object, operation)


@dataclass
class Avoidance:
    """One backend's trouble with one object."""

    reason: str
    faults: int
    hold_s: float
    since: float      # when the current hold started
    until: float      # AVOIDED until then

    def phase(self, now: float) -> Phase:
        return Phase.AVOIDED if now < self.until else Phase.RETESTING


class FaultAvoidance:
    """The storage faults seen per (backend, database, object, operation), and the routing preference."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, hold_s: float = DEFAULT_HOLD_S,
                 max_hold_s: float = DEFAULT_MAX_HOLD_S, max_entries: int = DEFAULT_MAX_ENTRIES):
        self._clock = clock
        self.hold_s = hold_s
        self.max_hold_s = max_hold_s
        self.max_entries = max_entries
        self._entries: dict[Key, Avoidance] = {}

    def __len__(self) -> int:
        return len(self._entries)

    # -- evidence ----------------------------------------------------------

    def fault(self, backend: str, database: str, objects: tuple[str, ...], operation: str,
              reason: str) -> None:
        """`backend` answered a statement over `objects` (written one first) with a storage fault."""
        marked = objects if operation == READ else objects[:1]
        now = self._clock()
        for obj in marked:
            self._event((backend, database, obj, operation), FAULT, now, reason)

    def success(self, backend: str, database: str, objects: tuple[str, ...], wrote: bool) -> None:
        """`backend` ran a statement over `objects` fine: what it proves works is no longer avoided.

        Every object was read; the first one was also written if `wrote`.
        """
        if not self._entries:
            return
        now = self._clock()
        for index, obj in enumerate(objects):
            self._event((backend, database, obj, READ), SUCCESS, now, "")
            if wrote and index == 0:
                self._event((backend, database, obj, WRITE), SUCCESS, now, "")

    def _event(self, key: Key, event: str, now: float, reason: str) -> None:
        entry = self._entries.get(key)
        phase = entry.phase(now) if entry is not None else None
        following, hold = TRANSITIONS[(phase, event)]
        if following is None:
            self._entries.pop(key, None)
            return
        if entry is None:
            self._make_room(now)
            entry = Avoidance(reason, 0, self.hold_s, now, now)
            self._entries[key] = entry
        if hold == "double":
            entry.hold_s = min(entry.hold_s * 2, self.max_hold_s)
        if hold != "keep":
            entry.since, entry.until = now, now + entry.hold_s
        entry.faults += 1
        entry.reason = reason

    def _make_room(self, now: float) -> None:
        stale = [key for key, entry in self._entries.items() if now - entry.until > FORGET_AFTER_S]
        for key in stale:
            del self._entries[key]
        while len(self._entries) >= self.max_entries:
            oldest = min(self._entries, key=lambda key: self._entries[key].until)
            del self._entries[oldest]

    # -- routing -----------------------------------------------------------

    def avoided(self, backend: str, database: str, obj: str, operations: Iterable[str]) -> bool:
        """Whether statements of `obj` should stay away from `backend` right now."""
        if not self._entries:
            return False
        now = self._clock()
        for operation in operations:
            entry = self._entries.get((backend, database, obj, operation))
            if entry is not None and entry.phase(now) is Phase.AVOIDED:
                return True
        return False

    def order_for_write(self, owners: list[str], database: str, obj: str) -> list[str]:
        """The ranked owners with those avoided for writing `obj` moved last (order kept otherwise)."""
        if not self._entries:
            return owners
        avoided = [b for b in owners if self.avoided(b, database, obj, (READ, WRITE))]
        return [b for b in owners if b not in avoided] + avoided

    def filter_for_read(self, candidates: list[str], database: str,
                        objects: tuple[str, ...]) -> list[str]:
        """The candidates that can read `objects`; all of them if none can (a preference only)."""
        if not self._entries or not objects:
            return candidates
        fine = [b for b in candidates
                if not any(self.avoided(b, database, obj, (READ,)) for obj in objects)]
        return fine or candidates

    # -- reporting ---------------------------------------------------------

    def snapshot(self) -> list[dict]:
        """Plain values for `.status;`."""
        now = self._clock()
        return [{"backend": backend, "database": database, "object": obj, "operation": operation,
                 "reason": entry.reason, "faults": entry.faults,
                 "phase": entry.phase(now).value, "hold_s": entry.hold_s,
                 "retest_in_s": round(max(0.0, entry.until - now), 3)}
                for (backend, database, obj, operation), entry in sorted(self._entries.items())]
