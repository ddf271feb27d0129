"""Who owns a data directory: the live server process and the cluster it belongs to.

Two small files at the top of a data directory (docs/STORAGE.md, "Paths"),
both ignored by listings and replication (their names start with a dot):

- `.tahiry.owner`: the live owner. A server takes an exclusive, non-blocking
  `flock` on it at start and keeps it for its whole life. The kernel drops
  the lock when the process ends, however it ends (kill -9 included), so a
  held lock always means a live holder and no stale lock ever needs
  cleaning up. While it holds the lock the server writes into the same file
  (in place: a rename would swap the inode the lock is on) one JSON line
  naming itself: `{"cluster", "node", "pid", "host", "port", "started"}`.
  The record is trusted only while its lock is held.
- `.tahiry.cluster`: the cluster that last used the directory,
  `{"cluster": ID, "data": REALPATH, "claimed": T, "supervisor_pid": PID}`.
  It outlives every process, so a stopped cluster's directories are still
  recognised as its own. A copy of the record in a directory that was
  copied or moved elsewhere (its real path differs from `data`) claims
  nothing: the claim is on the directory where it was made.

This is not `.tahiry.lock` (engine/storage/peers.py `DirectoryLock`): that one is a
commit lock every writer takes for microseconds; this one is held for a
process's life and never blocks a commit.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.storage.atomic_files import atomic_write, fsync_folder

OWNER_FILE = ".tahiry.owner"
CLUSTER_FILE = ".tahiry.cluster"
# The lock is probed by `status` and `up` with a shared lock held for
# microseconds; a server starting at that very instant tries again for this
# long before it calls the directory taken.
ACQUIRE_RETRY_S = 0.5
# A holder writes its record right after it took the lock: a reader that
# finds the lock held and the record not written yet waits this long for it.
RECORD_WAIT_S = 0.5


def make_data_directory(root: Path) -> None:
    """`root` made if missing; NotADirectoryError, saying so, when a file stands there (a
    mkdir's own error would only say "File exists")."""
    if os.path.lexists(root) and not root.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "it is a file, not a directory", str(root))
    root.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class OwnerRecord:
    """The process that holds a data directory (the content of `.tahiry.owner`)."""

    node: str
    pid: int
    host: str
    port: int
    cluster: str | None = None   # None: a server run by hand, outside any cluster
    started: float = 0.0

    def describe(self) -> str:
        if not self.node:
            return "another process (its .tahiry.owner record is not readable)"
        where = f"node {self.node} (pid {self.pid}, {self.host}:{self.port})"
        return where + (f" of cluster {self.cluster}" if self.cluster
                        else ", run by hand outside any cluster")

    def encode(self) -> bytes:
        return (json.dumps(asdict(self), ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> OwnerRecord | None:
        try:
            fields = json.loads(data.decode("utf-8"))
            return cls(node=str(fields["node"]), pid=int(fields["pid"]), host=str(fields["host"]),
                       port=int(fields["port"]), cluster=fields.get("cluster"),
                       started=float(fields.get("started") or 0.0))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


UNKNOWN_OWNER = OwnerRecord(node="", pid=0, host="", port=0)


@dataclass(frozen=True)
class ClusterRecord:
    """The cluster a data directory belongs to (the content of `.tahiry.cluster`)."""

    cluster: str
    data: str = ""                    # the directory's real path when it was claimed
    claimed: float = 0.0
    supervisor_pid: int | None = None

    def applies_to(self, root: Path) -> bool:
        """False for a record carried along when the directory was copied or moved."""
        return not self.data or self.data == os.path.realpath(root)


class DirectoryTaken(EngineError):
    """Another live process holds the data directory."""

    def __init__(self, root: Path, holder: OwnerRecord):
        self.root = Path(root)
        self.holder = holder
        super().__init__(f"data directory {root} is already in use by {holder.describe()}")


class DirectoryOfAnotherCluster(EngineError):
    """The data directory belongs to another cluster."""

    def __init__(self, root: Path, claim: ClusterRecord):
        self.root = Path(root)
        self.claim = claim
        super().__init__(f"data directory {root} belongs to cluster {claim.cluster}")


class OwnerLock:
    """The held `.tahiry.owner` lock of one data directory (until `release` or exit)."""

    def __init__(self, root: Path, descriptor: int, record: OwnerRecord):
        self.root = root
        self.record = record
        self.record_error: OSError | None = None  # the record could not be written (disk full)
        self._descriptor: int | None = descriptor

    @classmethod
    def acquire(cls, root: Path, record: OwnerRecord,
                retry_s: float = ACQUIRE_RETRY_S) -> OwnerLock:
        """Take the directory (created if missing) for this process; DirectoryTaken if held.

        A directory that cannot be written (read-only, disk full) must still
        be held: the lock file is then held read-only, and a record that
        cannot be written leaves `record_error` set. OSError only when there
        is no lock file and none can be created.
        """
        root = Path(root)
        make_data_directory(root)
        path = root / OWNER_FILE
        deadline = time.monotonic() + retry_s
        while True:
            # O_CLOEXEC (Python's default): a child process never inherits the lock.
            descriptor = _open_lock_file(path)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                raise DirectoryTaken(root, live_owner(root) or UNKNOWN_OWNER) from None
            except BaseException:
                os.close(descriptor)
                raise
            # The file was replaced between open and lock: the lock would be on
            # an inode nobody else opens any more. Start over on the new one.
            if _same_file(path, descriptor):
                break
            os.close(descriptor)
        lock = cls(root, descriptor, record)
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, record.encode(), 0)
        except OSError as error:
            lock.record_error = error
        return lock

    def release(self) -> None:
        """Give the directory up (the record stays, as the last owner's name)."""
        if self._descriptor is not None:
            try:
                os.close(self._descriptor)  # closing drops the flock
            finally:
                self._descriptor = None

    @property
    def held(self) -> bool:
        return self._descriptor is not None


def _open_lock_file(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        if error.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC,
                               errno.EDQUOT):
            raise
        try:  # flock needs no write access
            return os.open(path, os.O_RDONLY)
        except OSError:
            raise error from None


def _same_file(path: Path, descriptor: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        return False


def live_owner(root: Path) -> OwnerRecord | None:
    """The process holding the directory now, or None (no lock held; a record alone is history)."""
    path = Path(root) / OWNER_FILE
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            # A shared lock: it fails only against a holder's exclusive lock,
            # and two probing commands never get in each other's way.
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_record(descriptor)
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


def _read_record(descriptor: int) -> OwnerRecord:
    deadline = time.monotonic() + RECORD_WAIT_S
    while True:
        record = OwnerRecord.decode(os.pread(descriptor, 4096, 0))
        if record is not None or time.monotonic() >= deadline:
            return record or UNKNOWN_OWNER
        time.sleep(0.02)


def read_cluster(root: Path) -> ClusterRecord | None:
    """The directory's cluster record; None when it has none (or carries a copied one)."""
    path = Path(root) / CLUSTER_FILE
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        return ClusterRecord(cluster=f"(unreadable {path}: {error.strerror or error})")
    try:
        fields = json.loads(data.decode("utf-8"))
        record = ClusterRecord(cluster=str(fields["cluster"]), data=str(fields.get("data") or ""),
                               claimed=float(fields.get("claimed") or 0.0),
                               supervisor_pid=fields.get("supervisor_pid"))
    except (ValueError, KeyError, TypeError, AttributeError):
        # Never guess whose it is: an unreadable record is nobody's we know.
        return ClusterRecord(cluster=f"(unreadable {path})")
    return record if record.applies_to(root) else None


def write_cluster(root: Path, cluster: str, supervisor_pid: int | None = None) -> ClusterRecord:
    """Record that `cluster` uses the directory (atomically, durably)."""
    root = Path(root)
    make_data_directory(root)
    record = ClusterRecord(cluster=cluster, data=os.path.realpath(root), claimed=time.time(),
                           supervisor_pid=supervisor_pid)
    atomic_write(root / CLUSTER_FILE,
                 (json.dumps(asdict(record), ensure_ascii=False) + "\n").encode("utf-8"))
    return record


def leave_cluster(root: Path, cluster: str) -> bool:
    """Forget that `cluster` uses the directory (a server removed from its topology), so
    that, added again, it joins as a newcomer; True if a record was removed."""
    record = read_cluster(root)
    if record is None or record.cluster != cluster:
        return False
    try:
        (Path(root) / CLUSTER_FILE).unlink()
        fsync_folder(Path(root))
    except FileNotFoundError:
        return False
    return True


def join_cluster(root: Path, cluster: str) -> ClusterRecord:
    """A server of `cluster` starting on `root`: DirectoryOfAnotherCluster if it is another's.

    A directory with no cluster record (new, or only ever run by hand) becomes
    this cluster's. Handing a directory over is the supervisor's decision
    (`up --take-over`), never a server's.
    """
    claim = read_cluster(root)
    if claim is None:
        return write_cluster(root, cluster)
    if claim.cluster != cluster:
        raise DirectoryOfAnotherCluster(Path(root), claim)
    return claim
