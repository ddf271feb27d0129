"""The files on disk: one JSON document per database object.

Layout (see docs/STORAGE.md for the exact JSON shape):

    <root>/<db>/database.json            the database marker
    <root>/<db>/tables/<table>.json
    <root>/<db>/views/<view>.json
    <root>/<db>/domains/<domain>.json

Every write is atomic and durable (temp file in the same folder, fsync,
`os.replace`, fsync of the folder), so a crash leaves the old file or the
new one. Every document carries a format version and a change counter that
grows by one on each write of that object; a drop writes a tombstone so the
counter survives and replication can never resurrect an old copy.

Decoded documents are cached by path and re-validated with `os.stat` on
every read, so a file replaced by another process (replication) is seen by
the very next read. Documents handed out are shared with the cache: callers
must never mutate them.

Group commit: between `begin_batch()` and `commit_batch()` writes go to an
in-memory overlay (seen by reads on the same thread, so later statements of
the batch see earlier ones) and each dirty object file is written once, by
the same atomic durable write, at commit. The change counter of an object
grows by one per file write, i.e. once per commit however many statements
of the batch changed it. The server acknowledges a batch's statements only
after `commit_batch()` returned.

`atomic_write` (temp file, fsync, `os.replace`, fsync of the folder) is the
one implementation of a durable file replacement; replication uses it too.

Peers ("pull on write, fence on commit", docs/STORAGE.md): a Store given a
`PeerDirectories` (engine/peers.py) knows the other servers' data
directories. Before a statement modifies an object, `pull_newer` adopts a
peer's newer copy of it (tombstones included), so the write lands on top of
the latest acknowledged version even when asynchronous replication has not
brought it yet. At commit, under the write locks of this directory and of
every peer, each file about to be renamed is checked against the peers'
copies: if one already holds that object at a counter >= ours, nothing of
the batch is renamed (`BatchFenced`). Without peers none of this runs.
`engine/peer_sync.py` reads the peers' copies; this module decides and writes.

Outcomes of a commit: `BatchNotWritten` (nothing renamed: the statements
failed cleanly, or may run again one by one), `BatchPartlyWritten` (some
files renamed: which ones are durable, which ones may or may not be),
otherwise every file is in place and durable.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import orjson

from engine.errors import TahiryError
from engine.peer_sync import PeerSync
from engine.peers import (DEFAULT_LOCK_TIMEOUT_S, DirectoryLock, LockTimeout, PeerCopy,
                          PeerDirectories, UnreadableCopy, holding, read_change)

FORMAT_VERSION = 1
KIND_FOLDERS = {"table": "tables", "view": "views", "domain": "domains"}
DATABASE_MARKER = "database.json"
TEMP_SUFFIX = ".tmp"
MAX_NAME_CHARS = 128
MAX_NAME_BYTES = 200  # leaves room for ".<name>.json.<random>.tmp" under 255 bytes
DEFAULT_CACHE_ENTRIES = 512
DEFAULT_CACHE_BYTES = 512 * 1024 * 1024  # of JSON on disk; decoded objects take more
PATH_MEMO_ENTRIES = 4096
# Files larger than this are not decoded just to know whether they are
# tombstones: the "dropped" flag is sniffed from the start of the file.
SNIFF_THRESHOLD = 4096
_DROPPED_RE = re.compile(rb'"dropped":(true|false)')
_IDENTIFIER_RE = re.compile(r"[^\W\d]\w*")

KIND_WORDS = {"database": "tahiry", "table": "tabilao", "view": "jery", "domain": "efitra"}

log = logging.getLogger(__name__)


def validate_name(name: object, kind: str = "object") -> str:
    """Return `name` if it is a safe identifier, else raise a clear TahiryError.

    Rejects anything that could escape the data directory or is not an
    identifier of the language: empty, `.`/`..`, separators, NUL, absolute
    paths, over-long names.
    """
    word = KIND_WORDS.get(kind, "anarana")
    if not isinstance(name, str) or name == "":
        raise TahiryError(f"Anarana foana tsy azo ekena ho {word}")
    shown = name.replace("\0", "\\0")
    if "\0" in name or "/" in name or "\\" in name or name in (".", "..") or os.path.isabs(name):
        raise TahiryError(
            f"Ny anarana '{shown}' dia tsy azo ekena ho {word} : "
            f"tsy mahazo mivoaka ny lahatahiry data (/, \\, .., NUL)")
    if not _IDENTIFIER_RE.fullmatch(name):
        raise TahiryError(
            f"Ny anarana '{shown}' dia tsy azo ekena ho {word} : "
            f"litera na _ no manomboka azy, ary litera, isa na _ ihany no ao aminy")
    if len(name) > MAX_NAME_CHARS or len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise TahiryError(f"Lava loatra ny anarana '{name[:20]}...' ho {word} "
                          f"(max {MAX_NAME_CHARS} litera)")
    return name


def encode_document(document: dict) -> bytes:
    """Compact JSON bytes; falls back to `json` for what orjson refuses."""
    try:
        return orjson.dumps(document)
    except TypeError:
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode("utf-8")


def is_temp_file(file_name: str) -> bool:
    """Temp files of atomic writes: `.<name>.<random>.tmp`."""
    return file_name.startswith(".") and file_name.endswith(TEMP_SUFFIX)


def temp_path_for(path: Path) -> Path:
    """A fresh temp file name beside `path`: `.<name>.<12 hex>.tmp`."""
    return path.parent / f".{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_durable_temp(path: Path, data: bytes, durable: bool = True) -> Path:
    """Write `data` to a new temp file beside `path` (O_EXCL) and fsync it.

    Returns the temp file's path; on failure nothing is left behind. The
    folder must exist.
    """
    temp = temp_path_for(path)
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(descriptor, view)
                view = view[written:]
            if durable:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except BaseException:
        _unlink_quietly(temp)
        raise
    return temp


def atomic_write(path: Path, data: bytes, *, durable: bool = True,
                 still_wanted: Callable[[], bool] | None = None,
                 lock: DirectoryLock | None = None,
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> bool:
    """Replace `path` with `data` atomically and durably; False if `still_wanted()` said no.

    Temp file in the same folder, fsync, `os.replace`, fsync of the folder:
    a crash leaves the old file or the new one, never a torn one. The folder
    must exist. `still_wanted` runs after the temp file is durable, just
    before the rename; with `lock` (the data directory's write lock) both
    run while it is held, so no other writer of that directory can rename
    in between. Raises OSError (LockTimeout included; the temp file removed,
    `path` intact).
    """
    temp = write_durable_temp(path, data, durable)
    try:
        with holding([lock] if lock is not None else [], lock_timeout_s):
            if still_wanted is not None and not still_wanted():
                _unlink_quietly(temp)
                return False
            os.replace(temp, path)
    except BaseException:
        _unlink_quietly(temp)
        raise
    if durable:
        fsync_folder(path.parent)
    return True


def copy_if_newer(path: Path, data: bytes, change: int, lock: DirectoryLock | None, *,
                  durable: bool = True, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> bool:
    """Install another directory's copy of an object unless `path` is as new already.

    The one way a copy enters a data directory, for replication and for the
    store's pull on write: atomic and durable like every write, and the
    "is ours older?" check runs under the directory's write lock right
    before the rename. A local copy that cannot be read is never
    overwritten. False if nothing was copied; raises OSError.
    """
    def still_wanted() -> bool:
        try:
            current = read_change(path)
        except (UnreadableCopy, OSError):
            return False
        return current is None or current < change

    return atomic_write(path, data, durable=durable, still_wanted=still_wanted, lock=lock,
                        lock_timeout_s=lock_timeout_s)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


class BatchNotWritten(Exception):
    """A batch could not be made durable and nothing of it reached the files.

    Raised by `Store.commit_batch` before any file was replaced. `retry`:
    running the statements again one by one may succeed (preparing a file
    failed: encoding, disk full, ...; or the first rename failed); when
    False, `message` is every statement's (clean) failure.
    """

    def __init__(self, message: str, retry: bool = True):
        super().__init__(message)
        self.message = message
        self.retry = retry


class BatchFenced(BatchNotWritten):
    """A peer holds an object of the batch at a counter >= the one about to be written.

    Nothing was renamed. Run again one by one, each statement pulls the newer
    copy first and applies on top of it (or is fenced again and fails).
    """


class BatchPartlyWritten(TahiryError):
    """Some files of a batch were renamed into place, then something failed.

    `renamed`: keys (paths) whose new file is in place; `durable`: those of
    them whose folder fsync succeeded too. A statement whose files are all
    durable succeeded; one with a file renamed but not durable, or only part
    of its files renamed, may or may not have been applied; one with no file
    renamed failed.
    """

    def __init__(self, message: str, renamed: set[str], durable: set[str]):
        super().__init__(message)
        self.renamed = renamed
        self.durable = durable


class WriteOutcomeUnknown(TahiryError):
    """The new file was renamed into place but its durability is not confirmed."""


def outcome_unknown_message(where: str, reason: str) -> str:
    """The sentence of a write that may or may not have been applied."""
    return (f"Tsy fantatra raha voasoratra na tsia ny {where} ({reason}) : mety efa tafiditra ny "
            f"fiovana, mety tsia ; jereo aloha vao mamerina (outcome unknown : l'écriture a "
            f"peut-être été appliquée, ou non)")


class _WriteBatch:
    """Pending documents of a group commit, owned by one thread."""

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        self.pending: dict[str, tuple[Path, dict]] = {}
        self.writes = 0   # object writes so far (a statement wrote iff this grew)
        self.pulled: set[str] = set()   # paths already compared with the peers


class Store:
    """All databases under one data directory."""

    def __init__(self, root: str | os.PathLike, *, cache_entries: int = DEFAULT_CACHE_ENTRIES,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, stale_temp_age_s: float = 60.0,
                 durable: bool = True, peers: PeerDirectories | None = None,
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S):
        """`durable=False` skips fsync (tests and benchmarks only).

        `peers`: the other servers' data directories (pull on write, fence on
        commit); None for a directory nobody else writes.
        """
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = os.path.realpath(self.root)
        self._sync = PeerSync(self.root, peers) if peers is not None else None
        self._lock_timeout_s = lock_timeout_s
        self._cache: dict[str, tuple[tuple[int, int, int], dict]] = {}
        self._cache_entries = cache_entries
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0
        self._durable = durable
        # Re-entrant: the executor holds it across a statement's read-modify-write
        # so statements of sessions on different threads never interleave.
        self.write_lock = threading.RLock()
        self._batch: _WriteBatch | None = None
        # Validated object paths by (database, kind, name): building and
        # checking them costs more than the stat of a cached read.
        self._paths: dict[tuple[str, str, str], Path] = {}
        self.remove_stale_temp_files(stale_temp_age_s)

    # ------------------------------------------------------------------ paths

    def database_path(self, database: str) -> Path:
        return self.root / validate_name(database, "database")

    def object_path(self, database: str, kind: str, name: str) -> Path:
        key = (database, kind, name)
        path = self._paths.get(key)
        if path is None:
            folder = KIND_FOLDERS[kind]
            path = self.database_path(database) / folder / (validate_name(name, kind) + ".json")
            if len(self._paths) >= PATH_MEMO_ENTRIES:
                self._paths.clear()
            self._paths[key] = path
        return path

    def _check_contained(self, path: Path) -> None:
        """Refuse paths that resolve (through symlinks) outside the root."""
        real = os.path.realpath(path)
        if not real.startswith(self._real_root + os.sep):
            raise TahiryError(
                f"Ny rakitra {path.relative_to(self.root)} dia manondro ivelan'ny "
                f"lahatahiry data (symlink), tsy ekena")

    # ----------------------------------------------------------------- reading

    def _load(self, path: Path) -> dict | None:
        """The decoded document at `path` (tombstones included), or None."""
        key = str(path)
        batch = self._batch
        if batch is not None and batch.owner == threading.get_ident():
            pending = batch.pending.get(key)
            if pending is not None:
                return pending[1]
        try:
            stat = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            self._forget(key)
            return None
        cached = self._cache.get(key)
        if cached is not None and cached[0] == (stat.st_ino, stat.st_mtime_ns, stat.st_size):
            return cached[1]
        self._check_contained(path)
        try:
            with open(path, "rb") as handle:
                # The signature of what is actually read (the file may have
                # been replaced since the stat above).
                stat = os.fstat(handle.fileno())
                data = handle.read()
            document = orjson.loads(data)
        except (FileNotFoundError, NotADirectoryError):
            self._forget(key)
            return None
        except (orjson.JSONDecodeError, OSError) as error:
            log.error("cannot read %s: %s", path, error)
            raise TahiryError(
                f"Simba na tsy voavaky ny rakitra {path.relative_to(self.root)}") from None
        if not isinstance(document, dict):
            raise TahiryError(f"Simba ny rakitra {path.relative_to(self.root)}")
        if document.get("format") != FORMAT_VERSION:
            raise TahiryError(
                f"Ny rakitra {path.relative_to(self.root)} dia manana format tsy fantatra "
                f"({document.get('format')!r}, {FORMAT_VERSION} no fantatra)")
        self._remember(key, (stat.st_ino, stat.st_mtime_ns, stat.st_size), document)
        return document

    def _forget(self, key: str) -> None:
        removed = self._cache.pop(key, None)
        if removed is not None:
            self._cached_bytes -= removed[0][2]

    def _remember(self, key: str, signature: tuple[int, int, int], document: dict) -> None:
        """Cache a decoded document; evict the oldest entries beyond the budgets.

        Sizes are file sizes (a proxy for memory). Tolerates other threads
        touching the cache at the same time (the server runs statements on
        a worker thread).
        """
        self._forget(key)
        while self._cache and (len(self._cache) >= self._cache_entries
                               or self._cached_bytes + signature[2] > self._cache_bytes):
            try:
                oldest = next(iter(self._cache))
            except (StopIteration, RuntimeError):
                break
            evicted = self._cache.pop(oldest, None)
            if evicted is not None:
                self._cached_bytes -= evicted[0][2]
        self._cache[key] = (signature, document)
        self._cached_bytes += signature[2]

    def _is_live(self, path: Path) -> bool:
        """Whether `path` holds a live (not dropped) document, cheaply.

        Files that cannot be trusted (outside the root, unreadable) count as
        absent, so one bad file never breaks a listing.
        """
        try:
            return self._is_live_checked(path)
        except TahiryError as error:
            log.warning("ignoring %s: %s", path, error)
            return False

    def _is_live_checked(self, path: Path) -> bool:
        key = str(path)
        batch = self._batch
        if batch is not None and batch.owner == threading.get_ident():
            pending = batch.pending.get(key)
            if pending is not None:
                return not pending[1].get("dropped", False)
        try:
            stat = os.stat(path)
        except OSError:
            return False
        cached = self._cache.get(key)
        if cached is not None and cached[0] == (stat.st_ino, stat.st_mtime_ns, stat.st_size):
            return not cached[1].get("dropped", False)
        if stat.st_size > SNIFF_THRESHOLD:
            self._check_contained(path)
            try:
                with open(path, "rb") as handle:
                    head = handle.read(SNIFF_THRESHOLD)
            except OSError:
                return False
            match = _DROPPED_RE.search(head)
            if match is not None:
                return match.group(1) == b"false"
        document = self._load(path)
        return document is not None and not document.get("dropped", False)

    def read_raw(self, database: str, kind: str, name: str) -> dict | None:
        """The document of an object, tombstone included; None if no file."""
        return self._load(self.object_path(database, kind, name))

    def read(self, database: str, kind: str, name: str) -> dict | None:
        """The live document of an object, or None (missing or dropped)."""
        document = self.read_raw(database, kind, name)
        if document is None or document.get("dropped", False):
            return None
        return document

    def database_exists(self, database: str) -> bool:
        return self._is_live(self.database_path(database) / DATABASE_MARKER)

    def list_databases(self) -> list[str]:
        with os.scandir(self.root) as entries:
            candidates = {entry.name for entry in entries}
        candidates.update(path.parent.name for path in self._pending_paths()
                          if path.name == DATABASE_MARKER)
        names = []
        for name in candidates:
            if name.startswith(".") or not _IDENTIFIER_RE.fullmatch(name):
                continue
            if self._is_live(self.root / name / DATABASE_MARKER):
                names.append(name)
        return sorted(names)

    def _pending_paths(self) -> list[Path]:
        """Paths written in this thread's open batch (not yet on disk)."""
        batch = self._batch
        if batch is None or batch.owner != threading.get_ident():
            return []
        return [path for path, _ in batch.pending.values()]

    def list_objects(self, database: str, kind: str) -> list[str]:
        folder = self.database_path(database) / KIND_FOLDERS[kind]
        names = []
        try:
            file_names = {entry.name for entry in os.scandir(folder)}
        except (FileNotFoundError, NotADirectoryError):
            file_names = set()
        file_names.update(path.name for path in self._pending_paths() if path.parent == folder)
        for file_name in file_names:
            if is_temp_file(file_name) or not file_name.endswith(".json"):
                continue
            name = file_name[:-len(".json")]
            if _IDENTIFIER_RE.fullmatch(name) and self._is_live(folder / file_name):
                names.append(name)
        return sorted(names)

    # ----------------------------------------------------------------- writing

    def _prepare_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            self._make_folders(folder)
        self._check_contained(folder)

    def _write_error(self, path: Path, error: OSError) -> TahiryError:
        log.error("cannot write %s: %s", path, error)
        return TahiryError(f"Tsy voasoratra ny rakitra {path.relative_to(self.root)} "
                           f"({error.strerror or error})")

    def _make_folders(self, folder: Path) -> None:
        missing = []
        current = folder
        while not current.exists():
            missing.append(current)
            current = current.parent
        if missing:
            # Never create folders through a symlink that leads out of the root.
            real = os.path.realpath(current)
            if real != self._real_root:
                self._check_contained(current)
        for item in reversed(missing):
            try:
                item.mkdir()
            except FileExistsError:
                pass
            if self._durable:
                fsync_folder(item.parent)

    def _write_document(self, path: Path, kind: str, name: str, body: dict | None) -> dict:
        """Write a new version of one object: change counter + 1, or a tombstone.

        Inside a batch the document only joins the overlay; an object written
        again in the same batch keeps the counter of its first write there.
        """
        with self.write_lock:
            key = str(path)
            previous = self._load(path)
            batch = self._batch
            in_batch = batch is not None and batch.owner == threading.get_ident()
            if in_batch and key in batch.pending:
                change = int(previous["change"])
            else:
                change = int(previous.get("change", 0)) + 1 if previous else 1
            document = {"format": FORMAT_VERSION, "kind": kind, "name": name,
                        "change": change, "dropped": body is None}
            if body is not None:
                document.update(body)
            if in_batch:
                self._prepare_folder(path.parent)
                batch.pending[key] = (path, document)
                batch.writes += 1
                return document
            self._write_one(key, path, document)
            return document

    def _write_one(self, key: str, path: Path, document: dict) -> None:
        """A write outside a batch: the same commit path as a batch of one file."""
        try:
            data = encode_document(document)
            self._prepare_folder(path.parent)
            temp = write_durable_temp(path, data, self._durable)
        except OSError as error:
            raise self._write_error(path, error) from None
        try:
            self._install([(key, path, document, temp)])
        except BatchPartlyWritten as partial:
            raise WriteOutcomeUnknown(str(partial)) from None
        except BatchNotWritten as refused:
            raise TahiryError(refused.message) from None

    def write(self, database: str, kind: str, name: str, body: dict) -> dict:
        """Write an object (`body` holds its kind's fields); return the document."""
        return self._write_document(self.object_path(database, kind, name), kind, name, body)

    def drop(self, database: str, kind: str, name: str) -> bool:
        """Tombstone an object; False when it did not exist (nothing written)."""
        path = self.object_path(database, kind, name)
        if not self._is_live(path):
            return False
        self._write_document(path, kind, name, None)
        return True

    def create_database(self, database: str) -> None:
        base = self.database_path(database)
        for folder in KIND_FOLDERS.values():
            if not (base / folder).is_dir():
                self._make_folders(base / folder)
        self._write_document(base / DATABASE_MARKER, "database", database, {})

    def drop_database(self, database: str) -> bool:
        """Tombstone every object of the database, then its marker."""
        base = self.database_path(database)
        if not self._is_live(base / DATABASE_MARKER):
            return False
        for kind in KIND_FOLDERS:
            for name in self.list_objects(database, kind):
                self._write_document(self.object_path(database, kind, name), kind, name, None)
        self._write_document(base / DATABASE_MARKER, "database", database, None)
        return True

    # ------------------------------------------------------------ group commit

    def begin_batch(self) -> None:
        """Start collecting this thread's writes in memory (holds the write lock).

        End with `commit_batch()` (durable) or `abort_batch()` (discarded).
        """
        self.write_lock.acquire()
        if self._batch is not None:
            self.write_lock.release()
            raise RuntimeError("a write batch is already open")
        self._batch = _WriteBatch()

    @property
    def batch_writes(self) -> int:
        """Object writes in the open batch so far (0 without a batch)."""
        return self._batch.writes if self._batch is not None else 0

    def batch_mark(self) -> dict:
        """A savepoint of the open batch, for `batch_rollback`."""
        assert self._batch is not None
        return dict(self._batch.pending)

    def batch_rollback(self, mark: dict) -> None:
        """Forget the batch's writes made since `mark` (a failed statement)."""
        assert self._batch is not None
        self._batch.pending = dict(mark)

    def abort_batch(self) -> None:
        """Discard the open batch: nothing of it is written."""
        if self._batch is None:
            return
        self._batch = None
        self.write_lock.release()

    def batch_written_since(self, mark: dict) -> frozenset[str]:
        """Keys (paths) the open batch wrote since `mark`: one statement's files."""
        assert self._batch is not None
        return frozenset(key for key, entry in self._batch.pending.items()
                         if mark.get(key) is not entry)

    def commit_batch(self) -> int:
        """Write every dirty object of the batch once, durably; return how many files.

        First every document goes to a durable temp file; then, holding the
        write locks (with peers), the fence is checked and the files are
        renamed into place; then their folders are fsynced. Raises
        `BatchNotWritten` (`BatchFenced`) when nothing was renamed,
        `BatchPartlyWritten` when something failed after the first rename.
        The batch is closed in all cases.
        """
        batch = self._batch
        assert batch is not None and batch.owner == threading.get_ident()
        try:
            prepared = self._prepare_batch(batch)
            if prepared:
                self._install(prepared)
            return len(prepared)
        finally:
            self._batch = None
            self.write_lock.release()

    def _prepare_batch(self, batch: _WriteBatch) -> list[tuple[str, Path, dict, Path]]:
        prepared: list[tuple[str, Path, dict, Path]] = []
        try:
            for key, (path, document) in batch.pending.items():
                data = encode_document(document)
                self._prepare_folder(path.parent)
                prepared.append((key, path, document,
                                 write_durable_temp(path, data, self._durable)))
        except (OSError, TypeError, ValueError, TahiryError) as error:
            for _, _, _, temp in prepared:
                _unlink_quietly(temp)
            log.error("group commit of %d files not written: %s", len(batch.pending), error)
            raise BatchNotWritten(str(error)) from None
        return prepared

    def _install(self, prepared: list[tuple[str, Path, dict, Path]]) -> None:
        """Fence, rename and fsync prepared temp files (see `commit_batch` for the outcomes)."""
        renamed: list[tuple[str, Path, dict]] = []
        failure: str | None = None
        try:
            locks = self._sync.commit_locks() if self._sync is not None else []
            with holding(locks, self._lock_timeout_s):
                self._check_fence(prepared)
                for key, path, document, temp in prepared:
                    try:
                        os.replace(temp, path)
                    except OSError as error:
                        log.error("cannot rename %s into place: %s", path, error)
                        failure = f"{path.relative_to(self.root)}: {error.strerror or error}"
                        break
                    renamed.append((key, path, document))
        except LockTimeout as error:
            self._unlink_temps(prepared)
            log.error("commit of %d files refused: %s", len(prepared), error)
            raise BatchNotWritten(
                f"Tsy voasoratra : mbola mihidy ny lahatahiry {error.lock_path.parent} "
                f"({self._lock_timeout_s:g} s) ; tsy nisy niova (rien n'a été écrit)",
                retry=False) from None
        except BatchNotWritten:
            self._unlink_temps(prepared)
            raise
        except OSError as error:  # a lock file could not be opened
            self._unlink_temps(prepared)
            raise BatchNotWritten(f"Tsy voasoratra : {error.strerror or error} ; "
                                  f"tsy nisy niova (rien n'a été écrit)", retry=False) from None
        self._unlink_temps(prepared[len(renamed):])
        if not renamed:
            for key, *_ in prepared:
                self._forget(key)
            raise BatchNotWritten(f"Tsy voasoratra ny {failure}")
        durable = self._fsync_renamed(renamed)
        for key, path, document in renamed:
            if key not in durable:
                self._forget(key)
                continue
            try:
                stat = os.stat(path)
            except OSError:
                self._forget(key)  # replaced or removed meanwhile: re-read it next time
                continue
            self._remember(key, (stat.st_ino, stat.st_mtime_ns, stat.st_size), document)
        for key, *_ in prepared[len(renamed):]:
            self._forget(key)
        if failure is None and len(durable) == len(renamed):
            return
        unsure = [path.relative_to(self.root) for key, path, _ in renamed if key not in durable]
        reason = (f"{len(renamed)}/{len(prepared)} rakitra tafiditra, {failure}" if failure
                  else f"fsync tsy nahomby : {', '.join(map(str, unsure))}")
        raise BatchPartlyWritten(outcome_unknown_message("fiovana", reason),
                                 {key for key, *_ in renamed}, durable)

    def _fsync_renamed(self, renamed: list[tuple[str, Path, dict]]) -> set[str]:
        """fsync the folders of renamed files; the keys whose folder fsync succeeded."""
        if not self._durable:
            return {key for key, *_ in renamed}
        by_folder: dict[Path, list[str]] = {}
        for key, path, _ in renamed:
            by_folder.setdefault(path.parent, []).append(key)
        durable: set[str] = set()
        for folder, keys in by_folder.items():
            try:
                fsync_folder(folder)
            except OSError as error:
                log.error("fsync of %s failed after renaming %d files: %s", folder, len(keys), error)
                continue
            durable.update(keys)
        return durable

    @staticmethod
    def _unlink_temps(prepared) -> None:
        for *_, temp in prepared:
            _unlink_quietly(temp)

    # ------------------------------------------------------------------ peers

    @property
    def has_peers(self) -> bool:
        """Whether this directory belongs to a replicated set (pull and fence apply)."""
        return self._sync is not None

    def _check_fence(self, prepared: list[tuple[str, Path, dict, Path]]) -> None:
        """Raise BatchFenced if this directory or a peer holds a file at >= its new counter."""
        if self._sync is None:
            return
        violation = self._sync.fence_violation([(path, document) for _, path, document, _ in prepared])
        if violation is not None:
            who = violation.holder or "ity mpizara ity"
            raise BatchFenced(
                f"Tsy voasoratra ny {violation.rel} : efa manana dika vaovao kokoa "
                f"(change {violation.change}) i {who} ; tsy nisy niova, andramo indray (écriture "
                f"refusée : une copie plus récente existe ailleurs, rien n'a été écrit)")

    def pull_newer(self, database: str, kind: str, name: str) -> bool:
        """Pull on write: adopt a peer's newer copy of an object before modifying it.

        `kind` "database" means the database marker. The newest valid peer
        copy with a larger counter than ours is copied in atomically
        (tombstones too, so a drop made elsewhere is never undone). Checked
        once per object per batch; True if a copy was adopted.
        """
        if self._sync is None:
            return False
        try:
            path = (self.database_path(database) / DATABASE_MARKER if kind == "database"
                    else self.object_path(database, kind, name))
        except TahiryError:
            return False  # the statement itself reports the bad name
        key = str(path)
        batch = self._batch
        if batch is not None and batch.owner == threading.get_ident():
            if key in batch.pending or key in batch.pulled:
                return False
            batch.pulled.add(key)
        if not self._sync.roots():
            return False
        local = self._load(path)
        local_change = int(local.get("change", 0)) if local is not None else 0
        copy = self._sync.newer_copy(path, kind, name, local_change)
        if copy is None:
            return False
        self._adopt(path, copy)
        return True

    def pull_newer_objects(self, database: str) -> None:
        """Pull every object of a database that a peer holds newer (before dropping it).

        Not the marker: creating and dropping a database are sent to every
        server, and each decides from its own marker (the fence lets
        identical markers and tombstones through).
        """
        if self._sync is None:
            return
        try:
            validate_name(database, "database")
        except TahiryError:
            return  # the statement itself reports the bad name
        for kind, folder in KIND_FOLDERS.items():
            for name in sorted(self._sync.object_names(database, folder)):
                if _IDENTIFIER_RE.fullmatch(name):
                    self.pull_newer(database, kind, name)

    def _adopt(self, path: Path, copy: PeerCopy) -> None:
        """Copy a peer's newer file into this directory (atomic, durable, under the lock)."""
        try:
            self._prepare_folder(path.parent)
            copied = copy_if_newer(path, copy.data, copy.change, self._sync.own_lock,
                                   durable=self._durable, lock_timeout_s=self._lock_timeout_s)
        except OSError as error:
            log.error("pull of %s from %s failed: %s", path, copy.peer, error)
            raise TahiryError(
                f"Tsy tafiditra ny dika vaovao kokoa an'i {path.relative_to(self.root)} avy "
                f"amin'i {copy.peer} ({error.strerror or error}) ; tsy nisy niova") from None
        self._forget(str(path))
        if copied:
            log.info("pulled %s (change %d) from %s before writing it",
                     path.relative_to(self.root), copy.change, copy.peer)

    @contextmanager
    def write_batch(self) -> Iterator[None]:
        """`with store.write_batch():` writes inside are committed together at the end.

        An exception inside discards them all. (The server uses the explicit
        methods to give each statement its own savepoint.)
        """
        self.begin_batch()
        try:
            yield
        except BaseException:
            self.abort_batch()
            raise
        self.commit_batch()

    # ------------------------------------------------------------- maintenance

    def remove_stale_temp_files(self, older_than_s: float = 0.0) -> int:
        """Delete temp files left by interrupted writes; return how many.

        Only files older than `older_than_s` go, so a write in progress in
        another process (replication) is not disturbed.
        """
        removed = 0
        limit = time.time() - older_than_s
        folders = [self.root]
        try:
            for entry in os.scandir(self.root):
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                    folders.extend(Path(entry.path) / sub for sub in KIND_FOLDERS.values())
        except OSError:
            return 0
        for folder in folders:
            if folder != self.root and folder.is_symlink():
                continue  # it may lead out of the root: delete nothing there
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if not is_temp_file(entry.name) or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    if entry.stat(follow_symlinks=False).st_mtime <= limit:
                        os.unlink(entry.path)
                        removed += 1
                except OSError:
                    pass
        return removed
