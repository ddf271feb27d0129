"""The idle timeout of one client connection (nodes/runtime/serving.py): one timer, re-armed lazily."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable


class IdleWatch:
    """Closes a connection that waited for its next request longer than its timeout.

    One timer per connection, re-armed only when it fires, instead of a
    timeout scheduled and cancelled around every request: the connection
    only notes when it starts and stops waiting.
    """

    def __init__(self, transport: asyncio.Transport, logger: logging.Logger,
                 peer: Callable[[], str]) -> None:
        self._transport = transport
        self._logger = logger
        self._peer = peer
        self._loop = asyncio.get_running_loop()
        self._timeout: float | None = None
        self._waiting_since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start_waiting(self, timeout: float | None) -> None:
        now = self._loop.time()
        self._waiting_since = now
        self._timeout = timeout
        if timeout is None:
            return
        due = now + timeout
        if self._timer is None or due < self._due:
            # A shorter timeout than the armed one (or none armed): arm anew.
            if self._timer is not None:
                self._timer.cancel()
            self._arm(due)

    def stop_waiting(self) -> None:
        self._waiting_since = None

    def _arm(self, due: float) -> None:
        self._due = due
        self._timer = self._loop.call_at(due, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self._timeout is None:
            return
        if self._waiting_since is None:  # busy with a request: check again later
            self._arm(self._loop.time() + self._timeout)
            return
        due = self._waiting_since + self._timeout
        if self._loop.time() < due:
            self._arm(due)
            return
        self._logger.info("closing idle connection from %s", self._peer())
        self._transport.close()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
