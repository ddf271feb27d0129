"""The running cluster: every node's keeper, in dependency order, plus replication.

`Cluster.up()` starts servers first, then balancers, then proxy caches; a
node starts once every node it needs is RUNNING (or FATAL: a balancer can
still serve with one server down). Servers catch up from their peers before
each start and know their peers' data directories from run/<server>.peers.json
(pull on write, fence on commit); while a restarted server catches up it is listed `writable:
false` in the balancers' backends files (run/<balancer>.backends.json,
written atomically, re-read by the balancer). `status()` gathers what the
`status` command shows (for every running node the `alerts` of its
`.status;`, asked once per row; for a running server, also the objects it
could not read or write lately: `storage_faults`, and with accounts on the
logins, failures and sessions per account: supervisor/account_stats.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import sys
import time
from pathlib import Path

from engine.storage.atomic_files import fsync_folder, temp_path_for, unlink_quietly, write_all
from engine.storage.data_owner import DirectoryTaken
from engine.storage.store import checkpoint_directory
from nodes.protocol.status_token import STATUS_TOKEN_ENV, new_status_token, status_request
from nodes.protocol.tls import TlsSettings, client_context

from .account_stats import server_accounts
from .elsewhere import HeldElsewhere
from .errors import UnknownNode
from .first_admin import node_environment
from .handing_over import PendingHandOver, read_pending, write_pending
from .keeper import NodeHooks, NodeKeeper, NodeState, probe_response
from .logfiles import RotatingLog
from .ownership import cluster_id
from .peer_link import PeerAddress
from .quorum_service import QuorumService, quorum_voters
from .remote import MachineReports, RemoteNode
from .replicalink import ReplicationLink
from .replication import old_directory_id
from .replication_health import status_fields
from .topology import SECRET_ENV, NodeSpec, Topology

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTLED_STATES = (NodeState.RUNNING, NodeState.FATAL, NodeState.STOPPED)


# How long `down` lets replication carry the last writes before stopping servers.
SETTLE_BEFORE_STOP_S = 3.0
# A server into which a copy has failed this long is lagging: no reads are routed to it
# (a retry that succeeds clears a failure at once, so a passing error never counts).
LAGGING_AFTER_S = 2.0
LAG_WATCH_INTERVAL_S = 1.0
# A removed server whose newest copies could not be handed over: how often it is retried.
HAND_OVER_RETRY_S = 2.0
# A balancer re-reads its backends file every probe interval (500 ms unless told): how
# long a reload waits for this machine's balancers to drop the servers it stops, and
# how often it asks them.
LET_GO_WAIT_S = 2.0
LET_GO_POLL_S = 0.05
# A server restarted while the cluster runs is back in the backends files once it runs; a
# balancer takes it at its next re-read and probe (two probe intervals): how long the
# restart waits for that before it is done (and a rolling reload goes to the next server).
BACK_IN_WAIT_S = 3.0

def node_command(topology: Topology, node_id: str, run_dir: Path,
                 python: str = sys.executable) -> list[str]:
    """The command line that runs one node (flags fixed in docs/ARCHITECTURE.md)."""
    spec = topology.nodes[node_id]
    # The one relay is a proxy cache running the balancer: its own module.
    module = "relay" if spec.is_relay else spec.kind
    argv = [python, "-m", f"nodes.{module}", "--id", spec.id, "--host", spec.host,
            "--port", str(spec.port), *topology.tls.argv()]
    if (unix_socket := topology.unix_socket(node_id, run_dir)) is not None:
        argv += ["--unix-socket", str(unix_socket)]
    if spec.kind == "server":
        argv += ["--data", str(spec.data), "--peers-file", str(peers_file(run_dir, node_id)),
                 "--cluster", cluster_id(topology)]
        if topology.accounts.enabled:   # the password, if any, in the environment only
            argv.append("--accounts")
    elif spec.routes:
        argv += ["--backends-file", str(backends_file(run_dir, node_id))]
    if spec.is_relay:
        argv += ["--ttl-ms", str(spec.ttl_ms), "--max-entries", str(spec.max_entries)]
    elif spec.kind == "proxycache":
        assert spec.upstream is not None  # a proxycache must name one
        upstream = topology.nodes[spec.upstream]
        argv += ["--upstream", upstream.address, "--ttl-ms", str(spec.ttl_ms),
                 "--max-entries", str(spec.max_entries)]
        # Its upstream on this machine: reached through its socket (TCP if that fails).
        if (upstream_socket := topology.unix_socket(upstream.id, run_dir)) is not None:
            argv += ["--upstream-socket", str(upstream_socket)]
    return argv


def backends_file(run_dir: Path, balancer_id: str) -> Path:
    return run_dir / f"{balancer_id}.backends.json"


def peers_file(run_dir: Path, server_id: str) -> Path:
    return run_dir / f"{server_id}.peers.json"


PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def write_atomically(path: Path, text: str) -> None:
    """Replace a run file atomically (the balancers and servers re-read them), mode 0600.

    Private from its first byte: the temp file is created 0600 (a chmod after
    the write would leave a moment where another user may read it), because
    some run files hold the secret (loaded-topology.yaml) or the control
    token, and none needs to be read by anyone but this user (docs/SECURITY.md).
    """
    path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    temp = temp_path_for(path)
    descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        try:
            os.fchmod(descriptor, PRIVATE_FILE_MODE)  # exactly 0600, whatever the umask
            write_all(descriptor, text.encode("utf-8"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temp, path)
    except BaseException:
        unlink_quietly(temp)
        raise
    fsync_folder(path.parent)


def write_if_changed(path: Path, text: str) -> bool:
    """Write a run file only when its text changes (its readers poll the mtime)."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except OSError:
        pass
    write_atomically(path, text)
    return True


class Cluster:
    def __init__(self, topology: Topology, logger: logging.Logger, python: str = sys.executable,
                 admin_password: str | None = None):
        self.topology = topology
        # Accounts on: the first administrator's password, for the servers' environment
        # only (supervisor/first_admin.py); never logged, never on a command line.
        self.admin_password = admin_password
        # Given to the servers it starts (environment only): their `.status;` then names the
        # accounts for this supervisor's probe, and for nobody else who did not log in as an
        # administrator (nodes/protocol/status_token.py). New at each run, never stored.
        self.status_token = new_status_token()
        self.logger = logger
        self.python = python
        self.keepers: dict[str, NodeKeeper] = {}
        self.node_logs: dict[str, RotatingLog] = {}
        self.writable: dict[str, bool] = {}   # server id -> may take writes
        # Servers into which copies have kept failing (LAGGING_AFTER_S): the balancers
        # send them no reads while another server can answer (they may be far behind).
        self.lagging: set[str] = set()
        # Servers of other machines a reload removed, while their newest copies are pulled
        # here (supervisor/reload.py): listed `leaving` in the peers files meanwhile.
        self.leaving: dict[str, NodeSpec] = {}
        # This machine's servers a reload removes or changes, until each is stopped and its
        # newest copies handed over (supervisor/reload.py): still the others' peers, by
        # their old data directory, so that nobody writes without pulling from or fencing
        # against a server that may still acknowledge writes.
        self.departing: dict[str, NodeSpec] = {}
        # Servers of this machine a reload removed whose newest copies could not all be
        # handed over yet (the others' disk full...): still the others' peers (pulled
        # from on write, fenced against) and retried until they are (`finish_hand_overs`).
        self.handing_over: dict[str, NodeSpec] = {}
        self._hand_overs: asyncio.Task | None = None
        # The directories other machines still hold for servers a reload removed or moved
        # away from them: leaving peers here until handed over (supervisor/elsewhere.py).
        self.elsewhere = HeldElsewhere(self._held_on, lambda name: name in self.topology.nodes,
                                       self._elsewhere_changed, self.logger)
        self._lag_watch: asyncio.Task | None = None
        self.joined: set[str] = set()         # servers listed in the backends files
        self.started_at = time.monotonic()
        self._tls: tuple[TlsSettings, ssl.SSLContext | None] | None = None
        # This machine's servers by directory; the other machines' by address.
        self.replication = ReplicationLink(
            {s.id: s.data_dir for s in topology.local_of_kind("server")},
            topology.replication_enabled, logger, self.remote_peers())
        self._launches: dict[str, asyncio.Task] = {}
        self.remote: dict[str, RemoteNode] = {}   # nodes another machine runs: probed only
        self._reports: MachineReports | None = None
        # Write leases (docs/REPLICATION.md, "Write leases"): None when off.
        self.quorum: QuorumService | None = None
        self._peers_said: dict[str, list[str]] = {}

    @property
    def tls(self) -> ssl.SSLContext | None:
        """The context the supervisor's probes reach the nodes with (None: TLS off)."""
        settings = self.topology.tls
        if self._tls is None or self._tls[0] != settings:
            self._tls = (settings, client_context(settings))
        return self._tls[1]

    @property
    def run_dir(self) -> Path:
        return self.topology.supervisor.run

    def remote_peers(self) -> dict[str, PeerAddress]:
        """The servers another machine runs, as the replicator reaches them over the network."""
        elsewhere = [spec for spec in self.topology.of_kind("server")
                     if not self.topology.runs_here(spec.id)]
        return {spec.id: PeerAddress(spec.id, spec.host, spec.port, self.topology.secret,
                                     self.tls)
                for spec in [*elsewhere, *self.leaving.values(), *self.elsewhere.peers()]}


    # -- whole cluster

    async def up(self, timeout_s: float | None = None, joining: list[str] | None = None) -> bool:
        """Start everything in dependency order; True once all are RUNNING.

        `joining`: servers new to the cluster (supervisor/ownership.py
        `joining_servers`), aligned on the others before replication starts.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.topology.supervisor.logs.mkdir(parents=True, exist_ok=True)
        self.quorum = self._make_quorum()
        if self.quorum is not None:
            self.quorum.start()   # before any server: their peers files carry the lease
        self.load_handing_over()
        await self.learn_left_elsewhere()
        self.write_peers_files()
        await self.replication.start(joining or [])
        if self.handing_over:
            self.finish_hand_overs(self.topology)
        self.write_backends_files()
        self._lag_watch = asyncio.create_task(self._watch_lagging(), name="lag watch")
        await self.watch_remote_nodes()
        self.launch(self.topology.start_order())
        return await self.wait_settled(self.topology.start_order(), timeout_s)

    async def wait_settled(self, node_ids: list[str], timeout_s: float | None = None) -> bool:
        """Wait until every listed node is RUNNING or FATAL; True if all RUNNING."""
        if timeout_s is None:
            health = self.topology.supervisor.health
            timeout_s = 3 * health.start_timeout_ms / 1000 + 5
        tasks = [self._launches[n] for n in node_ids if n in self._launches]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        for node_id in node_ids:
            keeper = self.keepers.get(node_id)
            if keeper is not None:
                await keeper.wait_settled(max(0.0, deadline - time.monotonic()))
        return all(self.keepers[n].state is NodeState.RUNNING for n in node_ids
                   if n in self.keepers)

    async def down(self) -> str:
        """Stop proxies, then balancers, then servers; then replication; then fold journals.

        Once nothing writes any more, replication gets a moment to carry the
        last writes everywhere before the servers stop (each checkpoints its
        tables as it stops), a last full pass after them, and then every
        data directory's remaining journals are folded into their snapshots,
        so every `.json` file holds its table exactly (docs/STORAGE.md).
        """
        for task in self._launches.values():
            task.cancel()
        if self._lag_watch is not None:
            self._lag_watch.cancel()
        if self._hand_overs is not None:
            self._hand_overs.cancel()
        self.elsewhere.cancel()
        order = list(reversed(self.topology.start_order()))
        servers = [node_id for node_id in order if self.topology.nodes[node_id].kind == "server"]
        for node_id in order:
            if node_id not in servers:
                await self.stop_node(node_id)
        await self.replication.settle(SETTLE_BEFORE_STOP_S)
        for node_id in servers:
            await self.stop_node(node_id)
        for node_id in list(self.keepers):  # anything left from an older topology
            await self.stop_node(node_id)
        for remote in self.remote.values():
            await remote.stop()
        left = await self.replication.stop(final_pass=True)
        if self.quorum is not None:
            await self.quorum.stop()
        await asyncio.to_thread(self._fold_journals, servers)
        return left

    def save_handing_over(self) -> None:
        """run/handing-over.json: the removed servers still to hand over, so that a `down`
        and an `up` before their copies land do not forget them (`load_handing_over`)."""
        write_pending(self.run_dir, [PendingHandOver(spec.id, spec.host, spec.port, spec.data)
                                     for spec in self.handing_over.values()
                                     if spec.data is not None])

    def load_handing_over(self) -> None:
        """At `up`: the removed servers a previous run (or a `down`/`up` after a dead
        supervisor) had not handed over yet, back in the peers files and the replicator (its
        first pass copies what they hold newest), then retried as in a reload."""
        for item in read_pending(self.run_dir, self.logger):
            if item.server_id in self.topology.nodes or not item.data.is_dir():
                continue
            spec = NodeSpec(item.server_id, "server", item.host, item.port, data=item.data)
            self.handing_over[item.server_id] = spec
            if self.replication.replicator is not None:
                self.replication.replicator.add_server(item.server_id, item.data)
            self.logger.warning("%s: removed from the topology but not handed over yet: "
                                "still the others' peer", item.server_id)
            self.serve_old_directory(spec)

    def finish_hand_overs(self, old: Topology) -> None:
        """Retry, every HAND_OVER_RETRY_S, the hand over of the removed servers of
        `handing_over`; each one done leaves the peers files (and its directory this
        cluster's record). One back in the topology meanwhile is its own peer again."""
        if self._hand_overs is None or self._hand_overs.done():
            self._hand_overs = asyncio.create_task(self._retry_hand_overs(old),
                                                   name="hand overs")

    async def _retry_hand_overs(self, old: Topology) -> None:
        from .ownership import release_directory

        while self.handing_over:
            await asyncio.sleep(HAND_OVER_RETRY_S)
            for node_id in list(self.handing_over):
                if node_id in self.topology.nodes:
                    self.handing_over.pop(node_id, None)
                elif await self.replication.remove(node_id, keep_if_undone=True):
                    spec = self.handing_over.pop(node_id)
                    await self.stop_node(node_id)   # its peer-only process, if any
                    if spec.data is not None:   # (its directory: a moved server's old one)
                        release_directory(old, spec, self.logger)
            self.save_handing_over()
            self.write_peers_files()

    def serve_old_directory(self, spec: NodeSpec) -> None:
        """Serve the directory of a server removed from this machine, or moved away
        (`<id>~old`), whose hand over is not done, to the other machines' servers: a
        peer-only process (nodes/server/peer_only.py) at the server's old address, kept
        alive by a keeper until the hand over is done (docs/REPLICATION.md, "Moving a
        server to another machine"). The other machines know that address from the
        topology they had before the edit; nothing else needs to travel. On one machine
        nobody needs it: its servers read the directory as a folder."""
        if spec.id in self.keepers or spec.data is None or not self.topology.remote:
            return
        argv = [self.python, "-m", "nodes.server", "--id", spec.id, "--host", spec.host,
                "--port", str(spec.port), *self.topology.tls.argv(), "--data", str(spec.data),
                "--cluster", cluster_id(self.topology), "--peer-only"]
        keeper = self.keepers[spec.id] = self._make_keeper(spec, argv)
        keeper.start()
        self.logger.warning("%s: served to the other machines' servers at %s (peer requests "
                            "only) until it is handed over", spec.id, spec.address)

    def holding(self) -> list[str]:
        """The servers whose directories this machine holds, for the other machines'
        supervisors (supervisor/elsewhere.py): its servers, those stopping, and those whose
        hand over is not done."""
        return sorted({spec.id for spec in self.topology.local_of_kind("server")}
                      | set(self.departing) | set(self.handing_over))

    def old_directories(self) -> dict[str, str]:
        """The directories of servers removed or moved away that this machine still hands
        over (and serves, `serve_old_directory`), by address."""
        return {old_id: spec.address for old_id, spec in sorted(self.handing_over.items())}

    async def _held_on(self, host: str, timeout_s: float) -> dict | None:
        """What the supervisor of the machine at `host` says it holds (`holding`: the
        servers whose directories it keeps, and by address the old directories it
        serves); None when it does not answer."""
        from .control import NotRunning, VersionMismatch, ask_remote

        try:
            answer = await ask_remote(host, self.topology.supervisor.control_port,
                                      {"cmd": "holding"}, self.topology.secret, self.tls,
                                      timeout_s)
        except (NotRunning, VersionMismatch):
            return None
        return answer if answer.get("ok") else None

    async def learn_left_elsewhere(self) -> None:
        """At `up`: the directories the other machines still serve for servers removed or
        moved away (supervisor/elsewhere.py)."""
        topology = self.topology
        if topology.replication_enabled:
            await self.elsewhere.learn(sorted({spec.host for spec in topology.nodes.values()
                                               if not topology.runs_here(spec.id)}))

    def _elsewhere_changed(self) -> None:
        """The directories held elsewhere changed: the peers files and the replicator's
        remote peers follow."""
        self.write_peers_files()
        self.replication.set_remote(self.remote_peers())

    async def reconcile_stopped(self) -> str:
        """What `down` does once the servers are stopped, for those a dead supervisor left
        (stopped by `python -m supervisor down` without one): a full replication pass, so
        that what a server acknowledged while replication was paused is in every directory
        (removed from the topology next, it would be nowhere else), then the journals
        folded. What the pass could not do, as `down` says it ("" if nothing)."""
        left = await self.replication.stop(final_pass=True)
        await asyncio.to_thread(self._fold_journals,
                                [spec.id for spec in self.topology.local_of_kind("server")])
        return left

    def _fold_journals(self, servers: list[str]) -> None:
        """Checkpoint every stopped server's directory (skipping one a live process holds)."""
        for node_id in servers:
            data = self.topology.nodes[node_id].data_dir
            try:
                folded = checkpoint_directory(Path(data), f"supervisor of {node_id}")
            except (OSError, DirectoryTaken) as error:
                self.logger.warning("%s: journals left as they are (%s)", node_id, error)
                continue
            if folded:
                self.logger.info("%s: %d table journals folded into their snapshots",
                                 node_id, folded)

    # -- one node

    def launch(self, node_ids: list[str]) -> None:
        """Start these nodes, each once what it depends on has settled."""
        for node_id in node_ids:
            self._launches[node_id] = asyncio.create_task(self._launch_one(node_id),
                                                          name=f"launch-{node_id}")

    async def _launch_one(self, node_id: str) -> None:
        spec = self.topology.nodes[node_id]
        for dependency in self.topology.dependencies(node_id):
            launch = self._launches.get(dependency)
            if launch is not None and launch is not asyncio.current_task():
                await asyncio.wait({launch})
            keeper = self.keepers.get(dependency)
            if keeper is not None:
                await keeper.wait_settled(self.topology.supervisor.health.start_timeout_ms / 1000)
        keeper = self._make_keeper(spec)
        self.keepers[node_id] = keeper
        keeper.start()
        await keeper.wait_settled(self.topology.supervisor.health.start_timeout_ms / 1000 * 3)

    def _make_keeper(self, spec: NodeSpec, argv: list[str] | None = None) -> NodeKeeper:
        """The keeper of a topology's node, or (`argv`) of a process of the supervisor's own
        (a peer-only server: no seed, no backends)."""
        settings = self.topology.supervisor
        log = self.node_logs.get(spec.id)
        if log is None:
            log = RotatingLog(settings.logs / f"{spec.id}.log", settings.log_max_bytes,
                              settings.log_backups)
            self.node_logs[spec.id] = log
        hooks = NodeHooks(on_state=self._on_state)
        if spec.kind == "server" and argv is None:
            hooks.before_start = self._before_server_start
            hooks.on_running = self._on_server_running
        env = node_environment(self.topology, spec, {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)}, self.admin_password)
        if self.topology.secret:
            # The environment, never argv: `ps` shows every command line.
            env[SECRET_ENV] = self.topology.secret
        if spec.kind == "server":
            env[STATUS_TOKEN_ENV] = self.status_token
        if argv is None:
            argv = node_command(self.topology, spec.id, self.run_dir, self.python)
        return NodeKeeper(spec, argv, log, settings.health, settings.restart, self.logger, hooks,
                          env=env, cwd=str(self.topology.base_dir), secret=self.topology.secret,
                          tls=self.tls)

    async def stop_node(self, node_id: str) -> None:
        launch = self._launches.pop(node_id, None)
        if launch is not None and not launch.done():
            launch.cancel()
        keeper = self.keepers.pop(node_id, None)
        if keeper is not None:
            await keeper.stop()
            self.logger.info("%s: stopped", node_id)
        log = self.node_logs.pop(node_id, None)
        if log is not None:
            log.close()

    async def restart_node(self, node_id: str) -> dict:
        """`restart NODE`: a server of the topology as a reload restarts one
        (`restart_server`: the balancers let go of it first), any other node at once."""
        keeper = self.keepers.get(node_id)
        if keeper is None:
            raise UnknownNode(node_id)
        self.logger.info("%s: restart asked", node_id)
        timeout_s = self.topology.supervisor.health.start_timeout_ms / 1000 * 2
        if node_id in self.topology.nodes and keeper.spec.kind == "server":
            await self.restart_server(node_id, timeout_s=timeout_s)
        else:   # (a peer-only server, `serve_old_directory`, is in no backends file)
            await keeper.restart()
            await keeper.wait_settled(timeout_s)
        return keeper.snapshot()

    async def restart_server(self, server_id: str, new_command: bool = False,
                             timeout_s: float | None = None) -> bool:
        """Restart one server of this machine without cutting a statement on its way: out
        of the balancers first (`take_out_of_balancers`), stopped once they let go of it,
        started, back in their backends files once it runs (`_on_server_running`), and
        waited for until they route to it again, so that servers restarted one after the
        other never leave a balancer with neither. True if it runs again.

        `new_command`: a reload changed its command line; a new keeper runs it, started as
        every node a reload starts. Else (`restart NODE`) its keeper restarts it, which
        catches up first and counts a manual restart."""
        await self.take_out_of_balancers([server_id])
        if new_command:
            await self.stop_node(server_id)
            self.launch([server_id])
        else:
            await self.keepers[server_id].restart()
        running = await self.wait_settled([server_id], timeout_s)
        if running:
            await self.wait_balancers_take(server_id)
        return running

    # -- servers and balancers

    async def _before_server_start(self, spec: NodeSpec, is_restart: bool) -> None:
        if spec.id in self.joined and is_restart:
            self.writable[spec.id] = False
            self.write_backends_files()
        if not self.replication.known(spec.id):
            await self.replication.seed(spec.id, spec.data_dir)  # a server new to the cluster
        elif is_restart:  # the first start is covered by the sync pass of `up`
            await self.replication.catch_up(spec.id)

    async def _on_server_running(self, spec: NodeSpec, is_restart: bool) -> None:
        changed = spec.id not in self.joined or not self.writable.get(spec.id, False)
        self.writable[spec.id] = True
        self.joined.add(spec.id)
        if changed:
            self.write_backends_files()

    async def watch_remote_nodes(self) -> None:
        """Probe the nodes another machine runs (and stop probing those that left or came here)."""
        settings = self.topology.supervisor
        for node_id, watch in list(self.remote.items()):
            if (self.topology.nodes.get(node_id) != watch.spec or watch.tls is not self.tls
                    or node_id not in self.topology.remote):
                await self.remote.pop(node_id).stop()
        for node_id in sorted(self.topology.remote - set(self.remote)):
            watch = self.remote[node_id] = RemoteNode(self.topology.nodes[node_id], settings.health,
                                                      self.topology.secret, self.tls)
            watch.start()

    async def _watch_lagging(self) -> None:
        while True:
            await asyncio.sleep(LAG_WATCH_INTERVAL_S)
            try:
                self.update_lagging()
            except Exception:   # the watch must outlive any surprise
                self.logger.exception("lag watch failed")

    def update_lagging(self, now: float | None = None) -> None:
        """Mark lagging the servers into which a copy has failed for LAGGING_AFTER_S (a
        read-only or full folder), and rewrite the backends files when that changed."""
        now = time.time() if now is None else now
        lagging = {server_id for server_id, figures in self.replication.stats().items()
                   if any(now - failing["since"] >= LAGGING_AFTER_S
                          for failing in figures.get("failing") or ())}
        if lagging == self.lagging:
            return
        for server_id in sorted(lagging - self.lagging):
            self.logger.warning("%s: copies into it keep failing: no reads go to it while "
                                "another server answers", server_id)
        for server_id in sorted(self.lagging - lagging):
            self.logger.info("%s: copies into it succeed again: it takes reads", server_id)
        self.lagging = lagging
        self.write_backends_files()

    def forget_server(self, server_id: str) -> None:
        self.joined.discard(server_id)
        self.writable.pop(server_id, None)

    async def take_out_of_balancers(self, server_ids: list[str]) -> None:
        """What comes before servers of this machine stop while the cluster runs (a reload
        removing or changing them, `restart_server`): out of the balancers' backends files,
        then waited for until the running balancers let go of them
        (`wait_balancers_let_go`). One that runs again comes back (`_on_server_running`)."""
        for server_id in server_ids:
            self.forget_server(server_id)
        self.write_backends_files()
        await self.wait_balancers_let_go(server_ids)

    def write_backends_files(self) -> None:
        """One file per balancer of this machine listing its joined servers (catching-up ones
        not writable; those of this machine with their Unix socket, `Topology.unix_socket`).
        Servers another machine runs are always listed: their own supervisor keeps a
        restarted one from listening until it caught up, and the balancer's probes tell
        whether they answer."""
        for balancer in self.topology.local_routers():
            entries = []
            for server_id in self.topology.backends_of(balancer.id):
                if self.topology.runs_here(server_id) and server_id not in self.joined:
                    continue
                # Where it listens now: a reload restarting servers one at a time leaves
                # those still waiting for their turn at their old address.
                keeper = self.keepers.get(server_id)
                server = keeper.spec if keeper is not None else self.topology.nodes[server_id]
                writable = self.writable.get(server_id, False) \
                    if self.topology.runs_here(server_id) else True
                entry = {"id": server.id, "host": server.host, "port": server.port,
                         "writable": writable, "lagging": server_id in self.lagging}
                # A server of this machine: through its socket (TCP if that fails).
                if (unix_socket := self.topology.unix_socket(server_id, self.run_dir)) is not None:
                    entry["unix_socket"] = str(unix_socket)
                entries.append(entry)
            path = backends_file(self.run_dir, balancer.id)
            if not write_if_changed(path, json.dumps({"backends": entries}, indent=1) + "\n"):
                continue
            self.logger.info("%s: backends file now lists %s", balancer.id,
                             ", ".join(f"{e['id']}{'' if e['writable'] else ' (read-only)'}"
                                       f"{' (lagging)' if e['lagging'] else ''}"
                                       for e in entries) or "no server")

    async def wait_balancers_let_go(self, server_ids: list[str]) -> None:
        """Until no running balancer of this machine lists `server_ids` any more (its
        `.status;`: neither as a backend nor as one whose answers are on their way), at
        most LET_GO_WAIT_S: a server stopped while a balancer still sends to it cuts the
        statements on their way (a write's outcome then unknown to its client). Call it
        once the backends files no longer name them."""
        leaving = set(server_ids)
        deadline = time.monotonic() + LET_GO_WAIT_S
        for router in self.topology.local_routers() if leaving else []:
            keeper = self.keepers.get(router.id)
            if keeper is None or keeper.state is not NodeState.RUNNING:
                continue
            while time.monotonic() < deadline:
                listed = await self._backends_listed(router)
                if listed is None or not listed & leaving:
                    break
                await asyncio.sleep(LET_GO_POLL_S)

    async def wait_balancers_take(self, server_id: str) -> None:
        """Until every running balancer of this machine given `server_id` routes to it (ONLINE
        in its `.status;`), at most BACK_IN_WAIT_S. Call it once the server runs again."""
        deadline = time.monotonic() + BACK_IN_WAIT_S
        for router in self.topology.local_routers():
            keeper = self.keepers.get(router.id)
            if (server_id not in self.topology.backends_of(router.id) or keeper is None
                    or keeper.state is not NodeState.RUNNING):
                continue
            while time.monotonic() < deadline:
                status = await self._balancer_status(router)
                if status is None or (status["backends"].get(server_id) or {}).get("state") \
                        == "ONLINE":
                    break
                await asyncio.sleep(LET_GO_POLL_S)

    async def _backends_listed(self, router: NodeSpec) -> set[str] | None:
        """The backends a running balancer (or relay) routes to now, or still awaits answers
        from (removed, `retiring`); None if it does not say."""
        status = await self._balancer_status(router)
        if status is None:
            return None
        backends, retiring = status["backends"], status.get("retiring")
        return set(backends) | (set(retiring) if isinstance(retiring, dict) else set())

    async def _balancer_status(self, router: NodeSpec) -> dict | None:
        """A running balancer's `.status;` (a relay's: its balancer's), None if it does not
        say; its `backends` a dict."""
        status = await self._node_status({"node": router.id, "state": NodeState.RUNNING.value})
        if status is not None and isinstance(status.get("balancer"), dict):
            status = status["balancer"]   # a relay: its balancer's
        if status is None or not isinstance(status.get("backends"), dict):
            return None
        return status

    def remove_stale_backends_files(self) -> None:
        """The backends files of balancers that left the topology (once they are stopped:
        a running balancer missing its file logs an error)."""
        known = {backends_file(self.run_dir, balancer.id)
                 for balancer in self.topology.local_routers()}
        for stale in self.run_dir.glob("*.backends.json"):
            if stale not in known:
                stale.unlink(missing_ok=True)

    def _make_quorum(self) -> QuorumService | None:
        """This machine's voter and lease holder, when `write_leases` is on and can be."""
        topology = self.topology
        settings = topology.write_leases
        if not settings.enabled:
            return None
        voters, off = quorum_voters([spec.host for spec in topology.nodes.values()])
        mine = sorted({spec.host for spec in topology.nodes.values()
                       if topology.runs_here(spec.id)})
        if off is None and not topology.remote:
            off = "write leases off: every node is on this machine"
        if off is None and len(mine) != 1:
            off = (f"write leases off: this machine's nodes use {len(mine)} hosts "
                   f"({', '.join(mine)}), a voter is one host")
        if off is not None:
            self.logger.warning("%s (writes need every server, as without leases)", off)
            return None
        servers = {host: [spec.id for spec in topology.of_kind("server") if spec.host == host]
                   for host in voters}
        return QuorumService(mine[0], voters, servers, topology.supervisor.control_port,
                             topology.secret, self.tls, settings, self.run_dir, self.logger,
                             self.write_peers_files, self._catch_up_local, self._align_local)

    async def _catch_up_local(self) -> None:
        """Bring this machine's servers up to the others' copies (L5, before admission)."""
        for spec in self.topology.local_of_kind("server"):
            await self.replication.catch_up(spec.id)

    async def _align_local(self, members: list[str]) -> bool:
        """This machine's servers made to hold the member machines' copies (L7, before
        joining again); True when every member server could be read."""
        sources = [spec.id for spec in self.topology.of_kind("server")
                   if spec.host in members and not self.topology.runs_here(spec.id)]
        done = True
        for spec in self.topology.local_of_kind("server"):
            done = await self.replication.align(spec.id, sources) and done
        return done

    def write_peers_files(self) -> None:
        """run/<server>.peers.json: the other servers (none without replication).

        `peers`: this machine's other servers by data directory, and the
        servers other machines run by address (`{"address": "HOST:PORT"}`:
        reached over the peer protocol). Each server re-reads its
        file when it changes (pull on write, fence on commit:
        docs/STORAGE.md), so a server added by a hot reload is known to the
        running ones before it takes writes. Files of servers that left the
        topology are removed.
        """
        servers = self.topology.local_of_kind("server")
        elsewhere = [spec for spec in self.topology.of_kind("server")
                     if not self.topology.runs_here(spec.id)]
        enabled = self.topology.replication_enabled
        moved_away = {spec.id for spec in elsewhere}
        leaving = [*self.leaving.values(), *self.elsewhere.peers()]
        leases: dict = {}
        if self.quorum is not None:
            # Only the machines the decided epoch certifies against; and the lease.
            certified = self.quorum.certified()
            elsewhere = [spec for spec in elsewhere if spec.host in certified]
            leaving = [spec for spec in leaving if spec.host in certified]
            leases = {"lease": self.quorum.server_lease()}
        for server in servers:
            peers: dict[str, str | dict] = {other.id: str(other.data) for other in servers
                                            if other.id != server.id} if enabled else {}
            if enabled:
                for other in [*self.departing.values(), *self.handing_over.values()]:
                    # A server moving to another machine, still stopping here, may still
                    # acknowledge writes in its directory: certified against under its old
                    # directory's name, its own now naming its new address (below).
                    key = old_directory_id(other.id) if other.id in moved_away else other.id
                    # (Its directory once: a server added with it, as in a renamed server,
                    # already lists it; a directory listed twice is locked twice, by itself.)
                    if other.id != server.id and (key in peers or (
                            str(other.data) not in peers.values() and other.data != server.data)):
                        peers[key] = str(other.data)
                peers.update({other.id: {"address": other.address} for other in elsewhere})
                peers.update({other.id: {"address": other.address, "leaving": True}
                              for other in leaving})
            path = peers_file(self.run_dir, server.id)
            if write_if_changed(path, json.dumps({"peers": peers, **leases}, indent=1) + "\n") \
                    and leases and self._peers_said.get(server.id) != sorted(peers):
                self._peers_said[server.id] = sorted(peers)
                self.logger.info("%s: peers now %s", server.id, ", ".join(sorted(peers)) or "none")
        known = {peers_file(self.run_dir, server.id) for server in servers}
        known |= {peers_file(self.run_dir, server_id) for server_id in self.departing}
        for path in self.run_dir.glob("*.peers.json"):
            if path not in known:
                path.unlink(missing_ok=True)

    def _on_state(self, spec: NodeSpec, state: NodeState) -> None:
        if state is not NodeState.STARTING:
            self.save_state()

    # -- reporting

    def save_state(self) -> None:
        """run/state.json: who runs with which pid (also used to clean up after a crash)."""
        try:
            write_atomically(self.run_dir / "state.json", json.dumps({
                "supervisor_pid": os.getpid(), "topology": str(self.topology.path),
                "nodes": [k.snapshot() for k in self.keepers.values()]}, indent=1))
        except OSError as error:
            self.logger.warning("cannot write the state file: %s", error)

    async def status(self, node_status: dict[str, dict] | None = None,
                     machine_only: bool = False) -> list[dict]:
        """One row per node of the topology (STOPPED when it has no keeper).

        `node_status`, when given, receives each running node's whole
        `.status;` answer by node (the status page's counters), so that
        nothing probes a node twice for one view. Nodes another machine
        runs get what its supervisor reports (supervisor/remote.py
        `MachineReports`); `machine_only`: this machine's nodes only (what
        another machine's supervisor asks).
        """
        rows = []
        for node_id, spec in self.topology.nodes.items():
            keeper, remote = self.keepers.get(node_id), self.remote.get(node_id)
            if machine_only and not self.topology.runs_here(node_id):
                continue
            if remote is not None and keeper is None:
                rows.append(remote.snapshot())
                continue
            row = keeper.snapshot() if keeper else {
                "node": node_id, "kind": spec.kind, "address": spec.address, "pid": None,
                "state": NodeState.STOPPED.value, "uptime_s": None, "restarts": 0,
                "manual_restarts": 0, "probe_ms": None, "last_exit": None}
            rows.append(row)
        replication = self.replication.stats()
        extras = await asyncio.gather(*(self._node_extra(row, replication, node_status)
                                        for row in rows))
        for row, extra in zip(rows, extras, strict=True):
            row.update(extra)
        if not machine_only and self.remote:
            # (A reload removing a node of another machine drops it from the topology
            # before it stops watching it: only the nodes still listed are asked about.)
            nodes = self.topology.nodes
            await self.machine_reports().merge(
                rows, {node_id: nodes[node_id].host for node_id in self.remote if node_id in nodes})
        return rows

    def machine_reports(self) -> MachineReports:
        """The asker of the other machines' supervisors (made again when its settings change)."""
        reports = self._reports
        port, secret, tls = self.topology.supervisor.control_port, self.topology.secret, self.tls
        if reports is None or (reports.port, reports.secret, reports.tls) != (port, secret, tls):
            reports = self._reports = MachineReports(port, secret, tls)
        return reports

    async def _node_extra(self, row: dict, replication: dict,
                          node_status: dict[str, dict] | None = None) -> dict:
        """What a row adds from the node's own `.status;` (alerts, faults, cache counters)
        and, for a server, from replication."""
        status = await self._node_status(row)
        if status is not None and node_status is not None:
            node_status[row["node"]] = status
        extra: dict = {"alerts": _alerts(status)}
        if row["kind"] == "server":
            stats = replication.get(row["node"], {})
            extra.update({"writable": self.writable.get(row["node"]),
                          "repl_lag_p50_ms": stats.get("lag_p50_ms"),
                          "repl_lag_p99_ms": stats.get("lag_p99_ms"),
                          "repl_conflicts": len(stats.get("conflicts") or []),
                          "storage_faults": None if status is None
                          else list(status.get("storage_faults") or [])})
            # accounts on: counts per account, and what the accounts run now
            extra.update(server_accounts(status, row["node"]))
            if self.quorum is not None:
                extra["write_lease"] = self._lease_row(row["node"])
            if stats:  # replication on: failing copies, corrupt and repaired objects
                extra.update(status_fields(stats))
        elif row["kind"] == "proxycache" and row["state"] == NodeState.RUNNING.value:
            if status is None:
                extra["hit_ratio"] = None
            else:
                hits, misses = status.get("hits", 0), status.get("misses", 0)
                extra.update({"hits": hits, "misses": misses, "hit_ratio":
                              round(hits / (hits + misses), 3) if hits + misses else None})
                balancer = status.get("balancer")
                if isinstance(balancer, dict):   # the one relay: its servers as it sees them
                    extra["backends"] = {backend: figures.get("state") for backend, figures
                                         in (balancer.get("backends") or {}).items()}
        return extra

    def _lease_row(self, server_id: str) -> dict:
        """A server's machine in the decided epoch, and (here) its lease's time left."""
        quorum = self.quorum
        assert quorum is not None
        host = self.topology.nodes[server_id].host
        row: dict = {"epoch": quorum.config.epoch, "machine": quorum.config.state(host)}
        if host == quorum.me:
            lease = quorum.server_lease()
            row["left_s"] = None if lease is None else round(
                max(0.0, lease["until"] - time.monotonic()), 1)
        return row

    async def _node_status(self, row: dict) -> dict | None:
        """A running node's `.status;` answer (one JSON object); None if unknown."""
        if row["state"] != NodeState.RUNNING.value:
            return None
        spec = self.topology.nodes[row["node"]]
        # Only a server this supervisor started holds its token (a remote one has its own).
        ours = spec.kind == "server" and not row.get("remote")
        try:
            answer = await probe_response(spec.host, spec.port, 0.5,
                                          status_request(self.status_token if ours else None),
                                          self.topology.secret, self.tls)
            status = json.loads(answer.message)
        except (TimeoutError, OSError, ValueError, AttributeError):
            return None
        return status if isinstance(status, dict) else None


def _alerts(status: dict | None) -> list[str]:
    """The node's own alerts (`"alerts": [str, ...]` in its `.status;`), as text."""
    alerts = (status or {}).get("alerts")
    if not isinstance(alerts, list):
        return []
    return [str(alert) for alert in alerts]
