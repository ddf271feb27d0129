"""Cluster membership as one server sees it: which other servers are its peers, and where.

A server's store certifies every commit against its peers' copies and pulls
their newer ones before writing (docs/REPLICATION.md); the engine only asks
"who are the peers now?" (`engine.storage.peers.PeerSource`). This module
answers from what the server was told at start:

- `--peer ID=DIR` options (`parse_peer_option`): a peer on this machine,
  whose data directory the store reads and locks itself;
  `--peer-address ID=HOST:PORT` (`parse_peer_address`): a peer asked over
  the network (nodes/server/remote_peer.py); both fixed for the process;
- the peers file the supervisor writes (`run/<server>.peers.json`),
  re-read whenever its inode/mtime/size changes, so a hot-reloaded
  topology reaches running servers before a new server takes writes. A bad
  file keeps the last good list (logged). Each peer is its data directory,
  or, for one on another machine, its address:

      {"peers": {"m2": "/abs/data/m2",
                 "m3": {"address": "10.0.0.3:3950"},
                 "m4": {"data": "/abs/data/m4", "address": "10.0.0.1:3952"}}}

  An entry with a `data` directory is read as a folder (the address is
  then for others); one with only an `address` becomes a `Peer` made by
  the `remote` factory (the server gives it its secret and TLS context),
  kept, with its connection, while its address stays the same.

  A peer removed from the topology on another machine is first listed
  with `"leaving": true`: still pulled from and certified against, but no
  longer fenced for (`members`), while its supervisor's machine pulls its
  newest copies; then it goes.

  With write leases on (docs/REPLICATION.md, "Write leases"), the file
  also says whether this server may write: `"lease": {"epoch": 4,
  "until": 12345.6}` (this machine's monotonic time, which the server
  shares with its supervisor: no clock of another machine) or `"lease":
  null` (none: every write refused). No `lease` key: leases are off.
  `write_lease_problem()` is asked by the commit, under its locks.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from engine.storage.peers import Peer

log = logging.getLogger(__name__)


# Makes the `Peer` of a peer on another machine: (id, host, port) -> Peer.
RemoteFactory = Callable[[str, str, int], Peer]


def parse_peer_option(text: str) -> tuple[str, Path]:
    """`ID=DIR` (the `--peer` option) -> (id, absolute dir); ValueError with a sentence."""
    peer_id, separator, folder = text.partition("=")
    if not separator or not peer_id.strip() or not folder.strip():
        raise ValueError(f"--peer {text!r}: expected ID=DIR")
    return peer_id.strip(), Path(os.path.abspath(folder.strip()))


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[v6]:PORT` too) -> (host, port); ValueError with a sentence."""
    host, separator, port_text = text.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not separator or not host:
        raise ValueError(f"address {text!r} is not HOST:PORT")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} in {text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} in {text!r} is out of range (1 to 65535)")
    return host, port


def parse_peer_address(text: str) -> tuple[str, tuple[str, int]]:
    """`ID=HOST:PORT` (the `--peer-address` option) -> (id, (host, port)); ValueError."""
    peer_id, separator, address = text.partition("=")
    if not separator or not peer_id.strip() or not address.strip():
        raise ValueError(f"--peer-address {text!r}: expected ID=HOST:PORT")
    try:
        return peer_id.strip(), parse_address(address)
    except ValueError as error:
        raise ValueError(f"--peer-address {text!r}: {error}") from None


class PeerDirectories:
    """The peers: fixed ones plus those of a peers file (re-read on change)."""

    def __init__(self, fixed: dict[str, Path] | None = None, peers_file: Path | None = None,
                 *, addresses: dict[str, tuple[str, int]] | None = None,
                 remote: RemoteFactory | None = None):
        """`addresses`: fixed peers on other machines; `remote` makes their `Peer`s (without
        it, a peer known only by its address is refused, logged)."""
        self._fixed: dict[str, Path | Peer] = {
            peer: Path(os.path.abspath(folder)) for peer, folder in (fixed or {}).items()}
        self._remote = remote
        self._remotes: dict[str, tuple[tuple[str, int], Peer]] = {}
        for peer, address in (addresses or {}).items():
            remote_peer = self._remote_peer(peer, address)
            if remote_peer is not None:
                self._fixed[peer] = remote_peer
        self._file = Path(peers_file) if peers_file is not None else None
        self._file_signature: tuple | None = None
        self._from_file: dict[str, Path | Peer] = {}
        self._merged: dict[str, Path | Peer] = self._fixed
        self._lease: _Lease | None = None   # None: leases off (no `lease` key)
        self._leaving: frozenset[str] = frozenset()   # peers of the file marked leaving

    @property
    def peers_file(self) -> Path | None:
        return self._file

    def current(self) -> dict[str, Path | Peer]:
        """Peer id -> data directory or `Peer`, as of now (one `stat` of the peers file).

        The same dict object while nothing changed.
        """
        if self._file is not None:
            self._refresh(self._file)
        return self._merged

    def members(self) -> frozenset[str]:
        """The peers this server certifies writes for (`.peer fence`): its peers now but
        those the file marks `"leaving": true` (removed from the topology: their newest
        copies are being pulled here before they go, and they must write nothing more)."""
        return frozenset(self.current()) - self._leaving

    def all_local(self) -> bool:
        """Whether every peer, as of now, is a data directory of this machine (none over the network)."""
        return all(isinstance(peer, Path) for peer in self.current().values())

    def write_lease_problem(self) -> str | None:
        """Why this server may not write now (None: leases off, or one held with time left)."""
        if self._file is not None:
            self._refresh(self._file)
        lease = self._lease
        if lease is None:
            return None
        if lease.until is None:
            return "its supervisor holds no majority's grant"
        left = lease.until - time.monotonic()
        if left <= 0:
            return f"epoch {lease.epoch}'s lease ran out {-left:.1f} s ago (not renewed)"
        return None

    def leases_on(self) -> bool:
        if self._file is not None:
            self._refresh(self._file)
        return self._lease is not None

    def _remote_peer(self, peer: str, address: tuple[str, int]) -> Peer | None:
        """The `Peer` at `address`: the one made before if the address is the same."""
        known = self._remotes.get(peer)
        if known is not None and known[0] == address:
            return known[1]
        if self._remote is None:
            log.error("peer %s at %s:%d: this server cannot ask peers over the network",
                      peer, *address)
            return None
        if known is not None:
            close = getattr(known[1], "close", None)
            if close is not None:
                close()
        made = self._remote(peer, *address)
        self._remotes[peer] = (address, made)
        return made

    def _refresh(self, peers_file: Path) -> None:
        try:
            stat = os.stat(peers_file)
        except FileNotFoundError:
            signature = None
        except OSError as error:
            log.warning("cannot read the peers file %s: %s", peers_file, error)
            return
        else:
            signature = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if signature == self._file_signature:
            return
        self._file_signature = signature
        if signature is None:
            if self._from_file:
                log.warning("the peers file %s is gone: keeping %s", peers_file,
                            ", ".join(sorted(self._from_file)))
            return
        try:
            document = orjson.loads(peers_file.read_bytes())
            peers = document["peers"]
            if not isinstance(peers, dict):
                raise ValueError("'peers' must map ids to directories or {address, data}")
            entries = {peer: _entry(peer, value) for peer, value in peers.items()}
            leaving = frozenset(peer for peer, value in peers.items()
                                if isinstance(value, dict) and value.get("leaving") is True)
            lease = _lease(document) if "lease" in document else None
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.error("bad peers file %s (keeping the previous peers): %s", peers_file, error)
            return
        base = peers_file.parent
        found: dict[str, Path | Peer] = {}
        for peer, (folder, address) in entries.items():
            if folder is not None:
                found[peer] = Path(os.path.abspath(base / folder))
            else:
                assert address is not None  # _entry gives one or the other
                remote_peer = self._remote_peer(peer, address)
                if remote_peer is None:
                    return   # logged: keep the previous peers rather than drop one
                found[peer] = remote_peer
        self._from_file = found
        self._leaving = leaving
        self._lease = lease
        merged = {**self._from_file, **self._fixed} if self._from_file else self._fixed
        if merged == self._merged:
            return   # a renewed lease only: the same peers (same objects) kept, not logged
        self._merged = merged
        log.info("peers: %s", ", ".join(f"{p}={d}" for p, d in sorted(found.items(), key=str))
                 or "none")


class _Lease:
    """The write lease a peers file gives: its epoch, and until when (None: none held)."""

    __slots__ = ("epoch", "until")

    def __init__(self, epoch: int | None, until: float | None):
        self.epoch = epoch
        self.until = until


def _lease(document: dict) -> _Lease:
    """The file's `lease`: null, or {epoch, until}; ValueError with a sentence."""
    value = document["lease"]
    if value is None:
        return _Lease(None, None)
    if not isinstance(value, dict) or isinstance(value.get("epoch"), bool) \
            or not isinstance(value.get("epoch"), int) \
            or not isinstance(value.get("until"), (int, float)) \
            or isinstance(value.get("until"), bool):
        raise ValueError(f"'lease' must be null or {{epoch, until}}, not {value!r}")
    return _Lease(value["epoch"], float(value["until"]))


def _entry(peer: str, value: object) -> tuple[str | None, tuple[str, int] | None]:
    """(data directory, address) of one peers file entry; ValueError with a sentence."""
    if not isinstance(peer, str) or not peer:
        raise ValueError(f"peer id {peer!r} is not a name")
    if isinstance(value, str) and value:
        return value, None
    if isinstance(value, dict):
        folder, address = value.get("data"), value.get("address")
        if isinstance(folder, str) and folder:
            return folder, None
        if isinstance(address, str) and address:
            return None, parse_address(address)
    raise ValueError(f"peer {peer}: expected a directory, or {{\"address\": \"HOST:PORT\"}}")

