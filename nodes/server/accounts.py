"""Accounts on a server: `.login`, the gate before it, `.rights;`, and the counts per account.

A server started with `--accounts` answers, on a connection that has not
logged in, only `.auth`, `.login`, `.ping` and `.status`
(`ServerAccounts.refusal` gives the error for anything else). A `.login`
is checked by the engine's `verify_login` (scrypt, tens of ms) on a worker
thread of its own, never on the event loop nor on the engine thread, and
on success sets the connection's engine `Session.identity`; its
connection handles the rate limits, the log of refusals and the close
(nodes/runtime/serving.py, nodes/protocol/login.py). Without `--accounts`
a login is answered "not needed" and changes nothing: the DirkDB Java
client and every existing script work as before.

A statement that sets a password (`manamboara mpampiasa`, `ovay ny
tenimiafina`) has it hashed by `hash_ahead` on a password thread of its
own before the statement goes to the engine thread (nodes/server/node.py):
scrypt never runs inside a group commit, where it would hold every other
client's statements. Separate from the login threads: a class's accounts
being created do not delay the students' logins behind them.

At start, when TAHIRY_ADMIN_USER and TAHIRY_ADMIN_PASSWORD are in the
environment, `first_admin_from_environment` creates the administrator
account if no account exists yet (the engine's `ensure_first_admin`) and
takes both out of the environment.

`.status;` carries `accounts`: per account name, the logins, the refused
logins and the sessions open now (counts only), but only for a session
logged in as an administrator or a request carrying the supervisor's status
token (`.status <token>;`, nodes/protocol/status_token.py): `.status;` is
answered before a login, and the names alone tell who has an account.
Refused logins naming no account are counted apart
(`login_failures_unknown`), never by name (the table would grow with every
name tried).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nodes.protocol import (
    ALLOWED_BEFORE_LOGIN,
    LOGIN_MALFORMED,
    LOGIN_NOT_NEEDED,
    LOGIN_OK,
    LOGIN_REFUSED,
    LOGIN_REQUIRED,
    STOP_ACCOUNTS_OFF,
    STOP_MALFORMED,
    STOP_NO_ACCOUNT,
    STOP_REFUSED,
    STOPPED,
    Request,
    encode_message,
    encode_rights,
    login_arguments,
    stop_name,
)
from nodes.protocol.status_token import carries_token

ADMIN_USER_ENV = "TAHIRY_ADMIN_USER"
ADMIN_PASSWORD_ENV = "TAHIRY_ADMIN_PASSWORD"
MAX_COUNTED_NAMES = 1000
OTHER_NAMES = "(other)"
LOGIN_THREADS = 2
PASSWORD_THREADS = 2   # scrypt releases the GIL: two hashes at once, 16 MiB each


@dataclass(frozen=True)
class AccountsEngine:
    """The engine's accounts API as the server uses it (docs/ARCHITECTURE.md, issue 17)."""

    verify_login: Callable[[Any, str, str], Any]        # (store, name, password) -> Identity | None
    ensure_first_admin: Callable[..., bool]   # (store, name, password[, stored form]) -> created
    rights_generation: Callable[[Any], int]
    account_exists: Callable[[Any, str], bool] = lambda store, name: False
    hash_ahead: Callable[[str], Any] = lambda password: _hash_ahead(password)  # -> PasswordHash
    # (store, identity) -> the error of a session whose login no longer holds, or None
    login_problem: Callable[[Any, Any], str | None] = lambda store, identity: None
    # (store, identity) -> an administrator now, its login holding
    is_administrator: Callable[[Any, Any], bool] = lambda store, identity: False

    @classmethod
    def from_engine(cls) -> AccountsEngine:
        from engine import ensure_first_admin, rights_generation, verify_login
        from engine.evaluation.rights import is_administrator, login_problem

        return cls(verify_login, ensure_first_admin, rights_generation, _account_exists,
                   _hash_ahead, login_problem, is_administrator)


def _hash_ahead(password: str) -> Any:
    """The engine's `hash_ahead`: the password's stored form for the statement that sets it."""
    from engine.evaluation.accounts import hash_ahead

    return hash_ahead(password)


def _account_exists(store: Any, name: str) -> bool:
    """Whether `name` is a live account (for the counts of refused logins only)."""
    from engine import TahiryError

    try:
        return store.read_account(name) is not None
    except (TahiryError, ValueError):
        return False


@dataclass
class AccountCounts:
    logins: int = 0
    failures: int = 0
    sessions: int = 0


@dataclass
class ServerAccounts:
    """One server's accounts policy and counters (shared by its connections; event loop only)."""

    node_id: str
    store: Any
    required: bool
    api: AccountsEngine | None = None    # the engine's, looked up at first use when None
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger(__name__))
    counts: dict[str, AccountCounts] = field(default_factory=dict)
    failures_unknown: int = 0    # refused logins naming no account
    # The supervisor's `.status <token>;` shows the names (nodes/protocol/status_token.py).
    status_token: str | None = field(default=None, repr=False)
    _pool: ThreadPoolExecutor | None = None
    _password_pool: ThreadPoolExecutor | None = None

    def refusal(self, session: Any, request: Request) -> bytes | None:
        """The error for a request a connection may not make before its login (None: go on)."""
        if not self.required or getattr(session, "identity", None) is not None:
            return None
        if request.admin in ALLOWED_BEFORE_LOGIN:
            return None
        return encode_message(LOGIN_REQUIRED)

    async def login(self, session: Any, request: Request) -> bytes:
        """Answer `.login NAME "PASSWORD"`: sets `session.identity` when right."""
        try:
            name, password = login_arguments(request)
        except ValueError as error:
            return encode_message(LOGIN_MALFORMED.format(why=str(error)))
        if not self.required:
            return encode_message(LOGIN_NOT_NEEDED)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(LOGIN_THREADS, thread_name_prefix="login")
        loop = asyncio.get_running_loop()
        identity, exists = await loop.run_in_executor(self._pool, self._verify, name, password)
        del password
        if identity is None:
            if exists:
                self._count(name).failures += 1
            else:
                self.failures_unknown += 1
            return encode_message(LOGIN_REFUSED)
        previous = getattr(session, "identity", None)
        if previous is not None:
            self._count(previous.name).sessions -= 1
            if previous.name != identity.name:
                # Another account starts afresh: the database chosen for the previous one
                # may be one it cannot read (the balancer and the proxy cache do the same).
                session.current_database = None
        session.identity = identity
        counts = self._count(identity.name)
        counts.logins += 1
        counts.sessions += 1
        self.logger.info("login as %s%s", identity.name, " (administrator)" if identity.admin else "")
        return encode_message(LOGIN_OK.format(name=identity.name))

    def _verify(self, name: str, password: str) -> tuple[Any, bool]:
        """(identity or None, whether the name is an account): on a login thread."""
        api = self._api()
        identity = api.verify_login(self.store, name, password)
        return identity, identity is not None or api.account_exists(self.store, name)

    def hash_ahead(self, password: str) -> asyncio.Future:
        """A future of `password` hashed (the engine's `PasswordHash`) on a password thread."""
        if self._password_pool is None:
            self._password_pool = ThreadPoolExecutor(PASSWORD_THREADS,
                                                     thread_name_prefix="password")
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._password_pool, self._api().hash_ahead, password)

    def closed(self, session: Any) -> None:
        """A connection ended: its account has one session less."""
        identity = getattr(session, "identity", None)
        if identity is not None:
            self._count(identity.name).sessions -= 1

    def rights(self, session: Any = None) -> bytes:
        """The answer to `.rights;`: this server's rights generation; for a session whose
        login no longer holds (a new password, the account dropped), its error: the proxy
        cache validates an account's cached answers with it, and must not serve one."""
        identity = getattr(session, "identity", None)
        if identity is not None:
            problem = self._api().login_problem(self.store, identity)
            if problem is not None:
                return encode_message(problem)
        generation = int(self._api().rights_generation(self.store))
        return encode_message(encode_rights({self.node_id: generation}))

    def _api(self) -> AccountsEngine:
        if self.api is None:
            self.api = AccountsEngine.from_engine()
        return self.api

    def _count(self, name: str) -> AccountCounts:
        counts = self.counts.get(name)
        if counts is None:
            if len(self.counts) >= MAX_COUNTED_NAMES:
                name = OTHER_NAMES   # bounded, whatever happens
            counts = self.counts.setdefault(name, AccountCounts())
        return counts

    def may_see_names(self, session: Any, request: Request) -> bool:
        """Whether this `.status` request may see the account names: it carries the
        supervisor's token, or its session is logged in as an administrator."""
        return carries_token(request.text, self.status_token) or self.is_administrator(session)

    def is_administrator(self, session: Any) -> bool:
        """The session is logged in as an account that is an administrator now."""
        identity = getattr(session, "identity", None)
        return identity is not None and identity.admin \
            and bool(self._api().is_administrator(self.store, identity))

    def answer_stop(self, session: Any, request: Request, stop: Callable[[str], int]) -> bytes:
        """Answer an administrator's `.stop NAME;`: `stop(NAME)` stops what that account runs
        on this server (nodes/server/activity.py) and says how many statements it stopped."""
        if not self.required:
            return encode_message(STOP_ACCOUNTS_OFF)
        if not self.is_administrator(session):
            return encode_message(STOP_REFUSED)
        try:
            name = stop_name(request)
        except ValueError:
            return encode_message(STOP_MALFORMED)
        count = stop(name)
        if not count and not self._api().account_exists(self.store, name):
            # (Read from the files, off the engine thread, which may be busy with the very
            # statement to stop.)
            return encode_message(STOP_NO_ACCOUNT.format(name=name))
        self.logger.info("%s stopped %d statement(s) of %s", session.identity.name, count, name)
        return encode_message(STOPPED.format(count=count, name=name))

    def status(self, names: bool = False) -> dict:
        """The counts for `.status;`; by account name only when `names` (`may_see_names`):
        `.status;` is answered before a login, and the names say who has an account."""
        status: dict = {"accounts_required": self.required,
                        "login_failures_unknown": self.failures_unknown}
        if names:
            status["accounts"] = {name: {"logins": c.logins, "failures": c.failures,
                                         "sessions": c.sessions}
                                  for name, c in sorted(self.counts.items())}
        return status

    def stop(self) -> None:
        for pool in (self._pool, self._password_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)


def first_admin_from_environment(store: Any, api: AccountsEngine, logger: logging.Logger,
                                 environ: MutableMapping[str, str] | None = None) -> bool | None:
    """Create the first administrator from TAHIRY_ADMIN_USER / TAHIRY_ADMIN_PASSWORD if given.

    Both are removed from the environment (no child process inherits them).
    None when they were not both given; else whether the account was
    created (False: some account already existed).
    """
    environ = os.environ if environ is None else environ
    name = environ.pop(ADMIN_USER_ENV, "")
    password = environ.pop(ADMIN_PASSWORD_ENV, "")
    if not name or not password:
        if name or password:
            logger.warning("%s and %s must both be set to create the first administrator; "
                           "nothing was created", ADMIN_USER_ENV, ADMIN_PASSWORD_ENV)
        return None
    created = bool(api.ensure_first_admin(store, name, password))
    if created:
        logger.info("created the first administrator account %s", name)
    else:
        logger.info("accounts exist already: %s not created again", name)
    return created
