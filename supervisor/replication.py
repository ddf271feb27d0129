"""Replication of object files between the servers' data directories.

Runs inside the supervisor. A watchdog observer watches every server's data
directory (recursively); when an object changes in one (the engine writes a
snapshot with temp file + `os.replace`, one moved event; it appends to a
table's journal `<db>/tables/<t>.journal`, a modified and a closed event,
mapped to the table `<db>/tables/<t>.json`), the object is queued and a
small pool of worker threads reconciles it across all servers (different
paths in parallel, one path by one worker at a time):

- every server's copy is read and checked whole (engine/storage/object_state.py:
  the snapshot with `check_document`, each journal entry's checksum, chain
  and fit) and summarised (version, tombstone flag, digests); summaries are
  cached by the files' signatures, and a journal that only grew is read
  from where the last summary ended, so an append costs its own lines and
  the event of our own append into a peer's journal is recognised (the
  journal's inode and size as we left it) and not queued at all;
- the valid copies with the highest version win and are shipped into every
  server whose copy is missing or older (engine/storage/object_copy.py
  `bring_up_to_date`, the store's pull on write uses it too): the journal
  lines the destination lacks are appended to its journal when the
  winner's journal chains them (cost of the change, the destination's
  snapshot untouched), else the winner's snapshot is installed atomically
  with its journal lines after it. An older copy never overwrites a newer
  one; a drop is a tombstone snapshot with a higher version, so it
  propagates like any write and a returning server cannot resurrect the
  object;
- two copies with the same version and different content changed
  independently: that is a CONFLICT (engine/storage/object_state.py `same_content`:
  the journal line of that version when both have it, else the
  materialized documents without their `format`). Both stay as they are,
  nothing is copied for that path, the conflict is logged and listed in
  `stats()` until a newer write on either side settles it;
- a corrupt copy (a snapshot that is not a valid document: torn,
  truncated, garbage, wrong kind or name, bad header) is never copied
  anywhere. It is repaired from the winning valid copy: under the
  destination's write lock, if the file is still the corrupt version that
  was read, it is hard-linked to `<data>/.corrupt/<rel>.<timestamp>` (its
  journal copied there too) and the good copy installed over it. A
  damaged journal (a valid entry after an invalid line, an entry that
  does not chain or fit: more than a torn tail) is kept aside the same way
  and cut back to the part a store reads; the winner's lines then follow.
  Logged as an error, counted and listed in `stats()`
  (replication_health.py). With no valid copy anywhere, or while the valid
  copies conflict, a corrupt snapshot is reported and left alone (and
  retried); a torn journal tail is no corruption (a crash in the middle of
  an append): it is never shipped, and cut before lines are appended;
- a symlink is never followed: an object path that is a symlink, or lies
  under a symlinked database or kind folder, is neither read, nor copied
  from, nor written over (engine/storage/nofollow.py walks down with
  `O_NOFOLLOW`); it is logged and listed as refused for that server;
- a copy that fails (disk full, read-only file system, lock timeout) is
  listed per destination server with its reason, since when and its
  attempts, and retried with backoff until it lands (replication_queue.py);
- the source is read under its directory's write lock (no line before its
  append is durable; a lock held over a second belongs to a frozen
  process and is not waited for), and the destination's version is read
  again under its own, right
  before the append or the renames; if it meanwhile moved (a local write),
  the copy is planned again or abandoned. A server also holds that lock
  while it fences and writes its own commit, so an older copy can never
  replace a newer local write in between.

Coalescing: events only mark a path as pending (an ordered set), so a burst
of writes to one object is reconciled once or twice, with the latest file;
a worker starts on a path as soon as its first event arrives (no debounce
delay), which keeps the lag low. Workers: `workers` (default 2) copy
different paths at once, their fsyncs overlapping in the file system's
journal, so one slow copy (a large install, a failing disk) does not hold
the others. More workers only contend for the interpreter's lock: a copy
is now a journal append and one fdatasync, and at 400 rows/s from ten
sessions (`bench/cluster_bench.py --class-rate 40`) the lag p99 was
12-15 ms with 4 workers, 9-12 ms with 2 (2026-12-02). (When a copy was a
whole snapshot with several fsyncs, one worker made a class's copies
queue: p99 ~100-250 ms.) Each worker has its own descriptor of each destination's
lock file, so flock excludes the workers from each other as it excludes
the servers. Event-driven work goes first; a periodic
background pass (every `resync_interval_s`) re-queues every file at low
priority as a safety net for events lost by inotify (and finds corrupt
copies and symlinks nobody wrote lately).

Lag: for each copy made because of an event, the time from the first event
of the write (the rename's inotify event, ~0.35 ms after it, or the
journal's modification) to the copy being in place, per destination server,
over the last `lag_window` copies.
The file's mtime is not used: it is set when the temp file is written,
before the source's fsync, and has the kernel's coarse tick granularity.
Copies made by `sync_all`/`catch_up` are not lag samples.

Copies also go into the directory of a server whose process is down (its
files are still there); `catch_up(server)` pulls everything newer from the
peers (and repairs that server's corrupt copies) and must run before a
restarted server takes writes (it covers the time the supervisor itself was
down or the server was removed). `sync_all()` reconciles everything (at
start); `seed(id, path)` adds a server and fills its directory.

Servers of other machines (a topology spanning machines): `remote` names
them by address; every version that settles here is shipped to them over
the peer protocol, and `catch_up`/`sync_all`/`seed` also pull their newer
copies into this machine's servers (replication_remote.py: no shared file
system). Their lag and failing copies are figures of this replicator like
any destination's. A copy of theirs at the local winner's very version is
compared with it (`.peer digest`): another content is a CONFLICT as
between two local copies, and stays open while that server is not
reached. A corrupt copy here, when no server of this machine holds a
valid one, is repaired from the newest valid copy of theirs, fetched whole
and checked, by the local repair's code (`_heal`).

Helpers: `objectfiles` (listing object files without following symlinks,
mapping an event to its object, keeping a corrupt file aside),
`replication_watch`
(watchdog observer and event filtering), `replication_queue` (coalescing
to-do list, retries, background passes), `replication_stats` (lag, copies,
errors, conflicts), `replication_health` (failing copies, corrupt copies,
repairs, refused symlinks).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.observers.api import BaseObserver, ObservedWatch

from engine.storage.atomic_files import fsync_folder
from engine.storage.nofollow import FileSignature, ObjectRefused, folder_of, stat_in
from engine.storage.object_copy import (
    DivergedCopy,
    Shipment,
    bring_up_to_date,
    cut_journal,
    read_shipment,
    replace_copy_from,
)
from engine.storage.object_format import InvalidDocument
from engine.storage.object_state import (
    CopyDigest,
    CopyState,
    CopyStates,
    CorruptObject,
    KeptChanging,
    journal_rel,
    same_content,
)
from engine.storage.peers import PROMPT_LOCK_POLL_MAX_S, DirectoryLock
from supervisor.errors import OverlappingDataDirectories, UnknownNode
from supervisor.objectfiles import keep_aside, list_object_files
from supervisor.peer_link import PeerAddress, PeerRefused, PeerUnreachable
from supervisor.replication_health import Repair, ReplicaHealth
from supervisor.replication_queue import PendingPaths
from supervisor.replication_remote import RemoteServers, align, pull, repair_source, ship
from supervisor.replication_stats import ReplicationStats, SyncSummary, percentile
from supervisor.replication_watch import WATCHED_EVENTS, DirectoryHandler, make_observer

log = logging.getLogger(__name__)

__all__ = ["Replicator", "SyncSummary", "percentile"]

MAX_RECONCILE_ROUNDS = 3
DEFAULT_WORKERS = 2
# An echo of our own append is expected this long (its event comes within
# milliseconds); an older expectation is ignored, never trusted.
ECHO_WINDOW_S = 1.0
PATH_LOCK_STRIPES = 64
# Comparisons of two copies at one version that needed their documents
# (one checkpointed, the other not): remembered by the files' signatures.
SAME_CONTENT_MEMORY = 4096


@dataclass
class _PathOutcome:
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


class Replicator:
    """Keeps the object files of several data directories in step."""

    def __init__(self, servers: dict[str, Path], logger: logging.Logger | None = None, *,
                 resync_interval_s: float = 10.0, lag_window: int = 1000,
                 workers: int = DEFAULT_WORKERS, remote: dict[str, PeerAddress] | None = None):
        self.log = logger or log
        self._lock = threading.Lock()           # servers, cache, observer, watches
        # One path reconciled at a time (a worker and a sync_all pass could
        # otherwise meet on it); striped so that memory stays bounded.
        self._path_locks = [threading.Lock() for _ in range(PATH_LOCK_STRIPES)]
        self._servers: dict[str, Path] = {}
        self._stats = ReplicationStats(self.log, lag_window)
        self._health = ReplicaHealth(self.log)
        self._cache: CopyStates[tuple[str, str]] = CopyStates()   # by (server, object)
        self._same: dict[tuple, bool] = {}       # see _same_content
        # (server, path) -> (inode, size, when) of a journal this replicator
        # just appended to: the event of that very append is no new write.
        self._echoes: dict[tuple[str, str], tuple[int, int, float]] = {}
        self._observer: BaseObserver | None = None
        self._watches: dict[str, ObservedWatch] = {}
        self._worker_count = max(1, workers)
        self._workers: list[threading.Thread] = []
        self._pending = PendingPaths(self._all_paths, resync_interval_s)
        self._thread_locks = threading.local()  # destination write locks, per thread
        for server_id, path in servers.items():
            self._register(server_id, Path(path))
        self._remote = RemoteServers()
        self.set_remote(remote or {})

    # ----- lifecycle -------------------------------------------------------

    def start(self) -> None:
        """Start watching every data directory and the worker thread."""
        with self._lock:
            if self._observer is not None:
                return
            self._observer = make_observer()
            self._pending.reopen()
            servers = dict(self._servers)
        for server_id, root in servers.items():
            self._watch(server_id, root)
        self._observer.start()
        self._workers = [threading.Thread(target=self._run, name=f"replication-worker-{n}",
                                          daemon=True) for n in range(self._worker_count)]
        for worker in self._workers:
            worker.start()

    def stop(self) -> None:
        """Stop watching; pending paths are dropped (the next sync_all redoes them)."""
        with self._lock:
            observer, self._observer = self._observer, None
        self._pending.close()
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
        for worker in self._workers:
            worker.join(timeout=5)
        self._workers = []
        with self._lock:
            self._watches.clear()

    def add_server(self, server_id: str, path: Path) -> None:
        """Start replicating into and out of one more data directory."""
        self._register(server_id, Path(path))
        with self._lock:
            root = self._servers[server_id]
            watching = self._observer is not None
        if watching:
            self._watch(server_id, root)

    def remove_server(self, server_id: str) -> None:
        """Stop replicating into and out of a server's directory (files stay)."""
        with self._lock:
            self._servers.pop(server_id, None)
            watch = self._watches.pop(server_id, None)
            observer = self._observer
        self._cache.forget(lambda key: key[0] == server_id)
        self._stats.remove_server(server_id)
        self._health.remove_server(server_id)
        if watch is not None and observer is not None:
            try:
                observer.unschedule(watch)
            except (KeyError, OSError):
                pass

    def servers(self) -> dict[str, Path]:
        with self._lock:
            return dict(self._servers)

    def set_remote(self, peers: dict[str, PeerAddress]) -> None:
        """The servers of other machines (by address) to ship to and pull from."""
        before = set(self._remote.ids())
        self._remote.set(peers)
        for server_id in before - set(peers):
            self._stats.remove_server(server_id)
            self._health.remove_server(server_id)
        for server_id in set(peers) - before:
            self._stats.add_server(server_id)
            self._health.add_server(server_id)

    def remote_servers(self) -> list[str]:
        return self._remote.ids()

    # ----- whole-directory passes -----------------------------------------

    def sync_all(self) -> SyncSummary:
        """Reconcile every object file of every server (newer wins everywhere), the servers of
        other machines included (theirs pulled into ours, ours shipped to theirs)."""
        summary = self._pull_remote(set(self.servers()))
        return summary.add(self._pass(destinations=None))

    def catch_up(self, server_id: str) -> SyncSummary:
        """Pull every object that is newer (or missing) at `server_id` from its peers (those of
        other machines over the network)."""
        with self._lock:
            if server_id not in self._servers:
                raise UnknownNode(f"unknown server {server_id!r}")
        summary = self._pull_remote({server_id})
        return summary.add(self._pass(destinations={server_id}))

    def align(self, server_id: str, sources: list[str]) -> SyncSummary:
        """Make `server_id`'s copies those of the remote `sources` (write leases: a server
        whose machine was excluded, before it joins again; replication_remote.align)."""
        with self._lock:
            root = self._servers.get(server_id)
        if root is None:
            raise UnknownNode(f"unknown server {server_id!r}")
        summary = SyncSummary()
        try:
            aligned = align(self._remote, sources, root, self._lock_of(server_id, root),
                            PROMPT_LOCK_POLL_MAX_S)
        finally:
            self._close_thread_locks()
        summary.copied += len(aligned.copied)
        for copied in aligned.copied:
            self._remember(server_id, root, copied)
        summary.unreachable.extend(aligned.problems)
        return summary

    def _pull_remote(self, destinations: set[str]) -> SyncSummary:
        """Bring these local servers up to the remote servers' newer copies."""
        summary = SyncSummary()
        if not self._remote.ids():
            return summary
        try:
            for server_id in sorted(destinations):
                root = self.servers().get(server_id)
                if root is None:
                    continue
                pulled = pull(self._remote, root, self._lock_of(server_id, root),
                              PROMPT_LOCK_POLL_MAX_S)
                summary.copied += len(pulled.copied)
                for copied in pulled.copied:
                    self._remember(server_id, root, copied)
                for rel, change, other in pulled.conflicts:
                    self._stats.conflict(rel, change, (other, server_id))
                    summary.conflicts.append(rel)
                for problem in pulled.problems:
                    self._stats.error(server_id, f"catching up from another machine: {problem}")
                summary.unreachable.extend(pulled.problems)
        finally:
            self._close_thread_locks()
        return summary

    def seed(self, server_id: str, path: Path) -> SyncSummary:
        """Add a new server and copy every object into its directory."""
        self.add_server(server_id, path)
        return self.catch_up(server_id)

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait until no event-driven work is pending (for tests and benches)."""
        return self._pending.wait_idle(timeout_s)

    # ----- reporting -------------------------------------------------------

    def stats(self) -> dict:
        """Per server: lag_p50_ms, lag_p99_ms, lag_samples, files_copied,
        conflicts (open ones: path, change, servers, detected_at), last_error,
        and its replica health (replication_health.py): failing (copies into it
        that fail: path, reason, since, attempts, last_attempt_at), corrupt
        (its corrupt copies not repaired: path, reason, since, not_healed),
        refused (symlinks not followed), healed (count) and repairs (latest
        first: path, reason, healed_at, source, change, kept_as)."""
        snapshot = self._stats.snapshot()
        for server_id, figures in snapshot.items():
            figures.update(self._health.snapshot(server_id))
        return snapshot

    def lag_samples(self, server_id: str) -> list[float]:
        """The recent copy lags (ms) into one server, oldest first."""
        return self._stats.lag_samples(server_id)

    def conflicts(self) -> list[dict]:
        """Every open conflict."""
        return self._stats.conflicts()

    def timings(self) -> dict[str, list[float]]:
        """Where copy time goes: phase -> recent durations (ms): queue_wait (first
        event -> a worker takes the path), write_temp, lock_wait, locked,
        fsync_folder (per copy)."""
        return self._stats.timings()

    # ----- internals: registration and events ------------------------------

    def _register(self, server_id: str, path: Path) -> None:
        root = Path(os.path.abspath(path))
        root.mkdir(parents=True, exist_ok=True)
        root = root.resolve()
        with self._lock:
            for other_id, other in self._servers.items():
                if other_id == server_id:
                    continue
                if other == root or other in root.parents or root in other.parents:
                    raise OverlappingDataDirectories(f"data directory of {server_id} ({root}) overlaps "
                                     f"the one of {other_id} ({other})")
            if self._servers.get(server_id, root) != root:  # moved: forget the old copies
                self._cache.forget(lambda key: key[0] == server_id)
            self._servers[server_id] = root
        self._stats.add_server(server_id)
        self._health.add_server(server_id)

    def _watch(self, server_id: str, root: Path) -> None:
        with self._lock:
            observer = self._observer
            old = self._watches.pop(server_id, None)
        if observer is None:
            return
        if old is not None:
            observer.unschedule(old)
        handler = DirectoryHandler(str(root), lambda rel: self._event(server_id, root, rel),
                                   lambda message: self._stats.error(server_id, message))
        watch = observer.schedule(handler, str(root), recursive=True,
                                  event_filter=WATCHED_EVENTS)
        with self._lock:
            self._watches[server_id] = watch

    def _event(self, server_id: str, root: Path, rel: str) -> None:
        """A write landed at `rel` in `server_id`'s directory: queue it, unless it is
        the echo of our own append there (the journal is still exactly as we left it).

        Without this, every copy made a second job (reading every copy again)
        and a class's writes queued behind those. Any other write since ours
        changed the journal's size or inode, so its event is queued (inotify
        may fold both appends' events into one: that one is then queued).
        """
        with self._lock:
            echo = self._echoes.pop((server_id, rel), None)
        if echo is not None and time.monotonic() - echo[2] < ECHO_WINDOW_S:
            journal_name = journal_rel(rel)
            try:
                found = os.lstat(root / journal_name) if journal_name is not None else None
            except OSError:
                found = None
            if found is not None and (found.st_ino, found.st_size) == echo[:2]:
                return
        self._pending.add(rel)

    def _expect_echo(self, server_id: str, rel: str, inode: int, size: int) -> None:
        with self._lock:
            if len(self._echoes) >= PATH_LOCK_STRIPES * 16:
                self._echoes.clear()   # bounded: a forgotten echo only costs a job
            self._echoes[(server_id, rel)] = (inode, size, time.monotonic())

    def _all_paths(self) -> set[str]:
        """Every object path of every server; symlinks found on the way are reported."""
        paths: set[str] = set()
        for server_id, root in self.servers().items():
            refused: dict[str, str] = {}
            paths |= list_object_files(root, refused)
            self._health.refused_listed(server_id, refused)
        return paths

    def _run(self) -> None:
        try:
            self._work()
        finally:
            self._close_thread_locks()

    def _work(self) -> None:
        while (job := self._pending.take()) is not None:
            rel, since = job
            if since is not None:
                self._stats.timed("queue_wait", (time.monotonic() - since) * 1000)
            failed = True
            try:
                failed = self._reconcile(rel, destinations=None, since=since).needs_retry
            except Exception:  # the worker must survive anything
                self.log.exception("replication of %s failed", rel)
            finally:
                self._pending.done(rel, failed, since)

    def _pass(self, destinations: set[str] | None) -> SyncSummary:
        try:
            return self._pass_over(destinations)
        finally:
            self._close_thread_locks()  # the caller's thread may never come back

    def _pass_over(self, destinations: set[str] | None) -> SyncSummary:
        summary = SyncSummary()
        for rel in sorted(self._all_paths()):
            outcome = self._reconcile(rel, destinations=destinations, since=None)
            summary.paths += 1
            summary.copied += outcome.copied
            if outcome.healed:
                summary.healed.append(rel)
            if outcome.refused:
                summary.refused.append(rel)
            if outcome.conflict:
                summary.conflicts.append(rel)
            if outcome.needs_retry:
                summary.unreadable.append(rel)
        return summary

    # ----- internals: one path --------------------------------------------

    def _read(self, server_id: str, root: Path, rel: str) -> CopyState | None:
        """One server's valid copy (None: no snapshot), read again only as far as it changed.

        Raises ObjectRefused (a symlink), CorruptObject, OSError.
        """
        return self._cache.read((server_id, rel), root, rel)

    def _reconcile(self, rel: str, destinations: set[str] | None,
                   since: float | None) -> _PathOutcome:
        """Bring one path in step; `since` (event time) makes copies count as lag samples."""
        with self._path_locks[hash(rel) % PATH_LOCK_STRIPES]:
            outcome = _PathOutcome()
            for _ in range(MAX_RECONCILE_ROUNDS):
                if self._reconcile_once(rel, destinations, since, outcome):
                    return outcome
            outcome.unreadable = True  # kept changing under us: retry later
            return outcome

    def _reconcile_once(self, rel: str, destinations: set[str] | None, since: float | None,
                        outcome: _PathOutcome) -> bool:
        """One attempt; False if a copy changed under us (try again)."""
        servers = self.servers()
        copies: dict[str, CopyState] = {}
        corrupt: dict[str, CorruptObject] = {}
        unusable: set[str] = set()  # refused or unreadable: neither a source nor a target
        for server_id, root in servers.items():
            try:
                copy = self._read(server_id, root, rel)
            except ObjectRefused as error:
                unusable.add(server_id)
                self._refused(server_id, rel, error, outcome)
                continue
            except CorruptObject as error:
                corrupt[server_id] = error
                continue
            except KeptChanging:
                return False  # rewritten while it was read: start over with fresh copies
            except OSError as error:
                # Not repaired: an I/O error may pass, and a disk that fails
                # reads is no place to write a repair either.
                unusable.add(server_id)
                outcome.unreadable = True
                self._stats.error(server_id, f"{rel}: cannot be read: {error}")
                continue
            self._health.valid(server_id, rel)
            if copy is not None:
                copies[server_id] = copy
        if not copies:
            # Repaired from another machine: looked at again, so that the repaired copy is
            # compared and shipped as any valid one (and a conflict it ends, settled).
            return not self._heal_from_remote(rel, servers, corrupt, destinations, outcome)
        top = max(copy.version for copy in copies.values())
        # An undamaged holder is the better source (both ship only valid lines).
        holders = sorted((server_id for server_id, copy in copies.items() if copy.version == top),
                         key=lambda server_id: (copies[server_id].damaged is not None, server_id))
        winner = holders[0]
        for server_id in holders:
            self._health.copy_done(server_id, rel)  # it holds the newest: nothing is failing
        wanted = [server_id for server_id in servers
                  if destinations is None or server_id in destinations]
        targets = [server_id for server_id in wanted
                   if server_id not in unusable and server_id not in corrupt
                   and (server_id not in copies or copies[server_id].version < top)]
        to_heal = [server_id for server_id in corrupt if server_id in wanted]
        to_cut = [server_id for server_id in wanted
                  if server_id in copies and copies[server_id].damaged is not None]
        suspects = [server_id for server_id in holders[1:]
                    if copies[server_id].identity != copies[winner].identity]
        if not targets and not suspects and not to_heal and not to_cut:
            self._left_corrupt(rel, corrupt, "left for the next pass over every server", outcome)
            if destinations is None:
                self._ship_remote(rel, winner, servers[winner], copies[winner], since, outcome)
            if not outcome.conflict:   # a server of another machine may hold another content
                self._stats.settled(rel, unless=self._uncompared(destinations, outcome))
            return True
        differing = []
        for server_id in suspects:
            same = self._same_content(rel, servers, winner, copies[winner], server_id,
                                      copies[server_id])
            if same is None:
                return False  # rewritten meanwhile: start over with fresh copies
            if not same:
                differing.append(server_id)
        if differing:
            self._stats.conflict(rel, top, (winner, *differing))
            outcome.conflict = True
            self._left_corrupt(rel, corrupt, "not repaired while the valid copies conflict",
                               outcome)
            return True
        for server_id in to_cut:
            self._cut_into(rel, winner, top, server_id, servers[server_id], copies[server_id],
                           outcome)
        for server_id in targets:
            self._copy_into(rel, winner, servers[winner], server_id, servers[server_id], since,
                            outcome)
        winner_lock = self._lock_of(winner, servers[winner])
        for server_id in to_heal:
            self._heal_into(rel, winner, lambda: read_shipment(
                servers[winner], rel, None, winner_lock, lock_poll_max_s=PROMPT_LOCK_POLL_MAX_S),
                server_id, servers[server_id], corrupt[server_id], outcome)
        if destinations is None and not outcome.conflict:
            self._ship_remote(rel, winner, servers[winner], copies[winner], since, outcome)
        if not outcome.conflict:  # a copy may have found the copies diverged lower down
            self._stats.settled(rel, unless=self._uncompared(destinations, outcome))
        self._left_corrupt(rel, {s: e for s, e in corrupt.items() if s not in to_heal},
                           "left for the next pass over every server", outcome)
        return True

    def _uncompared(self, destinations: set[str] | None, outcome: _PathOutcome) -> set[str]:
        """The servers of other machines this reconciliation did not compare (all of them when
        it only brought some local servers up to date): a conflict with them stays open."""
        return set(self._remote.ids()) if destinations is not None else outcome.uncompared

    def _ship_remote(self, rel: str, winner: str, winner_root: Path, winner_copy: CopyState,
                     since: float | None, outcome: _PathOutcome) -> None:
        """Ship the winner's version to every server of another machine that is older; one
        at that very version is compared with it, as two local copies are."""
        top = winner_copy.version
        for server_id in self._remote.ids():
            try:
                shipped = ship(self._remote, server_id, rel, winner_root,
                               self._lock_of(winner, winner_root), top, PROMPT_LOCK_POLL_MAX_S,
                               CopyDigest.of(winner_copy))
            except KeyError:
                continue   # removed meanwhile
            except PeerUnreachable as error:
                self._remote.unreachable(server_id, error)
                reason = str(error)
                self._stats.error(server_id, f"copy of {rel} failed: {reason}", log=False)
                self._health.copy_failed(server_id, rel, reason)
                outcome.copy_failed = True
                outcome.uncompared.add(server_id)
                continue
            except PeerRefused as error:   # an answer that is no answer (a digest, ...)
                self._stats.error(server_id, f"comparing {rel}: {error}", log=False)
                outcome.copy_failed = True
                outcome.uncompared.add(server_id)
                continue
            except OSError as error:   # reading the local source failed
                reason = str(error)
                self._stats.error(server_id, f"copy of {rel} failed: {reason}", log=False)
                self._health.copy_failed(server_id, rel, reason)
                outcome.copy_failed = True
                outcome.uncompared.add(server_id)
                continue
            if shipped.conflict is not None:
                self._stats.conflict(rel, shipped.conflict, (winner, server_id))
                outcome.conflict = True
                continue
            if shipped.problem is not None:
                self._stats.error(server_id, f"copy of {rel}: {shipped.problem}", log=False)
                self._health.copy_failed(server_id, rel, shipped.problem)
                outcome.copy_failed = True
                continue
            self._health.copy_done(server_id, rel)
            if shipped.moved:
                outcome.copied += 1
                self._stats.copied(server_id, (time.monotonic() - since) * 1000
                                   if since is not None else None)

    def _same_content(self, rel: str, servers: dict[str, Path], first: str, first_copy: CopyState,
                      second: str, second_copy: CopyState) -> bool | None:
        """Whether two copies at one version hold the same object (None: one moved meanwhile).

        Remembered by the files' signatures: two copies of one content in
        two shapes (one checkpointed, the other not) stay so until one of
        them is written, and comparing their documents costs the table.
        """
        key = (rel, first_copy.snapshot, first_copy.journal, second_copy.snapshot,
               second_copy.journal)
        with self._lock:
            known = self._same.get(key)
        if known is not None:
            return known
        same = same_content(servers[first], first_copy, servers[second], second_copy, rel)
        if same is not None:
            with self._lock:
                if len(self._same) >= SAME_CONTENT_MEMORY:
                    self._same.clear()
                self._same[key] = same
        return same

    def _refused(self, server_id: str, rel: str, error: ObjectRefused,
                 outcome: _PathOutcome) -> None:
        outcome.refused = True
        self._health.refused(server_id, rel, str(error))
        self._stats.error(server_id, str(error), log=False)

    def _left_corrupt(self, rel: str, corrupt: dict[str, CorruptObject], why: str,
                      outcome: _PathOutcome) -> None:
        """Corrupt copies not repaired now: reported, and the path retried later."""
        for server_id, error in corrupt.items():
            self._health.corrupt(server_id, rel, error.reason, why)
            self._stats.error(server_id, f"{rel}: corrupt copy ({error.reason}); {why}",
                              log=False)
            outcome.unreadable = True

    def _copy_into(self, rel: str, source: str, source_root: Path, server_id: str, root: Path,
                   since: float | None, outcome: _PathOutcome) -> None:
        try:
            copied = self._copy(rel, source, source_root, server_id, root)
        except ObjectRefused as error:
            self._refused(server_id, rel, error, outcome)
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

    def _heal_from_remote(self, rel: str, servers: dict[str, Path],
                          corrupt: dict[str, CorruptObject], destinations: set[str] | None,
                          outcome: _PathOutcome) -> bool:
        """No server of this machine holds a valid copy: repair the corrupt ones from the
        newest valid copy of another machine's server, as from a local one; whether any was."""
        to_heal = {server_id: error for server_id, error in corrupt.items()
                   if destinations is None or server_id in destinations}
        left = {server_id: error for server_id, error in corrupt.items()
                if server_id not in to_heal}
        self._left_corrupt(rel, left, "left for the next pass over every server", outcome)
        if not to_heal:
            return False
        if not self._remote.ids():
            self._left_corrupt(rel, to_heal, "no server holds a valid copy to repair it from",
                               outcome)
            return False
        source, shipment, problems = repair_source(self._remote, rel)
        if shipment is None:
            why = "no server here or on another machine holds a valid copy to repair it from"
            self._left_corrupt(rel, to_heal, f"{why} ({'; '.join(problems)})" if problems
                               else why, outcome)
            return False
        fetched: Shipment = shipment   # one copy fetched, installed into each corrupt one
        healed = outcome.healed
        for server_id, error in to_heal.items():
            self._heal_into(rel, source, lambda: fetched, server_id, servers[server_id], error,
                            outcome)
        return outcome.healed > healed

    def _heal_into(self, rel: str, source: str, read_source: Callable[[], Shipment | None],
                   server_id: str, root: Path, corrupt: CorruptObject,
                   outcome: _PathOutcome) -> None:
        try:
            repair = self._heal(rel, source, read_source, server_id, root, corrupt)
        except ObjectRefused as error:
            self._refused(server_id, rel, error, outcome)
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

    def _cut_into(self, rel: str, source: str, change: int, server_id: str, root: Path,
                  copy: CopyState, outcome: _PathOutcome) -> None:
        """Keep a damaged journal aside and cut it back to the part its version is made of."""
        kept: list[Path] = []
        journal_name = journal_rel(rel)
        # Only a table's copy with a damaged journal is cut.
        assert journal_name is not None and copy.journal is not None
        try:
            version = cut_journal(root, rel, self._lock_of(server_id, root), copy.journal,
                                  lambda: kept.append(keep_aside(root, journal_name)),
                                  lock_poll_max_s=PROMPT_LOCK_POLL_MAX_S)
        except ObjectRefused as error:
            self._refused(server_id, rel, error, outcome)
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
        self._remember(server_id, root, rel)
        self._repaired(server_id, Repair(rel, f"journal: {copy.damaged}", time.time(), source,
                                         change, kept[0].relative_to(root).as_posix()), outcome)

    def _repaired(self, server_id: str, repair: Repair, outcome: _PathOutcome) -> None:
        self._health.copy_done(server_id, repair.path)
        self._health.healed(server_id, repair)
        self._stats.copied(server_id, None)
        outcome.copied += 1
        outcome.healed += 1

    def _lock_of(self, server_id: str, root: Path) -> DirectoryLock:
        """This thread's handle on the write lock of a server's data directory.

        One descriptor per thread: flock belongs to the open file, so two
        threads sharing one would both "hold" it, and the first to release
        would unlock the other's check-and-rename.
        """
        locks = self._thread_locks.__dict__.setdefault("by_server", {})
        lock = locks.get(server_id)
        if lock is None or lock.root != root:
            if lock is not None:
                lock.close()
            lock = locks[server_id] = DirectoryLock(root)
        return lock

    def _close_thread_locks(self) -> None:
        for lock in self._thread_locks.__dict__.pop("by_server", {}).values():
            lock.close()
        self._remote.close_thread_links()

    def _copy(self, rel: str, source: str, source_root: Path, server_id: str, root: Path) -> bool:
        """Ship `source`'s newer version of `rel` into one server; False if nothing moved."""
        copied = bring_up_to_date(source_root, root, rel, self._lock_of(server_id, root),
                                  source_lock=self._lock_of(source, source_root),
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
        kept: list[Path] = []
        journal_name = journal_rel(rel)

        def still_corrupt_then_kept_aside() -> bool:
            # Under the destination's lock: only the very version found
            # corrupt is replaced, never a write that landed since.
            try:
                with folder_of(root, rel) as folder:
                    current = stat_in(folder, rel.rsplit("/", 1)[-1], rel) \
                        if folder is not None else None
                    journal_here = journal_name is not None and folder is not None and stat_in(
                        folder, journal_name.rsplit("/", 1)[-1], journal_name) is not None
            except OSError:
                return False
            if current is None or FileSignature.of(current) != corrupt.signature:
                return False
            kept.append(keep_aside(root, rel, corrupt.data))
            if journal_here and journal_name is not None:  # replaced with the snapshot: kept with it
                keep_aside(root, journal_name)
            return True

        change = replace_copy_from(read_source, root, rel, self._lock_of(server_id, root),
                                   still_wanted=still_corrupt_then_kept_aside,
                                   lock_poll_max_s=PROMPT_LOCK_POLL_MAX_S)
        if change is None:
            return None
        self._sync_kept(kept)
        self._remember(server_id, root, rel)
        return Repair(rel, corrupt.reason, time.time(), source, change,
                      kept[0].relative_to(root).as_posix())

    def _sync_kept(self, kept: list[Path]) -> None:
        try:
            fsync_folder(kept[0].parent)
        except OSError as error:  # the repair itself is in place and durable
            self.log.warning("kept %s, but its folder could not be synced: %s", kept[0], error)

    def _remember(self, server_id: str, root: Path, rel: str) -> None:
        """Cache the copy just written: its echo event is then a no-op."""
        try:
            self._read(server_id, root, rel)
        except (InvalidDocument, OSError):
            pass
