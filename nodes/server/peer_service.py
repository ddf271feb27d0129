"""A server's answers to its peers: the `.peer` requests of nodes/protocol/peer.py.

Servers on other machines certify their commits against this server's
copies and pull its newer ones (docs/REPLICATION.md, "Across machines");
the supervisor's replicator ships new versions into it. They ask with
`.peer ...;` on an ordinary connection (behind the shared secret and TLS,
as every request of the node). Each connection has a `PeerSession`:

- its own handle on this data directory's write lock (`DirectoryLock`, a
  descriptor of its own: the flock excludes this server's own commits and
  every other connection's lease), taken by `.peer fence` as a **lease**:
  released by `.peer release`, when the lease's seconds are over (a frozen
  peer keeps nobody's lock), or as soon as the connection is gone (a dead
  peer neither);
- the parts of a payload too big for one request (`.peer part`);
- the server its hello named (`.peer hello 2 SERVER`): `.peer fence` is
  refused to a server that is not one of this server's peers now (removed
  from the topology here: its writes must not be certified), and granted
  to a replicator, which names none.

A copy shipped here that cannot be written (a full disk) is a storage
fault of this server, in its `.status`, until a copy of the object is.

The questions are answered by engine/storage/folder_peer.py and
engine/storage/object_copy.py, the code a store on this machine uses on a
peer's folder, so a question has one answer whichever way it travels. File
work runs on a small thread pool, never on the event loop; one
connection's requests run one at a time, in order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

from engine.errors import StorageFault
from engine.storage.folder_peer import FolderPeer
from engine.storage.object_copy import (
    SOURCE_LOCK_TIMEOUT_S,
    DamagedCopy,
    DivergedCopy,
    deliver_shipment,
    read_shipment,
)
from engine.storage.object_format import (
    ACCOUNT_FOLDER,
    DATABASE_MARKER,
    FOLDER_KINDS,
    SYSTEM_FOLDER,
    InvalidDocument,
    object_relpath,
)
from engine.storage.object_state import CopyDigest, CopyStates, ObjectVersion, content_digest
from engine.storage.peers import DirectoryLock
from nodes.protocol import Request
from nodes.protocol.peer import (
    PEER_PROTOCOL_VERSION,
    PartBuffer,
    PeerRequest,
    check_arguments,
    decode_shipment,
    digest_arguments,
    digest_entry,
    encode_answer,
    encode_refusal,
    fence_arguments,
    fetch_arguments,
    hello_asker,
    hello_problem,
    parse_request,
    shipment_answer,
)
from nodes.server.storage_faults import StorageFaults

# The longest a `.peer fence` waits for the lock before answering "not held".
MAX_FENCE_WAIT_MS = 2000
PEER_THREADS = 4
# Copies read whole for `.peer digest`, remembered so that the next question costs the change.
MAX_DIGEST_STATES = 4096

log = logging.getLogger(__name__)


class PeerService:
    """The `.peer` side of one server: its data directory, its sessions, their counters."""

    def __init__(self, node_id: str, root: Path, *, durable: bool = True,
                 max_request_bytes: int = 1 << 20, logger: logging.Logger | None = None,
                 peers: Callable[[], Collection[str]] | None = frozenset,
                 faults: StorageFaults | None = None):
        """`peers()`: the servers it fences for now (its peers file's, re-read on change, but
        those marked leaving: nodes/server/membership.py `members`); None: any server (a
        directory that takes no write of its own: nodes/server/peer_only.py);
        `faults`: the server's storage faults, which a copy shipped here that cannot be
        written joins (and a copy written ends)."""
        self.node_id = node_id
        self.peers = peers
        self.faults = faults
        self.root = Path(root)
        self.durable = durable
        self.max_request_bytes = max_request_bytes
        self.logger = logger or log
        self._pool: ThreadPoolExecutor | None = None
        self.requests = 0
        self.refused = 0
        self.leases = 0          # held now
        self.leases_expired = 0  # ended by their own clock (a frozen or slow holder)
        self.leases_dropped = 0  # ended by the connection going away while held
        self.shipped = 0         # `.peer ship` that moved a copy here
        self._states: CopyStates[str] = CopyStates(MAX_DIGEST_STATES)   # see `digests`

    def status(self) -> dict:
        return {"peer_requests": self.requests, "peer_refused": self.refused,
                "peer_leases": self.leases, "peer_leases_expired": self.leases_expired,
                "peer_leases_dropped": self.leases_dropped, "peer_shipped": self.shipped}

    def digests(self, rels: list[str], content: bool) -> dict:
        """`.peer digest`: each copy read whole and checked (from where its last reading
        ended, as the replicator reads), its digests; with `content`, its object's too."""
        answer: dict[str, dict | None] = {}
        for rel in rels:
            try:
                state = self._states.read(rel, self.root, rel)
                whole = content_digest(self.root, rel, state.version) \
                    if content and state is not None else None
            except (InvalidDocument, OSError) as error:
                answer[rel] = {"error": str(error)}
                continue
            answer[rel] = digest_entry(None if state is None else CopyDigest.of(state), whole)
        return answer

    def copy_failed(self, rel: str, error: OSError) -> None:
        if self.faults is not None:
            self.faults.record(StorageFault(
                f"Tsy voasoratra ny dika nalefa : {error.strerror or error}", rel, "write",
                f"replication: {error.strerror or error}"))

    def copy_written(self, rel: str) -> None:
        if self.faults is not None and len(self.faults):
            self.faults.written([rel])

    def session(self) -> PeerSession:
        return PeerSession(self)

    async def in_thread(self, function, *args):
        if self._pool is None:
            self._pool = ThreadPoolExecutor(PEER_THREADS, thread_name_prefix="peer")
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


class PeerSession:
    """One connection's `.peer` state: its lease on this directory and its payload parts."""

    def __init__(self, service: PeerService):
        self._service = service
        self._lock = DirectoryLock(service.root)
        self._own = FolderPeer("", service.root, self._lock)
        self._parts = PartBuffer()
        self._turn = asyncio.Lock()
        self._leased = False
        self._lease_timer: asyncio.TimerHandle | None = None
        self._lease_generation = 0
        self._closed = False
        self._asker: str | None = None   # the server its hello named (None: a replicator)

    @property
    def leased(self) -> bool:
        return self._leased

    async def answer(self, request: Request) -> bytes:
        """The answer to one `.peer` request (its turn after the connection's earlier ones)."""
        service = self._service
        service.requests += 1
        async with self._turn:
            try:
                peer_request = parse_request(request.text)
                return await self._answer(peer_request)
            except ValueError as error:
                service.refused += 1
                return encode_refusal(f"`.peer`: {error}")
            except (DivergedCopy, DamagedCopy, InvalidDocument) as error:
                service.refused += 1
                return encode_refusal(f"`.peer`: not applied: {error}")
            except OSError as error:
                service.refused += 1
                service.logger.warning("peer request %s failed: %s", request.text[:60], error)
                return encode_refusal(f"`.peer`: {error.strerror or error}")

    async def _answer(self, request: PeerRequest) -> bytes:
        service = self._service
        verb, args = request.verb, request.args
        if verb == "hello":
            problem = hello_problem(request)
            if problem is not None:
                raise ValueError(problem)
            self._asker = hello_asker(request)
            return encode_answer({"protocol": PEER_PROTOCOL_VERSION, "node": service.node_id,
                                  "max_request_bytes": service.max_request_bytes})
        if verb == "part":
            return encode_answer({"parts": self._parts.add(args[0])})
        if verb == "versions":
            rels = [checked_rel(rel) for rel in args]
            return encode_answer(await service.in_thread(self._versions, rels))
        if verb == "digest":
            content, rels = digest_arguments(request)
            rels = [checked_rel(rel) for rel in rels]
            return encode_answer(await service.in_thread(service.digests, rels, content))
        if verb == "names" and not args:
            return encode_answer({"rels": await service.in_thread(every_object, service.root)})
        if verb == "names":
            database, folder = args
            if object_relpath([database, folder, "x.json"]) is None:
                raise ValueError(f"no such object folder {database}/{folder}")
            names = await service.in_thread(self._own.object_names, database, folder)
            return encode_answer({"names": sorted(names)})
        if verb == "fetch":
            rel, base, dropped = fetch_arguments(request)
            rel = checked_rel(rel)
            dest = None if base is None else ObjectVersion(base, base, dropped)
            shipment = await service.in_thread(read_shipment, service.root, rel, dest, self._lock,
                                               SOURCE_LOCK_TIMEOUT_S)
            return encode_answer(shipment_answer(shipment))
        if verb == "fence":
            seconds, wait_ms = fence_arguments(request)
            asker = self._asker
            if asker is not None and service.peers is not None and asker not in service.peers():
                # Its commits are certified against this copy while this server no longer
                # certifies its own against it (removed from the topology here): both
                # would write, and one's acknowledged writes would be lost. It writes nothing.
                raise ValueError(f"{asker} is not a peer of {service.node_id} (not in its "
                                 "topology now): no write of it is certified here")
            return encode_answer({"held": await self._fence(seconds, min(wait_ms,
                                                                        MAX_FENCE_WAIT_MS))})
        if verb == "release":
            self._release()
            return encode_answer({"held": False})
        if verb == "check":
            files = check_arguments(self._parts.payload(args[0]))   # its parts taken either way
            if not self._leased:
                raise ValueError("`.peer check` needs the lease: send `.peer fence` first")
            documents = [(checked_rel(rel), _document(rel, change, document))
                         for rel, change, document in files]
            found = await service.in_thread(self._own.fence_violation, documents)
            return encode_answer({"violation": None if found is None
                                  else {"rel": found[0], "change": found[1]}})
        if verb == "ship":
            rel = checked_rel(args[0])
            shipment = decode_shipment(self._parts.payload(args[1]))
            moved = await service.in_thread(self._ship, rel, shipment)
            return encode_answer(moved)
        raise ValueError(f"unknown peer request {verb!r}")

    def _versions(self, rels: list[str]) -> dict:
        answer: dict[str, dict | None] = {}
        for rel in rels:
            try:
                version = self._own.version(rel)
            except (InvalidDocument, OSError) as error:
                answer[rel] = {"error": str(error)}
                continue
            answer[rel] = None if version is None else {
                "change": version.change, "snapshot_change": version.snapshot_change,
                "dropped": version.dropped, "size": self._own.size(rel)}
        return answer

    def _ship(self, rel: str, shipment) -> dict:
        service = self._service
        try:
            moved = deliver_shipment(service.root, rel, shipment, self._lock,
                                     durable=service.durable)
        except OSError as error:
            # This server's own file could not be written (a full or read-only disk):
            # its `.status` says so, not only the shipping machine's.
            service.copy_failed(rel, error)
            raise
        service.copy_written(rel)
        try:
            now = self._own.version(rel)
        except (InvalidDocument, OSError):
            now = None
        if moved:
            self._service.shipped += 1
        return {"result": {True: "moved", False: "current", None: "replan"}[moved],
                "version": None if now is None else now.change}

    # ----------------------------------------------------------------- the lease

    async def _fence(self, seconds: float, wait_ms: int) -> bool:
        if not self._leased:
            # A free lock is taken at once (flock without waiting); waiting is the pool's.
            if not self._lock.try_acquire() and not await self._service.in_thread(
                    self._acquire, wait_ms / 1000):
                return False
            if self._closed:   # gone while it waited: nobody holds it
                self._lock.close()
                return False
            self._leased = True
            self._service.leases += 1
        # Taken again while held: the lease starts over (the same holder, a longer commit).
        self._lease_generation += 1
        if self._lease_timer is not None:
            self._lease_timer.cancel()
        generation = self._lease_generation
        self._lease_timer = asyncio.get_running_loop().call_later(
            seconds, lambda: asyncio.ensure_future(self._expire(generation)))
        return True

    def _acquire(self, wait_s: float) -> bool:
        deadline = time.monotonic() + wait_s
        pause = 0.0001
        while not self._lock.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
        return True

    async def _expire(self, generation: int) -> None:
        async with self._turn:
            if self._leased and generation == self._lease_generation:
                self._service.leases_expired += 1
                self._service.logger.warning("a peer's lease on %s ran out: released",
                                             self._service.root)
                self._release()

    def _release(self) -> None:
        if self._lease_timer is not None:
            self._lease_timer.cancel()
            self._lease_timer = None
        if self._leased:
            self._leased = False
            self._service.leases -= 1
            self._lock.close()   # the descriptor goes, and with it the flock, however held

    def closed(self) -> None:
        """The connection is gone: its lease ends now (after a request still running)."""
        self._closed = True
        if self._leased:
            self._service.leases_dropped += 1
        asyncio.ensure_future(self._close())

    async def _close(self) -> None:
        async with self._turn:
            self._release()
            self._lock.close()
            self._parts.clear()


def checked_rel(rel: str) -> str:
    """An object's path relative to a data directory; ValueError if it names none.

    engine/storage/object_format.py `object_relpath` decides, as for replication: a
    database marker, a table, view, domain or grant of a database, an account
    (`@tahiry/accounts/<name>.json`); never `.`-names, `..`, temp files.
    """
    if object_relpath(rel.split("/")) != rel:
        raise ValueError(f"{rel!r} is not an object's path (DB/database.json, DB/FOLDER/NAME.json, "
                         f"{SYSTEM_FOLDER}/{ACCOUNT_FOLDER}/NAME.json)")
    return rel


def _document(rel: str, change: int, document: bytes | None) -> dict:
    """What the fence compares: the new document when sent (a marker or tombstone), else its
    counter and a kind that is never a broadcast write."""
    if document is not None:
        try:
            value = orjson.loads(document)
        except orjson.JSONDecodeError:
            raise ValueError(f"the document of {rel} is not JSON") from None
        if isinstance(value, dict) and value.get("change") == change:
            return value
        raise ValueError(f"the document of {rel} is not at change {change}")
    return {"change": change, "kind": "table", "dropped": False}


def every_object(root: Path) -> list[str]:
    """The path of every object file of a data directory, markers and tombstones included.

    Databases' objects and grants, and the accounts; what `object_relpath`
    does not take for an object (names starting with `.`, temp files) and
    symlinks (never followed: docs/STORAGE.md) are left out.
    """
    found: list[str] = []
    try:
        tops = sorted(entry.name for entry in os.scandir(root)
                      if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."))
    except OSError:
        return found
    for top in tops:
        base = root / top
        marker = base / DATABASE_MARKER
        if object_relpath([top, DATABASE_MARKER]) is not None and marker.is_file() \
                and not marker.is_symlink():
            found.append(f"{top}/{DATABASE_MARKER}")
        for folder in sorted(FOLDER_KINDS):
            if object_relpath([top, folder, "x.json"]) is None:
                continue
            try:
                entries = sorted(entry.name for entry in os.scandir(base / folder)
                                 if entry.is_file(follow_symlinks=False))
            except OSError:
                continue
            found.extend(f"{top}/{folder}/{name}" for name in entries
                         if object_relpath([top, folder, name]) is not None)
    return found
