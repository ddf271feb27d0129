"""A number that moves with every change of the rights' files, and decisions kept by it.

`rights_generation(store)`: the sum of the change counters of every
account file, database marker and grant file (docs/STORAGE.md,
"Accounts"), cheap to ask again: a proxy validates its cached answers
with it (`.rights;`), and `decided` keeps a server's rights decisions
(engine/storage/accounts.py's `standing`, `access`) for as long as it
does not move. What is kept lives in the store (`Store.derived`, under
`Store.derived_lock`): nothing global.
"""

from __future__ import annotations

import os
import time

from engine.errors import TahiryError
from engine.storage.cached_reads import FolderWatch
from engine.storage.object_format import ACCOUNT_FOLDER, GRANT_FOLDER, SYSTEM_FOLDER
from engine.storage.store import Store


def rights_generation(store: Store) -> int:
    """A number that grows whenever an account, a grant or a database's owner changes.

    The sum of the change counters of every account file, database marker
    and grant file, tombstones included: each write of one of them raises
    its counter (a copy installed by replication too), and tombstones keep
    theirs, so the sum never comes back to an earlier value (unless files
    are removed by hand), and two servers holding the same files give the
    same number.

    Cheap when nothing changed: those files are only ever renamed into
    their folders (never appended to), so each folder's part is kept with
    the folder's signature and counted again only when the folder changed
    (a signature is trusted once it is `SIGNATURE_AGE_S` old: a file system
    stamps times coarsely). A store that watches its folders (inotify, a
    server's) answers from the last count while no event came at all.
    """
    with store.derived_lock:
        memo = store.derived.setdefault(_MEMO, {})
        assert isinstance(memo, dict)
        if _WATCH not in memo:
            # A store that watches its folders (a server's) gets a watch of the
            # rights' folders only: writes of tables do not move it.
            memo[_WATCH] = FolderWatch.open() if store.watch_generation() is not None else None
        watch = memo[_WATCH]
        generation = watch.generation() if watch is not None else None
        last = memo.get(_WATCHED)
        if generation is not None and last is not None and last[0] == generation:
            return last[1]
        watched = [watch]   # every folder counted is watched first (None: not watched)

        def part(folder: str, count, missing):
            return _folder_part(memo, folder, count, missing, watched)

        root = str(store.root)
        databases = part(root, _database_folders, [])
        total = part(f"{root}/{SYSTEM_FOLDER}/{ACCOUNT_FOLDER}", lambda path: _counters(
            _file_stems(path), store.read_account_raw), 0)
        for database in databases:
            folder = f"{root}/{database}"
            total += part(folder, lambda path, db=database: _counters([db], store.read_marker_raw),
                          0)
            total += part(f"{folder}/{GRANT_FOLDER}", lambda path, db=database: _counters(
                _file_stems(path), lambda name: store.read_raw(db, "grant", name)), 0)
        memo[_WATCHED] = (generation, total) if watched[0] is not None else None
        return total


_MEMO = "rights_generation"
_WATCH = "watch"
_WATCHED = "watched"
# A folder's signature younger than this may not show a change made in the same
# tick of its file system's clock (1 s on some): its part is counted every time.
SIGNATURE_AGE_S = 2.0


def _folder_part(memo: dict, folder: str, count, missing, watched: list):
    """`count(folder)`, or the value kept for the folder's signature when it did not change.

    With a watch (`watched[0]`), the folder is watched before it is looked
    at (a change after that moves the generation); `watched[0]` turns None
    if it cannot be.
    """
    watch = watched[0]
    # Watched before its stat: a change after the stat moves the generation.
    watching = watch is not None and watch.watch((folder,))
    try:
        stat = os.stat(folder)
    except OSError:
        memo.pop(folder, None)
        return missing   # its creation changes its parent folder, watched or stat-ed
    if watch is not None and not watching:
        watched[0] = None
    signature = (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_nlink)
    kept = memo.get(folder)
    if kept is not None and kept[0] == signature:
        return kept[1]
    value = count(folder)
    if time.time() - max(stat.st_mtime_ns, stat.st_ctime_ns) / 1e9 > SIGNATURE_AGE_S:
        memo[folder] = (signature, value)
    else:
        memo.pop(folder, None)
    return value


def _database_folders(root: str) -> list[str]:
    try:
        with os.scandir(root) as entries:
            return sorted(entry.name for entry in entries
                          if not entry.name.startswith(".") and entry.name != SYSTEM_FOLDER
                          and entry.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _counters(names: list[str], read) -> int:
    return sum(_counter(read, name) for name in names)


def _file_stems(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [entry.name[:-len(".json")] for entry in entries
                    if entry.name.endswith(".json") and not entry.name.startswith(".")]
    except OSError:
        return []


def _counter(read, name: str) -> int:
    try:
        document = read(name)
    except TahiryError:
        return 0   # not a valid name, or unreadable: not an object the rights use
    if document is None:
        return 0
    change = document.get("change", 0)
    return change if isinstance(change, int) else 0


# Decisions kept per store (at most this many) with the rights generation they were made at.
MAX_DECISIONS = 4096
_DECISIONS = "rights_decisions"


def decided(store: Store, key: tuple, decide):
    """`decide()`, or the value it gave at the current rights generation.

    Only for a store that watches its folders (a server's, where the
    generation costs a microsecond) and outside a write batch of this
    thread (whose reads must see the batch's own writes): elsewhere the
    files are read every time. Every input of a decision (an account, a
    marker, a grant) is a file the generation counts.
    """
    if store.watch_generation() is None or store.in_own_batch:
        return decide()
    generation = rights_generation(store)
    with store.derived_lock:
        decisions = store.derived.setdefault(_DECISIONS, {})
        assert isinstance(decisions, dict)
        kept = decisions.get(key)
    if kept is not None and kept[0] == generation:
        return kept[1]
    value = decide()
    with store.derived_lock:
        if len(decisions) >= MAX_DECISIONS:
            decisions.clear()
        decisions[key] = (generation, value)
    return value
