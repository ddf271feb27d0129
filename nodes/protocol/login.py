"""Accounts on the wire: `.login NAME "PASSWORD";`, its answers, and `.rights;` (sans-IO).

A node started with `--accounts` (docs/SECURITY.md, "Accounts") answers,
until a connection has logged in, only `.auth`, `.login`, `.ping` and
`.status`; anything else gets `LOGIN_REQUIRED`. The password is written as
a string literal of the language (double quotes; `\\`, `"` and line breaks
escaped), so any password survives statement framing; a bare word (no
blank, quote or `;`) is taken too. `login_request` writes it,
`login_arguments` reads it back.

Wrong logins are rate-limited like the shared secret (`LoginGate`, over
`nodes.protocol.auth.AuthLimiter`): per address off loopback, and
node-wide while failures come fast; every node that sees the client's
address applies it (servers, the balancer, the proxy), so a student behind
the balancer is locked out there. Refusals close the connection and are
logged with the name and the address, never the password.

`.rights;` asks a server for its rights generation (a number that changes
whenever an account, a grant or an ownership changes); the answer is one
JSON object `{"<server id>": generation}`, and the balancer merges every
ONLINE backend's into one. The proxy cache validates its hits with it.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from dataclasses import dataclass, field

import orjson

from engine.errors import ERROR_PREFIX
from engine.language.account_syntax import password_set_for
from nodes.protocol.auth import AuthLimiter, AuthRates, is_local_peer, peer_address
from nodes.protocol.wire import (
    ADMIN_AUTH,
    ADMIN_LOGIN,
    ADMIN_PING,
    ADMIN_RIGHTS,
    ADMIN_STATUS,
    LOGIN_WORD,
    Request,
    encode_message,
)

# Wrong logins node-wide faster than this start the throttle (a login costs a
# scrypt, so the secret's 20/s could never be reached): typos of a whole
# class stay far below it, a guesser does not.
DEFAULT_LOGIN_FAILURES_PER_S = 5.0
MAX_NAME_CHARS = 64
MAX_PASSWORD_CHARS = 1024
# An account name as the language spells one (a word).
_NAME = re.compile(r"[^\W\d]\w*\Z")
_ESCAPE = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t"}
_QUOTED = re.compile(r'"((?:[^"\\]|\\.|"")*)"\Z', re.DOTALL)
_ESCAPED = re.compile(r'\\(.)|""', re.DOTALL)

LOGIN_OK = "Tonga soa, {name} (logged in)"
LOGIN_NOT_NEEDED = ("Tsy ilaina ny fidirana eto (accounts are off on this node: login not "
                    "needed)")
# The nodes' texts: the whole sentence in Malagasy, then the English in parentheses (as
# LOGIN_NOT_NEEDED); the catalogue (engine/language/messages.py) has them for `--lang en`.
LOGIN_REQUIRED = (ERROR_PREFIX + "Tsy mbola niditra ianao : alefaso aloha ny `.login <anarana> "
                  "\"<tenimiafina>\";` (login required: send `.login <name> \"<password>\";` "
                  "first)")
LOGIN_REFUSED = (ERROR_PREFIX + "Diso ny anarana na ny tenimiafina : nakatona ny fifandraisana "
                 "(wrong name or password: connection closed)")
LOGIN_LOCKED = (ERROR_PREFIX + "Voasakana vetivety ny fidirana : diso imbetsaka loatra ny "
                "fidirana avy amin'ity adiresy ity ; andramo indray afaka {seconds} s (locked "
                "out: too many failed logins from this address; try again in {seconds} s)")
LOGIN_BUSY = (ERROR_PREFIX + "Be loatra ny fanandramana fidirana amin'ity node ity izao : "
              "nakatona ny fifandraisana, andramo indray afaka kelikely (too many login "
              "attempts on this node right now: connection closed, try again later)")
LOGIN_MALFORMED = (ERROR_PREFIX + "Tsy mety ny fidirana : `.login <anarana> \"<tenimiafina>\";` "
                   "no andrasana (malformed login: {why}; expected `.login <name> "
                   "\"<password>\";`)")
# `.stop <name>;` (an administrator, on a server): the statement that account runs there now
# is stopped (nodes/server/activity.py); the answer says how many, for `accounts stop`.
STOPPED = "Najanona ny fangatahana {count} an'i {name} ({count} statement(s) of {name} stopped)"
STOP_MALFORMED = (ERROR_PREFIX + "Tsy mety ny fanajanonana (malformed stop): expected "
                  "`.stop <name>;`")
STOP_REFUSED = ERROR_PREFIX + "Ny mpitantana ihany no mahazo manao izany"   # the engine's words
# (When nothing was stopped: a misspelled name must not read "nothing was running".)
STOP_NO_ACCOUNT = ERROR_PREFIX + "Tsy misy ny mpampiasa : {name}"   # the engine's words
STOP_ACCOUNTS_OFF = (ERROR_PREFIX + "Tsy misy mpampiasa eto (accounts are off on this node: no "
                     "account to stop)")
_STOPPED = re.compile(r"Najanona ny fangatahana (\d+) an'i ")
# Before a login, only these admin words are answered (`.auth` is handled before them).
# `.rights;` (a number that moves with every account or grant change, less than
# `.status;` tells) is among them: the balancer's probes ask it to keep an
# account's statements off a server behind on the rights.
ALLOWED_BEFORE_LOGIN = frozenset({ADMIN_PING, ADMIN_STATUS, ADMIN_AUTH, ADMIN_LOGIN,
                                  ADMIN_RIGHTS})


def stop_name(request: Request) -> str:
    """The account name of `.stop NAME;` (ValueError if it is not one word)."""
    parts = request.text.split()
    if len(parts) != 2 or not _NAME.match(parts[1]) or len(parts[1]) > MAX_NAME_CHARS:
        raise ValueError(parts[1:] and parts[1] or "no name")
    return parts[1]


def stopped_count(message: str) -> int | None:
    """How many statements a `.stop` answer says it stopped (None: not such an answer)."""
    found = _STOPPED.match(message)
    return int(found.group(1)) if found else None


def password_literal(password: str) -> str:
    """`password` as a double-quoted string literal of the language."""
    return '"' + "".join(_ESCAPE.get(ch, ch) for ch in password) + '"'


def login_problem(name: str, password: str) -> str | None:
    """Why (name, password) cannot be sent, or None."""
    if not _NAME.match(name) or len(name) > MAX_NAME_CHARS:
        return f"the account name must be one word of at most {MAX_NAME_CHARS} characters"
    if not password:
        return "the password is empty"
    if len(password) > MAX_PASSWORD_CHARS:
        return f"the password is longer than {MAX_PASSWORD_CHARS} characters"
    return None


def login_request(name: str, password: str) -> bytes:
    """The wire bytes of `.login NAME "PASSWORD";`; ValueError with a sentence if unusable."""
    problem = login_problem(name, password)
    if problem is not None:
        raise ValueError(problem)
    return f"{LOGIN_WORD} {name} {password_literal(password)};".encode()


def renewed_login(statement: str, account: str) -> bytes | None:
    """The `.login` to replay on new connections once `statement`, run for `account`,
    succeeded: a new one when it set that account's own password (`ovay ny tenimiafina
    ACCOUNT "PW"`: the old password logs in nowhere since); None: unchanged."""
    password = password_set_for(statement, account)
    if password is None:
        return None
    try:
        return login_request(account, password)
    except ValueError:   # a password no `.login` can carry: none the server accepts either
        return None


def login_arguments(request: Request) -> tuple[str, str]:
    """(name, password) of an ADMIN_LOGIN request; ValueError with a sentence if malformed."""
    rest = request.text[len(LOGIN_WORD):].strip()
    parts = rest.split(None, 1)
    if len(parts) != 2:
        raise ValueError("a name and a password are needed")
    name, given = parts[0], parts[1].strip()
    if given[:1] == '"':
        quoted = _QUOTED.match(given)
        if quoted is None:
            raise ValueError("the password's string is not closed where it ends")
        password = _ESCAPED.sub(
            lambda m: '"' if m.group(1) is None else _UNESCAPE.get(m.group(1), m.group(1)),
            quoted.group(1))
    elif any(ch.isspace() or ch in "'\"" for ch in given):
        raise ValueError("a password with blanks or quotes must be written between double quotes")
    else:
        password = given
    problem = login_problem(name, password)
    if problem is not None:
        raise ValueError(problem)
    return name, password


def login_name(request: Request) -> str:
    """The account name a login request gives (for logs; clipped, never the password)."""
    words = request.text[len(LOGIN_WORD):].split(None, 1)
    name = words[0] if words else ""
    return name[:MAX_NAME_CHARS] if _NAME.match(name[:MAX_NAME_CHARS] or "-") else "?"


def redact_login(text: str) -> str:
    """`text` with the password of a `.login` line replaced by `"***"` (client history, echoes)."""
    if ".login" not in text.lower():
        return text
    return _LOGIN_LINE.sub(lambda m: f'{m.group(1)} "***"', text)


_LOGIN_LINE = re.compile(r'(\.login\s+[^\s;]+)\s+(?:"(?:[^"\\]|\\.|"")*"?|[^\s;]+)',
                         re.IGNORECASE | re.DOTALL)


# --------------------------------------------------------------------------
# Rate limits and the log of refusals


@dataclass
class LoginGate:
    """One node's limits on login attempts, shared by its connections (pure but for the log).

    `admit(peer)`: None when the address may try now, else the refusal to
    answer (locked out, or the node-wide queue is too long) with a second
    value, the seconds to wait before trying (0 at once). `refused(peer,
    name)` after a wrong one: counted, limited, logged (at most once a
    second, with the name and the address).
    """

    logger: logging.Logger = field(default_factory=lambda: logging.getLogger(__name__))
    limiter: AuthLimiter = field(default_factory=lambda: AuthLimiter(
        AuthRates(global_failures_per_s=DEFAULT_LOGIN_FAILURES_PER_S)))
    failures: int = 0
    _last_log: float = 0.0
    _unlogged: int = 0

    def admit(self, peer: str) -> tuple[bytes | None, float]:
        address = peer_address(peer)
        wait = self.limiter.admit(address)
        if wait is not None:
            return None, wait
        self.failures += 1
        locked = self.limiter.locked_for(address)
        if locked > 0:
            return encode_message(LOGIN_LOCKED.format(seconds=int(locked) + 1)), 0.0
        return encode_message(LOGIN_BUSY), 0.0

    def refused(self, peer: str, name: str) -> None:
        address = peer_address(peer)
        self.limiter.failed(address, is_local_peer(address))
        for event in self.limiter.events():
            self.logger.warning("login limit: %s", event)
        self.failures += 1
        now = time.monotonic()
        if now - self._last_log < 1.0:
            self._unlogged += 1
            return
        extra = f" ({self._unlogged} more refused since the last line)" if self._unlogged else ""
        self.logger.warning("refused login as %s from %s: wrong name or password%s",
                            name, peer, extra)
        self._last_log, self._unlogged = now, 0

    def status(self) -> dict:
        limits = self.limiter.status()
        return {"login_failures": self.failures, "login_lockouts": limits["auth_lockouts"],
                "login_locked_addresses": limits["auth_locked_addresses"],
                "login_throttled": limits["auth_throttled"]}


def add_login_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--login-failures-per-s", type=float, default=DEFAULT_LOGIN_FAILURES_PER_S,
        help="wrong logins node-wide faster than this make every login wait its turn at this "
             "rate for a while (an address off loopback is also locked out after 10 wrong "
             "logins in a minute; docs/SECURITY.md)")


def node_login_gate(args: argparse.Namespace, logger: logging.Logger) -> LoginGate:
    rate = getattr(args, "login_failures_per_s", DEFAULT_LOGIN_FAILURES_PER_S)
    if not rate > 0:
        raise SystemExit(f"{args.id}: --login-failures-per-s must be positive")
    return LoginGate(logger, AuthLimiter(AuthRates(global_failures_per_s=rate)))


# --------------------------------------------------------------------------
# `.rights;`


def encode_rights(generations: dict[str, int]) -> str:
    """The message answering `.rights;`."""
    return orjson.dumps(generations, option=orjson.OPT_SORT_KEYS).decode()


def decode_rights(message: str) -> dict[str, int] | None:
    """The generations an answer to `.rights;` carries, or None if malformed."""
    try:
        value = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and type(v) is int for k, v in value.items()):
        return None
    return value
