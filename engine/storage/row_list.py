"""A table version's rows, made by a write without copying the rows it leaves alone.

A version read by anyone (the cache, a reader on another thread) is never
changed, so a write used to give the new version a copy of the whole row
list (`rows + added`). At 100k rows that copy touched every row object
twice (its reference count, up on the copy and down when the old list
went): ~0.6 ms per insert, growing with the table, and a CPU whose caches
it emptied for whatever came next (docs/PERFORMANCE.md, "The first read
after a write").

`RowList` is an immutable sequence of rows kept in chunks of at most
`CHUNK` rows, with the position where each chunk starts. A new version
shares every chunk of the version before that the write leaves alone:
`RowList.plus(rows, added)` (an INSERT) copies at most the last, partly
filled chunk; `rows_with` (an UPDATE) the chunks its rows are in;
`rows_without` (a DELETE) the chunks it removes rows from, which may then
hold fewer than `CHUNK` rows. Each also copies the tuples of chunk
references and starts, so a write costs its rows plus `CHUNK + len(rows) /
CHUNK` references, whatever the table. Readers iterate it, index it (a
binary search among the starts), slice it (a slice is a new list) and take
its length as they would a list's; it equals a list of the same rows.
`encode_default` turns it into a list for JSON (engine/storage/atomic_files.py):
a snapshot on disk is a plain list, and a version loaded from disk is one
too (its first write chunks it once).
"""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from itertools import accumulate, chain

# Rows per chunk at most: a write copies up to this many references (~4 us
# at 1,024) per chunk it changes, and one per chunk; 1M rows make ~1,000 chunks.
CHUNK = 1024


class RowList(Sequence):
    """Rows in chunks of at most CHUNK (none empty), shared between versions."""

    __slots__ = ("_chunks", "_starts", "_length")

    def __init__(self, chunks: tuple[list, ...], length: int,
                 starts: tuple[int, ...] | None = None) -> None:
        # Never mutated once others read it (see extend_owned): other
        # versions may share any chunk but a partly filled last one.
        self._chunks = chunks
        self._starts = starts if starts is not None else _starts_of(chunks)
        self._length = length

    @classmethod
    def plus(cls, rows: list | RowList, added: list) -> RowList:
        """`rows` (a list or a RowList, not modified) followed by `added`."""
        grown = _own_last_chunk(rows)
        grown.extend_owned(added)
        return grown

    def extend_owned(self, added: list) -> None:
        """Append `added` in place: only while no one else can read this RowList (the
        version `plus` is making, or a write batch's own version, store.py `_rows_plus`).

        Its last chunk, when not full, is its own (every function here that
        makes a RowList copies it); the others it may share are left as they are.
        """
        chunks, starts = list(self._chunks), list(self._starts)
        taken = 0
        if chunks and len(chunks[-1]) < CHUNK:
            taken = CHUNK - len(chunks[-1])
            chunks[-1].extend(added[:taken])
        at = self._length + min(taken, len(added))
        for start in range(taken, len(added), CHUNK):
            chunk = added[start:start + CHUNK]
            chunks.append(chunk)
            starts.append(at)
            at += len(chunk)
        self._chunks, self._starts = tuple(chunks), tuple(starts)
        self._length += len(added)

    def _locate(self, index: int) -> tuple[int, int]:
        """(chunk number, place in it) of a position 0 <= index < len."""
        number = bisect_right(self._starts, index) - 1
        return number, index - self._starts[number]

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
            number, place = self._locate(index)
            return self._chunks[number][place]
        start, stop, step = index.indices(self._length)
        if step != 1:
            return [self[position] for position in range(start, stop, step)]
        rows: list = []
        if stop <= start:
            return rows
        first, last = self._locate(start)[0], self._locate(stop - 1)[0]
        for number in range(first, last + 1):   # only the chunks the slice covers
            offset = self._starts[number]
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
    made = _own_last_chunk(rows)
    chunks = list(made._chunks)
    copied = _made_here(made, rows)
    for position, row in changes:
        number, place = made._locate(position)
        if number not in copied:
            chunks[number] = chunks[number].copy()
            copied.add(number)
        chunks[number][place] = row
    made._chunks = tuple(chunks)
    return made


def rows_without(rows: list | RowList, positions: list[int]) -> list | RowList:
    """`rows` (not modified) without the rows at `positions` (ascending): a small table's
    list copied, else a RowList copying only the chunks it removes rows from (a chunk
    left empty goes); the rows after them keep their chunks, only their starts move."""
    if type(rows) is list and len(rows) < CHUNK:
        doomed = set(positions)
        return [row for position, row in enumerate(rows) if position not in doomed]
    made = _own_last_chunk(rows)
    chunks = list(made._chunks)
    own = _made_here(made, rows)
    by_chunk: dict[int, list[int]] = {}
    for position in positions:
        number, place = made._locate(position)
        by_chunk.setdefault(number, []).append(place)
    for number, places in by_chunk.items():
        chunk, kept, start = chunks[number], [], 0
        for place in places:   # the rows between removed ones, sliced in C
            kept += chunk[start:place]
            start = place + 1
        kept += chunk[start:]
        chunks[number] = kept
        own.add(number)
    left = [(number, chunk) for number, chunk in enumerate(chunks) if chunk]
    if left and left[-1][0] not in own and len(left[-1][1]) < CHUNK:
        # The last chunk emptied: the one before it, partly filled, is now the
        # last, and must be this version's own (extend_owned grows it).
        left[-1] = (left[-1][0], left[-1][1].copy())
    return RowList(tuple(chunk for _, chunk in left), len(rows) - len(positions))


def search_positions(rows: list | RowList, wanted: list[list]) -> list[int] | None:
    """The positions of the row objects `wanted` (in table order) in `rows`, found by a
    search in C (`list.index`, each hit checked to be that very object); None if one is
    not there. It costs the rows before the last one found, each a failed comparison."""
    chunks, starts = (rows._chunks, rows._starts) if type(rows) is RowList else ((rows,), (0,))
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
        positions.append(starts[number] + offset)
        offset += 1
    return positions


def _own_last_chunk(rows: list | RowList) -> RowList:
    """A new RowList of the rows of `rows` (not modified), sharing its chunks but a
    partly filled last one, which it copies: a batch may grow that one in place."""
    if type(rows) is not RowList:
        return RowList(_chunked(rows), len(rows))
    chunks = rows._chunks
    if chunks and len(chunks[-1]) < CHUNK:
        chunks = (*chunks[:-1], chunks[-1].copy())
    return RowList(chunks, rows._length, rows._starts)


def _made_here(made: RowList, rows: list | RowList) -> set[int]:
    """The numbers of the chunks of `made` (from `_own_last_chunk(rows)`) that are its own."""
    if type(rows) is not RowList:
        return set(range(len(made._chunks)))   # sliced from a plain list: all new
    chunks = made._chunks
    return {len(chunks) - 1} if chunks and chunks[-1] is not rows._chunks[-1] else set()


def _chunked(rows: list | RowList) -> tuple[list, ...]:
    return tuple(rows[start:start + CHUNK] for start in range(0, len(rows), CHUNK))


def _starts_of(chunks: tuple[list, ...]) -> tuple[int, ...]:
    return tuple(accumulate(map(len, chunks[:-1]), initial=0)) if chunks else ()


def encode_default(value: object) -> list:
    """orjson's `default`: a RowList as the list it stands for; TypeError for anything else."""
    if type(value) is RowList:
        return list(value)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
