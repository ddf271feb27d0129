"""Replication to and from the servers of other machines, over the peer protocol.

The replicator (supervisor/replication.py, through replication_across.py, which
books what happens here in its figures) watches only this machine's data
directories; a server another machine runs is reached over the network
(supervisor/peer_link.py), never through a shared file system:

- **Push.** When an object settles on this machine (an event, a retry, a
  periodic pass), `ship(rel, ...)` asks each remote server its version
  (`.peer versions`) and, where it is older or missing, plans the shipment
  from the local winner against that version (engine/storage/object_copy.py
  `read_shipment`, the very plan a local copy uses: the missing journal
  lines, else the snapshot) and sends it (`.peer ship`). The server applies
  it under its own write lock with the checks a local copy makes (only
  newer wins); "replan" (it moved meanwhile) plans again. A remote copy at
  the same or a newer version is left alone: its own machine's supervisor
  pushes its newer versions here the same way. The version a server
  reached by our last append is remembered: the next append to that table
  is planned against it and shipped at once (one round trip instead of
  two); if the server moved meanwhile, it answers "replan" or "current"
  and the version is asked again. It is never used to skip a shipment.
- **Pull.** `pull(server_id, root, lock)` brings a local server up to every
  remote server's version (`.peer names;` lists a server's objects, `.peer
  fetch` gives what a local copy lacks; engine/storage/object_copy.py
  `bring_up_to_date_from` puts it in place): a server catching up before it
  takes writes, or a new server seeded over the network.

- **Compare.** A remote copy found at the local winner's very version is
  compared (`compare`: `.peer digest`, the digests of engine/storage/object_state.py
  `same_by_digest`, and only when those cannot tell, the objects' content
  digests): where the local replicator compares two local copies at one
  version, on every reconciliation of the path. Different contents are a
  conflict for the caller to report; nothing is shipped either way.
- **Repair.** `repair_source(rel)`: the newest valid copy among the remote
  servers, fetched whole (`.peer fetch` from no version) and checked here
  as a copy on disk is (`check_copy`), for the replicator to install over
  a local corrupt copy when no server of this machine holds a valid one.

A remote server that cannot be reached is an `OSError` for the caller: a
failing copy into that server, listed in `status` and retried with
backoff until the link returns; meanwhile that server's commits are
refused (certification needs every peer, docs/REPLICATION.md), so nothing
acknowledged is ever only on one side of a cut.

Connections: one `PeerLink` per remote server and per thread (worker
threads ship in parallel, each over its own connection).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from engine.storage.object_copy import (
    DivergedCopy,
    Shipment,
    bring_up_to_date_from,
    install_shipment,
    plan_shipment,
    read_shipment,
)
from engine.storage.object_format import InvalidDocument
from engine.storage.object_state import (
    CopyDigest,
    ObjectVersion,
    check_copy,
    content_digest,
    same_by_digest,
    version_of,
)
from engine.storage.peers import DirectoryLock

from .peer_link import PeerAddress, PeerLink, PeerRefused, PeerUnreachable
from .thread_handles import ThreadHandles

log = logging.getLogger(__name__)

SHIP_ROUNDS = 3
MAX_REMEMBERED = 16384
# Comparisons that needed both objects' content (two shapes of one version), remembered.
MAX_COMPARED = 4096
RETRY_AFTER_S = 1.0


@dataclass
class Shipped:
    """What `ship` did for one remote server."""

    moved: bool = False
    conflict: int | None = None      # the version at which the copies differ
    problem: str | None = None       # refused there (its copy does not read, ...)


@dataclass
class Pulled:
    """What `pull` did for one local server."""

    copied: list[str] = field(default_factory=list)
    conflicts: list[tuple[str, int, str]] = field(default_factory=list)  # rel, change, server
    problems: list[str] = field(default_factory=list)   # unreachable servers, refused objects


class RemoteServers:
    """The servers of other machines, and this thread's link to each."""

    def __init__(self, peers: dict[str, PeerAddress] | None = None):
        self._lock = threading.Lock()
        self._peers: dict[str, PeerAddress] = dict(peers or {})
        self._links: ThreadHandles[PeerAddress, PeerLink] = ThreadHandles(
            PeerLink, lambda link: link.peer)
        self._down: dict[str, tuple[float, str]] = {}   # server -> (not before, why)
        self._reached: dict[tuple[str, str], ObjectVersion] = {}   # see `ship`
        self._compared: dict[tuple, bool] = {}   # see `compare`

    def known(self, server_id: str, rel: str) -> ObjectVersion | None:
        with self._lock:
            return self._reached.get((server_id, rel))

    def remember(self, server_id: str, rel: str, version: ObjectVersion | None) -> None:
        with self._lock:
            if version is None:
                self._reached.pop((server_id, rel), None)
                return
            if len(self._reached) >= MAX_REMEMBERED:
                self._reached.clear()
            self._reached[(server_id, rel)] = version

    def compared(self, key: tuple) -> bool | None:
        with self._lock:
            return self._compared.get(key)

    def remember_compared(self, key: tuple, same: bool) -> None:
        with self._lock:
            if len(self._compared) >= MAX_COMPARED:
                self._compared.clear()
            self._compared[key] = same

    def unreachable(self, server_id: str, error: OSError) -> None:
        """A link to it failed: fail fast for a while (see `link`)."""
        if isinstance(error, PeerUnreachable) and "not asked again" in str(error):
            return
        with self._lock:
            self._down[server_id] = (time.monotonic() + RETRY_AFTER_S, str(error))

    def reached(self, server_id: str) -> None:
        with self._lock:
            self._down.pop(server_id, None)

    def set(self, peers: dict[str, PeerAddress]) -> None:
        with self._lock:
            self._peers = dict(peers)

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._peers)

    def address(self, server_id: str) -> PeerAddress | None:
        with self._lock:
            return self._peers.get(server_id)

    def link(self, server_id: str) -> PeerLink:
        """This thread's link to a remote server (made again when its address changed).

        For RETRY_AFTER_S after a failure to reach it, raises PeerUnreachable at
        once: during a cut, every copy would otherwise wait for the connect
        timeout (the failing copies are retried with backoff anyway).
        """
        peer = self.address(server_id)
        if peer is None:
            raise KeyError(server_id)
        with self._lock:
            down = self._down.get(server_id)
        if down is not None and time.monotonic() < down[0]:
            raise PeerUnreachable(f"{down[1]} (not asked again for {RETRY_AFTER_S:g} s)")
        return self._links.get(server_id, peer)

    def close_thread_links(self) -> None:
        self._links.close_thread()


def ship(remote: RemoteServers, server_id: str, rel: str, source_root: Path,
         source_lock: DirectoryLock | None, top: int, lock_poll_max_s: float,
         winner: CopyDigest | None = None) -> Shipped:
    """Bring `server_id`'s copy of `rel` up to the local winner's version `top`; a copy
    there at that very version is compared with `winner` (the local copy's digests).

    Raises OSError (PeerUnreachable) when the server cannot be reached.
    """
    link = remote.link(server_id)
    done = Shipped()
    known = remote.known(server_id, rel)
    if known is not None and known.change < top:
        remote.remember(server_id, rel, None)   # remembered again only if this lands
        shipment = read_shipment(source_root, rel, known, source_lock,
                                 lock_poll_max_s=lock_poll_max_s)
        if shipment is not None and shipment.base is not None:
            try:
                result, _ = link.ship(rel, shipment)
            except PeerRefused:
                result = "replan"   # asked again below, with its version
            if result == "moved":
                remote.remember(server_id, rel, ObjectVersion(shipment.version,
                                                              known.snapshot_change, False))
                done.moved = True
                return done
    for _ in range(SHIP_ROUNDS):
        theirs = link.versions([rel])[rel]
        if theirs.error is not None:
            done.problem = f"its copy does not read ({theirs.error}); its supervisor repairs it"
            return done
        if theirs.version is not None and theirs.version.change >= top:
            if theirs.version.change == top and winner is not None and winner.version == top:
                if compare(remote, server_id, link, rel, source_root, winner) is False:
                    done.conflict = top
            return done
        shipment = read_shipment(source_root, rel, theirs.version, source_lock,
                                 lock_poll_max_s=lock_poll_max_s)
        if shipment is None:
            return done   # the local copy moved or does not read: the next event ships it
        try:
            result, _ = link.ship(rel, shipment)
        except PeerRefused as error:
            if "differs between the copies" in str(error):
                done.conflict = shipment.base if shipment.base is not None else top
            else:
                done.problem = str(error)
            return done
        if result == "moved":
            if shipment.base is not None and theirs.version is not None:
                remote.remember(server_id, rel, ObjectVersion(
                    shipment.version, theirs.version.snapshot_change, False))
            done.moved = True
            return done
        if result == "current":
            return done
    return done   # kept moving: the next event (theirs or ours) ships again


def compare(remote: RemoteServers, server_id: str, link: PeerLink, rel: str, root: Path,
            ours: CopyDigest) -> bool | None:
    """Whether `server_id`'s copy of `rel` holds the same object as ours at our version
    (None: it moved, or one of them does not read: the next reconciliation asks again).

    One `.peer digest` when the digests tell (both copies hold the line of that
    version, or the same snapshot); else the content digests, remembered by
    both copies' digests, since computing ours and theirs costs the table.
    """
    theirs = link.digests([rel])[rel].digest
    if theirs is None or theirs.version != ours.version:
        return None
    told = same_by_digest(ours, theirs)
    if told is not None:
        return told
    key = (server_id, rel, ours, theirs)
    known = remote.compared(key)
    if known is not None:
        return known
    content = link.digests([rel], content=True)[rel]
    if content.content is None or content.digest != theirs:
        return None
    try:
        mine = content_digest(root, rel, ours.version)
    except (InvalidDocument, OSError):
        return None
    if mine is None:
        return None
    same = mine == content.content
    remote.remember_compared(key, same)
    return same


_NOT_ANSWERED: Any = object()


def _asked(remote: RemoteServers, server_id: str, problems: list[str],
           question: Callable[[PeerLink], Any]) -> Any:
    """`question(server_id's link)`, or `_NOT_ANSWERED` (a server gone from the set, or one
    that could not answer: said in `problems`, and marked unreachable when it was the link)."""
    try:
        return question(remote.link(server_id))
    except KeyError:
        return _NOT_ANSWERED
    except (OSError, PeerRefused) as error:
        if isinstance(error, OSError):
            remote.unreachable(server_id, error)
        problems.append(f"{server_id}: {error}")
        return _NOT_ANSWERED


def repair_source(remote: RemoteServers, rel: str) -> tuple[str, Shipment | None, list[str]]:
    """The newest valid copy of `rel` among the remote servers, fetched whole and checked:
    (its server, the shipment that installs it, None when no server holds one; why not, per
    server that could not give one)."""
    problems: list[str] = []
    offers: list[tuple[int, str]] = []
    for server_id in remote.ids():
        found = _asked(remote, server_id, problems, lambda link: link.versions([rel])[rel])
        if found is _NOT_ANSWERED:
            continue
        if found.error is not None:
            problems.append(f"{server_id}: its copy does not read either ({found.error})")
        elif found.version is not None:
            offers.append((found.version.change, server_id))
    for _, server_id in sorted(offers, key=lambda offer: (-offer[0], offer[1])):
        shipment = _asked(remote, server_id, problems, lambda link: link.fetch(rel, None))
        if shipment is _NOT_ANSWERED:
            continue
        if shipment is None or shipment.snapshot is None:
            problems.append(f"{server_id}: no valid copy to give")
            continue
        try:
            state = check_copy(rel, shipment.snapshot, shipment.lines)
        except InvalidDocument as error:
            problems.append(f"{server_id}: its copy arrived invalid ({error})")
            continue
        if state.version != shipment.version:
            problems.append(f"{server_id}: its copy is at {state.version}, "
                            f"not {shipment.version} as it said")
            continue
        return server_id, shipment, problems
    return "", None, problems


def align(remote: RemoteServers, sources: list[str], root: Path, lock: DirectoryLock,
          lock_poll_max_s: float) -> Pulled:
    """Make the local directory `root` hold the `sources`' copies (the newest of each object).

    Write leases: a machine the majority excluded comes back with copies
    that may hold writes nobody acknowledged (committed here, never shipped
    before the loss) at counters the majority has since used for other
    writes. Each object the sources hold is installed whole over the local
    copy unless the local one is the very same (version, snapshot and lines).
    Objects only here are kept (not acknowledged either; they replicate as
    new ones). Raises nothing: what could not be done is in `problems`.
    """
    aligned = Pulled()
    best: dict[str, tuple[Shipment, str]] = {}
    for server_id in sources:
        try:
            link = remote.link(server_id)
            for rel in link.objects():
                shipment = link.fetch(rel, None)
                if shipment is not None and (rel not in best
                                             or shipment.version > best[rel][0].version):
                    best[rel] = (shipment, server_id)
        except (OSError, PeerRefused) as error:
            aligned.problems.append(f"{server_id}: {error}")
            return aligned   # every source or none: a half view could keep an orphan
    for rel, (shipment, server_id) in sorted(best.items()):
        try:
            mine = plan_shipment(root, rel, None)
        except (OSError, InvalidDocument):
            mine = None
        if mine is not None and (mine.version, mine.snapshot, mine.lines) == \
                (shipment.version, shipment.snapshot, shipment.lines):
            continue
        try:
            install_shipment(root, rel, shipment, lock, lock_poll_max_s=lock_poll_max_s)
        except (OSError, InvalidDocument, ValueError) as error:
            aligned.problems.append(f"{rel} from {server_id}: {error}")
            continue
        aligned.copied.append(rel)
    return aligned


def pull(remote: RemoteServers, root: Path, lock: DirectoryLock, lock_poll_max_s: float,
         on_copied: Callable[[str], None] | None = None) -> Pulled:
    """Bring the local directory `root` up to every remote server's newer copies."""
    pulled = Pulled()
    for server_id in remote.ids():
        try:
            link = remote.link(server_id)
            rels = link.objects()
            theirs = link.versions(rels)
        except OSError as error:
            remote.unreachable(server_id, error)
            pulled.problems.append(f"{server_id}: {error}")
            continue
        except PeerRefused as error:
            pulled.problems.append(f"{server_id}: {error}")
            continue
        remote.reached(server_id)
        for rel in rels:
            remote_version = theirs[rel].version
            if remote_version is None:
                continue
            try:
                mine = version_of(root, rel)
            except (OSError, InvalidDocument):
                mine = None   # unreadable here: the shipment replaces or repairs what it can
            if mine is not None and mine.change >= remote_version.change:
                continue
            try:
                moved = bring_up_to_date_from(partial(_fetch, link, rel), root, rel, lock,
                                              lock_poll_max_s=lock_poll_max_s)
            except DivergedCopy as error:
                pulled.conflicts.append((rel, error.change, server_id))
                continue
            except PeerRefused as error:
                pulled.problems.append(f"{rel} from {server_id}: {error}")
                continue
            except OSError as error:
                pulled.problems.append(f"{rel} from {server_id}: {error}")
                if not link_alive(link):
                    break
                continue
            except InvalidDocument as error:   # a copy here that does not read
                pulled.problems.append(f"{rel}: the copy here does not read ({error})")
                continue
            if moved:
                pulled.copied.append(rel)
                if on_copied is not None:
                    on_copied(rel)
    return pulled


def _fetch(link: PeerLink, rel: str, dest: ObjectVersion | None) -> Shipment | None:
    return link.fetch(rel, dest)


def link_alive(link: PeerLink) -> bool:
    try:
        link.hello()
    except OSError:
        return False
    return True
