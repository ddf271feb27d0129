"""Read-your-writes across servers: what a balancer session wrote, and which backends hold it.

Writes go to each object's owner, so one session's writes of t1 and t2 may
be acknowledged by different servers, and replication copies them to the
others a few milliseconds later. A later statement of the session must run
on a backend that already has every one of those writes it may depend on.

For each object the session wrote, a `WriteMark` keeps the change counters
(per kind: table / view / domain) that the acknowledging server reported
right after the write (`.versions`, pipelined behind the write), and the set
of backends known to hold at least those counters: at first only the one
that acknowledged. Counters only grow on a server (writes and replicated
copies both move them forward), so "holds at least" never stops being true.

`find_holders` returns the candidates known to hold every needed mark;
when there are none it asks the candidates with `.versions` and polls
(bounded) until one has caught up. A mark whose counters are unknown (the
pool had one backend at write time, or the server did not answer) takes the
acknowledging server's *current* counters as its requirement: stricter than
needed, never weaker.

Which marks a statement needs (`read_needs`, `write_needs`): a read naming
only objects the session last wrote as tables (or dropped) needs their
marks; any other read (a name that may be a view over tables the balancer
cannot see without asking, `asehoy ...`) needs every mark of the current
database. The common case (every write acknowledged by the same server)
needs no question at all either way. A write needs the mark of the object it
writes, and every mark of the database if it reads other objects (insert
from a query, create view).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from engine.lru import LRUCache
from nodes.balancer.classifier import DROPPED, TABLE

MAX_REMEMBERED_WRITES = 4096
# How long a statement waits for replication to bring some backend up to date.
DEFAULT_WAIT_BOUND_S = 0.2
# After giving up on a mark, later statements check once but do not wait
# again for this long (a backend down for good must not cost every statement
# the whole bound).
GIVE_UP_HOLD_S = 1.0
FIRST_POLL_S = 0.002
MAX_POLL_S = 0.025

Versions = dict[str, int]                     # kind -> change counter
AskVersions = Callable[[str, str, list[str]], Awaitable[dict[str, Versions] | None]]


@dataclass
class WriteMark:
    """The session's latest acknowledged write of one object."""

    sequence: int
    backend_id: str                    # acknowledged the write
    versions: Versions | None          # counters right after it; None: not known yet
    target: str | None = None          # what the object is afterwards (nodes.classifier)
    holders: set[str] = field(default_factory=set)  # backends known to have them
    gave_up_at: float | None = None

    def __init__(self, sequence: int, backend_id: str, versions: Versions | None,
                 target: str | None = None, holders: set[str] | None = None,
                 gave_up_at: float | None = None) -> None:
        # (Written out: one per write; the generated one also called a
        # default factory and __post_init__.)
        self.sequence = sequence
        self.backend_id = backend_id
        self.versions = versions
        self.target = target
        if holders is None:
            holders = set()
        holders.add(backend_id)   # the acknowledging backend holds it
        self.holders = holders
        self.gave_up_at = gave_up_at


def covers(answer: Versions, required: Versions) -> bool:
    """Whether a backend's counters are at least the required ones, kind by kind."""
    return all(answer.get(kind, 0) >= change for kind, change in required.items())


class WriteMemory:
    """(database, object) -> WriteMark for one session, bounded (oldest forgotten first)."""

    def __init__(self, max_marks: int = MAX_REMEMBERED_WRITES):
        self.max_marks = max_marks
        self._marks: LRUCache[tuple[str, str], WriteMark] = LRUCache(max_marks)
        self._by_database: dict[str, dict[str, WriteMark]] = {}
        self._latest: dict[str, str] = {}   # database -> backend of the latest write
        self._sequence = 0

    def remember(self, database: str, obj: str, backend_id: str,
                 versions: Versions | None, target: str | None = None) -> WriteMark:
        self._sequence += 1
        mark = WriteMark(self._sequence, backend_id, versions, target)
        key = (database, obj)
        forgotten = self._marks.put(key, mark)
        marks = self._by_database.get(database)
        if marks is None:
            marks = self._by_database[database] = {}
        marks[obj] = mark
        self._latest[database] = backend_id
        for (old_database, old_obj), _ in forgotten:
            objects = self._by_database[old_database]
            del objects[old_obj]
            if not objects:
                del self._by_database[old_database]
        return mark

    def marks(self, database: str | None) -> dict[str, WriteMark]:
        """Every mark of `database` (object -> mark); empty without writes there."""
        if database is None:
            return {}
        return self._by_database.get(database, {})

    def mark(self, database: str, obj: str) -> WriteMark | None:
        return self._by_database.get(database, {}).get(obj)

    def latest_backend(self, database: str | None) -> str | None:
        return self._latest.get(database) if database is not None else None

    def forget_database(self, database: str) -> None:
        self._latest.pop(database, None)
        for obj in self._by_database.pop(database, {}):
            self._marks.pop((database, obj), None)


def read_needs(marks: dict[str, WriteMark], names: tuple[str, ...]) -> dict[str, WriteMark]:
    """The marks a read of `names` depends on (all of them unless every name is a known table)."""
    if not marks:
        return marks
    needs = {}
    for name in names:
        mark = marks.get(name)
        if mark is None or mark.target not in (TABLE, DROPPED):
            return marks  # maybe a view: it may read any of the session's writes
        needs[name] = mark
    return needs if names else marks


def write_needs(marks: dict[str, WriteMark], objects: tuple[str, ...]) -> dict[str, WriteMark]:
    """The marks a write depends on: its own object's, and all of them if it reads others."""
    if not marks or len(objects) > 1:
        return marks
    own = marks.get(objects[0]) if objects else None
    return {objects[0]: own} if own is not None else {}


def holding_all(candidates: list[str], needs: dict[str, WriteMark]) -> list[str]:
    """The candidates known to hold every needed mark."""
    return [c for c in candidates if holds_all(c, needs)]


def holds_all(candidate: str, needs: dict[str, WriteMark]) -> bool:
    """Whether `candidate` is known to hold every needed mark (a write's owner: each write)."""
    for mark in needs.values():
        if candidate not in mark.holders:
            return False
    return True


def best_effort_order(candidates: list[str], needs: dict[str, WriteMark]) -> list[str]:
    """Candidates by how many needed marks they are known to hold, then by the latest of them.

    The fallback when no candidate holds everything: the most up-to-date
    backend as far as this session knows.
    """
    def score(candidate: str) -> tuple[int, int]:
        held = [m.sequence for m in needs.values() if candidate in m.holders]
        return len(held), max(held, default=0)

    return sorted(candidates, key=score, reverse=True)


async def find_holders(database: str, needs: dict[str, WriteMark], candidates: list[str],
                       ask: AskVersions, *, bound_s: float = DEFAULT_WAIT_BOUND_S,
                       clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> list[str]:
    """Candidates holding every needed write, asking `.versions` and polling up to `bound_s`.

    Returns [] when none has caught up within the bound (the marks are then
    noted as given up: for GIVE_UP_HOLD_S later calls check once without
    waiting). `ask(backend, database, names)` returns the parsed `.versions`
    answer or None if the backend could not answer.
    """
    holders = holding_all(candidates, needs)
    if holders or not candidates:
        return holders
    now = clock()
    recently_given_up = all(m.gave_up_at is not None and now - m.gave_up_at < GIVE_UP_HOLD_S
                            for m in needs.values())
    deadline = now if recently_given_up else now + bound_s
    delay = FIRST_POLL_S
    while True:
        await _learn_unknown_requirements(database, needs, ask)
        await _ask_candidates(database, needs, candidates, ask)
        holders = holding_all(candidates, needs)
        if holders:
            for mark in needs.values():
                mark.gave_up_at = None
            return holders
        now = clock()
        if now >= deadline:
            for mark in needs.values():
                mark.gave_up_at = now
            return []
        await sleep(min(delay, deadline - now))
        delay = min(delay * 2, MAX_POLL_S)


async def _learn_unknown_requirements(database: str, needs: dict[str, WriteMark],
                                      ask: AskVersions) -> None:
    """Marks without counters take their acknowledging server's current ones."""
    by_backend: dict[str, list[str]] = {}
    for obj, mark in needs.items():
        if mark.versions is None:
            by_backend.setdefault(mark.backend_id, []).append(obj)
    if not by_backend:
        return
    answers = await asyncio.gather(*(ask(b, database, objs) for b, objs in by_backend.items()))
    for (_backend, objs), answer in zip(by_backend.items(), answers, strict=True):
        if answer is None:
            continue
        for obj in objs:
            if obj in answer:
                needs[obj].versions = answer[obj]


async def _ask_candidates(database: str, needs: dict[str, WriteMark], candidates: list[str],
                          ask: AskVersions) -> None:
    """Ask each candidate for the objects it is not known to hold; record who caught up."""
    questions: dict[str, list[str]] = {}
    for candidate in candidates:
        lacking = [obj for obj, mark in needs.items()
                   if candidate not in mark.holders and mark.versions is not None]
        if lacking:
            questions[candidate] = lacking
    if not questions:
        return
    answers = await asyncio.gather(*(ask(c, database, objs) for c, objs in questions.items()))
    for (candidate, objs), answer in zip(questions.items(), answers, strict=True):
        if answer is None:
            continue
        for obj in objs:
            mark = needs[obj]
            if obj in answer and mark.versions is not None and covers(answer[obj], mark.versions):
                mark.holders.add(candidate)
