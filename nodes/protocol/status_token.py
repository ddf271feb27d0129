"""Who may read account names in a server's `.status;`: the supervisor's token (sans-IO).

`.status;` is answered before a login (the supervisor's probes do not log
in), so what it holds is told to whoever can connect. The counts of logins,
failures and sessions stay in it; the names of the accounts they belong to
are shown only to a session logged in as an administrator, or to a request
carrying the status token: `.status <token>;`.

The token is drawn by the supervisor for each of its runs (256 random bits,
in hex: it frames as one word of a request) and given to the servers it
starts in their environment (`TAHIRY_STATUS_TOKEN`), as the shared secret
is: never on a command line (`ps` shows those), never in a file or a log.
A server takes it out of its environment once read (no child inherits it).
A server started by hand has none, and shows names to administrators only.
The request keeps the DirkDB framing (`;`-terminated, the answer ends in
`END`); `.status;` with no token is answered as before, without the names.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import MutableMapping

STATUS_TOKEN_ENV = "TAHIRY_STATUS_TOKEN"
STATUS_WORD = ".status"


def new_status_token() -> str:
    """A fresh token: 64 hex digits (no `;`, quote, blank or comment start)."""
    return secrets.token_hex(32)


def status_request(token: str | None) -> bytes:
    """`.status <token>;`, or `.status;` without a token."""
    return f"{STATUS_WORD} {token};".encode() if token else f"{STATUS_WORD};".encode()


def status_token_from_environment(environ: MutableMapping[str, str] | None = None) -> str | None:
    """The token the supervisor gave, taken out of the environment; None without one."""
    environ = os.environ if environ is None else environ
    return environ.pop(STATUS_TOKEN_ENV, "") or None


def carries_token(request_text: str, token: str | None) -> bool:
    """Whether a `.status ...` request's text carries `token` (compared in constant time)."""
    if not token:
        return False
    _, _, given = request_text.partition(" ")
    return hmac.compare_digest(given.strip().encode(), token.encode())
