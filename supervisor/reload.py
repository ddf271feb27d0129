"""Hot reload: apply an edit of topology.yaml to the running cluster as a difference.

`TopologyWatcher` (watchdog on the file's folder) notices the edit, waits a
short moment for the editor to finish writing, and calls back with the new
text. `diff_topologies` compares node by node, by the command line each node
would run with: a balancer whose backend list changed is not restarted (its
backends file is rewritten), a proxy cache whose upstream moved is. Servers
changed on their own directories (new flags, a new port: `supervisor:
local_sockets` flipped changes every one) are restarted one at a time, each
out of the balancers and back in, answering, before the next
(`rolled_servers`, `Cluster.restart_server`): never all down at once. An
invalid file changes nothing: `reload_topology` reports the error and leaves
the cluster as it was. So does a file naming a data directory that another
cluster or another live process owns (supervisor/ownership.py): a new
server is seeded by replication before it starts, and that copy must never
land in someone else's directory. And so does a file giving a node a port
another program holds (supervisor/port_check.py): checked before any node
is stopped, since the new node could only crash-loop into FATAL. An edit of
the `accounts:` section is refused too (`accounts_change`): turning accounts
off would open every student's database to every connection, turning them on
would need the administrator's password that only `up` asks for, so it takes
a `down` and an `up`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from .cluster import Cluster, node_command
from .machine import place
from .ownership import claim, ownership_problems, release_directory
from .port_check import addresses, port_problems
from .replication import old_directory_id
from .topology import Topology, TopologyError, load_topology, read_regular

DEBOUNCE_S = 0.15


@dataclass
class TopologyDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    settings_changed: list[str] = field(default_factory=list)  # need a new `up`

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def describe(self) -> str:
        parts = [f"{label} {', '.join(ids)}" for label, ids in
                 (("added", self.added), ("removed", self.removed), ("changed", self.changed))
                 if ids]
        return "; ".join(parts) or "no node changed"


def diff_topologies(old: Topology, new: Topology) -> TopologyDiff:
    diff = TopologyDiff()
    # The run folder stays this run's (`apply_topology`; a new one waits for the next
    # `up`): the commands the nodes would get, and so their sockets, are judged there.
    run_dir = old.supervisor.run
    for node_id in new.nodes:
        if node_id not in old.nodes:
            diff.added.append(node_id)
        elif node_command(old, node_id, run_dir) != node_command(new, node_id, run_dir):
            diff.changed.append(node_id)
        else:
            diff.unchanged.append(node_id)
    diff.removed = [node_id for node_id in old.nodes if node_id not in new.nodes]
    for name in ("control_port", "logs", "run"):
        if getattr(old.supervisor, name) != getattr(new.supervisor, name):
            diff.settings_changed.append(f"supervisor.{name}")
    if old.replication_enabled != new.replication_enabled:
        diff.settings_changed.append("replication.enabled")
    return diff


async def apply_topology(cluster: Cluster, new: Topology) -> TopologyDiff:
    """Bring the running cluster to `new`, touching only what differs."""
    old = cluster.topology
    diff = diff_topologies(old, new)
    for setting in diff.settings_changed:
        cluster.logger.warning("reload: %s changed; it takes effect at the next `up`", setting)
    # Health/restart settings apply to nodes (re)started from now on; the
    # folders and the control port stay those of this run.
    new = replace(new, replication_enabled=old.replication_enabled,
                  supervisor=replace(new.supervisor, control_port=old.supervisor.control_port,
                                     logs=old.supervisor.logs, run=old.supervisor.run))
    # A server of another machine removed here may hold writes it acknowledged that its
    # machine's replicator has not shipped (that supervisor dead, stalled, or applying the
    # edit later): listed `leaving`, it writes nothing more (no peer fences for it), and
    # its newest copies are pulled here before it goes (pull on write no longer would).
    cluster.leaving = {node_id: old.nodes[node_id] for node_id in diff.removed
                       if old.nodes[node_id].kind == "server" and not old.runs_here(node_id)}
    # A server of this machine removed or changed stays the others' peer (its old
    # directory) until it is stopped and has handed over: until then it may acknowledge
    # writes, and a peer that no longer pulled from it nor fenced against it would commit
    # the same counter with other rows (one of the two acknowledged writes lost).
    cluster.departing = {node_id: old.nodes[node_id] for node_id in diff.removed + diff.changed
                         if old.nodes[node_id].kind == "server" and old.runs_here(node_id)}
    # A server another machine ran, removed or moved by the edit (here or to a third
    # machine): its old machine may keep its directory, holding writes it acknowledged
    # that nobody else has, while its copies cannot all land; it serves it at the server's
    # old address
    # (`Cluster.serve_old_directory`). Every server here pulls from it and certifies
    # against it (and a server moved here starts from its copies: its seed pulls them)
    # until that machine says the hand over is done.
    # (Unless that machine's supervisor does not answer: a server moved off a dead machine.)
    await cluster.elsewhere.still_held(old_directories_elsewhere(old, new, diff))
    cluster.topology = new
    cluster.write_peers_files()  # running servers learn about added / removed peers
    cluster.replication.set_remote(cluster.remote_peers())
    if cluster.leaving:
        try:
            for server in new.local_of_kind("server"):
                if server.id in diff.added or not cluster.replication.known(server.id):
                    continue
                try:
                    await cluster.replication.catch_up(server.id)
                except Exception:   # one server's pull must not leave the peers `leaving`
                    cluster.logger.exception("reload: %s could not pull from %s", server.id,
                                             ", ".join(sorted(cluster.leaving)))
            cluster.logger.info("reload: %s left; their newest copies were pulled here first",
                                ", ".join(sorted(cluster.leaving)))
        finally:
            cluster.leaving = {}
            cluster.write_peers_files()
            cluster.replication.set_remote(cluster.remote_peers())
    # Servers changed on their own directories (new flags, a new port: `supervisor:
    # local_sockets` flipped changes them all) restart one at a time, each back in the
    # balancers and answering before the next goes (restarted together, for a moment none
    # would answer), and first, while the balancers that may change too still route to
    # the others. (Started again as they stopped, still replicated: below.)
    rolling = rolled_servers(old, new, diff)
    for node_id in rolling:
        if not await cluster.restart_server(node_id, new_command=True):
            cluster.logger.warning("reload: %s does not run again after its restart", node_id)
    changed = [node_id for node_id in diff.changed if node_id not in rolling]
    # Servers leaving: out of the balancers first, so no request goes to them, and stopped
    # once the balancers have re-read their files (every probe interval).
    await cluster.take_out_of_balancers([node_id for node_id in diff.removed + changed
                                         if old.nodes[node_id].kind == "server"])
    try:
        for node_id in diff.removed + changed:
            await cluster.stop_node(node_id)
            if old.nodes[node_id].kind == "server":
                if keeps_its_directory(old, new, node_id):
                    # The same member on the same files (not rolled above: `tls:`
                    # changed): it starts again as it stopped, still replicated. Handed
                    # over and seeded as a newcomer, it would lose what it alone holds when
                    # the hand over is undone (a peer's disk full): the newcomer's
                    # alignment puts the others' older copies over its own.
                    continue
                removed_here = node_id in diff.removed and old.runs_here(node_id)
                moved_here = (node_id in diff.changed and old.runs_here(node_id)
                              and new.runs_here(node_id))   # (to another directory)
                moved_away = (node_id in diff.changed and old.runs_here(node_id)
                              and not new.runs_here(node_id))   # (to another machine)
                leaving = node_id
                if moved_away:
                    # Its id now names its new incarnation on the other machine (an
                    # address in the peers files): the old directory goes on as
                    # `<id>~old`, a peer of this machine's servers until handed over.
                    leaving = old_directory_id(node_id)
                    await cluster.replication.rename(node_id, leaving)
                # What it acknowledged may be nowhere else: until it is handed over whole
                # it stays the others' peer (pulled from on write), and is retried; a server
                # moved to another directory starts from its old one instead.
                if await cluster.replication.remove(
                        leaving, keep_if_undone=removed_here or moved_here or moved_away):
                    if removed_here or moved_away:   # added back later: a newcomer
                        release_directory(old, old.nodes[node_id], cluster.logger)
                elif moved_here:
                    await cluster.replication.carry_over(node_id, new.nodes[node_id].data_dir)
                else:
                    cluster.handing_over[leaving] = replace(old.nodes[node_id], id=leaving)
                    # The other machines' servers certify against it too.
                    cluster.serve_old_directory(cluster.handing_over[leaving])
    finally:
        cluster.departing = {}
        cluster.write_peers_files()   # stopped and handed over: no longer anyone's peer
    cluster.remove_stale_backends_files()   # of the balancers just stopped
    cluster.save_handing_over()
    if cluster.handing_over:
        cluster.finish_hand_overs(old)
    # New and changed nodes start in dependency order; a new server is seeded
    # before it starts and joins the balancers once it answers its probe.
    to_start = [n for n in new.start_order() if n in diff.added or n in changed]
    await cluster.watch_remote_nodes()
    cluster.launch(to_start)
    await cluster.wait_settled(to_start)
    cluster.write_backends_files()
    cluster.save_state()
    return diff


def old_directories_elsewhere(old: Topology, new: Topology, diff: TopologyDiff) -> dict:
    """The servers of other machines the edit removes, or moves to another host (this one
    or a third), as their directories may go on there while their hand over cannot land:
    a removed one's as itself, a moved one's as `<id>~old`, at the server's old address."""
    found = {}
    for node_id in diff.changed + diff.removed:
        before = old.nodes[node_id]
        if before.kind != "server" or old.runs_here(node_id):
            continue
        if node_id in diff.removed:
            found[node_id] = before
        elif before.host != new.nodes[node_id].host:
            old_id = old_directory_id(node_id)
            found[old_id] = replace(before, id=old_id)
    return found


def rolled_servers(old: Topology, new: Topology, diff: TopologyDiff) -> list[str]:
    """The changed servers a reload restarts one at a time, each on its directory: every
    one that keeps it, unless `tls:` changed (restarted with it, a server could not be
    reached by the balancers still running without it: those are restarted together)."""
    if old.tls != new.tls:
        return []
    return [node_id for node_id in diff.changed if keeps_its_directory(old, new, node_id)]


def keeps_its_directory(old: Topology, new: Topology, node_id: str) -> bool:
    """Whether the server `node_id`, changed by the edit, runs on this machine before and
    after it with the same data directory."""
    return (node_id in new.nodes and new.nodes[node_id].kind == "server"
            and old.runs_here(node_id) and new.runs_here(node_id)
            and old.nodes[node_id].data_dir == new.nodes[node_id].data_dir)


def restart_only_change(old: Topology, new: Topology) -> str | None:
    """Why an edit of the secret (or, with write leases on, of `tls:`) cannot be applied
    to the running cluster: the nodes and the machines' voters took them at `up`. Applied,
    the nodes kept the old secret while the file said another, and the voters, keeping
    the old ones, refused each other: no write went through until every machine's `up`."""
    if old.secret != new.secret:
        what = "secret: the edit changes the cluster's secret"
    elif old.write_leases.enabled and old.tls != new.tls:
        what = "tls: the edit changes TLS while write leases are on"
    else:
        return None
    return (f"{new.path.name}: {what}; that is applied only by a new start of the cluster "
            f"on every machine (`python -m supervisor down`, then `up`), so nothing was changed")


def accounts_change(old: Topology, new: Topology) -> str | None:
    """Why an edit of the `accounts:` section cannot be applied to the running cluster."""
    before, after = old.accounts, new.accounts
    if before == after or not (before.enabled or after.enabled):
        return None
    if before.enabled != after.enabled:
        what = "turns accounts on" if after.enabled else "turns accounts off"
    else:
        what = f"changes the administrator ({before.admin} -> {after.admin})"
    return (f"{new.path.name}: accounts: the edit {what}; that is applied only by a new start "
            f"of the cluster (`python -m supervisor down`, then `up`), so nothing was changed")


@dataclass
class ReloadResult:
    ok: bool
    message: str
    at: float

    def as_dict(self) -> dict:
        return {"ok": self.ok, "message": self.message, "at": self.at}


async def reload_topology(cluster: Cluster, logger: logging.Logger) -> ReloadResult:
    """Read the topology file again and apply it; an invalid file changes nothing."""
    loop = asyncio.get_running_loop()
    try:
        new = load_topology(cluster.topology.path)
        if cluster.topology.machine:   # this machine's part of it (supervisor/machine.py)
            new = place(new, cluster.topology.machine, leaving_ok=True)
    except TopologyError as error:
        logger.error("reload refused, the cluster is left as it was:\n%s", error)
        return ReloadResult(False, str(error), loop.time())
    refused = accounts_change(cluster.topology, new) or restart_only_change(cluster.topology, new)
    if refused is not None:
        logger.error("reload refused, the cluster is left as it was:\n%s", refused)
        return ReloadResult(False, refused, loop.time())
    problems = ownership_problems(new) or await asyncio.to_thread(
        port_problems, new, addresses(cluster.topology))
    if problems:
        message = "\n".join(problems)
        logger.error("reload refused, the cluster is left as it was:\n%s", message)
        return ReloadResult(False, message, loop.time())
    for warning in new.notices:
        logger.warning("reload: %s", warning)
    claim(new, os.getpid(), logger)
    if new.remote and new.remote == frozenset(new.nodes):
        # Refused, it left the servers here running with their old peers: a server its
        # peers no longer list can write nothing, and what it acknowledged must reach them.
        logger.warning("reload: the topology gives this machine no node any more: its nodes "
                       "stop (a server hands its newest copies over first); `down` ends "
                       "this supervisor")
    diff = await apply_topology(cluster, new)
    logger.info("reload applied: %s", diff.describe())
    return ReloadResult(True, diff.describe(), loop.time())


class _FileEvents(FileSystemEventHandler):
    def __init__(self, target: Path, notify: Callable[[], None]):
        self.target = str(target)
        self.notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = {str(event.src_path), str(getattr(event, "dest_path", "") or "")}
        if self.target in paths and event.event_type != "opened" \
                and event.event_type != "closed_no_write":
            self.notify()


class TopologyWatcher:
    """Calls `on_change()` (in the event loop) after the file's content changed."""

    def __init__(self, path: Path, on_change: Callable[[], asyncio.Future | None],
                 loop: asyncio.AbstractEventLoop):
        self.path = Path(path)
        self.on_change = on_change
        self.loop = loop
        self.observer: BaseObserver | None = None
        self._digest = self._read_digest()
        self._pending: asyncio.TimerHandle | None = None

    def _read_digest(self) -> bytes | None:
        try:
            return hashlib.sha256(read_regular(self.path)).digest()
        except OSError:
            return None

    def start(self) -> None:
        self.observer = Observer()
        self.observer.schedule(_FileEvents(self.path, self._from_thread), str(self.path.parent),
                               recursive=False)
        self.observer.daemon = True
        self.observer.start()

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)
            self.observer = None

    def _from_thread(self) -> None:
        self.loop.call_soon_threadsafe(self._debounce)

    def _debounce(self) -> None:
        # Editors write in several steps (truncate, write, rename): act once it is quiet.
        if self._pending is not None:
            self._pending.cancel()
        self._pending = self.loop.call_later(DEBOUNCE_S, self._fire)

    def _fire(self) -> None:
        self._pending = None
        digest = self._read_digest()
        if digest is None or digest == self._digest:
            return
        self._digest = digest
        self.on_change()
