"""One copy of an object in one data directory: its version (cheaply), or read whole and checked.

Storage format 2 (docs/STORAGE.md): an object is its snapshot (`<rel>`,
a whole document) and, for a table, the journal beside it
(`<db>/tables/<t>.journal`, engine/storage/journal.py). The copy's version is the
change of the last journal entry chained onto the snapshot, or the
snapshot's own change when none is; a tombstone ignores its journal. The
store's fence and pull, the replicator and the test helpers all ask this
module, so "which version does this copy hold?" has one answer:

- `version_of(root, rel) -> ObjectVersion | None`: cheap, for a commit's
  fence and pull on write: the snapshot's header (its first 512 bytes, the
  whole file only when it does not start with the compact header) and the
  journal's last valid line (its checksum and its `change`); the chain is
  not checked (it may say more than a damaged copy holds, never less);
- `probe(root, rel, reaching=None) -> Probe | None`: the version with the
  tail's details (its entries, the chain as far as the tail shows it, where
  the valid part ends, torn or damaged) for engine/storage/object_copy.py;
- `read_state(root, rel, previous=None) -> CopyState | None`: the copy read
  whole and checked: the snapshot with `check_document`, every journal
  entry (checksum, chain, and whether its ops fit the rows, on counts). With
  the `previous` state of the same copy, a journal that only grew is read
  from where that state ended: cost of the change, not of the table
  (`CopyStates` remembers the last states);
- `materialize(root, rel) -> Materialized | None`: the document at the
  copy's version (the snapshot with its chained entries applied);
- `same_content(...)`: whether two copies at one version hold the same
  object: the journal line of that version when both have it (certified:
  the same bytes everywhere), else the materialized documents without their
  `format` key; `same_by_digest` and `content_digest` are its two halves
  for copies on two machines (`.peer digest` answers them);
- `check_copy(rel, snapshot, lines)`: a copy received as bytes checked as
  `read_state` checks one on disk (a repair fetched over the network).

A journal is **torn** when invalid bytes end it with no valid line after
them (a crash in the middle of an append: the owner cuts them, they are
never applied nor shipped) and **damaged** when a valid line follows an
invalid one, or a valid entry beyond the version does not chain onto it, or
an entry does not fit the rows: the copy is still valid at its version (the
part a store reads), and the rest is for the replicator to keep aside and
cut (supervisor/replication.py).

Every read walks down without following symlinks (engine/storage/nofollow.py).
Raises ObjectRefused (a symlink on the way), InvalidDocument (a snapshot
that is not a document; `read_state` raises CorruptObject, which carries
the version read), OSError.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, TypeVar

import orjson

from engine.errors import EngineError
from engine.storage import journal
from engine.storage.journal import Entry, JournalError
from engine.storage.nofollow import FileSignature, folder_of, open_in, read_all, read_in, stat_in
from engine.storage.object_format import (
    InvalidDocument,
    check_document,
    check_header,
    decode_document,
    kind_and_name,
)
from engine.storage.row_list import encode_default

HEADER_BYTES = 512
# The compact header the store writes (formats 1 and 2 alike); any other
# layout is parsed whole and judged by object_format.check_header.
_HEADER_RE = re.compile(rb'\{"format":([12]),"kind":"[a-z]+","name":"[^"\\]*","change":(\d+),'
                        rb'"dropped":(true|false)[,}]')
# How a journal line starts (engine/storage/journal.py encode_entry): its version, read
# without decoding the ops (a bulk insert's line can be megabytes).
_ENTRY_CHANGE_RE = re.compile(rb'\{"change":(\d+),')
# The first window read from a journal's end (four times more each time it is not enough):
# a few lines of a usual table; every line in it is parsed, so a larger window
# costs every probe (about 3 us a line) and a copy probes three times.
PROBE_BYTES = 512
# A copy read again while a checkpoint replaced its snapshot: at most this many tries.
CONSISTENT_READS = 4
DIGEST_BYTES = 16


class KeptChanging(OSError, EngineError):
    """A copy was rewritten every time it was read (a busy writer): not a failure, read it again later."""


class CorruptObject(InvalidDocument):
    """A snapshot that was read whole and is not a valid document.

    `signature` and `data` are those of the version that was read: a repair
    must replace that version, never a newer one written meanwhile.
    """

    def __init__(self, invalid: InvalidDocument, signature: FileSignature, data: bytes):
        super().__init__(invalid.where, invalid.reason)
        self.signature = signature
        self.data = data


# --------------------------------------------------------------------------
# paths


def journal_rel(rel: str) -> str | None:
    """`<db>/tables/<t>.journal` for the table `<db>/tables/<t>.json`; None for other objects."""
    parts = rel.split("/")
    if len(parts) == 3 and parts[1] == "tables" and parts[2].endswith(".json"):
        return f"{parts[0]}/tables/{parts[2][:-len('.json')]}{journal.JOURNAL_SUFFIX}"
    return None


def object_of_journal(parts: list[str]) -> list[str] | None:
    """The path components of the table whose journal `parts` names; None if it names none."""
    if len(parts) == 3 and parts[1] == "tables" and journal.is_journal_file(parts[2]) \
            and len(parts[2]) > len(journal.JOURNAL_SUFFIX):
        return [parts[0], "tables", parts[2][:-len(journal.JOURNAL_SUFFIX)] + ".json"]
    return None


def _name(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


# --------------------------------------------------------------------------
# the cheap version


@dataclass(frozen=True)
class ObjectVersion:
    """A copy's version as `version_of` reads it."""

    change: int            # the version: the last chained journal entry, else the snapshot's
    snapshot_change: int   # the snapshot's own change
    dropped: bool          # a tombstone (its journal, if any, is stale)


@dataclass(frozen=True)
class Tail:
    """The end of a journal, as far back as it was read."""

    entries: list[Entry]   # the valid entries of the window, in order, up to the first bad line
    start: int             # offset of the window's first complete line (0: the whole journal)
    end: int               # offset just after the last valid entry of the window
    size: int              # the journal's size when read
    chain: list[Entry]     # the entries chained onto the snapshot, as far as the window shows
    torn: bool             # invalid bytes after `end`, no valid line among them
    damaged: str | None    # why the part after the version is not a torn tail

    def line_of(self, change: int) -> bytes | None:
        """The journal line of version `change` if the window holds it in the chain."""
        for entry in self.chain:
            if entry.change == change:
                return entry.line
        return None


@dataclass(frozen=True)
class Probe:
    """What `version_of` reads, with the files' signatures and the journal's tail."""

    version: ObjectVersion
    snapshot: FileSignature
    journal: FileSignature | None   # None: no journal file
    tail: Tail | None               # None: no journal, or not a table, or a tombstone


def version_of(root: str | os.PathLike, rel: str | os.PathLike) -> ObjectVersion | None:
    """The version of the copy of object `rel` in data directory `root`; None if it has no snapshot.

    Cheap, read without following symlinks: the snapshot's header and the
    journal's last valid line (its checksum, then only its `change`; a torn
    tail is stepped over), whatever the table's or the journal's size. A
    commit's fence asks it of every written object on every peer. The chain
    is not checked: a damaged journal (a gap, an invalid line before valid
    ones) makes it say more than the copy holds, so a copy found ahead
    should be confirmed with `read_state` before acting on it (it never says
    less). Raises ObjectRefused (a symlink: an OSError), InvalidDocument (a
    snapshot whose header does not read), OSError.
    """
    rel = os.fspath(rel)
    journal_name = journal_rel(rel)
    with folder_of(root, rel) as folder:
        if folder is None:
            return None
        header = _snapshot_header(folder, rel)
        if header is None:
            return None
        _, change, dropped = header
        if journal_name is None or dropped:
            return ObjectVersion(change, change, dropped)
        descriptor = open_in(folder, _name(journal_name), journal_name)
        if descriptor is None:
            return ObjectVersion(change, change, dropped)
        try:
            last = _last_change(descriptor, os.fstat(descriptor).st_size)
        finally:
            os.close(descriptor)
    return ObjectVersion(max(change, last or 0), change, dropped)


def _last_change(descriptor: int, size: int) -> int | None:
    """The change of the journal's last valid line (None: no valid line), read from the end."""
    window = PROBE_BYTES
    while True:
        start = max(0, size - window)
        lines = os.pread(descriptor, size - start, start).split(b"\n")
        # The last piece follows the last newline (a torn line, or nothing);
        # the first may have started before the window.
        for raw in reversed(lines[:-1] if start == 0 else lines[1:-1]):
            change = _line_change(raw + b"\n")
            if change is not None:
                return change
        if start == 0:
            return None
        window *= 4


def _line_change(line: bytes) -> int | None:
    """The change of one valid journal line (journal.decode_line without decoding the ops)."""
    body = journal.checked_body(line)
    if body is None:
        return None
    match = _ENTRY_CHANGE_RE.match(body)
    if match is not None:
        return int(match.group(1))
    entry = journal.decode_line(line)
    return entry.change if entry is not None else None


def probe(root: Path, rel: str, reaching: int | None = None) -> Probe | None:
    """`version_of` with details; `reaching`: read back until the tail holds that entry."""
    journal_name = journal_rel(rel)
    with folder_of(root, rel) as folder:
        if folder is None:
            return None
        header = _snapshot_header(folder, rel)
        if header is None:
            return None
        snapshot_stat, change, dropped = header
        snapshot = FileSignature.of(snapshot_stat)
        if journal_name is None:
            return Probe(ObjectVersion(change, change, dropped), snapshot, None, None)
        descriptor = open_in(folder, _name(journal_name), journal_name)
        if descriptor is None:
            return Probe(ObjectVersion(change, change, dropped), snapshot, None, None)
        try:
            journal_stat = os.fstat(descriptor)
            tail = None if dropped else read_tail(descriptor, journal_stat.st_size, change,
                                                  reaching)
        finally:
            os.close(descriptor)
    version = tail.chain[-1].change if tail is not None and tail.chain else change
    return Probe(ObjectVersion(version, change, dropped), snapshot,
                 FileSignature.of(journal_stat), tail)


def _snapshot_header(folder: int, rel: str) -> tuple[os.stat_result, int, bool] | None:
    """(stat, change, dropped) of the snapshot of `rel` in the open `folder`; None if there is none."""
    descriptor = open_in(folder, _name(rel), rel)
    if descriptor is None:
        return None
    try:
        return (os.fstat(descriptor), *_read_header(descriptor, rel))
    finally:
        os.close(descriptor)


def _read_header(descriptor: int, rel: str) -> tuple[int, bool]:
    """(change, dropped) of the snapshot open at `descriptor` (at offset 0)."""
    head = os.read(descriptor, HEADER_BYTES)
    match = _HEADER_RE.match(head)
    if match is not None:
        return int(match.group(2)), match.group(3) == b"true"
    header = check_header(decode_document(head + read_all(descriptor), rel), rel)
    return header["change"], bool(header.get("dropped", False))


def read_tail(descriptor: int, size: int, base: int, reaching: int | None = None) -> Tail:
    """The last lines of the journal open at `descriptor` (`size` bytes), on top of snapshot `base`.

    Reads PROBE_BYTES, four times more each time the window holds no whole
    line, or (with `reaching`) its first entry is still above `reaching`.
    """
    window = PROBE_BYTES
    while True:
        start = max(0, size - window)
        data = os.pread(descriptor, size - start, start)
        if start:
            cut = data.find(b"\n")
            if cut < 0 or cut + 1 >= len(data):
                window *= 4  # one line longer than the window: read further back
                continue
            data, start = data[cut + 1:], start + cut + 1
        reading = journal.parse(data, start)
        if start and reaching is not None and (
                not reading.entries or reading.entries[0].change > reaching):
            window *= 4
            continue
        break
    whole = start == 0
    chain = _chain(reading.entries, base, whole)
    damaged = _damage(reading.entries, chain, base, data[reading.end - start:])
    return Tail(reading.entries, start, reading.end, size, chain,
                reading.torn and damaged is None, damaged)


def _chain(entries: list[Entry], base: int, whole: bool) -> list[Entry]:
    """The entries chained onto version `base` (engine/storage/journal.py `chained`).

    When the window does not start at the journal's beginning, its first
    entry above `base` is trusted to continue the part not read.
    """
    if whole:
        return journal.chained(entries, base)
    chain: list[Entry] = []
    expected = None
    for entry in entries:
        if expected is None:
            if entry.change <= base:
                continue
            expected = entry.change
        if entry.change < expected:
            continue
        if entry.change != expected:
            break
        chain.append(entry)
        expected += 1
    return chain


def _damage(entries: list[Entry], chain: list[Entry], base: int, rest: bytes) -> str | None:
    """Why what follows the chain is more than a torn tail (None: it is not)."""
    version = chain[-1].change if chain else base
    chained = {id(entry) for entry in chain}
    for entry in entries:
        if entry.change > version and id(entry) not in chained:
            return f"entry {entry.change} does not chain onto version {version}"
    lines = rest.split(b"\n")[:-1]
    for index, line in enumerate(lines):
        if index and journal.decode_line(line + b"\n") is not None:
            return "a valid entry follows an invalid line"
    return None


# --------------------------------------------------------------------------
# the copy read whole


@dataclass(frozen=True)
class CopyState:
    """One valid copy read whole and checked, summarised (no rows kept)."""

    version: int
    snapshot_change: int
    dropped: bool
    snapshot: FileSignature
    snapshot_digest: bytes
    journal: FileSignature | None   # None: no journal file (or not a table)
    journal_end: int                # where its usable part ends: a cut there leaves it whole
    line_digest: bytes | None       # digest of the journal line of `version` (None: the snapshot's)
    width: int                      # a live table's column count
    rows: int                       # its row count at `version`
    torn: bool                      # a torn tail after `journal_end`
    damaged: str | None             # see the module docstring

    @property
    def identity(self) -> tuple[str, bytes]:
        """Equal identities: the same content (a differing one may still hold it)."""
        if self.line_digest is not None:
            return "line", self.line_digest
        return "snapshot", self.snapshot_digest

    @property
    def extendable(self) -> bool:
        """Whether what is appended later can be read from `journal_end` on.

        A torn tail is no obstacle: it may be an append read half done, and
        it is read again from its start.
        """
        return not self.dropped and self.damaged is None


@dataclass(frozen=True)
class _Files:
    """A copy's files, read consistently (the snapshot unchanged across the journal read)."""

    snapshot: bytes
    snapshot_stat: os.stat_result
    document: dict
    journal: bytes | None
    journal_stat: os.stat_result | None


def read_state(root: str | os.PathLike, rel: str | os.PathLike,
               previous: CopyState | None = None) -> CopyState | None:
    """The copy of `rel` in `root` read whole and checked; None if it has no snapshot.

    With `previous` (this copy's last state): unchanged files return it as
    is, and a journal that only grew is read from `previous.journal_end`.
    Raises CorruptObject (the snapshot is not a valid document),
    ObjectRefused, OSError.
    """
    rel = os.fspath(rel)
    journal_name = journal_rel(rel)
    with folder_of(root, rel) as folder:
        if folder is None:
            return None
        if previous is not None:
            snapshot_stat = stat_in(folder, _name(rel), rel)
            if snapshot_stat is None:
                return None
            if FileSignature.of(snapshot_stat) == previous.snapshot:
                extended = _extend(folder, rel, journal_name, previous)
                if extended is not None:
                    return extended
        files = _read_files(folder, rel, journal_name)
    return None if files is None else _summarise(rel, files)


K = TypeVar("K", bound=Hashable)


class CopyStates(Generic[K]):
    """Copies read whole, remembered by key, so that reading one again costs its change
    (`read_state` with its last state). Thread-safe; at most `limit` remembered (all
    forgotten past it: a forgotten copy only costs one whole reading). The replicator keys
    them by (server, object), a server's `.peer digest` by object."""

    def __init__(self, limit: int = 1 << 20):
        self._lock = threading.Lock()
        self._states: dict[K, CopyState] = {}
        self._limit = limit

    def read(self, key: K, root: str | os.PathLike, rel: str) -> CopyState | None:
        """`read_state(root, rel)` from the state remembered under `key`; raises as it does
        (and forgets that state)."""
        with self._lock:
            previous = self._states.get(key)
        try:
            found = read_state(root, rel, previous)
        except BaseException:
            with self._lock:
                self._states.pop(key, None)
            raise
        with self._lock:
            if found is None:
                self._states.pop(key, None)
            else:
                if len(self._states) >= self._limit and key not in self._states:
                    self._states.clear()
                self._states[key] = found
        return found

    def forget(self, which: Callable[[K], bool]) -> None:
        with self._lock:
            for key in [key for key in self._states if which(key)]:
                del self._states[key]


def _extend(folder: int, rel: str, journal_name: str | None,
            previous: CopyState) -> CopyState | None:
    """`previous` moved on by the lines appended since (None: read the copy whole)."""
    if journal_name is None:
        return previous
    journal_stat = stat_in(folder, _name(journal_name), journal_name)
    signature = FileSignature.of(journal_stat) if journal_stat is not None else None
    if signature == previous.journal:
        return previous
    if previous.dropped:
        return replace(previous, journal=signature)
    if signature is None or not previous.extendable:
        return None
    # Appends keep the inode and grow the size; anything else (a cut, a file
    # replaced or rewritten in place) is read whole.
    if previous.journal is not None and (signature.inode != previous.journal.inode
                                         or signature.size <= previous.journal.size):
        return None
    descriptor = open_in(folder, _name(journal_name), journal_name)
    if descriptor is None:
        return None
    try:
        journal_stat = os.fstat(descriptor)
        offset = previous.journal_end
        data = os.pread(descriptor, max(0, journal_stat.st_size - offset), offset)
    finally:
        os.close(descriptor)
    if journal_stat.st_ino != signature.inode:
        return None
    return _with_journal(previous, data, offset, FileSignature.of(journal_stat),
                         previous.version, previous.rows)


def _read_files(folder: int, rel: str, journal_name: str | None) -> _Files | None:
    kind, name = kind_and_name(rel)
    for _ in range(CONSISTENT_READS):
        found = read_in(folder, _name(rel), rel)
        if found is None:
            return None
        data, snapshot_stat = found
        try:
            document = check_document(data, rel, kind, name)
        except InvalidDocument as invalid:
            raise CorruptObject(invalid, FileSignature.of(snapshot_stat), data) from None
        journal_found = read_in(folder, _name(journal_name), journal_name) \
            if journal_name is not None else None
        # A checkpoint renames a new snapshot, then removes the journal: the
        # snapshot unchanged after the journal was read means they belong together.
        again = stat_in(folder, _name(rel), rel)
        if again is not None and FileSignature.of(again) == FileSignature.of(snapshot_stat):
            journal_data, journal_stat = journal_found if journal_found else (None, None)
            return _Files(data, snapshot_stat, document, journal_data, journal_stat)
    raise KeptChanging(errno.EAGAIN, f"{rel}: its snapshot kept changing while it was read")


def _summarise(rel: str, files: _Files) -> CopyState:
    return _summarised(files.document, files.snapshot, FileSignature.of(files.snapshot_stat),
                       files.journal, FileSignature.of(files.journal_stat)
                       if files.journal_stat is not None else None)


def _summarised(document: dict, snapshot: bytes, snapshot_signature: FileSignature,
                journal_data: bytes | None, journal_signature: FileSignature | None) -> CopyState:
    dropped = bool(document.get("dropped", False))
    live_table = document["kind"] == "table" and not dropped
    state = CopyState(version=document["change"], snapshot_change=document["change"],
                      dropped=dropped, snapshot=snapshot_signature,
                      snapshot_digest=digest(snapshot), journal=None, journal_end=0,
                      line_digest=None,
                      width=len(document["columns"]) if live_table else 0,
                      rows=len(document["rows"]) if live_table else 0, torn=False, damaged=None)
    if journal_data is None or not live_table:
        return replace(state, journal=journal_signature)
    return _with_journal(state, journal_data, 0, journal_signature, document["change"],
                         state.rows)


# A copy received as bytes has no file yet: its signatures are this.
NO_FILE = FileSignature(0, 0, 0)


def check_copy(rel: str, snapshot: bytes, lines: bytes) -> CopyState:
    """A whole copy received as bytes (a snapshot and its journal lines, from another machine)
    checked as `read_state` checks one on disk: InvalidDocument unless the snapshot is a valid
    document and every line chains and fits (no torn or damaged part)."""
    kind, name = kind_and_name(rel)
    document = check_document(snapshot, rel, kind, name)
    state = _summarised(document, snapshot, NO_FILE, lines or None, None)
    if state.torn or state.damaged is not None:
        raise InvalidDocument(rel, f"its journal lines do not all apply "
                                   f"({state.damaged or 'a torn line'})")
    return state


def _with_journal(state: CopyState, data: bytes, offset: int, signature: FileSignature | None,
                  base: int, rows: int) -> CopyState:
    """`state` with journal bytes `data` (from `offset`) read on top of version `base`."""
    reading = journal.parse(data, offset)
    chain = journal.chained(reading.entries, base)
    fitting, rows, misfit = _fitting(chain, rows, state.width)
    version = fitting[-1].change if fitting else base
    damaged = misfit or _damage(reading.entries, fitting, base, data[reading.end - offset:])
    end = _usable_end(reading.entries, offset, fitting, base) if damaged is not None \
        else reading.end
    line_digest = digest(fitting[-1].line) if fitting else (
        state.line_digest if version == state.version else None)
    return replace(state, version=version, journal=signature, journal_end=end,
                   line_digest=line_digest, rows=rows,
                   torn=reading.torn and damaged is None, damaged=damaged)


def _fitting(chain: list[Entry], rows: int, width: int) -> tuple[list[Entry], int, str | None]:
    """The chained entries whose ops fit, the row count after them, why the next did not."""
    for index, entry in enumerate(chain):
        try:
            rows = journal.check_ops(entry.ops, rows, width)
        except JournalError as error:
            return chain[:index], rows, f"entry {entry.change} does not apply: {error}"
    return chain, rows, None


def _usable_end(entries: list[Entry], offset: int, fitting: list[Entry], base: int) -> int:
    """Offset just before the first entry that is neither chained and fitting nor stale.

    That is where the damage starts (after the last entry when it is an
    invalid line): a cut there leaves the copy whole at its version.
    """
    kept = {id(entry) for entry in fitting}
    expected = base + 1
    position = offset
    for entry in entries:
        if id(entry) in kept:
            expected += 1
        elif entry.change >= expected:
            return position
        position += len(entry.line)
    return position


# --------------------------------------------------------------------------
# the document at the copy's version


@dataclass(frozen=True)
class WholeCopy:
    """A copy read whole and checked, with what it is made of (for a copy or a comparison)."""

    state: CopyState
    snapshot: bytes        # the snapshot's bytes
    document: dict         # the snapshot decoded
    entries: list[Entry]   # the chained entries up to the version (the lines to ship)


def read_copy(root: Path, rel: str) -> WholeCopy | None:
    """The copy of `rel` in `root` read whole: its state, snapshot and chained entries.

    Only valid parts: the entries are those the version counts (never a
    torn or damaged part). Raises CorruptObject, ObjectRefused, OSError.
    """
    with folder_of(root, rel) as folder:
        if folder is None:
            return None
        files = _read_files(folder, rel, journal_rel(rel))
    if files is None:
        return None
    state = _summarise(rel, files)
    entries: list[Entry] = []
    if state.version != state.snapshot_change:
        chain = journal.chained(journal.parse(files.journal or b"").entries,
                                state.snapshot_change)
        entries = [entry for entry in chain if entry.change <= state.version]
    return WholeCopy(state, files.snapshot, files.document, entries)


@dataclass(frozen=True)
class Materialized:
    """A copy's object as a store reads it: the snapshot with its chained entries applied."""

    version: int
    document: dict        # `change` is the version; a table's rows are the applied ones
    damaged: str | None   # what was not applied (see CopyState)
    torn: bool


def materialize(root: Path, rel: str) -> Materialized | None:
    """The document of the copy of `rel` in `root` at its version; None if it has no snapshot.

    Raises CorruptObject, ObjectRefused, OSError.
    """
    copy = read_copy(root, rel)
    if copy is None:
        return None
    document = copy.document
    if copy.entries:
        rows = document["rows"]
        for entry in copy.entries:
            rows = journal.apply(rows, entry.ops, copy.state.width)
        document = {**document, "change": copy.state.version, "rows": rows}
    return Materialized(copy.state.version, document, copy.state.damaged, copy.state.torn)


def current_document(snapshot: str | os.PathLike) -> dict | None:
    """The object stored at `snapshot` (`<data>/<db>/<folder>/<name>.json`) as it is now.

    A table with its journal applied; None if there is no file. For people
    and tests that look at a data directory from outside a store.
    """
    snapshot = Path(snapshot)
    root = snapshot.parents[2] if snapshot.name != "database.json" else snapshot.parents[1]
    found = materialize(root, str(snapshot.relative_to(root)))
    return found.document if found is not None else None


def without_format(document: dict) -> dict:
    """The document less its `format` key: formats 1 and 2 of one content are the same object."""
    return {key: value for key, value in document.items() if key != "format"}


@dataclass(frozen=True)
class CopyDigest:
    """What says cheaply whether two copies at one version hold the same object: their
    version, and the digest of the journal line of that version (None: the snapshot's)."""

    version: int
    line_digest: bytes | None
    snapshot_digest: bytes

    @classmethod
    def of(cls, state: CopyState) -> CopyDigest:
        return cls(state.version, state.line_digest, state.snapshot_digest)


def same_by_digest(first: CopyDigest, second: CopyDigest) -> bool | None:
    """Whether two copies hold the same object, from their digests; None: only their
    documents can tell (one checkpointed, the other not; a format 1 and a format 2 file).

    Same version required. Both with the journal line of that version: the
    lines compared (certified, so the same bytes everywhere). Otherwise the
    same snapshot bytes.
    """
    if first.version != second.version:
        return False
    if first.line_digest is not None and second.line_digest is not None:
        return first.line_digest == second.line_digest
    if first.line_digest is None and second.line_digest is None \
            and first.snapshot_digest == second.snapshot_digest:
        return True
    return None


def content_digest(root: Path, rel: str, version: int) -> bytes | None:
    """The digest of the object the copy of `rel` in `root` holds at `version` (its
    materialized document without `format`, keys sorted); None if it is at another version.

    Equal digests: equal documents, whatever shape each copy has on disk. Costs the
    table (the snapshot read and its lines applied), like `same_content`'s last resort.
    Raises CorruptObject, ObjectRefused, OSError.
    """
    found = materialize(root, rel)
    if found is None or found.version != version:
        return None
    return digest(orjson.dumps(without_format(found.document), default=encode_default,
                               option=orjson.OPT_SORT_KEYS))


def same_content(first_root: Path, first: CopyState, second_root: Path, second: CopyState,
                 rel: str) -> bool | None:
    """Whether two copies of `rel` hold the same object; None if one moved since its state was read.

    `same_by_digest` when their digests tell; else the materialized
    documents without `format` compared.
    """
    told = same_by_digest(CopyDigest.of(first), CopyDigest.of(second))
    if told is not None:
        return told
    try:
        first_copy = materialize(first_root, rel)
        second_copy = materialize(second_root, rel)
    except (InvalidDocument, JournalError, OSError):
        return None
    if (first_copy is None or second_copy is None
            or first_copy.version != first.version or second_copy.version != first.version):
        return None
    return without_format(first_copy.document) == without_format(second_copy.document)
