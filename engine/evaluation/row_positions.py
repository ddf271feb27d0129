"""Where a row of a table version stands: the positions a point UPDATE or DELETE writes.

The equality index (engine/evaluation/catalog.py, `EqualityIndex`) gives the
rows holding a value, not their positions, and a write's journal entry
(engine/storage/journal.py) names rows by position. Without positions a
point update (`havaozy t ova a = 7 rehefa id = 5`) scanned the whole table:
~26 ms at 100k rows against ~0.6 ms at 1k.

`RowPositions` maps each row object of one version (by identity, `id`) to
its slot: its position when the map's base was built, or, for a row
written since, the slot it took then. A remove leaves its slots empty
(`holes`, sorted): a row's position is its slot less the holes before it
(a bisect). So the next version derives its map from this one's for every
kind of write, sharing the base dict and copying a small delta and the
holes; past `fold_limit` of them the map is built again from the rows.
Without a map the rows are found by a search in C
(`row_list.search_positions`, costing the rows before them); the map,
which costs the whole table once, is built by the second point write in a
row that finds none (`TableData.positions_of`).

Every answer is checked against the rows themselves (`rows[p] is row`):
an entry left behind by a replaced or removed row, or an `id` reused by
another object, can never name a wrong position. A row not found makes
`positions_of` answer None, and the caller scans, as before.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence

# A derived map (this one, an equality index: engine/evaluation/catalog.py)
# keeps what changed since its base in a delta dict of its own, copied by
# each later version; past `fold_limit` entries the delta is folded into a
# new base (a copy of the whole dict; here a map built again from the rows,
# which also drops the entries of rows replaced since), so the folds cost
# about what the delta copies do: a few microseconds a write at 100k keys.
MIN_FOLD_LIMIT = 64


def fold_limit(base_keys: int) -> int:
    """How many changed entries a derived map carries before it folds them into its base."""
    return max(MIN_FOLD_LIMIT, 2 * math.isqrt(base_keys))


class RowPositions:
    """{id(row): slot} over one version's rows, and the slots removed since; never changed
    once built."""

    __slots__ = ("_base", "_delta", "_holes")

    def __init__(self, base: dict[int, int], delta: dict[int, int] | None = None,
                 holes: list[int] | None = None) -> None:
        self._base = base
        self._delta = delta if delta is not None else {}
        self._holes = holes if holes is not None else []

    @classmethod
    def build(cls, rows: Sequence[list]) -> RowPositions:
        return cls(dict(zip(map(id, rows), range(len(rows)), strict=True)))

    def positions_of(self, rows: Sequence[list], wanted: list[list]) -> list[int] | None:
        """The positions in `rows` (this map's version) of the row objects `wanted`, in
        their order; None if one of them is not there."""
        delta, base, holes = self._delta, self._base, self._holes
        positions = []
        for row in wanted:
            key = id(row)
            position = delta.get(key)
            if position is None:
                position = base.get(key)
                if position is None:
                    return None
            if holes:
                position -= bisect_left(holes, position)
            if not 0 <= position < len(rows) or rows[position] is not row:
                return None
            positions.append(position)
        return positions

    def derive(self, ops: list | tuple, rows_after: Sequence[list]) -> RowPositions:
        """The map of the version `ops` (journal ops) make of this one's, whose rows are
        `rows_after`."""
        delta, holes = dict(self._delta), list(self._holes)
        count = len(rows_after)   # rows before the ops: the count after them, undone
        for kind, items in ops:
            count += len(items) if kind == "remove" else -len(items) if kind == "append" else 0
        for kind, items in ops:
            if kind == "append":
                for row in items:
                    delta[id(row)] = count + len(holes)   # past every slot so far
                    count += 1
            elif kind == "set":
                for position, row in items:
                    delta[id(row)] = _slot(position, holes)
            else:   # remove: positions in the rows before the op, ascending
                for slot in [_slot(position, holes) for position in items]:
                    insort(holes, slot)
                count -= len(items)
        if len(delta) + len(holes) > fold_limit(len(self._base)):
            return RowPositions.build(rows_after)
        return RowPositions(self._base, delta, holes)


def _slot(position: int, holes: list[int]) -> int:
    """The slot of the row at `position`: the least slot, not a hole, with `position` rows
    before it (each step counts the holes up to the slot reached; it only grows, and
    stops on the first slot that fits)."""
    slot = position
    while True:
        following = position + bisect_right(holes, slot)
        if following == slot:
            return slot
        slot = following
