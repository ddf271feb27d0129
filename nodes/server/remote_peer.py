"""A peer on another machine, asked over the network: `RemotePeer`, the engine's `Peer` there.

A server's store certifies each commit against every peer and pulls their
newer copies (engine/storage/peer_sync.py, docs/REPLICATION.md). For a peer
whose data directory is on this machine it reads and flocks the folder
(engine/storage/folder_peer.py); for one on another machine it asks this:
the same questions as `.peer` requests (nodes/protocol/peer.py) on one
blocking connection (`PeerLink`: the shared secret first, TLS when
configured, `.peer hello` to agree on the protocol version), answered by
that server's nodes/server/peer_service.py with the very code a folder peer
runs.

- The peer's write lock is a **lease** (`RemoteLease`): `.peer fence`
  takes it for this connection for at most `lease_s` seconds; the commit
  checks, right before it renames, that the lease still has a margin on
  this server's own monotonic clock (measured from when the request was
  sent: the peer's own clock ends it later than that, never sooner). The
  peer drops it when this connection goes, so a dead server holds nobody's
  lock, and at its end, so a frozen one neither.
- Every failure (refused, cut off, too slow, another protocol version, a
  lease lost) is `PeerUnreachable`: the store fails the write cleanly
  (nothing written here) and reads go on. After a failure the peer is not
  asked again for `retry_after_s` (each write would wait for the timeout
  otherwise); a connection found closed (the peer restarted) is made again
  once, at once.

The store calls these from its engine thread (blocking is fine there); one
lock serialises the connection.
"""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from engine.storage.object_copy import Shipment, plan_shipment
from engine.storage.object_format import InvalidDocument
from engine.storage.object_state import ObjectVersion
from engine.storage.peers import PeerUnreachable
from nodes.protocol import ProtocolError, Response, ResponseDecoder, auth_request
from nodes.protocol.peer import (
    PeerRefused,
    check_hello,
    check_requests,
    decode_answer,
    fence_request,
    fetch_request,
    hello_request,
    names_request,
    release_request,
    ship_requests,
    shipment_of,
    versions_request,
)

DEFAULT_LEASE_S = 5.0
# Write leases on: a write's copy is planned again this often when the peer moved meanwhile.
PUSH_ROUNDS = 3
# A commit renames only while its leases have at least this much left.
LEASE_MARGIN_S = 1.0
# How long a `.peer fence` waits on the peer for its lock before saying "not held"
# (the store's `holding` asks again until its own timeout).
FENCE_WAIT_MS = 50
CONNECT_TIMEOUT_S = 1.0
REQUEST_TIMEOUT_S = 3.0
RETRY_AFTER_S = 1.0
# Versions asked ahead for a statement's pulls are used this long at most
# (a late one only makes the pull miss a newer copy: the fence then refuses).
PREFETCH_S = 0.5
# Payload parts: well under any server's request limit.
MAX_PART_REQUEST_BYTES = 256 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeerAddress:
    """Where a peer listens, and how to reach it."""

    host: str
    port: int
    secret: str | None = None
    tls: ssl.SSLContext | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class PeerLink:
    """One blocking, reconnecting connection to a peer server, asking `.peer` requests."""

    def __init__(self, peer_id: str, address: PeerAddress, *,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 request_timeout_s: float = REQUEST_TIMEOUT_S,
                 retry_after_s: float = RETRY_AFTER_S, asker: str | None = None):
        self.peer_id = peer_id
        self.address = address
        self.asker = asker
        self._connect_timeout_s = connect_timeout_s
        self._request_timeout_s = request_timeout_s
        self._retry_after_s = retry_after_s
        self._socket: socket.socket | ssl.SSLSocket | None = None
        self._decoder = ResponseDecoder()
        self._ready: list[Response] = []
        self._unread = 0         # answers to requests sent ahead, not read yet
        self._mutex = threading.RLock()
        self._down_until = 0.0
        self._down_reason = ""
        self.generation = 0      # +1 per connection made: a lease lives on one of them
        self.max_request_bytes = MAX_PART_REQUEST_BYTES
        self.remote_node = ""

    def ask(self, requests: list[bytes], *, retry: bool = True) -> dict:
        """Send `requests` (pipelined), read one answer each; the last one's JSON object.

        PeerUnreachable for any failure (the connection is dropped, and with
        it whatever it held); an error answer to any of them is one too.
        `retry`: a connection that broke while idle is made again once.
        """
        return self._asked(requests, retry, whole=False)[-1]

    def ask_each(self, requests: list[bytes], *, retry: bool = True) -> list[dict | str]:
        """`ask`, with every answer: its JSON object, or the error message of a refusal."""
        return self._asked(requests, retry, whole=True)

    def _asked(self, requests: list[bytes], retry: bool, whole: bool) -> list:
        with self._mutex:
            now = time.monotonic()
            if now < self._down_until:
                raise PeerUnreachable(self.peer_id, self._down_reason)
            fresh = self._socket is None
            try:
                self._connect()
                answers = self._exchange(requests)
                if whole:
                    return [_answer_or_refusal(answer) for answer in answers]
                for response in answers[:-1]:
                    if not response.ok:
                        raise PeerRefused(response.message)
                return [decode_answer(answers[-1])]
            except (OSError, ProtocolError, PeerRefused) as error:
                self.close()
                if retry and not fresh and isinstance(error, (ConnectionError, ssl.SSLEOFError)):
                    # Closed while idle (the peer restarted, an idle timeout): once more on a
                    # new connection. Never after a timeout: a frozen peer would cost twice.
                    return self._asked(requests, False, whole)
                reason = _reason(error)
                if not isinstance(error, PeerRefused):
                    self._down_until = time.monotonic() + self._retry_after_s
                    self._down_reason = reason
                    log.warning("peer %s (%s) unreachable: %s", self.peer_id, self.address,
                                reason)
                raise PeerUnreachable(self.peer_id, reason) from None

    def _connect(self) -> None:
        if self._socket is not None:
            return
        address = self.address
        raw = socket.create_connection((address.host, address.port),
                                       timeout=self._connect_timeout_s)
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = (address.tls.wrap_socket(raw, server_hostname=address.host)
                          if address.tls is not None else raw)
        except BaseException:
            raw.close()
            raise
        connection.settimeout(self._request_timeout_s)
        self._socket = connection
        self._decoder = ResponseDecoder()
        self._ready = []
        self._unread = 0
        self.generation += 1
        hello = [hello_request(self.asker)]
        if address.secret:
            hello.insert(0, auth_request(address.secret))
        answers = self._exchange(hello)
        for response in answers[:-1]:
            if not response.ok:
                raise PeerRefused(response.message)
        answer = decode_answer(answers[-1])
        self.remote_node = check_hello(answer)
        self.max_request_bytes = min(MAX_PART_REQUEST_BYTES,
                                     int(answer.get("max_request_bytes", MAX_PART_REQUEST_BYTES)))

    def _exchange(self, requests: list[bytes]) -> list[Response]:
        assert self._socket is not None
        self._socket.sendall(b"".join(requests))
        skipped, self._unread = self._unread, 0
        wanted = skipped + len(requests)
        while len(self._ready) < wanted:
            chunk = self._socket.recv(1 << 16)
            if not chunk:
                raise ConnectionResetError("the peer closed the connection")
            self._ready.extend(self._decoder.feed(chunk))
        answers, self._ready = self._ready[:wanted], self._ready[wanted:]
        for response in answers[:skipped]:
            if not response.ok:
                log.warning("peer %s refused a request sent ahead: %s", self.peer_id,
                            response.message)
        return answers[skipped:]

    def send_ahead(self, request: bytes) -> None:
        """Send `request` without waiting for its answer (read, and only logged, with the next).

        For `.peer release`: the lease is the peer's to drop, and the next
        request on this connection comes after it anyway. A failure drops
        the connection (and the lease with it).
        """
        with self._mutex:
            if self._socket is None:
                return
            try:
                self._socket.sendall(request)
                self._unread += 1
            except OSError as error:
                log.warning("peer %s: %s (the connection, and its lease, dropped)", self.peer_id,
                            _reason(error))
                self.close()

    def close(self) -> None:
        with self._mutex:
            if self._socket is not None:
                try:
                    self._socket.close()
                except OSError:
                    pass
                self._socket = None


def _answer_or_refusal(response: Response) -> dict | str:
    if not response.ok:
        return response.message
    return decode_answer(response)


def _reason(error: BaseException) -> str:
    if isinstance(error, socket.timeout):
        return "no answer in time"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


class RemoteLease:
    """A peer's write lock as a lease held by this server's connection (a `CommitLock`).

    Re-entrant like `DirectoryLock`: taken again while held it counts, and
    only the last release gives it back.
    """

    def __init__(self, link: PeerLink, lease_s: float):
        self._link = link
        self.lease_s = lease_s
        self.order = f"node {link.peer_id}"   # as engine/storage/peer_sync.py orders its own
        self.path = Path(f"{link.peer_id}@{link.address}")
        self._holds = 0
        self._since = 0.0
        self._generation = 0
        # The commit's fence question, asked right behind the fence request
        # (one round trip for both): valid from the moment the lease is held,
        # since nobody writes into the peer's directory while it is.
        self._planned: list[bytes] | None = None
        self._checked: tuple[list[bytes], int, dict] | None = None

    def plan_check(self, requests: list[bytes] | None) -> None:
        """The `.peer check` requests of the commit about to take this lease (None: none)."""
        self._planned = requests

    def checked(self, requests: list[bytes]) -> dict | None:
        """The answer to `requests` if they were asked with this lease's fence, else None."""
        found = self._checked
        if found is not None and found[0] is requests and found[1] == self._generation \
                and self._holds:
            return found[2]
        return None

    def try_acquire(self) -> bool:
        if self._holds:
            self._holds += 1
            return True
        planned, self._planned = self._planned, None
        sent = time.monotonic()
        fence = fence_request(self.lease_s, FENCE_WAIT_MS)
        answers = self._link.ask_each([fence, *(planned or [])], retry=True)
        if not isinstance(answers[0], dict) or not answers[0].get("held"):
            self._planned = planned   # asked again with the next try
            if isinstance(answers[0], str):
                raise PeerUnreachable(self._link.peer_id, answers[0])
            return False
        self._holds, self._since, self._generation = 1, sent, self._link.generation
        if planned and isinstance(answers[-1], dict):
            self._checked = (planned, self._generation, answers[-1])
        return True

    def release(self) -> None:
        if self._holds > 1:
            self._holds -= 1
            return
        if not self._holds:
            return
        self._holds = 0
        self._planned = self._checked = None
        if self._link.generation != self._generation:
            return   # that connection is gone, and the lease with it
        self._link.send_ahead(release_request())

    def check(self) -> None:
        """PeerUnreachable unless the lease is held, on its connection, with a margin left."""
        if not self._holds or self._link.generation != self._generation:
            raise PeerUnreachable(self._link.peer_id, "its lease was lost with its connection")
        left = self.lease_s - (time.monotonic() - self._since)
        if left < LEASE_MARGIN_S:
            raise PeerUnreachable(self._link.peer_id,
                                  f"its lease ran out ({self.lease_s:g} s): nothing renamed")


class RemotePeer:
    """A `Peer` (engine/storage/peers.py) on another machine."""

    def __init__(self, peer_id: str, address: PeerAddress, *, lease_s: float = DEFAULT_LEASE_S,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 request_timeout_s: float = REQUEST_TIMEOUT_S,
                 retry_after_s: float = RETRY_AFTER_S, asker: str | None = None):
        """`asker`: this server's id, named in the hello (a peer fences only for its peers)."""
        self.peer_id = peer_id
        self.address = address
        self.link = PeerLink(peer_id, address, connect_timeout_s=connect_timeout_s,
                             request_timeout_s=request_timeout_s, retry_after_s=retry_after_s,
                             asker=asker)
        self._lease = RemoteLease(self.link, lease_s)
        self._sizes: dict[str, int | None] = {}
        self._prefetched: dict[str, tuple[float, dict | None]] = {}
        self._planned_files: list[tuple[str, dict]] | None = None
        self._planned_requests: list[bytes] = []

    def __repr__(self) -> str:
        return f"RemotePeer({self.peer_id!r}, {str(self.address)!r})"

    @property
    def lock(self) -> RemoteLease:
        return self._lease

    def available(self) -> bool:
        return True   # unreachable is not absent: it is asked, and the write fails

    def prefetch(self, rels: list[str]) -> None:
        answer = self.link.ask([versions_request(rels)])
        now = time.monotonic()
        self._prefetched = {rel: (now, answer.get(rel)) for rel in rels}

    def version(self, rel: str) -> ObjectVersion | None:
        found = self._prefetched.pop(rel, None)
        if found is not None and time.monotonic() - found[0] < PREFETCH_S:
            entry = found[1]
        else:
            entry = self.link.ask([versions_request([rel])]).get(rel)
        if entry is None:
            return None
        if "error" in entry:
            raise InvalidDocument(rel, f"on {self.peer_id}: {entry['error']}")
        try:
            self._sizes[rel] = entry.get("size")
            return ObjectVersion(int(entry["change"]), int(entry["snapshot_change"]),
                                 bool(entry["dropped"]))
        except (KeyError, TypeError, ValueError):
            raise PeerUnreachable(self.peer_id, f"a bad versions answer: {entry!r}") from None

    def differs(self, rel: str, local: Path, change: int) -> bool:
        size = self._sizes.get(rel)
        try:
            return size is not None and os.stat(local).st_size != size
        except OSError:
            return False

    def plan_fence(self, files: list[tuple[str, dict]]) -> None:
        """The commit about to take the lease asks its fence question with the fence request."""
        self._planned_files = files
        self._planned_requests = self._check_requests(files)
        self._lease.plan_check(self._planned_requests)

    def _check_requests(self, files: list[tuple[str, dict]]) -> list[bytes]:
        asked = [(rel, document["change"],
                  orjson.dumps(document)
                  if document["kind"] == "database" or document["dropped"] else None)
                 for rel, document in files]
        return check_requests(asked, self.link.max_request_bytes)

    def fence_violation(self, files: list[tuple[str, dict]]) -> tuple[str, int] | None:
        self._lease.check()
        answer = None
        if files is self._planned_files:
            answer = self._lease.checked(self._planned_requests)
        self._planned_files = None
        if answer is None:   # the lease was taken before (a pessimistic statement) or apart
            answer = self.link.ask(self._check_requests(files), retry=False)
        violation = answer.get("violation")
        self._lease.check()
        if violation is None:
            return None
        return str(violation["rel"]), int(violation["change"])

    def object_names(self, database: str, folder: str) -> set[str]:
        return {str(name) for name in self.link.ask([names_request(database, folder)])
                .get("names", [])}

    def fetch(self, rel: str, dest: ObjectVersion | None) -> Shipment | None:
        answer = self.link.ask([fetch_request(rel, None if dest is None else dest.change,
                                              dest is not None and dest.dropped)])
        try:
            return shipment_of(answer)
        except PeerRefused as error:
            raise PeerUnreachable(self.peer_id, str(error)) from None

    def push(self, rel: str, root: Path, change: int) -> None:
        """Ship our copy of `rel` (at `change`) to the peer now, as its supervisor's
        replicator would (the same plan: missing journal lines, else the whole copy)."""
        for _ in range(PUSH_ROUNDS):
            try:
                entry = self.link.ask([versions_request([rel])]).get(rel)
                theirs = None if entry is None or "error" in entry else ObjectVersion(
                    int(entry["change"]), int(entry["snapshot_change"]), bool(entry["dropped"]))
                if theirs is not None and theirs.change >= change:
                    return
                shipment = plan_shipment(root, rel, theirs)
                if shipment is None:
                    return   # ours moved on or does not read: the next write ships it
                result = self.link.ask(ship_requests(rel, shipment, self.link.max_request_bytes),
                                       retry=False).get("result")
            except (KeyError, TypeError, ValueError, InvalidDocument) as error:
                raise PeerUnreachable(self.peer_id, f"{rel} not shipped: {error}") from None
            if result in ("moved", "current"):
                return
        raise PeerUnreachable(self.peer_id, f"{rel} kept moving there: not shipped")

    def close(self) -> None:
        self.link.close()
