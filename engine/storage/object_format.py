"""The on-disk object format (version 1): the facts and the checks, in one place.

docs/STORAGE.md is the contract; this module is its executable half, shared
by the store (engine/storage/store.py), the peers' copies (engine/storage/peers.py) and
the replicator (supervisor/objectfiles.py), so that "is this a valid copy
of that object?" has one answer everywhere:

- the layout: `<db>/database.json`, `<db>/{tables,views,domains}/<name>.json`,
  a database's grants `<db>/grants/<account>.json` and the accounts
  `@tahiry/accounts/<account>.json` (`KIND_FOLDERS`, `DATABASE_KIND_FOLDERS`,
  `FOLDER_KINDS`, `DATABASE_MARKER`, `SYSTEM_FOLDER`), the mapping between
  a relative path and (kind, name) (`object_relpath`, `kind_and_name`);
- `check_header(document, where, kind, name)`: the five header keys
  (format, kind, name, change, dropped), enough to compare counters;
- `sealed(body)` and `decode_document(data, where)`: a document's checksum,
  its last key, written with it and checked (then removed) on every read,
  so a byte changed on disk that still reads as JSON is found;
- `check_document(data, where, kind, name)` (`check_header`, then
  `check_body`; a server's reads run both too): the whole document, decoded
  and checked (checksum, header, and for a live object the fields of its
  kind): a truncated file whose header survived fails here, so a copy that
  passes can be served and replicated.

Every failure is an `InvalidDocument` whose `reason` says what is wrong
without the path (for status listings). No I/O here: callers read bytes.
"""

from __future__ import annotations

import os
import re
import zlib

import orjson

from engine.errors import EngineError

# Format 2 (docs/STORAGE.md): the documents of format 1, and a journal beside
# each table. Documents written now say 2 (so a format 1 program refuses a
# directory whose tables may have journals it would not read); both are read.
FORMAT_VERSION = 2
READABLE_FORMATS = frozenset({1, 2})
DATABASE_MARKER = "database.json"
OBJECT_SUFFIX = ".json"
# The data objects of a database (what `asehoy ny` lists and `.versions` reports).
KIND_FOLDERS = {"table": "tables", "view": "views", "domain": "domains"}
# Every per-database kind: the data objects and the grants of rights on the
# database (`<db>/grants/<account>.json`, tombstoned with the database).
GRANT_FOLDER = "grants"
DATABASE_KIND_FOLDERS = {**KIND_FOLDERS, "grant": GRANT_FOLDER}
# The accounts live in a folder that no database can have as its name (`@`
# is no identifier) and that is no dot-folder, so listings of databases skip
# it and replication carries it like a database folder.
SYSTEM_FOLDER = "@tahiry"
ACCOUNT_FOLDER = "accounts"
FOLDER_KINDS = {folder: kind for kind, folder in DATABASE_KIND_FOLDERS.items()}
FOLDER_KINDS[ACCOUNT_FOLDER] = "account"
KINDS = ("database", *DATABASE_KIND_FOLDERS, "account")
RIGHTS = ("read", "write")
ATOM_TYPES = frozenset({"ISA", "LAHATSORATRA", "DATY", "TANISA"})
# Where the replicator keeps a corrupt copy it replaced (docs/STORAGE.md):
# a dot-folder, so listings and replication never take it for a database.
CORRUPT_FOLDER = ".corrupt"
# Where a server added to the cluster keeps its copies that the cluster's replaced
# (they had diverged while it was out: supervisor/replication.py `seed`).
DIVERGED_FOLDER = ".diverged"


class InvalidDocument(EngineError):
    """A file that is not a valid object document (torn, garbage, wrong kind or name)."""

    def __init__(self, where: str | os.PathLike, reason: str):
        super().__init__(f"{where}: {reason}")
        self.where = str(where)
        self.reason = reason


# --------------------------------------------------------------------------
# paths


def _plain_name(name: str) -> bool:
    # Not the identifier rule of engine/storage/names.py on purpose: a file that is
    # no identifier is still an object file to compare and copy; hidden and
    # temp files (`.<name>.<random>.tmp`, the `.corrupt` folder) are not.
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name \
        and "\x00" not in name and not name.endswith(".tmp")


def object_relpath(parts: list[str]) -> str | None:
    """The relative path (with '/') if the path components `parts` name an object file."""
    if len(parts) == 2:
        database, file_name = parts
        if _plain_name(database) and file_name == DATABASE_MARKER and database != SYSTEM_FOLDER:
            return f"{database}/{file_name}"
        return None
    if len(parts) == 3:
        database, folder, file_name = parts
        if (database == SYSTEM_FOLDER) != (folder == ACCOUNT_FOLDER):
            return None  # accounts only in the system folder, and nothing else there
        if (_plain_name(database) and folder in FOLDER_KINDS and _plain_name(file_name)
                and file_name.endswith(OBJECT_SUFFIX) and len(file_name) > len(OBJECT_SUFFIX)):
            return f"{database}/{folder}/{file_name}"
    return None


def kind_and_name(relpath: str) -> tuple[str, str]:
    """(kind, name) of the object whose file is at `relpath` (an object path)."""
    parts = relpath.split("/")
    if len(parts) == 2:
        return "database", parts[0]
    return FOLDER_KINDS[parts[1]], parts[2][:-len(OBJECT_SUFFIX)]


# --------------------------------------------------------------------------
# documents


# A document's checksum is its last key: the CRC-32 of every byte before that
# key, 8 hex digits. A file without one (written before documents had it, or by
# hand) is read as before; one whose checksum does not match is corrupt.
CHECKSUM_KEY = "checksum"
_CHECKSUM_TAIL = re.compile(rb',"checksum":"([0-9a-f]{8})"\}\Z')
_CHECKSUM_TAIL_BYTES = len(b',"checksum":"') + 8 + len(b'"}')


def sealed(body: bytes) -> bytes:
    """`body` (a JSON object, compact, with at least one key) with its checksum as last key."""
    head = body[:-1]
    return b'%s,"checksum":"%08x"}' % (head, zlib.crc32(head))


def decode_document(data: bytes, where: str | os.PathLike) -> object:
    """The JSON value in `data`, its checksum checked and removed; InvalidDocument otherwise."""
    tail = _CHECKSUM_TAIL.search(data, max(0, len(data) - _CHECKSUM_TAIL_BYTES))
    if tail is not None and zlib.crc32(memoryview(data)[:tail.start()]) != int(tail.group(1), 16):
        raise InvalidDocument(where, "corrupt: checksum mismatch (its bytes changed after it "
                                     "was written)")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise InvalidDocument(where, f"not valid JSON ({error})") from None
    if isinstance(document, dict) and CHECKSUM_KEY in document:
        if tail is None:   # the key is there, not where and as it is written
            raise InvalidDocument(where, "corrupt: checksum mismatch (a damaged checksum)")
        del document[CHECKSUM_KEY]
    return document


def check_header(document: object, where: str | os.PathLike, kind: str | None = None,
                 name: str | None = None) -> dict:
    """`document` if it is a dict with a valid header (of `kind` `name` when given)."""
    if not isinstance(document, dict):
        raise InvalidDocument(where, "not a JSON object")
    if document.get("format") not in READABLE_FORMATS or type(document.get("format")) is not int:
        raise InvalidDocument(where, f"unknown format {document.get('format')!r}")
    change = document.get("change")
    if not isinstance(change, int) or isinstance(change, bool) or change < 0:
        raise InvalidDocument(where, "no valid change counter")
    if not isinstance(document.get("dropped", False), bool):
        raise InvalidDocument(where, "'dropped' is not a boolean")
    if document.get("kind") not in KINDS or not isinstance(document.get("name"), str):
        raise InvalidDocument(where, "no valid kind and name")
    if (kind is not None and document["kind"] != kind) or \
            (name is not None and document["name"] != name):
        raise InvalidDocument(where, f"kind/name {document['kind']} {document['name']!r} do not "
                                     f"match the path")
    return document


def check_document(data: bytes, where: str | os.PathLike, kind: str | None = None,
                   name: str | None = None) -> dict:
    """The decoded document in `data`, checked whole; InvalidDocument otherwise.

    The header as in `check_header`; a live object must also have the
    fields of its kind in the shape every reader relies on (a table's
    columns and rows of the columns' width, a view's query text, a
    domain's atoms). Values inside rows are not checked one by one: that
    would cost more than the decoding, and every writer checks them (the
    checksum finds a value changed since).
    """
    return check_body(check_header(decode_document(data, where), where, kind, name), where)


def check_body(document: dict, where: str | os.PathLike) -> dict:
    """`document` (its header checked) if the fields of its kind have their shape."""
    if document.get("dropped", False):
        return document
    body_kind = document["kind"]
    if body_kind == "table":
        _check_table(document, where)
    elif body_kind == "view":
        if not isinstance(document.get("query"), str):
            raise InvalidDocument(where, "a view without its query text")
    elif body_kind == "domain":
        _check_atoms(document.get("domain"), where, "the domain")
    elif body_kind == "grant":
        if document.get("right") not in RIGHTS:
            raise InvalidDocument(where, "a grant without a valid right")
    elif body_kind == "account":
        _check_account(document, where)
    elif body_kind == "database":
        if not isinstance(document.get("owner", ""), str):
            raise InvalidDocument(where, "a database marker whose owner is no name")
    return document


def _check_account(document: dict, where: str | os.PathLike) -> None:
    if not isinstance(document.get("admin"), bool):
        raise InvalidDocument(where, "an account without its admin flag")
    password = document.get("password")
    if not isinstance(password, dict) or password.get("scheme") != "scrypt" or not all(
            isinstance(password.get(key), str) for key in ("salt", "hash")) or not all(
            isinstance(password.get(key), int) and not isinstance(password.get(key), bool)
            for key in ("n", "r", "p")):
        raise InvalidDocument(where, "an account without a valid password hash")


def _check_table(document: dict, where: str | os.PathLike) -> None:
    columns = document.get("columns")
    if not isinstance(columns, list):
        raise InvalidDocument(where, "a table without its columns")
    for column in columns:
        if not isinstance(column, dict) or not isinstance(column.get("name"), str):
            raise InvalidDocument(where, "a column without a name")
        _check_atoms(column.get("domain"), where, f"column {column['name']!r}")
    rows = document.get("rows")
    if not isinstance(rows, list):
        raise InvalidDocument(where, "a table without its rows")
    width = len(columns)
    if not all(type(row) is list and len(row) == width for row in rows):
        raise InvalidDocument(where, f"a row that is not a list of {width} values")


def _check_atoms(atoms: object, where: str | os.PathLike, what: str) -> None:
    if not isinstance(atoms, list) or not all(
            isinstance(atom, dict) and atom.get("type") in ATOM_TYPES for atom in atoms):
        raise InvalidDocument(where, f"{what} has no valid domain")
