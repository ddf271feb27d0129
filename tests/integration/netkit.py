"""Simulated machines for system tests: Linux network namespaces joined by one switch.

`Machines(["h1", "h2", "student"])` makes, for the length of a `with`
block, one network namespace per machine plus a "switch" namespace holding
a bridge; each machine is joined to the bridge by a veth pair and gets an
address in a private test subnet (10.77.0.0/24) that exists only inside
those namespaces: nothing of it is visible from the host's own network, and
everything is removed on exit (deleting a namespace deletes its links).

    with Machines(["h1", "h2"]) as machines:
        server = machines.popen("h1", [sys.executable, "-m", "nodes.server", ...])
        machines.address("h1")          # '10.77.0.1'
        machines.cut("h1")              # take h1's link down: a partition
        machines.heal("h1")

Names carry a random tag so that parallel test workers never meet.
Where namespaces cannot be made (not root, no `ip`, a kernel without
them), `Machines` raises `NoNetworkNamespaces` with one line saying why;
tests turn it into a skip with that line (`machines_or_skip`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

import pytest

SUBNET = "10.77.0"  # a /24 that exists only inside the test namespaces


class NoNetworkNamespaces(RuntimeError):
    """Network namespaces (or veth, or bridges) cannot be made on this machine."""


def _ip(*args: str, namespace: str | None = None) -> None:
    argv = ["ip", *(["-n", namespace] if namespace else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise NoNetworkNamespaces(f"`{' '.join(argv)}` failed: {done.stderr.strip()}")


class Machines:
    """Namespaces for `names`, joined by a bridge; see the module docstring."""

    def __init__(self, names: Sequence[str]):
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"distinct machine names expected, got {names!r}")
        self.names = list(names)
        # Unique per `Machines`: parallel test workers never meet (the
        # addresses may repeat: each set of machines has its own bridge).
        self._tag = f"tz{os.urandom(3).hex()}"
        self._switch = f"{self._tag}-sw"
        self._made: list[str] = []

    # ----------------------------------------------------------- lifecycle

    def __enter__(self) -> Machines:
        if os.geteuid() != 0:
            raise NoNetworkNamespaces("network namespaces need root (tests run as root on CI)")
        if shutil.which("ip") is None:
            raise NoNetworkNamespaces("the `ip` command (iproute2) is not installed")
        try:
            self._make()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        for namespace in reversed(self._made):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=20)
        self._made.clear()

    def _make(self) -> None:
        self._add_namespace(self._switch)
        _ip("link", "add", "br0", "type", "bridge", namespace=self._switch)
        _ip("link", "set", "br0", "up", namespace=self._switch)
        for number, name in enumerate(self.names, start=1):
            namespace = self.namespace(name)
            self._add_namespace(namespace)
            outside, inside = f"{self._tag}s{number}", f"{self._tag}m{number}"
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", outside, "netns", self._switch)
            _ip("link", "set", inside, "netns", namespace)
            _ip("link", "set", outside, "master", "br0", namespace=self._switch)
            _ip("link", "set", outside, "up", namespace=self._switch)
            _ip("link", "set", inside, "name", "eth0", namespace=namespace)
            _ip("addr", "add", f"{self.address(name)}/24", "dev", "eth0", namespace=namespace)
            _ip("link", "set", "eth0", "up", namespace=namespace)

    def _add_namespace(self, namespace: str) -> None:
        _ip("netns", "add", namespace)
        self._made.append(namespace)
        _ip("link", "set", "lo", "up", namespace=namespace)

    # ------------------------------------------------------------- queries

    def namespace(self, name: str) -> str:
        return f"{self._tag}-{name}"

    def address(self, name: str) -> str:
        """The machine's address on the test network."""
        return f"{SUBNET}.{self.names.index(name) + 1}"

    def command(self, name: str, argv: Sequence[str]) -> list[str]:
        """`argv` run inside machine `name`."""
        return ["ip", "netns", "exec", self.namespace(name), *argv]

    def popen(self, name: str, argv: Sequence[str], **options) -> subprocess.Popen:
        """Start `argv` inside machine `name` (options as for subprocess.Popen)."""
        return subprocess.Popen(self.command(name, argv), **options)

    def run(self, name: str, argv: Sequence[str], **options) -> subprocess.CompletedProcess:
        options.setdefault("capture_output", True)
        options.setdefault("text", True)
        options.setdefault("timeout", 60)
        return subprocess.run(self.command(name, argv), **options)

    # -------------------------------------------------------------- faults

    def cut(self, name: str) -> None:
        """Take the machine's link down: it reaches nobody and nobody reaches it."""
        _ip("link", "set", f"{self._tag}s{self.names.index(name) + 1}", "down",
            namespace=self._switch)

    def heal(self, name: str) -> None:
        _ip("link", "set", f"{self._tag}s{self.names.index(name) + 1}", "up",
            namespace=self._switch)


def machines_or_skip(names: Sequence[str]) -> Machines:
    """Entered `Machines`, or a pytest skip whose one line says what is missing."""
    machines = Machines(names)
    try:
        return machines.__enter__()
    except NoNetworkNamespaces as missing:
        pytest.skip(f"simulated machines unavailable: {missing}")
