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

Fewer `stat`s (`FolderWatch`, a server's store only): a cached version is
used without `stat`ing its files when nothing happened in their folders
since it was last checked. One non-blocking inotify descriptor per store
watches the data directory, each database folder and its kind folders
(added when an object in them is first checked, before that check's
`stat`). A read first drains it: any event (a file created, written,
renamed, removed, its attributes changed) moves a generation counter on,
and a cache entry is trusted only if it was checked by `stat` at the
current generation. An event about a folder itself (created, renamed or
removed under a watched one, or its own watch gone: IN_MOVE_SELF,
IN_DELETE_SELF, IN_IGNORED) or a lost event (IN_Q_OVERFLOW) starts the
watch over: no entry is trusted until checked again.

Why that sees what a `stat` would: the kernel queues an inotify event
inside the system call that changes the folder or the file (the writer's
rename, append or unlink), before it returns. So a copy another process
(replication, a peer's pull) put in place before a read starts has its
event queued when that read drains the descriptor, and the read `stat`s.
An event that arrives after the drain belongs to a change concurrent with
the read, which may be seen or not, as with a `stat`. The drain and the
generation move under one lock, so a thread never trusts an entry while
another thread has taken the event but not yet counted it.

Limits: inotify sees changes made through this kernel only, so a data
directory on a network filesystem written from another host must not use
it (the store's default is `stat`); nor does it see a file written through
a hard link in another folder, or through a shared memory mapping (nothing
here writes either way: the only link, supervisor/objectfiles.py's corrupt
copy, is never written through); a folder that cannot be watched
(`max_user_watches` reached), or no inotify at all (`max_user_instances`
reached, not Linux), means `stat` on every read, as without it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import struct
import threading
from pathlib import Path
from stat import S_ISDIR

from engine.collector import LASTING_BYTES, lasting_build
from engine.errors import StorageFault, TahiryError
from engine.storage import journal
from engine.storage.document_cache import DocumentCache, derive_memo, file_signature
from engine.storage.nofollow import check_regular
from engine.storage.object_format import (
    FORMAT_VERSION,
    READABLE_FORMATS,
    InvalidDocument,
    check_body,
    check_header,
    decode_document,
)

# At most this many journal paths are memorised (then the memo starts over).
JOURNAL_PATH_ENTRIES = 4096

log = logging.getLogger(__name__)

# inotify(7): the events that change what a `stat` of a file in the folder gives,
# and those that say the folder itself moved or its watch is gone.
_IN_MODIFY, _IN_ATTRIB, _IN_MOVED_FROM, _IN_MOVED_TO = 0x2, 0x4, 0x40, 0x80
_IN_CREATE, _IN_DELETE, _IN_DELETE_SELF, _IN_MOVE_SELF = 0x100, 0x200, 0x400, 0x800
_IN_UNMOUNT, _IN_Q_OVERFLOW, _IN_IGNORED = 0x2000, 0x4000, 0x8000
_IN_ONLYDIR, _IN_DONT_FOLLOW, _IN_ISDIR = 0x01000000, 0x02000000, 0x40000000
_WATCHED = (_IN_MODIFY | _IN_ATTRIB | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
            | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR | _IN_DONT_FOLLOW)
# Events (on a current watch) after which no watch is trusted any more: start over.
_RESTART = _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_UNMOUNT | _IN_IGNORED | _IN_ISDIR
_EVENT = struct.Struct("iIII")


class FolderWatch:
    """Whether anything happened in the watched folders of a data directory since a generation.

    `generation()` drains the inotify descriptor (non-blocking) and gives
    the current generation; `watch(folders)` adds the folders not watched
    yet (False if one cannot be). `open()` gives None when inotify is not
    available: the reader then `stat`s every time. The module docstring
    says why it is exact.
    """

    def __init__(self, libc: ctypes.CDLL, fd: int):
        self._libc = libc
        self._lock = threading.Lock()
        self._generation = 0
        # A file object closes the descriptor when the store goes away.
        self._file = open(fd, "rb", buffering=0, closefd=True)  # noqa: SIM115
        self._poll = select.epoll()
        self._poll.register(fd, select.EPOLLIN)
        self._folders: dict[str, int] = {}    # folder -> its watch descriptor
        self._current: set[int] = set()       # the watch descriptors in `_folders`

    @classmethod
    def open(cls) -> FolderWatch | None:
        """A watch with its own descriptor, or None (no inotify, or no instance left)."""
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            log.warning("no inotify instance (%s): every read stats its files",
                        os.strerror(ctypes.get_errno()))
            return None
        return cls(libc, fd)

    def close(self) -> None:
        self._poll.close()
        self._file.close()

    def generation(self) -> int:
        """The current generation, once every event queued so far is counted."""
        if self._poll.poll(0):
            with self._lock:
                self._drain()
        return self._generation

    def _drain(self) -> None:
        restart = False
        while True:
            # Moved on before the events are taken: a thread that finds the
            # queue empty because they were taken finds the generation moved.
            self._generation += 1
            data = self._file.read(65536)
            if not data:
                break
            at = 0
            while at < len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, at)
                at += _EVENT.size + length
                if mask & _IN_Q_OVERFLOW or (mask & _RESTART and wd in self._current):
                    restart = True
        if restart:
            # Every watch removed (their IN_IGNORED events, of old descriptors,
            # only move the generation): folders are watched afresh when checked.
            for wd in self._current:
                self._libc.inotify_rm_watch(self._file.fileno(), wd)
            self._folders = {}
            self._current = set()
            self._generation += 1

    def watch(self, folders: tuple[str, ...]) -> bool:
        """Watch `folders` (from the data directory down) before they are checked; False if one cannot be."""
        watched = self._folders
        if all(folder in watched for folder in folders):
            return True
        with self._lock:
            watched = self._folders
            for folder in folders:
                if folder in watched:
                    continue
                wd = self._libc.inotify_add_watch(self._file.fileno(), os.fsencode(folder), _WATCHED)
                if wd < 0:
                    return False
                watched[folder] = wd
                self._current.add(wd)
        return True


def _stat_or_none(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


class CachedReader:
    """Decoded documents of one data directory, read through `cache`."""

    def __init__(self, root: Path, cache: DocumentCache, watch: FolderWatch | None = None):
        """`watch`: trust entries checked since the last change in their folders (else `stat` each read)."""
        self.root = root
        self._real_root = os.path.realpath(root)
        self._cache = cache
        self._journal_paths: dict[str, str | None] = {}
        self._watch = watch
        # key -> (the watch's generation when it was checked, the signature it had)
        self._checked: dict[str, tuple[int, tuple]] = {}
        self._folders: dict[str, tuple[str, ...]] = {}   # key -> its folders, from the root down

    def unchanged(self, path: Path, key: str) -> tuple[tuple[dict, dict] | None, int | None]:
        """(the cached entry, None) when nothing changed in `path`'s folders since it was
        checked; else (None, the generation to `note` once checked, or None: not watched).

        The folders are watched from here on: the caller's `stat` comes after.
        """
        watch = self._watch
        if watch is None:
            return None, None
        generation = watch.generation()
        seen = self._checked.get(key)
        if seen is not None and seen[0] == generation:
            entry = self._cache.peek_entry(key)
            if entry is not None and entry[0] is seen[1]:
                return (entry[1], entry[2]), None
        folders = self._folders.get(key)
        if folders is None:
            if len(self._folders) >= JOURNAL_PATH_ENTRIES:
                self._folders.clear()
            parts = path.relative_to(self.root).parts[:-1]
            folders = self._folders[key] = tuple(
                str(self.root.joinpath(*parts[:depth])) for depth in range(len(parts) + 1))
        return None, (generation if watch.watch(folders) else None)

    def watch_generation(self) -> int | None:
        """The watch's generation (None: no watch)."""
        return self._watch.generation() if self._watch is not None else None

    def note(self, key: str, generation: int | None) -> None:
        """The cached entry of `key` was checked against the files at `generation` (from `unchanged`)."""
        if generation is None:
            return
        entry = self._cache.peek_entry(key)
        if entry is None:
            return
        if len(self._checked) >= JOURNAL_PATH_ENTRIES and key not in self._checked:
            self._checked.clear()
        self._checked[key] = (generation, entry[0])

    def is_plain_folder(self, folder: Path) -> bool:
        """Whether `folder` exists and every part of it below the root is a real folder, no symlink.

        Then it is inside the root whatever the symlinks elsewhere: one
        `lstat` per part (two for a database's tables), where `realpath`
        costs one per part from `/` and a fifth of a small insert. False
        says nothing: the caller creates what is missing and checks the long way.
        """
        root = str(self.root)
        text = str(folder)
        if not text.startswith(root + os.sep):
            return False
        current = root
        for part in text[len(root) + 1:].split(os.sep):
            if part in ("", ".", ".."):
                return False
            current = current + os.sep + part
            try:
                if not S_ISDIR(os.lstat(current).st_mode):
                    return False
            except OSError:
                return False
        return True

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
        if self._watch is not None:
            unchanged, generation = self.unchanged(path, key)
            if unchanged is not None:
                return unchanged
            entry = self._load(path, key)
            if entry is not None:
                self.note(key, generation)
            return entry
        return self._load(path, key)

    def _load(self, path: Path, key: str) -> tuple[dict, dict] | None:
        try:
            stat = os.stat(key)   # `key` is the path as a string: no conversion per call
        except (FileNotFoundError, NotADirectoryError):
            self._cache.forget(key)
            return None
        except OSError as error:  # a symlink loop, no permission: that object's read fault
            raise self._unreadable(path, error) from None
        journal_file = self._journal_of(path, key)
        try:
            journal_stat = _stat_or_none(journal_file) if journal_file is not None else None
        except OSError as error:
            raise self._unreadable(path, error) from None
        signature = file_signature(stat, journal_stat, journal_file is not None)
        cached = self._cache.get(key, signature)
        if cached is not None:
            return cached
        if journal_file is not None and journal_stat is not None:
            extended = self._extend_cached(key, path, journal_file, signature)
            if extended is not None:
                return extended
        self.check_contained(path)
        applied: tuple[int, int] | None = None   # the journal's (inode, bytes applied)
        # One list per row: read with the collector paused and, for a big
        # table, kept out of its later scans (engine/collector.py).
        size = stat.st_size + (journal_stat.st_size if journal_stat is not None else 0)
        with lasting_build(size >= LASTING_BYTES):
            try:
                document, stat = self._read_snapshot(path)
            except (FileNotFoundError, NotADirectoryError):
                self._cache.forget(key)
                return None
            if journal_file is not None and not document.get("dropped", False):
                found = self._read_journal(path, journal_file)
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
            # Not blocking: a FIFO put there must not hold the engine's thread for good.
            with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
                # The signature of what is actually read (the file may have
                # been replaced since the stat above).
                stat = os.fstat(handle.fileno())
                check_regular(str(path.relative_to(self.root)), stat)
                data = handle.read()
            document = decode_document(data, path)
        except (FileNotFoundError, NotADirectoryError):
            raise
        except (InvalidDocument, OSError) as error:
            raise self._unreadable(path, error) from None
        if not isinstance(document, dict):
            rel = str(path.relative_to(self.root))
            raise StorageFault(f"Simba ny rakitra {rel}", rel, "read", "corrupt: not a JSON object")
        if document.get("format") not in READABLE_FORMATS:
            rel = str(path.relative_to(self.root))
            raise StorageFault(
                f"Ny rakitra {rel} dia manana format tsy fantatra "
                f"({document.get('format')!r}, {FORMAT_VERSION} no fantatra)",
                rel, "read", f"unknown format {document.get('format')!r}")
        try:  # valid JSON of the wrong shape (`{"format": 2}`, rows that are no lists)
            check_body(check_header(document, path), path)
        except InvalidDocument as error:
            raise self._unreadable(path, error) from None
        return document, stat

    def _read_journal(self, path: Path, journal_file: str, offset: int = 0
                      ) -> tuple[journal.Reading, os.stat_result] | None:
        """`journal.read`; the table's read fault when its journal cannot be read."""
        try:
            return journal.read(journal_file, offset)
        except OSError as error:
            raise self._unreadable(path, error) from None

    def _unreadable(self, path: Path, error: InvalidDocument | OSError) -> StorageFault:
        """The read fault of the object at `path` that could not be read or decoded."""
        log.error("cannot read %s: %s", path, error)
        rel = str(path.relative_to(self.root))
        reason = ((error.reason if error.reason.startswith("corrupt:")
                   else f"corrupt: {error.reason}") if isinstance(error, InvalidDocument)
                  else f"unreadable: {error.strerror or error}")
        return StorageFault(f"Simba na tsy voavaky ny rakitra {rel}", rel, "read", reason)

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
        found = self._read_journal(path, journal_file, old[4])
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
