"""Which right a statement needs, checked before it runs (docs/LANGUAGE.md 2, "Accounts and rights").

Only for a session with an identity (`session.identity`, set by a server
after `.login`); without one every statement is allowed, as before
accounts existed. With one:

- the account must still exist, with the password the session logged in
  with (a dropped account's sessions can do nothing, nor those of an
  account whose password changed: only the session that changed its own
  carries on);
- read (`mamaky`): queries, `asehoy ny tabilao|jery|efitra`, `asehoy ny
  tsanganana`, `ampiasao DB`;
- write (`manoratra`, implies read): creating and dropping tables, views,
  domains; inserting, updating, deleting;
- the database's owner or an administrator: dropping the database, giving
  and taking away rights on it;
- an administrator: creating and dropping accounts; changing another's
  password (an account may change its own);
- anyone logged in: creating a database (it becomes theirs), `asehoy ny
  tahiry` and `asehoy ny mpampiasa` (each lists only what the account may see).

A statement that names a database that does not exist is not refused here:
the executor says it does not exist, as it always did. A refused statement
raises a TahiryError naming the missing right before anything is read for
it or written.
"""

from __future__ import annotations

from engine.errors import TahiryError
from engine.language import ast
from engine.storage import accounts
from engine.storage.accounts import Identity
from engine.storage.store import Store

# The right each statement needs in the session's current database.
READS = (ast.Query, ast.Describe)
WRITES = (ast.CreateTable, ast.CreateDomain, ast.CreateView, ast.Insert, ast.Update, ast.Delete)


def check(store: Store, identity: Identity, statement: object,
          current_database: str | None) -> None:
    """Raise a TahiryError naming the right `identity` lacks for `statement`; None if allowed."""
    need, database = needed(statement, current_database)
    held = accounts.standing(store, identity, database)
    _check_login(identity, held)
    if held.admin or need is None:
        return
    if need == ADMIN_ONLY:
        raise TahiryError("Ny mpitantana ihany no mahazo manao izany")
    if need == SELF:
        if getattr(statement, "name", None) != identity.name:
            raise TahiryError("Ny tenimiafinao ihany no azonao ovaina")
        return
    if database is None or not held.database_exists:
        return  # no database, or none of that name: the executor says so (as without accounts)
    if held.access is not None and accounts.RANK[held.access] >= accounts.RANK[need]:
        return
    if need == accounts.READ:
        raise TahiryError(f"Tsy manana zo mamaky ny tahiry {database} ianao")
    if need == accounts.WRITE:
        raise TahiryError(f"Tsy manana zo manoratra ny tahiry {database} ianao")
    raise TahiryError(
        f"Ny tompon'ny tahiry {database} na ny mpitantana ihany no mahazo manao izany")


ADMIN_ONLY, SELF = "admin only", "self"


def login_problem(store: Store, identity: Identity) -> str | None:
    """The error (wire text) of a session whose login no longer holds, else None: for what
    a session asks outside statements (a server's `.rights;`, which validates the proxy
    cache's answers for the account)."""
    try:
        _check_login(identity, accounts.standing(store, identity, None))
    except TahiryError as error:
        return error.message
    return None


def is_administrator(store: Store, identity: Identity) -> bool:
    """Whether `identity` is an administrator now, its login still holding (a server's
    `.status;` shows account names to such a session only: nodes/protocol/status_token.py)."""
    try:
        held = accounts.standing(store, identity, None)
        _check_login(identity, held)
    except TahiryError:
        return False
    return held.admin


def _check_login(identity: Identity, held: accounts.Standing) -> None:
    if not held.account:
        # No login as that name can work now: another account's can.
        raise TahiryError(f"Tsy misy intsony ny mpampiasa : {identity.name} (midira amin'ny "
                          "mpampiasa hafa : .login ANARANA \"...\"; na ./tahiry client --user "
                          "ANARANA)")
    if identity.stamp is not None and held.stamp != identity.stamp:
        # A new password (or the account dropped and made again): the login is void. The
        # message says how to log in again, never with which password.
        name = identity.name
        raise TahiryError(f"Niova ny tenimiafin'ny mpampiasa : {name} (midira indray amin'ny "
                          f"tenimiafina vaovao : .login {name} \"...\"; na ./tahiry client "
                          f"--user {name})")


def pull_rights(store: Store, identity: Identity, statement: object,
                current_database: str | None) -> None:
    """Before a write's check, with peers: their newer copies of what decides it come in
    (the account, the database's marker, the account's grant on it), so a right given
    or taken away on another server counts before replication brought it."""
    _, database = needed(statement, current_database)
    store.pull_newer_account(identity.name)
    if database is not None:
        store.pull_newer(database, "database", database)
        store.pull_newer(database, "grant", identity.name)


def needed(statement: object, current_database: str | None) -> tuple[str | None, str | None]:
    """(the right `statement` needs, the database it needs it in); None: anyone logged in.

    The right is accounts.READ, WRITE or OWNER in the database, ADMIN_ONLY,
    or SELF (the account named by the statement is the session's own).
    """
    if isinstance(statement, READS):
        return accounts.READ, current_database
    if isinstance(statement, WRITES):
        return accounts.WRITE, current_database
    if isinstance(statement, ast.Show):
        return (None, None) if statement.what == "database" else (accounts.READ, current_database)
    if isinstance(statement, ast.Use):
        return accounts.READ, statement.database
    if isinstance(statement, ast.Drop):
        if statement.what == "database":
            return accounts.OWNER, statement.name
        return accounts.WRITE, current_database
    if isinstance(statement, ast.Grant):
        return accounts.OWNER, statement.database
    if isinstance(statement, (ast.CreateAccount, ast.DropAccount)):
        return ADMIN_ONLY, None
    if isinstance(statement, ast.SetPassword):
        return SELF, None
    if isinstance(statement, (ast.CreateDatabase, ast.ShowAccounts)):
        return None, None   # the executor records the owner, or lists only what may be seen
    # A statement kind this table does not know yet (a new one added to the
    # language): an administrator's, until its right is written down here.
    return ADMIN_ONLY, None


def may_read(store: Store, identity: Identity, database: str) -> bool:
    """Whether `identity` may read `database` now (the session's planned reads ask)."""
    try:
        check_read(store, identity, database)
    except TahiryError:
        return False
    return True


def check_read(store: Store, identity: Identity, database: str) -> None:
    """Raise the TahiryError that refuses `identity` a read of `database` now (what a
    server's `.versions` needs: it says which objects exist and how often each changed)."""
    check(store, identity, _READ_PROBE, database)


_READ_PROBE = ast.Describe()
