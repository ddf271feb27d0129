"""Reading an object's files through the document cache: a snapshot, plus a table's journal.

`CachedReader.load(path, key)` is the one way the store reads what is on
disk (engine/storage/store.py adds, on top of it, what a statement's open
batch wrote or already read). A file is decoded only when its signature
`(inode, mtime, size)` -- a table's journal's too -- changed since the
cached version (engine/storage/document_cache.py); a journal that only grew
is applied from where the cached version stopped reading it. A file that
cannot be read or decoded, or whose journal does not apply, is a
`StorageFault` (read); a path that leads outside the data directory
(symlink) is refused.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

from engine.errors import StorageFault, TahiryError
from engine.storage import journal
from engine.storage.document_cache import DocumentCache, derive_memo, file_signature
from engine.storage.object_format import FORMAT_VERSION, READABLE_FORMATS

# At most this many journal paths are memorised (then the memo starts over).
JOURNAL_PATH_ENTRIES = 4096

log = logging.getLogger(__name__)

def _stat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


class CachedReader:
    """Decoded documents of one data directory, read through `cache`."""

    def __init__(self, root: Path, cache: DocumentCache):
        self.root = root
        self._real_root = os.path.realpath(root)
        self._cache = cache
        self._journal_paths: dict[str, str | None] = {}

    def check_contained(self, path: Path) -> None:
        """Refuse paths that resolve (through symlinks) outside the root."""
        real = os.path.realpath(path)
        if not real.startswith(self._real_root + os.sep):
            raise TahiryError(
                f"Ny rakitra {path.relative_to(self.root)} dia manondro ivelan'ny "
                f"lahatahiry data (symlink), tsy ekena")

    def load(self, path: Path, key: str) -> tuple[dict, dict] | None:
        """(document, memo) of the object at `path` (`key` is `str(path)`) through the cache, or None.

        A table is its snapshot plus the chained entries of its journal
        (engine/storage/journal.py); the cache signature covers both files, and a
        journal that only grew since the cached version is applied from
        where the cached version stopped reading it.
        """
        try:
            stat = os.stat(key)   # `key` is the path as a string: no conversion per call
        except (FileNotFoundError, NotADirectoryError):
            self._cache.forget(key)
            return None
        journal_file = self._journal_of(path, key)
        journal_stat = _stat_or_none(journal_file) if journal_file is not None else None
        signature = file_signature(stat, journal_stat, journal_file is not None)
        cached = self._cache.get(key, signature)
        if cached is not None:
            return cached
        if journal_file is not None and journal_stat is not None:
            extended = self._extend_cached(key, path, journal_file, signature)
            if extended is not None:
                return extended
        self.check_contained(path)
        try:
            document, stat = self._read_snapshot(path)
        except (FileNotFoundError, NotADirectoryError):
            self._cache.forget(key)
            return None
        applied: tuple[int, int] | None = None   # the journal's (inode, bytes applied)
        if journal_file is not None and not document.get("dropped", False):
            found = journal.read(journal_file)
            if found is not None:
                reading, journal_stat = found
                entries = journal.chained(reading.entries, document["change"])
                if entries:
                    document = self._applied(path, document, entries)
                # What was applied ends at `reading.end` (a torn or growing tail is not).
                applied = (journal_stat.st_ino, reading.end)
        memo = self._cache.remember(
            key, file_signature(stat, applied, journal_file is not None), document)
        return document, memo

    def _journal_of(self, path: Path, key: str) -> str | None:
        """A table's journal path; None for objects that have none (views, domains, markers).

        Memorised by path: a point read stats the journal beside its table,
        and building that path each time cost a fifth of the read.
        """
        if key in self._journal_paths:
            return self._journal_paths[key]
        if len(self._journal_paths) >= JOURNAL_PATH_ENTRIES:
            self._journal_paths.clear()
        found = self._journal_paths[key] = (
            str(journal.journal_path(path)) if path.parent.name == "tables" else None)
        return found

    def _read_snapshot(self, path: Path) -> tuple[dict, os.stat_result]:
        """The decoded snapshot at `path` and the stat of what was read (StorageFault if bad)."""
        try:
            with open(path, "rb") as handle:
                # The signature of what is actually read (the file may have
                # been replaced since the stat above).
                stat = os.fstat(handle.fileno())
                data = handle.read()
            document = orjson.loads(data)
        except (FileNotFoundError, NotADirectoryError):
            raise
        except (orjson.JSONDecodeError, OSError) as error:
            log.error("cannot read %s: %s", path, error)
            rel = str(path.relative_to(self.root))
            reason = (f"corrupt: {error}" if isinstance(error, orjson.JSONDecodeError)
                      else f"unreadable: {error.strerror or error}")
            raise StorageFault(f"Simba na tsy voavaky ny rakitra {rel}", rel, "read", reason) from None
        if not isinstance(document, dict):
            rel = str(path.relative_to(self.root))
            raise StorageFault(f"Simba ny rakitra {rel}", rel, "read", "corrupt: not a JSON object")
        if document.get("format") not in READABLE_FORMATS:
            rel = str(path.relative_to(self.root))
            raise StorageFault(
                f"Ny rakitra {rel} dia manana format tsy fantatra "
                f"({document.get('format')!r}, {FORMAT_VERSION} no fantatra)",
                rel, "read", f"unknown format {document.get('format')!r}")
        return document, stat

    def _applied(self, path: Path, document: dict, entries: list[journal.Entry]) -> dict:
        """A new document: `document` with journal `entries` applied (StorageFault if one does not fit)."""
        try:
            rows = journal.apply(document["rows"], [op for entry in entries for op in entry.ops],
                                 len(document["columns"]))
        except (journal.JournalError, KeyError, TypeError) as error:
            rel = str(path.relative_to(self.root))
            log.error("journal of %s does not apply: %s", rel, error)
            raise StorageFault(f"Simba ny diarin'ny rakitra {rel}", rel, "read",
                               f"corrupt journal: {error}") from None
        return {**document, "change": entries[-1].change, "rows": rows}

    def _extend_cached(self, key: str, path: Path, journal_file: str,
                       signature: tuple) -> tuple[dict, dict] | None:
        """The cached version with the journal's new entries applied, if only the journal grew."""
        peeked = self._cache.peek_entry(key)
        if peeked is None:
            return None
        old, document, old_memo = peeked
        if len(old) != 5 or old[:2] != signature[:2] or old[3] != signature[3] \
                or old[4] > signature[4] or document.get("dropped", False):
            return None
        found = journal.read(journal_file, old[4])
        if found is None:
            return None
        reading, journal_stat = found
        if journal_stat.st_ino != old[3]:
            return None
        entries = journal.chained(reading.entries, document["change"])
        if not entries or entries[0].change != document["change"] + 1 \
                or reading.entries[0].change != entries[0].change:
            return None  # not a plain continuation of what is cached: read it all
        extended = self._applied(path, document, entries)
        # A replica's version grown by shipped lines keeps what readers derived
        # from the previous one (equality indexes), as the writer's commit does.
        ops = [op for entry in entries for op in entry.ops]
        memo = self._cache.remember(key, (*old[:2], old[2] - old[4] + reading.end, old[3],
                                          reading.end), extended,
                                    derive_memo(old_memo, extended, ops))
        return extended, memo
