"""Logins, failed logins and open sessions per account, as the servers count them.

A server started with `--accounts` adds to its `.status;` (counts only: no
password, no data):

    "accounts": {"<name>": {"logins": int, "failures": int, "sessions": int}, ...}
    "login_failures_unknown": int

`logins` and `failures` count since the server started (counters: a
restart begins them again from zero); `sessions` is the connections logged
in as that account now (a gauge). A failed login naming an account counts
under it; one naming no account is only counted, in
`login_failures_unknown`: keyed by the name, the table would grow with
every name tried and tell which names exist (nodes/server/accounts.py).

and, for the same eyes only, the statement its engine thread has run for a
second or more (nodes/server/activity.py; its passwords replaced by `"***"`):

    "running_statements": [{"account": str, "database": str | None, "seconds": float,
                 "statement": str}]

`server_accounts` reads those keys from one `.status;` into the status row
(the statements as `running_statements`: only the operator's `status`, the
one carrying the control token, shows them, supervisor/control.py)
(anything malformed is left out, never trusted); `account_totals` sums the
rows of every server for the `status` command. A session through a
balancer logs in on each server it reaches, so it counts on each of them.
"""

from __future__ import annotations

from dataclasses import dataclass

FIELDS = ("logins", "failures", "sessions")
RUNNING_STATEMENTS = "running_statements"   # the row's key (left out of open answers)


@dataclass
class AccountTotals:
    logins: int = 0
    failures: int = 0
    sessions: int = 0


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _running(raw: object, server: str | None) -> list[dict]:
    """The statements a server runs now, as its `.status;` says (malformed entries left out)."""
    running: list[dict] = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict):
            continue
        account, database = entry.get("account"), entry.get("database")
        seconds, statement = entry.get("seconds"), entry.get("statement")
        if not isinstance(account, str) or not isinstance(statement, str) \
                or not isinstance(seconds, int | float) or isinstance(seconds, bool) \
                or not isinstance(database, str | None):
            continue
        running.append({"server": server, "account": account, "database": database,
                        "seconds": float(seconds), "statement": statement})
    return running


def server_accounts(status: dict | None, server: str | None = None) -> dict:
    """The row's `accounts`, `login_failures_unknown` and `running_statements` (on `server`) from a
    server's `.status;` (empty when it has none: accounts off, or an older server)."""
    if (status or {}).get("accounts_required") is False:
        return {}   # accounts off: its (empty) counts are no table to show
    raw = (status or {}).get("accounts")
    if not isinstance(raw, dict):
        return {}
    accounts: dict[str, dict[str, int]] = {}
    for name, figures in raw.items():
        if not isinstance(name, str) or not isinstance(figures, dict):
            continue
        accounts[name] = {key: _count(figures.get(key)) or 0 for key in FIELDS}
    extra: dict = {"accounts": dict(sorted(accounts.items())),
                   RUNNING_STATEMENTS: _running((status or {}).get("running"), server)}
    unknown = _count((status or {}).get("login_failures_unknown"))
    if unknown is not None:
        extra["login_failures_unknown"] = unknown
    return extra


def account_totals(rows: list[dict]) -> tuple[dict[str, AccountTotals], int | None] | None:
    """Per account, the sum over the server rows; and the failures naming no account (None
    when no server counts them apart). None when no server reported accounts."""
    totals: dict[str, AccountTotals] = {}
    unknown: int | None = None
    seen = False
    for row in rows:
        accounts = row.get("accounts") if row.get("kind") == "server" else None
        if not isinstance(accounts, dict):
            continue
        seen = True
        for name, figures in accounts.items():
            total = totals.setdefault(name, AccountTotals())
            for key in FIELDS:
                setattr(total, key, getattr(total, key) + int(figures.get(key) or 0))
        if "login_failures_unknown" in row:
            unknown = (unknown or 0) + int(row["login_failures_unknown"] or 0)
    if not seen:
        return None
    return dict(sorted(totals.items())), unknown
