"""Which nodes of a topology this machine runs: one topology file, many machines.

The same topology.yaml is copied to every machine of a cluster; the
supervisor started on a machine runs the nodes whose `host` is one of that
machine's addresses (`machine_addresses`: every address of its network
interfaces, or the addresses given with `up --host`, for tests and
multi-homed machines) and only probes the others (supervisor/remote.py).

`place(topology, addresses)` gives the topology with `remote` set, or a
`TopologyError` when this machine could not run its part:

- no node at all has an address of this machine (a topology copied to the
  wrong machine, or a typo in a host);
- a node listening on a wildcard or loopback address (0.0.0.0, ::,
  127.0.0.1, localhost) in a topology that spans machines: every machine
  would think it is its own.

Servers may be on several machines: those of this machine are replicated
by folder and certify against each other's folders; those of other
machines are reached over the peer protocol (supervisor/replication_remote.py,
nodes/server/remote_peer.py; docs/REPLICATION.md, "Across machines").

A host given by name is resolved once here; a name that resolves to no
address counts as another machine's (its own supervisor tells).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import replace

import psutil

from .topology import Topology, TopologyError

WILDCARDS = frozenset({"0.0.0.0", "::"})


def machine_addresses(given: Iterable[str] = ()) -> frozenset[str]:
    """This machine's addresses: `given` (up --host), else every interface's, loopback included."""
    chosen = {_normal(address) for address in given}
    if chosen:
        return frozenset(chosen | {"127.0.0.1", "::1"})
    found = {"127.0.0.1", "::1"}
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                found.add(_normal(address.address.split("%", 1)[0]))
    return frozenset(found)


def host_addresses(host: str) -> frozenset[str]:
    """The addresses a node's `host` stands for (a name resolved; nothing if it does not resolve)."""
    if host == "localhost":
        return frozenset({"127.0.0.1", "::1"})
    try:
        return frozenset({_normal(host)})
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return frozenset()
    return frozenset(_normal(str(info[4][0])) for info in infos)


def place(topology: Topology, addresses: frozenset[str], *, leaving_ok: bool = False) -> Topology:
    """`topology` with `remote` = the nodes another machine runs; TopologyError if unplaceable.

    `leaving_ok`: a topology that gives this machine no node is this machine leaving the
    cluster (a hot reload: its nodes stop), not a file copied to the wrong machine (`up`).
    """
    remote = set()
    everywhere = []   # wildcard or loopback hosts: every machine would call them its own
    for spec in topology.nodes.values():
        if spec.host in WILDCARDS or _loopback_host(spec.host):
            everywhere.append(spec.id)
            continue
        if not host_addresses(spec.host) & addresses:
            remote.add(spec.id)
    problems = []
    if len(remote) == len(topology.nodes) and not leaving_ok:
        problems.append("no node of this topology has an address of this machine "
                        f"({', '.join(sorted(a for a in addresses if not _loopback(a))) or 'loopback only'})"
                        ": copy it to the right machine, fix a node's host, or give this "
                        "machine's address with `up --host ADDRESS`")
    if remote and everywhere:
        problems.append(f"node {everywhere[0]} listens on {topology.nodes[everywhere[0]].host}, "
                        "but this topology spans several machines: give it its machine's address")
    if problems:
        raise TopologyError(problems)
    return replace(topology, remote=frozenset(remote), machine=addresses)


def _normal(address: str) -> str:
    return str(ipaddress.ip_address(address))


def _loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def _loopback_host(host: str) -> bool:
    addresses = host_addresses(host)
    return bool(addresses) and all(_loopback(address) for address in addresses)
