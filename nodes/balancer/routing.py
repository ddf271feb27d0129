"""Where a statement goes: pure routing decisions for the load balancer.

Two decisions, both free of sockets and clocks:

- Writes go to the *owner* of the object they change. The owner is chosen by
  rendezvous (highest random weight) hashing of (database, object) over the
  backends that may take writes right now. Every balancer that sees the same
  set of healthy backends picks the same owner, so two servers never write
  the same object file at once; when a backend leaves, only the objects it
  owned move, and they move to the backend that ranked second for them.
  The hash is blake2b, stable across processes (Python's `hash()` of a str
  is randomised per process and must not be used here).

- Reads are spread: the backend with the fewest outstanding requests wins,
  ties broken round robin so an idle cluster still spreads its reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping


def rendezvous_score(backend_id: str, database: str, obj: str) -> int:
    """The weight of `backend_id` for the object `database.obj` (stable)."""
    # NUL separators keep ("ab", "c") and ("a", "bc") apart.
    key = f"{backend_id}\0{database}\0{obj}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


def rank_owners(database: str, obj: str, backend_ids: Iterable[str]) -> list[str]:
    """Candidates ordered by preference for writing `database.obj`.

    The first is the owner; if it cannot be reached before anything was sent,
    the next one is the owner the object would have without it.
    """
    return sorted(set(backend_ids),
                  key=lambda backend_id: (rendezvous_score(backend_id, database, obj), backend_id),
                  reverse=True)


# Rankings an `OwnerRanks` keeps (forgotten all at once when full).
MAX_KEPT_RANKINGS = 4096


class OwnerRanks:
    """`rank_owners`, remembered per (database, object, candidates).

    A write's owners are ranked for every write, with a hash per candidate;
    the ranking is a pure function of its arguments, and a session writes
    the same objects again and again among the same candidates.
    """

    def __init__(self, max_kept: int = MAX_KEPT_RANKINGS) -> None:
        self.max_kept = max_kept
        self._kept: dict[tuple[str, str, tuple[str, ...]], tuple[str, ...]] = {}

    def rank(self, database: str, obj: str, backend_ids: list[str]) -> list[str]:
        """`rank_owners(database, obj, backend_ids)` (a new list each time: the caller's)."""
        key = (database, obj, tuple(backend_ids))
        ranked = self._kept.get(key)
        if ranked is None:
            if len(self._kept) >= self.max_kept:
                self._kept.clear()
            ranked = self._kept[key] = tuple(rank_owners(database, obj, backend_ids))
        return list(ranked)


def owner_of(database: str, obj: str, backend_ids: Iterable[str]) -> str | None:
    """The backend that writes `database.obj`, or None with no candidate."""
    ranked = rank_owners(database, obj, backend_ids)
    return ranked[0] if ranked else None


class ReadSelector:
    """Least-outstanding-requests choice among candidates, round robin on ties.

    The caller owns the outstanding counters (it increments before sending and
    decrements when the answer is in); this object only keeps the rotation.
    """

    def __init__(self) -> None:
        self._turn = 0

    def pick(self, candidates: Iterable[str], outstanding: Mapping[str, int],
             exclude: Iterable[str] = ()) -> str | None:
        """The backend for the next read, or None if every candidate is excluded."""
        excluded = set(exclude)
        pool = [c for c in candidates if c not in excluded]
        return self.choose(pool, outstanding) if pool else None

    def choose(self, candidates: Iterable[str], outstanding: Mapping[str, int],
               advance: bool = True) -> str:
        """The backend for the next read among `candidates`; ValueError if there is none.

        advance=False: the same answer, without moving the rotation (a caller
        that may not use it; the next call then gives it again).
        """
        pool = sorted(set(candidates))
        if len(pool) == 1:   # one server: the choice is made (the rotation still moves)
            choice = pool[0]
        else:
            fewest = min(outstanding.get(c, 0) for c in pool)   # ValueError on an empty pool
            least_loaded = [c for c in pool if outstanding.get(c, 0) == fewest]
            choice = least_loaded[self._turn % len(least_loaded)]
        if advance:
            self._turn += 1
        return choice

    def advance(self) -> None:
        """Move the rotation as `choose` does: after `choose(..., advance=False)`, when
        nothing changed since, the same as calling `choose` again."""
        self._turn += 1
