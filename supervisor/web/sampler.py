"""Take `ClusterView`s of the running cluster, in the supervisor's event loop.

Every `interval_s` (1 s) the sampler takes a full view: the status rows
(`Cluster.status()`, what `./tahiry status` shows, which hands over every
RUNNING node's whole `.status;` answer: one probe per node) and the
replicator's figures. Between two full views it looks, every
`watch_s` (0.2 s), at the keepers' states in memory (no I/O): a node that
changed state (killed, restarted, FATAL) triggers a full view at once, so
the page shows a change within a fraction of a second while the nodes are
probed at most once a second. Subscribers (the page's event streams) wait
on `changed()`; the latest view and the chart history are kept for them and
for /metrics.

Nothing here is on the request path: a node answers `.status;` on its event
loop from plain counters it keeps anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..cluster import Cluster
from ..keeper import cancel_until_done
from .view import ClusterView, History


class Sampler:
    """The latest `ClusterView`, its history, and a way to wait for the next one."""

    def __init__(self, cluster: Cluster, supervisor_info: Callable[[], dict],
                 logger: logging.Logger, interval_s: float = 1.0, watch_s: float = 0.2):
        self.cluster = cluster
        self.supervisor_info = supervisor_info
        self.logger = logger
        self.interval_s = interval_s
        self.watch_s = watch_s
        self.latest: ClusterView | None = None
        self.history = History()
        self._generation = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task | None = None

    @property
    def generation(self) -> int:
        """How many views were taken (a subscriber compares it with the one it has)."""
        return self._generation

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="web-sampler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_until_done(task)   # (its status probes may swallow one cancel)
        async with self._changed:
            self._changed.notify_all()  # subscribers see no new view and end

    async def changed(self, seen: int, timeout_s: float) -> bool:
        """Wait until a view newer than generation `seen` exists (False at the timeout)."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self._generation != seen or not self.running),
                    timeout_s)
            except TimeoutError:
                return False
        return self._generation != seen

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            try:
                await self.take()
            except asyncio.CancelledError:
                raise
            except Exception:  # the page must never take the supervisor down
                self.logger.exception("status page: taking a view of the cluster failed")
            states = self._states()
            deadline = time.monotonic() + self.interval_s
            while time.monotonic() < deadline:
                await asyncio.sleep(min(self.watch_s, max(0.0, deadline - time.monotonic())))
                if self._states() != states:
                    break  # a node changed state: show it now

    def _states(self) -> dict[str, tuple[str, int | None]]:
        return {node_id: (keeper.state.value, keeper.pid)
                for node_id, keeper in list(self.cluster.keepers.items())}

    async def take(self) -> ClusterView:
        """A full view now; it becomes the latest and a point of the history."""
        statuses: dict[str, dict] = {}   # every running node's `.status;`, probed once
        rows = await self.cluster.status(statuses)
        view = ClusterView(taken_at=time.time(), supervisor=self.supervisor_info(), rows=rows,
                           nodes=statuses, replication=self.cluster.replication.stats())
        self.latest = view
        self.history.add(view)
        async with self._changed:
            self._generation += 1
            self._changed.notify_all()
        return view
