"""The shared secret: who must present `.auth <secret>;` and how it is checked.

A node that listens on a non-loopback address (or was started with
`--require-secret`) requires, as the first request on every connection,
`.auth <secret>;`. Anything else first is answered with an "authentication
required" error and the connection is closed; a wrong secret likewise
(after a short delay, and logged at most once a second). A loopback-only
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
from collections.abc import Mapping
from dataclasses import dataclass

from engine.errors import ERROR_PREFIX
from nodes.protocol.wire import ADMIN_AUTH, Request, auth_secret, encode_message, secret_problem

SECRET_ENV = "TAHIRY_SECRET"
AUTH_TIMEOUT_S = 10.0          # an unauthenticated connection gets this long to say `.auth`
FAILED_AUTH_DELAY_S = 0.25     # slows guessing on one connection down
LOG_INTERVAL_S = 1.0           # at most one "wrong secret" log line per interval

AUTH_OK = "Voamarina ny tenimiafina (authenticated)"
AUTH_NOT_NEEDED = "Tsy ilaina ny tenimiafina eto (loopback node: authentication not required)"
AUTH_REQUIRED = (ERROR_PREFIX + "Mila tenimiafina ity node ity (authentication required): "
                 "send `.auth <secret>;` first (TAHIRY_SECRET or --secret on the client)")
AUTH_WRONG = ERROR_PREFIX + "Diso ny tenimiafina (wrong secret): connection closed"


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (or `localhost`)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        self._last_log = 0.0
        self._unlogged = 0

    def status(self) -> dict:
        return {"auth_required": self.required, "auth_failures": self.failures}

    @property
    def first_timeout(self) -> float:
        """Seconds an unauthenticated connection may stay silent."""
        return AUTH_TIMEOUT_S

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
        if self.matches(auth_secret(request)):
            return Verdict(encode_message(AUTH_OK), authenticated=True)
        self._failed(peer, "wrong secret")
        await asyncio.sleep(FAILED_AUTH_DELAY_S)
        return Verdict(encode_message(AUTH_WRONG), close=True)

    def _failed(self, peer: str, why: str) -> None:
        self.failures += 1
        now = time.monotonic()
        if now - self._last_log < LOG_INTERVAL_S:
            self._unlogged += 1
            return
        extra = f" ({self._unlogged} more refused since the last line)" if self._unlogged else ""
        self.logger.warning("refused connection from %s: %s%s", peer, why, extra)
        self._last_log, self._unlogged = now, 0


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
    if required and not secret:
        reason = ("--require-secret was given" if getattr(args, "require_secret", False)
                  else f"it listens on {args.host}, which is not a loopback address")
        raise SystemExit(f"{args.id}: refusing to start: {reason}, so it needs a shared secret "
                         f"(set {SECRET_ENV} or 'secret' in the topology)")
    return AuthGuard(secret, required, logger)
