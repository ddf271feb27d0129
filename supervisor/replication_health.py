"""What is wrong with the replicas right now, per server: failing copies, corrupt copies, repairs.

`ReplicaHealth` is the replicator's record of the problems an operator must
see in `python -m supervisor status`, not only in a log line:

- failing copies: a copy into a server that raised (disk full, read-only
  file system, lock timeout, a file where a folder should be): the object,
  the reason, since when, how many attempts. Cleared when a later copy of
  that object into that server succeeds, or is no longer needed (the
  server got that version or a newer one by itself);
- corrupt copies: a server's copy that is not a valid document and was not
  repaired (no peer holds a valid copy, or its repair has not happened
  yet). Cleared when the copy is repaired or becomes valid;
- repairs: each corrupt copy replaced by a peer's valid copy (object,
  reason, when, from which server, at which counter, where the corrupt
  file was kept), counted, the latest few listed;
- refused paths: symlinks that replication does not follow.

Each new fact is logged once (errors for corrupt copies, repairs and a
failing copy, a warning for a refused path); repeated attempts are only
counted. Thread-safe. `status_fields` turns one server's figures into the
fields of its `status` row.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field

RECENT_REPAIRS = 20


@dataclass
class FailingCopy:
    path: str
    reason: str
    since: float           # wall clock, seconds
    attempts: int
    last_attempt_at: float


@dataclass(frozen=True)
class Repair:
    path: str
    reason: str
    healed_at: float
    source: str
    change: int
    kept_as: str           # the corrupt file, relative to the data directory


@dataclass
class _ServerHealth:
    failing: dict[str, FailingCopy] = field(default_factory=dict)
    corrupt: dict[str, dict] = field(default_factory=dict)    # path -> {reason, since}
    refused: dict[str, dict] = field(default_factory=dict)    # path -> {reason, since}
    healed: int = 0
    repairs: deque = field(default_factory=lambda: deque(maxlen=RECENT_REPAIRS))


class ReplicaHealth:
    """Per server: failing copies, corrupt copies, repairs and refused paths."""

    def __init__(self, logger: logging.Logger):
        self.log = logger
        self._lock = threading.Lock()
        self._servers: dict[str, _ServerHealth] = {}

    def add_server(self, server_id: str) -> None:
        with self._lock:
            self._servers.setdefault(server_id, _ServerHealth())

    def remove_server(self, server_id: str) -> None:
        with self._lock:
            self._servers.pop(server_id, None)

    # ----- failing copies --------------------------------------------------

    def copy_failed(self, server_id: str, path: str, reason: str) -> None:
        now = time.time()
        with self._lock:
            health = self._servers.get(server_id)
            if health is None:
                return
            known = health.failing.get(path)
            if known is None:
                health.failing[path] = FailingCopy(path, reason, now, 1, now)
            else:
                known.attempts += 1
                known.last_attempt_at = now
                if known.reason == reason:
                    return
                known.reason = reason
        self.log.error("replication: copy of %s to %s fails: %s (retried until it succeeds)",
                       path, server_id, reason)

    def is_failing(self, server_id: str, path: str) -> bool:
        """Whether copies of `path` into `server_id` are failing (retried on their backoff)."""
        with self._lock:
            health = self._servers.get(server_id)
            return health is not None and path in health.failing

    def copy_done(self, server_id: str, path: str) -> None:
        """`server_id` holds the version it should: a failing copy of `path` there is over."""
        with self._lock:
            health = self._servers.get(server_id)
            known = health.failing.pop(path, None) if health is not None else None
        if known is not None:
            self.log.warning("replication: copy of %s to %s succeeded after %d failed "
                             "attempt(s)", path, server_id, known.attempts)

    # ----- corrupt copies and repairs --------------------------------------

    def corrupt(self, server_id: str, path: str, reason: str, why_not_healed: str) -> None:
        with self._lock:
            health = self._servers.get(server_id)
            if health is None or health.corrupt.get(path, {}).get("reason") == reason:
                return
            health.corrupt[path] = {"path": path, "reason": reason, "since": time.time(),
                                    "not_healed": why_not_healed}
        self.log.error("replication: %s's copy of %s is corrupt (%s); %s", server_id, path,
                       reason, why_not_healed)

    def valid(self, server_id: str, path: str) -> None:
        """`server_id`'s copy of `path` is valid (or gone): it is no longer corrupt."""
        with self._lock:
            health = self._servers.get(server_id)
            if health is not None:
                health.corrupt.pop(path, None)
                health.refused.pop(path, None)

    def healed(self, server_id: str, repair: Repair) -> None:
        with self._lock:
            health = self._servers.get(server_id)
            if health is None:
                return
            # Logged before the counters show it: whoever sees the repair
            # counted (status, a test) finds its line in the log.
            # (A damaged journal of the copy that holds the newest version is cut back to
            # its own valid lines: no other copy is the source then.)
            how = ("cut back to its own valid lines" if repair.source == server_id
                   else f"repaired from {repair.source}'s copy")
            self.log.error("replication: %s's copy of %s was corrupt (%s): %s (change %d); the "
                           "corrupt file is kept as %s", server_id, repair.path, repair.reason,
                           how, repair.change, repair.kept_as)
            health.corrupt.pop(repair.path, None)
            health.healed += 1
            health.repairs.append(repair)

    # ----- refused paths ---------------------------------------------------

    def refused(self, server_id: str, path: str, reason: str) -> None:
        with self._lock:
            health = self._servers.get(server_id)
            if health is None or path in health.refused:
                return
            health.refused[path] = {"path": path, "reason": reason, "since": time.time()}
        self.log.warning("replication: %s: %s", server_id, reason)

    def refused_listed(self, server_id: str, found: dict[str, str]) -> None:
        """A whole listing of the server found these refused paths (and no others).

        Paths under a refused folder stay listed while the folder is refused
        (the listing does not look inside it, their reconciliation does).
        """
        with self._lock:
            health = self._servers.get(server_id)
            if health is None:
                return
            for path in [p for p in health.refused if p not in found and not any(
                    p.startswith(folder + "/") for folder in found)]:
                del health.refused[path]
        for path, reason in sorted(found.items()):
            self.refused(server_id, path, f"{path}: {reason}: not followed, not replicated")

    # ----- reporting -------------------------------------------------------

    def snapshot(self, server_id: str) -> dict:
        """failing, corrupt, refused (lists), healed (count), repairs (latest first)."""
        with self._lock:
            health = self._servers.get(server_id)
            if health is None:
                return {}
            return {
                "failing": [asdict(f) for f in sorted(health.failing.values(),
                                                      key=lambda f: f.since)],
                "corrupt": [dict(c) for c in health.corrupt.values()],
                "refused": [dict(r) for r in health.refused.values()],
                "healed": health.healed,
                "repairs": [asdict(r) for r in reversed(health.repairs)],
            }


def status_fields(figures: dict) -> dict:
    """The replica-health fields of a server's `status` row, from its `Replicator.stats()` entry.

    `repl_health` is "ok", or says what is wrong ("2 failing copies (No
    space left on device)", "1 corrupt copy not repaired"); the lists are
    for `--json` and the table's details.
    """
    failing = figures.get("failing") or []
    corrupt = figures.get("corrupt") or []
    problems = []
    if failing:
        problems.append(f"{_copies(len(failing))} failing ({failing[0]['reason']})")
    if corrupt:
        problems.append(f"{_copies(len(corrupt))} corrupt, not repaired")
    return {"repl_health": "; ".join(problems) or "ok",
            "repl_failing": failing,
            "repl_corrupt": corrupt,
            "repl_healed": figures.get("healed", 0),
            "repl_repairs": figures.get("repairs") or [],
            "repl_refused": figures.get("refused") or []}


def _copies(count: int) -> str:
    return f"{count} cop{'y' if count == 1 else 'ies'}"
