"""Who gets a connection slot on a node: caps per peer address and on unauthenticated connections.

Every node counts its client connections here (`Admission`, one per
listening node, shared by its connections):

- per peer address: at most `max_per_address` open connections from one
  address (`admit`); the next one is refused with a "too many connections"
  error (`TOO_MANY_CONNECTIONS` words, which the load balancer treats as a
  backend problem) and closed. Loopback peers are exempt by default: every
  local user, and the cluster's own balancer and proxy (which carry many
  clients each), come from the same loopback address, so a cap on it would
  say nothing about who hogs the node; the node-wide cap covers them.
- unauthenticated connections (on a node that requires the secret): at most
  `max_unauthenticated` at once, counted apart from authenticated ones (the
  node's own `--max-connections` counts only authenticated connections: a
  connection is handed to the node once it has authenticated). When a new
  one would exceed the cap, the oldest unauthenticated connection is closed
  instead of refusing the newcomer: a real client authenticates within a
  round trip of connecting, so a flood of silent or slow-byte connections
  only evicts itself, and an authenticated client always gets in. Each one
  also has an absolute deadline from accept (`unauthenticated_deadline_s`),
  which bytes do not re-arm.

`alerts()` gives the short lines a node at a cap shows under "alerts" in its
`.status;` (refusals and evictions of the last minute). Pure bookkeeping: no
sockets; the connection (nodes/runtime/serving.py) asks and obeys.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from nodes.protocol import AUTH_TIMEOUT_S, is_local_peer

# How long a refusal or an eviction keeps its alert in `.status;`.
ALERT_WINDOW_S = 60.0


@dataclass(frozen=True)
class ConnectionLimits:
    """The connection caps of one node (docs/SECURITY.md, "Limits")."""

    max_per_address: int = 64
    per_address_on_loopback: bool = False
    max_unauthenticated: int = 64
    unauthenticated_deadline_s: float = AUTH_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.max_per_address < 1 or self.max_unauthenticated < 1:
            raise ValueError("connection caps must be at least 1")
        if self.unauthenticated_deadline_s <= 0:
            raise ValueError("the unauthenticated deadline must be positive")


DEFAULT_LIMITS = ConnectionLimits()


def add_connection_arguments(parser) -> None:
    """The caps' command-line options (every node: nodes/runtime/node_process.py)."""
    parser.add_argument("--max-connections-per-address", type=int,
                        default=DEFAULT_LIMITS.max_per_address,
                        help="open connections from one peer address (loopback exempt unless "
                             "--per-address-on-loopback)")
    parser.add_argument("--per-address-on-loopback", action="store_true",
                        help="apply --max-connections-per-address to loopback peers too")
    parser.add_argument("--max-unauthenticated", type=int,
                        default=DEFAULT_LIMITS.max_unauthenticated,
                        help="unauthenticated connections at once (the oldest makes room)")


def connection_limits(args) -> ConnectionLimits:
    """The limits a node's parsed command line asks for (SystemExit with the reason if invalid)."""
    try:
        return ConnectionLimits(max_per_address=args.max_connections_per_address,
                                per_address_on_loopback=args.per_address_on_loopback,
                                max_unauthenticated=args.max_unauthenticated)
    except ValueError as error:
        raise SystemExit(f"{args.id}: {error}") from None


class _Recent:
    """Times of one kind of event within the alert window (bounded)."""

    def __init__(self) -> None:
        self.times: deque[float] = deque(maxlen=100_000)
        self.total = 0

    def add(self, now: float) -> None:
        self.times.append(now)
        self.total += 1

    def count(self, now: float) -> int:
        times = self.times
        while times and times[0] <= now - ALERT_WINDOW_S:
            times.popleft()
        return len(times)


class Admission:
    """One node's connection counts per address and of unauthenticated connections."""

    def __init__(self, limits: ConnectionLimits = DEFAULT_LIMITS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._per_address: dict[str, int] = {}
        self._unauthenticated: OrderedDict[Hashable, None] = OrderedDict()  # oldest first
        self._address_refusals = _Recent()
        self._node_refusals = _Recent()
        self._evictions = _Recent()
        self._refused_addresses: dict[str, float] = {}   # address -> last refusal

    # -- per address

    def admit(self, address: str) -> bool:
        """Count a new connection from `address`; False (not counted) when that address is at its cap."""
        if not self.limits.per_address_on_loopback and is_local_peer(address):
            return True
        count = self._per_address.get(address, 0)
        if count >= self.limits.max_per_address:
            now = self._clock()
            self._address_refusals.add(now)
            if len(self._refused_addresses) > 1000:
                self._refused_addresses.clear()
            self._refused_addresses[address] = now
            return False
        self._per_address[address] = count + 1
        return True

    def release(self, address: str) -> None:
        """A connection counted by `admit` ended."""
        count = self._per_address.get(address)
        if count is None:
            return   # exempt (loopback) or never counted
        if count <= 1:
            del self._per_address[address]
        else:
            self._per_address[address] = count - 1

    def from_address(self, address: str) -> int:
        return self._per_address.get(address, 0)

    # -- unauthenticated connections

    def enter_unauthenticated(self, connection: Hashable) -> Hashable | None:
        """A new unauthenticated connection; the oldest one to close to make room, if any."""
        evicted = None
        if len(self._unauthenticated) >= self.limits.max_unauthenticated:
            evicted, _ = self._unauthenticated.popitem(last=False)
            self._evictions.add(self._clock())
        self._unauthenticated[connection] = None
        return evicted

    def leave_unauthenticated(self, connection: Hashable) -> None:
        """Authenticated, or gone."""
        self._unauthenticated.pop(connection, None)

    @property
    def unauthenticated(self) -> int:
        return len(self._unauthenticated)

    # -- the node's own cap

    def node_refused(self) -> None:
        """The node refused a connection at its own cap (`--max-connections`)."""
        self._node_refusals.add(self._clock())

    # -- reporting

    def status(self) -> dict:
        return {"unauthenticated_connections": len(self._unauthenticated),
                "unauthenticated_evicted": self._evictions.total,
                "refused_per_address": self._address_refusals.total}

    def alerts(self) -> list[str]:
        """One short line per cap that turned connections away in the last minute."""
        now = self._clock()
        alerts = []
        window = f"{ALERT_WINDOW_S:g} s"
        refused = self._node_refusals.count(now)
        if refused:
            alerts.append(f"at its connection cap: {refused} connection(s) refused "
                          f"in the last {window}")
        refused = self._address_refusals.count(now)
        if refused:
            addresses = sorted(a for a, t in self._refused_addresses.items()
                               if t > now - ALERT_WINDOW_S)
            shown = ", ".join(addresses[:3]) + (" ..." if len(addresses) > 3 else "")
            alerts.append(f"at its cap of {self.limits.max_per_address} connections per address "
                          f"({shown}): {refused} refused in the last {window}")
        evicted = self._evictions.count(now)
        if evicted:
            alerts.append(f"at its cap of {self.limits.max_unauthenticated} unauthenticated "
                          f"connections: {evicted} closed to make room in the last {window}")
        return alerts
