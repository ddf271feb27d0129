"""Accounts, grants and ownership as object files (docs/STORAGE.md, "Accounts").

Three kinds of stored facts decide who may do what (docs/SECURITY.md):

- an account, `@tahiry/accounts/<name>.json` (kind `account`): its admin
  flag and its password as a salted scrypt hash, never the password;
- a grant, `<db>/grants/<account>.json` (kind `grant`): the right `read`
  or `write` (which implies read) an account holds on a database that is
  not its own; tombstoned with the database;
- the owner of a database: the `owner` field of its marker
  (`<db>/database.json`), the account that created it.

They are objects like tables: written by the store (change counters,
tombstones, certified commits, pull on write) and carried between servers
by the replicator. This module reads them for the rights checks
(`access`), checks a login (`verify_login`), creates the first
administrator (`ensure_first_admin`). The number that moves with every
change of them (`rights_generation`), and the decisions kept by it, are
engine/storage/rights_generation.py's. Writing an account or a grant from
a statement is the executor's (engine/evaluation/accounts.py).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field

from engine.errors import TahiryError
from engine.storage.certified import certified_write
from engine.storage.names import validate_name
from engine.storage.rights_generation import decided as _decided
from engine.storage.rights_generation import rights_generation
from engine.storage.store import Store

__all__ = ["Identity", "ensure_first_admin", "rights_generation", "verify_login"]

# scrypt's cost (RFC 7914): N=2**14, r=8, p=1 needs 16 MiB and ~40 ms per hash.
SCRYPT_N = 2 ** 14
SCRYPT_R = 8
SCRYPT_P = 1
HASH_BYTES = 32
SALT_BYTES = 16
# A stored cost above these is refused (a crafted file must not make a login
# take minutes or gigabytes).
MAX_SCRYPT_N = 2 ** 20
MAX_SCRYPT_R = 32
MAX_SCRYPT_P = 16
MIN_PASSWORD_CHARS = 8
MAX_NAME_CHARS = 64     # what a `.login` carries (nodes/protocol/login.py)
MAX_PASSWORD_CHARS = 1024
# What an unknown name's login is checked against (same cost, never matches).
_DUMMY_SALT = b"tahiry-no-such-account"
_DUMMY_HASH = bytes(HASH_BYTES)


@dataclass(frozen=True)
class Identity:
    """Who a session is: an account's name and whether it was an administrator at login.

    The rights checks read the account again at every statement (a dropped
    account or a revoked right takes effect at once); `admin` is what the
    login saw, for the session's own display. `stamp`: the password the
    login proved (`password_stamp`): once the account holds another (a new
    password, or the account dropped and made again), the session may do
    nothing more. None: not from a login (in-process uses), not compared.
    """

    name: str
    admin: bool
    # (Not shown, not compared: who a session is does not include its password.)
    stamp: str | None = field(default=None, compare=False, repr=False)


def password_stamp(stored: object) -> str | None:
    """What tells one password of an account from the next, from its stored form (an
    account's `password`, `hash_password`): the salted hash (each new password, and each
    account made again, gets a fresh salt, hence another)."""
    stamp = stored.get("hash") if isinstance(stored, dict) else None
    return stamp if isinstance(stamp, str) else None


# --------------------------------------------------------------------------
# passwords


def check_password(password: object) -> str:
    """`password` if it may be an account's password, else a clear TahiryError."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise TahiryError(
            f"Fohy loatra ny tenimiafina (farafahakeliny {MIN_PASSWORD_CHARS} litera)")
    if len(password) > MAX_PASSWORD_CHARS:
        raise TahiryError(f"Lava loatra ny tenimiafina (max {MAX_PASSWORD_CHARS} litera)")
    if not password.strip():
        raise TahiryError("Tsy azo atao elanelana fotsiny ny tenimiafina")
    return password


def hash_password(password: str, salt: bytes | None = None) -> dict:
    """The stored form of `password`: scrypt with a fresh random salt (and its cost)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return {"scheme": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
            "salt": salt.hex(), "hash": digest.hex()}


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    data = password.encode("utf-8", "surrogatepass")
    return hashlib.scrypt(data, salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024,
                          dklen=HASH_BYTES)


def password_matches(stored: object, password: str) -> bool:
    """Whether `password` hashes to `stored` (an account's `password` field); constant time."""
    try:
        if not isinstance(stored, dict) or stored.get("scheme") != "scrypt":
            raise ValueError("not a scrypt hash")
        n, r, p = int(stored["n"]), int(stored["r"]), int(stored["p"])
        if not (1 < n <= MAX_SCRYPT_N and n & (n - 1) == 0 and 0 < r <= MAX_SCRYPT_R
                and 0 < p <= MAX_SCRYPT_P):
            raise ValueError("scrypt cost out of range")
        salt, expected = bytes.fromhex(stored["salt"]), bytes.fromhex(stored["hash"])
    except (KeyError, TypeError, ValueError):
        # Same work as a real check, then no.
        hmac.compare_digest(_scrypt(password, _DUMMY_SALT, SCRYPT_N, SCRYPT_R, SCRYPT_P),
                            _DUMMY_HASH)
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


def account_body(password: str, admin: bool) -> dict:
    """An account document's fields (the password only as its hash)."""
    return {"admin": admin, "password": hash_password(password)}


# --------------------------------------------------------------------------
# logins


def verify_login(store: Store, name: str, password: str) -> Identity | None:
    """The identity of account `name` if `password` is its password, else None.

    One scrypt hash whatever happens (an unknown or invalid name is checked
    against a dummy hash), compared in constant time: the answer's timing
    does not tell whether the name exists. Never logs the password.
    """
    account = None
    if isinstance(name, str) and isinstance(password, str):
        try:
            account = store.read_account(validate_name(name, "account"))
        except TahiryError:
            account = None
    if not isinstance(password, str):
        password = ""
    if account is None:
        password_matches(None, password)
        return None
    if not password_matches(account.get("password"), password):
        return None
    return Identity(name, bool(account.get("admin", False)), password_stamp(account.get("password")))


def ensure_first_admin(store: Store, name: str, password: str,
                       stored: dict | None = None) -> bool:
    """Create administrator `name` if no account exists yet; True if it was created.

    A certified write like a statement's: the accounts the peers hold are
    pulled first, and a commit fenced by another server's (two servers
    starting at once) runs again, then sees that account and creates
    nothing. A bad name or password is a TahiryError. `stored`: the
    password's stored form (`hash_password`) made beforehand, for a caller
    that tries again (a peer unreachable) without hashing each time.
    """
    validate_name(name, "account")
    check_password(password)
    # Hashed outside the lock.
    body = ({"admin": True, "password": stored} if stored is not None
            else account_body(password, admin=True))

    def work() -> bool:
        store.pull_newer_accounts()
        if store.list_accounts():
            return False   # nothing written: the commit is empty
        store.write_account(name, body)
        return True
    return certified_write(store, work)


# --------------------------------------------------------------------------
# rights

ADMIN, OWNER, WRITE, READ = "admin", "owner", "write", "read"
# What each access allows, as a rank: read < write < owner = admin.
RANK = {READ: 1, WRITE: 2, OWNER: 3, ADMIN: 3}


def account_of(store: Store, identity: Identity) -> dict | None:
    """The live account document of `identity` (None: dropped since the login)."""
    return _decided(store, ("account", identity.name), lambda: _read_account(store, identity))


def _read_account(store: Store, identity: Identity) -> dict | None:
    try:
        return store.read_account(identity.name)
    except TahiryError:
        return None


def is_admin(store: Store, identity: Identity) -> bool:
    account = account_of(store, identity)
    return account is not None and account.get("admin") is True


def access(store: Store, identity: Identity, database: str) -> str | None:
    """What `identity` may do in `database`: ADMIN, OWNER, WRITE, READ or None.

    Read from the files at every call (the store's cache makes it a few
    `stat`s): a grant revoked or an account dropped counts from the next
    statement on, whichever server or replica wrote it.
    """
    return _decided(store, ("access", identity.name, database),
                    lambda: _read_access(store, identity, database))


def _read_access(store: Store, identity: Identity, database: str) -> str | None:
    account = account_of(store, identity)
    if account is None:
        return None
    if account.get("admin") is True:
        return ADMIN
    if store.database_owner(database) == identity.name:
        return OWNER
    grant = store.read(database, "grant", identity.name)
    if grant is None:
        return None
    right = grant.get("right")
    return right if right in (READ, WRITE) else None


@dataclass(frozen=True)
class Standing:
    """What a statement's rights check needs to know, read once: whether the account
    still exists and is an administrator, whether the database exists, the
    account's access to it (ADMIN, OWNER, WRITE, READ or None), and the
    account's `password_stamp`."""

    account: bool
    admin: bool
    database_exists: bool
    access: str | None
    stamp: str | None = None


def standing(store: Store, identity: Identity, database: str | None) -> Standing:
    """`identity`'s standing, and in `database` (None: no database concerned)."""
    return _decided(store, ("standing", identity.name, database),
                    lambda: _read_standing(store, identity, database))


def _read_standing(store: Store, identity: Identity, database: str | None) -> Standing:
    account = _read_account(store, identity)
    if account is None:
        return Standing(False, False, False, None)
    admin = account.get("admin") is True
    stamp = password_stamp(account.get("password"))
    if database is None:
        return Standing(True, admin, False, ADMIN if admin else None, stamp)
    try:
        exists = store.database_exists(database)
    except TahiryError:
        exists = False   # an invalid name: the statement itself reports it
    return Standing(True, admin, exists,
                    _read_access(store, identity, database) if exists else None, stamp)


def grants_of(store: Store, database: str) -> dict[str, str]:
    """account -> right ('read'/'write') of the live grants on `database`."""
    found = {}
    for account in store.list_objects(database, "grant"):
        document = store.read(database, "grant", account)
        if document is not None and document.get("right") in (READ, WRITE):
            found[account] = document["right"]
    return found


def visible_databases(store: Store, identity: Identity) -> list[str]:
    """The databases `identity` may see (`asehoy ny tahiry`): every one for an administrator."""
    names = store.list_databases()
    account = account_of(store, identity)
    if account is None:
        return []
    if account.get("admin") is True:
        return names
    return [name for name in names if access(store, identity, name) is not None]
