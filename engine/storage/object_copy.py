"""Bringing one data directory's copy of an object up to another's version: the one implementation.

The replicator (supervisor/replication.py) and the store's pull on write
(engine/storage/store.py) both make a destination's copy of an object reach a
source's version, and never move it backwards or sideways. With storage
format 2 a table is a snapshot plus a journal (docs/STORAGE.md), and
versions are certified: one content per version cluster-wide, so the
journal line of version N is the same bytes on every server that has it.
So a copy ships what changed:

- **append**: the destination holds version D, the source's snapshot is at
  or below D and its journal chains D+1 .. V: exactly those lines are
  appended to the destination's journal (one write, one fdatasync). The
  cost is the change's, not the table's; the destination's snapshot is not
  touched. A torn tail at the destination (a crash in the middle of an
  append) is cut first;
- **install**: otherwise (no copy there, the source checkpointed past D, a
  view, a tombstone) the source's snapshot replaces the destination's and
  the destination's journal becomes exactly the source's chained lines
  after it (removed when there are none): stale or unreadable lines there
  never stay beside a new snapshot. The snapshot is renamed first: a crash
  between the two renames leaves the new snapshot with the old journal,
  whose entries are all older than it (stale): a valid, older version.

Everything is prepared before the destination's write lock is taken
(`DirectoryLock`: the servers hold it to commit); under it the destination's
version is read again and the copy happens only if it is still the one the
shipment was planned for (or, for an install, still older). With
`source_lock` the source is read under the source's lock, so no line is
read while a store appends it (a store appends under its lock, and cuts a
failed write back before releasing it; the fsync comes after); a lock
held longer than SOURCE_LOCK_TIMEOUT_S belongs to a frozen or dead
process, whose lines can no longer be cut back: the source is then read
without it. A copy's own append is fsynced after the destination's lock
is released, as a commit's is.

- `bring_up_to_date(source_root, dest_root, rel, lock, ...) -> bool`;
  `bring_up_to_date_from(fetch, ...)` the same from any source (a peer over
  the network plans with `read_shipment` on its side, the destination
  delivers here); `deliver_shipment(...)`: a shipment planned elsewhere
  put in place (`.peer ship`);
- `replace_copy(...)`: a repair: the source's copy installed over whatever
  the destination holds, if `still_wanted()` agrees under the lock;
  `replace_copy_from(fetch, ...)` the same from any source (a server of
  another machine, `.peer fetch`);
- `cut_journal(...)`: a damaged journal cut back to its usable part.

Never from an invalid source (a snapshot failing `check_document`, lines
that do not chain, entries that do not fit the rows: engine/storage/object_state.py
reads only valid parts), never through a symlink (engine/storage/nofollow.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError
from engine.storage import journal
from engine.storage.atomic_files import _Laps, fsync_folder, unlink_quietly, write_durable_temp
from engine.storage.nofollow import FileSignature, ensure_folders, folder_of, open_in
from engine.storage.object_format import InvalidDocument
from engine.storage.object_state import ObjectVersion, Probe, journal_rel, probe, read_copy, read_state
from engine.storage.peers import DEFAULT_LOCK_TIMEOUT_S, LOCK_POLL_MAX_S, DirectoryLock, LockTimeout, holding

# The destination changed between planning and the lock this many times: give up for now.
PLAN_ROUNDS = 3
# A source holding its lock longer than this is frozen or dead (a running store
# holds it for one append): its files are read without it.
SOURCE_LOCK_TIMEOUT_S = 1.0

log = logging.getLogger(__name__)


class DamagedCopy(InvalidDocument):
    """The destination's journal is damaged (not a torn tail): it must be repaired first."""


class DivergedCopy(EngineError):
    """The destination's line of its version is not the source's: a conflict, nothing copied."""

    def __init__(self, rel: str, change: int):
        super().__init__(f"{rel}: version {change} differs between the copies")
        self.rel = rel
        self.change = change


@dataclass(frozen=True)
class Shipment:
    """What the source gives the destination."""

    version: int                 # the version the destination reaches
    lines: bytes                 # journal lines: after `base` (append) or after the snapshot
    base: int | None             # append: the destination's version they continue; None: install
    snapshot: bytes | None       # install: the source's snapshot
    line_at_base: bytes | None   # append: the source's line of version `base`, when it was read


def bring_up_to_date(source_root: str | os.PathLike, dest_root: str | os.PathLike,
                     rel: str | os.PathLike, lock: DirectoryLock, *,
                     durable: bool = True, still_wanted: Callable[[], bool] | None = None,
                     source_lock: DirectoryLock | None = None,
                     lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                     lock_poll_max_s: float = LOCK_POLL_MAX_S,
                     timed: Callable[[str, float], None] | None = None,
                     on_append: Callable[[int, int], None] | None = None) -> bool:
    """Make `dest_root`'s copy of `rel` reach `source_root`'s version; False if nothing moved.

    `lock` is the destination directory's write lock (`source_lock`, if
    given, the source's: taken only while the source is read, never both at
    once). False when the source has no newer valid version, the
    destination caught up by itself, or `still_wanted()` (called under the
    lock, after the version check) said no. Raises DivergedCopy (the
    destination's version is another content), DamagedCopy and
    InvalidDocument (the destination's copy does not read: a repair's job,
    `replace_copy`), ObjectRefused (a symlink), OSError (LockTimeout
    included: nothing changed). `timed(phase, ms)`: "read_source",
    "write_temp", "lock_wait", "locked", "fsync_folder". `on_append(inode,
    size)`: called, under the destination's lock and just before lines are
    appended to its existing journal, with the journal's inode and the size
    it will have (replication tells its own append's event from a write;
    told before the write, since the event may be read before it returns).
    """
    source_root = Path(source_root)
    rel = os.fspath(rel)

    def fetch(dest: ObjectVersion | None) -> Shipment | None:
        return read_shipment(source_root, rel, dest, source_lock, lock_timeout_s, lock_poll_max_s)

    return bring_up_to_date_from(fetch, dest_root, rel, lock, durable=durable,
                                 still_wanted=still_wanted, lock_timeout_s=lock_timeout_s,
                                 lock_poll_max_s=lock_poll_max_s, timed=timed,
                                 on_append=on_append)


def bring_up_to_date_from(fetch: Callable[[ObjectVersion | None], Shipment | None],
                          dest_root: str | os.PathLike, rel: str | os.PathLike,
                          lock: DirectoryLock, *, durable: bool = True,
                          still_wanted: Callable[[], bool] | None = None,
                          lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                          lock_poll_max_s: float = LOCK_POLL_MAX_S,
                          timed: Callable[[str, float], None] | None = None,
                          on_append: Callable[[int, int], None] | None = None) -> bool:
    """`bring_up_to_date` from any source: `fetch(dest_version)` plans the shipment.

    The source may be another data directory on this machine
    (`read_shipment`) or a peer over the network (`.peer fetch`,
    nodes/server/remote_peer.py): the destination's side is the same.
    """
    dest_root, rel = Path(dest_root), os.fspath(rel)
    laps = _Laps(timed)
    for _ in range(PLAN_ROUNDS):
        before = probe(dest_root, rel)
        _refuse_damaged(before, dest_root, rel)
        shipment = fetch(before.version if before is not None else None)
        laps.lap("read_source")
        if shipment is None:
            return False
        result = _deliver(dest_root, rel, shipment, lock, durable, still_wanted, lock_timeout_s,
                          lock_poll_max_s, laps, on_append=on_append)
        if result is not None:
            return result
    return False


def deliver_shipment(dest_root: str | os.PathLike, rel: str | os.PathLike, shipment: Shipment,
                     lock: DirectoryLock, *, durable: bool = True,
                     lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                     lock_poll_max_s: float = LOCK_POLL_MAX_S) -> bool | None:
    """Put a shipment planned elsewhere in place (`.peer ship`), with every check of a copy.

    True: moved; False: the destination already holds that version or a
    newer one; None: it moved since the shipment was planned (plan again).
    Raises DivergedCopy, DamagedCopy, InvalidDocument, ObjectRefused,
    OSError (LockTimeout included): nothing changed.
    """
    dest_root, rel = Path(dest_root), os.fspath(rel)
    _refuse_damaged(probe(dest_root, rel), dest_root, rel)
    return _deliver(dest_root, rel, shipment, lock, durable, None, lock_timeout_s,
                    lock_poll_max_s, _Laps(None))


def replace_copy(source_root: str | os.PathLike, dest_root: str | os.PathLike,
                 rel: str | os.PathLike, lock: DirectoryLock, *,
                 still_wanted: Callable[[], bool], durable: bool = True,
                 source_lock: DirectoryLock | None = None,
                 lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                 lock_poll_max_s: float = LOCK_POLL_MAX_S) -> int | None:
    """Install the source's copy of `rel` over whatever the destination holds (a repair).

    `still_wanted()` runs under the destination's lock right before the
    renames (the replicator checks there that the file is still the corrupt
    version it found, and keeps it aside). The version installed, or None
    (no valid source copy, or `still_wanted` said no).
    """
    source_root, rel = Path(source_root), os.fspath(rel)
    return replace_copy_from(
        lambda: read_shipment(source_root, rel, None, source_lock, lock_timeout_s,
                              lock_poll_max_s),
        dest_root, rel, lock, still_wanted=still_wanted, durable=durable,
        lock_timeout_s=lock_timeout_s, lock_poll_max_s=lock_poll_max_s)


def replace_copy_from(fetch: Callable[[], Shipment | None], dest_root: str | os.PathLike,
                      rel: str | os.PathLike, lock: DirectoryLock, *,
                      still_wanted: Callable[[], bool], durable: bool = True,
                      lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                      lock_poll_max_s: float = LOCK_POLL_MAX_S) -> int | None:
    """`replace_copy` from any source: `fetch()` gives the whole copy (an install: a
    snapshot and its lines), e.g. `.peer fetch` from a server of another machine, whose
    bytes the caller has checked (engine/storage/object_state.py `check_copy`)."""
    dest_root, rel = Path(dest_root), os.fspath(rel)
    shipment = fetch()
    if shipment is None:
        return None
    if shipment.base is not None:
        raise ValueError(f"{rel}: a repair installs a whole copy, not lines after {shipment.base}")
    installed = _deliver(dest_root, rel, shipment, lock, durable, still_wanted, lock_timeout_s,
                         lock_poll_max_s, _Laps(None), repair=True)
    return shipment.version if installed else None


def install_shipment(dest_root: str | os.PathLike, rel: str | os.PathLike, shipment: Shipment,
                     lock: DirectoryLock, *, durable: bool = True,
                     lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                     lock_poll_max_s: float = LOCK_POLL_MAX_S) -> bool:
    """Install a whole copy (`shipment.base` None) over whatever the destination holds.

    For a server re-admitted after its machine was excluded (write leases,
    docs/REPLICATION.md): its copies give way to the majority's, even at a
    higher or equal counter (there only unacknowledged writes can differ).
    """
    if shipment.base is not None:
        raise ValueError("install_shipment takes a whole copy, not journal lines")
    return bool(_deliver(Path(dest_root), os.fspath(rel), shipment, lock, durable, None,
                         lock_timeout_s, lock_poll_max_s, _Laps(None), repair=True))


def cut_journal(root: str | os.PathLike, rel: str | os.PathLike, lock: DirectoryLock,
                expected: FileSignature, before_cut: Callable[[], None] | None = None, *,
                lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                lock_poll_max_s: float = LOCK_POLL_MAX_S) -> int | None:
    """Cut the damaged journal of `rel` back to its usable part; the copy's version, or None.

    Under the directory's lock, the copy is read whole again; only if its
    journal is still the version `expected` and still damaged is
    `before_cut()` called (the replicator keeps the journal aside there) and
    the journal truncated and fsynced. What the store would do itself before
    its next append, the valid lines beyond the damage included: a store
    reads no further than the damage.
    """
    root, rel = Path(root), os.fspath(rel)
    journal_name = journal_rel(rel)
    if journal_name is None:
        return None
    with holding([lock], lock_timeout_s, lock_poll_max_s):
        state = read_state(root, rel)
        if state is None or state.journal != expected or state.damaged is None:
            return None
        if before_cut is not None:
            before_cut()
        _truncate(root, journal_name, state.journal_end, durable=True)
    return state.version


# --------------------------------------------------------------------------
# the source


def read_shipment(root: Path, rel: str, dest: ObjectVersion | None,
                  source_lock: DirectoryLock | None, lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                  lock_poll_max_s: float = LOCK_POLL_MAX_S) -> Shipment | None:
    """The shipment from the copy in `root` to a copy at `dest`, read under `source_lock`.

    None: nothing newer, or a source copy that is not valid (logged).
    """
    try:
        with holding([source_lock] if source_lock is not None else [],
                     min(lock_timeout_s, SOURCE_LOCK_TIMEOUT_S), lock_poll_max_s):
            return _planned(root, rel, dest)
    except LockTimeout:
        # Held this long: the source's process is frozen or gone, so none of
        # its appends can still fail and be cut back; what it wrote stays.
        return _planned(root, rel, dest)


def _planned(root: Path, rel: str, dest: ObjectVersion | None) -> Shipment | None:
    try:
        return plan_shipment(root, rel, dest)
    except InvalidDocument as error:
        log.warning("not copying %s from %s: %s", rel, root, error)
        return None


def plan_shipment(root: Path, rel: str, dest: ObjectVersion | None) -> Shipment | None:
    """What the source at `root` must give a destination whose copy is at `dest`; None: nothing.

    Lines when the source's journal chains the destination's next version
    (read from the journal's tail: the cost of the change); the whole copy
    otherwise.
    """
    base: int | None = None
    if dest is not None:
        base = dest.change
        if not dest.dropped and journal_rel(rel) is not None:
            # Back to the line of `base` itself: the destination's must be the same.
            found = probe(root, rel, reaching=base)
            if found is None:
                return None
            if found.version.change <= base:
                return None
            if not found.version.dropped and found.version.snapshot_change <= base \
                    and found.tail is not None:
                lines = [entry for entry in found.tail.chain if entry.change > base]
                if lines and lines[0].change == base + 1:
                    return Shipment(lines[-1].change, b"".join(entry.line for entry in lines),
                                    base, None, found.tail.line_of(base))
    copy = read_copy(root, rel)
    if copy is None or (base is not None and copy.state.version <= base):
        return None
    return Shipment(copy.state.version, b"".join(entry.line for entry in copy.entries), None,
                    copy.snapshot, None)


# --------------------------------------------------------------------------
# the destination


def _refuse_damaged(found: Probe | None, root: Path, rel: str) -> None:
    if found is not None and found.tail is not None and found.tail.damaged is not None:
        raise DamagedCopy(root / (journal_rel(rel) or rel), found.tail.damaged)


def _deliver(root: Path, rel: str, shipment: Shipment, lock: DirectoryLock, durable: bool,
             still_wanted: Callable[[], bool] | None, lock_timeout_s: float,
             lock_poll_max_s: float, laps: _Laps, repair: bool = False,
             on_append: Callable[[int, int], None] | None = None) -> bool | None:
    """Put `shipment` in place; None if the destination changed since it was planned."""
    journal_name = journal_rel(rel)
    ensure_folders(root, rel)  # refuses a symlinked folder: nothing lands outside
    temps: list[Path] = []
    appended: journal.Appended | None = None
    if shipment.base is None:
        assert shipment.snapshot is not None  # an install carries the source's snapshot
        temps.append(write_durable_temp(root / rel, shipment.snapshot, durable))
        if shipment.lines:
            assert journal_name is not None  # only a table's copy has journal lines
            temps.append(write_durable_temp(root / journal_name, shipment.lines, durable))
    laps.lap("write_temp")
    try:
        with holding([lock], lock_timeout_s, lock_poll_max_s):
            laps.lap("lock_wait")
            now = None if repair else probe(root, rel)
            decision = _still_applies(now, shipment)
            if decision is not True:
                return decision
            _refuse_damaged(now, root, rel)
            if shipment.base is not None and shipment.line_at_base is not None:
                ours = (now.tail.line_of(shipment.base)
                        if now is not None and now.tail is not None else None)
                if ours is not None and ours != shipment.line_at_base:
                    raise DivergedCopy(rel, shipment.base)
            if still_wanted is not None and not still_wanted():
                return False
            if shipment.base is not None:
                # _still_applies went on: the destination holds a table's copy at `base`.
                assert now is not None and journal_name is not None
                if on_append is not None and now.journal is not None and now.tail is not None:
                    on_append(now.journal.inode, now.tail.end + len(shipment.lines))
                appended = _append(root, journal_name, now, shipment.lines)
                folder_changed = appended.created
            else:
                os.replace(temps.pop(0), root / rel)
                if temps:
                    assert journal_name is not None  # the second temp is the journal's
                    os.replace(temps.pop(0), root / journal_name)
                elif journal_name is not None:
                    unlink_quietly(root / journal_name)
                folder_changed = True
        laps.lap("locked")
        if appended is not None and durable:
            # After the lock, as a commit does: the destination's writers never
            # wait for this fsync (a copy lost in a crash is copied again).
            appended.sync()
    finally:
        if appended is not None:
            appended.close()
        for temp in temps:
            unlink_quietly(temp)
    if durable and folder_changed:
        fsync_folder((root / rel).parent)
    laps.lap("fsync_folder")
    return True


def _still_applies(now: Probe | None, shipment: Shipment) -> bool | None:
    """Under the lock: True to go on, False if the destination caught up, None to plan again."""
    if now is None:
        return True if shipment.base is None else None
    if now.version.change >= shipment.version:
        return False
    if shipment.base is None:
        return True  # a whole copy over an older one, whatever it moved to
    if now.version.change != shipment.base or now.version.dropped:
        return None
    return True


def _append(root: Path, journal_name: str, now: Probe, lines: bytes) -> journal.Appended:
    """Append `lines` after the destination's valid journal, not yet synced (the caller does)."""
    path = root / journal_name
    if now.tail is not None and now.tail.torn:
        _truncate(root, journal_name, now.tail.end, durable=False)  # the append's sync covers it
    return journal.append_entry(path, lines)


def _truncate(root: Path, journal_name: str, size: int, durable: bool) -> None:
    with folder_of(root, journal_name) as folder:
        if folder is None:
            return
        descriptor = open_in(folder, journal_name.rsplit("/", 1)[-1], journal_name,
                             os.O_WRONLY)
        if descriptor is None:
            return
        try:
            os.ftruncate(descriptor, size)
            if durable:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
