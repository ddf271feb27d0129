"""The load balancer's background watch: active health probes and the backends file.

Every probe interval, `Prober` sends `.ping;` to each backend over a
connection of its own, bounded by the probe timeout, and reports the result
to the `BackendPool`; then `.rights;`, whose generation the pool keeps (an
account's statements avoid a backend behind on the rights). Each backend has its own probe loop, so one frozen
server cannot slow down the probing of the others. The same loop re-reads
the backends file (when one is configured) and applies a changed backend
set without a restart.
"""

from __future__ import annotations

import asyncio
import time

from nodes.balancer.backend_config import BackendsFile
from nodes.balancer.backend_pool import BackendPool
from nodes.balancer.backends import Backend, BackendConnection, BackendUnavailable
from nodes.protocol import decode_rights, statement_bytes

RIGHTS_REQUEST = statement_bytes(".rights")


class Prober:
    """Probes every backend of a pool and keeps the pool in step with the backends file."""

    def __init__(self, pool: BackendPool, probe_timeout: float, interval: float,
                 backends_file: BackendsFile | None = None):
        self.pool = pool
        self.probe_timeout = probe_timeout
        self.interval = interval
        self.backends_file = backends_file
        self._connections: dict[str, BackendConnection] = {}

    async def probe(self, backend: Backend) -> None:
        """`.ping;` then `.rights;` to `backend`; the results go to the pool (health, rights)."""
        connection = self._connections.get(backend.id)
        started = time.perf_counter()
        try:
            if connection is None or not connection.usable or connection.backend is not backend:
                connection = await BackendConnection.open(backend, self.probe_timeout)
                self._connections[backend.id] = connection
            response = await connection.roundtrip(statement_bytes(".ping"), self.probe_timeout)
            latency = time.perf_counter() - started
            rights = await connection.roundtrip(RIGHTS_REQUEST, self.probe_timeout) \
                if response.ok else None
        except BackendUnavailable as error:
            self._connections.pop(backend.id, None)
            if self.pool.holds(backend):
                self.pool.record_failure(backend, error.reason)
            return
        if not self.pool.holds(backend):
            return  # removed while the probe ran
        if response.ok and response.message.startswith("PONG"):
            self.pool.record_success(backend, latency)
            if rights is not None and rights.ok:
                self.pool.saw_rights_answer(backend.id, decode_rights(rights.message))
        else:
            self.pool.record_failure(backend, f"bad probe answer {response.message[:80]!r}")

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
