"""The load balancer's changing set of backends and which of them may take traffic.

`BackendPool` owns the `Backend` objects by id. `apply_specs` makes the set
equal to a new configuration while keeping the health and counters of the
backends that did not change. Evidence about a backend (a probe answered, a
connection error) goes through `record_success` / `record_failure`, which
feed its health state machine (nodes.health), log every transition, count
failovers and abort all connections of a backend that goes OFFLINE, so
requests stuck on a frozen server fail over at once.

A backend that refuses a new connection for want of room ("too many
connections": it is at its cap, its admitted sessions are fine) is not
sick: its health does not change (that would abort the sessions it does
serve), but for `BUSY_HOLD_S` new reads prefer the other backends
(`candidates`), each refusal is counted (`busy_refusals` in `.status;`) and
each crowded episode logged once. A backend added to a running balancer is
logged as joining, then ONLINE once its first probe answers.

Rights: each backend's last known rights generation (its answer to
`.rights;`, from the probes, from every `.rights;` a session asks, and
right after every account statement) is kept (`saw_rights`). A statement of
a logged-in account goes only to backends not known to be behind the
newest generation among the candidates (`candidates(rights_current=True)`):
a revoke acknowledged by one server is never answered by another that
replication has not brought it to yet. The newest one is always a
candidate, so this narrows the choice and never empties it.

Every routed statement asks for the candidates; they change only when a
backend's health moves, the configuration changes or a backend refuses
for want of room, so they are kept between those events (never while a
busy hold, which time ends, may apply).
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterator

from nodes.balancer.backend_config import BackendSpec
from nodes.balancer.backends import BUSY_PREFIX, Backend, BackendUnavailable
from nodes.balancer.health import JOINED, BackendHealth, BackendState, HealthPolicy, Transition

# After a backend refused a connection for want of room, new reads prefer
# the others this long (then it is tried again: connections come and go).
BUSY_HOLD_S = 2.0


class BackendPool:
    """Backends by id, with their health; the candidates for each kind of request."""

    def __init__(self, policy: HealthPolicy, logger: logging.Logger,
                 clock: Callable[[], float] = time.monotonic, secret: str | None = None,
                 tls: ssl.SSLContext | None = None):
        self.policy = policy
        self.secret = secret  # presented as `.auth` on every backend connection
        self.tls = tls
        self.log = logger
        self.clock = clock
        self.failovers = 0
        self._backends: dict[str, Backend] = {}
        # Removed by a reload, with connections still awaiting answers (`Backend.retire`).
        self._retiring: list[Backend] = []
        self._crowded = False   # some backend may still be within its busy hold
        # writable_only -> `_candidates(writable_only)`, while no health state,
        # configuration or busy hold changed since (`_forget_candidates`).
        self._kept_candidates: dict[bool, list[str]] = {}
        # Applies the backends file if it changed (set by nodes.prober; None: no file).
        self.reread_configuration: Callable[[], None] | None = None

    def __getitem__(self, backend_id: str) -> Backend:
        return self._backends[backend_id]

    def reach(self, backend_id: str) -> Backend:
        """The backend a statement is about to try; BackendUnavailable (nothing sent) once
        the backends file no longer lists it. A statement chose it before awaiting (an
        earlier backend's attempt, a freshness wait): a hot reload may have removed it
        meanwhile, and it is then unavailable like a dead one, never a KeyError."""
        try:
            return self._backends[backend_id]
        except KeyError:
            raise BackendUnavailable(backend_id, "removed from the backends file",
                                     sent=False) from None

    def __iter__(self) -> Iterator[Backend]:
        return iter(list(self._backends.values()))

    def __len__(self) -> int:
        return len(self._backends)

    def holds(self, backend: Backend) -> bool:
        """Whether `backend` is still configured (not removed or replaced meanwhile)."""
        return self._backends.get(backend.id) is backend

    def apply_specs(self, specs: list[BackendSpec]) -> None:
        """Make the backend set equal to `specs`, keeping state of unchanged ones."""
        try:
            self._apply_specs(specs)
        finally:
            self._forget_candidates()   # (after every change: nothing kept from midway)

    def _apply_specs(self, specs: list[BackendSpec]) -> None:
        wanted = {spec.id: spec for spec in specs}
        self._forget_retired()   # (else kept until `.status;` asks, reload after reload)
        for backend_id in list(self._backends):
            old = self._backends[backend_id]
            new = wanted.get(backend_id)
            if new is None or (new.host, new.port) != (old.spec.host, old.spec.port):
                self.log.info("backend %s removed (%s:%d)%s", backend_id, old.spec.host,
                              old.spec.port, f": {old.in_flight} request(s) on their way finish"
                              if old.in_flight else "")
                old.retire()
                self._retiring.append(old)
                del self._backends[backend_id]
            elif new != old.spec:
                if new.writable != old.spec.writable:
                    self.log.info("backend %s is now %s", backend_id,
                                  "writable" if new.writable else "read-only (catching up)")
                if new.lagging != old.spec.lagging:
                    self.log.info("backend %s %s", backend_id,
                                  "is lagging: reads go elsewhere while another answers"
                                  if new.lagging else "no longer lags: it takes reads")
                if new.unix_socket != old.spec.unix_socket:
                    # New connections only: the open ones stay as they are.
                    self.log.info("backend %s is now reached %s", backend_id,
                                  f"through the unix socket {new.unix_socket}"
                                  if new.unix_socket else "over TCP only")
                old.spec = new
        for backend_id, spec in wanted.items():
            if backend_id not in self._backends:
                self.log.info("backend %s joining (%s:%d): ONLINE once its first probe answers",
                              backend_id, spec.host, spec.port)
                # Unconfirmed until its first probe answers: SHUNNED gets no
                # traffic but turns ONLINE on one success.
                health = BackendHealth(backend_id, self.policy, self.clock, BackendState.SHUNNED,
                                       joining=True)
                self._backends[backend_id] = Backend(spec, health, secret=self.secret, tls=self.tls)

    def candidates(self, writable_only: bool = False, rights_current: bool = False) -> list[str]:
        """ONLINE backends; SHUNNED ones only as a last resort when none is ONLINE.

        `rights_current`: only those not known to be behind on the rights (an
        account's statement).
        """
        chosen = self._candidates(writable_only)
        if rights_current and len(chosen) > 1:
            known = [g for b in chosen
                     if (g := self._backends[b].rights_generation) is not None]
            if known:
                newest = max(known)
                chosen = [b for b in chosen
                          if (g := self._backends[b].rights_generation) is None or g >= newest]
        return chosen

    def saw_rights_answer(self, backend_id: str, generations: dict[str, int] | None) -> None:
        """`backend_id`'s decoded answer to `.rights;`: kept when it is one server's generation."""
        if generations is not None and len(generations) == 1:
            self.saw_rights(backend_id, next(iter(generations.values())))

    def saw_rights(self, backend_id: str, generation: int) -> None:
        """`backend_id` answered `.rights;` with `generation`."""
        backend = self._backends.get(backend_id)
        if backend is None:
            return
        backend.rights_generation = generation

    def _forget_candidates(self) -> None:
        """What the candidates depend on changed (or may have): work them out again."""
        self._kept_candidates.clear()

    def _candidates(self, writable_only: bool) -> list[str]:
        kept = self._kept_candidates.get(writable_only)
        if kept is not None:
            return list(kept)   # (a copy: callers own what they get)
        chosen = self._work_out_candidates(writable_only)
        if not self._crowded:   # (a busy hold ends with time, not with an event)
            self._kept_candidates[writable_only] = list(chosen)
        return chosen

    def _work_out_candidates(self, writable_only: bool) -> list[str]:
        eligible = [b for b in self._backends.values() if b.spec.writable or not writable_only]
        online = [b.id for b in eligible if b.health.state is BackendState.ONLINE]
        if not writable_only and len(online) > 1:
            # A backend the supervisor says lags (copies into it keep failing) may be
            # far behind: reads go to the others while one of them answers.
            current = [b for b in online if not self._backends[b].spec.lagging]
            if current:
                online = current
        if self._crowded and not writable_only and len(online) > 1:
            # Reads prefer the backends with room. Writes keep their owners
            # (a session connected to a crowded owner goes on writing there; a
            # new one is refused there and takes the next owner), and a
            # database is still created or dropped on every backend.
            roomy = self._roomy(online)
            if roomy:
                return roomy
        if online:
            return online
        return [b.id for b in eligible if b.health.state is BackendState.SHUNNED]

    def _roomy(self, backend_ids: list[str]) -> list[str]:
        """Those of `backend_ids` not within a busy hold (forgets that none is, once so)."""
        now = self.clock()
        roomy = [b for b in backend_ids if self._backends[b].busy_until <= now]
        if all(b.busy_until <= now for b in self._backends.values()):
            self._crowded = False
        return roomy

    def write_fallbacks(self, tried: list[str]) -> list[str]:
        """Writable backends, not in `tried`, to try when every candidate failed before
        anything was sent, once the backends file is re-read (a server the supervisor has
        just made writable again, after its catch-up): ONLINE ones, SHUNNED ones, then
        OFFLINE ones whose last probe was answered (back, not trusted yet: `rise` good
        probes in a row), then the other OFFLINE ones (restarted since their last probe,
        perhaps: one connection attempt each).

        Which server takes a write is a matter of preference, not of safety: every
        server certifies its writes against its peers' copies (docs/REPLICATION.md),
        and one catching up is not writable (its spec) and never offered. Without
        this, in a burst of kills the one server alive (restarted a moment ago) was
        passed over and the write refused with "no server can write now".
        """
        if self.reread_configuration is not None:
            self.reread_configuration()
        eligible = [b for b in self._backends.values()
                    if b.spec.writable and b.id not in tried]
        chosen = [b.id for b in eligible if b.health.state is BackendState.ONLINE]
        chosen += [b.id for b in eligible if b.health.state is BackendState.SHUNNED]
        offline = [b for b in eligible if b.health.state is BackendState.OFFLINE]
        rising = [b.id for b in offline if b.health.consecutive_successes >= 1]
        return chosen + rising + [b.id for b in offline if b.id not in rising]

    def online_writable(self) -> list[str]:
        """Backends that take writes right now, without the SHUNNED fallback."""
        return [b for b in self.candidates(writable_only=True)
                if self._backends[b].health.state is BackendState.ONLINE]

    def outstanding(self, backend_ids: list[str]) -> dict[str, int]:
        return {b: self._backends[b].outstanding for b in backend_ids}

    def record_success(self, backend: Backend, latency_s: float | None = None) -> None:
        self._record(backend, backend.health.record_success(latency_s))

    def record_failure(self, backend: Backend, reason: str) -> None:
        if reason.startswith(BUSY_PREFIX):
            self._record_busy(backend, reason)
            return
        self._record(backend, backend.health.record_failure(reason))

    def _record_busy(self, backend: Backend, reason: str) -> None:
        """`backend` refused a connection for want of room: prefer others for a while."""
        now = self.clock()
        if backend.busy_until <= now:
            self.log.warning("backend %s refuses new connections (%s): new requests go to the "
                             "other backends first for %g s at a time", backend.id,
                             reason.removeprefix(BUSY_PREFIX), BUSY_HOLD_S)
        backend.busy_refusals += 1
        backend.busy_until = now + BUSY_HOLD_S
        self._crowded = True
        self._forget_candidates()

    def _record(self, backend: Backend, transition: Transition | None) -> None:
        if transition is None:
            return
        self._forget_candidates()   # (a health state moved)
        if transition.reason == JOINED:
            self.log.info("backend %s joined: ONLINE (its first probe answered)",
                          transition.backend_id)
            return
        level = logging.INFO if transition.new is BackendState.ONLINE else logging.WARNING
        self.log.log(level, "backend %s: %s -> %s (%s)", transition.backend_id,
                     transition.old.value, transition.new.value, transition.reason)
        if transition.old is BackendState.ONLINE:
            self.failovers += 1
        if transition.new is BackendState.OFFLINE:
            # Requests stuck on a frozen server fail now and go elsewhere.
            backend.abort_connections()

    def retiring(self) -> dict[str, int]:
        """Backends a reload removed whose answers are still on their way: id -> how many
        requests (a supervisor stops such a server only once it is no longer here)."""
        self._forget_retired()
        retiring: dict[str, int] = {}
        for backend in self._retiring:
            retiring[backend.id] = retiring.get(backend.id, 0) + backend.in_flight
        return retiring

    def _forget_retired(self) -> None:
        """Drop the retiring backends whose connections have all closed."""
        self._retiring = [backend for backend in self._retiring if backend.connections]

    def describe(self) -> str:
        """One log line: every backend with its address and state."""
        return ", ".join(f"{b.id}={b.spec.host}:{b.spec.port} {b.health.state.value}"
                         for b in self._backends.values()) or "none"

    def status(self) -> dict:
        """Plain values per backend for `.status;`."""
        return {
            b.id: {"host": b.spec.host, "port": b.spec.port, "writable": b.spec.writable,
                   "lagging": b.spec.lagging, "unix_socket": b.spec.unix_socket,
                   **b.health.snapshot(), "reads": b.reads, "writes": b.writes,
                   "outstanding": b.outstanding, "connections": len(b.connections),
                   "busy_refusals": b.busy_refusals, "rights_generation": b.rights_generation,
                   "busy": b.busy_until > self.clock()}
            for b in self._backends.values()}
