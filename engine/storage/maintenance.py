"""Whole-directory care of a data directory: recovery at open, format upgrade, checkpoint files.

What a process holding the directory's owner lock (engine/storage/data_owner.py)
does when it opens it, and what a checkpoint writes (docs/STORAGE.md):

- `recover`: remove every temp file (debris of a process that died in the
  middle of a write: nobody else writes here), cut every journal's torn
  tail (a crash in the middle of an append: engine/storage/journal.py), then
  `upgrade`;
- `upgrade`: storage format 1 -> 2. Each format 1 document is rewritten as
  format 2 (same content, same change counter, atomically), then the
  directory's marker `.tahiry.format` says 2. Crash-safe: every step is
  atomic and running it again redoes only what is left. Format 2 documents
  make a format 1 program refuse the directory instead of reading tables
  without their journals;
- `remove_temp_files(root, older_than_s)`: the cleanup without the lock
  (only files older than that, which no live writer still uses);
- `journaled_tables`: the tables that have a journal (a clean stop
  checkpoints them all); `write_snapshot`: a table's new snapshot.

Symlinked folders are never entered (they may lead out of the directory).
"""

from __future__ import annotations

import datetime
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from engine.storage import journal
from engine.storage.atomic_files import atomic_write, encode_document, fsync_folder, is_temp_file
from engine.storage.object_format import (
    ACCOUNT_FOLDER,
    CORRUPT_FOLDER,
    DATABASE_KIND_FOLDERS,
    DATABASE_MARKER,
    FORMAT_VERSION,
    KIND_FOLDERS,
)

FORMAT_MARKER = ".tahiry.format"

log = logging.getLogger(__name__)


def _folders(root: Path) -> Iterator[Path]:
    """The root, each database folder and its kind folders, grants and the accounts' folder
    included (no symlinked folder)."""
    yield root
    try:
        databases = [Path(entry.path) for entry in os.scandir(root)
                     if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(".")]
    except OSError:
        return
    for database in sorted(databases):
        yield database
        for folder in (*DATABASE_KIND_FOLDERS.values(), ACCOUNT_FOLDER):
            path = database / folder
            if path.is_dir() and not path.is_symlink():
                yield path


def _files(folder: Path) -> list[os.DirEntry]:
    try:
        return [entry for entry in os.scandir(folder) if entry.is_file(follow_symlinks=False)]
    except OSError:
        return []


def remove_temp_files(root: Path, older_than_s: float = 0.0) -> int:
    """Delete temp files of interrupted writes older than `older_than_s`; how many."""
    removed = 0
    limit = time.time() - older_than_s
    for folder in _folders(root):
        for entry in _files(folder):
            if not is_temp_file(entry.name):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime <= limit:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                pass
    return removed


def journaled_tables(root: Path) -> list[Path]:
    """The snapshot path of every table that has a journal beside it."""
    tables = []
    for folder in _folders(root):
        if folder.name != KIND_FOLDERS["table"]:
            continue
        for entry in _files(folder):
            if journal.is_journal_file(entry.name):
                tables.append(Path(entry.path).with_suffix(".json"))
    return tables


def write_snapshot(path: Path, document: dict, durable: bool = True) -> None:
    """A table's whole current version as its snapshot (format 2), atomically."""
    atomic_write(path, encode_document({**document, "format": FORMAT_VERSION}), durable=durable)


def recover(root: Path, durable: bool = True) -> None:
    """Make a directory this process owns whole again after a crash, and upgrade it."""
    removed = remove_temp_files(root)
    if removed:
        log.info("removed %d temp files left by an interrupted write", removed)
    for table in journaled_tables(root):
        try:
            damaged = _keep_damaged_journal(root, table, durable)
            cut = journal.cut_torn_tail(journal.journal_path(table))
        except OSError as error:
            log.error("cannot check the journal of %s: %s", table.relative_to(root), error)
            continue
        if cut and not damaged:
            log.warning("cut a torn journal tail of %d bytes from %s (a write that never "
                        "finished: it was never acknowledged)", cut, table.relative_to(root))
    upgrade(root, durable=durable)


def _keep_damaged_journal(root: Path, table: Path, durable: bool = True) -> bool:
    """A journal with valid entries after an invalid line (damage, not a torn tail): its bytes
    kept in `.corrupt/` before recovery cuts it, and the cut logged as an error; True if so.

    Those entries were written, maybe acknowledged; nothing after the damage
    chains, so the store can read no further (a peer's copy repairs it), but
    the bytes stay for whoever can mend the line by hand.
    """
    path = journal.journal_path(table)
    found = journal.read(path)
    if found is None or not found[0].torn:
        return False
    reading, _ = found
    data = path.read_bytes()
    if not journal.valid_line_after(data, reading.end):
        return False
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    rel = path.relative_to(root)
    kept = root / CORRUPT_FOLDER / rel.parent / f"{rel.name}.{stamp}"
    kept.parent.mkdir(parents=True, exist_ok=True)
    with open(kept, "xb") as handle:
        handle.write(data)
        if durable:
            os.fsync(handle.fileno())
    if durable:
        for folder in reversed(kept.relative_to(root).parents):
            fsync_folder(root / folder)
    last = reading.entries[-1].change if reading.entries else None
    log.error("the journal of %s is damaged after %s: its valid entries after the damage are "
              "cut (they cannot be read without the damaged one); the journal is kept as %s",
              table.relative_to(root), f"change {last}" if last is not None else "its start",
              kept.relative_to(root))
    return True


def upgrade(root: Path, durable: bool = True) -> int:
    """Rewrite format 1 documents as format 2, then mark the directory; how many were rewritten."""
    marker = root / FORMAT_MARKER
    try:
        if orjson.loads(marker.read_bytes()).get("format") == FORMAT_VERSION:
            return 0
    except (OSError, ValueError, AttributeError):
        pass
    rewritten = 0
    for folder in _folders(root):
        if folder == root:
            continue
        for entry in _files(folder):
            if not entry.name.endswith(".json") or entry.name.startswith("."):
                continue
            if folder.name not in KIND_FOLDERS.values() and entry.name != DATABASE_MARKER:
                continue
            rewritten += _upgrade_file(Path(entry.path), durable)
    try:
        atomic_write(marker, orjson.dumps({"format": FORMAT_VERSION}), durable=durable)
    except OSError as error:  # a read-only directory: it stays readable, try again next time
        log.error("cannot mark %s as format %d: %s", root, FORMAT_VERSION, error)
    if rewritten:
        log.info("upgraded %d documents of %s to storage format %d", rewritten, root,
                 FORMAT_VERSION)
    return rewritten


def _upgrade_file(path: Path, durable: bool) -> int:
    try:
        document = orjson.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        log.warning("upgrade: %s left as it is (%s)", path, error)  # a corrupt copy: healed elsewhere
        return 0
    if not isinstance(document, dict) or document.get("format") != 1:
        return 0
    try:
        atomic_write(path, encode_document({**document, "format": FORMAT_VERSION}), durable=durable)
    except OSError as error:
        log.error("upgrade: cannot rewrite %s: %s", path, error)
        return 0
    return 1
