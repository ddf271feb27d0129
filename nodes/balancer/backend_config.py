"""Which backends the load balancer is configured with.

Two sources, both turned into `BackendSpec` values: `--backend ID=HOST:PORT`
options, and the backends file the supervisor writes
(`{"backends":[{"id","host","port","writable","lagging","unix_socket"}]}`; `unix_socket`,
optional: the server's socket file when it runs on this machine), which
`BackendsFile` re-reads whenever it changes. Bad input raises `ValueError` with a reason a
person can act on; nothing here opens a socket.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class BackendSpec:
    """One backend as configured: `writable=False` means catching up, reads only;
    `lagging`: copies into it keep failing (the supervisor says so), reads go elsewhere
    while another backend can answer; `unix_socket`: its socket file on this machine,
    connected to first (TCP at host:port when that fails: nodes/runtime/upstream.py)."""

    id: str
    host: str
    port: int
    writable: bool = True
    lagging: bool = False
    unix_socket: str | None = None


def parse_backend_option(text: str) -> BackendSpec:
    """`m1=127.0.0.1:3948` -> BackendSpec; ValueError with a clear reason."""
    name, sep, address = text.partition("=")
    host, colon, port = address.rpartition(":")
    if not sep or not name or not colon or not host or not port.isdigit():
        raise ValueError(f"--backend {text!r}: expected ID=HOST:PORT, e.g. m1=127.0.0.1:3948")
    if not 0 < int(port) < 65536:
        raise ValueError(f"--backend {text!r}: port out of range")
    return BackendSpec(name, host, int(port))


def parse_backends_document(text: str) -> list[BackendSpec]:
    """The backends file: `{"backends":[{"id","host","port","writable","lagging","unix_socket"}]}`."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    entries = document.get("backends") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError('expected an object with a "backends" list')
    specs: list[BackendSpec] = []
    for index, entry in enumerate(entries):
        where = f"backends[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object")
        backend_id, host, port = entry.get("id"), entry.get("host"), entry.get("port")
        writable = entry.get("writable", True)
        lagging = entry.get("lagging", False)
        unix_socket = entry.get("unix_socket")
        if not isinstance(backend_id, str) or not backend_id:
            raise ValueError(f"{where}.id: expected a non-empty string")
        if not isinstance(host, str) or not host:
            raise ValueError(f"{where}.host: expected a non-empty string")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValueError(f"{where}.port: expected an integer 1..65535")
        if not isinstance(writable, bool):
            raise ValueError(f"{where}.writable: expected true or false")
        if not isinstance(lagging, bool):
            raise ValueError(f"{where}.lagging: expected true or false")
        if unix_socket is not None and (not isinstance(unix_socket, str) or not unix_socket):
            raise ValueError(f"{where}.unix_socket: expected a path (a non-empty string) or null")
        if any(spec.id == backend_id for spec in specs):
            raise ValueError(f"{where}.id: {backend_id!r} appears twice")
        specs.append(BackendSpec(backend_id, host, port, writable, lagging, unix_socket))
    return specs


class BackendsFile:
    """The backends file, read again only when it has changed."""

    _MISSING = (0, 0, 0)

    def __init__(self, path: str, logger: logging.Logger):
        self.path = path
        self.log = logger
        self._stamp: tuple[int, int, int] | None = None

    def read_if_changed(self) -> list[BackendSpec] | None:
        """The new backend list, or None when unchanged or unreadable (keep the old set)."""
        try:
            info = os.stat(self.path)
        except OSError as error:
            if self._stamp != self._MISSING:
                self.log.error("backends file %s: %s; keeping the current backends",
                               self.path, error.strerror)
                self._stamp = self._MISSING
            return None
        # The inode changes on every atomic replace, even within one mtime tick.
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            with open(self.path, encoding="utf-8") as handle:
                return parse_backends_document(handle.read())
        except (OSError, ValueError) as error:
            self.log.error("backends file %s: %s; keeping the current backends", self.path, error)
            return None
