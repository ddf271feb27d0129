"""Object files written the way a server writes them, for tests that look at data directories.

- `document(rel, change, ...)`: a valid document for the object at `rel`
  (engine/storage/object_format.py checks it whole);
- `write_raw` / `write_object`: a snapshot put in place with a temp file and
  `os.replace` (one moved event, as from a server);
- `append_entries(root, rel, first_change, ops, ...)`: journal lines appended
  with engine/storage/journal.py (one modification and one close event, as a format
  2 store's commit), one line per version from `first_change` on;
- `journal_bytes`, `snapshot_bytes`: what is on disk.

- `ship(source_root, dest_root, rel)`: one object replicated by hand
  (engine/storage/object_copy.py, the replicator's own code).
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from engine.storage import journal
from engine.storage.object_state import journal_rel

TABLE = "school/tables/t.json"


def document(rel: str, change: int, dropped: bool = False, rows=None, format: int = 1) -> dict:
    parts = rel.split("/")
    if len(parts) == 2:
        return {"format": format, "kind": "database", "name": parts[0], "change": change,
                "dropped": dropped}
    kind = {"tables": "table", "views": "view", "domains": "domain"}[parts[1]]
    doc = {"format": format, "kind": kind, "name": parts[2][:-5], "change": change,
           "dropped": dropped}
    if dropped:
        return doc
    if kind == "table":
        doc["columns"] = [{"name": "a", "domain": [{"type": "ISA", "min": None, "max": None}]}]
        doc["rows"] = rows if rows is not None else [[change]]
    elif kind == "view":
        doc["query"] = "alaivo * ao@ t"
    else:
        doc["domain"] = [{"type": "DATY"}]
    return doc


def write_raw(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.{os.urandom(4).hex()}.tmp"
    temp.write_bytes(data)
    os.replace(temp, path)


def write_object(root: Path, rel: str, change: int, dropped: bool = False, rows=None,
                 format: int = 1) -> None:
    write_raw(root, rel, orjson.dumps(document(rel, change, dropped, rows, format)))


def entry_lines(first_change: int, ops: list[list]) -> bytes:
    """The journal lines of versions first_change, first_change + 1, ... (one op list each)."""
    return b"".join(journal.encode_entry(first_change + n, entry_ops)
                    for n, entry_ops in enumerate(ops))


def append_entries(root: Path, rel: str, first_change: int, ops: list[list]) -> bytes:
    """Append one line per version (each `ops` item is that version's op list); the lines.

    Under the directory's write lock, as a store's commit appends: the
    replicator's install of a copy (snapshot, then journal) holds it too.
    """
    from engine.storage.peers import DirectoryLock, holding

    lines = entry_lines(first_change, ops)
    lock = DirectoryLock(Path(root))
    try:
        with holding([lock]):
            for line in lines.splitlines(keepends=True):
                journal.append_line(root / journal_rel(rel), line, durable=False)
    finally:
        lock.close()
    return lines


def appended_rows(first_change: int, count: int) -> list[list]:
    """Op lists that append the row [change] at each version: what `document` rows look like."""
    return [[["append", [[first_change + n]]]] for n in range(count)]


def journal_bytes(root: Path, rel: str) -> bytes | None:
    try:
        return (root / journal_rel(rel)).read_bytes()
    except FileNotFoundError:
        return None


def snapshot_bytes(root: Path, rel: str) -> bytes | None:
    try:
        return (root / rel).read_bytes()
    except FileNotFoundError:
        return None


def ship(source_root: Path, dest_root: Path, rel: str) -> bool:
    """Bring `dest_root`'s copy of `rel` up to `source_root`'s, as replication does (one call).

    For tests that replicate one object by hand: engine/storage/object_copy.py's
    `bring_up_to_date`, under the destination's directory lock.
    """
    from engine.storage.object_copy import bring_up_to_date
    from engine.storage.peers import DirectoryLock

    lock = DirectoryLock(Path(dest_root))
    try:
        return bring_up_to_date(Path(source_root), Path(dest_root), rel, lock)
    finally:
        lock.close()
