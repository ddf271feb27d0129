"""The load balancer's background watch: active health probes and the backends file.

Every probe interval, `Prober` sends `.ping;` and `.rights;` to each
backend in one write, over a connection of its own (kept from one probe to
the next), and reads both answers: one round trip, both bounded by the
probe timeout from that write. Each backend has its own probe loop, so one
frozen server cannot slow down the probing of the others. The same loop
re-reads the backends file (when one is configured) and applies a changed
backend set without a restart.

What the answers mean:

- **Health is the ping's answer alone.** `PONG` in time is a success for
  the `BackendPool`'s health state machine; no answer in time, a broken
  connection or any other answer is a failure.
- **The rights answer never marks a backend down.** Answered (one server's
  generation), the pool keeps it (`saw_rights_answer`: an account's
  statements avoid a backend behind on the rights). Missing, late or not
  one server's generation: the backend's last known generation stays as
  it was (a lower bound: a server's rights generation moves only forward),
  so as soon as another backend reports a newer one this one counts as
  behind, and `candidates(rights_current=True)` leaves it out; it keeps
  serving everything else. One it never reported stays unknown, which the
  pool treats as current, as for a backend that just joined. A late answer
  closes the probe's connection (an answer arriving afterwards could no
  longer be matched); the next probe opens another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from nodes.balancer.backend_config import BackendsFile
from nodes.balancer.backend_pool import BackendPool
from nodes.balancer.backends import Backend, BackendConnection, BackendUnavailable
from nodes.protocol import Response, decode_rights, statement_bytes

# One write, two requests, answered in order (the wire protocol's pipelining).
PROBE_REQUESTS = statement_bytes(".ping") + statement_bytes(".rights")


class Prober:
    """Probes every backend of a pool and keeps the pool in step with the backends file."""

    def __init__(self, pool: BackendPool, probe_timeout: float, interval: float,
                 backends_file: BackendsFile | None = None):
        self.pool = pool
        self.probe_timeout = probe_timeout
        self.interval = interval
        self.backends_file = backends_file
        self._connections: dict[str, BackendConnection] = {}
        # A write about to be refused re-reads the file first: a server the supervisor
        # just made writable again is not passed over for a probe interval.
        pool.reread_configuration = self.reload_backends_file

    async def probe(self, backend: Backend) -> None:
        """`.ping;` and `.rights;` to `backend` in one round trip; the results go to the pool
        (health from the ping, the rights generation from `.rights;`: see the module)."""
        connection = self._connections.get(backend.id)
        started = time.perf_counter()
        try:
            if connection is None or not connection.usable or connection.backend is not backend:
                connection = await BackendConnection.open(backend, self.probe_timeout)
                self._connections[backend.id] = connection
            ping, rights = connection.send_each(PROBE_REQUESTS, (1, 1), self.probe_timeout)
        except BackendUnavailable as error:
            self._failed(backend, connection, error)
            return
        try:
            response = (await ping)[0]
        except BackendUnavailable as error:
            await self._answer(backend, connection, rights)   # failed with it: retrieved
            self._failed(backend, connection, error)
            return
        latency = time.perf_counter() - started
        healthy = response.ok and response.message.startswith("PONG")
        if self.pool.holds(backend):   # else removed while the probe ran
            if healthy:
                self.pool.record_success(backend, latency)
            else:
                self.pool.record_failure(backend, f"bad probe answer {response.message[:80]!r}")
        answer = await self._answer(backend, connection, rights)
        if healthy and answer is not None and answer.ok and self.pool.holds(backend):
            self.pool.saw_rights_answer(backend.id, decode_rights(answer.message))

    async def _answer(self, backend: Backend, connection: BackendConnection,
                      waiting: Awaitable[list[Response]]) -> Response | None:
        """The answer `waiting` brings, or None when it failed (the connection is closed)."""
        try:
            return (await waiting)[0]
        except BackendUnavailable:
            self._forget(backend, connection)
            return None

    def _failed(self, backend: Backend, connection: BackendConnection | None,
                error: BackendUnavailable) -> None:
        self._forget(backend, connection)
        if self.pool.holds(backend):
            self.pool.record_failure(backend, error.reason)

    def _forget(self, backend: Backend, connection: BackendConnection | None) -> None:
        if connection is None or self._connections.get(backend.id) is connection:
            self._connections.pop(backend.id, None)

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(b) for b in self.pool))

    def reload_backends_file(self) -> None:
        """Apply the backends file if it changed; a missing or bad file keeps the current set."""
        if self.backends_file is None:
            return
        specs = self.backends_file.read_if_changed()
        if specs is not None:
            self.pool.apply_specs(specs)

    async def _probe_forever(self, backend: Backend) -> None:
        while self.pool.holds(backend):
            started = time.monotonic()
            await self.probe(backend)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))

    async def run(self) -> None:
        """One probe loop per backend, started and stopped as the backend set changes."""
        loops: dict[Backend, asyncio.Task] = {}
        try:
            while True:
                self.reload_backends_file()
                for backend in self.pool:
                    if backend not in loops or loops[backend].done():
                        loops[backend] = asyncio.create_task(self._probe_forever(backend))
                for backend in [b for b in loops if not self.pool.holds(b)]:
                    loops.pop(backend).cancel()
                    stale = self._connections.get(backend.id)
                    if stale is not None and stale.backend is backend:
                        del self._connections[backend.id]
                await asyncio.sleep(self.interval)
        finally:
            for task in loops.values():
                task.cancel()
