"""Atomic, durable file replacement: the one implementation of a write that a crash cannot tear.

`atomic_write`: temp file `.<name>.<random>.tmp` in the same folder
(`O_EXCL`), fsync, `os.replace`, fsync of the folder. A crash leaves the old
file or the new one; with a directory lock, an optional last check runs
right before the rename (replication's copies and repairs use it).
`write_durable_temp` is its first half (the group commit prepares every
file before renaming any).
`encode_document` is how documents become bytes (compact JSON ending with
its checksum, docs/STORAGE.md).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from engine.storage.object_format import sealed
from engine.storage.peers import DEFAULT_LOCK_TIMEOUT_S, LOCK_POLL_MAX_S, DirectoryLock, holding
from engine.storage.row_list import encode_default

TEMP_SUFFIX = ".tmp"


def encode_document(document: dict) -> bytes:
    """Compact JSON bytes ending with the document's checksum (`object_format.sealed`); falls
    back to `json` for what orjson refuses."""
    try:
        body = orjson.dumps(document, default=encode_default)
    except TypeError:
        body = json.dumps(document, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False, default=encode_default).encode("utf-8")
    return sealed(body) if document else body


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


def write_all(descriptor: int, data: bytes) -> None:
    """Every byte of `data` written at `descriptor`: a short write (a disk filling up)
    goes on with the rest until it errs (OSError)."""
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


def write_durable_temp(path: Path, data: bytes, durable: bool = True) -> Path:
    """Write `data` to a new temp file beside `path` (O_EXCL) and fsync it.

    Returns the temp file's path; on failure nothing is left behind. The
    folder must exist.
    """
    temp = temp_path_for(path)
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            write_all(descriptor, data)
            if durable:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except BaseException:
        unlink_quietly(temp)
        raise
    return temp


def atomic_write(path: Path, data: bytes, *, durable: bool = True,
                 still_wanted: Callable[[], bool] | None = None,
                 lock: DirectoryLock | None = None,
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                 lock_poll_max_s: float = LOCK_POLL_MAX_S,
                 timed: Callable[[str, float], None] | None = None) -> bool:
    """Replace `path` with `data` atomically and durably; False if `still_wanted()` said no.

    Temp file in the same folder, fsync, `os.replace`, fsync of the folder:
    a crash leaves the old file or the new one, never a torn one. The folder
    must exist. `still_wanted` runs after the temp file is durable, just
    before the rename; with `lock` (the data directory's write lock) both
    run while it is held, so no other writer of that directory can rename
    in between (`lock_poll_max_s`: see engine.storage.peers.holding). Raises
    OSError (LockTimeout included; the temp file removed, `path` intact).
    `timed(phase, ms)`, when given, receives the duration of "write_temp",
    "lock_wait", "locked" (check and rename) and "fsync_folder" (replication
    explains its lag with them).
    """
    laps = _Laps(timed)
    temp = write_durable_temp(path, data, durable)
    laps.lap("write_temp")
    try:
        with holding([lock] if lock is not None else [], lock_timeout_s, lock_poll_max_s):
            laps.lap("lock_wait")
            if still_wanted is not None and not still_wanted():
                unlink_quietly(temp)
                return False
            os.replace(temp, path)
    except BaseException:
        unlink_quietly(temp)
        raise
    laps.lap("locked")
    if durable:
        fsync_folder(path.parent)
    laps.lap("fsync_folder")
    return True


class _Laps:
    """Durations between calls to `lap`, given to `timed` (nothing at all without it)."""

    def __init__(self, timed: Callable[[str, float], None] | None):
        self._timed = timed
        self._last = time.perf_counter() if timed is not None else 0.0

    def lap(self, phase: str) -> None:
        if self._timed is not None:
            now = time.perf_counter()
            self._timed(phase, (now - self._last) * 1000)
            self._last = now


def unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
