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
copies into this machine's servers (no shared file system). Their lag and
failing copies are figures of this replicator like any destination's. A
copy of theirs at the local winner's very version is compared with it
(`.peer digest`): another content is a CONFLICT as between two local
copies, and stays open while that server is not reached. A corrupt copy
here, when no server of this machine holds a valid one, is repaired from
the newest valid copy of theirs, fetched whole and checked, by the local
repair's code. All of it is `replication_across.py` (over
`replication_remote.py`, the peer protocol's operations).

This module is the orchestration: the servers, the watch, the workers and
the passes, and the reconciliation of one path (which copy wins, what each
server's copy needs). Helpers: `replication_copies` (a copy, repair or cut
into one server's directory, and how its outcome is booked; the per-thread
lock handles), `replication_across` (the servers of other machines),
`objectfiles` (listing object files without following symlinks, mapping an
event to its object, keeping a corrupt file aside), `replication_watch`
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
from pathlib import Path

from watchdog.observers.api import BaseObserver, ObservedWatch

from engine.storage.nofollow import ObjectRefused
from engine.storage.object_copy import read_shipment
from engine.storage.object_state import (
    CopyState,
    CopyStates,
    CorruptObject,
    KeptChanging,
    journal_rel,
    same_content,
)
from engine.storage.peers import PROMPT_LOCK_POLL_MAX_S
from supervisor.errors import OverlappingDataDirectories, UnknownNode
from supervisor.objectfiles import list_object_files
from supervisor.peer_link import PeerAddress
from supervisor.replication_across import AcrossMachines
from supervisor.replication_copies import CopyWork, PathOutcome
from supervisor.replication_health import ReplicaHealth
from supervisor.replication_queue import PendingPaths
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
# What a server's old directory is called while its id names the server elsewhere.
OLD_DIRECTORY_SUFFIX = "~old"


def old_directory_id(server_id: str) -> str:
    """The id a server's old directory goes by while its own id names the server elsewhere
    (another directory, another machine): `<id>~old` (no node id holds a '~')."""
    return f"{server_id}{OLD_DIRECTORY_SUFFIX}"


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
        self._copies = CopyWork(self.log, self._stats, self._health, self._cache,
                                self._expect_echo)
        for server_id, path in servers.items():
            self._register(server_id, Path(path))
        self._across = AcrossMachines(self._stats, self._health, self._copies, self.servers)
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

    def hand_over(self, server_id: str) -> SyncSummary:
        """Copy into the other servers every object of which the stopped `server_id` holds
        the newest version: it is leaving the cluster (removed or changed in the topology)
        and may hold writes it acknowledged that were not copied yet. After this its
        directory holds nothing the cluster lacks, so when it joins again (`seed`) the
        cluster's copies may win over any it holds by then."""
        servers = self.servers()
        others = set(servers) - {server_id}
        if server_id not in servers:
            return SyncSummary()   # (another machine's server: no directory here to read)
        if self.remote_servers():
            # (A whole pass: only it ships to the servers of other machines; the last
            # server of a machine leaving the cluster hands over to them.)
            return self._pass(destinations=None)
        return self._pass(destinations=others) if others else SyncSummary()

    def rename_server(self, server_id: str, new_id: str) -> None:
        """Go on replicating `server_id`'s directory as `new_id`: its id now names a new
        incarnation on another machine (a server moved there), its old directory still has
        to hand over what it holds newest (`old_directory_id`)."""
        with self._lock:
            root = self._servers.get(server_id)
        if root is None:
            raise UnknownNode(f"unknown server {server_id!r}")
        self.remove_server(server_id)
        self.add_server(new_id, root)

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
        self._across.set_peers(peers)

    def remote_servers(self) -> list[str]:
        return self._across.ids()

    # ----- whole-directory passes -----------------------------------------

    def sync_all(self) -> SyncSummary:
        """Reconcile every object file of every server (newer wins everywhere), the servers of
        other machines included (theirs pulled into ours, ours shipped to theirs)."""
        summary = self._across.pull(set(self.servers()))
        return summary.add(self._pass(destinations=None))

    def catch_up(self, server_id: str) -> SyncSummary:
        """Pull every object that is newer (or missing) at `server_id` from its peers (those of
        other machines over the network)."""
        with self._lock:
            if server_id not in self._servers:
                raise UnknownNode(f"unknown server {server_id!r}")
        summary = self._across.pull({server_id})
        return summary.add(self._pass(destinations={server_id}))

    def align(self, server_id: str, sources: list[str]) -> SyncSummary:
        """Make `server_id`'s copies those of the remote `sources` (write leases: a server
        whose machine was excluded, before it joins again; replication_remote.align)."""
        with self._lock:
            root = self._servers.get(server_id)
        if root is None:
            raise UnknownNode(f"unknown server {server_id!r}")
        return self._across.align(server_id, root, sources)

    def seed(self, server_id: str, path: Path) -> SyncSummary:
        """Add a server new to the cluster (or back in it) and copy every object into it.

        Its directory may have been written while it was out of the cluster (the
        embedded runner on a server removed from the topology), at counters the
        cluster has since used for writes it acknowledged; newest-wins would copy
        those versions over them on every server. So, before it joins, each object
        the cluster holds is installed over the newcomer's copy wherever that copy
        is at the same or a higher counter and differs (it is kept in `.diverged/`
        and named in `summary.diverged`); objects only the newcomer holds are kept.
        What it acknowledged while a member is not among those: it was handed over
        to the others when it left (`hand_over`).
        """
        summary = self._align_newcomer(server_id, path)
        self.add_server(server_id, path)
        return summary.add(self.catch_up(server_id))

    def carry_over(self, server_id: str, path: Path) -> SyncSummary:
        """Move a stopped member to the directory `path`, starting from its old one.

        For a server given another directory whose hand over could not land (a
        peer's disk full): its old directory may hold writes it acknowledged that
        nobody else has, and seeded from the others alone the new one would not.
        The old directory joins for the seed as a peer of its own (`<id>~old`),
        so the newest copy of every object, its own ones included, lands in the
        new directory; then it leaves (its files stay where they are).
        """
        with self._lock:
            old = self._servers.get(server_id)
        if old is None:
            raise UnknownNode(f"unknown server {server_id!r}")
        moving = old_directory_id(server_id)
        self.remove_server(server_id)
        self._register(moving, old)
        try:
            return self.seed(server_id, path)
        finally:
            self.remove_server(moving)

    def align_joining(self, server_ids: list[str]) -> SyncSummary:
        """Align servers registered but new to the cluster (`up` after they were added while
        it was stopped) on the others, as `seed` does; before replication starts."""
        summary = SyncSummary()
        servers = self.servers()
        for server_id in server_ids:
            if server_id in servers:
                summary.add(self._align_newcomer(server_id, servers[server_id],
                                                 exclude=set(server_ids)))
        return summary

    def _align_newcomer(self, server_id: str, root: Path,
                        exclude: set[str] | frozenset[str] = frozenset()) -> SyncSummary:
        summary = SyncSummary()
        peers = {other: peer_root for other, peer_root in self.servers().items()
                 if other != server_id and other not in exclude}
        if not peers or not root.is_dir():
            return summary
        try:
            for rel in sorted(self._paths_of(peers)):
                self._align_one(rel, server_id, root, peers, summary)
        finally:
            self._close_thread_locks()
        return summary

    def _align_one(self, rel: str, server_id: str, root: Path, peers: dict[str, Path],
                   summary: SyncSummary) -> None:
        newest: tuple[str, CopyState] | None = None
        for other, peer_root in peers.items():
            try:
                theirs = self._read(other, peer_root, rel)
            except (ObjectRefused, CorruptObject, OSError):
                continue
            if theirs is not None and (newest is None or theirs.version > newest[1].version):
                newest = (other, theirs)
        try:
            mine = self._read(server_id, root, rel)
        except (ObjectRefused, CorruptObject, OSError):
            return   # catch-up (newest wins, repairs) deals with it
        if newest is None or mine is None or mine.version < newest[1].version:
            return   # nothing the cluster has, or simply behind: catch-up brings it
        source, theirs = newest
        if mine.version == theirs.version and self._same_content(
                rel, {**peers, server_id: root}, source, theirs, server_id, mine) is not False:
            return
        source_root = peers[source]
        source_lock = self._copies.lock_of(source, source_root)
        try:
            kept = self._copies.replace_diverged(rel, lambda: read_shipment(
                source_root, rel, None, source_lock, lock_poll_max_s=PROMPT_LOCK_POLL_MAX_S),
                server_id, root, mine)
        except (ObjectRefused, OSError) as error:
            self.log.error("%s: its copy of %s diverged from %s's but could not be replaced: "
                           "%s", server_id, rel, source, error)
            summary.unreadable.append(rel)
            return
        if kept is not None:
            self.log.warning("%s joined with a copy of %s that diverged from the cluster's "
                             "(change %d, the cluster's %d): replaced by %s's, kept as %s",
                             server_id, rel, mine.version, theirs.version, source,
                             kept.relative_to(root).as_posix())
            summary.diverged.append(rel)
            summary.copied += 1

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
        if self._health.is_failing(server_id, rel):
            # A destination whose copy keeps failing (a full disk): the events of each
            # failed attempt (its partial append, its cut back) queued the path at once,
            # past its retry's backoff: thousands of attempts a second. Whatever changed
            # there is reconciled at that retry (within RETRY_DELAYS_S's last, 2 s).
            return
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
        return self._paths_of(self.servers())

    def _paths_of(self, servers: dict[str, Path]) -> set[str]:
        """Every object path of these servers; symlinks found on the way are reported."""
        paths: set[str] = set()
        for server_id, root in servers.items():
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
                   since: float | None) -> PathOutcome:
        """Bring one path in step; `since` (event time) makes copies count as lag samples."""
        with self._path_locks[hash(rel) % PATH_LOCK_STRIPES]:
            outcome = PathOutcome()
            for _ in range(MAX_RECONCILE_ROUNDS):
                if self._reconcile_once(rel, destinations, since, outcome):
                    return outcome
            outcome.unreadable = True  # kept changing under us: retry later
            return outcome

    def _reconcile_once(self, rel: str, destinations: set[str] | None, since: float | None,
                        outcome: PathOutcome) -> bool:
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
                self._copies.refused(server_id, rel, error, outcome)
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
            return not self._across.heal(rel, servers, corrupt, destinations, outcome)
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
            self._copies.left_corrupt(rel, corrupt, "left for the next pass over every server",
                                      outcome)
            if destinations is None:
                self._across.ship(rel, winner, servers[winner], copies[winner], since, outcome)
            if not outcome.conflict:   # a server of another machine may hold another content
                self._stats.settled(rel, unless=self._across.uncompared(destinations, outcome))
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
            self._copies.left_corrupt(rel, corrupt,
                                      "not repaired while the valid copies conflict", outcome)
            return True
        for server_id in to_cut:
            self._copies.cut_into(rel, winner, top, server_id, servers[server_id],
                                  copies[server_id], outcome)
        winner_lock = self._copies.lock_of(winner, servers[winner])
        conflicting = self._stats.conflicting(rel)
        for server_id in targets:
            if server_id in conflicting and server_id in copies:
                # Its copy differed at an earlier version: lines appended on top would
                # carry the difference on. The newer version settles it whole.
                self._settle_whole(rel, winner, servers[winner], winner_lock, server_id,
                                   servers[server_id], copies[server_id], outcome)
                continue
            self._copies.copy_into(rel, winner, servers[winner], server_id, servers[server_id],
                                   since, outcome)
        for server_id in to_heal:
            self._copies.heal_into(rel, winner, lambda: read_shipment(
                servers[winner], rel, None, winner_lock, lock_poll_max_s=PROMPT_LOCK_POLL_MAX_S),
                server_id, servers[server_id], corrupt[server_id], outcome)
        if destinations is None and not outcome.conflict:
            self._across.ship(rel, winner, servers[winner], copies[winner], since, outcome)
        if not outcome.conflict:  # a copy may have found the copies diverged lower down
            self._stats.settled(rel, unless=self._across.uncompared(destinations, outcome))
        self._copies.left_corrupt(rel, {s: e for s, e in corrupt.items() if s not in to_heal},
                                  "left for the next pass over every server", outcome)
        return True

    def _settle_whole(self, rel: str, winner: str, winner_root: Path, winner_lock,
                      server_id: str, root: Path, copy: CopyState, outcome: PathOutcome) -> None:
        """Install the winner's newer version whole over a copy of an open conflict (kept in
        `.diverged/`)."""
        try:
            kept = self._copies.replace_diverged(rel, lambda: read_shipment(
                winner_root, rel, None, winner_lock, lock_poll_max_s=PROMPT_LOCK_POLL_MAX_S),
                server_id, root, copy)
        except (ObjectRefused, OSError) as error:
            self._stats.error(server_id, f"{rel}: the newer version could not replace its "
                                         f"conflicting copy: {error}")
            outcome.copy_failed = True
            return
        if kept is None:
            outcome.unreadable = True   # it changed meanwhile: looked at again
            return
        outcome.copied += 1
        self.log.warning("replication: %s's conflicting copy of %s replaced whole by %s's newer "
                         "version (kept as %s)", server_id, rel, winner,
                         kept.relative_to(root).as_posix())

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

    def _close_thread_locks(self) -> None:
        """Close this thread's lock handles and links (a thread that may never come back)."""
        self._copies.close_thread_locks()
        self._across.close_thread_links()

