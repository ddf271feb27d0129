"""The `backup` control command: one archive of the running cluster's data, at one point in time.

`./tahiry backup [--to FILE]` (supervisor/cli.py) sends `{"cmd": "backup",
"to": ABSOLUTE_PATH}` with the control token; the running supervisor
answers it here. Why the supervisor and not the CLI or a server:

- it knows which servers are up to date (RUNNING and writable: caught up
  after a restart) and which directories a commit certifies against (every
  server of this machine, and the removed ones still handing over), which
  are exactly the directories whose commit locks make a point in time
  (supervisor/backup_point.py);
- it already takes those locks (replication) and reads copies without
  following symlinks (supervisor/objectfiles.py), so nothing new is trusted;
- the control token keeps it an operator's command, and one backup at a
  time (`BackupDesk`) keeps its staging links its own.

A server admin request would need a server that holds every other
server's lock and reads their directories: the supervisor's job already.

The work runs on a thread (the event loop keeps probing the nodes): the
point (writes paused for the locks only), the copies checked and written
to a temp file beside the target, the manifest last, the file put in place
without replacing anything, then read back whole and checked
(supervisor/backup_archive.py `check_archive`) before the answer says it
is done. The temp file's path is written to run/backup.json before it is
made and that record removed once it is gone: a supervisor killed while
it wrote one (kill -9) left it wherever `--to` pointed (a part of every
table and the accounts' password hashes), and the next supervisor to
start, or the next backup, removes it (`clear_interrupted`); the point's
links are removed by the next backup (`clear_staging`). Servers on other
machines refuse the command: their writes are
certified against this machine's locks but a write they acknowledged may
not have reached this machine yet (not covered: docs/STORAGE.md).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.storage.atomic_files import TEMP_SUFFIX, atomic_write, temp_path_for, unlink_quietly
from engine.storage.object_state import journal_rel

from .backup_archive import (
    ArchivedObject,
    ArchiveWriter,
    BadArchive,
    Manifest,
    check_archive,
)
from .backup_point import PointNotTaken, Source, clear_staging, take_point
from .errors import SupervisorError
from .keeper import NodeState

if TYPE_CHECKING:
    from .cluster import Cluster


RECORD_FILE = "backup.json"   # run/backup.json: the temp archive being written, until gone


class BackupRefused(SupervisorError):
    """The backup cannot be made (one sentence); no archive was left behind."""


@dataclass(frozen=True)
class BackupResult:
    path: str
    server: str
    servers: list[str]
    objects: int
    bytes: int
    lock_wait_ms: float
    paused_ms: float
    seconds: float
    from_others: dict[str, str]        # object -> the server whose copy was newer
    skipped: dict[str, str]            # "server: object" -> why it was left out

    def as_dict(self) -> dict:
        return asdict(self)


def default_name(now: float | None = None) -> str:
    """`tahiry-backup-YYYYMMDD-HHMMSS.tar.gz`, local time."""
    stamp = datetime.datetime.fromtimestamp(now if now is not None else time.time())
    return stamp.strftime("tahiry-backup-%Y%m%d-%H%M%S.tar.gz")


def target_problem(target: Path) -> str | None:
    """Why the archive cannot be written at `target` (None: it can)."""
    if not target.is_absolute():
        return f"{target}: give an absolute path"
    if os.path.lexists(target):
        return f"{target} already exists: a backup never replaces a file"
    if not target.parent.is_dir():
        return f"{target.parent} is no folder"
    if not os.access(target.parent, os.W_OK | os.X_OK):
        return f"{target.parent} cannot be written by this user"
    return None


def backup_sources(cluster: Cluster) -> list[Source]:
    """Every directory a commit here certifies against, the chosen server first: the first
    RUNNING, writable server (by id), else the first server."""
    topology = cluster.topology
    if any(topology.nodes[node].kind == "server" for node in topology.remote):
        raise BackupRefused("the topology has servers on other machines: a backup of one "
                            "machine could miss what they acknowledged (not supported yet)")
    servers = sorted(topology.local_of_kind("server"), key=lambda spec: spec.id)
    if not servers:
        raise BackupRefused("this machine runs no server")

    def up_to_date(server_id: str) -> bool:
        keeper = cluster.keepers.get(server_id)
        return keeper is not None and keeper.state is NodeState.RUNNING \
            and cluster.writable.get(server_id, True)
    servers.sort(key=lambda spec: not up_to_date(spec.id))   # stable: by id within each
    sources = [Source(spec.id, spec.data_dir) for spec in servers]
    sources += [Source(server_id, spec.data_dir)
                for server_id, spec in sorted(cluster.handing_over.items())]
    return sources


def clear_interrupted(run: Path) -> str | None:
    """The temp archive a backup killed midway left (run/backup.json names it), removed;
    a line saying so, or None when there was none."""
    record = run / RECORD_FILE
    try:
        temp = Path(json.loads(record.read_text())["temp"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        unlink_quietly(record)   # (a record cut by a crash: its temp name is lost)
        return f"{record} was unreadable: removed"
    line = None
    # Only a name the writer makes (`.<target>.<12 hex>.tmp`), never a file of another name.
    if temp.is_absolute() and temp.name.startswith(".") and temp.name.endswith(TEMP_SUFFIX) \
            and os.path.isfile(temp) and not os.path.islink(temp):
        unlink_quietly(temp)
        line = f"removed {temp}, the unfinished archive of a backup interrupted earlier"
    unlink_quietly(record)
    return line


def make_backup(cluster_id: str, sources: list[Source], target: Path,
                run: Path | None = None) -> BackupResult:
    """Take the point, write the archive at `target`, check it back (blocking: a thread).
    With `run`, the temp archive is recorded in run/backup.json while it exists."""
    started = time.monotonic()
    clear_staging(sources)
    point = take_point(sources)
    try:
        temp = temp_path_for(target)
        if run is not None:   # (before the file exists: a kill right after leaves it named)
            atomic_write(run / RECORD_FILE, json.dumps({"temp": str(temp)}).encode())
        writer = ArchiveWriter(target, temp)
        try:
            objects = []
            for copy in point.copies():
                writer.add(copy.rel, copy.snapshot)
                if copy.journal:
                    writer.add(str(journal_rel(copy.rel)), copy.journal)
                objects.append(ArchivedObject(copy.rel, copy.version, copy.source))
            for name, data in point.markers.items():
                writer.add(name, data)
            manifest = Manifest(
                cluster=cluster_id, server=point.server,
                taken=datetime.datetime.fromtimestamp(point.taken, datetime.UTC).isoformat(),
                lock_wait_ms=round(point.lock_wait_s * 1000, 3),
                paused_ms=round(point.paused_s * 1000, 3), servers=point.servers,
                objects=objects, files=writer.files)
            writer.finish(manifest)
        except BaseException:
            writer.abort()
            raise
    finally:
        point.discard()
        if run is not None:
            unlink_quietly(run / RECORD_FILE)   # (the temp file is gone: put in place or not)
    try:
        checked = check_archive(target)
    except BadArchive as error:   # never expected: a disk that does not give back what it got
        raise BackupRefused(f"the archive written does not read back whole ({error}); "
                            f"it is left at {target} for inspection") from None
    if checked.manifest != manifest:
        raise BackupRefused(f"the archive written reads back another manifest; it is left at "
                            f"{target} for inspection")
    return BackupResult(
        path=str(target), server=point.server, servers=point.servers, objects=len(objects),
        bytes=target.stat().st_size, lock_wait_ms=manifest.lock_wait_ms,
        paused_ms=manifest.paused_ms, seconds=round(time.monotonic() - started, 3),
        from_others={item.rel: item.source for item in objects if item.source != point.server},
        skipped=dict(point.refused))


class BackupDesk:
    """The supervisor's side of the command: one backup at a time."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self._busy = asyncio.Lock()

    def clear_interrupted(self) -> None:
        """At the supervisor's start: the temp archive of a backup its predecessor was
        killed while writing, removed."""
        try:
            line = clear_interrupted(self.cluster.topology.supervisor.run)
        except OSError as error:
            line = f"a backup interrupted earlier: {error}"
        if line is not None:
            self.cluster.logger.warning("backup: %s", line)

    async def handle(self, request: dict) -> dict:
        to = request.get("to")
        if not isinstance(to, str) or not to:
            return {"ok": False, "error": 'backup needs "to": the archive\'s absolute path'}
        target = Path(to)
        if (problem := target_problem(target)) is not None:
            return {"ok": False, "error": f"no backup made: {problem}"}
        if self._busy.locked():
            return {"ok": False, "error": "no backup made: another backup is being made; "
                                          "try again once it is done"}
        async with self._busy:
            try:
                sources = backup_sources(self.cluster)
                self.clear_interrupted()
                result = await asyncio.to_thread(
                    make_backup, str(self.cluster.topology.path), sources, target,
                    self.cluster.topology.supervisor.run)
            except (BackupRefused, PointNotTaken, BadArchive) as error:
                return {"ok": False, "error": f"no backup made: {error}"}
            except OSError as error:
                return {"ok": False, "error": f"no backup made: {target}: "
                                              f"{error.strerror or error}"}
        self.cluster.logger.info(
            "backup: %s (%d objects, %d bytes) from %s; writes paused %.1f ms", result.path,
            result.objects, result.bytes, result.server, result.paused_ms)
        return {"ok": True, "backup": result.as_dict()}
