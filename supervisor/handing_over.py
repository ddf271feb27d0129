"""run/handing-over.json: servers that left this machine's cluster before their newest copies
could all land elsewhere (another server's disk full, a file unreadable).

Until their copies land they stay the others' peers (pulled from on write, fenced against)
and their hand over is retried (supervisor/cluster.py `finish_hand_overs`). The file keeps
them across a `down` and an `up`, and carries those a `down` or an `up` found left by a
dead supervisor (supervisor/leftovers.py `hand_over_departed`) to the next supervisor.

One entry per server: `{"<id>": {"host": ..., "port": ..., "data": "<its directory>"}}`; a
server moved to another machine is listed by its old directory's id, `<id>~old` (its own id
names the new incarnation: supervisor/replication.py `old_directory_id`).
A damaged entry is logged and ignored: the file is read at every `up`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HANDING_OVER_FILE = "handing-over.json"


@dataclass(frozen=True)
class PendingHandOver:
    """A server whose hand over is still to finish."""

    server_id: str
    host: str
    port: int
    data: Path


def read_pending(run_dir: Path, logger: logging.Logger) -> list[PendingHandOver]:
    """The entries of the file (none when it is missing or unreadable as JSON)."""
    try:
        found = json.loads((run_dir / HANDING_OVER_FILE).read_text())
    except (OSError, ValueError):
        return []
    pending = []
    for server_id, entry in found.items() if isinstance(found, dict) else ():
        try:
            data = entry.get("data") if isinstance(entry, dict) else None
            if not isinstance(data, str) or not data:
                raise ValueError("no entry with a data directory")
            pending.append(PendingHandOver(server_id, str(entry.get("host")),
                                           int(entry.get("port") or 0), Path(data)))
        except (TypeError, ValueError):   # a hand-edited or damaged file
            logger.error("%s: %s lists it wrongly (%r): ignored", server_id, HANDING_OVER_FILE,
                         entry)
    return pending


def write_pending(run_dir: Path, pending: Iterable[PendingHandOver]) -> None:
    """Replace the file with `pending` (removed when there is none)."""
    from .cluster import write_if_changed  # (the one atomic write of run files)

    path = run_dir / HANDING_OVER_FILE
    entries = {item.server_id: {"host": item.host, "port": item.port, "data": str(item.data)}
               for item in pending}
    if not entries:
        path.unlink(missing_ok=True)
        return
    write_if_changed(path, json.dumps(entries) + "\n")


def add_pending(run_dir: Path, item: PendingHandOver, logger: logging.Logger) -> None:
    """Add (or replace) one server's entry, keeping the others."""
    kept = [other for other in read_pending(run_dir, logger) if other.server_id != item.server_id]
    write_pending(run_dir, [*kept, item])
