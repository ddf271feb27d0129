"""Group commit: a batch of writes made durable together, and what to say when that fails.

Between `Store.begin_batch()` and `commit_batch()` writes collect in a
`WriteBatch` (an in-memory overlay that later statements of the batch read;
each dirty object file is written once at commit). `BatchInstaller` does the
commit: every document to a durable temp file first (`prepare`); then,
holding the write locks of this directory and of every peer, the fence is
checked, the files are renamed into place and journal entries appended;
then, the locks released, the entries are fsynced and the folders of new
files too (`install`). Nothing waits on a lock for an fsync: replication
copies a version as soon as it is in place, and the writer answers once it
is durable. A write outside a batch goes the same way, as a batch
of one file.

Outcomes (docs/STORAGE.md): `BatchNotWritten` (nothing renamed: the
statements failed cleanly, or may run again one by one; `BatchFenced` when
a peer holds a newer copy), `BatchPartlyWritten` (some files renamed: which
ones are durable, which ones may or may not be), otherwise every file is in
place and durable.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ERROR_PREFIX, EngineError, StorageFault, TahiryError
from engine.storage import journal
from engine.storage.atomic_files import encode_document, fsync_folder, unlink_quietly, write_durable_temp
from engine.storage.document_cache import DocumentCache, file_signature
from engine.storage.peer_sync import PeerSync
from engine.storage.peers import LockTimeout, PeerUnreachable, holding

log = logging.getLogger(__name__)



class BatchNotWritten(EngineError):
    """A batch could not be made durable and nothing of it reached the files.

    Raised by `Store.commit_batch` before any file was replaced. `retry`:
    running the statements again one by one may succeed (preparing a file
    failed: encoding, disk full, ...; or the first rename failed); when
    False, `message` is every statement's (clean) failure. `fault`: the
    `StorageFault` when a file of this server could not be written (the
    statement re-run alone meets it again and fails with it).
    """

    def __init__(self, message: str, retry: bool = True, fault: StorageFault | None = None):
        super().__init__(message)
        self.message = message
        self.retry = retry
        self.fault = fault


class BatchFenced(BatchNotWritten):
    """A peer holds an object of the batch at a counter >= the one about to be written.

    Nothing was renamed. Run again one by one, each statement pulls the newer
    copy first and applies on top of it (or is fenced again and fails).
    """


class BatchPartlyWritten(TahiryError):
    """Some files of a batch were renamed into place, then something failed.

    `renamed`: keys (paths) whose new file is in place; `durable`: those of
    them whose folder fsync succeeded too, and (write leases on) that every
    peer received. A statement whose files are all durable succeeded; one
    with a file renamed but not durable, or only part of its files renamed,
    may or may not have been applied; one with no file renamed failed.
    """

    def __init__(self, message: str, renamed: set[str], durable: set[str]):
        super().__init__(message)
        self.renamed = renamed
        self.durable = durable


class WriteOutcomeUnknown(TahiryError):
    """The new file was renamed into place but its durability is not confirmed."""


def outcome_unknown_message(where: str, reason: str) -> str:
    """The sentence of a write that may or may not have been applied."""
    return (f"Tsy fantatra raha voasoratra na tsia ny {where} ({reason}) : mety efa tafiditra ny "
            f"fiovana, mety tsia ; jereo aloha vao mamerina (outcome unknown : l'écriture a "
            f"peut-être été appliquée, ou non)")



class WriteBatch:
    """Pending documents of a group commit, owned by one thread."""

    def __init__(self) -> None:
        self.owner = threading.get_ident()
        # path -> (path, new document, ops): `ops` the row changes of a table
        # since the version read (a journal entry), None for a whole new file.
        self.pending: dict[str, tuple[Path, dict, tuple | None]] = {}
        self.pulled: set[str] = set()   # paths already compared with the peers
        # The version of each object the running statement read (None: no
        # file), by path. Later reads of the statement see that same version
        # and a write of the object is based on it (its counter + 1), so the
        # commit fence certifies exactly what the statement read: a copy
        # replication put in place meanwhile makes the fence refuse the batch
        # instead of being overwritten by rows computed from the older one.
        self.pinned: dict[str, tuple[dict, dict] | None] = {}
        # path -> (pending document, its memo): what readers in the batch derive
        # from a table it wrote, derived itself from the version the write read
        # (document_cache.derive_memo); the commit caches it with the document.
        self.memos: dict[str, tuple[dict, dict]] = {}
        # Keys of pending documents the running statement read (an earlier statement's
        # write it may depend on: `Store.batch_read_since`); cleared at each `batch_mark`.
        self.read_pending: set[str] = set()
        # Keys whose write is a commit point (a database marker): what is put in place
        # before it is durable first, and it is durable before what follows (`Prepared.barrier`).
        self.barriers: set[str] = set()

    def memo_of(self, key: str, document: dict) -> dict | None:
        """The memo held for `document`, pending under `key`; None if none is."""
        held = self.memos.get(key)
        return held[1] if held is not None and held[0] is document else None


@dataclass
class Prepared:
    """One object of a batch, ready to be put in place."""

    key: str
    path: Path              # the object's file (a table's snapshot)
    document: dict          # its new version
    temp: Path | None       # a whole new file, durable, to rename over `path`
    line: bytes | None      # or a journal entry to append (a table's row changes)
    signature: tuple | None = None   # the cache signature of what was put in place
    memo: dict | None = None         # what readers derived from `document` (WriteBatch.memos)
    appended: journal.Appended | None = None   # the entry appended, its file still open
    base: tuple | None = None        # the cache signature of the version the entry is written on
    # A commit point: the writes put in place before it are made durable first, and it is
    # made durable before the next, so their order holds after a power loss too (the
    # folders are fsynced after all the renames otherwise, in no set order).
    barrier: bool = False


class BatchInstaller:
    """Puts a batch's documents in place durably, fenced against the peers' copies."""

    def __init__(self, root: Path, cache: DocumentCache, *,
                 durable: bool, sync: PeerSync | None, lock_timeout_s: float):
        self.root = root
        self._cache = cache
        self._durable = durable
        self._sync = sync
        self._lock_timeout_s = lock_timeout_s
        self.fenced = 0   # commits refused by the fence (each was run again or failed cleanly)

    def prepare(self, pending: dict[str, tuple],
                batch: WriteBatch | None = None) -> list[Prepared]:
        """Each pending write made ready; BatchNotWritten if one cannot be.

        A table whose row changes are known (`ops`, engine/storage/journal.py) gets a
        journal entry, costing what changed; anything else a whole new file,
        written to a durable temp file beside its path. `batch`: the memos
        derived for its journal entries' documents, cached with them.

        Each folder was made ready (created, checked inside the data
        directory) when the statement wrote the document into the batch
        (`Store._write_document`), holding the write lock since: nothing
        here removes folders, so it is not checked twice.
        """
        prepared: list[Prepared] = []
        path = self.root
        try:
            for key, (path, document, ops) in pending.items():
                if ops is not None:
                    prepared.append(Prepared(key, path, document, None,
                                             journal.encode_entry(document["change"], list(ops)),
                                             memo=batch.memo_of(key, document) if batch else None,
                                             base=self._version_read(key, batch)))
                    continue
                data = encode_document(document)
                prepared.append(Prepared(key, path, document,
                                         write_durable_temp(path, data, self._durable), None,
                                         barrier=batch is not None and key in batch.barriers))
        except (OSError, TypeError, ValueError, TahiryError) as error:
            self._unlink_temps(prepared)
            log.error("group commit of %d files not written: %s", len(pending), error)
            if isinstance(error, TahiryError):
                message = error.message.removeprefix(ERROR_PREFIX)
            else:
                reason = error.strerror if isinstance(error, OSError) and error.strerror else error
                message = f"Tsy voasoratra ny rakitra {path.relative_to(self.root)} ({reason})"
            fault = (StorageFault(message, str(path.relative_to(self.root)), "write",
                                  f"not writable: {error.strerror or error}")
                     if isinstance(error, OSError) else None)
            raise BatchNotWritten(message, fault=fault) from None
        return prepared

    def _version_read(self, key: str, batch: WriteBatch | None) -> tuple | None:
        """The cache signature of the version of `key` the batch read (None: not known here).

        A journaled table's holds the journal bytes its version applied:
        fewer than the file holds when reading stopped at a damaged line,
        which an append must not go behind (`_put_in_place`).
        """
        pinned = batch.pinned.get(key) if batch is not None else None
        entry = self._cache.peek_entry(key)
        if pinned is None or entry is None or entry[1] is not pinned[0]:
            return None
        return entry[0]

    def install(self, prepared: list[Prepared]) -> None:
        """Fence, then rename or append each write, then fsync (the outcomes: module docstring)."""
        done: list[Prepared] = []
        created_journals: set[Path] = set()
        try:
            failure, fault = self._put_in_place_fenced(prepared, done, created_journals)
            self._unlink_temps(prepared[len(done):])
            if not done:
                for item in prepared:
                    self._cache.forget(item.key)
                raise BatchNotWritten(f"Tsy voasoratra ny {failure}", fault=fault)
            durable = self._make_durable(done, created_journals)
        finally:
            for item in done:   # whatever happened, no journal is left open
                if item.appended is not None:
                    item.appended.close()
                    item.appended = None
        for item in done:
            if item.key in durable and item.signature is not None:
                # A journal entry on top of a cached version: what readers derived
                # from that version carried over (its indexes, not rebuilt).
                self._cache.remember(item.key, item.signature, item.document, item.memo)
            else:
                self._cache.forget(item.key)  # re-read it next time
        for item in prepared[len(done):]:
            self._cache.forget(item.key)
        if failure is None and len(durable) == len(done):
            unsent = self._sync.push_written([(item.path, item.document["change"])
                                              for item in done]) \
                if self._sync is not None else None
            if unsent is None:
                return
            # Applied and durable here, not on every peer: not acknowledged as written, so
            # none of it counts as `durable` (a statement all of whose files are durable
            # is answered as done; a server cut from the majority then loses it, L6).
            raise BatchPartlyWritten(outcome_unknown_message("fiovana", f"tsy tonga : {unsent}"),
                                     {item.key for item in done}, set())
        unsure = [item.path.relative_to(self.root) for item in done if item.key not in durable]
        reason = (f"{len(done)}/{len(prepared)} rakitra tafiditra, {failure}" if failure
                  else f"fsync tsy nahomby : {', '.join(map(str, unsure))}")
        raise BatchPartlyWritten(outcome_unknown_message("fiovana", reason),
                                 {item.key for item in done}, durable)

    def _put_in_place_fenced(self, prepared: list[Prepared], done: list[Prepared],
                             created_journals: set[Path]) -> tuple[str | None, StorageFault | None]:
        """Holding the commit locks: the fence, then each write put in place, in order.

        `done` receives the writes put in place. Stops at the first that
        cannot be: (its failure, its StorageFault), (None, None) when all were.
        BatchNotWritten when nothing could be tried (lock timeout, fenced).
        """
        try:
            locks = self._sync.commit_locks() if self._sync is not None else []
            fenced = [(item.path, item.document) for item in prepared]
            if self._sync is not None:
                self._sync.plan_fence(fenced)
            with holding(locks, self._lock_timeout_s):
                self._check_fence(fenced)
                for item in prepared:
                    try:
                        if item.barrier and self._durable:
                            self._sync_done(done, created_journals)
                        if self._put_in_place(item):
                            created_journals.add(item.path.parent)
                    except OSError as error:
                        log.error("cannot put %s in place: %s", item.path, error)
                        # Later statements of the batch may have read what did not land:
                        # the entries appended before it are taken back while nobody can
                        # have read them (the locks are held), so the batch is a whole.
                        self._take_back_appends(done)
                        failure = f"{item.path.relative_to(self.root)}: {error.strerror or error}"
                        return failure, StorageFault(f"Tsy voasoratra ny {failure}",
                                                     str(item.path.relative_to(self.root)),
                                                     "write",
                                                     f"not writable: {error.strerror or error}")
                    done.append(item)
                    if item.barrier and self._durable:
                        try:
                            fsync_folder(item.path.parent)
                        except OSError as error:
                            # In place, not known durable: nothing after it goes in place.
                            log.error("fsync of %s failed: %s", item.path.parent, error)
                            failure = f"{item.path.relative_to(self.root)}: {error.strerror or error}"
                            return failure, None
        except LockTimeout as error:
            self._unlink_temps(prepared)
            log.error("commit of %d files refused: %s", len(prepared), error)
            raise BatchNotWritten(
                f"Tsy voasoratra : mbola mihidy ny lahatahiry {error.lock_path.parent} "
                f"({self._lock_timeout_s:g} s) ; tsy nisy niova (rien n'a été écrit)",
                retry=False) from None
        except BatchNotWritten:
            self._unlink_temps(prepared)
            raise
        except PeerUnreachable as error:   # its lease, or the fence's question
            self._unlink_temps(prepared)
            log.error("commit of %d files refused: %s", len(prepared), error)
            fault = error.fault(str(prepared[0].path.relative_to(self.root)))
            raise BatchNotWritten(fault.message.removeprefix(ERROR_PREFIX), retry=False,
                                  fault=fault) from None
        except OSError as error:  # a lock file could not be opened
            self._unlink_temps(prepared)
            raise BatchNotWritten(f"Tsy voasoratra : {error.strerror or error} ; "
                                  f"tsy nisy niova (rien n'a été écrit)", retry=False) from None
        return None, None

    @staticmethod
    def _sync_done(done: list[Prepared], created_journals: set[Path]) -> None:
        """Make what `done` put in place durable now (before a commit point); OSError if
        it cannot be. `_make_durable` syncs them again after: only for database DDL."""
        for item in done:
            if item.appended is not None:
                item.appended.sync()
        for folder in _folders_to_sync(done, created_journals):
            fsync_folder(folder)

    def _take_back_appends(self, done: list[Prepared]) -> None:
        """Cut the journal entries appended last in `done` back off (holding the locks).

        From the end of `done` while its writes are journal entries: each is
        removed from `done` once its journal is back, durably, to its size
        before it (a journal this batch created stays, empty). A renamed file
        cannot be taken back, so the entries before it stay, as does an entry
        whose cut fails.
        """
        while done and done[-1].appended is not None:
            item = done[-1]
            appended = item.appended
            assert appended is not None and item.line is not None
            journal_file = journal.journal_path(item.path)
            try:
                os.ftruncate(appended.descriptor, appended.size - len(item.line))
                if self._durable:
                    os.fsync(appended.descriptor)   # the entry never comes back after a crash
            except OSError as error:
                log.error("cannot take back the entry appended to %s: %s", journal_file, error)
                return
            appended.close()
            item.appended = None
            done.pop()
            log.warning("took back the entry appended to %s: a later write of its batch failed",
                        journal_file)

    def _put_in_place(self, item: Prepared) -> bool:
        """Rename or append one write (holding the locks); True if it created a journal file.

        OSError only when nothing was put in place. The cache signature is
        taken here, under the locks: nobody else can have changed the files
        since this write (None when it cannot be taken: the next read
        re-reads the file).
        """
        journal_file = journal.journal_path(item.path) if item.path.parent.name == "tables" else None
        if item.line is not None:
            assert journal_file is not None  # only a table's write is a journal entry
            try:
                snapshot: os.stat_result | None = os.stat(item.path)
            except OSError:
                snapshot = None
            # Written on the very files its version was read from: the journal bytes that
            # version applied (an entry never goes behind a damaged line). Another
            # snapshot is the same version laid out anew (the fence let it by).
            base = item.base
            applied = ((base[3], base[4]) if snapshot is not None and base is not None
                       and len(base) == 5 and base[:2] == (snapshot.st_ino, snapshot.st_mtime_ns)
                       else None)
            # fsynced by _make_durable once the locks are released
            item.appended = journal.append_entry(journal_file, item.line, applied)
            item.signature = (file_signature(snapshot, (item.appended.inode, item.appended.size),
                                             True) if snapshot is not None else None)
            return item.appended.created
        assert item.temp is not None  # not an entry: a whole new file
        os.replace(item.temp, item.path)
        if journal_file is not None:
            # A whole new snapshot holds every version: the journal is stale.
            unlink_quietly(journal_file)
        try:
            item.signature = file_signature(os.stat(item.path), None, journal_file is not None)
        except OSError:
            item.signature = None
        return False

    def _make_durable(self, done: list[Prepared], created_journals: set[Path]) -> set[str]:
        """fsync the appended entries, then the folders of renamed files and new journals; the
        keys now durable.

        Outside the locks: an entry another server copied meanwhile is only
        an entry not yet acknowledged (if the fsync fails, the writer answers
        "outcome unknown"; the entry is not cut back, others may have read it).
        """
        if not self._durable:
            return {item.key for item in done}
        failed: set[str] = set()
        for item in done:
            if item.appended is not None:
                try:
                    item.appended.sync()
                except OSError as error:
                    log.error("fsync of the journal of %s failed: %s", item.path, error)
                    failed.add(item.key)
        failed_folders: set[Path] = set()
        for folder in _folders_to_sync(done, created_journals):
            try:
                fsync_folder(folder)
            except OSError as error:
                log.error("fsync of %s failed: %s", folder, error)
                failed_folders.add(folder)
        return {item.key for item in done
                if item.key not in failed and item.path.parent not in failed_folders}

    @staticmethod
    def _unlink_temps(prepared: list[Prepared]) -> None:
        for item in prepared:
            if item.temp is not None:
                unlink_quietly(item.temp)

    def _check_fence(self, files: list[tuple[Path, dict]]) -> None:
        """Raise BatchFenced if this directory or a peer holds a file at >= its new counter.

        Without peers there is nothing to check: the process holds the
        directory's owner lock (engine/storage/data_owner.py), and only a replicated
        set (servers with peers) lets replication write into it.
        """
        if self._sync is None:
            return
        violation = self._sync.fence_violation(files)
        if violation is not None:
            self.fenced += 1
            who = violation.holder or "ity mpizara ity"
            raise BatchFenced(
                f"Tsy voasoratra ny {violation.rel} : efa manana dika vaovao kokoa "
                f"(change {violation.change}) i {who} ; tsy nisy niova, andramo indray (écriture "
                f"refusée : une copie plus récente existe ailleurs, rien n'a été écrit)")


def _folders_to_sync(done: list[Prepared], created_journals: set[Path]) -> set[Path]:
    """The folders whose entries `done` changed: those of renamed files, and of new journals."""
    return {item.path.parent for item in done if item.temp is not None} | created_journals
