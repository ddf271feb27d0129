"""The replicator's link to a server on another machine: `.peer` requests over one connection.

The supervisor ships each new version of an object to the servers of the
other machines, and catches a local server up from them, with the peer
protocol every server answers (nodes/protocol/peer.py, the sans-IO side
both ends share; nodes/server/peer_service.py answers). A `PeerLink` is one
blocking connection, used by one replication thread at a time:

- it connects on first use: TLS when the topology has a `tls:` section
  (the server's certificate checked against the CA, for the address the
  topology names), `.auth <secret>;` when there is a secret, then `.peer
  hello 2;` (a server speaking another peer protocol version is refused
  with the server's sentence: `PeerVersionMismatch`);
- every failure of the connection (refused, reset, timed out, a broken
  answer) closes it and raises `PeerUnreachable`, an `OSError`: the
  replicator counts it as a failing copy into that server and retries;
  the next request connects again;
- an answer that is an error (the server refused that request: a copy
  that diverged, a damaged copy there) raises `PeerRefused` with the
  server's sentence; the connection stays usable.

Nothing here decides what to ship: supervisor/replication_remote.py does.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from engine.storage.object_copy import Shipment
from engine.storage.object_state import ObjectVersion
from nodes.protocol import ProtocolError, ResponseDecoder, auth_request
from nodes.protocol.peer import (
    PeerRefused,
    RemoteDigest,
    check_hello,
    decode_answer,
    digest_of,
    digest_request,
    fetch_request,
    hello_request,
    names_request,
    ship_requests,
    shipment_of,
    versions_request,
)

DEFAULT_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 2.0
# A `.peer versions` request names at most this many objects.
VERSIONS_BATCH = 200

__all__ = ["PeerAddress", "PeerLink", "PeerRefused", "PeerUnreachable", "PeerVersionMismatch"]


class PeerUnreachable(ConnectionError):
    """The server could not be reached, or the connection broke (an OSError: retried)."""


class PeerVersionMismatch(PeerUnreachable):
    """The server speaks another peer protocol version (or refuses ours)."""


@dataclass(frozen=True)
class PeerAddress:
    """Where a server of another machine answers, and how to be let in."""

    server_id: str
    host: str
    port: int
    secret: str | None = None
    tls: ssl.SSLContext | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class RemoteVersion:
    """A server's copy of one object as `.peer versions` tells it (None fields: no copy)."""

    version: ObjectVersion | None
    size: int | None = None
    error: str | None = None   # the copy there does not read (its own supervisor repairs it)


class PeerLink:
    """One connection to one server's `.peer` side (see the module docstring)."""

    def __init__(self, peer: PeerAddress, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.peer = peer
        self.timeout_s = timeout_s
        self._socket: socket.socket | ssl.SSLSocket | None = None
        self._decoder = ResponseDecoder(decode_relations=False)
        self.max_request_bytes = 1 << 20

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # ----------------------------------------------------------- requests

    def hello(self) -> str:
        """Connect (if not yet) and return the server's node id."""
        return self._connect()

    def versions(self, rels: list[str]) -> dict[str, RemoteVersion]:
        """The server's version of each object (batched)."""
        found: dict[str, RemoteVersion] = {}
        for start in range(0, len(rels), VERSIONS_BATCH):
            answer = self.ask([versions_request(rels[start:start + VERSIONS_BATCH])])
            for rel in rels[start:start + VERSIONS_BATCH]:
                found[rel] = _remote_version(answer.get(rel))
        return found

    def digests(self, rels: list[str], content: bool = False) -> dict[str, RemoteDigest]:
        """The server's digests of each copy (`.peer digest`; `content`: its object's too)."""
        found: dict[str, RemoteDigest] = {}
        for start in range(0, len(rels), VERSIONS_BATCH):
            answer = self.ask([digest_request(rels[start:start + VERSIONS_BATCH], content)])
            for rel in rels[start:start + VERSIONS_BATCH]:
                found[rel] = digest_of(answer.get(rel))
        return found

    def names(self, database: str, folder: str) -> list[str]:
        names = self.ask([names_request(database, folder)]).get("names")
        if not isinstance(names, list):
            raise PeerRefused(f"{self.peer.server_id}: not a list of names: {names!r}")
        return [str(name) for name in names]

    def objects(self) -> list[str]:
        """Every object path the server holds (`.peer names;`: markers, tombstones, every
        folder's objects; never a listing that depends on who asks)."""
        rels = self.ask([names_request()]).get("rels")
        if not isinstance(rels, list):
            raise PeerRefused(f"{self.peer.server_id}: not a list of objects: {rels!r}")
        return [str(rel) for rel in rels]

    def fetch(self, rel: str, dest: ObjectVersion | None) -> Shipment | None:
        """What brings a copy at `dest` up to the server's version (None: nothing newer)."""
        answer = self.ask([fetch_request(rel, None if dest is None else dest.change,
                                         bool(dest is not None and dest.dropped))])
        return shipment_of(answer)

    def ship(self, rel: str, shipment: Shipment) -> tuple[str, int | None]:
        """Apply a shipment there: ("moved" | "current" | "replan", its version now)."""
        answer = self.ask(ship_requests(rel, shipment, self.max_request_bytes))
        result, version = answer.get("result"), answer.get("version")
        if result not in ("moved", "current", "replan"):
            raise PeerRefused(f"{self.peer.server_id}: not a ship answer: {answer!r}")
        return str(result), version if isinstance(version, int) else None

    def ask(self, requests: list[bytes]) -> dict:
        """Send requests back to back; the last one's answer (an earlier error raises too)."""
        self._connect()
        responses = self._exchange(b"".join(requests), len(requests))
        for response in responses[:-1]:
            decode_answer(response)   # a refused part: PeerRefused
        return decode_answer(responses[-1])

    # --------------------------------------------------------- the socket

    def _connect(self) -> str:
        if self._socket is not None:
            return self.peer.server_id
        peer = self.peer
        try:
            sock: socket.socket | ssl.SSLSocket = socket.create_connection(
                (peer.host, peer.port), timeout=CONNECT_TIMEOUT_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if peer.tls is not None:
                sock = peer.tls.wrap_socket(sock, server_hostname=peer.host)
            sock.settimeout(self.timeout_s)
        except (OSError, ssl.SSLError) as error:
            raise PeerUnreachable(f"{peer.server_id} at {peer.address}: "
                                  f"{getattr(error, 'strerror', None) or error}") from None
        self._socket, self._decoder = sock, ResponseDecoder(decode_relations=False)
        first = (auth_request(peer.secret) if peer.secret else b"") + hello_request()
        responses = self._exchange(first, 2 if peer.secret else 1)
        if peer.secret and not responses[0].ok:
            self.close()
            raise PeerUnreachable(f"{peer.server_id} at {peer.address} refuses the secret: "
                                  f"{responses[0].message.strip()[-160:]}")
        try:
            answer = decode_answer(responses[-1])
            node = check_hello(answer)
        except PeerRefused as error:
            self.close()
            raise PeerVersionMismatch(f"{peer.server_id} at {peer.address}: {error}") from None
        maximum = answer.get("max_request_bytes")
        if isinstance(maximum, int) and maximum > 4096:
            self.max_request_bytes = maximum
        if node != peer.server_id:
            self.close()
            raise PeerUnreachable(f"{peer.address} is server {node}, not {peer.server_id} "
                                  "(the topology and that machine disagree)")
        return node

    def _exchange(self, data: bytes, answers: int) -> list:
        sock = self._socket
        assert sock is not None
        decoder = self._decoder
        try:
            sock.sendall(data)
            responses: list = []
            while len(responses) < answers:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("the connection was closed")
                responses += decoder.feed(chunk)
            return responses
        except (OSError, ssl.SSLError, ProtocolError) as error:
            self.close()
            raise PeerUnreachable(f"{self.peer.server_id} at {self.peer.address}: "
                                  f"{getattr(error, 'strerror', None) or error}") from None


def _remote_version(value: object) -> RemoteVersion:
    if value is None:
        return RemoteVersion(None)
    if not isinstance(value, dict):
        return RemoteVersion(None, error=f"not a version: {value!r}")
    if "error" in value:
        return RemoteVersion(None, error=str(value["error"]))
    try:
        return RemoteVersion(ObjectVersion(int(value["change"]), int(value["snapshot_change"]),
                                           bool(value["dropped"])),
                             value.get("size") if isinstance(value.get("size"), int) else None)
    except (KeyError, TypeError, ValueError):
        return RemoteVersion(None, error=f"not a version: {value!r}")
