"""What the replicator does to one server's copy of an object, and how it is booked.

The reconciliation of a path (supervisor/replication.py) decides which
copy wins and what each server's copy needs; `CopyWork` does it to one
destination and books the result in the replicator's figures
(replication_stats.py), its replica health (replication_health.py) and the
path's `PathOutcome`:

- **copy**: the winner's newer version shipped into an older or missing
  copy (engine/storage/object_copy.py `bring_up_to_date`: the journal lines
  the destination lacks appended, else the snapshot installed), re-checked
  under the destination's write lock; the event of our own append is
  announced (`expect_echo`) so that it is not queued as a new write;
- **heal**: a corrupt copy replaced by a valid one (a local winner's, or
  one fetched from another machine's server: `read_source`), only if the
  file is still the very version found corrupt, the corrupt file kept
  aside in `<data>/.corrupt/` (objectfiles.py `keep_aside`);
- **cut**: a damaged journal kept aside the same way and cut back to the
  part a store reads (engine/storage/object_copy.py `cut_journal`).

A symlink is refused, a failing write listed as a failing copy with its
reason (retried by the queue), a copy that moved meanwhile looked at again.

Destination write locks: one `DirectoryLock` per server and per thread
(`lock_of`), since flock belongs to the open file: two threads sharing one
descriptor would both "hold" it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.storage.atomic_files import fsync_folder
from engine.storage.nofollow import FileSignature, ObjectRefused, folder_of, stat_in
from engine.storage.object_copy import (
    DivergedCopy,
    Shipment,
    bring_up_to_date,
    cut_journal,
    replace_copy_from,
)
from engine.storage.object_format import CORRUPT_FOLDER, DIVERGED_FOLDER, InvalidDocument
from engine.storage.object_state import (
    CopyState,
    CopyStates,
    CorruptObject,
    KeptChanging,
    journal_rel,
)
from engine.storage.peers import PROMPT_LOCK_POLL_MAX_S, DirectoryLock
from supervisor.objectfiles import keep_aside
from supervisor.replication_health import Repair, ReplicaHealth
from supervisor.replication_stats import ReplicationStats
from supervisor.thread_handles import ThreadHandles

__all__ = ["CopyWork", "PathOutcome"]


@dataclass
class PathOutcome:
    """What one reconciliation of a path did and found."""

    copied: int = 0
    healed: int = 0
    conflict: bool = False
    unreadable: bool = False   # some copy could not be read, or stays corrupt
    copy_failed: bool = False  # some copy could not be written
    refused: bool = False      # some server's path is a symlink (not retried)
    # Servers of other machines not reached this time: a conflict with them stays open.
    uncompared: set[str] = field(default_factory=set)

    @property
    def needs_retry(self) -> bool:
        return self.unreadable or self.copy_failed


class CopyWork:
    """Copies, repairs and cuts into one server's directory, booked in stats and health."""

    def __init__(self, logger: logging.Logger, stats: ReplicationStats, health: ReplicaHealth,
                 cache: CopyStates[tuple[str, str]],
                 expect_echo: Callable[[str, str, int, int], None]):
        self.log = logger
        self._stats = stats
        self._health = health
        self._cache = cache              # the replicator's copies, by (server, object)
        self._expect_echo = expect_echo  # (server, object, inode, size) of our own append
        # Write locks of the directories, a handle per thread (`lock_of`).
        self._thread_locks: ThreadHandles[Path, DirectoryLock] = ThreadHandles(
            DirectoryLock, lambda lock: lock.root)

    # ----- booking ---------------------------------------------------------

    def refused(self, server_id: str, rel: str, error: ObjectRefused,
                outcome: PathOutcome) -> None:
        outcome.refused = True
        self._health.refused(server_id, rel, str(error))
        self._stats.error(server_id, str(error), log=False)

    def left_corrupt(self, rel: str, corrupt: dict[str, CorruptObject], why: str,
                     outcome: PathOutcome) -> None:
        """Corrupt copies not repaired now: reported, and the path retried later."""
        for server_id, error in corrupt.items():
            self._health.corrupt(server_id, rel, error.reason, why)
            self._stats.error(server_id, f"{rel}: corrupt copy ({error.reason}); {why}",
                              log=False)
            outcome.unreadable = True

    # ----- one destination -------------------------------------------------

    def copy_into(self, rel: str, source: str, source_root: Path, server_id: str, root: Path,
                  since: float | None, outcome: PathOutcome) -> None:
        try:
            copied = self._copy(rel, source, source_root, server_id, root)
        except ObjectRefused as error:
            self.refused(server_id, rel, error, outcome)
            return
        except DivergedCopy as error:
            # Lower in the history than the versions compared above: the
            # same conflict, found while shipping.
            self._stats.conflict(rel, error.change, (source, server_id))
            outcome.conflict = True
            return
        except InvalidDocument as error:  # damaged or corrupt meanwhile: the next round repairs it
            self._stats.error(server_id, f"copy of {rel} not made: {error}", log=False)
            outcome.unreadable = True
            return
        except KeptChanging:
            # The source was rewritten while it was read: nothing failed, the
            # path is reconciled again (its newer version brings an event too).
            outcome.unreadable = True
            return
        except OSError as error:
            self._stats.error(server_id, f"copy of {rel} failed: {error}", log=False)
            self._health.copy_failed(server_id, rel, error.strerror or str(error))
            outcome.copy_failed = True
            return
        self._health.copy_done(server_id, rel)
        if copied:
            outcome.copied += 1
            lag_ms = (time.monotonic() - since) * 1000 if since is not None else None
            self._stats.copied(server_id, lag_ms)

    def heal_into(self, rel: str, source: str, read_source: Callable[[], Shipment | None],
                  server_id: str, root: Path, corrupt: CorruptObject,
                  outcome: PathOutcome) -> None:
        try:
            repair = self._heal(rel, source, read_source, server_id, root, corrupt)
        except ObjectRefused as error:
            self.refused(server_id, rel, error, outcome)
            return
        except OSError as error:
            reason = error.strerror or str(error)
            self._stats.error(server_id, f"repair of {rel} failed: {error}", log=False)
            self._health.copy_failed(server_id, rel, reason)
            self._health.corrupt(server_id, rel, corrupt.reason,
                                 f"its repair from {source} failed: {reason}")
            outcome.copy_failed = True
            return
        if repair is None:
            outcome.unreadable = True  # replaced meanwhile: look at it again
            return
        self._repaired(server_id, repair, outcome)

    def cut_into(self, rel: str, source: str, change: int, server_id: str, root: Path,
                 copy: CopyState, outcome: PathOutcome) -> None:
        """Keep a damaged journal aside and cut it back to the part its version is made of."""
        kept: list[Path] = []
        journal_name = journal_rel(rel)
        # Only a table's copy with a damaged journal is cut.
        assert journal_name is not None and copy.journal is not None
        try:
            version = cut_journal(root, rel, self.lock_of(server_id, root), copy.journal,
                                  lambda: kept.append(keep_aside(root, journal_name)),
                                  lock_poll_max_s=PROMPT_LOCK_POLL_MAX_S)
        except ObjectRefused as error:
            self.refused(server_id, rel, error, outcome)
            return
        except (InvalidDocument, OSError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            self._stats.error(server_id, f"repair of {journal_name} failed: {error}", log=False)
            self._health.corrupt(server_id, rel, f"journal: {copy.damaged}",
                                 f"its repair failed: {reason}")
            outcome.copy_failed = True
            return
        if version is None:
            outcome.unreadable = True  # written meanwhile: look at it again
            return
        self._sync_kept(kept)
        self.remember(server_id, root, rel)
        self._repaired(server_id, Repair(rel, f"journal: {copy.damaged}", time.time(), source,
                                         change, kept[0].relative_to(root).as_posix()), outcome)

    def _repaired(self, server_id: str, repair: Repair, outcome: PathOutcome) -> None:
        self._health.copy_done(server_id, repair.path)
        self._health.healed(server_id, repair)
        self._stats.copied(server_id, None)
        outcome.copied += 1
        outcome.healed += 1

    # ----- locks -----------------------------------------------------------

    def lock_of(self, server_id: str, root: Path) -> DirectoryLock:
        """This thread's handle on the write lock of a server's data directory.

        One descriptor per thread: flock belongs to the open file, so two
        threads sharing one would both "hold" it, and the first to release
        would unlock the other's check-and-rename.
        """
        return self._thread_locks.get(server_id, root)

    def close_thread_locks(self) -> None:
        self._thread_locks.close_thread()

    # ----- the file work ---------------------------------------------------

    def _copy(self, rel: str, source: str, source_root: Path, server_id: str, root: Path) -> bool:
        """Ship `source`'s newer version of `rel` into one server; False if nothing moved."""
        copied = bring_up_to_date(source_root, root, rel, self.lock_of(server_id, root),
                                  source_lock=self.lock_of(source, source_root),
                                  lock_poll_max_s=PROMPT_LOCK_POLL_MAX_S, timed=self._stats.timed,
                                  on_append=lambda inode, size: self._expect_echo(
                                      server_id, rel, inode, size))
        if copied:
            self.log.debug("copied %s from %s to %s", rel, source, server_id)
        return copied

    def _heal(self, rel: str, source: str, read_source: Callable[[], Shipment | None],
              server_id: str, root: Path, corrupt: CorruptObject) -> Repair | None:
        """Replace a corrupt copy by the source's (`read_source()`: its whole copy, from a
        local directory or another machine), kept aside; None if it changed meanwhile."""
        replaced = self._replace_kept_aside(rel, read_source, server_id, root,
                                            corrupt.signature, CORRUPT_FOLDER, corrupt.data)
        if replaced is None:
            return None
        change, kept = replaced
        return Repair(rel, corrupt.reason, time.time(), source, change,
                      kept.relative_to(root).as_posix())

    def replace_diverged(self, rel: str, read_source: Callable[[], Shipment | None],
                         server_id: str, root: Path, mine: CopyState) -> Path | None:
        """Install the source's whole copy over `mine` (a copy that diverged from the
        cluster's), kept in `.diverged/`; the kept snapshot's path, or None if `mine`
        changed meanwhile. Raises OSError, ObjectRefused."""
        replaced = self._replace_kept_aside(rel, read_source, server_id, root, mine.snapshot,
                                            DIVERGED_FOLDER)
        return replaced[1] if replaced is not None else None

    def _replace_kept_aside(self, rel: str, read_source: Callable[[], Shipment | None],
                            server_id: str, root: Path, signature: FileSignature, folder: str,
                            data: bytes | None = None) -> tuple[int, Path] | None:
        """Install `read_source()`'s whole copy over the copy whose snapshot has `signature`,
        that snapshot (and its journal) kept in `folder`; (the version installed, the kept
        snapshot), or None if the copy changed meanwhile (nothing done)."""
        kept: list[Path] = []
        journal_name = journal_rel(rel)

        def still_that_copy_then_kept_aside() -> bool:
            # Under the destination's lock: only the very version found is
            # replaced, never a write that landed since.
            try:
                with folder_of(root, rel) as found:
                    current = stat_in(found, rel.rsplit("/", 1)[-1], rel) \
                        if found is not None else None
                    journal_here = journal_name is not None and found is not None and stat_in(
                        found, journal_name.rsplit("/", 1)[-1], journal_name) is not None
            except OSError:
                return False
            if current is None or FileSignature.of(current) != signature:
                return False
            kept.append(keep_aside(root, rel, data, folder=folder))
            if journal_here and journal_name is not None:  # replaced with the snapshot: kept with it
                keep_aside(root, journal_name, folder=folder)
            return True

        change = replace_copy_from(read_source, root, rel, self.lock_of(server_id, root),
                                   still_wanted=still_that_copy_then_kept_aside,
                                   lock_poll_max_s=PROMPT_LOCK_POLL_MAX_S)
        if change is None:
            return None
        self._sync_kept(kept)
        self.remember(server_id, root, rel)
        return change, kept[0]

    def _sync_kept(self, kept: list[Path]) -> None:
        try:
            fsync_folder(kept[0].parent)
        except OSError as error:  # the repair itself is in place and durable
            self.log.warning("kept %s, but its folder could not be synced: %s", kept[0], error)

    def remember(self, server_id: str, root: Path, rel: str) -> None:
        """Cache the copy just written: its echo event is then a no-op."""
        try:
            self._cache.read((server_id, rel), root, rel)
        except (InvalidDocument, OSError):
            pass
