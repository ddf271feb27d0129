"""Object files of a server's data directory, as replication sees them: never through a symlink.

What an object file is and what a valid one holds is engine/object_format.py
(one implementation for the engine and the replicator); the atomic write
and the directory lock are engine/atomic_files.py and engine/peers.py.
This module adds what the replicator needs on top, always confined to one
data directory:

- `list_object_files(root)`: the object files under it; a symlinked
  database folder, kind folder or object file is not followed but
  returned as refused, for the replicator to report;
- `stat_object(root, rel)`, `read_object(root, rel)`: walk down from the
  root opening each folder with `O_NOFOLLOW` (so no symlink at any level,
  placed before or during the walk, is followed) and summarise the copy
  (counter, tombstone, digest, file signature) after checking the whole
  document. A symlink or a non-regular file raises `ObjectRefused`: it is
  neither read, nor copied, nor overwritten. A file that is not a valid
  document raises `CorruptObject`, which carries the signature and the
  bytes of the version read, so that a repair replaces that version and
  nothing newer;
- `ensure_folders(root, rel)`: create the missing folders of a copy,
  durably, refusing symlinked ones;
- `keep_aside(root, rel, corrupt)`: before a corrupt copy is replaced, a
  hard link to it in `<root>/.corrupt/<rel>.<UTC timestamp>` (a dot-folder:
  no listing or replication ever takes it for a database).

No threads and no state here: `replication.py` decides what to copy.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from engine.atomic_files import fsync_folder
from engine.object_format import (CORRUPT_FOLDER, DATABASE_MARKER, FOLDER_KINDS, InvalidDocument,
                                  check_document, kind_and_name, object_relpath)

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
# O_NONBLOCK: a FIFO planted at an object path must not block the reader.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK


class ObjectRefused(OSError):
    """An object path that is, or lies under, a symlink, or is not a regular file.

    Replication neither reads it, nor copies it, nor writes over it.
    """

    def __init__(self, rel: str, reason: str):
        super().__init__(errno.ELOOP, f"{rel}: {reason}: not followed, not replicated")
        self.reason = reason

    def __str__(self) -> str:
        return self.strerror


class CorruptObject(InvalidDocument):
    """A copy that was read whole and is not a valid document.

    `signature` and `data` are those of the version that was read: a repair
    must replace that version, never a newer one written meanwhile.
    """

    def __init__(self, invalid: InvalidDocument, signature: "FileSignature", data: bytes):
        super().__init__(invalid.where, invalid.reason)
        self.signature = signature
        self.data = data


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
    def of(cls, stat_result: os.stat_result) -> "FileSignature":
        return cls(stat_result.st_ino, stat_result.st_mtime_ns, stat_result.st_size)


@dataclass(frozen=True)
class ObjectCopy:
    """One server's valid copy of one object file, summarised."""

    change: int
    dropped: bool
    digest: bytes
    signature: FileSignature

    def same_bytes(self, other: "ObjectCopy") -> bool:
        return self.digest == other.digest and self.signature.size == other.signature.size


def relpath_under(root: str, path: str) -> str | None:
    """The object relpath of absolute `path` inside data directory `root`, or None."""
    prefix = root.rstrip(os.sep) + os.sep
    if not path.startswith(prefix):
        return None
    return object_relpath(path[len(prefix):].split(os.sep))


# --------------------------------------------------------------------------
# listing


def list_object_files(root: Path, refused: dict[str, str] | None = None) -> set[str]:
    """Relative paths of every object file under `root` (missing root: none).

    Symlinks are not followed; when `refused` is given, each symlinked
    database folder, kind folder or object file found is added to it
    (relative path -> reason).
    """
    found: set[str] = set()
    refused = refused if refused is not None else {}
    try:
        databases = list(os.scandir(root))
    except (FileNotFoundError, NotADirectoryError):
        return found
    for database in databases:
        if database.name.startswith("."):
            continue  # the lock file, .corrupt, temp files
        if database.is_symlink():
            if object_relpath([database.name, DATABASE_MARKER]):
                refused[database.name] = "a symlinked database folder"
            continue
        if not database.is_dir(follow_symlinks=False):
            continue
        try:
            entries = list(os.scandir(database.path))
        except OSError:
            continue
        for entry in entries:
            rel = f"{database.name}/{entry.name}"
            if entry.name == DATABASE_MARKER and object_relpath([database.name, entry.name]):
                if entry.is_symlink():
                    refused[rel] = "a symlink"
                elif entry.is_file(follow_symlinks=False):
                    found.add(rel)
            elif entry.name in FOLDER_KINDS:
                if entry.is_symlink():
                    refused[rel] = "a symlinked folder"
                elif entry.is_dir(follow_symlinks=False):
                    _list_kind_folder(database.name, entry, found, refused)
    return found


def _list_kind_folder(database: str, folder: os.DirEntry, found: set[str],
                      refused: dict[str, str]) -> None:
    try:
        entries = list(os.scandir(folder.path))
    except OSError:
        return
    for entry in entries:
        rel = object_relpath([database, folder.name, entry.name])
        if rel is None:
            continue
        if entry.is_symlink():
            refused[rel] = "a symlink"
        elif entry.is_file(follow_symlinks=False):
            found.add(rel)


# --------------------------------------------------------------------------
# reading without following symlinks


def _open_parent(root: Path, rel: str) -> int | None:
    """A descriptor of the folder holding `rel`, walked without following symlinks.

    None when a folder on the way is missing (or is a plain file: no copy
    can be there). The caller closes the descriptor.
    """
    folders = rel.split("/")[:-1]
    try:
        descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None  # the whole data directory is gone: no copy there (yet)
    for depth, folder in enumerate(folders):
        try:
            child = os.open(folder, _FOLDER_FLAGS, dir_fd=descriptor)
        except OSError as error:
            try:
                if error.errno in (errno.ENOTDIR, errno.ELOOP) and _is_symlink(folder, descriptor):
                    raise ObjectRefused(rel, f"{'/'.join(folders[:depth + 1])} is a symlink") \
                        from None
                if error.errno in (errno.ENOENT, errno.ENOTDIR):
                    return None
                raise
            finally:
                os.close(descriptor)
        os.close(descriptor)
        descriptor = child
    return descriptor


def _is_symlink(name: str, folder: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def stat_object(root: Path, rel: str) -> os.stat_result | None:
    """The `stat` of the object file `rel` (not followed); None if there is none."""
    parent = _open_parent(root, rel)
    if parent is None:
        return None
    try:
        found = os.stat(rel.rsplit("/", 1)[-1], dir_fd=parent, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    finally:
        os.close(parent)
    _check_regular(rel, found)
    return found


def _check_regular(rel: str, found: os.stat_result) -> None:
    if stat.S_ISLNK(found.st_mode):
        raise ObjectRefused(rel, "a symlink")
    if not stat.S_ISREG(found.st_mode):
        raise ObjectRefused(rel, "not a regular file")


def read_object(root: Path, rel: str) -> tuple[ObjectCopy, bytes] | None:
    """Read one copy: its summary and its bytes; None when the file is missing.

    Raises ObjectRefused (a symlink on the way), CorruptObject (not a valid
    document, checked whole), OSError for other I/O failures.
    """
    parent = _open_parent(root, rel)
    if parent is None:
        return None
    try:
        descriptor = os.open(rel.rsplit("/", 1)[-1], _FILE_FLAGS, dir_fd=parent)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ObjectRefused(rel, "a symlink") from None
        raise
    finally:
        os.close(parent)
    try:
        found = os.fstat(descriptor)
        _check_regular(rel, found)
        chunks = []
        while chunk := os.read(descriptor, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(descriptor)
    data = b"".join(chunks)
    signature = FileSignature.of(found)
    try:
        document = check_document(data, rel, *kind_and_name(rel))
    except InvalidDocument as invalid:
        raise CorruptObject(invalid, signature, data) from None
    copy = ObjectCopy(change=document["change"], dropped=bool(document.get("dropped", False)),
                      digest=hashlib.blake2b(data, digest_size=16).digest(), signature=signature)
    return copy, data


def same_content(first: bytes, second: bytes, relpath: str) -> bool:
    """True if two copies hold the same object (bytes, or decoded JSON)."""
    if first == second:
        return True
    try:
        return check_document(first, relpath) == check_document(second, relpath)
    except InvalidDocument:
        return False


# --------------------------------------------------------------------------
# writing


def ensure_folders(root: Path, rel: str) -> None:
    """Create the missing folders of `rel` under `root`, each creation made durable.

    Raises ObjectRefused for a symlinked folder, NotADirectoryError for a
    file where a folder should be.
    """
    if not os.path.isdir(root):
        os.makedirs(root, exist_ok=True)  # a data directory removed by hand: filled again
    current = root
    for folder in rel.split("/")[:-1]:
        current = current / folder
        try:
            found = os.lstat(current)
        except FileNotFoundError:
            try:
                os.mkdir(current)
            except FileExistsError:
                found = os.lstat(current)
            else:
                fsync_folder(current.parent)
                continue
        if stat.S_ISLNK(found.st_mode):
            raise ObjectRefused(rel, f"{current.relative_to(root)} is a symlink")
        if not stat.S_ISDIR(found.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, f"{current.relative_to(root)} is not a folder")


def keep_aside(root: Path, rel: str, corrupt: CorruptObject) -> Path:
    """Keep the corrupt copy at `rel` in `<root>/.corrupt/<rel>.<timestamp>`; its path.

    A hard link (the object path keeps a file until the repair's rename);
    where the file system refuses one, a copy of the bytes that were read.
    Call it holding the directory's write lock, after checking that the
    file is still the corrupt version.
    """
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    kept_rel = f"{CORRUPT_FOLDER}/{rel}.{stamp}"
    ensure_folders(root, kept_rel)
    kept = root / kept_rel
    for attempt in range(100):
        candidate = kept if attempt == 0 else kept.with_name(f"{kept.name}.{attempt}")
        try:
            os.link(root / rel, candidate, follow_symlinks=False)
            return candidate
        except FileExistsError:
            continue
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
        with open(candidate, "xb") as handle:
            handle.write(corrupt.data)
            os.fsync(handle.fileno())
        return candidate
    raise FileExistsError(errno.EEXIST, f"{kept}: too many corrupt copies kept this microsecond")
