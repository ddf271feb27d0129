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
administrator (`ensure_first_admin`) and gives a number that moves with
every change of them (`rights_generation`). Writing an account or a grant
from a statement is the executor's (engine/evaluation/accounts.py).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import time
from dataclasses import dataclass

from engine.errors import TahiryError
from engine.storage.cached_reads import FolderWatch
from engine.storage.group_commit import (
    BatchFenced,
    BatchNotWritten,
    BatchPartlyWritten,
    WriteOutcomeUnknown,
)
from engine.storage.names import validate_name
from engine.storage.object_format import ACCOUNT_FOLDER, GRANT_FOLDER, SYSTEM_FOLDER
from engine.storage.store import Store

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
MAX_PASSWORD_CHARS = 1024
# `ensure_first_admin` fenced by another server's commit tries this many times.
CERTIFY_ATTEMPTS = 6
# What an unknown name's login is checked against (same cost, never matches).
_DUMMY_SALT = b"tahiry-no-such-account"
_DUMMY_HASH = bytes(HASH_BYTES)


@dataclass(frozen=True)
class Identity:
    """Who a session is: an account's name and whether it was an administrator at login.

    The rights checks read the account again at every statement (a dropped
    account or a revoked right takes effect at once); `admin` is what the
    login saw, for the session's own display.
    """

    name: str
    admin: bool


# --------------------------------------------------------------------------
# passwords


def check_password(password: object) -> str:
    """`password` if it may be an account's password, else a clear TahiryError."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise TahiryError(
            f"Fohy loatra ny tenimiafina (farafahakeliny {MIN_PASSWORD_CHARS} litera)")
    if len(password) > MAX_PASSWORD_CHARS:
        raise TahiryError(f"Lava loatra ny tenimiafina (max {MAX_PASSWORD_CHARS} litera)")
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
    return Identity(name, bool(account.get("admin", False)))


def ensure_first_admin(store: Store, name: str, password: str) -> bool:
    """Create administrator `name` if no account exists yet; True if it was created.

    A certified write like a statement's: the accounts the peers hold are
    pulled first, and a commit fenced by another server's (two servers
    starting at once) runs again, then sees that account and creates
    nothing. A bad name or password is a TahiryError.
    """
    validate_name(name, "account")
    body = account_body(check_password(password), admin=True)  # hashed outside the lock
    fenced: BatchFenced | None = None
    for attempt in range(CERTIFY_ATTEMPTS):
        if attempt:
            time.sleep(random.uniform(0, min(0.05, 0.002 * 2 ** attempt)))
        store.begin_batch()
        try:
            store.pull_newer_accounts()
            if store.list_accounts():
                store.abort_batch()
                return False
            store.write_account(name, body)
        except BaseException:
            store.abort_batch()
            raise
        try:
            store.commit_batch()
        except BatchFenced as refused:
            fenced = refused
            continue
        except BatchNotWritten as refused:
            raise (refused.fault or TahiryError(refused.message)) from None
        except BatchPartlyWritten as partial:
            raise WriteOutcomeUnknown(str(partial)) from None
        return True
    assert fenced is not None
    raise TahiryError(fenced.message)


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
    still exists and is an administrator, whether the database exists, and the
    account's access to it (ADMIN, OWNER, WRITE, READ or None)."""

    account: bool
    admin: bool
    database_exists: bool
    access: str | None


def standing(store: Store, identity: Identity, database: str | None) -> Standing:
    """`identity`'s standing, and in `database` (None: no database concerned)."""
    return _decided(store, ("standing", identity.name, database),
                    lambda: _read_standing(store, identity, database))


def _read_standing(store: Store, identity: Identity, database: str | None) -> Standing:
    account = _read_account(store, identity)
    if account is None:
        return Standing(False, False, False, None)
    admin = account.get("admin") is True
    if database is None:
        return Standing(True, admin, False, ADMIN if admin else None)
    try:
        exists = store.database_exists(database)
    except TahiryError:
        exists = False   # an invalid name: the statement itself reports it
    return Standing(True, admin, exists, _read_access(store, identity, database) if exists else None)


# Decisions kept per store (at most this many) with the rights generation they were made at.
MAX_DECISIONS = 4096
_DECISIONS = "rights_decisions"


def _decided(store: Store, key: tuple, decide):
    """`decide()`, or the value it gave at the current rights generation.

    Only for a store that watches its folders (a server's, where the
    generation costs a microsecond) and outside a write batch of this
    thread (whose reads must see the batch's own writes): elsewhere the
    files are read every time. Every input of a decision (an account, a
    marker, a grant) is a file the generation counts.
    """
    if store.watch_generation() is None or store.in_own_batch:
        return decide()
    generation = rights_generation(store)
    with store.derived_lock:
        decisions = store.derived.setdefault(_DECISIONS, {})
        assert isinstance(decisions, dict)
        kept = decisions.get(key)
    if kept is not None and kept[0] == generation:
        return kept[1]
    value = decide()
    with store.derived_lock:
        if len(decisions) >= MAX_DECISIONS:
            decisions.clear()
        decisions[key] = (generation, value)
    return value


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


def rights_generation(store: Store) -> int:
    """A number that grows whenever an account, a grant or a database's owner changes.

    The sum of the change counters of every account file, database marker
    and grant file, tombstones included: each write of one of them raises
    its counter (a copy installed by replication too), and tombstones keep
    theirs, so the sum never comes back to an earlier value (unless files
    are removed by hand), and two servers holding the same files give the
    same number.

    Cheap when nothing changed: those files are only ever renamed into
    their folders (never appended to), so each folder's part is kept with
    the folder's signature and counted again only when the folder changed
    (a signature is trusted once it is `SIGNATURE_AGE_S` old: a file system
    stamps times coarsely). A store that watches its folders (inotify, a
    server's) answers from the last count while no event came at all.
    """
    with store.derived_lock:
        memo = store.derived.setdefault(_MEMO, {})
        assert isinstance(memo, dict)
        if _WATCH not in memo:
            # A store that watches its folders (a server's) gets a watch of the
            # rights' folders only: writes of tables do not move it.
            memo[_WATCH] = FolderWatch.open() if store.watch_generation() is not None else None
        watch = memo[_WATCH]
        generation = watch.generation() if watch is not None else None
        last = memo.get(_WATCHED)
        if generation is not None and last is not None and last[0] == generation:
            return last[1]
        watched = [watch]   # every folder counted is watched first (None: not watched)

        def part(folder: str, count, missing):
            return _folder_part(memo, folder, count, missing, watched)

        root = str(store.root)
        databases = part(root, _database_folders, [])
        total = part(f"{root}/{SYSTEM_FOLDER}/{ACCOUNT_FOLDER}", lambda path: _counters(
            _file_stems(path), store.read_account_raw), 0)
        for database in databases:
            folder = f"{root}/{database}"
            total += part(folder, lambda path, db=database: _counters([db], store.read_marker_raw),
                          0)
            total += part(f"{folder}/{GRANT_FOLDER}", lambda path, db=database: _counters(
                _file_stems(path), lambda name: store.read_raw(db, "grant", name)), 0)
        memo[_WATCHED] = (generation, total) if watched[0] is not None else None
        return total


_MEMO = "rights_generation"
_WATCH = "watch"
_WATCHED = "watched"
# A folder's signature younger than this may not show a change made in the same
# tick of its file system's clock (1 s on some): its part is counted every time.
SIGNATURE_AGE_S = 2.0


def _folder_part(memo: dict, folder: str, count, missing, watched: list):
    """`count(folder)`, or the value kept for the folder's signature when it did not change.

    With a watch (`watched[0]`), the folder is watched before it is looked
    at (a change after that moves the generation); `watched[0]` turns None
    if it cannot be.
    """
    watch = watched[0]
    # Watched before its stat: a change after the stat moves the generation.
    watching = watch is not None and watch.watch((folder,))
    try:
        stat = os.stat(folder)
    except OSError:
        memo.pop(folder, None)
        return missing   # its creation changes its parent folder, watched or stat-ed
    if watch is not None and not watching:
        watched[0] = None
    signature = (stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_nlink)
    kept = memo.get(folder)
    if kept is not None and kept[0] == signature:
        return kept[1]
    value = count(folder)
    if time.time() - max(stat.st_mtime_ns, stat.st_ctime_ns) / 1e9 > SIGNATURE_AGE_S:
        memo[folder] = (signature, value)
    else:
        memo.pop(folder, None)
    return value


def _database_folders(root: str) -> list[str]:
    try:
        with os.scandir(root) as entries:
            return sorted(entry.name for entry in entries
                          if not entry.name.startswith(".") and entry.name != SYSTEM_FOLDER
                          and entry.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _counters(names: list[str], read) -> int:
    return sum(_counter(read, name) for name in names)


def _file_stems(folder: str) -> list[str]:
    try:
        with os.scandir(folder) as entries:
            return [entry.name[:-len(".json")] for entry in entries
                    if entry.name.endswith(".json") and not entry.name.startswith(".")]
    except OSError:
        return []


def _counter(read, name: str) -> int:
    try:
        document = read(name)
    except TahiryError:
        return 0   # not a valid name, or unreadable: not an object the rights use
    if document is None:
        return 0
    change = document.get("change", 0)
    return change if isinstance(change, int) else 0
