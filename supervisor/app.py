"""The supervisor process itself: what `python -m supervisor up` runs in the foreground.

It owns the control port, the cluster, the topology watcher and the run
directory (`supervisor.pid`, `control-token`, `state.json`, the backends
files; every file it writes atomically is 0600: docs/SECURITY.md). It stays
until SIGINT/SIGTERM or a `down` command (SIGHUP: a reload, as `reload`), then stops every node and removes
its run files (backends and peers files included). If an earlier supervisor died without stopping its nodes,
their leftover processes are stopped first (supervisor/leftovers.py), and the
servers' data directories are checked to belong to this cluster, then
claimed for it (supervisor/ownership.py), before anything starts.

When the topology's `http:` section enables it, the status page and
`/metrics` (supervisor/web) are served from this process's event loop from
the start (run/http holds their address while they are); a hot reload that
changes the section (or the secret) restarts that server on the new
address. A port it cannot bind is logged, and the cluster runs without it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

from nodes.protocol import is_loopback
from nodes.protocol.tls import TlsConfigError, server_context

from .backup import BackupDesk
from .cluster import PRIVATE_DIR_MODE, Cluster, write_atomically
from .control import (
    CONTROL_PORT_FILE,
    TOKEN_FILE,
    ControlServer,
    control_port_in_force,
    new_token,
    send_command,
    token_file,
)
from .errors import SupervisorError
from .leftovers import find_leftovers, hand_over_departed, stop_leftovers
from .machine import WILDCARDS
from .ownership import claim, joining_servers, ownership_problems
from .port_check import port_problems
from .reload import ReloadResult, TopologyWatcher, reload_topology
from .topology import HttpSettings, Topology, read_regular
from .web import ADDRESS_FILE
from .web.sampler import Sampler
from .web.server import WebServer

LOADED_TOPOLOGY = "loaded-topology.yaml"


class SupervisorApp:
    def __init__(self, topology: Topology, logger: logging.Logger, take_over: bool = False,
                 admin_password: str | None = None):
        self.topology = topology
        self.logger = logger
        self.take_over = take_over  # hand over data directories another cluster used
        # accounts on: for the servers' environment (supervisor/first_admin.py)
        self.cluster = Cluster(topology, logger, admin_password=admin_password)
        self.backups = BackupDesk(self.cluster)
        self.control = ControlServer(topology.supervisor.control_port, self.handle,
                                     token=new_token())
        self.stopping = asyncio.Event()
        self.started = time.time()
        self.last_reload: ReloadResult | None = None
        self._reload_lock = asyncio.Lock()
        self._reload_again = False
        self._reload_task: asyncio.Task | None = None
        self.watcher: TopologyWatcher | None = None
        self.sampler: Sampler | None = None
        self.web: WebServer | None = None
        self.web_error: str | None = None   # why the page enabled in the topology is not served
        self._web_config: tuple[HttpSettings, str | None] | None = None

    @property
    def run_dir(self) -> Path:
        return self.topology.supervisor.run

    async def run(self, on_ready=None) -> int:
        """Serve until stopped; on_ready(status_rows, all_running) once everything settled."""
        loop = asyncio.get_running_loop()
        other = self._other_supervisor()
        if other is not None:   # (its run files are its own: none is touched)
            self.logger.error("cannot start: %s already runs this cluster", other)
            return 1
        try:
            await self.control.start()
        except OSError as error:
            self.logger.error("cannot listen on the control port 127.0.0.1:%d: %s",
                              self.topology.supervisor.control_port, error.strerror or error)
            return 2
        self.run_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        # Written once the port is ours (a second `up` that loses the bind must
        # not replace the token of the supervisor that won it), 0600.
        assert self.control.token is not None
        write_atomically(token_file(self.run_dir), self.control.token + "\n")
        self.backups.clear_interrupted()   # (a predecessor killed while writing an archive)
        # Blocking on purpose: nothing else may happen until the old nodes are gone.
        problems = self._stop_leftovers()
        problems = problems or port_problems(self.topology) or ownership_problems(
            self.topology, self.take_over)
        if problems:  # leave the run directory alone: it may describe processes to clean up
            self.logger.error("cannot start: %s", "; ".join(problems))
            await self.control.close()
            token_file(self.run_dir).unlink(missing_ok=True)
            return 1
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stopping.set)
        # SIGHUP, the usual "read your configuration again" (by default it ended the
        # supervisor at once, its nodes left unsupervised): what `reload` does.
        loop.add_signal_handler(signal.SIGHUP, self._reload_on_hangup)
        try:
            return await self._serve(loop, on_ready)
        finally:
            self.logger.info("stopping the cluster")
            if self.watcher is not None:
                self.watcher.stop()
            if self._reload_task is not None:
                self._reload_task.cancel()
            await self.cluster.down()
            await self._stop_web()
            await self.control.close()
            for name in ("supervisor.pid", CONTROL_PORT_FILE, TOKEN_FILE, "state.json", LOADED_TOPOLOGY,
                         ADDRESS_FILE):
                (self.run_dir / name).unlink(missing_ok=True)
            for path in [*self.run_dir.glob("*.backends.json"), *self.run_dir.glob("*.peers.json")]:
                path.unlink(missing_ok=True)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            self.logger.info("down: every node stopped")

    def _other_supervisor(self) -> str | None:
        """The supervisor already running this topology, found on the control port it
        started with (run/control: the file's control_port may have been edited since)."""
        port = control_port_in_force(self.run_dir, self.topology.supervisor.control_port)
        try:
            hello = send_command(port, {"cmd": "hello"}, timeout_s=2)
        except (SupervisorError, OSError):
            return None
        if hello.get("topology") != str(self.topology.path) or hello.get("pid") == os.getpid():
            return None
        return f"the supervisor pid {hello.get('pid')} (control port {port})"

    async def _serve(self, loop: asyncio.AbstractEventLoop, on_ready) -> int:
        (self.run_dir / "supervisor.pid").write_text(f"{os.getpid()}\n")
        (self.run_dir / CONTROL_PORT_FILE).write_text(f"{self.topology.supervisor.control_port}\n")
        self._remember_topology()
        self.logger.info("up: %s (pid %d, control port %d)", self.topology.path, os.getpid(),
                         self.topology.supervisor.control_port)
        for warning in self.topology.notices:
            self.logger.warning("%s", warning)
        joining = joining_servers(self.topology)   # (before the claim records them)
        for handed_over in claim(self.topology, os.getpid(), self.logger):
            self.logger.warning("data directory handed over to this cluster: %s", handed_over)
        await self._listen_for_machines()
        self.watcher = TopologyWatcher(self.topology.path, self._schedule_reload, loop)
        self.watcher.start()
        await self._start_web()
        up = asyncio.create_task(self.cluster.up(joining=joining))
        stop_wait = asyncio.create_task(self.stopping.wait())
        await asyncio.wait({up, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if up.done():
            all_running = up.result()
            self.cluster.save_state()
            if on_ready is not None:
                on_ready(await self.cluster.status(), all_running)
            await stop_wait
        else:
            up.cancel()
        return 0

    # -- the control port

    async def handle(self, request: dict) -> dict:
        command = request["cmd"]
        if command == "hello":
            return {"ok": True, "pid": os.getpid(), "topology": str(self.topology.path)}
        if command == "status":
            # scope "machine": another machine's supervisor asks about this one's nodes.
            return {"ok": True, "supervisor": self._supervisor_info(),
                    "nodes": await self.cluster.status(
                        machine_only=request.get("scope") == "machine")}
        if command == "down":
            left = await self.cluster.down()
            self.stopping.set()
            return {"ok": True, "pid": os.getpid(), "message": "every node stopped",
                    "replication_left": left}
        if command == "restart":
            node = request.get("node")
            if not isinstance(node, str) or node not in self.cluster.keepers:
                known = ", ".join(self.cluster.keepers) or "none"
                return {"ok": False, "error": f"unknown node {node!r} (running nodes: {known})"}
            return {"ok": True, "node": await self.cluster.restart_node(node)}
        if command == "holding":
            # Another machine's supervisor: may it stop certifying against the old directory
            # of a server moved away from here? (supervisor/elsewhere.py)
            return {"ok": True, "servers": self.cluster.holding(),
                    "old_directories": self.cluster.old_directories()}
        if command == "quorum":   # another machine's supervisor (write leases)
            if self.cluster.quorum is None:
                return {"ok": False, "error": "write leases are off on this machine"}
            return await self.cluster.quorum.handle(request)
        if command == "reload":
            await self._reload()
            result = self.last_reload
            assert result is not None  # every _reload sets it
            return {"ok": result.ok, "message": result.message}
        if command == "backup":   # supervisor/backup.py
            return await self.backups.handle(request)
        return {"ok": False, "error": f"unknown command {command!r} "
                                      "(hello, status, holding, down, restart, reload, backup)"}

    def _supervisor_info(self) -> dict:
        return {"pid": os.getpid(), "topology": str(self.topology.path),
                "control_port": self.topology.supervisor.control_port,
                "uptime_s": round(time.time() - self.started, 1),
                "last_reload": self.last_reload.as_dict() if self.last_reload else None,
                "page": self.web.address if self.web is not None else None,
                "page_error": self.web_error,
                "write_leases": self.cluster.quorum.snapshot()
                if self.cluster.quorum is not None else None,
                # Servers gone from the topology (or moved away) whose newest copies have
                # not all landed yet: their directories hold writes nobody else has.
                "handing_over": {node_id: str(spec.data) for node_id, spec
                                 in sorted(self.cluster.handing_over.items())}}

    async def _listen_for_machines(self) -> None:
        """The control port at this machine's node addresses, for the other machines'
        supervisors (supervisor/control.py): only when the topology spans machines."""
        topology = self.cluster.topology
        hosts = frozenset(spec.host for spec in topology.nodes.values()
                          if topology.runs_here(spec.id) and spec.host not in WILDCARDS
                          and not is_loopback(spec.host)) if topology.remote else frozenset()
        try:
            tls = server_context(topology.tls) if hosts else None
        except TlsConfigError as error:
            self.logger.error("other machines' supervisors cannot ask this one: %s", error)
            hosts, tls = frozenset(), None
        for problem in await self.control.listen_remote(hosts, tls, topology.secret):
            self.logger.error("%s (their status misses this machine's report)", problem)

    # -- hot reload

    def _reload_on_hangup(self) -> None:
        self.logger.info("SIGHUP: applying the topology file, as `reload` does")
        self._schedule_reload()

    def _schedule_reload(self) -> None:
        if self._reload_lock.locked():
            self._reload_again = True  # the edit is picked up when the current reload ends
            return
        self._reload_task = asyncio.create_task(self._reload())

    async def _reload(self) -> None:
        async with self._reload_lock:
            while True:
                self._reload_again = False
                self.logger.info("topology file changed: reloading")
                result = self.last_reload = await reload_topology(self.cluster, self.logger)
                result.at = time.time()
                if result.ok:
                    self._remember_topology()
                    await self._listen_for_machines()
                    if self._web_settings() != self._web_config:
                        self.logger.info("topology: the http section changed: the status "
                                         "page restarts")
                        await self._stop_web(keep_sampler=True)
                        await self._start_web()
                self.cluster.save_state()
                if not self._reload_again:
                    return

    # -- the status page and /metrics (supervisor/web)

    def _web_settings(self) -> tuple[HttpSettings, str | None]:
        topology = self.cluster.topology  # the one in force (a reload replaces it)
        return topology.http, topology.secret

    async def _start_web(self) -> None:
        settings, secret = self._web_config = self._web_settings()
        self.web_error = None
        if not settings.enabled:
            await self._stop_sampler()
            return
        if self.sampler is None:  # kept across a restart of the server: the charts go on
            self.sampler = Sampler(self.cluster, self._supervisor_info, self.logger)
        web = WebServer(settings, self.sampler, secret, self.logger)
        try:
            await web.start()
        except OSError as error:
            self.web_error = (f"cannot listen on {settings.host}:{settings.port} "
                              f"({error.strerror or error})")
            self.logger.error("status page: %s; the cluster runs without it (set http.port "
                              "in the topology)", self.web_error)
            await self._stop_sampler()
            return
        self.web = web
        self.sampler.start()
        write_atomically(self.run_dir / ADDRESS_FILE, web.address + "\n")
        self.logger.info("status page: %s (metrics: %smetrics)", web.address, web.address)

    async def _stop_web(self, keep_sampler: bool = False) -> None:
        web, self.web = self.web, None
        (self.run_dir / ADDRESS_FILE).unlink(missing_ok=True)
        if not keep_sampler:
            await self._stop_sampler()
        if web is not None:
            await web.stop()

    async def _stop_sampler(self) -> None:
        sampler, self.sampler = self.sampler, None
        if sampler is not None:
            await sampler.stop()

    def _remember_topology(self) -> None:
        """Keep the text of the topology in force, for commands run while the file is invalid."""
        try:
            # (As `load_topology` reads it: a FIFO put there must not block the loop.)
            text = read_regular(self.cluster.topology.path).decode("utf-8")
            write_atomically(self.run_dir / LOADED_TOPOLOGY, text)
        except (OSError, UnicodeDecodeError) as error:
            self.logger.warning("cannot keep a copy of the topology: %s", error)

    # -- leftovers of a supervisor that died

    def _stop_leftovers(self) -> list[str]:
        """Stop the nodes a dead supervisor left running; problems if some would not stop."""
        scan = find_leftovers(self.topology)
        if scan.supervisor_alive:
            return []  # it is still alive (its control port just did not answer)
        grace_s = self.topology.supervisor.restart.stop_grace_ms / 1000
        stubborn = stop_leftovers(scan.nodes, grace_s, self.logger)
        if stubborn:
            return [f"{leftover.node} (pid {leftover.pid}) left by a supervisor that died "
                    f"does not stop" for leftover in stubborn]
        hand_over_departed(self.topology, scan.nodes, self.logger)
        (self.run_dir / "state.json").unlink(missing_ok=True)
        return []
