"""Nodes another machine runs: probed, never started (supervisor/machine.py says which).

A `RemoteNode` sends `.ping;` (with the secret) every health interval and
keeps the outcome, so that `status` and the status page show every node of
the cluster: a remote node is REMOTE while it answers, UNREACHABLE once
`fall` probes in a row failed (as a keeper counts them). Its pid, restarts
and log belong to its own machine's supervisor (`./tahiry status` there).
Nothing waits on a remote node: a local proxy cache whose balancer is
remote starts at once and retries its upstream like any proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

from .keeper import probe_response
from .topology import HealthSettings, NodeSpec

REMOTE = "REMOTE"            # another machine runs it, and it answers
UNREACHABLE = "UNREACHABLE"  # another machine runs it, and it does not answer


class RemoteNode:
    """Probe loop and last outcome of one node another machine runs."""

    def __init__(self, spec: NodeSpec, health: HealthSettings, secret: str | None,
                 tls: ssl.SSLContext | None = None):
        self.spec = spec
        self.health = health
        self.secret = secret
        self.tls = tls
        self.state = UNREACHABLE
        self.probe_ms: float | None = None
        self.last_error: str | None = None
        self._failures = 0
        self._seen = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._probe_loop(), name=f"remote-{self.spec.id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def probe_once(self) -> None:
        started = time.monotonic()
        try:
            await probe_response(self.spec.host, self.spec.port,
                                 self.health.timeout_ms / 1000, b".ping;", self.secret, self.tls)
        except (TimeoutError, OSError) as error:
            self._failures += 1
            self.last_error = str(error) or type(error).__name__
            if self._failures >= self.health.fall or not self._seen:
                self.state, self.probe_ms = UNREACHABLE, None
            return
        self._failures, self._seen, self.last_error = 0, True, None
        self.state, self.probe_ms = REMOTE, (time.monotonic() - started) * 1000

    async def _probe_loop(self) -> None:
        while True:
            await self.probe_once()
            await asyncio.sleep(self.health.interval_ms / 1000)

    def snapshot(self) -> dict:
        """A status row, shaped like a keeper's (no pid, restarts or uptime: not ours)."""
        return {"node": self.spec.id, "kind": self.spec.kind, "address": self.spec.address,
                "pid": None, "state": self.state, "uptime_s": None, "restarts": None,
                "manual_restarts": None, "probe_ms": self.probe_ms, "remote": True,
                "last_exit": None if self.state == REMOTE
                else f"another machine runs it; it does not answer ({self.last_error})"}
