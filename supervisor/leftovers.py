"""Nodes a supervisor left running when it died (kill -9, a crash): finding, probing, stopping them.

Without their supervisor the nodes keep serving: servers still accept writes,
each certified against every peer directory (pull on write, fence on
commit: docs/STORAGE.md), so nothing acknowledged is lost; only
replication is paused and the lag grows (docs/ARCHITECTURE.md, "When the
supervisor dies"). This module is how the next supervisor command sees them:

- `find_leftovers`: the nodes listed in run/state.json (the dead
  supervisor's last word) plus, for servers, the live owner of each data
  directory when it names this cluster (a server started after the last
  state save is found too). A pid counts only if that process really is
  that node: its command line runs `nodes.<kind>` (a relay: `nodes.relay`)
  with `--id <node>` (a reused pid belongs to someone else);
- `status_rows`: what `status` prints for them without a supervisor:
  UNSUPERVISED (never STOPPED) with the `.ping;` round trip;
- `stop_leftovers`: what `up` does before starting anything: SIGTERM each
  one's process group (a server finishes and acknowledges its open batch,
  then exits), SIGKILL after the stop grace, and wait until every one is
  gone, so their ports and data-directory owner locks are free. The new
  `up` then runs the full replication sync before any server takes writes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from engine.storage.data_owner import live_owner
from nodes.protocol.tls import client_context

from .handing_over import HANDING_OVER_FILE, PendingHandOver, add_pending
from .keeper import ping
from .machine import machine_addresses, place
from .ownership import cluster_id
from .remote import REMOTE, UNREACHABLE
from .topology import Topology, TopologyError

UNSUPERVISED = "UNSUPERVISED"
EXIT_WAIT_S = 10.0  # after SIGKILL: the kernel's part, normally milliseconds
STOP_ORDER = ("proxycache", "balancer")  # then the servers


@dataclass
class Leftover:
    """One node process still running without its supervisor."""

    node: str
    kind: str
    address: str
    process: psutil.Process = field(repr=False)
    data: Path | None = None   # a server's data directory (its `--data`)

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class LeftoverScan:
    """What a dead (or silent) supervisor left behind."""

    supervisor_pid: int | None = None
    supervisor_alive: bool = False   # its process still runs (frozen, or not answering)
    nodes: list[Leftover] = field(default_factory=list)


def find_leftovers(topology: Topology) -> LeftoverScan:
    state_file = topology.supervisor.run / "state.json"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        state = {}
    if not isinstance(state, dict):
        state = {}
    scan = LeftoverScan(supervisor_pid=state.get("supervisor_pid"))
    pid = scan.supervisor_pid
    scan.supervisor_alive = pid is not None and bool(pid) and pid != os.getpid() \
        and _is_supervisor(pid)
    candidates = [(row.get("node"), row.get("kind"), row.get("address"), row.get("pid"))
                  for row in state.get("nodes") or [] if isinstance(row, dict)]
    ours = cluster_id(topology)
    for spec in topology.local_of_kind("server"):
        owner = live_owner(spec.data) if spec.data is not None else None
        if owner is not None and owner.cluster == ours:
            candidates.append((spec.id, "server", spec.address, owner.pid))
    seen: set[int] = set()
    for node, kind, address, pid in candidates:
        if not isinstance(pid, int) or pid in seen or not isinstance(node, str):
            continue
        found = _node_process(pid, node, kind)
        if found is not None:
            process, argv = found
            seen.add(pid)
            scan.nodes.append(Leftover(node, kind or "?", address or "?", process,
                                       _data_of(argv)))
    return scan


def _node_process(pid: int, node: str, kind: str | None) -> tuple[psutil.Process, list[str]] | None:
    """The process `pid` and its command line if it runs that node (`-m nodes.<kind> ...
    --id <node>`; a proxy cache with `backends:` runs `-m nodes.relay`)."""
    try:
        process = psutil.Process(pid)
        argv = process.cmdline()
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.Error, ValueError):
        return None
    modules = {f"nodes.{kind}"} if kind else {a for a in argv if a.startswith("nodes.")}
    if kind == "proxycache":   # the one relay is a proxy cache run as its own module
        modules.add("nodes.relay")
    runs_module = any(argument in modules for argument in argv)
    # each argument with the one after it (the last has none)
    named = any(a == "--id" and b == node for a, b in zip(argv, argv[1:], strict=False))
    return (process, argv) if runs_module and named else None


def _data_of(argv: list[str]) -> Path | None:
    """A server's data directory, from its command line (`--data DIR`, absolute)."""
    found = [b for a, b in zip(argv, argv[1:], strict=False) if a == "--data"]
    return Path(found[0]) if found else None


def hand_over_departed(topology: Topology, stopped: list[Leftover],
                       logger: logging.Logger) -> int:
    """Servers a dead supervisor left whose directory `topology` no longer lists (the file
    was edited while no supervisor ran): once they are stopped, what they hold newest goes
    to this machine's servers of the topology, as a hot reload's removal hands over. Only
    they may hold what they acknowledged while replication was paused; nothing would read
    their directory again. The number of files copied."""
    if not topology.replication_enabled:
        return 0
    local = {spec.id: Path(spec.data_dir) for spec in topology.local_of_kind("server")
             if spec.data_dir is not None}
    if not local:
        return 0
    listed = {os.path.realpath(path) for path in local.values()}
    from .replication import Replicator  # (watchdog and the storage code: only here)

    copied = 0
    for leftover in stopped:
        if leftover.kind != "server" or leftover.data is None \
                or os.path.realpath(leftover.data) in listed:
            continue
        name = leftover.node if leftover.node not in local else f"{leftover.node} (before)"
        summary = Replicator({**local, name: leftover.data}, logger).hand_over(name)
        logger.warning("%s (%s) is no longer in the topology: %d of its files handed over "
                       "to %s", leftover.node, leftover.data, summary.copied,
                       ", ".join(sorted(local)))
        copied += summary.copied
        if (summary.unreadable or summary.unreachable) and name == leftover.node:
            # Only its directory may hold what it acknowledged: the next supervisor keeps
            # it the others' peer and retries, as for a removal by a hot reload.
            host, _, port = leftover.address.rpartition(":")
            add_pending(topology.supervisor.run,
                        PendingHandOver(leftover.node, host, int(port or 0), leftover.data), logger)
            logger.warning("%s: not handed over whole (%s): kept the others' peer until it is "
                           "(run/%s)", leftover.node,
                           ", ".join([*summary.unreadable, *summary.unreachable]),
                           HANDING_OVER_FILE)
    return copied


def _is_supervisor(pid: int) -> bool:
    try:
        process = psutil.Process(pid)
        argv = process.cmdline()
        return process.status() != psutil.STATUS_ZOMBIE and "supervisor" in argv
    except (psutil.Error, ValueError):
        return False


# -- status


def status_rows(topology: Topology, scan: LeftoverScan, timeout_s: float = 1.0) -> list[dict]:
    """One row per node: the leftovers UNSUPERVISED (probed), the nodes of other machines
    REMOTE or UNREACHABLE (probed: this machine's supervisor being down stops none of
    them), the others STOPPED."""
    by_node = {leftover.node: leftover for leftover in scan.nodes}
    elsewhere = [node for node in sorted(other_machines_nodes(topology)) if node not in by_node]
    targets = [(leftover.node, leftover.address) for leftover in scan.nodes] + \
        [(node, topology.nodes[node].address) for node in elsewhere]
    probes = asyncio.run(_probe_all(topology, targets, timeout_s)) if targets else {}
    rows: list[dict] = []
    names = list(topology.nodes) + [n for n in by_node if n not in topology.nodes]
    for node in names:
        spec = topology.nodes.get(node)
        leftover = by_node.get(node)
        if leftover is None:
            assert spec is not None  # a node without a leftover comes from the topology
            probe_ms = probes.get(node)
            state = "STOPPED" if node not in elsewhere else (
                REMOTE if probe_ms is not None else UNREACHABLE)
            remote = node in elsewhere   # (its restarts are its supervisor's to say: not asked)
            rows.append({"node": node, "kind": spec.kind, "address": spec.address, "pid": None,
                         "state": state, "uptime_s": None, "restarts": None if remote else 0,
                         "manual_restarts": None if remote else 0, "probe_ms": probe_ms,
                         "last_exit": None, **({"remote": True} if remote else {})})
            continue
        try:
            uptime = round(time.time() - leftover.process.create_time(), 1)
        except psutil.Error:
            uptime = None
        probe_ms = probes.get(node)
        rows.append({"node": node, "kind": leftover.kind, "address": leftover.address,
                     "pid": leftover.pid, "state": UNSUPERVISED, "uptime_s": uptime,
                     "restarts": None, "manual_restarts": None, "probe_ms": probe_ms,
                     "last_exit": None,
                     "supervised": False, "answers": probe_ms is not None})
    return rows


def other_machines_nodes(topology: Topology) -> frozenset[str]:
    """The nodes of `topology` another machine runs (none when it cannot be placed here)."""
    try:
        return place(topology, machine_addresses(), leaving_ok=True).remote
    except TopologyError:
        return frozenset()


async def _probe_all(topology: Topology, targets: list[tuple[str, str]],
                     timeout_s: float) -> dict[str, float | None]:
    """(node, "host:port") -> its `.ping` time in ms, None if it does not answer."""
    tls = client_context(topology.tls)   # one context for every probe (it reads the CA file)

    async def one(address: str) -> float | None:
        host, _, port = address.rpartition(":")
        try:
            return round(await ping(host, int(port), timeout_s, topology.secret, tls), 2)
        except (TimeoutError, OSError, ValueError):
            return None
    results = await asyncio.gather(*(one(address) for _, address in targets))
    return {node: result for (node, _), result in zip(targets, results, strict=True)}


# -- up


def stop_leftovers(leftovers: list[Leftover], grace_s: float,
                   logger: logging.Logger) -> list[Leftover]:
    """Stop them cleanly (SIGTERM, then SIGKILL after grace_s) and wait until gone.

    Front to back, as `down` does: proxy caches, then balancers, then
    servers, so a write a server finishes on SIGTERM still has a way back
    to its client. Returns those still running at the end (nothing should
    start then).
    """
    def rank(leftover: Leftover) -> int:
        return STOP_ORDER.index(leftover.kind) if leftover.kind in STOP_ORDER else len(STOP_ORDER)

    remaining: list[Leftover] = []
    for step in range(len(STOP_ORDER) + 1):
        group = [leftover for leftover in leftovers if rank(leftover) == step]
        if group:
            remaining += _stop_group(group, grace_s, logger)
    return remaining


def _stop_group(leftovers: list[Leftover], grace_s: float,
                logger: logging.Logger) -> list[Leftover]:
    for leftover in leftovers:
        logger.warning("stopping %s (pid %d) left by a supervisor that died", leftover.node,
                       leftover.pid)
        _signal(leftover.process, signal.SIGTERM)
    processes = [leftover.process for leftover in leftovers]
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        logger.warning("pid %d ignored SIGTERM for %.1f s: SIGKILL", process.pid, grace_s)
        _signal(process, signal.SIGKILL)
    # Wait for the SIGKILLed ones too: their ports and owner locks are freed
    # only once they are gone.
    _, alive = psutil.wait_procs(alive, timeout=EXIT_WAIT_S)
    remaining = {process.pid for process in alive}
    return [leftover for leftover in leftovers if leftover.pid in remaining]


def _signal(process: psutil.Process, signum: int) -> None:
    """The node's whole process group when it leads one (the supervisor starts them so)."""
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
    except (OSError, psutil.Error):
        pass
