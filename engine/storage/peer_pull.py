"""Pull on write: a peer's newer copy of an object adopted before this directory writes it.

The writing half of "pull on write, fence on commit" (docs/STORAGE.md,
"Peers"); `engine.storage.peer_sync.PeerSync` only looks at the peers'
files, `PeerPull` brings the newest valid one in. Before a statement
modifies an object, `pull` adopts a peer's copy whose change counter is
larger than ours (tombstones included, so a drop made elsewhere is never
undone), so the write lands on top of the latest acknowledged version even
when asynchronous replication has not brought it yet. The copy goes
through engine/storage/object_copy.py, the one way replication copies too.

`engine.storage.store.Store` stays the one interface: it turns names into
paths, owns the batch and the cache, and calls this only when it has peers.
`holding_commit_locks` is the pessimistic last attempt of a fenced
statement (engine/evaluation/executor.py): nobody can commit in between.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.errors import StorageFault, TahiryError
from engine.storage.document_cache import DocumentCache
from engine.storage.group_commit import WriteBatch
from engine.storage.names import is_identifier, validate_name
from engine.storage.object_copy import DivergedCopy, bring_up_to_date_from
from engine.storage.object_format import (
    ACCOUNT_FOLDER,
    DATABASE_KIND_FOLDERS,
    SYSTEM_FOLDER,
    InvalidDocument,
)
from engine.storage.peer_sync import NewerPeer, PeerSync
from engine.storage.peers import LockTimeout, NoWriteLease, PeerUnreachable, holding

log = logging.getLogger(__name__)


class PeerPull:
    """Adopts the peers' newer copies into one data directory (a `Store` with peers)."""

    def __init__(self, root: Path, sync: PeerSync, cache: DocumentCache, *,
                 load: Callable[[Path], dict | None], prepare_folder: Callable[[Path], None],
                 durable: bool, lock_timeout_s: float):
        """`load(path)`: the store's read of its own copy (pinned in the batch);
        `prepare_folder(folder)`: the store's creation of a missing folder."""
        self.root = root
        self._sync = sync
        self._cache = cache
        self._load = load
        self._prepare_folder = prepare_folder
        self._durable = durable
        self._lock_timeout_s = lock_timeout_s

    @contextmanager
    def holding_commit_locks(self) -> Iterator[None]:
        """Hold the commit locks of this directory and every peer's for the block.

        A statement run inside cannot be fenced: nobody else can rename a
        file into these directories meanwhile (the block's own commit takes
        the same locks again, which flock grants at once). A clean
        TahiryError if the locks stay taken.
        """
        try:
            with holding(self._sync.commit_locks(), self._lock_timeout_s):
                yield
        except LockTimeout as error:
            raise TahiryError(
                f"Tsy voasoratra : mbola mihidy ny lahatahiry {error.lock_path.parent} "
                f"({self._lock_timeout_s:g} s) ; tsy nisy niova (rien n'a été écrit)") from None
        except PeerUnreachable as error:
            raise error.fault("") from None

    def pull(self, path: Path, batch: WriteBatch | None) -> bool:
        """Adopt the newest valid peer copy of the object at `path` newer than ours; True if one was.

        `batch`: the calling thread's own batch, if any: an object is then
        compared with the peers once per batch, and never once the batch
        wrote it.
        """
        key = str(path)
        lease_problem = self._sync.write_lease_problem()
        if lease_problem is not None:   # refused before any peer is asked (leases on)
            raise NoWriteLease(lease_problem).fault(str(path.relative_to(self.root)))
        if batch is not None:
            if key in batch.pending or key in batch.pulled:
                return False
            batch.pulled.add(key)
        if not self._sync.peers():
            return False
        local = self._load(path)
        local_change = int(local.get("change", 0)) if local is not None else 0
        try:
            for newer in self._sync.newer_peers(path, local_change):
                if self._adopt(path, newer, batch):
                    return True
        except PeerUnreachable as error:
            if batch is not None:
                batch.pulled.discard(key)   # not compared: ask again next time
            raise error.fault(str(path.relative_to(self.root))) from None
        return False

    def prefetch(self, paths: list[Path], batch: WriteBatch | None) -> None:
        """Let the peers answer the versions of `paths` at once, for the `pull`s that follow.

        Only a network peer does anything (one request instead of one per
        object); a peer that cannot be asked is reported by the pull itself.
        """
        keys = [path for path in paths if batch is None or (
            str(path) not in batch.pending and str(path) not in batch.pulled)]
        if len(keys) > 1:
            self._sync.prefetch([str(path.relative_to(self.root)) for path in keys])

    def peer_objects(self, database: str) -> Iterator[tuple[str, str]]:
        """(kind, name) of every object of `database` here or on a peer (not the marker).

        Nothing for a name that is not a valid database name (the statement
        itself reports it); file names that are not identifiers are skipped.
        """
        try:
            validate_name(database, "database")
        except TahiryError:
            return
        for kind, folder in DATABASE_KIND_FOLDERS.items():
            try:
                names = self._sync.object_names(database, folder)
            except PeerUnreachable as error:
                raise error.fault(f"{database}/{folder}") from None
            for name in sorted(names):
                if is_identifier(name):
                    yield kind, name

    def peer_accounts(self) -> list[str]:
        """Names of every account file here or on a peer (tombstones included)."""
        try:
            names = self._sync.object_names(SYSTEM_FOLDER, ACCOUNT_FOLDER)
        except PeerUnreachable as error:
            raise error.fault(f"{SYSTEM_FOLDER}/{ACCOUNT_FOLDER}") from None
        return sorted(name for name in names if is_identifier(name))

    def _adopt(self, path: Path, newer: NewerPeer, batch: WriteBatch | None) -> bool:
        """Bring this directory's copy up to a peer's newer version; True if it moved.

        engine/storage/object_copy.py ships what changed (a table's journal lines, or
        the whole copy), checked, under this directory's lock (and reading
        the peer's under its lock): the one implementation replication uses
        too. An invalid peer copy is not taken (False: try the next peer).
        """
        rel = str(path.relative_to(self.root))
        try:
            self._prepare_folder(path.parent)
            moved = bring_up_to_date_from(lambda dest: newer.source.fetch(rel, dest), self.root,
                                          rel, self._sync.own_lock, durable=self._durable,
                                          lock_timeout_s=self._lock_timeout_s)
        except PeerUnreachable:
            raise
        except (DivergedCopy, InvalidDocument) as error:
            log.error("pull of %s from %s refused: %s", rel, newer.peer, error)
            return False
        except OSError as error:
            log.error("pull of %s from %s failed: %s", path, newer.peer, error)
            raise StorageFault(
                f"Tsy tafiditra ny dika vaovao kokoa an'i {rel} avy "
                f"amin'i {newer.peer} ({error.strerror or error}) ; tsy nisy niova",
                rel, "write", f"not writable: {error.strerror or error}") from None
        self._cache.forget(str(path))
        if batch is not None:
            batch.pinned.pop(str(path), None)  # the statement reads the adopted copy
        if moved:
            log.info("pulled %s (version %d) from %s before writing it", rel, newer.change,
                     newer.peer)
        return moved

