"""The shared secret: who must present `.auth <secret>;` and how it is checked.

A node that listens on a non-loopback address (or was started with
`--require-secret`) requires, as the first request on every connection,
`.auth <secret>;`. Anything else first is answered with an "authentication
required" error and the connection is closed; a wrong secret likewise
(after a short delay, and logged at most once a second). Guessing is rate
limited (`AuthLimiter`): an address off loopback that failed too often is
locked out for a while, and while failures come fast anywhere every
attempt waits its turn at a node-wide rate; each lock-out and each such
episode is logged once. A loopback-only
node needs nothing and answers `.auth` harmlessly, so clients holding a
secret may always send it. A node reads the secret from the TAHIRY_SECRET
environment variable (the supervisor sets it from the topology's top-level
`secret`), never from the command line (where `ps` would show it). See docs/SECURITY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from engine.errors import ERROR_PREFIX
from nodes.protocol.wire import ADMIN_AUTH, Request, auth_secret, encode_message, secret_problem

# The same rule as the supervisor's `check` (supervisor/topology.py MIN_SECRET_CHARS):
# a node listening off loopback refuses a shorter secret.
MIN_SECRET_CHARS = 16

SECRET_ENV = "TAHIRY_SECRET"
AUTH_TIMEOUT_S = 10.0          # an unauthenticated connection is closed this long after accept
FAILED_AUTH_DELAY_S = 0.25     # slows guessing on one connection down
LOG_INTERVAL_S = 1.0           # at most one "wrong secret" log line per interval

AUTH_OK = "Voamarina ny tenimiafina (authenticated)"
AUTH_NOT_NEEDED = "Tsy ilaina ny tenimiafina eto (loopback node: authentication not required)"
AUTH_REQUIRED = (ERROR_PREFIX + "Mila tenimiafina ity node ity (authentication required): "
                 "send `.auth <secret>;` first (TAHIRY_SECRET or --secret on the client)")
AUTH_WRONG = ERROR_PREFIX + "Diso ny tenimiafina (wrong secret): connection closed"
AUTH_LOCKED = (ERROR_PREFIX + "Voasakana vetivety (locked out): too many failed authentications "
               "from this address; try again in {seconds} s")
AUTH_BUSY = (ERROR_PREFIX + "Be loatra ny fanandramana tenimiafina (too many authentication "
             "attempts on this node right now): connection closed, try again later")


@dataclass(frozen=True)
class AuthRates:
    """How fast the secret may be guessed (docs/SECURITY.md, "Limits")."""

    per_address_failures: int = 10      # failures from one address (off loopback) in the window...
    window_s: float = 60.0
    lockout_s: float = 60.0             # ... lock it out this long (attempts refused unchecked)
    global_failures_per_s: float = 20.0  # failures node-wide faster than this start the throttle:
    throttle_s: float = 10.0            # for this long after the last failure, attempts (good or
    max_wait_s: float = 5.0             # bad) are checked one at a time at that rate, each
                                        # waiting at most this long (then refused, busy)


@dataclass
class AuthLimiter:
    """The rate limits on guessing the secret: pure, with an injected clock.

    `admit(address)` before checking an attempt: None (refused: locked out,
    with `locked_for`), or the seconds to wait first (0 at once).
    `failed(address)` after a wrong one. Log lines are returned by `events()`
    once per lock-out and per throttling episode, never per attempt.
    Loopback addresses are never locked out (every local user, and the
    cluster's own balancer and proxy, share them); they are throttled like
    everyone while failures come fast.
    """

    rates: AuthRates = field(default_factory=AuthRates)
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque] = field(default_factory=dict)
    _locked: dict[str, float] = field(default_factory=dict)
    _recent: deque = field(default_factory=deque)        # failure times within 1 s, node-wide
    _throttled_until: float = 0.0
    _next_slot: float = 0.0
    _events: list[str] = field(default_factory=list)
    lockouts: int = 0
    throttled: int = 0

    def locked_for(self, address: str) -> float:
        until = self._locked.get(address)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._locked[address]
            return 0.0
        return left

    def admit(self, address: str) -> float | None:
        if self.locked_for(address) > 0:
            return None
        now = self.clock()
        if now >= self._throttled_until:
            return 0.0
        # Throttled: one attempt per 1/rate seconds, in arrival order.
        slot = max(now, self._next_slot)
        wait = slot - now
        if wait > self.rates.max_wait_s:
            return None
        self._next_slot = slot + 1.0 / self.rates.global_failures_per_s
        self.throttled += 1
        return wait

    def failed(self, address: str, loopback: bool) -> None:
        now = self.clock()
        rates = self.rates
        recent = self._recent
        recent.append(now)
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        if len(recent) > rates.global_failures_per_s:
            if now >= self._throttled_until:
                self._events.append(
                    f"failed authentications faster than {rates.global_failures_per_s:g}/s: "
                    f"every attempt now waits its turn at that rate (until {rates.throttle_s:g} s "
                    f"after the last failure)")
                self._next_slot = now
            self._throttled_until = now + rates.throttle_s
        elif now < self._throttled_until:
            self._throttled_until = now + rates.throttle_s
        if loopback:
            return
        times = self._failures.setdefault(address, deque())
        times.append(now)
        while times and times[0] <= now - rates.window_s:
            times.popleft()
        if len(times) >= rates.per_address_failures and address not in self._locked:
            self._locked[address] = now + rates.lockout_s
            self.lockouts += 1
            del self._failures[address]
            self._events.append(
                f"{address} locked out for {rates.lockout_s:g} s: {len(times)} failed "
                f"authentications within {rates.window_s:g} s")
        if len(self._failures) > 10_000:   # bounded: forget the quietest addresses
            for stale in [a for a, t in self._failures.items() if t[-1] <= now - rates.window_s]:
                del self._failures[stale]

    def events(self) -> list[str]:
        """The log lines due since the last call (each lock-out, each throttling episode: once)."""
        events, self._events = self._events, []
        return events

    def status(self) -> dict:
        now = self.clock()
        return {"auth_lockouts": self.lockouts, "auth_locked_addresses": len(
                    [a for a, until in self._locked.items() if until > now]),
                "auth_throttled": now < self._throttled_until}


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or `localhost`)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# The peer address of a connection that came through a node's Unix socket
# (nodes/runtime/unix_socket.py): it has no IP address, and it is local.
UNIX_SOCKET_PEER = "unix-socket"


def is_local_peer(address: str) -> bool:
    """Whether a client's address is this machine: loopback, or the node's Unix socket.

    A Unix socket peer is held to what a loopback one is (exempt from the
    per-address caps and lock-outs): only this machine's processes reach the
    socket, and its mode lets only the cluster's user in.
    """
    return address == UNIX_SOCKET_PEER or is_loopback(address)


def secret_from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if environ is None else environ).get(SECRET_ENV, "")
    return value or None


@dataclass(frozen=True)
class Verdict:
    """What to do with one request while authentication matters."""

    response: bytes
    close: bool = False
    authenticated: bool = False


class AuthGuard:
    """One node's secret policy and its failure counters (shared by all its connections)."""

    def __init__(self, secret: str | None, required: bool, logger: logging.Logger | None = None):
        if required and not secret:
            raise ValueError("a secret is required but none was given")
        self.secret = secret
        self.required = required
        self.logger = logger or logging.getLogger(__name__)
        self.failures = 0
        self.checked = 0      # secrets compared (what a guesser learns from), right or wrong
        self._last_log = 0.0
        self._unlogged = 0
        self.limiter = AuthLimiter()

    def status(self) -> dict:
        return {"auth_required": self.required, "auth_failures": self.failures,
                "auth_checked": self.checked, **self.limiter.status()}

    def matches(self, presented: str) -> bool:
        if not self.secret:
            return False
        return hmac.compare_digest(presented.encode("utf-8", "surrogateescape"),
                                   self.secret.encode("utf-8"))

    async def answer(self, request: Request, authenticated: bool, peer: str) -> Verdict:
        """The answer to an `.auth` request, or to any request before authentication."""
        if request.admin != ADMIN_AUTH:
            # Only reached while not authenticated on a node that requires it.
            self._failed(peer, "no .auth first")
            return Verdict(encode_message(AUTH_REQUIRED), close=True)
        if not self.required:
            if self.secret and self.matches(auth_secret(request)):
                return Verdict(encode_message(AUTH_OK), authenticated=True)
            return Verdict(encode_message(AUTH_NOT_NEEDED), authenticated=True)
        address = peer_address(peer)
        wait = self.limiter.admit(address)
        if wait is None:
            self.failures += 1
            locked = self.limiter.locked_for(address)
            if locked > 0:
                return Verdict(encode_message(AUTH_LOCKED.format(seconds=int(locked) + 1)),
                               close=True)
            return Verdict(encode_message(AUTH_BUSY), close=True)
        if wait:
            await asyncio.sleep(wait)
        self.checked += 1
        if self.matches(auth_secret(request)):
            return Verdict(encode_message(AUTH_OK), authenticated=True)
        self.limiter.failed(address, is_local_peer(address))
        self._failed(peer, "wrong secret")
        await asyncio.sleep(FAILED_AUTH_DELAY_S)
        return Verdict(encode_message(AUTH_WRONG), close=True)

    def _failed(self, peer: str, why: str) -> None:
        for event in self.limiter.events():
            self.logger.warning("authentication limit: %s", event)
        self.failures += 1
        now = time.monotonic()
        if now - self._last_log < LOG_INTERVAL_S:
            self._unlogged += 1
            return
        extra = f" ({self._unlogged} more refused since the last line)" if self._unlogged else ""
        self.logger.warning("refused connection from %s: %s%s", peer, why, extra)
        self._last_log, self._unlogged = now, 0


def peer_address(peer: str) -> str:
    """The address part of `host:port` (IPv6 `[a::b]:port` or `a::b:port` too)."""
    host = peer.rpartition(":")[0] or peer
    return host.strip("[]")


async def answer_auth(guard: AuthGuard | None, request: Request, authenticated: bool,
                      peer: str) -> Verdict:
    """`AuthGuard.answer`, with no guard meaning a loopback node that has no secret."""
    if guard is None:
        return Verdict(encode_message(AUTH_NOT_NEEDED), authenticated=True)
    return await guard.answer(request, authenticated, peer)


# --------------------------------------------------------------------------
# Node command line


def add_auth_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--require-secret", action="store_true",
        help=f"require `.auth <secret>;` even on a loopback address (the secret comes from "
             f"{SECRET_ENV}, which the supervisor sets from the topology; never from the command line)")


def node_auth_guard(args: argparse.Namespace, logger: logging.Logger,
                    environ: Mapping[str, str] | None = None) -> AuthGuard:
    """The guard for a node started with `args`.

    Exits with a clear message when a secret is required but missing or unusable.
    """
    secret = secret_from_environment(environ)
    required = bool(getattr(args, "require_secret", False)) or not is_loopback(args.host)
    if secret is not None and (problem := secret_problem(secret)) is not None:
        raise SystemExit(f"{args.id}: unusable secret: {problem}")
    if secret is not None and len(secret) < MIN_SECRET_CHARS and not is_loopback(args.host):
        raise SystemExit(f"{args.id}: refusing to start: the secret is too weak: {len(secret)} "
                         f"character(s), a node listening off loopback ({args.host}) needs at "
                         f"least {MIN_SECRET_CHARS}")
    if required and not secret:
        reason = ("--require-secret was given" if getattr(args, "require_secret", False)
                  else f"it listens on {args.host}, which is not a loopback address")
        raise SystemExit(f"{args.id}: refusing to start: {reason}, so it needs a shared secret "
                         f"(set {SECRET_ENV} or 'secret' in the topology)")
    return AuthGuard(secret, required, logger)
