"""`./tahiry restore FILE`: a backup put in place for every server of this machine, cluster down.

Newest wins: replication carries the copy at the highest version of each
object everywhere, and a backup's copies are older than what the servers
hold now. Restoring one server's directory would be undone at the next
`up` by the others' newer copies (the README's warning). So a restore
replaces every directory that could bring a newer copy back, or refuses:

- every server of the topology on this machine gets the restored data (and
  keeps its directory's cluster record, `.tahiry.cluster`, so that `up`
  sees the same members: nobody is aligned or "joins");
- a topology with servers on other machines is refused (their directories
  cannot be replaced from here, and theirs would win);
- a cluster that runs is refused (a supervisor answering on the control
  port, nodes a dead supervisor left, any live owner of a server's
  directory: a server run by hand, an embedded client);
- a removed server still handing over its newest copies
  (run/handing-over.json) is refused: `up` would hand them over on top of
  the restored data (let it finish, or remove that entry knowingly).

Order, so that a failure changes nothing: the archive is checked whole
(supervisor/backup_archive.py `check_archive`); then every server's
directory is held (its owner lock, as a running server holds it, and each
new directory's too once written, until the last rename: an `up`, a server
started by hand or another restore meanwhile is refused); then each server's new
directory is written beside the old one (`.<name>.restoring-*`, checked
again while written); only when all are ready is each old directory
renamed aside (`<name>.before-restore-<time>`, never deleted: the
operator removes it) and the new one renamed into its place. A failure
before the renames removes what was written beside; one among the renames
(a rename on one file system: not expected) puts back the ones done.

Killed among the renames (kill -9, a power cut), a restore would leave
some servers restored and the others with their old, newer copies, which
`up` would carry over the restored ones. So the renames to make are
written first, durably, to run/restore.json, which is removed once they
are all done; `up` (and the next `restore`) finish what such a file lists
before anything else (`finish_interrupted`): every new directory was
complete and checked before the first rename. Killed before the renames
(while it wrote the new directories), a restore changed nothing but left
its `.<name>.restoring-*` folders: `finish_interrupted` removes those that
no run/restore.json lists.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from engine.storage.atomic_files import atomic_write, fsync_folder
from engine.storage.data_owner import (
    CLUSTER_FILE,
    DirectoryTaken,
    OwnerLock,
    OwnerRecord,
    live_owner,
)

from .backup_archive import BadArchive, Manifest, check_archive, extract_archive
from .control import NotRunning, control_port_in_force, send_command
from .errors import SupervisorError
from .handing_over import read_pending
from .leftovers import find_leftovers
from .ownership import cluster_id
from .topology import Topology

log = logging.getLogger(__name__)

PENDING_FILE = "restore.json"   # run/restore.json: a restore's renames, until all are done


class RestoreRefused(SupervisorError):
    """The restore was not done (one sentence); nothing was changed."""


@dataclass(frozen=True)
class Placed:
    """One server's directory: restored at `data`, its previous one kept at `kept` (or None)."""

    server: str
    data: Path
    kept: Path | None


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    placed: list[Placed]


def running_problem(topology: Topology) -> str | None:
    """Why the cluster counts as running for a restore (None: it is down)."""
    port = control_port_in_force(topology.supervisor.run, topology.supervisor.control_port)
    try:
        hello = send_command(port, {"cmd": "hello"}, timeout_s=2)
        if hello.get("topology") == cluster_id(topology):
            return (f"the cluster runs (supervisor pid {hello.get('pid')}, control port "
                    f"{port}): stop the cluster first (`./tahiry down`)")
    except NotRunning:
        pass   # (another program, or another cluster's supervisor: not this cluster)
    scan = find_leftovers(topology)
    if scan.supervisor_alive:
        return (f"the supervisor of this cluster (pid {scan.supervisor_pid}) still runs: stop "
                f"it first")
    if scan.nodes:
        return (f"nodes a dead supervisor left still run ({', '.join(n.node for n in scan.nodes)}):"
                f" `./tahiry down` stops them")
    owned = _owned_problem(topology)
    if owned is not None:
        return owned
    pending = read_pending(topology.supervisor.run, log)
    if pending:
        return (f"removed server(s) still handing over their newest copies "
                f"({', '.join(item.server_id for item in pending)}, run/handing-over.json): "
                f"`up` would carry them over the restored data; let their hand over finish "
                f"first")
    return None


def topology_problem(topology: Topology) -> str | None:
    if any(topology.nodes[node].kind == "server" for node in topology.remote):
        return ("the topology has servers on other machines: their newer copies would win "
                "over the restored ones (restoring a cluster of several machines is not "
                "supported yet)")
    if not topology.local_of_kind("server"):
        return "this machine runs no server of the topology"
    return None


def restore(topology: Topology, archive: Path, now: datetime.datetime | None = None
            ) -> RestoreResult:
    """Put the backup at `archive` in place for every server of this machine (module
    docstring). Raises RestoreRefused or BadArchive, having changed nothing."""
    problem = topology_problem(topology) or running_problem(topology)
    if problem is not None:
        raise RestoreRefused(problem)
    servers = sorted(topology.local_of_kind("server"), key=lambda spec: spec.id)
    targets = [(spec.id, Path(os.path.realpath(spec.data_dir))) for spec in servers]
    manifest = check_archive(archive).manifest   # whole, before anything is written
    missing = {data for _, data in targets if not os.path.lexists(data)}
    # Every server's directory held for the rest of the restore (its owner lock, as a
    # running server holds it): an `up` or another restore meanwhile is refused, naming it.
    held = _hold(topology, [data for _, data in targets])
    try:
        # (An earlier restore killed midway first; the locks are this restore's own.)
        for line in finish_interrupted(topology, owners_checked=True):
            log.warning("%s", line)
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        staged: list[tuple[str, Path, Path]] = []
        try:
            for server_id, data in targets:
                staged.append((server_id, data, _stage(archive, data)))
            for _, _, folder in staged:
                if extract_archive(archive, folder).manifest != manifest:
                    raise BadArchive(f"{archive} changed while it was restored")
            # The new directories held too: once renamed in, nothing starts on them
            # before every rename is done.
            held += _hold(topology, [folder for _, _, folder in staged])
        except BaseException:
            for _, _, folder in staged:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        placed = _swap(topology, staged, stamp)
    finally:
        for lock in held:
            lock.release()
    for index, item in enumerate(placed):
        if item.data in missing and item.kept is not None:
            # (Made here only to be held: nothing of a server's is in it.)
            shutil.rmtree(item.kept, ignore_errors=True)
            placed[index] = Placed(item.server, item.data, None)
    return RestoreResult(manifest, placed)


def _hold(topology: Topology, folders: list[Path]) -> list[OwnerLock]:
    """The owner locks of `folders` (made if missing) for this process; RestoreRefused
    (none held) when one is taken."""
    record = OwnerRecord(node="restore", pid=os.getpid(), host="localhost", port=0,
                         cluster=cluster_id(topology), started=time.time())
    held: list[OwnerLock] = []
    try:
        for folder in folders:
            held.append(OwnerLock.acquire(folder, record))
    except (DirectoryTaken, OSError) as error:
        for lock in held:
            lock.release()
        raise RestoreRefused(f"cannot hold {folder}: {error}") from None
    return held


def _staging_prefix(data: Path) -> str:
    """The name a server's new directory is written under, beside `data`, before its rename."""
    return f".{data.name}.restoring-"


def _kept_prefix(data: Path) -> str:
    """The name the directory a restore replaced is kept under, beside it."""
    return f"{data.name}.before-restore-"


def _stage(archive: Path, data: Path) -> Path:
    """An empty folder beside `data` for its new content, with the old one's mode and
    cluster record."""
    data.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=_staging_prefix(data), dir=data.parent))
    try:
        mode = stat.S_IMODE(os.stat(data).st_mode) if data.is_dir() else 0o700
        os.chmod(folder, mode | stat.S_IRWXU)
        record = data / CLUSTER_FILE
        if record.is_file() and not record.is_symlink():
            shutil.copy2(record, folder / CLUSTER_FILE)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


@dataclass(frozen=True)
class _Rename:
    """One server's renames: `data` aside to `kept` (None: there was none), `staged` in."""

    server: str
    data: Path
    staged: Path
    kept: Path | None


def _swap(topology: Topology, staged: list[tuple[str, Path, Path]], stamp: str) -> list[Placed]:
    plan = [_Rename(server_id, data, folder,
                    _free_name(data.parent / f"{_kept_prefix(data)}{stamp}")
                    if os.path.lexists(data) else None)
            for server_id, data, folder in staged]
    pending = topology.supervisor.run / PENDING_FILE
    try:
        pending.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(pending, json.dumps({"renames": [
            {"server": item.server, "data": str(item.data), "staged": str(item.staged),
             "kept": str(item.kept) if item.kept is not None else None}
            for item in plan]}, indent=1).encode())
    except OSError as error:
        for item in plan:
            shutil.rmtree(item.staged, ignore_errors=True)
        raise RestoreRefused(f"cannot write {pending} ({error.strerror or error})") from None
    done: list[_Rename] = []
    try:
        for item in plan:
            try:
                _rename_in(item)
            except OSError:
                if item.kept is not None and not os.path.lexists(item.data):
                    os.rename(item.kept, item.data)   # (aside, and the new one not in)
                raise
            done.append(item)
    except OSError as error:
        for item in reversed(done):   # put the old directories back
            os.rename(item.data, item.staged)
            if item.kept is not None:
                os.rename(item.kept, item.data)
        for item in plan:
            shutil.rmtree(item.staged, ignore_errors=True)
        pending.unlink(missing_ok=True)
        raise RestoreRefused(f"a directory could not be put in place ({error}); every old "
                             f"directory is back where it was") from None
    pending.unlink()
    fsync_folder(pending.parent)
    return [Placed(item.server, item.data, item.kept) for item in done]


def _rename_in(item: _Rename) -> None:
    """The old directory aside and the new one in (what is not done yet of it), durably."""
    if item.kept is not None and os.path.lexists(item.data) and not os.path.lexists(item.kept):
        os.rename(item.data, item.kept)
    os.rename(item.staged, item.data)
    fsync_folder(item.data.parent)


def finish_interrupted(topology: Topology, owners_checked: bool = False) -> list[str]:
    """The renames a restore killed midway left undone (run/restore.json), done; a line per
    server finished. RestoreRefused (nothing changed) when the file does not describe this
    topology's servers' directories and the folders restore made beside them, or (unless
    `owners_checked`: the caller holds them) when a live process owns one of those
    directories: a restore still running, or servers started by hand."""
    pending = topology.supervisor.run / PENDING_FILE
    try:
        text = pending.read_text()
    except FileNotFoundError:
        if not owners_checked and _unlisted_staging(topology):
            _refuse_if_owned(topology)
        return _remove_unlisted_staging(topology)
    except OSError as error:
        raise RestoreRefused(f"cannot read {pending} ({error.strerror or error})") from None
    plan = _read_plan(topology, pending, text)
    if not owners_checked:
        _refuse_if_owned(topology)
    lines = []
    for item in plan:
        if os.path.lexists(item.staged):   # (gone: that server's renames were done)
            _rename_in(item)
            lines.append(f"{item.server}: the restore interrupted earlier finished "
                         f"({item.data} restored"
                         + (f", its previous directory at {item.kept})" if item.kept else ")"))
    pending.unlink()
    fsync_folder(pending.parent)
    return lines + _remove_unlisted_staging(topology)


def _unlisted_staging(topology: Topology) -> list[tuple[str, str]]:
    """(server, path) of the `.<dir>.restoring-*` folders beside the servers' directories."""
    found = []
    for spec in sorted(topology.local_of_kind("server"), key=lambda spec: spec.id):
        data = Path(os.path.realpath(spec.data_dir))
        try:
            found += [(spec.id, entry.path) for entry in os.scandir(data.parent)
                      if entry.name.startswith(_staging_prefix(data))
                      and entry.is_dir(follow_symlinks=False)]
        except OSError:
            continue
    return found


def _remove_unlisted_staging(topology: Topology) -> list[str]:
    """The `.<dir>.restoring-*` folders beside the servers' directories, once no
    run/restore.json lists them: a restore killed while it wrote them (before its renames,
    the old directories still in force) left them, each a whole copy of the data, and
    nothing else would ever remove them. A line per folder removed."""
    lines = []
    for server, path in _unlisted_staging(topology):
        shutil.rmtree(path, ignore_errors=True)
        lines.append(f"{server}: removed {path}, left by a restore interrupted "
                     f"before its renames (nothing of it was in place)")
    return lines


def _owned_problem(topology: Topology) -> str | None:
    """Which server's directory a live process owns (a server, a restore), if one does."""
    for spec in sorted(topology.local_of_kind("server"), key=lambda spec: spec.id):
        owner = live_owner(spec.data_dir)
        if owner is not None:
            return f"{spec.id}: data directory {spec.data} is in use by {owner.describe()}"
    return None


def _refuse_if_owned(topology: Topology) -> None:
    owned = _owned_problem(topology)
    if owned is not None:
        raise RestoreRefused(f"{owned} (a restore still running?): the interrupted restore "
                             f"is left as it is")


def _read_plan(topology: Topology, pending: Path, text: str) -> list[_Rename]:
    """run/restore.json's renames, each checked against the topology (never a rename
    elsewhere than beside a server's own directory, named the way restore names them)."""
    bad = RestoreRefused(f"{pending} is not a restore's list of renames (damaged or "
                         f"written by hand?): nothing done; remove it once each server's "
                         f"directory is as it should be")
    try:
        entries = json.loads(text)["renames"]
        servers = {spec.id: Path(os.path.realpath(spec.data_dir))
                   for spec in topology.local_of_kind("server")}
        plan = []
        for entry in entries:
            data, staged = Path(entry["data"]), Path(entry["staged"])
            kept = Path(entry["kept"]) if entry["kept"] is not None else None
            if servers.get(entry["server"]) != data \
                    or staged.parent != data.parent \
                    or not staged.name.startswith(_staging_prefix(data)) \
                    or (kept is not None and (kept.parent != data.parent or not kept.name
                                              .startswith(_kept_prefix(data)))):
                raise bad
            plan.append(_Rename(entry["server"], data, staged, kept))
    except (ValueError, KeyError, TypeError):
        raise bad from None
    return plan


def _free_name(path: Path) -> Path:
    candidate, count = path, 1
    while os.path.lexists(candidate):
        candidate = path.with_name(f"{path.name}.{count}")
        count += 1
    return candidate


def cluster_note(topology: Topology, manifest: Manifest) -> str | None:
    """A line to say when the backup was taken from another cluster (still restored)."""
    if manifest.cluster == cluster_id(topology):
        return None
    return f"note: the backup was taken from another cluster ({manifest.cluster})"
