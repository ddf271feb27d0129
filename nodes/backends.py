"""A database server as the load balancer sees it, and one connection to it.

`Backend` holds a configured server's health, load counters and open
connections (so they can all be aborted when it goes OFFLINE).
`BackendConnection` sends one request at a time and returns its one
response; every failure becomes `BackendUnavailable`, whose `sent` flag says
whether the request may have reached the server. That flag is what lets the
balancer retry a write elsewhere only when nothing was sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from nodes.backend_config import BackendSpec
from nodes.common import set_nodelay
from nodes.health import BackendHealth
from nodes.protocol import ProtocolError, Response, ResponseDecoder, auth_request

READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class Timeouts:
    """Every socket operation towards a backend is bounded by one of these (seconds)."""

    connect: float = 1.0
    probe: float = 1.0
    request: float = 30.0


class BackendUnavailable(Exception):
    """A backend could not serve a request. `sent`: the request may have reached it."""

    def __init__(self, backend_id: str, reason: str, sent: bool):
        super().__init__(f"{backend_id}: {reason}")
        self.backend_id = backend_id
        self.reason = reason
        self.sent = sent


class Backend:
    """A configured backend at run time: its health, load and open connections."""

    def __init__(self, spec: BackendSpec, health: BackendHealth, secret: str | None = None):
        self.spec = spec
        self.health = health
        self.secret = secret  # shared secret (docs/SECURITY.md), sent first on each connection
        self.outstanding = 0
        self.reads = 0
        self.writes = 0
        self.connections: set[BackendConnection] = set()

    @property
    def id(self) -> str:
        return self.spec.id

    def abort_connections(self) -> None:
        for connection in list(self.connections):
            connection.close()


class BackendConnection:
    """One TCP connection to a backend and the database currently selected on it."""

    def __init__(self, backend: Backend, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.backend = backend
        self.reader = reader
        self.writer = writer
        self.database: str | None = None
        self._decoder = ResponseDecoder(decode_relations=False)
        backend.connections.add(self)

    @classmethod
    async def open(cls, backend: Backend, timeout: float) -> "BackendConnection":
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(backend.spec.host, backend.spec.port)
        except TimeoutError:
            raise BackendUnavailable(backend.id, f"no connection within {timeout:g}s", sent=False) from None
        except OSError as error:
            raise BackendUnavailable(backend.id, error.strerror or str(error), sent=False) from None
        set_nodelay(writer)
        connection = cls(backend, reader, writer)
        if backend.secret:
            try:
                answer = await connection.roundtrip(auth_request(backend.secret), timeout)
            except BackendUnavailable as error:
                raise BackendUnavailable(backend.id, error.reason, sent=False) from None
            if not answer.ok:
                connection.close()
                # Refused before any statement was sent.
                raise BackendUnavailable(backend.id, answer.message, sent=False)
        return connection

    @property
    def usable(self) -> bool:
        # A peer that died or restarted has already sent FIN/RST, which the
        # event loop turned into EOF: such a connection is known dead before
        # anything is sent on it.
        return not self.writer.is_closing() and not self.reader.at_eof()

    async def roundtrip(self, payload: bytes, timeout: float) -> Response:
        """Send one request, return its one response; BackendUnavailable on any failure."""
        backend_id = self.backend.id
        if not self.usable:
            self.close()
            raise BackendUnavailable(backend_id, "connection already closed", sent=False)
        self.writer.write(payload)
        if self.writer.is_closing():
            # The send itself failed (reset by a dead peer): nothing arrived.
            self.close()
            raise BackendUnavailable(backend_id, "connection reset before sending", sent=False)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    data = await self.reader.read(READ_CHUNK)
                    if not data:
                        raise BackendUnavailable(backend_id, "connection closed by the server", sent=True)
                    responses = self._decoder.feed(data)
                    if responses:
                        return responses[0]
        except BackendUnavailable:
            self.close()
            raise
        except TimeoutError:
            self.close()
            raise BackendUnavailable(backend_id, f"no answer within {timeout:g}s", sent=True) from None
        except (OSError, ProtocolError) as error:
            self.close()
            raise BackendUnavailable(backend_id, str(error) or type(error).__name__, sent=True) from None

    def close(self) -> None:
        self.backend.connections.discard(self)
        self.writer.transport.abort()
