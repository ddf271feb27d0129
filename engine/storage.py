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
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
from pathlib import Path

import orjson

from engine.errors import TahiryError

FORMAT_VERSION = 1
KIND_FOLDERS = {"table": "tables", "view": "views", "domain": "domains"}
DATABASE_MARKER = "database.json"
TEMP_SUFFIX = ".tmp"
MAX_NAME_CHARS = 128
MAX_NAME_BYTES = 200  # leaves room for ".<name>.json.<random>.tmp" under 255 bytes
DEFAULT_CACHE_ENTRIES = 512
DEFAULT_CACHE_BYTES = 512 * 1024 * 1024  # of JSON on disk; decoded objects take more
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


class Store:
    """All databases under one data directory."""

    def __init__(self, root: str | os.PathLike, *, cache_entries: int = DEFAULT_CACHE_ENTRIES,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, stale_temp_age_s: float = 60.0,
                 durable: bool = True):
        """`durable=False` skips fsync (tests and benchmarks only)."""
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._real_root = os.path.realpath(self.root)
        self._cache: dict[str, tuple[tuple[int, int, int], dict]] = {}
        self._cache_entries = cache_entries
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0
        self._durable = durable
        # Re-entrant: the executor holds it across a statement's read-modify-write
        # so statements of sessions on different threads never interleave.
        self.write_lock = threading.RLock()
        self.remove_stale_temp_files(stale_temp_age_s)

    # ------------------------------------------------------------------ paths

    def database_path(self, database: str) -> Path:
        return self.root / validate_name(database, "database")

    def object_path(self, database: str, kind: str, name: str) -> Path:
        folder = KIND_FOLDERS[kind]
        return self.database_path(database) / folder / (validate_name(name, kind) + ".json")

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
        names = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not _IDENTIFIER_RE.fullmatch(entry.name):
                    continue
                if self._is_live(Path(entry.path) / DATABASE_MARKER):
                    names.append(entry.name)
        return sorted(names)

    def list_objects(self, database: str, kind: str) -> list[str]:
        folder = self.database_path(database) / KIND_FOLDERS[kind]
        names = []
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
        for entry in entries:
            file_name = entry.name
            if is_temp_file(file_name) or not file_name.endswith(".json"):
                continue
            name = file_name[:-len(".json")]
            if _IDENTIFIER_RE.fullmatch(name) and self._is_live(Path(entry.path)):
                names.append(name)
        return sorted(names)

    # ----------------------------------------------------------------- writing

    def _atomic_write(self, path: Path, data: bytes) -> tuple[int, int, int]:
        """Write `data` to `path` atomically and durably; return its stat signature."""
        folder = path.parent
        if not folder.is_dir():
            self._make_folders(folder)
        self._check_contained(folder)
        temp = folder / f".{path.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(descriptor, view)
                    view = view[written:]
                if self._durable:
                    os.fsync(descriptor)
            finally:
                os.close(descriptor)
            os.replace(temp, path)
        except BaseException as error:
            try:
                os.unlink(temp)
            except OSError:
                pass
            if isinstance(error, OSError):
                log.error("cannot write %s: %s", path, error)
                raise TahiryError(
                    f"Tsy voasoratra ny rakitra {path.relative_to(self.root)} "
                    f"({error.strerror or error})") from None
            raise
        if self._durable:
            self._fsync_folder(folder)
        stat = os.stat(path)
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _make_folders(self, folder: Path) -> None:
        missing = []
        current = folder
        while not current.exists():
            missing.append(current)
            current = current.parent
        for item in reversed(missing):
            try:
                item.mkdir()
            except FileExistsError:
                pass
            if self._durable:
                self._fsync_folder(item.parent)

    @staticmethod
    def _fsync_folder(folder: Path) -> None:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _write_document(self, path: Path, kind: str, name: str, body: dict | None) -> dict:
        """Write a new version of one object: change counter + 1, or a tombstone."""
        with self.write_lock:
            previous = self._load(path)
            change = int(previous.get("change", 0)) + 1 if previous else 1
            document = {"format": FORMAT_VERSION, "kind": kind, "name": name,
                        "change": change, "dropped": body is None}
            if body is not None:
                document.update(body)
            signature = self._atomic_write(path, encode_document(document))
            self._remember(str(path), signature, document)
            return document

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
