"""One data directory's view of its peers' copies: what to pull before a write, what fences a commit.

`PeerSync` is the part of "pull on write, fence on commit" (docs/STORAGE.md,
"Peers") that only looks at the peers' files; `engine.storage.store.Store` owns
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

from engine.storage.object_format import InvalidDocument
from engine.storage.object_state import read_state, version_of
from engine.storage.peers import DirectoryLock, PeerSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewerPeer:
    """A peer whose copy of an object is newer than ours: where, its lock, its version."""

    peer: str
    root: Path
    lock: DirectoryLock
    change: int


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
        return [self.own_lock, *(self.peer_lock(root) for root in self.roots().values()
                                 if os.path.isdir(root))]   # a missing one has nothing to fence

    # ----------------------------------------------------------- pull on write

    def newer_peers(self, path: Path, local_change: int) -> list[NewerPeer]:
        """The peers whose copy of `path` is newer than `local_change`, newest first.

        Versions come from engine/storage/object_state.py `version_of` (the
        snapshot's header and the journal's tail); the copy itself is checked
        when it is shipped (engine/storage/object_copy.py).
        """
        rel = path.relative_to(self.root)
        found: list[NewerPeer] = []
        for peer, root in self.roots().items():
            try:
                version = version_of(root, rel)
            except (InvalidDocument, OSError) as error:
                log.warning("pull: ignoring %s's copy of %s: %s", peer, rel, error)
                continue
            if version is None or version.change < local_change:
                continue
            if version.change == local_change:
                self._note_conflict(path, root / rel, peer, version.change)
                continue
            found.append(NewerPeer(peer, root, self.peer_lock(root), version.change))
        return sorted(found, key=lambda newer: newer.change, reverse=True)

    def peer_lock(self, root: Path) -> DirectoryLock:
        """The one lock instance for a peer's directory (re-entrant while the commit holds it)."""
        lock = self._locks.get(root)
        if lock is None:
            lock = self._locks[root] = DirectoryLock(root)
        return lock

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

        Call it holding `commit_locks()`, right before renaming. A file's new
        counter is the one the statement read + 1, so any copy at or above it
        is a version the statement did not see.
        """
        holders = [("", self.root), *self.roots().items()]
        for path, document in files:
            change = document["change"]
            rel = path.relative_to(self.root)
            for holder, holder_root in holders:
                copy_path = holder_root / rel
                try:
                    found = version_of(holder_root, rel)
                    if found is None or found.change < change:
                        continue
                    # Confirmed whole: a damaged copy whose header survived must not stop writes.
                    state = read_state(holder_root, rel)
                except (InvalidDocument, OSError) as error:
                    log.warning("fence: ignoring unreadable copy %s: %s", copy_path, error)
                    continue
                if state is None or state.version < change:
                    continue
                if state.version == change and _same_broadcast_write(document, copy_path):
                    continue
                log.warning("fence: %s holds %s at change %d >= %d: not written",
                            holder or "this directory", rel, state.version, change)
                return FenceViolation(rel, holder, state.version, change)
        return None


def _same_broadcast_write(document: dict, copy_path: Path) -> bool:
    """Whether a copy at the same counter is the very same database marker or tombstone.

    The load balancer sends `manamboara/ravao tahiry` to every server, and
    each writes identical markers and tombstones from the same base: one
    write done twice, not a conflict. (Never for live tables: two identical
    inserts on two servers are two writes.)
    """
    if document["kind"] != "database" and not document["dropped"]:
        return False
    try:
        return orjson.loads(copy_path.read_bytes()) == document
    except (OSError, orjson.JSONDecodeError):
        return False
