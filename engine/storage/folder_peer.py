"""A peer on this machine: its data directory read and flocked directly (`FolderPeer`).

The one implementation of the questions `engine.storage.peers.Peer` asks,
over a data directory's files: the commit fence's (`fence_violation`: the
first file a directory already holds at a counter >= the one about to be
written), pull on write's (`version`, `fetch`), and a database's object
names. A store asks it of its peers on this machine and of its own
directory; a server answers its network peers' `.peer` requests with it
(nodes/server/peer_service.py), so a question has one answer whichever way
it travels.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from engine.storage.object_copy import Shipment, read_shipment
from engine.storage.object_format import InvalidDocument, decode_document
from engine.storage.object_state import ObjectVersion, read_state, version_of
from engine.storage.peers import DEFAULT_LOCK_TIMEOUT_S, DirectoryLock

log = logging.getLogger(__name__)


class FolderPeer:
    """A data directory on this machine, as a `Peer`."""

    def __init__(self, peer_id: str, root: Path, lock: DirectoryLock | None = None,
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S):
        self.peer_id = peer_id
        self.root = Path(root)
        self._lock = lock if lock is not None else DirectoryLock(self.root)
        self._lock_timeout_s = lock_timeout_s

    @property
    def lock(self) -> DirectoryLock:
        return self._lock

    def __repr__(self) -> str:
        return f"FolderPeer({self.peer_id!r}, {str(self.root)!r})"

    def available(self) -> bool:
        return os.path.isdir(self.root)   # a missing one has nothing to fence

    def version(self, rel: str) -> ObjectVersion | None:
        return version_of(self.root, rel)

    def prefetch(self, rels: list[str]) -> None:
        """Nothing: a header read costs less than remembering it."""

    def size(self, rel: str) -> int | None:
        try:
            return os.stat(self.root / rel).st_size
        except OSError:
            return None

    def differs(self, rel: str, local: Path, change: int) -> bool:
        try:
            return os.stat(local).st_size != os.stat(self.root / rel).st_size
        except OSError:
            return False

    def object_names(self, database: str, folder: str) -> set[str]:
        try:
            return {entry.name[:-len(".json")] for entry in os.scandir(self.root / database / folder)
                    if entry.name.endswith(".json") and not entry.name.startswith(".")}
        except OSError:
            return set()

    def fetch(self, rel: str, dest: ObjectVersion | None) -> Shipment | None:
        return read_shipment(self.root, rel, dest, self._lock, self._lock_timeout_s)

    def plan_fence(self, files: list[tuple[str, dict]]) -> None:
        """Nothing to ask ahead: the folder is read under its lock."""

    def push(self, rel: str, root: Path, change: int) -> None:
        # A folder peer is on this machine: it is lost or cut off with this server,
        # never excluded apart from it, so its copy may follow by replication.
        return None

    def fence_violation(self, files: list[tuple[str, dict]]) -> tuple[str, int] | None:
        """(rel, version held) of the first file this directory holds at >= its new counter.

        Call it holding this directory's lock, right before renaming. A
        damaged copy whose header survived does not stop writes (confirmed
        whole with `read_state`); neither does the very same database marker
        or tombstone (the balancer's broadcast DDL, written on every server).
        """
        for rel, document in files:
            change = document["change"]
            try:
                found = version_of(self.root, rel)
                if found is None or found.change < change:
                    continue
                state = read_state(self.root, rel)
            except (InvalidDocument, OSError) as error:
                log.warning("fence: ignoring unreadable copy %s: %s", self.root / rel, error)
                continue
            if state is None or state.version < change:
                continue
            if state.version == change and same_broadcast_write(document, self.root / rel):
                continue
            return rel, state.version
        return None


def same_broadcast_write(document: dict, copy_path: Path) -> bool:
    """Whether a copy at the same counter is the very same database marker or tombstone.

    The load balancer sends `manamboara/ravao tahiry` to every server, and
    each writes identical markers and tombstones from the same base: one
    write done twice, not a conflict. (Never for live tables: two identical
    inserts on two servers are two writes.)
    """
    if document["kind"] != "database" and not document["dropped"]:
        return False
    try:
        return bool(decode_document(copy_path.read_bytes(), copy_path) == document)
    except (OSError, InvalidDocument):
        return False
