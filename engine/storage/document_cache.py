"""Decoded documents kept in memory, each valid for one version of its file.

An entry is (signature, document, memo) under the file's path, where the
signature is the file's `(st_ino, st_mtime_ns, st_size)`. A reader `stat`s
the file and uses the entry only if the signature is unchanged: a file
replaced by another process (`os.replace` gives a new inode) is seen by the
very next read, and an unchanged file is never decoded twice.

The memo is a dict for what readers derive from that version of the
document (engine/evaluation/catalog.py keeps the `TableData` and its equality indexes
there): it lives and dies with the entry, so nothing derived can outlive a
change of the file. When the store itself makes the next version of a table
from a cached one by known row changes (a commit of journal ops), the new
entry's memo starts from `derive_memo`: each memo value that has a
`successor(document, ops)` method (the `Derivable` protocol) gives its
value for the new version, costing what changed instead of what the table
holds; the rest is derived again on first use, as after any other change.

Bounded by a number of entries and by the bytes of the files on disk (a
proxy for memory; decoded objects and memos take more); the oldest entries
go first. Documents are shared with every reader: nobody may mutate them.
Safe to use from several threads (the server reads on its event loop and
writes on its engine thread): each step is a dict operation, and eviction
tolerates entries removed meanwhile.
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

log = logging.getLogger(__name__)

# (st_ino, st_mtime_ns, bytes on disk, ...): a table adds its journal's
# (st_ino, st_size) (engine/storage/journal.py); the third item is always the bytes.
Signature = tuple[int, ...]



def file_signature(stat, journal_stat, has_journal: bool) -> Signature:
    """The signature of an object's files: its own stat, and a table's journal's.

    `journal_stat`: an `os.stat_result`, an (inode, size) pair, or None (no
    journal file). Objects without journals (views, domains, markers) have
    the plain (inode, mtime, size).
    """
    if not has_journal:
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)
    if journal_stat is None:
        journal_ino, journal_size = 0, 0
    elif isinstance(journal_stat, os.stat_result):
        journal_ino, journal_size = journal_stat.st_ino, journal_stat.st_size
    else:
        journal_ino, journal_size = journal_stat
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size + journal_size, journal_ino, journal_size)


class Derivable(Protocol):
    """A memo value that can give its value for the next version of its document."""

    def successor(self, document: dict, ops: list | tuple) -> object | None:
        """The value for `document`, made from this value's version by the row changes `ops`."""


def derive_memo(memo: dict, document: dict, ops: list | tuple) -> dict:
    """The memo of `document`, a table's version made by `ops` from the version `memo` belongs to.

    Only values with a `successor` method carry over (a None successor is
    left out). Never raises: this runs once the new version is durable, and
    a successor that fails only means that value is derived again on first
    use.
    """
    derived: dict = {}
    for name, value in memo.copy().items():   # a copy: readers may add to it meanwhile
        successor = getattr(value, "successor", None)
        if successor is None:
            continue
        try:
            following = successor(document, ops)
        except Exception:   # a bug there must not turn a durable write into a failure
            log.exception("memo value %r of %s not derived", name, document.get("name"))
            continue
        if following is not None:
            derived[name] = following
    return derived


DEFAULT_CACHE_ENTRIES = 512
DEFAULT_CACHE_BYTES = 512 * 1024 * 1024  # of JSON on disk


class DocumentCache:
    """Path -> (signature, document, memo), bounded by entries and file bytes."""

    def __init__(self, max_entries: int = DEFAULT_CACHE_ENTRIES,
                 max_bytes: int = DEFAULT_CACHE_BYTES):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: dict[str, tuple[Signature, dict, dict]] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def cached_bytes(self) -> int:
        """Bytes (on disk) of the files whose documents are cached."""
        return self._bytes

    def get(self, key: str, signature: Signature) -> tuple[dict, dict] | None:
        """(document, memo) if cached for exactly this signature, else None."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] == signature:
            return entry[1], entry[2]
        return None

    def peek(self, key: str) -> tuple[Signature, dict] | None:
        """(signature, document) cached for `key` whatever the file is now (to extend it)."""
        entry = self._entries.get(key)
        return (entry[0], entry[1]) if entry is not None else None

    def peek_entry(self, key: str) -> tuple[Signature, dict, dict] | None:
        """(signature, document, memo) cached for `key` whatever the file is now.

        To extend a cached version by journal entries with its memo derived
        (`derive_memo`) rather than started afresh.
        """
        return self._entries.get(key)

    def remember(self, key: str, signature: Signature, document: dict,
                 memo: dict | None = None) -> dict:
        """Cache a decoded document with `memo` (a fresh one when None), returned; evict
        beyond the budgets."""
        self.forget(key)
        entries = self._entries
        while entries and (len(entries) >= self.max_entries
                           or self._bytes + signature[2] > self.max_bytes):
            try:
                oldest = next(iter(entries))
            except (StopIteration, RuntimeError):  # changed by another thread meanwhile
                break
            evicted = entries.pop(oldest, None)
            if evicted is not None:
                self._bytes -= evicted[0][2]
        if memo is None:
            memo = {}
        entries[key] = (signature, document, memo)
        self._bytes += signature[2]
        return memo

    def forget(self, key: str) -> None:
        removed = self._entries.pop(key, None)
        if removed is not None:
            self._bytes -= removed[0][2]
