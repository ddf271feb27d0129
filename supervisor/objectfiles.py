"""Object files of a server's data directory, as replication sees them.

Replication works on the files of storage format version 1
(docs/ARCHITECTURE.md): `<db>/database.json` and
`<db>/{tables,views,domains}/<name>.json`, each a JSON object carrying a
`change` counter and a `dropped` tombstone flag. This module knows which
paths are object files (everything else, notably the `.<name>.<random>.tmp`
temp files of atomic writes, is ignored), reads one copy of an object into a
small summary (counter, tombstone, digest of the bytes), and writes a copy
atomically into another data directory (temp file in the destination
folder, fsync, `os.replace`, fsync the folder) so that a crash leaves the
old file or the new one, never a torn one; the last check and the rename
run under the destination directory's write lock (`.tahiry.lock`, shared
with the servers' commits).

No threads and no state here: `replication.py` decides what to copy.
"""

from __future__ import annotations

import hashlib
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import orjson

from engine.atomic_files import fsync_folder, temp_path_for, unlink_quietly, write_durable_temp
from engine.peers import DEFAULT_LOCK_TIMEOUT_S, DirectoryLock, LockTimeout

FORMAT_VERSION = 1
DATABASE_MARKER = "database.json"
FOLDER_KINDS = {"tables": "table", "views": "view", "domains": "domain"}


class UnreadableObject(Exception):
    """An object file exists but is not a valid object (torn, garbage, wrong shape)."""


@dataclass(frozen=True)
class FileSignature:
    """What identifies one version of a file on disk without reading it.

    Every write of the engine and of replication is an `os.replace`, so a
    new version always has a new inode.
    """

    inode: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, stat: os.stat_result) -> "FileSignature":
        return cls(stat.st_ino, stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True)
class ObjectCopy:
    """One server's copy of one object file, summarised."""

    change: int
    dropped: bool
    digest: bytes
    signature: FileSignature

    def same_bytes(self, other: "ObjectCopy") -> bool:
        return self.digest == other.digest and self.signature.size == other.signature.size


def _valid_name(name: str) -> bool:
    # Engine names are identifiers; here we only need to refuse anything that
    # is not a plain file name or that is a temp/hidden file.
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name \
        and "\x00" not in name and not name.endswith(".tmp")


def object_relpath(parts: list[str]) -> str | None:
    """The relative path (with '/') if `parts` name an object file, else None."""
    if len(parts) == 2:
        database, file_name = parts
        if _valid_name(database) and file_name == DATABASE_MARKER:
            return f"{database}/{file_name}"
        return None
    if len(parts) == 3:
        database, folder, file_name = parts
        if (_valid_name(database) and folder in FOLDER_KINDS and _valid_name(file_name)
                and file_name.endswith(".json") and len(file_name) > len(".json")):
            return f"{database}/{folder}/{file_name}"
    return None


def relpath_under(root: str, path: str) -> str | None:
    """The object relpath of absolute `path` inside data directory `root`, or None."""
    prefix = root.rstrip(os.sep) + os.sep
    if not path.startswith(prefix):
        return None
    return object_relpath(path[len(prefix):].split(os.sep))


def expected_kind_and_name(relpath: str) -> tuple[str, str]:
    parts = relpath.split("/")
    if len(parts) == 2:
        return "database", parts[0]
    return FOLDER_KINDS[parts[1]], parts[2][:-len(".json")]


def list_object_files(root: Path) -> set[str]:
    """Relative paths of every object file under `root` (missing root: none)."""
    found: set[str] = set()
    try:
        databases = list(os.scandir(root))
    except FileNotFoundError:
        return found
    for database in databases:
        if not database.is_dir(follow_symlinks=False):
            continue
        if (rel := object_relpath([database.name, DATABASE_MARKER])) and \
                os.path.isfile(os.path.join(database.path, DATABASE_MARKER)):
            found.add(rel)
        for folder in FOLDER_KINDS:
            try:
                entries = list(os.scandir(os.path.join(database.path, folder)))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                rel = object_relpath([database.name, folder, entry.name])
                if rel and entry.is_file(follow_symlinks=False):
                    found.add(rel)
    return found


def parse_object(data: bytes, relpath: str) -> dict:
    """The decoded object, checked for the fields replication relies on."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise UnreadableObject(f"{relpath}: not valid JSON ({error})") from None
    if not isinstance(obj, dict):
        raise UnreadableObject(f"{relpath}: not a JSON object")
    change = obj.get("change")
    if not isinstance(change, int) or isinstance(change, bool) or change < 0:
        raise UnreadableObject(f"{relpath}: no valid change counter")
    if obj.get("format") != FORMAT_VERSION:
        raise UnreadableObject(f"{relpath}: unknown format {obj.get('format')!r}")
    kind, name = expected_kind_and_name(relpath)
    if obj.get("kind") != kind or obj.get("name") != name:
        raise UnreadableObject(f"{relpath}: kind/name do not match the path")
    if not isinstance(obj.get("dropped", False), bool):
        raise UnreadableObject(f"{relpath}: 'dropped' is not a boolean")
    return obj


def read_object(path: Path, relpath: str) -> tuple[ObjectCopy, bytes] | None:
    """Read one copy: its summary and its bytes; None when the file is missing.

    Raises UnreadableObject for a file that is not a valid object, OSError
    for other I/O failures.
    """
    try:
        with open(path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            data = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    obj = parse_object(data, relpath)
    copy = ObjectCopy(change=obj["change"], dropped=bool(obj.get("dropped", False)),
                      digest=hashlib.blake2b(data, digest_size=16).digest(),
                      signature=FileSignature.of(stat))
    return copy, data


def same_content(first: bytes, second: bytes, relpath: str) -> bool:
    """True if two copies hold the same object (bytes, or decoded JSON)."""
    if first == second:
        return True
    try:
        return parse_object(first, relpath) == parse_object(second, relpath)
    except UnreadableObject:
        return False


def ensure_folder(folder: Path) -> None:
    """Create `folder` and missing parents, each creation made durable."""
    missing: list[Path] = []
    current = folder
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for created in reversed(missing):
        try:
            os.mkdir(created)
        except FileExistsError:
            continue
        fsync_folder(created.parent)


def temp_name(file_name: str) -> str:
    return temp_path_for(Path(file_name)).name


LOCK_POLL_MAX_S = 0.0005


@contextmanager
def holding_promptly(lock: DirectoryLock | None,
                     timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold `lock` (None: nothing), polling it at most every 0.5 ms.

    The same flock as engine.peers.holding, whose back-off grows to 5 ms:
    with a class of students committing all the time a copy kept losing the
    lock to them (lock wait p99 ~50 ms). The check and rename it guards take
    well under a millisecond, so a closer poll costs little.
    """
    if lock is None:
        yield
        return
    deadline = time.monotonic() + timeout_s
    pause = 0.00005
    while not lock.try_acquire():
        if time.monotonic() >= deadline:
            raise LockTimeout(lock.path, timeout_s)
        time.sleep(pause)
        pause = min(pause * 2, LOCK_POLL_MAX_S)
    try:
        yield
    finally:
        lock.release()


def atomic_write(path: Path, data: bytes, still_wanted: Callable[[], bool],
                 lock: DirectoryLock | None = None,
                 timed: Callable[[str, float], None] | None = None) -> bool:
    """Write `data` at `path` atomically; False if `still_wanted()` said no.

    The engine's durable replacement (engine.atomic_files: temp file, fsync,
    `os.replace`, fsync of the folder), spelled out here to time its phases.
    `still_wanted` runs after the temp file is durable and just before the
    rename; with `lock` (the destination data directory's write lock,
    engine/peers.py) the check and the rename happen while it is held, so a
    server committing in that directory can never be overwritten by an older
    copy in between. The lock is held for that check and rename only.
    `timed(phase, ms)` receives "write_temp", "lock_wait", "locked" and
    "fsync_folder". Raises OSError (LockTimeout when the lock stays held
    too long).
    """
    timed = timed or (lambda phase, ms: None)
    ensure_folder(path.parent)
    began = time.perf_counter()
    temp = write_durable_temp(path, data)
    prepared = time.perf_counter()
    timed("write_temp", (prepared - began) * 1000)
    try:
        with holding_promptly(lock):
            locked = time.perf_counter()
            timed("lock_wait", (locked - prepared) * 1000)
            if not still_wanted():
                unlink_quietly(temp)
                return False
            os.replace(temp, path)
        renamed = time.perf_counter()
        timed("locked", (renamed - locked) * 1000)
    except BaseException:
        unlink_quietly(temp)
        raise
    fsync_folder(path.parent)
    timed("fsync_folder", (time.perf_counter() - renamed) * 1000)
    return True
