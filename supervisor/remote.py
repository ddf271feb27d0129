"""Nodes another machine runs: probed, never started (supervisor/machine.py says which).

A `RemoteNode` sends `.ping;` (with the secret) every health interval and
keeps the outcome, so that `status` and the status page show every node of
the cluster: a remote node is REMOTE while it answers, UNREACHABLE once
`fall` probes in a row failed (as a keeper counts them). Its pid, restarts
and log belong to its own machine's supervisor (`./tahiry status` there).
Nothing waits on a remote node: a local proxy cache whose balancer is
remote starts at once and retries its upstream like any proxy.

What the other machine's own supervisor says about its nodes (state, pid,
restarts, uptime, last exit, alerts, replication figures) is asked by
`MachineReports` when a status is made: one `status` request (scope
"machine": its own nodes only, so two supervisors never ask each other in a
loop) per other machine, over the control channel (supervisor/control.py
`ask_remote`: the secret, TLS when configured), at most once a second, and
merged into each remote row as `reported` (or `report_error`: why that
supervisor could not tell).
"""

from __future__ import annotations

import asyncio
import ssl
import time

from .control import NotRunning, VersionMismatch, ask_remote
from .keeper import cancel_until_done, probe_response
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
            # (Its probe runs under wait_for, which may swallow one cancellation.)
            await cancel_until_done(task)

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


# What a remote row takes from its own supervisor's row.
REPORTED_FIELDS = ("state", "pid", "uptime_s", "restarts", "manual_restarts", "last_exit",
                   "alerts", "writable", "repl_lag_p50_ms", "repl_lag_p99_ms", "repl_conflicts",
                   "repl_health", "storage_faults", "hit_ratio", "write_lease")
REPORT_TIMEOUT_S = 2.0
REPORT_MAX_AGE_S = 1.0


class MachineReports:
    """What the other machines' supervisors report about their own nodes, asked on demand.

    `hosts`: the host of each remote node; one request per distinct host
    (a machine's supervisor listens on the control port at its nodes'
    addresses). A report younger than REPORT_MAX_AGE_S is reused, and
    callers that come while one is asked share it.
    """

    def __init__(self, port: int, secret: str | None, tls: ssl.SSLContext | None):
        self.port = port
        self.secret = secret
        self.tls = tls
        self._reports: dict[str, tuple[float, dict]] = {}
        self._asking: dict[str, asyncio.Task] = {}

    async def merge(self, rows: list[dict], hosts: dict[str, str]) -> None:
        """Add `reported` (or `report_error`) to each remote row (`hosts`: node -> host)."""
        wanted = sorted({hosts[row["node"]] for row in rows if row.get("remote")
                         and row["node"] in hosts})
        reports = dict(zip(wanted, await asyncio.gather(*(self._report(host) for host in wanted)),
                           strict=True))
        for row in rows:
            host = hosts.get(row["node"])
            if not row.get("remote") or host not in reports:
                continue
            report = reports[host]
            if "error" in report:
                row["report_error"] = report["error"]
                continue
            theirs = report["nodes"].get(row["node"])
            if theirs is None:
                row["report_error"] = (f"the supervisor on {host} does not run {row['node']} "
                                       "(another topology there?)")
            else:
                row["reported"] = {key: theirs.get(key) for key in REPORTED_FIELDS
                                   if key in theirs}

    async def _report(self, host: str) -> dict:
        known = self._reports.get(host)
        if known is not None and time.monotonic() - known[0] < REPORT_MAX_AGE_S:
            return known[1]
        task = self._asking.get(host)
        if task is None:
            task = self._asking[host] = asyncio.create_task(self._ask(host))
            task.add_done_callback(lambda _: self._asking.pop(host, None))
        return await asyncio.shield(task)

    async def _ask(self, host: str) -> dict:
        try:
            answer = await ask_remote(host, self.port, {"cmd": "status", "scope": "machine"},
                                      self.secret, self.tls, REPORT_TIMEOUT_S)
        except (NotRunning, VersionMismatch) as error:
            report: dict = {"error": str(error)}
        else:
            if not answer.get("ok"):
                report = {"error": f"the supervisor on {host} refused: {answer.get('error')}"}
            else:
                report = {"nodes": {row.get("node"): row for row in answer.get("nodes") or []
                                    if isinstance(row, dict)}}
        self._reports[host] = (time.monotonic(), report)
        return report
