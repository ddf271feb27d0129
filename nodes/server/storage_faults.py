"""What a server remembers about its own files it could not read or write, for `.status;`.

The engine says *that* a statement failed on a file (`engine.errors.StorageFault`:
the object's path relative to the data directory, the operation, the
reason); a log line alone is easy to miss, so the server keeps one record
per object (operation and reason of the latest fault, how many, first and
last seen) until the object works again:

- a successful write of the object clears its record (a write reads the
  object first, so reading works too);
- a successful read clears a *read* fault only: a full or read-only disk
  still serves reads, and that must not hide that writes fail;
- a write fault of a full or read-only disk clears when a test write beside
  the object goes through (`disk_write_faults`: the server re-tests them);
- a commit that went through clears every fault that was a peer's (it was
  certified against all of them); one not met again for PEER_FAULT_TTL_S
  goes too (a server that writes nothing after the peer came back would
  show it for ever: its writes go through another server).

Bounded: past `max_objects` the record seen longest ago goes. Thread-safe:
the engine thread records and clears, the event loop answers `.status;`.
"""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from engine.errors import StorageFault
from engine.storage.peers import PEER_FAULT_REASON

DEFAULT_MAX_OBJECTS = 256
# A fault that was a peer's, not met again for this long, is forgotten: nothing fails now.
PEER_FAULT_TTL_S = 30.0
# The write faults a test write beside the object tells the end of (`disk_write_faults`):
# the disk refusing any write. Not an I/O error (a write that is not fsynced may pass
# while the disk still fails), a damaged journal or a peer's fault (not the disk's).
DISK_WRITE_REASONS = frozenset(f"not writable: {os.strerror(code)}"
                               for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS))


@dataclass
class FaultRecord:
    """One object's storage trouble on this server."""

    object: str          # path relative to the data directory, e.g. "db/tables/t.json"
    operation: str       # "read" or "write": of the latest fault
    reason: str          # of the latest fault
    count: int
    first_seen: float    # wall clock (time.time()), seconds
    last_seen: float


class StorageFaults:
    """Recent storage faults by object, cleared when the object works again."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 max_objects: int = DEFAULT_MAX_OBJECTS):
        self._clock = clock
        self._max_objects = max_objects
        self._lock = threading.Lock()
        self._records: dict[str, FaultRecord] = {}

    def __len__(self) -> int:
        self._forget_old_peer_faults()
        return len(self._records)

    def _forget_old_peer_faults(self) -> None:
        if not self._records:
            return
        older = self._clock() - PEER_FAULT_TTL_S
        with self._lock:
            for obj in [obj for obj, known in self._records.items()
                        if known.last_seen < older and known.reason.startswith(PEER_FAULT_REASON)]:
                del self._records[obj]

    def record(self, fault: StorageFault) -> None:
        """Remember one fault of `fault.object`."""
        now = self._clock()
        with self._lock:
            known = self._records.get(fault.object)
            if known is None:
                if len(self._records) >= self._max_objects:
                    oldest = min(self._records.values(), key=lambda r: r.last_seen)
                    del self._records[oldest.object]
                self._records[fault.object] = FaultRecord(
                    fault.object, fault.operation, fault.reason, 1, now, now)
                return
            known.operation, known.reason = fault.operation, fault.reason
            known.count += 1
            known.last_seen = now

    def written(self, objects: Iterable[str]) -> list[str]:
        """These objects were written successfully: forget their faults; the ones forgotten."""
        return self._clear(objects, ("read", "write"))

    def peers_reached(self) -> list[str]:
        """A commit was certified against every peer (a write went through): forget the
        faults that were the peers' (`peer unreachable: ...`), whichever object they were
        met on; the ones forgotten. (Kept until that object was written again, a fault
        met on `database.json` stayed until the next DDL, long after the peer was back.)"""
        if not self._records:
            return []
        with self._lock:
            cleared = [obj for obj, known in self._records.items()
                       if known.reason.startswith(PEER_FAULT_REASON)]
            for obj in cleared:
                del self._records[obj]
        return cleared

    def read(self, objects: Iterable[str]) -> list[str]:
        """These objects were read successfully: forget their read faults; the ones forgotten."""
        return self._clear(objects, ("read",))

    def _clear(self, objects: Iterable[str], operations: tuple[str, ...]) -> list[str]:
        if not self._records:
            return []
        cleared = []
        with self._lock:
            for obj in objects:
                known = self._records.get(obj)
                if known is not None and known.operation in operations:
                    del self._records[obj]
                    cleared.append(obj)
        return cleared

    def disk_write_faults(self) -> list[str]:
        """The objects whose write fault is the disk refusing writes (full, over quota,
        read-only): a test write beside them says when that is over."""
        with self._lock:
            return sorted(obj for obj, known in self._records.items()
                          if known.operation == "write" and known.reason in DISK_WRITE_REASONS)

    def objects(self, operation: str | None = None) -> list[str]:
        """The objects with a recorded fault (of `operation`, if given), sorted."""
        with self._lock:
            return sorted(obj for obj, known in self._records.items()
                          if operation is None or known.operation == operation)

    def snapshot(self) -> list[dict]:
        """Plain values for `.status;`, by object."""
        self._forget_old_peer_faults()
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: r.object)
            return [{**asdict(r), "first_seen": round(r.first_seen, 3),
                     "last_seen": round(r.last_seen, 3)} for r in records]
