"""A table's journal: its row changes since the last snapshot, one checksummed line per version.

Storage format 2 (docs/STORAGE.md): a table is its snapshot
`<db>/tables/<t>.json` (the whole table, as in format 1) plus, beside it,
`<db>/tables/<t>.journal`, the row changes of every version committed since
that snapshot. A write appends one line and fsyncs it, so its cost is that
of the rows it changed, not of the table; a checkpoint writes a new snapshot
and removes the journal.

One line per version of the table:

    <crc32 of BODY, 8 hex digits> <space> BODY <newline>
    BODY = {"change": N, "ops": [OP, ...]}         (compact JSON)
    OP   = ["append", [ROW, ...]]                  rows added at the end
         | ["set", [[INDEX, ROW], ...]]            rows replaced in place
         | ["remove", [INDEX, ...]]                rows deleted (ascending indexes)

Indexes are positions in the rows as they were before that op. The table at
version N is the snapshot (change S) with every entry S+1 .. N applied in
order; entries at or below S are already in the snapshot and skipped. A line
whose checksum or JSON does not match is a torn tail (a crash in the middle
of an append): reading stops there and nothing after it is applied; the
owner cuts it (`cut_torn_tail`) before it appends again.

Pure functions over bytes and files; no locks, no cache (engine/storage/store.py
decides when to read, append and checkpoint; the replicator ships lines).
"""

from __future__ import annotations

import errno
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import orjson

from engine.errors import EngineError
from engine.storage.atomic_files import write_all
from engine.storage.nofollow import check_regular
from engine.storage.row_list import RowList, rows_plus

JOURNAL_SUFFIX = ".journal"


class JournalError(ValueError, EngineError):
    """An entry that is not a valid change of the table it is applied to."""


def journal_path(snapshot: Path) -> Path:
    """`<t>.json` -> `<t>.journal` (same folder)."""
    return snapshot.with_suffix(JOURNAL_SUFFIX)


def is_journal_file(file_name: str) -> bool:
    return file_name.endswith(JOURNAL_SUFFIX) and not file_name.startswith(".")


@dataclass(frozen=True)
class Entry:
    """One version's changes, with the exact line that carries it (for shipping)."""

    change: int
    ops: list
    line: bytes


def encode_entry(change: int, ops: list) -> bytes:
    """The journal line of version `change`."""
    body = orjson.dumps({"change": change, "ops": ops})
    return b"%08x %s\n" % (zlib.crc32(body), body)


def checked_body(line: bytes) -> bytes | None:
    """The BODY of one complete line (newline included) whose checksum matches, else None."""
    if len(line) < 11 or line[8:9] != b" " or not line.endswith(b"\n"):
        return None
    body = line[9:-1]
    try:
        return body if int(line[:8], 16) == zlib.crc32(body) else None
    except ValueError:
        return None


def decode_line(line: bytes) -> Entry | None:
    """The entry of one complete line (newline included), or None if it is not valid."""
    body = checked_body(line)
    if body is None:
        return None
    try:
        decoded = orjson.loads(body)
    except ValueError:
        return None
    if not isinstance(decoded, dict):
        return None
    change, ops = decoded.get("change"), decoded.get("ops")
    if type(change) is not int or change < 1 or not isinstance(ops, list):
        return None
    return Entry(change, ops, line)


@dataclass(frozen=True)
class Reading:
    """What a journal holds from some offset: its valid entries, and where they end."""

    entries: list[Entry]
    end: int          # offset just after the last valid entry
    torn: bool        # bytes after `end` that are not a valid entry (a torn tail)


def parse(data: bytes, offset: int = 0) -> Reading:
    """The valid entries of `data` (journal bytes that start at `offset`), up to the first bad one."""
    entries: list[Entry] = []
    position = 0
    while position < len(data):
        newline = data.find(b"\n", position)
        if newline < 0:
            break
        entry = decode_line(data[position:newline + 1])
        if entry is None:
            break
        entries.append(entry)
        position = newline + 1
    return Reading(entries, offset + position, position < len(data))


def valid_line_after(data: bytes, position: int) -> bool:
    """Whether a valid entry line follows the invalid bytes at `position` of `data`.

    False: those bytes are a torn tail (a crash in the middle of an append);
    True: the journal is damaged (entries were written after them).
    """
    start = data.find(b"\n", position) + 1
    return start > 0 and holds_valid_line(data, start)


def holds_valid_line(data: bytes, start: int = 0) -> bool:
    """Whether a complete line of `data` from `start` (a line's first byte) is a valid entry."""
    while start < len(data):
        newline = data.find(b"\n", start)
        if newline < 0:
            return False
        if decode_line(data[start:newline + 1]) is not None:
            return True
        start = newline + 1
    return False


def read(path: str | os.PathLike[str], offset: int = 0) -> tuple[Reading, os.stat_result] | None:
    """The journal at `path` from `offset` and the stat of what was read; None if there is none."""
    try:  # not blocking: a FIFO put there must not hold the engine's thread for good
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        stat = os.fstat(descriptor)
        check_regular(os.fspath(path), stat)   # (a FIFO: refused, never read)
        data = os.pread(descriptor, max(0, stat.st_size - offset), offset)
    finally:
        os.close(descriptor)
    return parse(data, offset), stat


def chained(entries: list[Entry], base: int) -> list[Entry]:
    """The entries that apply on top of version `base`, in order (base+1, base+2, ...).

    Entries at or below `base` are skipped (already in the snapshot); the
    chain stops at the first gap.
    """
    result = []
    expected = base + 1
    for entry in entries:
        if entry.change < expected:
            continue
        if entry.change != expected:
            break
        result.append(entry)
        expected += 1
    return result


def check_ops(ops: list, rows: int, width: int) -> int:
    """The row count after `ops` on `rows` rows of `width` values; JournalError if one does not fit.

    On counts only, so a journal can be checked without the table's rows
    (the replicator does); `apply` checks with it first.
    """
    for op in ops:
        if not isinstance(op, list) or len(op) != 2 or not isinstance(op[1], list):
            raise JournalError(f"not an op: {op!r:.80}")
        kind, items = op
        if kind == "append":
            for row in items:
                _check_row(row, width)
            rows += len(items)
        elif kind == "set":
            for item in items:
                if not isinstance(item, list) or len(item) != 2:
                    raise JournalError(f"not an [index, row] pair: {item!r:.80}")
                _check_index(item[0], rows)
                _check_row(item[1], width)
        elif kind == "remove":
            previous = -1
            for index in items:
                _check_index(index, rows)
                if index <= previous:
                    raise JournalError("remove indexes must ascend")
                previous = index
            rows -= len(items)
        else:
            raise JournalError(f"unknown op {kind!r:.40}")
    return rows


def apply(rows: list | RowList, ops: list, width: int) -> list | RowList:
    """New rows: `rows` (not modified) with `ops` applied; JournalError if one does not fit.

    Appends alone are `row_list.rows_plus`: on a table of a chunk or more of
    rows they share its chunks, costing the rows added, not the table.
    """
    check_ops(ops, len(rows), width)
    if all(kind == "append" for kind, _ in ops):
        return rows_plus(rows, [row for _, items in ops for row in items])
    result = list(rows)
    for kind, items in ops:
        if kind == "append":
            result.extend(items)
        elif kind == "set":
            for index, row in items:
                result[index] = row
        else:  # remove
            doomed = set(items)
            result = [row for position, row in enumerate(result) if position not in doomed]
    return result


def _check_index(index, length: int) -> None:
    if type(index) is not int or not 0 <= index < length:
        raise JournalError(f"row index {index!r:.40} out of range (0..{length - 1})")


def _check_row(row, width: int) -> None:
    if not isinstance(row, list) or len(row) != width:
        raise JournalError(f"a row of {width} values expected, got {row!r:.80}")


@dataclass
class Appended:
    """An entry written at the end of a journal whose file is still open.

    The group commit writes the entry holding the commit locks and makes it
    durable after releasing them (`sync`), so that replication and other
    commits never wait for its fsync; then it closes the file.
    """

    size: int        # the journal's size after the entry
    created: bool    # the write created the journal (its folder needs an fsync)
    descriptor: int
    inode: int       # the journal file's (for the cache signature of what was written)

    def sync(self) -> None:
        os.fdatasync(self.descriptor)

    def close(self) -> None:
        os.close(self.descriptor)


class UnappliedBytes(OSError, EngineError):
    """The journal holds valid lines after the bytes the version being written on applied
    (a line damaged under a running store, reads stopping there): an entry appended after
    them would be acknowledged and never read."""


def append_entry(path: Path, line: bytes, applied: tuple[int, int] | None = None) -> Appended:
    """Write one entry line at the end of a journal, not yet durable; the caller syncs and closes.

    `applied`: (the journal's inode, 0 if it had none; the bytes applied) of
    the version the entry is written on, read from the same snapshot. When
    the journal is still that file (or a new one), bytes
    after them that hold no valid line (a torn tail) are cut first, as
    replication does (engine/storage/object_copy.py); bytes that do (a
    damaged line, then valid ones) are left alone: `UnappliedBytes`.
    On a failed write the journal is cut back to its size before it (a torn
    line is never left behind by a failed append), the file is closed and
    OSError is raised.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        opened = os.fstat(descriptor)
        before = opened.st_size
        if applied is not None and applied[0] in (0, opened.st_ino) and before != applied[1]:
            before = _cut_to_applied(path, descriptor, before, applied[1])
        # An empty journal counts as created: its folder is fsynced once more than
        # needed when the file was there, and never missed when it was not
        # (a stat beforehand cost a system call per append).
        created = before == 0
        try:
            write_all(descriptor, line)
        except OSError:
            _cut_back(descriptor, before)
            raise
    except BaseException:
        os.close(descriptor)
        raise
    return Appended(before + len(line), created, descriptor, opened.st_ino)


def _cut_to_applied(path: Path, descriptor: int, size: int, applied: int) -> int:
    """The journal's size once bytes after `applied` that hold no valid line are cut
    (`append_entry`); UnappliedBytes when they hold one, or when the file is shorter."""
    extra = b""
    if size > applied:
        with open(path, "rb") as reader:
            reader.seek(applied)
            extra = reader.read(size - applied)
    if size < applied or holds_valid_line(extra):
        raise UnappliedBytes(errno.EIO, f"{path.name} holds {size} bytes where its version "
                                        f"read {applied}: a damaged line before valid ones")
    os.ftruncate(descriptor, applied)   # a torn tail: the append's fsync makes the cut durable
    return applied


def append_line(path: Path, line: bytes, durable: bool = True) -> tuple[int, bool]:
    """Append one entry line and fsync it; (journal size after it, whether the file was created).

    On failure, the fsync's too, the journal is cut back to its size before
    the write and OSError is raised. The caller fsyncs the folder when the
    file was created.
    """
    appended = append_entry(path, line)
    try:
        if durable:
            try:
                appended.sync()
            except OSError:
                _cut_back(appended.descriptor, appended.size - len(line))
                raise
        return appended.size, appended.created
    finally:
        appended.close()


def _cut_back(descriptor: int, size: int) -> None:
    try:
        os.ftruncate(descriptor, size)
    except OSError:
        pass  # the checksum still cuts it when read


def cut_torn_tail(path: Path) -> int:
    """Truncate a journal to its last valid entry; the bytes cut (0 when whole or absent)."""
    found = read(path)
    if found is None:
        return 0
    reading, stat = found
    if not reading.torn:
        return 0
    with open(path, "r+b") as handle:
        handle.truncate(reading.end)
        handle.flush()
        os.fsync(handle.fileno())
    return stat.st_size - reading.end
