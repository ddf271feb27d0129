"""The replicator's work with the servers of other machines, and how it is booked.

A topology spanning machines: the replicator (supervisor/replication.py)
watches only this machine's data directories and reconciles each path
there; `AcrossMachines` carries that reconciliation to the servers other
machines run, named by address (`set_peers`), over the peer protocol
(replication_remote.py: the shipments, pulls, comparisons and fetches;
peer_link.py: the connections), never through a shared file system. It
turns what the network said into the replicator's figures
(replication_stats.py), its replica health (replication_health.py) and the
path's `PathOutcome`, as for a local destination:

- **ship**: every version that settles here is shipped to each remote
  server that is older; a copy there at the local winner's very version is
  compared with it (`.peer digest`): another content is a CONFLICT as
  between two local copies. A server not reached is a failing copy
  (retried with backoff), and a conflict with it stays open
  (`uncompared`): it was not compared, so it is not settled;
- **pull**: `catch_up`, `sync_all` and `seed` bring local servers up to the
  remote servers' newer copies (`.peer names;`, `.peer fetch`);
- **heal**: a corrupt copy here, when no server of this machine holds a
  valid one, is repaired from the newest valid copy of theirs, fetched whole
  and checked, by the local repair's code (replication_copies.py);
- **align**: write leases, a server whose machine was excluded made to hold
  the member machines' copies before it joins again.

Their lag and failing copies are figures of the replicator like any
destination's: a remote server is added to and removed from the stats and
the health with the set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from engine.storage.object_copy import Shipment
from engine.storage.object_state import CopyDigest, CopyState, CorruptObject
from engine.storage.peers import PROMPT_LOCK_POLL_MAX_S
from supervisor.peer_link import PeerAddress, PeerRefused, PeerUnreachable
from supervisor.replication_copies import CopyWork, PathOutcome
from supervisor.replication_health import ReplicaHealth
from supervisor.replication_remote import RemoteServers, align, pull, repair_source, ship
from supervisor.replication_stats import ReplicationStats, SyncSummary

__all__ = ["AcrossMachines"]


class AcrossMachines:
    """Ships to, pulls from, compares with and heals from the servers of other machines."""

    def __init__(self, stats: ReplicationStats, health: ReplicaHealth, copies: CopyWork,
                 servers: Callable[[], dict[str, Path]]):
        self._stats = stats
        self._health = health
        self._copies = copies
        self._servers = servers   # this machine's servers, as they are now
        self._remote = RemoteServers()

    # ----- the set ---------------------------------------------------------

    def set_peers(self, peers: dict[str, PeerAddress]) -> None:
        """The servers of other machines (by address) to ship to and pull from."""
        before = set(self._remote.ids())
        self._remote.set(peers)
        for server_id in before - set(peers):
            self._stats.remove_server(server_id)
            self._health.remove_server(server_id)
        for server_id in set(peers) - before:
            self._stats.add_server(server_id)
            self._health.add_server(server_id)

    def ids(self) -> list[str]:
        return self._remote.ids()

    def close_thread_links(self) -> None:
        """Close this thread's connections to them (a thread that may never come back)."""
        self._remote.close_thread_links()

    def _close_thread_handles(self) -> None:
        self._copies.close_thread_locks()
        self._remote.close_thread_links()

    # ----- whole-directory work --------------------------------------------

    def pull(self, destinations: set[str]) -> SyncSummary:
        """Bring these local servers up to the remote servers' newer copies."""
        summary = SyncSummary()
        if not self._remote.ids():
            return summary
        try:
            for server_id in sorted(destinations):
                root = self._servers().get(server_id)
                if root is None:
                    continue
                pulled = pull(self._remote, root, self._copies.lock_of(server_id, root),
                              PROMPT_LOCK_POLL_MAX_S)
                summary.copied += len(pulled.copied)
                for copied in pulled.copied:
                    self._copies.remember(server_id, root, copied)
                for rel, change, other in pulled.conflicts:
                    self._stats.conflict(rel, change, (other, server_id))
                    summary.conflicts.append(rel)
                for problem in pulled.problems:
                    self._stats.error(server_id, f"catching up from another machine: {problem}")
                summary.unreachable.extend(pulled.problems)
        finally:
            self._close_thread_handles()
        return summary

    def align(self, server_id: str, root: Path, sources: list[str]) -> SyncSummary:
        """Make the local server's copies those of the remote `sources`
        (replication_remote.align)."""
        summary = SyncSummary()
        try:
            aligned = align(self._remote, sources, root, self._copies.lock_of(server_id, root),
                            PROMPT_LOCK_POLL_MAX_S)
        finally:
            self._close_thread_handles()
        summary.copied += len(aligned.copied)
        for copied in aligned.copied:
            self._copies.remember(server_id, root, copied)
        summary.unreachable.extend(aligned.problems)
        return summary

    # ----- one path --------------------------------------------------------

    def uncompared(self, destinations: set[str] | None, outcome: PathOutcome) -> set[str]:
        """The servers of other machines this reconciliation did not compare (all of them when
        it only brought some local servers up to date): a conflict with them stays open."""
        return set(self._remote.ids()) if destinations is not None else outcome.uncompared

    def ship(self, rel: str, winner: str, winner_root: Path, winner_copy: CopyState,
             since: float | None, outcome: PathOutcome) -> None:
        """Ship the winner's version to every server of another machine that is older; one
        at that very version is compared with it, as two local copies are."""
        top = winner_copy.version
        for server_id in self._remote.ids():
            try:
                shipped = ship(self._remote, server_id, rel, winner_root,
                               self._copies.lock_of(winner, winner_root), top,
                               PROMPT_LOCK_POLL_MAX_S, CopyDigest.of(winner_copy))
            except KeyError:
                continue   # removed meanwhile
            except PeerRefused as error:   # an answer that is no answer (a digest, ...)
                self._stats.error(server_id, f"comparing {rel}: {error}", log=False)
                outcome.copy_failed = True
                outcome.uncompared.add(server_id)
                continue
            except OSError as error:   # not reached, or reading the local source failed
                if isinstance(error, PeerUnreachable):
                    self._remote.unreachable(server_id, error)
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

    def heal(self, rel: str, servers: dict[str, Path], corrupt: dict[str, CorruptObject],
             destinations: set[str] | None, outcome: PathOutcome) -> bool:
        """No server of this machine holds a valid copy: repair the corrupt ones from the
        newest valid copy of another machine's server, as from a local one; whether any was."""
        to_heal = {server_id: error for server_id, error in corrupt.items()
                   if destinations is None or server_id in destinations}
        left = {server_id: error for server_id, error in corrupt.items()
                if server_id not in to_heal}
        self._copies.left_corrupt(rel, left, "left for the next pass over every server", outcome)
        if not to_heal:
            return False
        if not self._remote.ids():
            self._copies.left_corrupt(rel, to_heal,
                                      "no server holds a valid copy to repair it from", outcome)
            return False
        source, shipment, problems = repair_source(self._remote, rel)
        if shipment is None:
            why = "no server here or on another machine holds a valid copy to repair it from"
            self._copies.left_corrupt(rel, to_heal, f"{why} ({'; '.join(problems)})" if problems
                                      else why, outcome)
            return False
        fetched: Shipment = shipment   # one copy fetched, installed into each corrupt one
        healed = outcome.healed
        for server_id, error in to_heal.items():
            self._copies.heal_into(rel, source, lambda: fetched, server_id, servers[server_id],
                                   error, outcome)
        return outcome.healed > healed
