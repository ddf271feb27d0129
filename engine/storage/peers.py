"""Other servers' data directories, as one server's store sees them.

All servers of a cluster run on one machine and the supervisor copies object
files between their data directories (supervisor/replication.py). That copy
is asynchronous, so when an object's writes move to another server (its
owner died or froze, or came back) the new owner may not have the previous
owner's last acknowledged version yet. The store closes that gap with
"pull on write, fence on commit" (docs/STORAGE.md, "Peers"); this module
holds the pieces that do not depend on the store:

- `PeerSource`: what the store needs to know of cluster membership (the
  peers' data directories as of now); `FixedPeers` is the plain one. The
  server's `nodes/server/membership.py` implements it from `--peer` options and
  the supervisor's peers file.
- (a copy's version and the copy itself: engine/storage/object_state.py and
  engine/storage/object_copy.py, shared with replication;)
- `DirectoryLock`: the cross-process write lock of one data directory
  (`flock` on `<data>/.tahiry.lock`). A server holds its own and its peers'
  locks, taken in one global order, while it checks the fence and renames
  its files; replication holds the destination's lock while it checks and
  renames a copy. So "check the other copies, then rename" is atomic with
  respect to every other writer of these directories.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from engine.errors import EngineError, StorageFault
from engine.storage.object_format import InvalidDocument

if TYPE_CHECKING:
    from engine.storage.object_copy import Shipment
    from engine.storage.object_state import ObjectVersion

LOCK_FILE_NAME = ".tahiry.lock"
DEFAULT_LOCK_TIMEOUT_S = 8.0  # > the supervisor's time to replace a frozen server (~6 s)

log = logging.getLogger(__name__)


# A peer's file exists but is not a valid object document (torn, garbage):
# the one exception class of the format checks (engine/storage/object_format.py).
UnreadableCopy = InvalidDocument


class LockTimeout(OSError, EngineError):
    """A directory's write lock stayed held by another process for too long."""

    def __init__(self, path: Path, timeout_s: float):
        super().__init__(errno.ETIMEDOUT, f"write lock {path} still held after {timeout_s:g}s")
        self.lock_path = path


# --------------------------------------------------------------------------
# who the peers are: the store asks, cluster membership answers


class PeerSource(Protocol):
    """Who the peers are, as of now: each one's data directory, or a `Peer` to ask.

    Cluster membership (who the peers are, how a server learns of them) is
    not the engine's concern: a server passes one of these to its Store
    (nodes/server/membership.py reads `--peer` options and the supervisor's peers
    file); the store only asks for the current list before each pull and
    each commit. A directory (a peer on this machine) is read and locked
    directly (engine/storage/folder_peer.py); a peer on another machine is a
    `Peer` object that asks it over the network (nodes/server/remote_peer.py).
    The mapping returned must stay the same object while nothing changed.
    """

    def current(self) -> Mapping[str, Path | Peer]: ...

    def write_lease_problem(self) -> str | None:
        """Why this server may not write now (its write lease: docs/REPLICATION.md,
        "Write leases"), or None: it may (always None where leases are off)."""
        ...

    def leases_on(self) -> bool:
        """Whether write leases are on (then a write waits for its network peers' copies)."""
        ...


class CommitLock(Protocol):
    """A write lock taken by a commit: a directory's flock, or a peer's lease over the network.

    `order`: the key every server sorts its commit locks by (the same for
    one directory on every server, so two commits never wait for each other
    in a circle); `path`: what an error names.
    """

    order: str
    path: Path

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


class Peer(Protocol):
    """Another server's copies, as pull on write and the commit fence ask about them.

    Two implementations: engine/storage/folder_peer.py `FolderPeer` (a data
    directory on this machine, read and flocked directly) and
    nodes/server/remote_peer.py `RemotePeer` (the `.peer` requests of
    nodes/protocol/peer.py). Every method may raise `PeerUnreachable`; the
    answers are those of engine/storage/object_state.py on the peer's files.
    """

    peer_id: str

    @property
    def lock(self) -> CommitLock:
        """Its write lock: taken by a commit (in `order`), and while its copy is read."""
        ...

    def available(self) -> bool:
        """Whether there is a directory to take part (a folder peer's may not exist yet)."""
        ...

    def version(self, rel: str) -> ObjectVersion | None:
        """`object_state.version_of` of the peer's copy (InvalidDocument, OSError)."""
        ...

    def prefetch(self, rels: list[str]) -> None:
        """The `version`s of `rels` about to be asked, asked at once if that is cheaper."""
        ...

    def differs(self, rel: str, local: Path, change: int) -> bool:
        """Whether the peer's copy at `change` (equal to ours) has another size than `local`."""
        ...

    def plan_fence(self, files: list[tuple[str, dict]]) -> None:
        """The files the next commit will ask `fence_violation` about (it may ask early)."""
        ...

    def fence_violation(self, files: list[tuple[str, dict]]) -> tuple[str, int] | None:
        """(rel, version held) of the first file the peer holds at >= its new counter, or None.

        Asked holding its lock; `files` is the very list given to `plan_fence`
        when the commit planned it."""
        ...

    def object_names(self, database: str, folder: str) -> set[str]:
        """File stems of `<db>/<folder>/*.json` on the peer."""
        ...

    def push(self, rel: str, root: Path, change: int) -> None:
        """Bring the peer's copy of `rel` up to ours (at `change`, in `root`) now: write
        leases on, a write is acknowledged only once every machine certified against
        holds it (PeerUnreachable if it cannot be done)."""
        ...

    def fetch(self, rel: str, dest: ObjectVersion | None) -> Shipment | None:
        """What brings a copy at `dest` up to the peer's version (read under its lock), or None."""
        ...


# How the fault of a write refused for a peer starts (nodes/server/storage_faults.py).
PEER_FAULT_REASON = "peer unreachable: "


class PeerUnreachable(OSError, EngineError):
    """A peer could not be asked (down, cut off, too slow, another protocol version)."""

    def __init__(self, peer: str, reason: str):
        super().__init__(errno.EHOSTUNREACH, f"peer {peer} unreachable: {reason}")
        self.peer = peer
        self.reason = reason

    def fault(self, rel: str) -> StorageFault:
        """The clean failure of a write while this peer cannot be asked: nothing written here.

        A storage fault ("not writable here"): the load balancer takes it as
        a backend problem; reads go on being served (docs/REPLICATION.md,
        partitions).
        """
        return StorageFault(
            f"Tsy voasoratra : tsy tratra ny mpizara {self.peer} ({self.reason}) ; tsy nisy "
            f"niova (rien n'a été écrit)", rel, "write", f"{PEER_FAULT_REASON}{self.peer}")


class NoWriteLease(PeerUnreachable):
    """Leases are on and this server holds none now: it may not write (nothing written)."""

    def __init__(self, reason: str):
        super().__init__("write lease", reason)

    def fault(self, rel: str) -> StorageFault:
        return StorageFault(
            f"Tsy voasoratra : tsy manana fahazoan-dalana hanoratra ity mpizara ity "
            f"({self.reason}) ; tsy nisy niova (rien n'a été écrit)", rel, "write",
            f"no write lease: {self.reason}")


class FixedPeers:
    """A peer list that never changes (embedded use and tests)."""

    def __init__(self, peers: Mapping[str, str | os.PathLike | Peer]):
        self._peers: dict[str, Path | Peer] = {
            peer: Path(os.path.abspath(folder)) if isinstance(folder, (str, os.PathLike)) else folder
            for peer, folder in peers.items()}

    def current(self) -> dict[str, Path | Peer]:
        return self._peers

    def write_lease_problem(self) -> str | None:
        return None   # no supervisor grants leases here: writes certify as always

    def leases_on(self) -> bool:
        return False


# --------------------------------------------------------------------------
# the cross-process write lock of a data directory


class DirectoryLock:
    """`flock` on `<data>/.tahiry.lock`: one writer at a time checks-and-renames there.

    The descriptor stays open between uses. The lock file is opened
    read-only (flock does not need write access) and created with the
    built-in `open` only when missing.

    Re-entrant: taken again while held, it counts, and only the last
    release unlocks (a statement that holds every commit lock still pulls
    and commits, which take some of them again). One instance is used by one
    thread at a time (the store's write lock; one per replication worker).
    """

    def __init__(self, root: Path, order: str | None = None):
        self.root = Path(root)
        self.path = self.root / LOCK_FILE_NAME
        self.order = order if order is not None else str(self.path)
        self._descriptor: int | None = None
        self._holds = 0

    def _open(self) -> int:
        if self._descriptor is None:
            try:
                self._descriptor = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                with open(self.path, "ab"):
                    pass
                self._descriptor = os.open(self.path, os.O_RDONLY)
        return self._descriptor

    def try_acquire(self) -> bool:
        if self._holds:
            self._holds += 1
            return True
        descriptor = self._open()
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        # The lock file replaced meanwhile (a folder removed and made again):
        # a lock on the old inode protects nothing; start over on the new one.
        try:
            same = os.stat(self.path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            self.close()
            return self.try_acquire()
        self._holds = 1
        return True

    def release(self) -> None:
        if self._holds > 1:
            self._holds -= 1
            return
        self._holds = 0
        if self._descriptor is not None:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)

    def close(self) -> None:
        self._holds = 0
        if self._descriptor is not None:
            try:
                os.close(self._descriptor)
            finally:
                self._descriptor = None


LOCK_POLL_MAX_S = 0.005
PROMPT_LOCK_POLL_MAX_S = 0.0005


@contextmanager
def holding(locks: Sequence[CommitLock], timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
            poll_max_s: float = LOCK_POLL_MAX_S) -> Iterator[None]:
    """Hold every lock (taken in `order`, so two holders never deadlock).

    Waits at most `timeout_s` in all; raises LockTimeout (nothing held) then.
    A holder frozen by SIGSTOP keeps its lock until it is killed: the
    supervisor's health checks restart it within a few seconds. The lock is
    polled with a growing pause of at most `poll_max_s`; replication asks
    for PROMPT_LOCK_POLL_MAX_S: with a class of students committing all the
    time a copy polled every 5 ms kept losing the lock to them (lock wait
    p99 ~50 ms), and what it guards takes well under a millisecond.
    """
    ordered = sorted(locks, key=lambda lock: lock.order)
    held: list[CommitLock] = []
    deadline = time.monotonic() + timeout_s
    try:
        for lock in ordered:
            pause = min(0.0001, poll_max_s)
            while not lock.try_acquire():
                if time.monotonic() >= deadline:
                    raise LockTimeout(lock.path, timeout_s)
                time.sleep(pause)
                pause = min(pause * 2, poll_max_s)
            held.append(lock)
        yield
    finally:
        for lock in reversed(held):
            try:
                lock.release()
            except OSError as error:  # the descriptor is gone: so is the lock
                log.warning("releasing %s: %s", lock.path, error)
