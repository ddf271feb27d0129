"""Object files for replication tests, written the way the engine writes them.

`document(rel, change, ...)` is a valid document for the object at `rel`
(engine/object_format.py checks it whole), `write_object` / `write_raw`
put one in place with a temp file and `os.replace` (one moved event, as
from a server), `read_change` reads a copy's counter back. The fixtures `dirs` and
`running` are in conftest.py.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import orjson

from tests.conftest import wait_until as shared_wait_until

DEADLINE_S = 10.0
TABLE = "school/tables/t.json"

wait_until = partial(shared_wait_until, deadline_s=DEADLINE_S, interval_s=0.005)


def document(rel: str, change: int, dropped: bool = False, rows=None) -> dict:
    parts = rel.split("/")
    if len(parts) == 2:
        return {"format": 1, "kind": "database", "name": parts[0], "change": change,
                "dropped": dropped}
    kind = {"tables": "table", "views": "view", "domains": "domain"}[parts[1]]
    doc = {"format": 1, "kind": kind, "name": parts[2][:-5], "change": change,
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


def write_object(root: Path, rel: str, change: int, dropped: bool = False, rows=None) -> None:
    write_raw(root, rel, orjson.dumps(document(rel, change, dropped, rows)))


def read_change(root: Path, rel: str) -> int | None:
    """The copy's change counter; None when there is no file or no valid JSON in it."""
    try:
        return orjson.loads((root / rel).read_bytes())["change"]
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None

