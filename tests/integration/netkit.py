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
        machines.cut_between("h1", "h2")  # h1 and h2 lose each other, not the others
        machines.heal_between("h1", "h2")
        machines.delay("h1", 5)         # every packet h1 sends waits 5 ms (one way)
        machines.kill_all("h2")         # SIGKILL every process of h2: the machine is lost

Delay without netem (the qdisc is not in these kernels): `delay(name, ms)`
routes every packet the machine sends to another machine into a TUN
device, where a small process of this module (`python -m
tests.integration.netkit delay ...`, run inside the namespace) holds each
one `ms` milliseconds and writes it into a second TUN device; the kernel
forwards it from there out of the machine's link. Delay every machine for
a one-way delay on every link; traffic within a machine is not delayed.

Names carry a random tag so that parallel test workers never meet.
Where namespaces cannot be made (not root, no `ip`, a kernel without
them), `Machines` raises `NoNetworkNamespaces` with one line saying why;
tests turn it into a skip with that line (`machines_or_skip`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

import pytest

SUBNET = "10.77.0"  # a /24 that exists only inside the test namespaces
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
        self._delayers: dict[str, subprocess.Popen] = {}

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
        for name in list(self._delayers):
            self.undelay(name)
        for name in self.names:
            # Whatever a test left running there (a supervisor whose `down` failed):
            # removing a namespace's name does not stop the processes inside it.
            if self.namespace(name) in self._made:
                try:
                    self.kill_all(name)
                except (AssertionError, OSError, subprocess.SubprocessError):
                    pass
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

    def cut_between(self, first: str, second: str) -> None:
        """Cut two machines from each other only (each still reaches the others): every
        packet from one to the other is dropped (a blackhole route on both sides)."""
        for here, there in ((first, second), (second, first)):
            _ip("route", "add", "blackhole", f"{self.address(there)}/32",
                namespace=self.namespace(here))

    def heal_between(self, first: str, second: str) -> None:
        for here, there in ((first, second), (second, first)):
            _ip("route", "del", "blackhole", f"{self.address(there)}/32",
                namespace=self.namespace(here))

    def pids(self, name: str) -> list[int]:
        """Every process running inside machine `name` (its delayer, part of the link, excepted)."""
        done = subprocess.run(["ip", "netns", "pids", self.namespace(name)], capture_output=True,
                              text=True, timeout=20)
        spared = {process.pid for process in self._delayers.values()}
        return [int(word) for word in done.stdout.split() if int(word) not in spared]

    def kill_all(self, name: str, timeout_s: float = 10.0) -> list[int]:
        """SIGKILL every process of machine `name` (its delayer excepted); the pids killed."""
        killed: list[int] = []
        deadline = time.monotonic() + timeout_s
        while True:
            alive = self.pids(name)
            if not alive:
                return killed
            if time.monotonic() > deadline:
                raise AssertionError(f"processes of {name} survive SIGKILL: {alive}")
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def delay(self, name: str, ms: float) -> None:
        """Every packet machine `name` sends to another machine waits `ms` ms (see the docstring)."""
        if name in self._delayers:
            self.undelay(name)
        namespace = self.namespace(name)
        for device in ("tdin", "tdout"):
            _ip("tuntap", "add", "dev", device, "mode", "tun", namespace=namespace)
            _ip("link", "set", device, "up", namespace=namespace)
        for key, value in (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"),
                           ("net.ipv4.conf.tdout.rp_filter", "0"),
                           ("net.ipv4.conf.tdout.accept_local", "1")):
            done = self.run(name, ["sysctl", "-qw", f"{key}={value}"])
            if done.returncode != 0:
                raise NoNetworkNamespaces(f"sysctl {key} in {name}: {done.stderr.strip()}")
        delayer = self.popen(name, [sys.executable, "-m", "tests.integration.netkit", "delay",
                                    "tdin", "tdout", str(ms)],
                             cwd=str(_ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert delayer.stdout is not None
        ready = delayer.stdout.readline()   # the devices are open: packets wait, none is lost
        if b"ready" not in ready:
            delayer.kill()
            delayer.wait()
            raise NoNetworkNamespaces(f"the delayer did not start: {ready.decode(errors='replace')}")
        self._delayers[name] = delayer
        # Packets this machine makes (iif lo) for the test network go into tdin.
        _ip("route", "add", f"{SUBNET}.0/24", "dev", "tdin", "src", self.address(name), "table",
            "77", namespace=namespace)
        _ip("rule", "add", "pref", "100", "iif", "lo", "to", f"{SUBNET}.0/24", "table", "77",
            namespace=namespace)

    def undelay(self, name: str) -> None:
        delayer = self._delayers.pop(name, None)
        namespace = self.namespace(name)
        subprocess.run(["ip", "-n", namespace, "rule", "del", "pref", "100"], capture_output=True,
                       timeout=20)
        if delayer is not None:
            delayer.kill()
            delayer.wait()
        for device in ("tdin", "tdout"):
            subprocess.run(["ip", "-n", namespace, "link", "del", device], capture_output=True,
                           timeout=20)


def machines_or_skip(names: Sequence[str]) -> Machines:
    """Entered `Machines`, or a pytest skip whose one line says what is missing."""
    machines = Machines(names)
    try:
        return machines.__enter__()
    except NoNetworkNamespaces as missing:
        pytest.skip(f"simulated machines unavailable: {missing}")


# ----------------------------------------------------------------- the delayer

def _open_tun(name: str) -> int:
    import fcntl
    import struct

    tunsetiff, iff_tun, iff_no_pi = 0x400454CA, 0x0001, 0x1000
    descriptor = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(descriptor, tunsetiff, struct.pack("16sH", name.encode(), iff_tun | iff_no_pi))
    return descriptor


def _delay_packets(source_name: str, sink_name: str, ms: float) -> None:
    """Read each packet from TUN `source_name`, write it into `sink_name` `ms` ms later."""
    import collections
    import math
    import select

    source, sink = _open_tun(source_name), _open_tun(sink_name)
    os.set_blocking(source, False)
    delay_s = ms / 1000
    waiting: collections.deque[tuple[float, bytes]] = collections.deque()
    poller = select.poll()
    poller.register(source, select.POLLIN)
    print("ready", flush=True)
    while True:
        timeout = None if not waiting else max(0, math.ceil(
            (waiting[0][0] - time.monotonic()) * 1000))
        if poller.poll(timeout):
            while True:
                try:
                    packet = os.read(source, 65536)
                except BlockingIOError:
                    break
                waiting.append((time.monotonic() + delay_s, packet))
        now = time.monotonic()
        while waiting and waiting[0][0] <= now:
            try:
                os.write(sink, waiting.popleft()[1])
            except OSError:
                pass   # a packet the kernel refuses is a lost packet: TCP sends it again


if __name__ == "__main__" and sys.argv[1:2] == ["delay"]:
    _delay_packets(sys.argv[2], sys.argv[3], float(sys.argv[4]))
