"""Backend health as a pure state machine: ONLINE, SHUNNED, OFFLINE.

The load balancer feeds it two kinds of evidence: the result of each active
probe (`.ping;` answered in time or not) and the errors its own traffic runs
into (connection refused or reset, timeouts). No sockets and no real clock
here: the clock is injected so tests drive time by hand.

    ONLINE  --failure-->          SHUNNED  (at once: new requests avoid it)
    SHUNNED --success-->          ONLINE   (it was only suspected)
    SHUNNED --`fall` failures-->  OFFLINE  (counted from the first failure)
    OFFLINE --`rise` successes--> ONLINE   (consecutive; a failure restarts the count)

So a server that dies is skipped from the first error a request or a probe
meets, which is at most one probe interval after its death; it is declared
OFFLINE after `fall` consecutive failures and used again only after `rise`
consecutive good probes, so a server that flaps is not trusted at once.
Only ONLINE backends receive traffic. A backend added to a running
balancer starts SHUNNED and `joining`: its first success is reported as
JOINED (it joined), not as "answered again".
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

# The reason of a joining backend's first move to ONLINE.
JOINED = "joined"


class BackendState(enum.Enum):
    ONLINE = "ONLINE"
    SHUNNED = "SHUNNED"
    OFFLINE = "OFFLINE"


@dataclass(frozen=True)
class HealthPolicy:
    """How many consecutive results flip a backend (like HAProxy's rise/fall)."""

    rise: int = 2
    fall: int = 2

    def __post_init__(self) -> None:
        if self.rise < 1 or self.fall < 1:
            raise ValueError("rise and fall must be at least 1")


@dataclass(frozen=True)
class Transition:
    """A change of state, returned so the caller can log and count it."""

    backend_id: str
    old: BackendState
    new: BackendState
    reason: str


class BackendHealth:
    """The health of one backend, driven by probe results and traffic errors."""

    def __init__(self, backend_id: str, policy: HealthPolicy,
                 clock: Callable[[], float] = time.monotonic,
                 initial: BackendState = BackendState.ONLINE, joining: bool = False):
        self.backend_id = backend_id
        self.joining = joining   # never answered yet: its first success is a join
        self.policy = policy
        self._clock = clock
        self.state = initial
        self.since = clock()
        self.consecutive_failures = 0
        self.consecutive_successes = 0
        self.last_error: str | None = None
        self.last_latency_s: float | None = None

    @property
    def routable(self) -> bool:
        return self.state is BackendState.ONLINE

    def record_success(self, latency_s: float | None = None) -> Transition | None:
        """A probe was answered in time (or a request succeeded)."""
        if latency_s is not None:
            self.last_latency_s = latency_s
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        if self.state is BackendState.SHUNNED:
            if self.joining:
                self.joining = False
                return self._move(BackendState.ONLINE, JOINED)
            return self._move(BackendState.ONLINE, "answered again")
        if self.state is BackendState.OFFLINE and self.consecutive_successes >= self.policy.rise:
            return self._move(BackendState.ONLINE,
                              f"{self.consecutive_successes} good probes in a row")
        return None

    def record_failure(self, reason: str) -> Transition | None:
        """A probe failed or timed out, or traffic hit a connection error."""
        self.last_error = reason
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        if self.state is BackendState.OFFLINE:
            return None
        if self.consecutive_failures >= self.policy.fall:
            return self._move(BackendState.OFFLINE, reason)
        if self.state is BackendState.ONLINE:
            return self._move(BackendState.SHUNNED, reason)
        return None

    def seconds_in_state(self) -> float:
        return self._clock() - self.since

    def snapshot(self) -> dict:
        """Plain values for `.status;`."""
        return {
            "state": self.state.value,
            "for_s": round(self.seconds_in_state(), 3),
            "consecutive_failures": self.consecutive_failures,
            "consecutive_successes": self.consecutive_successes,
            "last_error": self.last_error,
            "last_latency_ms": (None if self.last_latency_s is None
                                else round(self.last_latency_s * 1000, 3)),
        }

    def _move(self, new: BackendState, reason: str) -> Transition:
        old = self.state
        self.state = new
        self.since = self._clock()
        return Transition(self.backend_id, old, new, reason)
