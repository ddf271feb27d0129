"""Running the account statements: accounts, passwords, grants (docs/LANGUAGE.md 2).

Each function runs one statement inside the executor's batch (certified
like any write: engine/evaluation/executor.py) after the rights check
(engine/evaluation/rights.py), and writes only through the store: an
account file (`Store.write_account`), a grant file (`Store.write(db,
"grant", account, ...)`) or their tombstones. Every check comes before
the first write, so a refused statement changes nothing. A password is
hashed before the statement's batch reads anything (scrypt takes tens of
milliseconds; no lock is held meanwhile) and never appears in a message.

A server hashes it sooner still, off its engine thread, so that other
clients' statements are not held behind scrypt in the group commit:
`password_ahead` says which password a statement would hash (when the
session may run it and the password is acceptable), `hash_ahead` hashes it
on any thread, and the statement, run with that `PasswordHash`, stores it
instead of hashing (`hash_for`). A statement run without one (or with one
for another password) hashes its own, as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import TahiryError
from engine.evaluation import rights
from engine.evaluation.outcome import Column, Outcome, Relation
from engine.language import ast
from engine.storage import accounts
from engine.storage.accounts import Identity
from engine.storage.names import validate_name
from engine.storage.store import Store
from engine.vocabulary import WORD_OF_RIGHT

ACCOUNT_COLUMNS = ("mpampiasa", "mpitantana", "tompony", "zo")
YES, NO = "eny", "tsia"


SETS_PASSWORD = (ast.CreateAccount, ast.SetPassword)


@dataclass(frozen=True)
class PasswordHash:
    """A password's stored form, hashed before the statement that sets it runs.

    Kept beside the statement's text (which holds the password anyway) only
    until it ran; `hash_for` uses it for that very password and no other.
    """

    password: str = field(repr=False)
    stored: dict = field(repr=False)


def hash_ahead(password: str) -> PasswordHash:
    """`password` hashed (scrypt, tens of milliseconds) for a statement to store later."""
    return PasswordHash(password, accounts.hash_password(accounts.check_password(password)))


def password_ahead(store: Store, identity: Identity | None, statement: object) -> str | None:
    """The password `statement` would hash if it ran now, else None.

    None for any other statement, for one the rights check would refuse
    (nobody pays for a hash a refused statement never needs) and for a
    password the statement would refuse. Reads only durable files; the
    statement itself checks everything again when it runs.
    """
    if not isinstance(statement, SETS_PASSWORD):
        return None
    try:
        if identity is not None:
            rights.check(store, identity, statement, None)   # (no database concerned)
        return accounts.check_password(statement.password)
    except TahiryError:
        return None


def hash_for(statement: ast.Statement, ahead: PasswordHash | None = None) -> dict | None:
    """The stored password of a statement that sets one (checked, hashed), else None.

    `ahead`: that password hashed already (`hash_ahead`); used when it is
    the statement's own password, else the statement hashes its own.
    """
    if isinstance(statement, SETS_PASSWORD):
        password = accounts.check_password(statement.password)
        if ahead is not None and ahead.password == password:
            return ahead.stored
        return accounts.hash_password(password)
    return None


def pull(store: Store, statement: ast.Statement) -> None:
    """Pull on write: the peers' newer copies of what the statement may write come in first."""
    if isinstance(statement, (ast.CreateAccount, ast.DropAccount, ast.SetPassword)):
        store.pull_newer_account(statement.name)
        if isinstance(statement, ast.DropAccount):
            store.pull_newer_accounts()   # the last-administrator check reads them all
            for database in store.list_databases():
                store.pull_newer(database, "grant", statement.name)
    elif isinstance(statement, ast.Grant):
        store.pull_newer_account(statement.account)
        store.pull_newer(statement.database, "database", statement.database)
        store.pull_newer(statement.database, "grant", statement.account)


def create_account(store: Store, statement: ast.CreateAccount, password: dict) -> Outcome:
    name = validate_name(statement.name, "account")
    if len(name) > accounts.MAX_NAME_CHARS:   # no login could name it
        raise TahiryError(f"Lava loatra ny anaran'ny mpampiasa (max {accounts.MAX_NAME_CHARS} litera)")
    if store.read_account(name) is not None:
        raise TahiryError(f"Ny mpampiasa : {name} dia efa misy")
    store.write_account(name, {"admin": statement.admin, "password": password})
    return Outcome.success(f"Ny mpampiasa : {name} dia voaforona soamantsara")


def drop_account(store: Store, statement: ast.DropAccount) -> Outcome:
    """The account's tombstone, and its grants' on every database (a new account of
    the same name starts with no rights; databases it owned keep its name as owner,
    and the answer names them)."""
    name = validate_name(statement.name, "account")
    account = store.read_account(name)
    if account is None:
        raise TahiryError(f"Tsy misy ny mpampiasa : {name}")
    if account.get("admin") is True:
        admins = [other for other in store.list_accounts()
                  if (document := store.read_account(other)) is not None
                  and document.get("admin") is True]
        if admins == [name]:
            raise TahiryError(f"Tsy azo fafana ny mpitantana farany : {name}")
    owned = []
    for database in store.list_databases():
        store.drop(database, "grant", name)
        if store.database_owner(database) == name:
            owned.append(database)
    store.write_account(name, None)
    if not owned:
        return Outcome.success(f"Ny mpampiasa : {name} dia voafafa")
    # Its databases stay under its name: the administrator decides, knowing it.
    return Outcome.success(
        f"Ny mpampiasa : {name} dia voafafa ; mbola eo amin'ny anarany ny tahiry : "
        f"{', '.join(sorted(owned))} (ravao ny tahiry tsirairay raha tsy ilaina intsony ; raha "
        f"tazonina, ny mpampiasa vaovao atao hoe {name} no ho tompony)")


def set_password(store: Store, statement: ast.SetPassword, password: dict) -> Outcome:
    name = validate_name(statement.name, "account")
    account = store.read_account(name)
    if account is None:
        raise TahiryError(f"Tsy misy ny mpampiasa : {name}")
    store.write_account(name, {"admin": account.get("admin") is True, "password": password})
    return Outcome.success(f"Ny tenimiafin'ny mpampiasa : {name} dia voaova")


def grant(store: Store, statement: ast.Grant) -> Outcome:
    """Give (`omeo`) or take away (`esory`) a right; written only when it changes.

    Giving read to an account that writes keeps write; taking write away
    leaves read; taking read away takes everything (write implies read).
    """
    account = validate_name(statement.account, "account")
    database = validate_name(statement.database, "database")
    if not store.database_exists(database):
        raise TahiryError(f"Tsy misy ny tahiry : {database}")
    if store.read_account(account) is None:
        raise TahiryError(f"Tsy misy ny mpampiasa : {account}")
    if store.database_owner(database) == account:
        # (A grant to its owner would be stored and listed, and change nothing.)
        raise TahiryError(f"Ny mpampiasa : {account} no tompon'ny tahiry : {database} (manana "
                          "ny zo rehetra ao izy)")
    current = store.read(database, "grant", account)
    held = current.get("right") if current is not None else None
    word = WORD_OF_RIGHT[statement.right]
    if statement.give:
        wanted = accounts.WRITE if accounts.WRITE in (held, statement.right) else accounts.READ
        if wanted != held:
            store.write(database, "grant", account, {"right": wanted})
        return Outcome.success(
            f"Ny mpampiasa : {account} dia manana zo {word} ao amin'ny tahiry : {database}")
    if statement.right == accounts.WRITE:
        if held == accounts.WRITE:
            store.write(database, "grant", account, {"right": accounts.READ})
    elif current is not None:
        store.drop(database, "grant", account)
    return Outcome.success(
        f"Ny mpampiasa : {account} dia tsy manana zo {word} intsony ao amin'ny tahiry : "
        f"{database}")


def show_accounts(store: Store, identity: Identity | None) -> Outcome:
    """One row per account the session may see (an administrator, or no identity: all;
    another account: itself): its name, admin flag, databases owned, rights held."""
    names = store.list_accounts()
    if identity is not None and not accounts.is_admin(store, identity):
        names = [name for name in names if name == identity.name]
    owned: dict[str, list[str]] = {name: [] for name in names}
    rights: dict[str, list[str]] = {name: [] for name in names}
    for database in store.list_databases():
        owner = store.database_owner(database)
        if owner in owned:
            owned[owner].append(database)
        for account, right in accounts.grants_of(store, database).items():
            if account in rights:
                rights[account].append(f"{database}:{WORD_OF_RIGHT[right]}")
    rows = []
    for name in names:
        document = store.read_account(name)
        if document is None:
            continue
        rows.append([name, YES if document.get("admin") is True else NO,
                     ", ".join(owned[name]), ", ".join(rights[name])])
    relation = Relation("mpampiasa", [Column(column, None) for column in ACCOUNT_COLUMNS], rows)
    return Outcome.success(f"{len(rows)} andalana", relation)
