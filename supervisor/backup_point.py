"""The point in time of a backup: taken under the commit locks, copied out after them.

A running server's data directory changes under a plain copy: a table's
journal is folded into a new snapshot and removed (a checkpoint), a batch
renames several files one after the other, replication appends or installs
copies. Copied file by file, a table can come out as an old snapshot
without the journal that held its later rows (a gap), or a batch half in.

`take_point(sources)` holds the commit locks of every given data directory
(`.tahiry.lock`, engine/storage/peers.py `holding`, in the order every
server takes them: engine/storage/peer_sync.py `commit_lock_order`) for as
long as it takes to:

- list each directory's object files (supervisor/objectfiles.py, no symlink
  followed) and read each copy's version (`object_state.version_of`: the
  snapshot's header and the journal's last line);
- for each object, choose the copy at the newest version (the first
  source, the chosen server, wins a tie): every commit certifies against
  all of these directories and holds their locks while it renames or
  appends, so with all of them held no batch is halfway anywhere, and the
  newest copy of each object includes every batch committed before the
  point on any server (a write acknowledged on m2 and not yet replicated
  to m1 is in m2's copy);
- hard-link its snapshot into `<data>/.tahiry.backup/<random>/` (a
  snapshot is never written in place: a later checkpoint or copy renames a
  new file over the name, and the link keeps the old one) and note its
  journal's length (appends only add after it; the entries before it
  never change) through a link too, so a checkpoint removing the journal
  afterwards removes a name, not the bytes.

Writes wait only for that; reads never wait (they take no lock). Then,
locks released, `Point.copies()` reads each object's bytes from the links,
the journal up to its noted length (a torn tail there, a crash's debris,
dropped), and checks the copy whole (`object_state.check_copy`) at the
version noted under the locks: a copy that does not hold it (a damaged
journal cut meanwhile by a repair) fails the backup with one sentence,
never a silent gap. `Point.discard()` removes the links (`.tahiry.backup`
is a dot-folder: never listed, replicated nor served).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from engine.storage import journal
from engine.storage.maintenance import FORMAT_MARKER
from engine.storage.object_format import InvalidDocument
from engine.storage.object_state import check_copy, journal_rel, version_of
from engine.storage.peer_sync import commit_lock_order
from engine.storage.peers import DEFAULT_LOCK_TIMEOUT_S, DirectoryLock, LockTimeout, holding

from .errors import SupervisorError
from .objectfiles import list_object_files

log = logging.getLogger(__name__)

STAGING_FOLDER = ".tahiry.backup"


class PointNotTaken(SupervisorError):
    """The point could not be taken or copied (one sentence); nothing was kept."""


@dataclass(frozen=True)
class Source:
    """A data directory taking part in the point: a server's, by its node id."""

    server: str
    data: Path


@dataclass(frozen=True)
class PointObject:
    """One object as the point holds it: the chosen copy's links and versions."""

    rel: str
    version: int
    dropped: bool
    source: str
    snapshot: Path               # hard link to the snapshot of the point
    journal: Path | None         # hard link to its journal (a live table that had one)
    journal_length: int          # the journal's bytes at the point


@dataclass(frozen=True)
class ObjectCopy:
    """One object's bytes at the point, checked: what goes into the archive."""

    rel: str
    version: int
    source: str
    snapshot: bytes
    journal: bytes


@dataclass
class Point:
    server: str                                    # the chosen server (first source)
    servers: list[str]
    taken: float                                   # time.time() under the locks
    lock_wait_s: float
    paused_s: float                                # how long the locks were held
    objects: list[PointObject] = field(default_factory=list)
    markers: dict[str, bytes] = field(default_factory=dict)   # `.tahiry.format` and such
    refused: dict[str, str] = field(default_factory=dict)     # "server: rel" -> why skipped
    staging: list[Path] = field(default_factory=list)

    def copies(self) -> Iterator[ObjectCopy]:
        """Each object's bytes at the point, checked whole at the version noted (sorted by path)."""
        for item in self.objects:
            yield _copy_of(item)

    def discard(self) -> None:
        """Remove the links (call it in every case once the copies are made)."""
        for folder in self.staging:
            shutil.rmtree(folder, ignore_errors=True)
            try:
                folder.parent.rmdir()   # `.tahiry.backup` itself, when nothing else is in it
            except OSError:
                pass


def clear_staging(sources: list[Source]) -> None:
    """Links a backup left behind (its supervisor killed in the middle): removed. Only one
    backup runs at a time (supervisor/backup.py), so none of them is in use."""
    for source in sources:
        shutil.rmtree(source.data / STAGING_FOLDER, ignore_errors=True)


def take_point(sources: list[Source], lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S) -> Point:
    """The point in time of these directories (module docstring); the first source is the
    chosen server. Raises PointNotTaken (nothing left behind)."""
    if not sources:
        raise PointNotTaken("no server's data directory to back up")
    locks = [DirectoryLock(source.data, order=commit_lock_order(source.server, source.data))
             for source in sources]
    staging = {source.server: source.data / STAGING_FOLDER / secrets.token_hex(6)
               for source in sources}
    point = Point(sources[0].server, [source.server for source in sources], 0.0, 0.0, 0.0,
                  staging=list(staging.values()))
    asked = time.monotonic()
    try:
        with holding(locks, lock_timeout_s):
            held = time.monotonic()
            point.lock_wait_s = held - asked
            point.taken = time.time()
            _take_under_locks(sources, staging, point)
            point.paused_s = time.monotonic() - held
    except LockTimeout as error:
        point.discard()
        raise PointNotTaken(f"the commit locks could not be taken: {error}") from None
    except OSError as error:
        point.discard()
        raise PointNotTaken(f"the point could not be taken: {error}") from None
    except BaseException:
        point.discard()
        raise
    finally:
        for lock in locks:
            lock.close()
    return point


def _take_under_locks(sources: list[Source], staging: dict[str, Path], point: Point) -> None:
    chosen: dict[str, tuple[int, bool, Source]] = {}
    for source in sources:   # the chosen server first: it wins ties
        refused: dict[str, str] = {}
        for rel in sorted(list_object_files(source.data, refused)):
            try:
                found = version_of(source.data, rel)
            except (OSError, InvalidDocument) as error:
                point.refused[f"{source.server}: {rel}"] = f"unreadable: {error}"
                continue
            if found is None:
                continue
            best = chosen.get(rel)
            if best is None or found.change > best[0]:
                chosen[rel] = (found.change, found.dropped, source)
        for rel, why in refused.items():
            point.refused[f"{source.server}: {rel}"] = why
    for index, rel in enumerate(sorted(chosen)):
        change, dropped, source = chosen[rel]
        folder = staging[source.server]
        folder.mkdir(parents=True, exist_ok=True)
        snapshot = folder / f"{index}.json"
        os.link(source.data / rel, snapshot, follow_symlinks=False)
        journal_link, length = None, 0
        journal_name = journal_rel(rel)
        if journal_name is not None and not dropped:
            candidate = folder / f"{index}.journal"
            try:
                os.link(source.data / journal_name, candidate, follow_symlinks=False)
                length = os.stat(candidate).st_size
                journal_link = candidate
            except FileNotFoundError:
                pass
        point.objects.append(PointObject(rel, change, dropped, source.server, snapshot,
                                         journal_link, length))
    first = sources[0].data / FORMAT_MARKER
    try:
        point.markers[FORMAT_MARKER] = first.read_bytes()
    except FileNotFoundError:
        pass


def _copy_of(item: PointObject) -> ObjectCopy:
    snapshot = item.snapshot.read_bytes()
    lines = b""
    if item.journal is not None:
        with open(item.journal, "rb") as handle:
            lines = handle.read(item.journal_length)
        # A torn tail (a crash's debris, never acknowledged) is not part of any version.
        lines = lines[:journal.parse(lines).end]
    try:
        state = check_copy(item.rel, snapshot, lines)
    except InvalidDocument as error:
        raise PointNotTaken(f"{item.source}'s copy of {item.rel} is not valid ({error.reason}); "
                            f"the replicator repairs it from another server: try again") from None
    if state.version != item.version:
        raise PointNotTaken(f"{item.source}'s copy of {item.rel} reads at version "
                            f"{state.version}, not {item.version} as at the point (repaired "
                            f"meanwhile?): try again")
    return ObjectCopy(item.rel, item.version, item.source, snapshot, lines)
