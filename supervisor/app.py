"""The supervisor process itself: what `python -m supervisor up` runs in the foreground.

It owns the control port, the cluster, the topology watcher and the run
directory (`supervisor.pid`, `state.json`, the backends files). It stays
until SIGINT/SIGTERM or a `down` command, then stops every node and removes
its run files (backends and peers files included). If an earlier supervisor died without stopping its nodes,
their leftover processes (listed in run/state.json) are stopped first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
from pathlib import Path

import psutil

from .cluster import Cluster, write_atomically
from .control import ControlServer
from .reload import ReloadResult, TopologyWatcher, reload_topology
from .topology import Topology

LOADED_TOPOLOGY = "loaded-topology.yaml"


def ports_in_use(topology: Topology) -> list[str]:
    """Node addresses something else already listens on (a clear error beats a crash loop)."""
    busy = []
    for spec in topology.nodes.values():
        with socket.socket(socket.AF_INET6 if ":" in spec.host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((spec.host, spec.port))
            except OSError as error:
                busy.append(f"{spec.id} cannot listen on {spec.address} "
                            f"({error.strerror or error}): is another program using it?")
    return busy


class SupervisorApp:
    def __init__(self, topology: Topology, logger: logging.Logger):
        self.topology = topology
        self.logger = logger
        self.cluster = Cluster(topology, logger)
        self.control = ControlServer(topology.supervisor.control_port, self.handle)
        self.stopping = asyncio.Event()
        self.started = time.time()
        self.last_reload: ReloadResult | None = None
        self._reload_lock = asyncio.Lock()
        self._reload_again = False
        self._reload_task: asyncio.Task | None = None
        self.watcher: TopologyWatcher | None = None

    @property
    def run_dir(self) -> Path:
        return self.topology.supervisor.run

    async def run(self, on_ready=None) -> int:
        """Serve until stopped; on_ready(status_rows, all_running) once everything settled."""
        loop = asyncio.get_running_loop()
        try:
            await self.control.start()
        except OSError as error:
            self.logger.error("cannot listen on the control port 127.0.0.1:%d: %s",
                              self.topology.supervisor.control_port, error.strerror or error)
            return 2
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftovers()
        busy = ports_in_use(self.topology)
        if busy:  # leave the run directory alone: it may describe processes to clean up
            self.logger.error("cannot start: %s", "; ".join(busy))
            await self.control.close()
            return 1
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stopping.set)
        try:
            return await self._serve(loop, on_ready)
        finally:
            self.logger.info("stopping the cluster")
            if self.watcher is not None:
                self.watcher.stop()
            if self._reload_task is not None:
                self._reload_task.cancel()
            await self.cluster.down()
            await self.control.close()
            for name in ("supervisor.pid", "control", "state.json", LOADED_TOPOLOGY):
                (self.run_dir / name).unlink(missing_ok=True)
            for path in [*self.run_dir.glob("*.backends.json"), *self.run_dir.glob("*.peers.json")]:
                path.unlink(missing_ok=True)
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            self.logger.info("down: every node stopped")

    async def _serve(self, loop: asyncio.AbstractEventLoop, on_ready) -> int:
        (self.run_dir / "supervisor.pid").write_text(f"{os.getpid()}\n")
        (self.run_dir / "control").write_text(f"{self.topology.supervisor.control_port}\n")
        self._remember_topology()
        self.logger.info("up: %s (pid %d, control port %d)", self.topology.path, os.getpid(),
                         self.topology.supervisor.control_port)
        self.watcher = TopologyWatcher(self.topology.path, self._schedule_reload, loop)
        self.watcher.start()
        up = asyncio.create_task(self.cluster.up())
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
            return {"ok": True, "supervisor": self._supervisor_info(),
                    "nodes": await self.cluster.status()}
        if command == "down":
            await self.cluster.down()
            self.stopping.set()
            return {"ok": True, "pid": os.getpid(), "message": "every node stopped"}
        if command == "restart":
            node = request.get("node")
            if not isinstance(node, str) or node not in self.cluster.keepers:
                known = ", ".join(self.cluster.keepers) or "none"
                return {"ok": False, "error": f"unknown node {node!r} (running nodes: {known})"}
            return {"ok": True, "node": await self.cluster.restart_node(node)}
        if command == "reload":
            await self._reload()
            return {"ok": self.last_reload.ok, "message": self.last_reload.message}
        return {"ok": False, "error": f"unknown command {command!r} "
                                      "(hello, status, down, restart, reload)"}

    def _supervisor_info(self) -> dict:
        return {"pid": os.getpid(), "topology": str(self.topology.path),
                "control_port": self.topology.supervisor.control_port,
                "uptime_s": round(time.time() - self.started, 1),
                "last_reload": self.last_reload.as_dict() if self.last_reload else None}

    # -- hot reload

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
                self.last_reload = await reload_topology(self.cluster, self.logger)
                self.last_reload.at = time.time()
                if self.last_reload.ok:
                    self._remember_topology()
                self.cluster.save_state()
                if not self._reload_again:
                    return

    def _remember_topology(self) -> None:
        """Keep the text of the topology in force, for commands run while the file is invalid."""
        try:
            text = self.cluster.topology.path.read_text(encoding="utf-8")
            write_atomically(self.run_dir / LOADED_TOPOLOGY, text)
        except OSError as error:
            self.logger.warning("cannot keep a copy of the topology: %s", error)

    # -- leftovers of a supervisor that died

    def _stop_leftovers(self) -> None:
        state_file = self.run_dir / "state.json"
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError):
            return
        old_pid = state.get("supervisor_pid")
        if old_pid and old_pid != os.getpid() and _alive(old_pid):
            return  # it is still alive (its control port just did not answer)
        leftovers = []
        for node in state.get("nodes", []):
            pid = node.get("pid")
            try:
                process = psutil.Process(pid) if pid else None
                cmdline = " ".join(process.cmdline()) if process else ""
            except (psutil.Error, ValueError):
                continue
            if f"--id {node.get('node')} " in cmdline + " " and "nodes." in cmdline:
                leftovers.append(process)
                self.logger.warning("stopping %s (pid %d) left by a supervisor that died",
                                    node.get("node"), process.pid)
        for process in leftovers:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except OSError:
                pass
        _, alive = psutil.wait_procs(leftovers, timeout=3)
        for process in alive:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                pass
        state_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
