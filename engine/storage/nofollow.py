"""Files of a data directory, reached without following any symlink.

Replication (supervisor/replication.py) and the copies between data
directories (engine/storage/object_copy.py) read and write other servers' files. A
symlink planted in a data directory (an object file, or a database or kind
folder) must never lead them outside it, nor make them write through it, so
every access here walks down from the data directory opening each folder
with `O_NOFOLLOW` and opens the file relative to its folder's descriptor
(`openat`): a symlink placed before or during the walk is refused, not
followed.

- `ObjectRefused`: an object path that is, or lies under, a symlink, or is
  not a regular file (a FIFO, a folder); an `OSError`;
- `FileSignature`: (inode, mtime, size), what identifies one version of a
  file without reading it;
- `folder_of(root, rel)`: the descriptor of the folder holding `rel` (None
  when a folder on the way is missing), as a context manager;
- `open_in`, `stat_in`, `read_in`: one file of such a folder;
- `ensure_folders(root, rel)`: create the missing folders of `rel`
  durably, refusing symlinked ones.

`rel` is always relative to the data directory, with '/' separators.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.storage.atomic_files import fsync_folder

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
# O_NONBLOCK: a FIFO planted at an object path must not block the reader.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK


class ObjectRefused(OSError, EngineError):
    """An object path that is, or lies under, a symlink, or is not a regular file.

    Replication neither reads it, nor copies it, nor writes over it.
    """

    def __init__(self, rel: str, reason: str):
        super().__init__(errno.ELOOP, f"{rel}: {reason}: not followed, not replicated")
        self.reason = reason

    def __str__(self) -> str:
        return self.strerror or ""  # always set: __init__ passes (errno, message)


@dataclass(frozen=True)
class FileSignature:
    """What identifies one version of a file on disk without reading it.

    Every snapshot write is an `os.replace` (a new inode); a journal append
    keeps the inode and changes the size and mtime.
    """

    inode: int
    mtime_ns: int
    size: int

    @classmethod
    def of(cls, stat_result: os.stat_result) -> FileSignature:
        return cls(stat_result.st_ino, stat_result.st_mtime_ns, stat_result.st_size)


def _open_parent(root: str | os.PathLike, rel: str) -> int | None:
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


@contextmanager
def folder_of(root: str | os.PathLike, rel: str) -> Iterator[int | None]:
    """The descriptor of the folder holding `rel`, walked without following symlinks.

    None when a folder on the way is missing (or is a plain file: no copy
    can be there). Raises ObjectRefused for a symlinked folder.
    """
    descriptor = _open_parent(root, rel)
    try:
        yield descriptor
    finally:
        if descriptor is not None:
            os.close(descriptor)


def _is_symlink(name: str, folder: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def check_regular(rel: str, found: os.stat_result) -> None:
    """ObjectRefused unless `found` is a regular file."""
    if stat.S_ISLNK(found.st_mode):
        raise ObjectRefused(rel, "a symlink")
    if not stat.S_ISREG(found.st_mode):
        raise ObjectRefused(rel, "not a regular file")


def stat_in(folder: int, name: str, rel: str) -> os.stat_result | None:
    """The `stat` of file `name` in `folder` (not followed); None if there is none."""
    try:
        found = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    check_regular(rel, found)
    return found


def open_in(folder: int, name: str, rel: str, flags: int = READ_FLAGS) -> int | None:
    """A descriptor of regular file `name` in `folder`, opened with O_NOFOLLOW; None if missing.

    Raises ObjectRefused for a symlink or anything but a regular file.
    """
    try:
        descriptor = os.open(name, flags | os.O_NOFOLLOW, dir_fd=folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ObjectRefused(rel, "a symlink") from None
        raise
    try:
        check_regular(rel, os.fstat(descriptor))
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def read_all(descriptor: int) -> bytes:
    """Everything from the current offset of `descriptor` to its end."""
    chunks = []
    while chunk := os.read(descriptor, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def read_in(folder: int, name: str, rel: str) -> tuple[bytes, os.stat_result] | None:
    """The bytes of file `name` in `folder` and the stat of what was read; None if missing."""
    descriptor = open_in(folder, name, rel)
    if descriptor is None:
        return None
    try:
        found = os.fstat(descriptor)
        return read_all(descriptor), found
    finally:
        os.close(descriptor)


def ensure_folders(root: Path, rel: str) -> None:
    """Create the missing folders of `rel` under `root`, each creation made durable.

    Raises ObjectRefused for a symlinked folder, NotADirectoryError for a
    file where a folder should be.
    """
    if not os.path.isdir(root):
        os.makedirs(root, exist_ok=True)  # a data directory removed by hand: filled again
    current = Path(root)
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
