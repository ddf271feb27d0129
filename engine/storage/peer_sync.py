"""One data directory's view of its peers' copies: what to pull before a write, what fences a commit.

`PeerSync` is the part of "pull on write, fence on commit" (docs/STORAGE.md,
"Peers") that only asks the peers about their copies; a peer is an
`engine.storage.peers.Peer`: a data directory on this machine
(engine/storage/folder_peer.py) or a server on another one, asked over the
network (nodes/server/remote_peer.py), whichever the `PeerSource` names; `engine.storage.store.Store` owns
the batch bookkeeping, the local cache and the writes, and calls it:

- `newer_copy(...)`: the newest valid peer copy of an object whose counter
  is larger than the local one (header reads first, the whole file only for
  the candidate), or None; equal counters with different sizes are logged
  once as a conflict (the local copy is kept);
- `commit_locks()`: this directory's write lock and those of the peers that
  exist (a flock, or a lease over the network), for the store to hold while
  it checks the fence and renames; sorted by node id when the store knows
  its own (a server), so every server takes them in one order;
- `fence_violation(...)`: under those locks, the first file about to be
  written that this directory or a peer already holds at a counter >= the
  new one (a byte-identical database marker or tombstone excepted: that is
  the balancer's broadcast DDL written on every server);
- `object_names(...)`: every object name of a database folder here or on a
  peer (dropping a database pulls them all first).

Unreadable peer copies (torn, garbage, wrong kind or name) are ignored for
every decision and logged. A peer that cannot be asked (`PeerUnreachable`)
is never ignored: the write fails cleanly (docs/REPLICATION.md, partitions).
With write leases on, the fence also asks the `PeerSource` whether this
server holds its lease (`NoWriteLease`: the write fails the same clean way).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.storage.folder_peer import FolderPeer
from engine.storage.object_format import InvalidDocument
from engine.storage.object_state import ObjectVersion, version_of
from engine.storage.peers import (
    CommitLock,
    DirectoryLock,
    NoWriteLease,
    Peer,
    PeerSource,
    PeerUnreachable,
)

log = logging.getLogger(__name__)

# Objects seen at one counter with different contents, kept for `.status` (a bound:
# each is logged once; a long-running server must not keep one per write).
MAX_CONFLICTS_KEPT = 256


@dataclass(frozen=True)
class NewerPeer:
    """A peer whose copy of an object is newer than ours: which, and its version."""

    peer: str
    source: Peer
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

    def __init__(self, root: Path, peers: PeerSource, own_id: str | None = None):
        """`own_id`: this server's node id; the commit locks are then ordered by node id."""
        self.root = Path(root)
        self._real_root = os.path.realpath(self.root)
        self._peers = peers
        self._own_id = own_id
        self.own_lock = DirectoryLock(self.root, order=commit_lock_order(own_id, self.root))
        self._own = FolderPeer("", self.root, self.own_lock)
        self._folder_peers: dict[tuple[str, Path], FolderPeer] = {}
        self._source: Mapping | None = None
        self._current: dict[str, Peer] = {}
        # (path, peer, change) -> None: an ordered set, the oldest dropped past its bound
        self._conflicts_seen: dict[tuple[str, str, int], None] = {}
        self._planned: tuple[list, list[tuple[str, dict]]] | None = None

    def peers(self) -> dict[str, Peer]:
        """Peer id -> peer (this directory itself never listed)."""
        current = self._peers.current()
        if current is not self._source:
            self._source = current
            found: dict[str, Peer] = {}
            for peer_id, where in current.items():
                if isinstance(where, (str, os.PathLike)):
                    root = Path(where)
                    if os.path.realpath(root) == self._real_root:
                        continue
                    found[peer_id] = self._folder_peer(peer_id, root)
                else:
                    found[peer_id] = where
            self._current = found
        return self._current

    def _folder_peer(self, peer_id: str, root: Path) -> FolderPeer:
        """The one instance per peer directory (its lock re-entrant while the commit holds it)."""
        key = (peer_id, root)
        peer = self._folder_peers.get(key)
        if peer is None:
            peer = self._folder_peers[key] = FolderPeer(
                peer_id, root, DirectoryLock(root, order=commit_lock_order(
                    peer_id if self._own_id is not None else None, root)))
        return peer

    def write_lease_problem(self) -> str | None:
        """Why this server may not write now (write leases on, none held), or None."""
        return self._peers.write_lease_problem()

    def push_written(self, files: list[tuple[Path, int]]) -> str | None:
        """Write leases on: every network peer brought up to these new versions before the
        write is acknowledged (a machine excluded later then loses no acknowledged
        write: docs/REPLICATION.md, "Write leases", L6). Why not (the write stays
        applied here, its outcome unknown), or None."""
        if not self._peers.leases_on():
            return None
        for peer in self.peers().values():
            for path, change in files:
                try:
                    peer.push(str(path.relative_to(self.root)), self.root, change)
                except OSError as error:   # PeerUnreachable included
                    return f"{peer.peer_id}: {error}"
        return None

    def commit_locks(self) -> list[CommitLock]:
        """This directory's lock and those of the peers that take part."""
        return [self.own_lock, *(peer.lock for peer in self.peers().values() if peer.available())]

    # ----------------------------------------------------------- pull on write

    def newer_peers(self, path: Path, local_change: int) -> list[NewerPeer]:
        """The peers whose copy of `path` is newer than `local_change`, newest first.

        Versions come from engine/storage/object_state.py `version_of` (the
        snapshot's header and the journal's tail); the copy itself is checked
        when it is shipped (engine/storage/object_copy.py). Raises
        PeerUnreachable: a peer that cannot be asked may hold a newer version.
        """
        rel = str(path.relative_to(self.root))
        found: list[NewerPeer] = []
        for peer_id, peer in self.peers().items():
            try:
                version = peer.version(rel)
            except InvalidDocument as error:
                log.warning("pull: ignoring %s's copy of %s: %s", peer_id, rel, error)
                continue
            except PeerUnreachable:
                raise
            except OSError as error:
                log.warning("pull: ignoring %s's copy of %s: %s", peer_id, rel, error)
                continue
            if version is None or version.change < local_change:
                continue
            if version.change == local_change:
                self._note_conflict(path, rel, peer, version)
                continue
            found.append(NewerPeer(peer_id, peer, version.change))
        return sorted(found, key=lambda newer: newer.change, reverse=True)

    def prefetch(self, rels: list[str]) -> None:
        """The versions of `rels` asked of every peer at once (for the `newer_peers` to come).

        A network peer answers them in one request and keeps the answers for
        a moment; an answer used late is harmless: the pull only helps, the
        commit's fence certifies. A peer that cannot be asked is left to
        `newer_peers` to report.
        """
        for peer in self.peers().values():
            try:
                peer.prefetch(rels)
            except OSError:
                continue

    def _note_conflict(self, path: Path, rel: str, peer: Peer, version: ObjectVersion) -> None:
        """Equal counters: the copies should be identical; log once if their snapshots differ.

        Sizes tell only snapshots of one change: a checkpointed copy and one holding
        an older snapshot and journal lines are one version in two sizes (the
        replicator compares contents by digest; this is the server's cheap hint).
        """
        change = version.change
        seen = (str(path), peer.peer_id, change)
        if seen in self._conflicts_seen or not peer.differs(rel, path, change):
            return
        try:
            mine = version_of(self.root, rel)
        except (InvalidDocument, OSError):
            return
        if mine is None or mine.change != change or mine.snapshot_change != version.snapshot_change:
            return   # one version in two shapes (or ours moved meanwhile)
        if len(self._conflicts_seen) >= MAX_CONFLICTS_KEPT:
            del self._conflicts_seen[next(iter(self._conflicts_seen))]
        self._conflicts_seen[seen] = None
        log.warning("pull: %s and %s's copy both have change %d but differ: keeping the "
                    "local copy (the next write settles it)", rel, peer.peer_id, change)

    def conflicts(self) -> list[dict]:
        """Objects seen at the same counter here and on a peer with different sizes (hand edits)."""
        return [{"object": str(Path(path).relative_to(self.root)), "peer": peer, "change": change}
                for path, peer, change in sorted(self._conflicts_seen)]

    def object_names(self, database: str, folder: str) -> set[str]:
        """File stems of `<db>/<folder>/*.json` here and on every peer (not validated)."""
        names = self._own.object_names(database, folder)
        for peer in self.peers().values():
            names |= peer.object_names(database, folder)
        return names

    # ------------------------------------------------------------ commit fence

    def plan_fence(self, files: list[tuple[Path, dict]]) -> None:
        """Tell the peers the fence question of the commit about to take their locks.

        A network peer asks it together with its lease (one round trip for
        both); `fence_violation(files)` with the same list then uses that
        answer. Valid because nobody writes into a peer's directory while
        its lock is held, whenever the question was asked under it.
        """
        relative = [(str(path.relative_to(self.root)), document) for path, document in files]
        self._planned = (files, relative)
        for peer in self.peers().values():
            peer.plan_fence(relative)

    def fence_violation(self, files: list[tuple[Path, dict]]) -> FenceViolation | None:
        """The first (path, new document) that this directory or a peer holds at >= its counter.

        Call it holding `commit_locks()`, right before renaming. A file's new
        counter is the one the statement read + 1, so any copy at or above it
        is a version the statement did not see. Raises PeerUnreachable.
        """
        planned = self._planned
        self._planned = None
        # Leases on: a server cut from the majority may hold none, and then another
        # side may already write without certifying against it (L1).
        lease_problem = self.write_lease_problem()
        if lease_problem is not None:
            raise NoWriteLease(lease_problem)
        if planned is not None and planned[0] is files:
            relative = planned[1]
        else:
            relative = [(str(path.relative_to(self.root)), document) for path, document in files]
        changes = dict(relative)
        holders: list[tuple[str, Peer]] = [("", self._own), *self.peers().items()]
        for holder, peer in holders:
            if holder and not peer.available():
                continue
            found = peer.fence_violation(relative)
            if found is not None:
                rel, change = found
                log.warning("fence: %s holds %s at change %d >= %d: not written",
                            holder or "this directory", rel, change, changes[rel]["change"])
                return FenceViolation(Path(rel), holder, change, changes[rel]["change"])
        return None


def commit_lock_order(node_id: str | None, root: Path) -> str:
    """A commit lock's sort key: the node id when servers know theirs, else the lock's path."""
    return f"node {node_id}" if node_id is not None else str(Path(root) / ".tahiry.lock")
