"""Are a topology's node ports free? Checked before anything is stopped or started.

A node that cannot bind its port dies at once, is restarted, and ends FATAL
with the cause deep in its log; worse, on a hot reload the old node was
already stopped by then. So `check`, `up` and every reload try each port
that would be newly bound, the way the node binds it (SO_REUSEADDR, as
asyncio's `start_server` does: a port in TIME_WAIT is free), and refuse
naming the port and, where psutil can see it, the program holding it.

A port the running cluster's own nodes hold (the same address in the
topology in force, or the same port at an address that names the same IP:
`localhost` for `127.0.0.1`) is not tested: the node keeping it, or its
replacement after the old one stopped, is ours.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from .topology import NodeSpec, Topology


@dataclass(frozen=True)
class BusyPort:
    """A node's address that another program holds."""

    node: str
    address: str
    port: int
    reason: str            # the bind error, e.g. "Address already in use"
    holder: str | None     # "pid 1234 (python3 -m http.server 3952)", when visible

    def describe(self) -> str:
        held = f", held by {self.holder}" if self.holder else ""
        return (f"{self.node}: port {self.port} ({self.address}) is not free "
                f"({self.reason}{held}); stop that program or give {self.node} another port")


def addresses(topology: Topology | None) -> set[str]:
    """Every node address of a topology (none for None): what its running nodes hold."""
    return {spec.address for spec in topology.nodes.values()} if topology else set()


def busy_ports(topology: Topology, ours: Iterable[str] = ()) -> list[BusyPort]:
    """The node ports of `topology` that cannot be bound now, except the addresses in `ours`.

    `ours`: the addresses our own nodes hold (`addresses(topology in force)`,
    or those of the nodes a dead supervisor left, which `up` stops first).
    """
    held = set(ours)
    busy = []
    for spec in topology.nodes.values():
        if not topology.runs_here(spec.id):
            continue  # another machine binds it (supervisor/machine.py)
        if spec.address in held:
            continue
        reason = bind_error(spec)
        if reason is not None and not _held_by_ours(spec.port, held):
            busy.append(BusyPort(spec.id, spec.address, spec.port, reason, port_holder(spec.port)))
    return busy


def _held_by_ours(port: int, held: set[str]) -> bool:
    """Every socket listening on `port` is at one of our own addresses (`localhost:P` for a
    node running on `127.0.0.1:P`, say): the node that holds it is ours, and a reload
    stops it before its replacement binds."""
    ips: set[str] = set()
    for address in held:
        host, _, held_port = address.rpartition(":")
        if held_port != str(port):
            continue
        try:
            ips.update(str(info[4][0]) for info in socket.getaddrinfo(
                host.strip("[]"), port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError):
            continue
    if not ips:
        return False
    try:
        listening = [c.laddr.ip for c in psutil.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]
    except (psutil.Error, OSError):
        return False
    return bool(listening) and all(ip in ips for ip in listening)


def port_problems(topology: Topology, ours: Iterable[str] = ()) -> list[str]:
    """`busy_ports` as one message per port (the refusal's lines)."""
    return [busy.describe() for busy in busy_ports(topology, ours)]


def status_page_problem(topology: Topology) -> str | None:
    """Why the status page (`http:`) could not listen now, as a sentence; None if it could
    (or it is off). `up` starts the cluster without it then: a warning, not a refusal."""
    http = topology.http
    if not http.enabled:
        return None
    reason = bind_error_at(http.host, http.port)
    if reason is None:
        return None
    holder = port_holder(http.port)
    held = f", held by {holder}" if holder else ""
    return (f"the status page's port {http.port} ({http.host}) is not free ({reason}{held}): "
            f"`up` would start the cluster without it; give `http: {{port: N}}` another port")


def bind_error(spec: NodeSpec) -> str | None:
    """Why `spec`'s node could not listen on its address now; None if it could."""
    return bind_error_at(spec.host, spec.port)


def bind_error_at(host: str, port: int) -> str | None:
    """Why a server could not listen on `host`:`port` now (bound as asyncio binds); None if it could."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            # bind alone succeeds beside a socket bound with SO_REUSEADDR that
            # does not listen yet; listen is where the node would fail.
            sock.listen(1)
        except OSError as error:
            return error.strerror or str(error)
    return None


def port_holder(port: int) -> str | None:
    """The process listening on TCP `port`, as "pid N (command)", when it can be seen.

    Other users' processes are hidden from an unprivileged caller (psutil
    then gives no pid, or raises AccessDenied): None.
    """
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for connection in connections:
        if connection.status != psutil.CONN_LISTEN or not connection.laddr \
                or connection.laddr.port != port or connection.pid is None:
            continue
        try:
            argv = psutil.Process(connection.pid).cmdline()
        except psutil.Error:
            argv = []
        # the program's name, not its full path: "python3 -m http.server 3952"
        # (whitespace folded: a `python -c` script must not break the one-line message)
        command = " ".join(" ".join([Path(argv[0]).name, *argv[1:]]).split()) if argv else "?"
        if len(command) > 80:
            command = command[:77] + "..."
        return f"pid {connection.pid} ({command})"
    return None
