"""Cluster membership as one server sees it: which other servers' data directories are its peers.

A server's store certifies every commit against its peers' copies and pulls
their newer ones before writing (docs/REPLICATION.md); the engine only asks
"where are the peers now?" (`engine.storage.peers.PeerSource`). This module answers
from what the server was told at start:

- `--peer ID=DIR` options (`parse_peer_option`), fixed for the process;
- the peers file the supervisor writes (`run/<server>.peers.json`,
  `{"peers": {"m2": "/abs/data/m2"}}`), re-read whenever its
  inode/mtime/size changes, so a hot-reloaded topology reaches running
  servers before a new server takes writes. A bad file keeps the last good
  list (logged).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import orjson

log = logging.getLogger(__name__)


def parse_peer_option(text: str) -> tuple[str, Path]:
    """`ID=DIR` (the `--peer` option) -> (id, absolute dir); ValueError with a sentence."""
    peer_id, separator, folder = text.partition("=")
    if not separator or not peer_id.strip() or not folder.strip():
        raise ValueError(f"--peer {text!r}: expected ID=DIR")
    return peer_id.strip(), Path(os.path.abspath(folder.strip()))


class PeerDirectories:
    """The peers' data directories: fixed ones plus those of a peers file (re-read on change)."""

    def __init__(self, fixed: dict[str, Path] | None = None, peers_file: Path | None = None):
        self._fixed = {peer: Path(os.path.abspath(folder)) for peer, folder in (fixed or {}).items()}
        self._file = Path(peers_file) if peers_file is not None else None
        self._file_signature: tuple | None = None
        self._from_file: dict[str, Path] = {}

    @property
    def peers_file(self) -> Path | None:
        return self._file

    def current(self) -> dict[str, Path]:
        """Peer id -> data directory, as of now (one `stat` of the peers file)."""
        if self._file is not None:
            self._refresh(self._file)
        if not self._from_file:
            return self._fixed
        return {**self._from_file, **self._fixed}

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
            if not isinstance(peers, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) and v for k, v in peers.items()):
                raise ValueError("'peers' must map ids to directory paths")
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.error("bad peers file %s (keeping the previous peers): %s", peers_file, error)
            return
        base = peers_file.parent
        self._from_file = {peer: Path(os.path.abspath(base / folder)) for peer, folder in peers.items()}
        log.info("peers: %s", ", ".join(f"{p}={d}" for p, d in sorted(self._from_file.items()))
                 or "none")

