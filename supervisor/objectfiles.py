"""Object files of a server's data directory, as replication sees them: never through a symlink.

What an object file is and what a valid one holds is engine/storage/object_format.py;
reading a copy (snapshot and journal, without following symlinks) is
engine/storage/object_state.py and engine/storage/nofollow.py; shipping it is
engine/storage/object_copy.py (one implementation for the engine and the
replicator). This module adds what only the replicator needs, always
confined to one data directory:

- `list_object_files(root)`: the object files under it; a symlinked
  database folder, kind folder, object file or journal is not followed but
  returned as refused, for the replicator to report;
- `relpath_under(root, path)`: the object an event's path belongs to (a
  table's journal `<db>/tables/<t>.journal` belongs to `<db>/tables/<t>.json`);
- `keep_aside(root, rel, data)`: before a corrupt file is replaced or cut,
  a hard link to it in `<root>/.corrupt/<rel>.<UTC timestamp>` (a
  dot-folder: no listing or replication ever takes it for a database).

No threads and no state here: `replication.py` decides what to copy.
"""

from __future__ import annotations

import datetime
import errno
import os
from pathlib import Path

from engine.storage.nofollow import ensure_folders, folder_of, read_in
from engine.storage.object_format import CORRUPT_FOLDER, DATABASE_MARKER, FOLDER_KINDS, object_relpath
from engine.storage.object_state import object_of_journal


def relpath_under(root: str, path: str) -> str | None:
    """The object relpath that absolute `path` inside data directory `root` belongs to, or None."""
    prefix = root.rstrip(os.sep) + os.sep
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix):].split(os.sep)
    return object_relpath(object_of_journal(parts) or parts)


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
        parts = [database, folder.name, entry.name]
        table = object_of_journal(parts)
        if table is not None:
            if entry.is_symlink() and (table_rel := object_relpath(table)) is not None:
                refused[table_rel] = "its journal is a symlink"
            continue
        rel = object_relpath(parts)
        if rel is None:
            continue
        if entry.is_symlink():
            refused[rel] = "a symlink"
        elif entry.is_file(follow_symlinks=False):
            found.add(rel)


# --------------------------------------------------------------------------
# keeping a corrupt file aside


def keep_aside(root: Path, rel: str, data: bytes | None = None,
               folder: str = CORRUPT_FOLDER) -> Path:
    """Keep the file at `rel` (a snapshot or a journal) in `<root>/<folder>/<rel>.<timestamp>`
    (`.corrupt`, or `.diverged` for a copy that diverged from the cluster's).

    A snapshot is hard-linked (its path keeps the file until the repair
    renames over it); a journal is copied, since a cut truncates it in
    place and would truncate a link too. Where the file system refuses a
    link, a copy of `data` (the bytes found corrupt) or else of the file as
    it is now. Call it holding the directory's write lock, after checking
    that the file is still the corrupt version. Returns the kept file's path.
    """
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    kept_rel = f"{folder}/{rel}.{stamp}"
    ensure_folders(root, kept_rel)
    kept = root / kept_rel
    # A journal is cut in place (same inode): a link would be cut with it.
    linkable = rel.endswith(".json")
    for attempt in range(100):
        candidate = kept if attempt == 0 else kept.with_name(f"{kept.name}.{attempt}")
        if linkable:
            try:
                os.link(root / rel, candidate, follow_symlinks=False)
                return candidate
            except FileExistsError:
                continue
            except OSError as error:
                if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
        if data is None:
            data = _current_bytes(root, rel)
        try:
            with open(candidate, "xb") as handle:
                handle.write(data)
                os.fsync(handle.fileno())
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(errno.EEXIST, f"{kept}: too many copies kept this microsecond")


def _current_bytes(root: Path, rel: str) -> bytes:
    with folder_of(root, rel) as folder:
        found = read_in(folder, rel.rsplit("/", 1)[-1], rel) if folder is not None else None
    return found[0] if found is not None else b""
