"""The load balancer's changing set of backends and which of them may take traffic.

`BackendPool` owns the `Backend` objects by id. `apply_specs` makes the set
equal to a new configuration while keeping the health and counters of the
backends that did not change. Evidence about a backend (a probe answered, a
connection error) goes through `record_success` / `record_failure`, which
feed its health state machine (nodes.health), log every transition, count
failovers and abort all connections of a backend that goes OFFLINE, so
requests stuck on a frozen server fail over at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from nodes.balancer.backend_config import BackendSpec
from nodes.balancer.backends import Backend
from nodes.balancer.health import BackendHealth, BackendState, HealthPolicy, Transition


class BackendPool:
    """Backends by id, with their health; the candidates for each kind of request."""

    def __init__(self, policy: HealthPolicy, logger: logging.Logger,
                 clock: Callable[[], float] = time.monotonic, secret: str | None = None):
        self.policy = policy
        self.secret = secret  # presented as `.auth` on every backend connection
        self.log = logger
        self.clock = clock
        self.failovers = 0
        self._backends: dict[str, Backend] = {}

    def __getitem__(self, backend_id: str) -> Backend:
        return self._backends[backend_id]

    def __iter__(self) -> Iterator[Backend]:
        return iter(list(self._backends.values()))

    def __len__(self) -> int:
        return len(self._backends)

    def holds(self, backend: Backend) -> bool:
        """Whether `backend` is still configured (not removed or replaced meanwhile)."""
        return self._backends.get(backend.id) is backend

    def apply_specs(self, specs: list[BackendSpec]) -> None:
        """Make the backend set equal to `specs`, keeping state of unchanged ones."""
        wanted = {spec.id: spec for spec in specs}
        for backend_id in list(self._backends):
            old = self._backends[backend_id]
            new = wanted.get(backend_id)
            if new is None or (new.host, new.port) != (old.spec.host, old.spec.port):
                self.log.info("backend %s removed (%s:%d)", backend_id, old.spec.host, old.spec.port)
                old.abort_connections()
                del self._backends[backend_id]
            elif new.writable != old.spec.writable:
                self.log.info("backend %s is now %s", backend_id,
                              "writable" if new.writable else "read-only (catching up)")
                old.spec = new
        for backend_id, spec in wanted.items():
            if backend_id not in self._backends:
                self.log.info("backend %s added (%s:%d)", backend_id, spec.host, spec.port)
                # Unconfirmed until its first probe answers: SHUNNED gets no
                # traffic but turns ONLINE on one success.
                health = BackendHealth(backend_id, self.policy, self.clock, BackendState.SHUNNED)
                self._backends[backend_id] = Backend(spec, health, secret=self.secret)

    def candidates(self, writable_only: bool = False) -> list[str]:
        """ONLINE backends; SHUNNED ones only as a last resort when none is ONLINE."""
        eligible = [b for b in self._backends.values() if b.spec.writable or not writable_only]
        online = [b.id for b in eligible if b.health.state is BackendState.ONLINE]
        if online:
            return online
        return [b.id for b in eligible if b.health.state is BackendState.SHUNNED]

    def online_writable(self) -> list[str]:
        """Backends that take writes right now, without the SHUNNED fallback."""
        return [b for b in self.candidates(writable_only=True)
                if self._backends[b].health.state is BackendState.ONLINE]

    def outstanding(self, backend_ids: list[str]) -> dict[str, int]:
        return {b: self._backends[b].outstanding for b in backend_ids}

    def record_success(self, backend: Backend, latency_s: float | None = None) -> None:
        self._record(backend, backend.health.record_success(latency_s))

    def record_failure(self, backend: Backend, reason: str) -> None:
        self._record(backend, backend.health.record_failure(reason))

    def _record(self, backend: Backend, transition: Transition | None) -> None:
        if transition is None:
            return
        level = logging.INFO if transition.new is BackendState.ONLINE else logging.WARNING
        self.log.log(level, "backend %s: %s -> %s (%s)", transition.backend_id,
                     transition.old.value, transition.new.value, transition.reason)
        if transition.old is BackendState.ONLINE:
            self.failovers += 1
        if transition.new is BackendState.OFFLINE:
            # Requests stuck on a frozen server fail now and go elsewhere.
            backend.abort_connections()

    def describe(self) -> str:
        """One log line: every backend with its address and state."""
        return ", ".join(f"{b.id}={b.spec.host}:{b.spec.port} {b.health.state.value}"
                         for b in self._backends.values()) or "none"

    def status(self) -> dict:
        """Plain values per backend for `.status;`."""
        return {
            b.id: {"host": b.spec.host, "port": b.spec.port, "writable": b.spec.writable,
                   **b.health.snapshot(), "reads": b.reads, "writes": b.writes,
                   "outstanding": b.outstanding, "connections": len(b.connections)}
            for b in self._backends.values()}
