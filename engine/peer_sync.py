"""One data directory's view of its peers' copies: what to pull before a write, what fences a commit.

`PeerSync` is the part of "pull on write, fence on commit" (docs/STORAGE.md,
"Peers") that only looks at the peers' files; `engine.storage.Store` owns
the batch bookkeeping, the local cache and the writes, and calls it:

- `newer_copy(...)`: the newest valid peer copy of an object whose counter
  is larger than the local one (header reads first, the whole file only for
  the candidate), or None; equal counters with different sizes are logged
  once as a conflict (the local copy is kept);
- `commit_locks()`: this directory's write lock and those of the peers that
  exist, for the store to hold while it checks the fence and renames;
- `fence_violation(...)`: under those locks, the first file about to be
  written that this directory or a peer already holds at a counter >= the
  new one (a byte-identical database marker or tombstone excepted: that is
  the balancer's broadcast DDL written on every server);
- `object_names(...)`: every object name of a database folder here or on a
  peer (dropping a database pulls them all first).

Unreadable peer copies (torn, garbage, wrong kind or name) are ignored for
every decision and logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from engine.peers import (DirectoryLock, PeerCopy, PeerSource, UnreadableCopy, read_change,
                          read_copy)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FenceViolation:
    """A file that must not be renamed: `holder` ("" for this directory) has it at `change`."""

    rel: Path
    holder: str
    change: int
    ours: int


class PeerSync:
    """The peers of one data directory, their copies and their write locks."""

    def __init__(self, root: Path, peers: PeerSource):
        self.root = Path(root)
        self._real_root = os.path.realpath(self.root)
        self._peers = peers
        self.own_lock = DirectoryLock(self.root)
        self._locks: dict[Path, DirectoryLock] = {}
        self._source: dict | None = None
        self._roots: dict[str, Path] = {}
        self._conflicts_seen: set[tuple[str, str, int]] = set()

    def roots(self) -> dict[str, Path]:
        """Peer id -> data directory (this directory itself never listed)."""
        current = self._peers.current()
        if current is not self._source:
            self._source = current
            self._roots = {peer: root for peer, root in current.items()
                           if os.path.realpath(root) != self._real_root}
        return self._roots

    def commit_locks(self) -> list[DirectoryLock]:
        """This directory's lock and those of the peers whose directory exists."""
        locks = [self.own_lock]
        for root in self.roots().values():
            if not os.path.isdir(root):
                continue  # nothing there to fence against
            lock = self._locks.get(root)
            if lock is None:
                lock = self._locks[root] = DirectoryLock(root)
            locks.append(lock)
        return locks

    # ----------------------------------------------------------- pull on write

    def newer_copy(self, path: Path, kind: str, name: str, local_change: int) -> PeerCopy | None:
        """The newest valid peer copy of the object at `path` newer than `local_change`."""
        rel = path.relative_to(self.root)
        candidates: list[tuple[int, str, Path, Path]] = []
        for peer, root in self.roots().items():
            copy_path = root / rel
            try:
                change = read_change(copy_path)
            except (UnreadableCopy, OSError) as error:
                log.warning("pull: ignoring %s's copy of %s: %s", peer, rel, error)
                continue
            if change is None or change < local_change:
                continue
            if change == local_change:
                self._note_conflict(path, copy_path, peer, change)
                continue
            candidates.append((change, peer, copy_path, root))
        for _, peer, copy_path, root in sorted(candidates, reverse=True):
            if not os.path.realpath(copy_path).startswith(os.path.realpath(root) + os.sep):
                log.warning("pull: %s's copy of %s leads outside %s (symlink): ignored",
                            peer, rel, root)
                continue
            try:
                found = read_copy(copy_path, kind, name)
            except (UnreadableCopy, OSError) as error:
                log.warning("pull: ignoring %s's copy of %s: %s", peer, rel, error)
                continue
            if found is not None and found[0]["change"] > local_change:
                return PeerCopy(peer, copy_path, found[0]["change"], *found)
        return None

    def _note_conflict(self, path: Path, copy_path: Path, peer: str, change: int) -> None:
        """Equal counters: the copies should be identical; log once if their sizes differ."""
        try:
            differ = os.stat(path).st_size != os.stat(copy_path).st_size
        except OSError:
            return
        seen = (str(path), peer, change)
        if differ and seen not in self._conflicts_seen:
            self._conflicts_seen.add(seen)
            log.warning("pull: %s and %s's copy both have change %d but differ: keeping the "
                        "local copy (the next write settles it)", path.relative_to(self.root),
                        peer, change)

    def conflicts(self) -> list[dict]:
        """Objects seen at the same counter here and on a peer with different sizes (hand edits)."""
        return [{"object": str(Path(path).relative_to(self.root)), "peer": peer, "change": change}
                for path, peer, change in sorted(self._conflicts_seen)]

    def object_names(self, database: str, folder: str) -> set[str]:
        """File stems of `<db>/<folder>/*.json` here and on every peer (not validated)."""
        names: set[str] = set()
        for root in [self.root, *self.roots().values()]:
            try:
                names.update(entry.name[:-len(".json")]
                             for entry in os.scandir(root / database / folder)
                             if entry.name.endswith(".json") and not entry.name.startswith("."))
            except OSError:
                continue
        return names

    # ------------------------------------------------------------ commit fence

    def fence_violation(self, files: list[tuple[Path, dict]]) -> FenceViolation | None:
        """The first (path, new document) that this directory or a peer holds at >= its counter.

        Call it holding `commit_locks()`, right before renaming.
        """
        return first_violation(self.root, [("", self.root), *self.roots().items()], files)


def first_violation(root: Path, holders: list[tuple[str, Path]],
                    files: list[tuple[Path, dict]]) -> FenceViolation | None:
    """The first (path under `root`, new document) that one of `holders` has at >= its counter.

    `holders`: ("" for this directory, its root) and (peer id, peer root);
    a file's new counter is the one the statement read + 1, so any copy at
    or above it is a version the statement did not see.
    """
    for path, document in files:
        change = document["change"]
        rel = path.relative_to(root)
        for holder, holder_root in holders:
            copy_path = holder_root / rel
            try:
                found = read_change(copy_path)
                if found is None or found < change:
                    continue
                # A torn copy whose header survived must not stop writes.
                copy = read_copy(copy_path, document["kind"], document["name"])
            except (UnreadableCopy, OSError) as error:
                log.warning("fence: ignoring unreadable copy %s: %s", copy_path, error)
                continue
            if copy is None or copy[0]["change"] < change:
                continue
            if copy[0]["change"] == change and _same_broadcast_write(document, copy[1]):
                continue
            log.warning("fence: %s holds %s at change %d >= %d: not written",
                        holder or "this directory", rel, copy[0]["change"], change)
            return FenceViolation(rel, holder, copy[0]["change"], change)
    return None


def _same_broadcast_write(document: dict, other: bytes) -> bool:
    """Whether a copy at the same counter is the very same database marker or tombstone.

    The load balancer sends `manamboara/ravao tahiry` to every server, and
    each writes identical markers and tombstones from the same base: one
    write done twice, not a conflict. (Never for live tables: two identical
    inserts on two servers are two writes.)
    """
    if document["kind"] != "database" and not document["dropped"]:
        return False
    try:
        return orjson.loads(other) == document
    except orjson.JSONDecodeError:
        return False
