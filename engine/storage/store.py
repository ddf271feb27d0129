"""The files on disk: one JSON document per database object (`Store`).

Layout (see docs/STORAGE.md for the exact JSON shape):

    <root>/<db>/database.json            the database marker
    <root>/<db>/tables/<table>.json
    <root>/<db>/views/<view>.json
    <root>/<db>/domains/<domain>.json

Every document carries a format version and a change counter that grows by
one on each write of that object; a drop writes a tombstone so the counter
survives and replication can never resurrect an old copy. Every write is
atomic and durable (engine/storage/atomic_files.py).

Reads go through a `DocumentCache` (engine/storage/document_cache.py) re-validated
with `os.stat` on every read, so a file replaced by another process
(replication) is seen by the very next read. (A server's store,
`watch_folders=True`, skips that `stat` while inotify reports nothing in
the object's folders since it was last checked: the same guarantee, see
engine/storage/cached_reads.py.) Documents handed out are shared with the
cache: callers must never mutate them.

Group commit (engine/storage/group_commit.py): between `begin_batch()` and
`commit_batch()` writes go to an in-memory overlay (seen by reads on the
same thread, so later statements of the batch see earlier ones) and each
dirty object file is written once at commit. The server acknowledges a
batch's statements only after `commit_batch()` returned.

Peers ("pull on write, fence on commit", docs/STORAGE.md): a Store given a
`PeerSource` (engine/storage/peers.py) knows the other servers' data
directories. Before a statement modifies an object, `pull_newer` adopts a
peer's newer copy of it (tombstones included), so the write lands on top of
the latest acknowledged version even when asynchronous replication has not
brought it yet; the commit is fenced against the peers' copies.
`engine/storage/peer_sync.py` reads the peers' copies, `peer_pull.py` adopts
them; this module decides when, and writes.

`validate_name`, `KIND_FOLDERS` and the batch outcomes live in their own
modules (engine/storage/names.py, object_format.py, group_commit.py); they
are re-exported here (`__all__`) for the callers that know them from the
store.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from engine.errors import StorageFault, TahiryError
from engine.storage import journal, maintenance
from engine.storage.atomic_files import fsync_folder, is_temp_file, unlink_quietly, write_durable_temp
from engine.storage.cached_reads import CachedReader, FolderWatch
from engine.storage.checkpoints import CheckpointPolicy
from engine.storage.data_owner import OwnerLock, OwnerRecord, make_data_directory
from engine.storage.document_cache import (
    DEFAULT_CACHE_BYTES,
    DEFAULT_CACHE_ENTRIES,
    DocumentCache,
    derive_memo,
    file_signature,
)
from engine.storage.group_commit import (
    BatchInstaller,
    BatchNotWritten,
    BatchPartlyWritten,
    WriteBatch,
    WriteOutcomeUnknown,
)
from engine.storage.names import is_identifier, validate_name
from engine.storage.object_format import (
    ACCOUNT_FOLDER,
    DATABASE_KIND_FOLDERS,
    DATABASE_MARKER,
    FORMAT_VERSION,
    KIND_FOLDERS,
    SYSTEM_FOLDER,
)
from engine.storage.peer_pull import PeerPull
from engine.storage.peer_sync import PeerSync
from engine.storage.peers import DEFAULT_LOCK_TIMEOUT_S, LockTimeout, PeerSource, PeerUnreachable, holding
from engine.storage.row_list import RowList, rows_plus

PATH_MEMO_ENTRIES = 4096
# Files larger than this are not decoded just to know whether they are
# tombstones: the "dropped" flag is sniffed from the start of the file.
SNIFF_THRESHOLD = 4096
# Whether stores append row changes to journals by default (storage format 2).
# (False writes every version whole, as format 1 did; the journal is still read.)
JOURNAL_WRITES = True
# How often `maintain` looks for journals this store did not append itself.
JOURNAL_SCAN_S = 5.0
# A write fault's re-test (`takes_a_write`): one page, the least a full disk refuses.
TEST_WRITE_BYTES = 4096
_DROPPED_RE = re.compile(rb'"dropped":(true|false)')

__all__ = [
    "Store", "checkpoint_directory",
    # re-exported for the callers that know them from the store
    "validate_name", "KIND_FOLDERS", "BatchNotWritten", "BatchPartlyWritten",
    "WriteOutcomeUnknown",
]

log = logging.getLogger(__name__)


class Store:
    """All databases under one data directory."""

    def __init__(self, root: str | os.PathLike, *, cache_entries: int = DEFAULT_CACHE_ENTRIES,
                 cache_bytes: int = DEFAULT_CACHE_BYTES, stale_temp_age_s: float = 60.0,
                 durable: bool = True, peers: PeerSource | None = None,
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S, exclusive: bool = False,
                 checkpoints: CheckpointPolicy | None = None,
                 journal_writes: bool = JOURNAL_WRITES, watch_folders: bool = False,
                 node_id: str | None = None):
        """`durable=False` skips fsync (tests and benchmarks only).

        `peers`: the other servers' data directories, or `Peer`s to ask over
        the network (pull on write, fence on commit); None for a directory
        nobody else writes. `node_id`: this server's id among them (its
        commit locks are then taken in node id order, as every server does).
        `journal_writes`: a table's row changes go to its journal (format 2);
        False writes every version whole (the journal is still read).
        `watch_folders`: a cached version is used without `stat` while nothing
        changed in its folders (one inotify descriptor, engine/storage/cached_reads.py;
        `stat` when inotify is not available). For a long-lived process that
        reads a lot (a server): each store holds an inotify instance.
        `exclusive`: this process holds the directory's owner lock
        (engine/storage/data_owner.py): opening it then recovers it (every temp file
        removed, torn journal tails cut) and upgrades format 1 documents.
        """
        self.root = Path(root)
        make_data_directory(self.root)
        self._real_root = os.path.realpath(self.root)
        self._sync = PeerSync(self.root, peers, node_id) if peers is not None else None
        self._lock_timeout_s = lock_timeout_s
        self._cache = DocumentCache(cache_entries, cache_bytes)
        self._reader = CachedReader(self.root, self._cache,
                                    FolderWatch.open() if watch_folders else None)
        self._durable = durable
        self._installer = BatchInstaller(self.root, self._cache, durable=durable, sync=self._sync,
                                         lock_timeout_s=lock_timeout_s)
        self._pull = (PeerPull(self.root, self._sync, self._cache, load=self._load,
                               prepare_folder=self._prepare_folder, durable=durable,
                               lock_timeout_s=lock_timeout_s)
                      if self._sync is not None else None)
        # Re-entrant: the executor holds it across a statement's read-modify-write
        # so statements of sessions on different threads never interleave.
        self.write_lock = threading.RLock()
        self._batch: WriteBatch | None = None
        # Validated object paths by (database, kind, name): building and
        # checking them costs more than the stat of a cached read.
        self._paths: dict[tuple[str, str, str], Path] = {}
        self.checkpoints = checkpoints if checkpoints is not None else CheckpointPolicy()
        self._journal_writes = journal_writes
        self._last_journal_scan = float("-inf")
        # What other modules derive from the whole directory, kept per store
        # (engine/storage/accounts.py's rights generation); guarded by its lock.
        self.derived: dict[str, object] = {}
        self.derived_lock = threading.Lock()
        if exclusive:
            maintenance.recover(self.root, durable=durable)
        else:
            self.remove_stale_temp_files(stale_temp_age_s)

    @property
    def durable(self) -> bool:
        """Whether writes are fsynced (False only in tests and benchmarks)."""
        return self._durable

    # ------------------------------------------------------------------ paths

    # Paths are memorised by name: checking a name is a pure function of it,
    # so a memorised path is exactly what validation would build again.
    # Where a path leads on disk is not memorised: a document is decoded
    # (and its real path checked to stay inside the root) whenever the file's
    # (inode, mtime, size) differs from the cached one, and a symlink placed
    # later, at any level, makes the stat of the path see another file.

    def database_path(self, database: str) -> Path:
        key = (database, "", "")
        path = self._paths.get(key)
        if path is None:
            path = self._memorise(key, self.root / validate_name(database, "database"))
        return path

    def marker_path(self, database: str) -> Path:
        """`<root>/<database>/database.json`."""
        key = (database, "database", "")
        path = self._paths.get(key)
        if path is None:
            path = self._memorise(key, self.database_path(database) / DATABASE_MARKER)
        return path

    def object_path(self, database: str, kind: str, name: str) -> Path:
        """`<root>/<database>/<kind folder>/<name>.json` (kinds of DATABASE_KIND_FOLDERS)."""
        key = (database, kind, name)
        path = self._paths.get(key)
        if path is None:
            folder = DATABASE_KIND_FOLDERS[kind]
            path = self._memorise(
                key, self.database_path(database) / folder / (validate_name(name, kind) + ".json"))
        return path

    def account_path(self, name: str) -> Path:
        """`<root>/@tahiry/accounts/<name>.json` (docs/STORAGE.md, "Accounts")."""
        key = (SYSTEM_FOLDER, "account", name)
        path = self._paths.get(key)
        if path is None:
            path = self._memorise(key, self.root / SYSTEM_FOLDER / ACCOUNT_FOLDER
                                  / (validate_name(name, "account") + ".json"))
        return path

    def _memorise(self, key: tuple[str, str, str], path: Path) -> Path:
        if len(self._paths) >= PATH_MEMO_ENTRIES:
            self._paths.clear()
        str(path)  # pathlib caches the string form: every later use is free
        self._paths[key] = path
        return path

    def watch_generation(self) -> int | None:
        """A number that moves whenever anything changes in a watched folder (the store's
        inotify generation, engine/storage/cached_reads.py); None: the store watches nothing."""
        return self._reader.watch_generation()

    def _check_contained(self, path: Path) -> None:
        """Refuse paths that resolve (through symlinks) outside the root."""
        self._reader.check_contained(path)

    # ----------------------------------------------------------------- reading

    def _load(self, path: Path) -> dict | None:
        """The decoded document at `path` (tombstones included), or None."""
        entry = self._load_entry(path)
        return entry[0] if entry is not None else None

    def _load_entry(self, path: Path) -> tuple[dict, dict] | None:
        """(document, memo) at `path`, or None; the memo lives as long as this version is cached."""
        key = str(path)
        batch = self._batch
        if batch is not None and batch.owner == threading.get_ident():
            pending = batch.pending.get(key)
            if pending is not None:
                batch.read_pending.add(key)
                memo = batch.memo_of(key, pending[1])
                if memo is None:
                    memo = {}
                    batch.memos[key] = (pending[1], memo)
                return pending[1], memo
            if key in batch.pinned:
                return batch.pinned[key]
            entry = self._reader.load(path, key)
            batch.pinned[key] = entry
            return entry
        return self._reader.load(path, key)

    def _is_live(self, path: Path) -> bool:
        """Whether `path` holds a live (not dropped) document, cheaply.

        Files that cannot be trusted (outside the root, unreadable) count as
        absent, so one bad file never breaks a listing.
        """
        try:
            return self._is_live_checked(path)
        except TahiryError as error:
            log.warning("ignoring %s: %s", path, error)
            return False

    def _is_live_checked(self, path: Path) -> bool:
        key = str(path)
        batch = self._batch
        if batch is not None and batch.owner == threading.get_ident():
            pending = batch.pending.get(key)
            if pending is not None:
                batch.read_pending.add(key)
                return not pending[1].get("dropped", False)
            if key in batch.pinned:  # the version this statement already read
                pinned = batch.pinned[key]
                return pinned is not None and not pinned[0].get("dropped", False)
        unchanged, generation = self._reader.unchanged(path, key)
        if unchanged is not None:   # nothing happened in its folders since it was checked
            return not unchanged[0].get("dropped", False)
        try:
            stat = os.stat(key)   # (the string: a Path costs a conversion per call)
        except OSError:
            return False
        cached = self._cache.get(key, (stat.st_ino, stat.st_mtime_ns, stat.st_size))
        if cached is not None:
            self._reader.note(key, generation)
            return not cached[0].get("dropped", False)
        if stat.st_size > SNIFF_THRESHOLD:
            self._check_contained(path)
            try:
                with open(path, "rb") as handle:
                    head = handle.read(SNIFF_THRESHOLD)
            except OSError:
                return False
            match = _DROPPED_RE.search(head)
            if match is not None:
                return match.group(1) == b"false"
        document = self._load(path)
        return document is not None and not document.get("dropped", False)

    def read_raw(self, database: str, kind: str, name: str) -> dict | None:
        """The document of an object, tombstone included; None if no file."""
        return self._load(self.object_path(database, kind, name))

    def read_with_memo(self, database: str, kind: str, name: str) -> tuple[dict, dict] | None:
        """(live document, memo) of an object, or None (missing or dropped).

        The memo is a dict for values derived from this version of the
        document: it is kept exactly as long as the version stays cached
        (a document pending in this thread's batch has one for as long as it
        is the pending version, then cached with it at commit), so nothing
        derived outlives a change of the file.
        """
        entry = self._load_entry(self.object_path(database, kind, name))
        if entry is None or entry[0].get("dropped", False):
            return None
        return entry

    def read(self, database: str, kind: str, name: str) -> dict | None:
        """The live document of an object, or None (missing or dropped)."""
        document = self.read_raw(database, kind, name)
        if document is None or document.get("dropped", False):
            return None
        return document

    def database_exists(self, database: str) -> bool:
        return self._is_live(self.marker_path(database))

    def list_databases(self) -> list[str]:
        with os.scandir(self.root) as entries:
            candidates = {entry.name for entry in entries}
        candidates.update(path.parent.name for path in self._pending_paths()
                          if path.name == DATABASE_MARKER)
        names = []
        for name in candidates:
            if name.startswith(".") or not is_identifier(name):
                continue
            if self._is_live(self.root / name / DATABASE_MARKER):
                names.append(name)
        return sorted(names)

    def _pending_paths(self) -> list[Path]:
        """Paths written in this thread's open batch (not yet on disk)."""
        batch = self._batch
        if batch is None or batch.owner != threading.get_ident():
            return []
        return [entry[0] for entry in batch.pending.values()]

    def list_objects(self, database: str, kind: str) -> list[str]:
        """Names of the live objects of `kind` in `database` (grants: their accounts)."""
        return self._list_folder(self.database_path(database) / DATABASE_KIND_FOLDERS[kind])

    def list_accounts(self) -> list[str]:
        """Names of the live accounts."""
        return self._list_folder(self.root / SYSTEM_FOLDER / ACCOUNT_FOLDER)

    def read_marker_raw(self, database: str) -> dict | None:
        """A database's marker, tombstone included; None if no file."""
        return self._load(self.marker_path(database))

    def read_account(self, name: str) -> dict | None:
        """The live document of an account, or None (missing or dropped)."""
        document = self._load(self.account_path(name))
        if document is None or document.get("dropped", False):
            return None
        return document

    def read_account_raw(self, name: str) -> dict | None:
        """An account's document, tombstone included; None if no file."""
        return self._load(self.account_path(name))

    def _list_folder(self, folder: Path) -> list[str]:
        names = []
        try:
            file_names = {entry.name for entry in os.scandir(folder)}
        except (FileNotFoundError, NotADirectoryError):
            file_names = set()
        file_names.update(path.name for path in self._pending_paths() if path.parent == folder)
        for file_name in file_names:
            if is_temp_file(file_name) or not file_name.endswith(".json"):
                continue
            name = file_name[:-len(".json")]
            if is_identifier(name) and self._is_live(folder / file_name):
                names.append(name)
        return sorted(names)

    # ----------------------------------------------------------------- writing

    def _prepare_folder(self, folder: Path) -> None:
        """Create `folder` if missing; refuse it if it resolves outside the root (TahiryError)."""
        if self._reader.is_plain_folder(folder):
            return
        if not folder.is_dir():
            self._make_folders(folder)
        self._check_contained(folder)

    def takes_a_write(self, relative: str) -> bool:
        """Whether a test file of one page can be written beside the object at `relative`
        (from the data directory) and removed: a full disk or a read-only one refuses it.

        Not fsynced (a full or read-only disk refuses the write itself, and a
        disk that stalls must not hold the caller); nothing else changes.
        """
        path = self.root / relative
        try:
            self._check_contained(path.parent)
            temp = write_durable_temp(path, bytes(TEST_WRITE_BYTES), durable=False)
        except (OSError, TahiryError):
            return False
        unlink_quietly(temp)
        return True

    def _write_error(self, path: Path, error: OSError) -> StorageFault:
        log.error("cannot write %s: %s", path, error)
        rel = str(path.relative_to(self.root))
        return StorageFault(f"Tsy voasoratra ny rakitra {rel} ({error.strerror or error})",
                            rel, "write", f"not writable: {error.strerror or error}")

    def _make_folders(self, folder: Path) -> None:
        missing = []
        current = folder
        while not current.exists():
            missing.append(current)
            current = current.parent
        if missing:
            # Never create folders through a symlink that leads out of the root.
            real = os.path.realpath(current)
            if real != self._real_root:
                self._check_contained(current)
        for item in reversed(missing):
            try:
                item.mkdir()
            except FileExistsError:
                pass
            except OSError as error:  # disk full, read-only: nothing written yet
                raise self._write_error(item, error) from None
            if self._durable:
                try:
                    fsync_folder(item.parent)
                except OSError as error:
                    raise self._write_error(item, error) from None

    def _write_document(self, path: Path, kind: str, name: str, body: dict | None,
                        ops: list | None = None, appended: list | None = None) -> dict:
        """Write a new version of one object: change counter + 1, or a tombstone.

        Inside a batch the document only joins the overlay; an object written
        again in the same batch keeps the counter of its first write there.
        The counter is that of the version the statement read (pinned in the
        batch) + 1, never that of whatever the file holds by now: a newer copy
        that replication put in place meanwhile makes the commit fence refuse
        the write, so it cannot be overwritten by rows computed without it.

        `ops`: for a table, the row changes from the version read to `body`
        (engine/storage/journal.py); they become one journal entry at commit, so the
        write costs what changed. Without them (or for a table whose
        snapshot is still format 1) the whole file is written.
        `appended`: the body's rows are the rows read plus these (INSERT).
        Outside a batch the write is a batch of its own.
        """
        with self.write_lock:
            batch = self._batch
            if batch is None or batch.owner != threading.get_ident():
                return self._write_alone(path, kind, name, body, ops, appended)
            key = str(path)
            read = self._load_entry(path)
            previous = read[0] if read is not None else None
            earlier = batch.pending.get(key)
            entry_ops: tuple | None  # the row changes of the one journal entry, if any
            if earlier is not None:
                # `previous` is the version this batch wrote earlier (earlier[1]).
                change = int(earlier[1]["change"])
                entry_ops = (earlier[2] + tuple(ops)
                             if ops is not None and earlier[2] is not None else None)
            else:
                change = int(previous.get("change", 0)) + 1 if previous else 1
                journaled = (self._journal_writes and ops is not None and previous is not None
                             and kind == "table"
                             and not previous.get("dropped", False)
                             and previous.get("format") == FORMAT_VERSION)
                entry_ops = tuple(ops) if journaled and ops is not None else None
            document = {"format": FORMAT_VERSION, "kind": kind, "name": name,
                        "change": change, "dropped": body is None}
            if body is not None:
                document.update(body)
            self._prepare_folder(path.parent)
            if appended is not None:
                # The last step, once nothing can fail: rows added to the version read.
                assert previous is not None  # rows are appended to a table the statement read
                document["rows"] = self._rows_plus(batch, key, previous, appended)
            batch.pending[key] = (path, document, entry_ops)
            if entry_ops is not None and ops is not None and read is not None and read[1]:
                # What readers derived from the version read (cached, or this
                # batch's own) carries over to the new one: its indexes are
                # derived from the rows `ops` changed, never built again.
                batch.memos[key] = (document, derive_memo(read[1], document, ops))
            else:
                batch.memos.pop(key, None)
            return document

    @staticmethod
    def _rows_plus(batch: WriteBatch, key: str, base: dict, added: list) -> list | RowList:
        """`base`'s rows with `added` at the end, costing the rows added when it can.

        The row list of a version this batch wrote itself is the batch's own
        (no cache, no other thread, no earlier savepoint can still need it
        shorter: this runs as a statement's very last step), so it grows in
        place; any other version's rows are shared: a small table's list is
        copied, a bigger table's rows become a RowList sharing their chunks.
        """
        rows = base["rows"]
        earlier = batch.pending.get(key)
        if earlier is not None and earlier[1] is base:
            # (A TableData readers of the batch derived from `base` shares the
            # list; the new version's is derived from it knowing the list grew,
            # and `base` itself is never read again.)
            if type(rows) is RowList:
                rows.extend_owned(added)
            else:
                rows.extend(added)
            return rows
        return rows_plus(rows, added)

    def _write_alone(self, path: Path, kind: str, name: str, body: dict | None,
                     ops: list | None, appended: list | None) -> dict:
        """A write outside a batch: the same commit path, as a batch of one write."""
        self.begin_batch()
        try:
            document = self._write_document(path, kind, name, body, ops, appended)
        except BaseException:
            self.abort_batch()
            raise
        try:
            self.commit_batch()
        except BatchPartlyWritten as partial:
            raise WriteOutcomeUnknown(str(partial)) from None
        except BatchNotWritten as refused:
            raise (refused.fault or TahiryError(refused.message)) from None
        return document

    def write(self, database: str, kind: str, name: str, body: dict,
              ops: list | None = None) -> dict:
        """Write an object (`body` holds its kind's fields); return the document.

        `ops`: a table's row changes from the version read (engine/storage/journal.py).
        """
        return self._write_document(self.object_path(database, kind, name), kind, name, body, ops)

    def write_account(self, name: str, body: dict | None) -> dict:
        """Write an account's new version (`body`: admin flag and password hash), or its
        tombstone (`body` None)."""
        return self._write_document(self.account_path(name), "account", name, body)

    def append_rows(self, database: str, name: str, columns: list, rows: list) -> dict:
        """A table's new version: the rows read plus `rows` at the end (an INSERT)."""
        return self._write_document(self.object_path(database, "table", name), "table", name,
                                    {"columns": columns, "rows": None}, [["append", rows]],
                                    appended=rows)

    def drop(self, database: str, kind: str, name: str) -> bool:
        """Tombstone an object; False when it did not exist (nothing written)."""
        path = self.object_path(database, kind, name)
        if not self._is_live(path):
            return False
        self._write_document(path, kind, name, None)
        return True

    def create_database(self, database: str, owner: str | None = None) -> None:
        """A new database marker; `owner` (an account) is recorded in it when given."""
        base = self.database_path(database)
        for folder in KIND_FOLDERS.values():
            if not (base / folder).is_dir():
                self._make_folders(base / folder)
        marker = base / DATABASE_MARKER
        if self._load(marker) is not None:
            # A dropped database: a drop cut short (a crash between its files) left
            # objects live under its tombstone. They are tombstoned before the new
            # marker, which goes last: the old tables never come back with it.
            self._tombstone_objects(database)
        self._write_document(marker, "database", database,
                             {} if owner is None else {"owner": owner})
        self._put_last_in_batch(marker)

    def database_owner(self, database: str) -> str | None:
        """The account that owns a live database (None: no owner recorded, or no database)."""
        document = self._load(self.marker_path(database))
        if document is None or document.get("dropped", False):
            return None
        owner = document.get("owner")
        return owner if isinstance(owner, str) and owner else None

    def drop_database(self, database: str) -> bool:
        """Tombstone the database's marker, then every object of it (its grants too).

        The marker is the drop's commit point: it is put in place first (first
        in the batch, or committed first outside one). Every reader reaches a
        database's objects only through its live marker (the executor, the
        session's planned reads, listings, rights), so a crash between the
        files leaves the database gone whole, never half of it; the objects
        still live under the tombstone are never read, and are tombstoned when
        a database of that name is created again (`create_database`), or by a
        peer's tombstones that replication brings.
        """
        marker = self.database_path(database) / DATABASE_MARKER
        if not self._is_live(marker):
            return False
        self._write_document(marker, "database", database, None)
        self._put_first_in_batch(marker)
        self._tombstone_objects(database)
        return True

    def _tombstone_objects(self, database: str) -> None:
        """A tombstone for every live object of the database (not its marker)."""
        for kind in DATABASE_KIND_FOLDERS:
            for name in self.list_objects(database, kind):
                self._write_document(self.object_path(database, kind, name), kind, name, None)

    def _put_first_in_batch(self, path: Path) -> None:
        """`path`'s pending write is put in place, and made durable, before the batch's
        others (renames go in the batch's order); nothing to do outside a batch (already
        committed, durably)."""
        self._reorder_batch(path, first=True)

    def _put_last_in_batch(self, path: Path) -> None:
        """`path`'s pending write is put in place after the batch's others are durable."""
        self._reorder_batch(path, first=False)

    def _reorder_batch(self, path: Path, *, first: bool) -> None:
        with self.write_lock:
            batch = self._batch
            if batch is None or batch.owner != threading.get_ident():
                return
            key = str(path)
            entry = batch.pending.pop(key)
            batch.pending = {key: entry, **batch.pending} if first else {**batch.pending, key: entry}
            # The order must hold after a power loss too, not only after a crash of
            # the process: the group commit fsyncs around it (`Prepared.barrier`).
            batch.barriers.add(key)

    # ------------------------------------------------------------ group commit

    def begin_batch(self) -> None:
        """Start collecting this thread's writes in memory (holds the write lock).

        End with `commit_batch()` (durable) or `abort_batch()` (discarded).
        """
        self.write_lock.acquire()
        if self._batch is not None:
            self.write_lock.release()
            raise RuntimeError("a write batch is already open")
        self._batch = WriteBatch()

    def begin_statement(self) -> None:
        """A new statement of the open batch starts: it reads the files afresh.

        Versions read by earlier statements are forgotten (objects written in
        the batch stay as written); the new statement's reads are pinned again.
        """
        batch = self._batch
        if batch is not None and batch.owner == threading.get_ident():
            batch.pinned.clear()

    @property
    def in_own_batch(self) -> bool:
        """Whether this thread has a batch open (its writes join it)."""
        batch = self._batch
        return batch is not None and batch.owner == threading.get_ident()

    def batch_mark(self) -> dict:
        """A savepoint of the open batch, for `batch_rollback`; a statement starts after it."""
        assert self._batch is not None
        self._batch.read_pending.clear()
        return dict(self._batch.pending)

    def batch_read_since(self, mark: dict) -> frozenset[str]:
        """Keys written by the batch before `mark` that the statement since read: the
        earlier statements' writes it may have used (not durable: nor is what it did)."""
        assert self._batch is not None
        return frozenset(key for key in self._batch.read_pending if key in mark)

    def batch_rollback(self, mark: dict) -> None:
        """Forget the batch's writes made since `mark` (a failed statement)."""
        assert self._batch is not None
        self._batch.pending = dict(mark)

    def abort_batch(self) -> None:
        """Discard the open batch: nothing of it is written."""
        if self._batch is None:
            return
        self._batch = None
        self.write_lock.release()

    def batch_written_since(self, mark: dict) -> frozenset[str]:
        """Keys (paths) the open batch wrote since `mark`: one statement's files."""
        assert self._batch is not None
        return frozenset(key for key, entry in self._batch.pending.items()
                         if mark.get(key) is not entry)

    def commit_batch(self) -> int:
        """Write every dirty object of the batch once, durably; return how many files.

        First every document goes to a durable temp file; then, holding the
        write locks (with peers), the fence is checked and the files are
        renamed into place; then their folders are fsynced. Raises
        `BatchNotWritten` (`BatchFenced`) when nothing was renamed,
        `BatchPartlyWritten` when something failed after the first rename.
        The batch is closed in all cases.
        """
        batch = self._batch
        assert batch is not None and batch.owner == threading.get_ident()
        try:
            prepared = self._installer.prepare(batch.pending, batch)
            if prepared:
                self._installer.install(prepared)
        finally:
            self._batch = None
            self.write_lock.release()
        appended = [(item.key, item.signature) for item in prepared
                    if item.line is not None and item.signature is not None]
        for key, signature in appended:
            journal_bytes = signature[4]
            self.checkpoints.appended(key, journal_bytes, signature[2] - journal_bytes)
        for key in self.checkpoints.large(written for written, _ in appended):
            self.checkpoint(Path(key))   # a journal as large as its snapshot: fold it now
        return len(prepared)

    # ------------------------------------------------------------ checkpoints

    def maintain(self) -> int:
        """Checkpoint the tables whose journal is large or idle (engine/storage/checkpoints.py); how many.

        Every JOURNAL_SCAN_S it also looks for journals it did not write
        itself (replication appends to a replica's), so those are folded too.
        """
        now = time.monotonic()
        if now - self._last_journal_scan >= JOURNAL_SCAN_S:
            self._last_journal_scan = now
            for path in maintenance.journaled_tables(self.root):
                try:
                    journal_bytes = os.stat(journal.journal_path(path)).st_size
                    snapshot_bytes = os.stat(path).st_size
                except OSError:
                    continue  # folded or dropped meanwhile
                self.checkpoints.seen(str(path), journal_bytes, snapshot_bytes)
        done = 0
        for key in self.checkpoints.due():
            done += self.checkpoint(Path(key))
        return done

    def checkpoint_all(self) -> int:
        """Checkpoint every table that has a journal (a clean stop); how many."""
        return sum(self.checkpoint(path) for path in maintenance.journaled_tables(self.root))

    def checkpoint(self, path: Path) -> bool:
        """Fold a table's journal into a new snapshot at its current version; True if done.

        Holding this directory's write lock (with peers: replication appends
        under it too), the table is read, its snapshot written atomically,
        then the journal removed. A crash in between leaves a journal whose
        entries the snapshot already holds: they are skipped when read. A
        failure (disk full) changes nothing and is logged: the journal still
        holds every version. The cached version stays cached under the new
        files' signature, with its memo: a checkpoint changes no row, so the
        next read neither decodes the snapshot again nor rebuilds its indexes.
        """
        key = str(path)
        journal_file = journal.journal_path(path)
        lock = [self._sync.own_lock] if self._sync is not None else []
        with self.write_lock:
            if self.in_own_batch:
                return False  # never in the middle of a batch: try later
            try:
                with holding(lock, self._lock_timeout_s):
                    if not os.path.exists(journal_file):
                        self.checkpoints.done(key)
                        return False
                    entry = self._reader.load(path, key)
                    if entry is not None:
                        maintenance.write_snapshot(path, entry[0], durable=self._durable)
                    os.unlink(journal_file)
                    if self._durable:
                        fsync_folder(path.parent)
                    self._keep_cached(key, path, entry)
            except (OSError, TahiryError, LockTimeout) as error:
                log.error("checkpoint of %s not done (its journal keeps every version): %s",
                          path.relative_to(self.root), error)
                return False
        self.checkpoints.done(key)
        return True

    def _keep_cached(self, key: str, path: Path, entry: tuple[dict, dict] | None) -> None:
        """After a checkpoint: `entry` cached under the signature of the snapshot now in place.

        The snapshot holds exactly the document (`format` included, else it is
        forgotten), and its signature is taken holding the locks under which
        it was written, as the group commit does: nobody can have replaced it.
        """
        if entry is None or entry[0].get("format") != FORMAT_VERSION:
            self._cache.forget(key)
            return
        try:
            signature = file_signature(os.stat(path), None, True)
        except OSError:
            self._cache.forget(key)
            return
        self._cache.remember(key, signature, entry[0], entry[1])

    # ------------------------------------------------------------------ peers

    def holding_commit_locks(self) -> AbstractContextManager[None]:
        """Hold the commit locks of this directory and every peer's for a `with` block.

        A statement run inside cannot be fenced (engine/storage/peer_pull.py).
        Without peers, nothing to hold. A clean TahiryError if the locks stay
        taken.
        """
        return self._pull.holding_commit_locks() if self._pull is not None else nullcontext()

    def commit_locks_free(self) -> bool:
        """Whether the commit locks (this directory's and its peers') are all free right now.

        Each is taken and let go at once (a `flock` each, no wait). For a
        caller that must not wait on them (a server's event loop), holding
        `write_lock` so that no commit of this process holds them meanwhile.
        """
        if self._sync is None:
            return True
        taken: list = []
        try:
            for lock in self._sync.commit_locks():
                if not lock.try_acquire():
                    return False
                taken.append(lock)
            return True
        except (OSError, PeerUnreachable):
            return False
        finally:
            for lock in reversed(taken):
                try:
                    lock.release()
                except OSError:
                    pass   # the descriptor is gone: so is the lock

    def certification_report(self) -> dict:
        """Commits refused by the fence so far, and same-counter copies that differ (conflicts)."""
        return {"fenced_commits": self._installer.fenced,
                "replica_conflicts": self._sync.conflicts() if self._sync is not None else []}

    @property
    def has_peers(self) -> bool:
        """Whether this directory belongs to a replicated set (pull and fence apply)."""
        return self._sync is not None

    def pull_newer(self, database: str, kind: str, name: str) -> bool:
        """Pull on write: adopt a peer's newer copy of an object before modifying it.

        `kind` "database" means the database marker. The newest valid peer
        copy with a larger counter than ours is copied in atomically
        (tombstones too, so a drop made elsewhere is never undone). Checked
        once per object per batch; True if a copy was adopted.
        """
        if self._pull is None:
            return False
        try:
            path = (self.marker_path(database) if kind == "database"
                    else self.object_path(database, kind, name))
        except TahiryError:
            return False  # the statement itself reports the bad name
        batch = self._batch
        own = batch if batch is not None and batch.owner == threading.get_ident() else None
        return self._pull.pull(path, own)

    def pull_newer_all(self, database: str, objects: list[tuple[str, str]]) -> None:
        """`pull_newer` of each (kind, name), the peers asked about all of them at once."""
        if self._pull is None:
            return
        paths = []
        for kind, name in objects:
            try:
                paths.append(self.marker_path(database) if kind == "database"
                             else self.object_path(database, kind, name))
            except TahiryError:
                continue  # the statement itself reports the bad name
        batch = self._batch
        own = batch if batch is not None and batch.owner == threading.get_ident() else None
        self._pull.prefetch(paths, own)
        for kind, name in objects:
            self.pull_newer(database, kind, name)

    def pull_newer_objects(self, database: str) -> None:
        """Pull every object of a database that a peer holds newer (before dropping it).

        Not the marker: creating and dropping a database are sent to every
        server, and each decides from its own marker (the fence lets
        identical markers and tombstones through).
        """
        if self._pull is None:
            return
        for kind, name in self._pull.peer_objects(database):
            self.pull_newer(database, kind, name)

    def pull_newer_account(self, name: str) -> bool:
        """Pull on write for an account: a peer's newer copy of it comes in first."""
        if self._pull is None:
            return False
        try:
            path = self.account_path(name)
        except TahiryError:
            return False  # the statement itself reports the bad name
        batch = self._batch
        own = batch if batch is not None and batch.owner == threading.get_ident() else None
        return self._pull.pull(path, own)

    def pull_newer_accounts(self) -> None:
        """Pull every account a peer holds newer (before deciding that none exists)."""
        if self._pull is None:
            return
        for name in self._pull.peer_accounts():
            self.pull_newer_account(name)

    @contextmanager
    def write_batch(self) -> Iterator[None]:
        """`with store.write_batch():` writes inside are committed together at the end.

        An exception inside discards them all. (The server uses the explicit
        methods to give each statement its own savepoint.)
        """
        self.begin_batch()
        try:
            yield
        except BaseException:
            self.abort_batch()
            raise
        self.commit_batch()

    # ------------------------------------------------------------- maintenance

    def remove_stale_temp_files(self, older_than_s: float = 0.0) -> int:
        """Delete temp files left by interrupted writes; return how many.

        Only files older than `older_than_s` go, so a write in progress in
        another process (replication) is not disturbed.
        """
        return maintenance.remove_temp_files(self.root, older_than_s)


def checkpoint_directory(root: Path, holder: str) -> int:
    """Fold every table journal of a directory nobody runs on; how many (DirectoryTaken if held)."""
    if not maintenance.journaled_tables(root):
        return 0
    owner = OwnerLock.acquire(root, OwnerRecord(node=holder, pid=os.getpid(), host="local",
                                                port=0, started=time.time()), retry_s=0)
    try:
        return Store(root).checkpoint_all()
    finally:
        owner.release()
