"""Where a row of a table version stands: the positions a point UPDATE or DELETE writes.

The equality index (engine/evaluation/catalog.py, `EqualityIndex`) gives the
rows holding a value, not their positions, and a write's journal entry
(engine/storage/journal.py) names rows by position. Without positions a
point update (`havaozy t ova a = 7 rehefa id = 5`) scanned the whole table:
~26 ms at 100k rows against ~0.6 ms at 1k.

`RowPositions` maps each row object of one version (by identity, `id`) to
its position. The next version derives its own from it for appends and
in-place sets (what most writes are), sharing a base dict and copying a
small delta. A remove moves every row after it: the version after it has
no map. Without a map the rows are found by a search in C
(`row_list.search_positions`, costing the rows before them); the map,
which costs the whole table once, is built by the second UPDATE in a row
that finds none (`TableData.positions_of`), so that updates and deletes
taking turns never pay for a map the next delete would drop.

Every answer is checked against the rows themselves (`rows[p] is row`):
an entry left behind by a replaced row, or an `id` reused by another
object, can never name a wrong position. A row not found makes
`positions_of` answer None, and the caller scans, as before.
"""

from __future__ import annotations

import math
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
    """{id(row): position} over one version's rows; never changed once built."""

    __slots__ = ("_base", "_delta")

    def __init__(self, base: dict[int, int], delta: dict[int, int] | None = None) -> None:
        self._base = base
        self._delta = delta if delta is not None else {}

    @classmethod
    def build(cls, rows: Sequence[list]) -> RowPositions:
        return cls(dict(zip(map(id, rows), range(len(rows)), strict=True)))

    def positions_of(self, rows: Sequence[list], wanted: list[list]) -> list[int] | None:
        """The positions in `rows` (this map's version) of the row objects `wanted`, in
        their order; None if one of them is not there."""
        delta, base = self._delta, self._base
        positions = []
        for row in wanted:
            key = id(row)
            position = delta.get(key)
            if position is None:
                position = base.get(key)
            if position is None or position >= len(rows) or rows[position] is not row:
                return None
            positions.append(position)
        return positions

    def derive(self, ops: list | tuple, rows_after: Sequence[list]) -> RowPositions | None:
        """The map of the version `ops` (journal ops) make of this one's, whose rows are
        `rows_after`; None after a remove (the next use builds it)."""
        delta = dict(self._delta)
        count = len(rows_after) - sum(len(items) for kind, items in ops if kind == "append")
        for kind, items in ops:
            if kind == "append":
                for row in items:
                    delta[id(row)] = count
                    count += 1
            elif kind == "set":
                for position, row in items:
                    delta[id(row)] = position
            else:
                return None
        if len(delta) > fold_limit(len(self._base)):
            return RowPositions.build(rows_after)
        return RowPositions(self._base, delta)
