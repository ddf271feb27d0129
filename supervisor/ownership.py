"""A data directory belongs to one cluster: what `up` and a hot reload check before starting anything.

A cluster is named by the absolute path of its topology file. Every
supervisor command already names a cluster that way (`up` compares it with
the running supervisor's answer, the run directory sits beside it), it
stays the same across restarts, needs no state of its own, and tells a
person at once which cluster an error is about. Two topology files, even
identical copies, are two clusters.

Each server's data directory records the cluster that last used it
(`.tahiry.cluster`) and, while a server runs on it, who holds it
(`.tahiry.owner`, a lock held for the server's life): engine/storage/data_owner.py.
`up` refuses, before anything starts, a topology whose data directory is

- held by a live process that is not one of this cluster's own servers
  (a hand-run server, or another cluster's): it must be stopped first,
  even with `--take-over`;
- recorded as another cluster's, even while that cluster is stopped,
  unless `--take-over` hands it over deliberately (refused while that
  cluster's supervisor still runs).

Refusing the supervisor at `up` is also what keeps its replicator (which
copies into every server's directory, running or not) out of directories
that belong to another cluster. Once accepted, `claim` records this
cluster in every server's directory.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path

import psutil

from engine.storage.data_owner import (
    ClusterRecord,
    leave_cluster,
    live_owner,
    read_cluster,
    write_cluster,
)

from .topology import NodeSpec, Topology

log = logging.getLogger(__name__)


def cluster_id(topology: Topology) -> str:
    """The cluster's name: the absolute path of its topology file."""
    return str(topology.path)


def directory_problem(folder: Path) -> str | None:
    """Why a server could not write `folder` (None: it can): read only, or not to be made.
    Nothing is left behind: a folder still to be made is tried beside where it would be
    (made and removed at once), an existing one is only looked at."""
    existing = folder
    while not existing.is_dir():
        if existing.parent == existing:
            return "cannot be made: no folder above it exists"
        existing = existing.parent
    try:
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        return f"cannot be written: {existing} is on a read-only file system"
    if existing == folder:
        if not os.access(folder, os.W_OK | os.X_OK):
            return "cannot be written by this user"
        return None
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tahiry-probe-", dir=existing))
    except OSError as error:
        return f"cannot be made in {existing}: {error.strerror or error}"
    return None


def ownership_problems(topology: Topology, take_over: bool = False,
                       leftover_pids: frozenset[int] = frozenset()) -> list[str]:
    """One sentence per server whose data directory this cluster may not use (empty: all fine).

    `leftover_pids`: this cluster's own nodes left running by a supervisor
    that died (supervisor/leftovers.py); they hold their directories and
    are stopped by `up` before anything starts.
    """
    ours = cluster_id(topology)
    problems = []
    for spec in topology.local_of_kind("server"):
        if (unusable := directory_problem(spec.data_dir)) is not None:
            problems.append(f"{spec.id}: data directory {spec.data} {unusable}")
            continue
        owner = live_owner(spec.data_dir)
        if owner is not None and owner.cluster != ours and owner.pid not in leftover_pids:
            problems.append(f"{spec.id}: data directory {spec.data} is in use by "
                            f"{owner.describe()}; stop it first")
            continue
        claim = read_cluster(spec.data_dir)
        if claim is None or claim.cluster == ours:
            continue
        if not take_over:
            problems.append(
                f"{spec.id}: data directory {spec.data} belongs to cluster {claim.cluster}; "
                f"to hand it over to this cluster deliberately, stop that cluster and run "
                f"`python -m supervisor up {topology.path} --take-over`")
        elif _supervisor_alive(claim):
            problems.append(
                f"{spec.id}: data directory {spec.data} belongs to cluster {claim.cluster}, whose "
                f"supervisor (pid {claim.supervisor_pid}) still runs; stop it first "
                f"(`python -m supervisor down {claim.cluster}`)")
    return problems


def claim(topology: Topology, supervisor_pid: int,
          logger: logging.Logger | None = None) -> list[str]:
    """Record this cluster in each server's data directory; the servers handed over to it.

    A directory that cannot be written now (read-only, disk full) is logged
    and left as it is: its server still starts and serves what it can.
    """
    ours = cluster_id(topology)
    taken = []
    for spec in topology.local_of_kind("server"):
        if topology.accounts.enabled:
            _keep_private(spec.data_dir, spec.id, logger or log)
        current = read_cluster(spec.data_dir)
        if current is not None and current.cluster != ours:
            taken.append(f"{spec.id} ({spec.data}, from {current.cluster})")
        if current is None or current.cluster != ours or current.supervisor_pid != supervisor_pid:
            try:
                write_cluster(Path(spec.data_dir), ours, supervisor_pid)
            except OSError as error:
                (logger or log).warning(
                    "%s: cannot record this cluster in %s: %s", spec.id, spec.data, error)
    return taken


def _keep_private(data_dir: Path, server_id: str, logger: logging.Logger) -> None:
    """With accounts on, only the cluster's user may enter a server's directory: its files
    hold every account's tables and password hash, which no other user of the machine
    may read around the rights (the files inside keep their modes; this folder guards
    them)."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(data_dir.stat().st_mode) != 0o700:
            data_dir.chmod(0o700)
    except OSError as error:
        logger.warning("%s: cannot make %s private (mode 0700): %s", server_id, data_dir, error)


def joining_servers(topology: Topology) -> list[str]:
    """This machine's servers whose directory does not record this cluster while others do:
    new ones, or ones removed from the topology (`release`) and added back while the
    cluster was stopped. `up` aligns them on the members before replication starts (a
    directory written while it was out must not win over acknowledged writes); with no
    member at all (a first `up`), there is nobody to align on: [] ."""
    ours = cluster_id(topology)
    servers = topology.local_of_kind("server")
    members = {spec.id for spec in servers
               if (record := read_cluster(spec.data_dir)) is not None and record.cluster == ours}
    return [spec.id for spec in servers if spec.id not in members] if members else []


def release(topology: Topology, server_id: str, logger: logging.Logger | None = None) -> None:
    """A server removed from the topology: its directory no longer records this cluster."""
    release_directory(topology, topology.nodes[server_id], logger)


def release_directory(topology: Topology, spec: NodeSpec,
                      logger: logging.Logger | None = None) -> None:
    """`spec`'s directory, which no server of `topology` uses any more (a removed server's,
    or the old one of a server moved to another machine), no longer records this cluster."""
    try:
        leave_cluster(Path(spec.data_dir), cluster_id(topology))
    except OSError as error:
        (logger or log).warning("%s: cannot clear this cluster's record in %s: %s", spec.id,
                                spec.data, error)


def _supervisor_alive(claim: ClusterRecord) -> bool:
    """Whether the supervisor that made `claim` still runs (a reused pid is not it)."""
    if not claim.supervisor_pid or claim.supervisor_pid == os.getpid():
        return False
    try:
        process = psutil.Process(claim.supervisor_pid)
        argv = process.cmdline()
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
    except (psutil.Error, ValueError):
        return False
    # Its topology argument may be relative to its own folder: the command is enough.
    return "supervisor" in argv and "up" in argv
