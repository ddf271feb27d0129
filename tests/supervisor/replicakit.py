"""Object files for replication tests, written the way the engine writes them.

`document`, `write_object`, `write_raw` and the journal helpers are
tests/objectkit.py's (snapshots and journal lines as a server writes them);
`read_change` reads a copy's snapshot counter back, `version` a copy's
version (snapshot and journal). The fixtures `dirs` and `running` are in
conftest.py.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import orjson

from engine.storage.object_state import version_of
from tests.conftest import wait_until as shared_wait_until
from tests.objectkit import (  # noqa: F401
    TABLE,
    append_entries,
    appended_rows,
    document,
    entry_lines,
    journal_bytes,
    snapshot_bytes,
    write_object,
    write_raw,
)

DEADLINE_S = 10.0

wait_until = partial(shared_wait_until, timeout_s=DEADLINE_S, interval_s=0.005)


def read_change(root: Path, rel: str) -> int | None:
    """The copy's change counter; None when there is no file or no valid JSON in it."""
    try:
        return orjson.loads((root / rel).read_bytes())["change"]
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None


def version(root: Path, rel: str) -> int | None:
    """The copy's version (snapshot and journal); None when there is none or it does not read."""
    try:
        found = version_of(root, rel)
    except (ValueError, OSError):
        return None
    return found.change if found is not None else None
