"""Which right a statement needs, checked before it runs (docs/LANGUAGE.md 2, "Accounts and rights").

Only for a session with an identity (`session.identity`, set by a server
after `.login`); without one every statement is allowed, as before
accounts existed. With one:

- the account must still exist (a dropped account's sessions can do nothing);
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
    account = accounts.account_of(store, identity)
    if account is None:
        raise TahiryError(f"Tsy misy intsony ny mpampiasa : {identity.name} (midira indray)")
    admin = account.get("admin") is True
    if admin:
        return
    if isinstance(statement, READS):
        _need(store, identity, current_database, accounts.READ)
    elif isinstance(statement, WRITES):
        _need(store, identity, current_database, accounts.WRITE)
    elif isinstance(statement, ast.Show):
        if statement.what != "database":
            _need(store, identity, current_database, accounts.READ)
    elif isinstance(statement, ast.Use):
        _need(store, identity, statement.database, accounts.READ)
    elif isinstance(statement, ast.Drop):
        if statement.what == "database":
            _need(store, identity, statement.name, accounts.OWNER)
        else:
            _need(store, identity, current_database, accounts.WRITE)
    elif isinstance(statement, ast.Grant):
        _need(store, identity, statement.database, accounts.OWNER)
    elif isinstance(statement, (ast.CreateAccount, ast.DropAccount)):
        raise TahiryError("Ny mpitantana ihany no mahazo manao izany")
    elif isinstance(statement, ast.SetPassword):
        if statement.name != identity.name:
            raise TahiryError("Ny tenimiafinao ihany no azonao ovaina")
    # CreateDatabase, ShowAccounts: anyone logged in (the executor records or filters).


def _need(store: Store, identity: Identity, database: str | None, right: str) -> None:
    """Refuse unless `identity` holds at least `right` in `database` (when it exists)."""
    if database is None:
        return  # no database: the executor says so (or `alaivo 1;` needs none)
    try:
        if not store.database_exists(database):
            return  # the executor reports that it does not exist
    except TahiryError:
        return  # an invalid name: the executor reports it
    held = accounts.access(store, identity, database)
    if held is not None and accounts.RANK[held] >= accounts.RANK[right]:
        return
    if right == accounts.READ:
        raise TahiryError(f"Tsy manana zo mamaky ny tahiry {database} ianao")
    if right == accounts.WRITE:
        raise TahiryError(f"Tsy manana zo manoratra ny tahiry {database} ianao")
    raise TahiryError(
        f"Ny tompon'ny tahiry {database} na ny mpitantana ihany no mahazo manao izany")


def may_read(store: Store, identity: Identity, database: str) -> bool:
    """Whether `identity` may read `database` now (the session's planned reads ask)."""
    try:
        check(store, identity, _READ_PROBE, database)
    except TahiryError:
        return False
    return True


_READ_PROBE = ast.Describe()
