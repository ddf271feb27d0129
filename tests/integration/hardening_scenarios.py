"""Issue 14's attacks as measurable scenarios against real nodes: the tests assert on them,
bench/fault_report.py prints their figures (docs/SECURITY.md).

Each function starts what it needs with a `NodeStarter` (tests/conftest.py)
and returns plain figures:

- `unauthenticated_flood`: slow-byte unauthenticated connections beyond every
  cap, then an authenticated client: served? how fast?
- `idle_flood_via_balancer`: idle connections beyond one server's cap, then
  new clients of the balancer: how many were served?
- `query_past_limit`: the issue's 60-term filter over a cross join: seconds
  past the time limit;
- `slow_readers`: clients asking for a big answer and never reading it: the
  server's memory (psutil RSS), and whether another client is served meanwhile;
- `auth_guesses`: wrong secrets sent as fast as possible on many
  connections: guesses per second the node evaluates;
- `foreign_down_refused`: `down` given another topology on the same control
  port is refused, and the cluster keeps running.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from nodes.protocol.wire import ResponseDecoder, auth_request
from tests.conftest import NodeStarter, wait_until
from tests.integration.wire import WireClient

SECRET = "s3cret-Tahiry_42"
WITH_SECRET = {"TAHIRY_SECRET": SECRET}


# --------------------------------------------------------------------------
# Floods


def open_flood(port: int, count: int) -> list[socket.socket]:
    """`count` connections that send nothing (non-blocking sockets)."""
    flood = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.setblocking(False)
        flood.append(sock)
    return flood


def trickle(flood: list[socket.socket]) -> int:
    """One byte on each flood connection still open; how many still are."""
    still = 0
    for sock in flood:
        try:
            sock.send(b"a")
            still += 1
        except (BlockingIOError, InterruptedError):
            still += 1
        except OSError:
            pass   # closed by the node
    return still


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def start_guarded_server(starter: NodeStarter, name: str = "m1", *args: str):
    """A server requiring the secret, ready (probed with the secret)."""
    node = starter("server", name, "--data", f"data/{name}", "--require-secret", *args,
                   wait=False, env=WITH_SECRET)

    def answers() -> bool:
        assert node.alive(), node.log_text()
        try:
            with WireClient(node.port) as client:
                return client.run(auth_request(SECRET).decode())[0].ok
        except (OSError, AssertionError):
            return False

    wait_until(answers, 15, f"{name} to answer an authenticated client")
    return node


@dataclass
class FloodResult:
    served: bool
    latency_s: float
    flood_left_open_s: float | None = None   # flood connections still open this long (None: not waited)


def unauthenticated_flood(starter: NodeStarter, flood_size: int = 300,
                          wait_deadline: bool = False) -> FloodResult:
    server = start_guarded_server(starter)
    flood = open_flood(server.port, flood_size)
    opened = time.monotonic()
    try:
        trickle(flood)
        started = time.monotonic()
        served = False
        try:
            with WireClient(server.port, timeout=10) as client:
                served = client.run(auth_request(SECRET).decode())[0].ok \
                    and client.rows("alaivo 6 * 7;") == [[42]]
        except (OSError, AssertionError):
            served = False
        result = FloodResult(served, time.monotonic() - started)
        if wait_deadline:
            while time.monotonic() - opened < 30 and trickle(flood):
                time.sleep(0.5)
            result.flood_left_open_s = time.monotonic() - opened
        return result
    finally:
        close_all(flood)


def idle_flood_via_balancer(starter: NodeStarter, flood_size: int = 260,
                            clients: int = 10) -> tuple[int, int]:
    """(balancer clients fully served, clients tried) while one server is flooded."""
    m1 = starter("server", "m1", "--data", "data/m1")
    m2 = starter("server", "m2", "--data", "data/m2")
    balancer = starter("balancer", "lb", "--backend", f"m1=127.0.0.1:{m1.port}",
                       "--backend", f"m2=127.0.0.1:{m2.port}", "--probe-interval-ms", "100")
    with WireClient(balancer.port) as setup:
        setup.ok("manamboara tahiry sekoly;")
        setup.ok("ampiasao sekoly;")
        setup.ok("manamboara tabilao t (x ISA(null,null));")
    flood = open_flood(m1.port, flood_size)
    served = 0
    try:
        for number in range(clients):
            try:
                with WireClient(balancer.port) as client:
                    ok = ["sekoly"] in client.rows("asehoy ny tahiry;")
                    client.ok("ampiasao sekoly;")
                    client.ok(f"manampia ao@ t sanda ({number});")
                    ok = ok and client.rows("alaivo count(*) ao@ t;")[0][0] >= 1
                served += bool(ok)
            except (OSError, AssertionError):
                pass
    finally:
        close_all(flood)
    return served, clients


# --------------------------------------------------------------------------
# Work and memory


# Over `make_tables`' a and b of 2,000 rows each: minutes of work on the engine thread.
LONG_QUERY = "alaivo count(x) ao@ a tonona@ b rehefa " + " + ".join(["x*y"] * 60) + " > 0;"


def make_tables(client: WireClient, rows_a: int, rows_b: int) -> None:
    """Database `db` with tables a(x) and b(y) of 0..rows-1."""
    client.ok("manamboara tahiry db;")
    client.ok("ampiasao db;")
    for table, column, rows in (("a", "x", rows_a), ("b", "y", rows_b)):
        client.ok(f"manamboara tabilao {table} ({column} ISA(null,null));")
        for start in range(0, rows, 50_000):
            values = ",".join(f"({i})" for i in range(start, min(rows, start + 50_000)))
            client.ok(f"manampia ao@ {table} sanda {values};")


def query_past_limit(starter: NodeStarter, rows: int = 2000, terms: int = 60,
                     limit_s: float = 30.0) -> tuple[float, str]:
    """The issue's filter over a `rows` x `rows` cross join: (seconds past `limit_s`, its answer)."""
    server = starter("server", "m1", "--data", "data/m1")
    with WireClient(server.port, timeout=limit_s + 60) as client:
        make_tables(client, rows, rows)
        condition = " + ".join(["x*y"] * terms)
        started = time.monotonic()
        answer = client.one(f"alaivo count(x) ao@ a tonona@ b rehefa {condition} > 0;")
        return time.monotonic() - started - limit_s, answer.message


@dataclass
class SlowReaders:
    rows: int
    answer_mb: float
    base_mb: float
    peak_mb: float
    settled_mb: float
    other_served_s: float | None
    # What the server says the readers hold (its `.status`), whatever the allocator does.
    slow_readers: int
    unsent_in_memory_mb: float
    unsent_spilled_mb: float
    # Once the readers hung up, the server counted none left (their outboxes dropped).
    released: bool


def slow_readers(starter: NodeStarter, rows_a: int = 2000, rows_b: int = 1000,
                 readers: int = 3) -> SlowReaders:
    """`readers` clients ask for the a x b cross join and never read; the server's RSS.

    Base: after the answer was made and read whole three times. Peak:
    sampled every 10 ms from the requests until every answer is made
    (making a big answer costs what the engine needs, whoever reads it);
    settled: the lowest of the second after that, the readers still
    connected and not reading: settled - base is what they pin, as far as
    the allocator lets RSS tell (it keeps or returns freed pages by chance,
    tens of MB either way). The server's own count of the bytes waiting for
    them (`.status`: in memory, spilled to disk) does not depend on it.
    """
    server = starter("server", "m1", "--data", "data/m1")
    sampler = _RssSampler(psutil.Process(server.pid))
    with WireClient(server.port, timeout=120) as client:
        make_tables(client, rows_a, rows_b)
        # Warm up: the answer made and read whole a few times, so the base
        # already holds what making it leaves behind (the allocator keeps
        # freed memory), and only what the readers pin differs.
        for _ in range(3):
            answer = _answer_size(server.port)
        before = client.status()["statements"]
        base = sampler.rss()
        sockets = []
        sampler.start()
        try:
            other = None
            for number in range(1, readers + 1):   # one after the other, as the warm-up
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
                sock.connect(("127.0.0.1", server.port))
                sock.sendall(b"ampiasao db; alaivo * ao@ a tonona b;")
                sockets.append(sock)
                wait_until(lambda count=number, since=before: _all_ran(client, since, count), 120,
                           "the reader's answer to be made", interval_s=0.05)
                started = time.monotonic()
                if client.rows("alaivo 1;") == [[1]]:
                    other = max(other or 0.0, time.monotonic() - started)
                before += 1   # that `alaivo 1`
            peak = sampler.stop()
            settled = min(_samples(sampler, 1.0))
            status = client.status()
        finally:
            sampler.stop()
            close_all(sockets)
        try:
            wait_until(lambda: client.status()["slow_readers"] == 0, 10,
                       "the readers' outboxes to be dropped")
            released = True
        except AssertionError:
            released = False
    mb = 1 << 20
    return SlowReaders(rows_a * rows_b, answer / mb, base / mb, max(peak, settled) / mb,
                       settled / mb, other, status["slow_readers"],
                       status["unsent_bytes_in_memory"] / mb, status["unsent_bytes_spilled"] / mb,
                       released)


class _RssSampler:
    """A process's peak RSS, sampled every 10 ms by a thread."""

    def __init__(self, process: psutil.Process) -> None:
        self.process = process
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        return self.process.memory_info().rss

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.rss())
            except psutil.Error:
                return
            self._stop.wait(0.01)

    def stop(self) -> int:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.peak


def _samples(sampler: _RssSampler, seconds: float) -> list[int]:
    end, samples = time.monotonic() + seconds, []
    while time.monotonic() < end:
        samples.append(sampler.rss())
        time.sleep(0.05)
    return samples


def _all_ran(client: WireClient, statements_before: int, readers: int) -> bool:
    """Whether every reader's two statements reached the server and its engine is idle."""
    status = client.status()
    arrived = status["statements"] - statements_before >= 2 * readers
    idle = status["statements"] - status.get("small_reads", 0) <= status["batched_statements"]
    return arrived and idle


def _answer_size(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(b"ampiasao db; alaivo * ao@ a tonona b;")
        decoder, responses, size = ResponseDecoder(decode_relations=False), [], 0
        while len(responses) < 2:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            responses.extend(decoder.feed(chunk))
        size = len(responses[-1].raw) if responses else 0
    return size


# --------------------------------------------------------------------------
# Guessing the secret


def auth_guesses(starter: NodeStarter, seconds: float = 3.0,
                 connections: int = 200) -> tuple[float, bool]:
    """(secrets the node compared per second while wrong ones came as fast as `connections`
    connections could send them, whether the right secret then got in).

    Counted by the node (`auth_checked` in `.status;`): a guess the node
    compared is one the guesser may learn from, answered or not (a right
    one would be answered at once).
    """
    server = start_guarded_server(starter)
    # One connection authenticated beforehand reads the count at the start and
    # the end of the attack (no handshake of its own in between).
    with WireClient(server.port, timeout=30) as watcher:
        assert watcher.run(auth_request(SECRET).decode())[0].ok
        checked_before = watcher.status()["auth_checked"]
        asyncio.run(_guess(server.port, seconds, connections))
        checked = watcher.status()["auth_checked"] - checked_before
    return checked / seconds, _gets_in(server.port)


async def _guess(port: int, seconds: float, connections: int) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def guesser(number: int) -> None:
        attempt = 0
        while loop.time() < end:
            attempt += 1
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            try:
                writer.write(auth_request(f"guess-{number}-{attempt}-xxxxxxxx"))
                await asyncio.wait_for(reader.read(4096), max(0.01, end - loop.time()))
            except (OSError, TimeoutError):
                pass
            finally:
                writer.close()

    await asyncio.gather(*(guesser(n) for n in range(connections)))


def _gets_in(port: int) -> bool:
    def authenticated() -> bool:
        try:
            with WireClient(port, timeout=10) as client:
                return client.run(auth_request(SECRET).decode())[0].ok
        except (OSError, AssertionError):
            return False
    try:
        wait_until(authenticated, 20, "the right secret to get in", interval_s=0.5)
    except AssertionError:
        return False
    return True


# --------------------------------------------------------------------------
# The control port


def foreign_down_refused(work: Path) -> bool:
    """A cluster up; `down` given another topology on the same control port: refused, and
    the first cluster still runs?"""
    from tests.integration.supervisorkit import Cluster, all_running

    cluster = Cluster(_folder(work / "cluster"))
    try:
        if cluster.up().returncode != 0:
            return False
        other = Cluster(_folder(work / "other"))
        other.ports["control"] = cluster.ports["control"]
        other.write()
        result = other.cli("down", str(other.topology))
        return result.returncode != 0 and str(cluster.topology) in result.stderr \
            and all_running(cluster.nodes())
    finally:
        cluster.down_and_reap()


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
