"""A table version's rows, grown by an INSERT without copying the rows before it.

A version read by anyone (the cache, a reader on another thread) is never
changed, so a write used to give the new version a copy of the whole row
list (`rows + added`). At 100k rows that copy touched every row object
twice (its reference count, up on the copy and down when the old list
went): ~0.6 ms per insert, growing with the table, and a CPU whose caches
it emptied for whatever came next (docs/PERFORMANCE.md, "The first read
after a write").

`RowList` is an immutable sequence of rows kept in chunks of `CHUNK` rows.
`RowList.plus(rows, added)` is a new version sharing every full chunk of
`rows`: it copies at most one partial chunk and the tuple of chunk
references, so an insert costs its rows plus `CHUNK + len(rows) / CHUNK`
references, whatever the table. Readers iterate it, index it, slice it
(a slice is a new list) and take its length as they would a list's; it
equals a list of the same rows. `encode_default` turns it into a list for
JSON (engine/storage/atomic_files.py): a snapshot on disk is a plain list,
and a version loaded from disk is one too (its first insert chunks it once).
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from itertools import chain

# Rows per chunk: an insert copies up to this many references (~4 us at
# 1,024) and one per chunk; 1M rows make ~1,000 chunks.
CHUNK_BITS = 10
CHUNK = 1 << CHUNK_BITS
_LOW = CHUNK - 1


class RowList(Sequence):
    """Rows in chunks of CHUNK (every chunk full but the last), shared between versions."""

    __slots__ = ("_chunks", "_length")

    def __init__(self, chunks: tuple[list, ...], length: int) -> None:
        # Never mutated once others read it (see extend_owned): other
        # versions may share any full chunk.
        self._chunks = chunks
        self._length = length

    @classmethod
    def plus(cls, rows: list | RowList, added: list) -> RowList:
        """`rows` (a list or a RowList, not modified) followed by `added`."""
        if type(rows) is RowList:
            chunks = rows._chunks
            if chunks and len(chunks[-1]) < CHUNK:
                # The one chunk the new version fills: its own copy.
                chunks = (*chunks[:-1], chunks[-1].copy())
            grown = cls(chunks, rows._length)
        else:
            grown = cls(_chunked(rows), len(rows))
        grown.extend_owned(added)
        return grown

    def extend_owned(self, added: list) -> None:
        """Append `added` in place: only while no one else can read this RowList (the
        version `plus` is making, or a write batch's own version, store.py `_rows_plus`).

        Its last chunk, when not full, is its own (`plus` copies it); the full
        ones it may share are left as they are.
        """
        chunks = list(self._chunks)
        taken = 0
        if chunks and len(chunks[-1]) < CHUNK:
            taken = CHUNK - len(chunks[-1])
            chunks[-1].extend(added[:taken])
        for start in range(taken, len(added), CHUNK):
            chunks.append(added[start:start + CHUNK])
        self._chunks = tuple(chunks)
        self._length += len(added)

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[list]:
        return chain.from_iterable(self._chunks)

    def __reversed__(self) -> Iterator[list]:
        return chain.from_iterable(reversed(chunk) for chunk in reversed(self._chunks))

    def __getitem__(self, index):
        if type(index) is not int and not isinstance(index, slice):
            index = operator.index(index)   # a bool, an int subclass; TypeError for the rest
        if type(index) is int:
            if index < 0:
                index += self._length
                if index < 0:
                    raise IndexError("row index out of range")
            elif index >= self._length:
                raise IndexError("row index out of range")
            return self._chunks[index >> CHUNK_BITS][index & _LOW]
        start, stop, step = index.indices(self._length)
        if step != 1:
            return [self[position] for position in range(start, stop, step)]
        rows: list = []
        if stop <= start:
            return rows
        first, last = start >> CHUNK_BITS, (stop - 1) >> CHUNK_BITS
        for number in range(first, last + 1):   # only the chunks the slice covers
            offset = number << CHUNK_BITS
            rows += self._chunks[number][max(start - offset, 0):stop - offset]
        return rows

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, RowList)):
            return len(other) == self._length and all(
                mine == theirs for mine, theirs in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a list: no hash either

    def __add__(self, other: list) -> list:
        if not isinstance(other, (list, RowList)):
            return NotImplemented
        return [*self, *other]

    def __radd__(self, other: list) -> list:
        if not isinstance(other, list):
            return NotImplemented
        return [*other, *self]

    def __repr__(self) -> str:
        return f"RowList({list(self)!r})"


def rows_plus(rows: list | RowList, added: list) -> list | RowList:
    """`rows` (not modified) followed by `added`: a small table's plain list copied
    (what copying one chunk costs), else a RowList sharing the chunks of `rows`."""
    if type(rows) is list and len(rows) < CHUNK:
        return rows + added
    return RowList.plus(rows, added)


def rows_with(rows: list | RowList, changes: list) -> list | RowList:
    """`rows` (not modified) with each (position, row) of `changes` in place: a small
    table's list copied, else a RowList copying only the chunks a change falls in."""
    if type(rows) is list and len(rows) < CHUNK:
        result = rows.copy()
        for position, row in changes:
            result[position] = row
        return result
    chunks = list(rows._chunks if type(rows) is RowList else _chunked(rows))
    copied: set[int] = set()
    if chunks and len(chunks[-1]) < CHUNK:
        # Its own last chunk, as `plus` gives: a batch may grow it in place (extend_owned).
        chunks[-1] = chunks[-1].copy()
        copied.add(len(chunks) - 1)
    for position, row in changes:
        number = position >> CHUNK_BITS
        if number not in copied:
            chunks[number] = chunks[number].copy()
            copied.add(number)
        chunks[number][position & _LOW] = row
    return RowList(tuple(chunks), len(rows))


def rows_without(rows: list | RowList, positions: list[int]) -> list | RowList:
    """`rows` (not modified) without the rows at `positions` (ascending): the chunks before
    the first of them shared (all full), the rest (which moves up) made again."""
    if type(rows) is list and len(rows) < CHUNK:
        doomed = set(positions)
        return [row for position, row in enumerate(rows) if position not in doomed]
    chunks = rows._chunks if type(rows) is RowList else _chunked(rows)
    first = positions[0] >> CHUNK_BITS if positions else len(chunks)
    kept: list = []
    start = first << CHUNK_BITS
    for position in positions:   # the rows between removed ones, sliced in C
        kept += rows[start:position]
        start = position + 1
    kept += rows[start:]
    return RowList(chunks[:first] + _chunked(kept), len(rows) - len(positions))


def search_positions(rows: list | RowList, wanted: list[list]) -> list[int] | None:
    """The positions of the row objects `wanted` (in table order) in `rows`, found by a
    search in C (`list.index`, each hit checked to be that very object); None if one is
    not there. It costs the rows before the last one found, each a failed comparison."""
    chunks = rows._chunks if type(rows) is RowList else (rows,)
    size = CHUNK if type(rows) is RowList else max(len(rows), 1)
    positions: list[int] = []
    number, offset = 0, 0   # where the search goes on: chunk, place in it
    for row in wanted:
        while True:
            if number >= len(chunks):
                return None
            chunk = chunks[number]
            try:
                offset = chunk.index(row, offset)
            except ValueError:
                number, offset = number + 1, 0
                continue
            if chunk[offset] is row:
                break
            offset += 1   # an equal row, not this one
        positions.append(number * size + offset)
        offset += 1
    return positions


def _chunked(rows: list | RowList) -> tuple[list, ...]:
    return tuple(rows[start:start + CHUNK] for start in range(0, len(rows), CHUNK))


def encode_default(value: object) -> list:
    """orjson's `default`: a RowList as the list it stands for; TypeError for anything else."""
    if type(value) is RowList:
        return list(value)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
