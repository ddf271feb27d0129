"""Tahiry next to its peers (issue 12): the floor, PostgreSQL 15 and pgbouncer, in one run.

Workloads on a 1,000-row, 5-column table: `read`, an uncached point read (equality
on id, a different id each request: the proxy cache never hits, its counters
are printed) and `insert`, a durable single-row insert. Systems: `floor`, a bare
uvloop server answering each `;` with a fixed response ending in END (one hop,
no work); `floor+fsync`, the same, but an insert's bytes are first appended to a
file and fdatasynced (what any durable insert must at least pay here: one hop,
one append, one fdatasync); `fwd>fwd>floor+fsync`, two bare uvloop processes
forwarding bytes in front of it (the least any chain of three processes with
one durable append per insert can take here); Tahiry's `server`,
`balancer>server`, `proxy>balancer>server`, and `relay>server` (the one relay:
the proxy cache running the balancer in its process, nodes/relay), their hops
between nodes through Unix sockets as the supervisor sets them up on one
machine (docs/ARCHITECTURE.md, "Unix sockets between nodes");
PostgreSQL 15 direct (private initdb cluster, fsync and synchronous_commit on,
primary key on id) through psycopg, `pg-simple` (simple query, literal in the
text) and `pg-prepared` (server-side prepared statement); `pgbouncer` in
transaction pooling in front of it (simple query), reaching PostgreSQL through
its Unix socket, as the chain's nodes reach each other. Without postgres,
pgbouncer or psycopg, one line says so and those rows are skipped. The load
generator reaches every system over TCP loopback (clients keep TCP), and the
bare forwarders of `fwd>fwd>floor+fsync` forward over TCP loopback too: that
row is the TCP floor of a three-process chain, not the Unix one.

Worker processes drive the connections from blocking-socket threads, the same
harness for every system; Tahiry requests are raw bytes (the client finds END
and tells an error, no more). Each cell lasts --seconds; --rounds rounds
interleave the systems (order rotated each round); tables show the median of
the per-round rt/s, p50 and p99. `/X` columns: the row's rt/s divided by X's at
the same connection count (< 1: slower): every row by the floor, the server by
pg-simple and pg-prepared, the chain by pgbouncer. At 1 connection, CPU time per
request of each process (psutil, children included) and of the load generator.
`hit`: a proxy cache hit (the same read every time) on the chain and the one
relay beside the floor, and what a hit costs the proxy's (the relay's) CPU
against the floor's per request. Then "first read after a write" on the server
direct (1k, 10k, 100k rows): a point read right after an insert into the same
table vs right after a read.

    ./.venv/bin/python bench/peers_bench.py [--seconds 2] [--rounds 3] [--connections 1,4,16,64]
        [--only read,insert,hit,first-read] [--workers N] [--pairs 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import pwd
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from array import array
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchkit import WireConnection, free_port, request_once, wait_listening  # noqa: E402
from chain_bench import start  # noqa: E402

from nodes.protocol.wire import response_is_error  # noqa: E402

try:
    import psycopg
except ImportError:  # the PostgreSQL rows are skipped
    psycopg = None  # type: ignore[assignment]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROWS = 1000
TAHIRY_COLUMNS = ("id ISA(0,null), a ISA(null,null), b LAHATSORATRA(null,null), "
                  "c ISA(null,null), d LAHATSORATRA(null,null)")
FLOOR_RESPONSE = b"RESULT_MESSAGE\nok\nEND\n"
FILL_CHUNK = 10_000  # rows per multi-row insert (well under the 1 MiB request limit)
FLOOR_SYNC, FLOOR_CHAIN = "floor+fsync", "fwd>fwd>floor+fsync"
REFERENCES = {"server": ("pg-simple", "pg-prepared"), FLOOR_SYNC: ("pg-simple", "pg-prepared"),
              "balancer>server": ("pgbouncer",), "proxy>balancer>server": ("pg-prepared", "pgbouncer"),
              "relay>server": ("pg-prepared", "pgbouncer"), FLOOR_CHAIN: ("pg-prepared", "pgbouncer")}
# The one relay against the chain it replaces (printed under the read table).
RELAY, CHAIN = "relay>server", "proxy>balancer>server"
# `hit`: the same text every time, answered from the proxy's cache after the first.
HIT_REQUEST = b"alaivo * ao@ t rehefa id = 7;"
HIT_SYSTEMS = ("floor", CHAIN, RELAY)
RATIO_COLUMNS = ("floor", "pg-simple", "pg-prepared", "pgbouncer")


def nodelay(transport) -> None:
    """Each answer leaves at once (the bare servers' sockets, as the nodes' are)."""
    transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def serve_floor(port: int, journal: str | None = None) -> None:
    """The floor server (its own process): a fixed response per `;`, on uvloop.

    `journal`: a file to which the bytes of a request holding an insert are
    appended and fdatasynced before the answer (as a Tahiry server appends a
    journal entry; the file is kept open, the floor pays no open or close).
    """
    import uvloop

    descriptor = (os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                  if journal else None)

    class Answer(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            nodelay(transport)

        def data_received(self, data):
            if count := data.count(b";"):
                if descriptor is not None and b"manampia" in data:
                    os.write(descriptor, data)
                    os.fdatasync(descriptor)
                self.transport.write(FLOOR_RESPONSE * count)

    async def serve():
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(serve())


def serve_forward(port: int, upstream_port: int) -> None:
    """A bare relay (its own process, uvloop): each connection gets one upstream
    connection, and bytes go each way untouched (a relay that does no work)."""
    import uvloop

    class Upstream(asyncio.Protocol):
        def __init__(self, downstream):
            self.downstream = downstream

        def connection_made(self, transport):
            nodelay(transport)

        def data_received(self, data):
            self.downstream.write(data)

        def connection_lost(self, exc):
            self.downstream.close()

    class Downstream(asyncio.Protocol):
        upstream = None

        def connection_made(self, transport):
            nodelay(transport)
            self.transport = transport
            self.early: list[bytes] = []   # what came before the upstream connection opened
            asyncio.get_running_loop().create_task(self.connect())

        async def connect(self):
            self.upstream, _ = await asyncio.get_running_loop().create_connection(
                lambda: Upstream(self.transport), "127.0.0.1", upstream_port)
            self.upstream.write(b"".join(self.early))

        def data_received(self, data):
            if self.upstream is None:
                self.early.append(data)
            else:
                self.upstream.write(data)

        def connection_lost(self, exc):
            if self.upstream is not None:
                self.upstream.close()

    async def serve():
        server = await asyncio.get_running_loop().create_server(Downstream, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(serve())


def row(key: int) -> str:
    """The row with this id, as SQL and Tahiry literals (the same text in both)."""
    return f"({key}, {key * 3}, 'n{key}', {key % 7}, 'fanamarihana {key}')"


class RawClient:
    """Tahiry's wire protocol (or the floor) as raw bytes: send, read up to END, tell an error.

    Not benchkit's WireConnection: its ResponseDecoder costs ~8 us a response
    (~1 us here), client time that would be counted as the nodes' latency.
    """

    def __init__(self, port: int, table: str = "t"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.table = table
        self.request(b"ampiasao bench;")

    def request(self, payload: bytes) -> None:
        self.sock.sendall(payload)
        data = self.sock.recv(1 << 16)
        while not data.endswith(b"\nEND\n"):
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the node closed the connection")
            data += chunk
        if response_is_error(data):
            raise RuntimeError(data[-300:].decode("utf-8", "replace"))

    def read(self, key: int) -> None:
        self.request(f"alaivo * ao@ {self.table} rehefa id = {key};".encode())

    def insert(self, key: int) -> None:
        self.request(f"manampia ao@ {self.table} sanda {row(key)};".encode())

    def hit(self, key: int) -> None:
        self.request(HIT_REQUEST)

    def close(self) -> None:
        self.sock.close()


class PgClient:
    """psycopg in autocommit: simple query (literal in the text) or a server-side prepared statement."""

    def __init__(self, port: int, prepared: bool):
        self.conn = psycopg.connect(host="127.0.0.1", port=port, dbname="bench", user="bench",
                                    autocommit=True)
        self.prepared = prepared
        self.cursor = self.conn.cursor() if prepared else psycopg.ClientCursor(self.conn)

    def read(self, key: int) -> None:
        if self.prepared:
            self.cursor.execute("select * from t where id = %s", (key,), prepare=True)
        else:
            self.cursor.execute(f"select * from t where id = {key}")
        self.cursor.fetchall()

    def insert(self, key: int) -> None:
        if self.prepared:
            self.cursor.execute("insert into t values (%s, %s, %s, %s, %s)",
                                (key, key * 3, f"n{key}", key % 7, f"fanamarihana {key}"), prepare=True)
        else:
            self.cursor.execute(f"insert into t values {row(key)}")

    def close(self) -> None:
        self.conn.close()


@dataclass
class System:
    name: str
    client: str                                                      # raw, pg-simple or pg-prepared
    port: int
    processes: list[tuple[str, int]]  # (role, pid) whose CPU time a request costs

    def connect(self) -> RawClient | PgClient:
        if self.client == "raw":
            return RawClient(self.port)
        return PgClient(self.port, prepared=self.client == "pg-prepared")


def load_worker(system, workload, connections, seconds, shared, queue, go, done) -> None:
    """One load process: a thread per connection, all let go at once by `go`.

    Each request of the cell takes the next number of one shared sequence: a
    read asks for id number % 1,000 (a key comes back only after 1,000 other
    requests: never from the 200-entry proxy cache), an insert writes id number.
    """
    counter, lock = shared
    try:
        clients = [system.connect() for _ in range(connections)]
        queue.put(("ready", None))
        outputs = [array("d") for _ in clients]
        errors: list[str] = []
        go.wait()
        began, cpu_began = time.perf_counter(), time.process_time()
        deadline = began + seconds

        def drive(slot: int) -> None:
            call, out = getattr(clients[slot], workload), outputs[slot]
            try:
                while True:
                    with lock:
                        number = counter.value
                        counter.value = number + 1
                    if (sent := time.perf_counter()) >= deadline:
                        break
                    call(number % ROWS if workload == "read" else number)
                    out.append(time.perf_counter() - sent)
            except Exception as error:  # reported to the parent
                errors.append(f"{type(error).__name__}: {error}")

        threads = [threading.Thread(target=drive, args=(slot,)) for slot in range(connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ended, cpu = time.perf_counter(), time.process_time() - cpu_began
        if errors:
            raise RuntimeError(errors[0])
        queue.put(("done", (outputs, began, ended, cpu)))
        done.wait(60)  # the connections stay open until the parent has read the CPU times
        for client in clients:
            client.close()
    except Exception:
        queue.put(("error", traceback.format_exc()))


def cpu_seconds(processes: list[tuple[str, int]]) -> dict[tuple[str, int], float]:
    """User + system CPU seconds of each process and its descendants, keyed by (role, pid)."""
    seconds = {}
    for role, pid in processes:
        try:
            top = psutil.Process(pid)
            for process in [top, *top.children(recursive=True)]:
                times = process.cpu_times()
                seconds[(role, process.pid)] = times.user + times.system
        except psutil.Error:
            pass
    return seconds


def run_cell(system: System, workload: str, connections: int, seconds: float,
             workers: int, first: int) -> dict:
    """One measurement (`first`: the sequence's start): {rate, p50, p99 (ms), cpu: {role: us/request}}."""
    context = multiprocessing.get_context("fork")
    queue, go, done = context.Queue(), context.Event(), context.Event()
    count, shared = min(connections, workers), (context.RawValue("q", first), context.Lock())
    processes = [context.Process(target=load_worker, daemon=True, args=(
        system, workload, len(range(w, connections, count)), seconds, shared, queue, go, done))
        for w in range(count)]
    for process in processes:
        process.start()

    def collect(timeout: float) -> list:
        got = []
        for _ in processes:
            tag, value = queue.get(timeout=timeout)
            if tag == "error":
                raise RuntimeError(f"{system.name} {workload}: {value}")
            got.append(value)
        return got

    try:
        collect(60)
        before = cpu_seconds(system.processes)
        go.set()
        reports = collect(seconds + 120)
        after = cpu_seconds(system.processes)
    finally:
        done.set()
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
    latencies = sorted(x for report in reports for out in report[0] for x in out)
    requests = len(latencies)
    cpu = {"client": sum(report[3] for report in reports) * 1e6 / requests}
    for (role, pid), spent in after.items():
        cpu[role] = cpu.get(role, 0.0) + (spent - before.get((role, pid), 0.0)) * 1e6 / requests
    return {"rate": requests / (max(r[2] for r in reports) - min(r[1] for r in reports)),
            "p50": statistics.median(latencies) * 1000,
            "p99": latencies[min(requests - 1, int(requests * 0.99))] * 1000, "cpu": cpu}


def fill(setup: WireConnection, table: str, rows: int) -> None:
    """Create `table` and load ids 0..rows-1 with multi-row inserts."""
    chunks = [range(first, min(rows, first + FILL_CHUNK)) for first in range(0, rows, FILL_CHUNK)]
    statements = [f"manamboara tabilao {table} ({TAHIRY_COLUMNS});"] + [
        f"manampia ao@ {table} sanda {', '.join(map(row, chunk))};" for chunk in chunks]
    for statement in statements:
        answer = setup.request(statement)
        assert answer.ok, answer.message


def start_tahiry(workdir: Path, processes: list) -> list[System]:
    """The floor; a server with the 1,000 rows, a balancer in front of it, a proxy in front of that;
    the one relay (proxy and balancer in one process) in front of the same server."""
    def bare(name: str, *args: str) -> tuple[subprocess.Popen, int]:
        port = free_port()
        process = subprocess.Popen([sys.executable, __file__, *args, "--port", str(port)],
                                   stdout=open(workdir / f"{name}.log", "ab"),
                                   stderr=subprocess.STDOUT, start_new_session=True)
        processes.append(process)
        wait_listening(port)
        return process, port

    floor, floor_port = bare("floor", "--serve-floor")
    # (The durable floor's file sits beside the server's data, on the same disk.)
    floor_sync, floor_sync_port = bare("floor-sync", "--serve-floor", "--journal",
                                       str(workdir / "floor.journal"))
    forward_far, forward_far_port = bare("forward-far", "--forward-to", str(floor_sync_port))
    forward_near, forward_near_port = bare("forward-near", "--forward-to", str(forward_far_port))
    server, server_port = start("server", "m1", workdir, "--data", "data/m1",
                                "--unix-socket", str(workdir / "m1.sock"))
    processes.append(server)
    with WireConnection(server_port, decode_relations=False) as setup:
        for statement in ("manamboara tahiry bench;", "ampiasao bench;"):
            assert setup.request(statement).ok
        fill(setup, "t", ROWS)
    # Their hops through Unix sockets, as the supervisor sets them up on one machine
    # (docs/ARCHITECTURE.md, "Unix sockets between nodes"): the backends file names the
    # server's socket, the proxy its balancer's.
    backends = workdir / "backends.json"
    backends.write_text(json.dumps({"backends": [
        {"id": "m1", "host": "127.0.0.1", "port": server_port,
         "unix_socket": str(workdir / "m1.sock")}]}))
    balancer, balancer_port = start("balancer", "lb", workdir, "--backends-file", str(backends),
                                    "--unix-socket", str(workdir / "lb.sock"))
    processes.append(balancer)
    proxy, proxy_port = start("proxycache", "proxy", workdir, "--upstream", f"127.0.0.1:{balancer_port}",
                              "--upstream-socket", str(workdir / "lb.sock"),
                              "--ttl-ms", "3000", "--max-entries", "200")
    processes.append(proxy)
    relay, relay_port = start("relay", "relay", workdir, "--backends-file", str(backends),
                              "--ttl-ms", "3000", "--max-entries", "200")
    processes.append(relay)
    roles = [("server", server.pid), ("balancer", balancer.pid), ("proxy", proxy.pid)]
    return [System("floor", "raw", floor_port, [("floor", floor.pid)]),
            System("server", "raw", server_port, roles[:1]),
            System("balancer>server", "raw", balancer_port, roles[:2]),
            System(CHAIN, "raw", proxy_port, roles),
            System(RELAY, "raw", relay_port, [roles[0], ("relay", relay.pid)]),
            System(FLOOR_SYNC, "raw", floor_sync_port, [("floor", floor_sync.pid)]),
            System(FLOOR_CHAIN, "raw", forward_near_port,
                   [("floor", floor_sync.pid), ("fwd", forward_far.pid), ("fwd", forward_near.pid)])]


def wait_for_pg(port: int, dbname: str, process: subprocess.Popen, log: Path):
    """A psycopg connection once `process` accepts them (RuntimeError with its log if it dies)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return psycopg.connect(host="127.0.0.1", port=port, dbname=dbname, user="bench", autocommit=True)
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{process.args!r} did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.1)


def start_postgres(pgdir: Path, processes: list) -> tuple[list[System], str | None]:
    """PostgreSQL 15 (private cluster, the table) and pgbouncer in front; the line saying what is missing.

    As root, postgres and pgbouncer run as the postgres user (they refuse root).
    """
    missing = [name for name, ok in (("psycopg", psycopg is not None),
                                     ("postgres", (PG_BIN / "postgres").exists())) if not ok]
    drop: dict[str, Any] = {}
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
            drop = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            os.chown(pgdir, user.pw_uid, user.pw_gid)
        except KeyError:
            missing.append("postgres user to run postgres as")
    if missing:
        return [], f"skipped the PostgreSQL and pgbouncer rows: no {', '.join(missing)}"
    log = pgdir / "postgres.log"
    quiet: dict[str, Any] = {"cwd": pgdir, "stdout": open(log, "ab"), "stderr": subprocess.STDOUT, **drop}
    subprocess.run([PG_BIN / "initdb", "-D", pgdir / "data", "-U", "bench", "--auth=trust", "-E", "UTF8",
                    "--locale=C", "--no-sync"], check=True, **quiet)
    port = free_port()
    postgres = subprocess.Popen(
        [PG_BIN / "postgres", "-D", pgdir / "data", "-p", str(port), "-k", str(pgdir),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-c", "synchronous_commit=on",
         "-c", "max_connections=300"], start_new_session=True, **quiet)
    processes.append(postgres)
    with wait_for_pg(port, "postgres", postgres, log) as admin:
        admin.execute("create database bench")
    with wait_for_pg(port, "bench", postgres, log) as conn:
        conn.execute("create table t (id bigint primary key, a bigint, b text, c bigint, d text)")
        conn.execute("insert into t select i, i * 3, 'n' || i, i %% 7, 'fanamarihana ' || i "
                     "from generate_series(0, %s) i", (ROWS - 1,))
        conn.execute("vacuum analyze t")
    roles = [("postgres", postgres.pid)]
    systems = [System(name, name, port, roles) for name in ("pg-simple", "pg-prepared")]
    if shutil.which("pgbouncer") is None:
        return systems, "skipped the pgbouncer rows: no pgbouncer"
    bouncer_port = free_port()
    (pgdir / "userlist.txt").write_text('"bench" ""\n')
    (pgdir / "pgbouncer.ini").write_text(
        # Through PostgreSQL's own Unix socket (`-k pgdir`), as the chain's hops go through theirs.
        f"[databases]\nbench = host={pgdir} port={port} dbname=bench user=bench\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {bouncer_port}\nunix_socket_dir = {pgdir}\n"
        f"auth_type = trust\nauth_file = {pgdir}/userlist.txt\npool_mode = transaction\n"
        "max_client_conn = 1000\ndefault_pool_size = 20\n")
    bouncer = subprocess.Popen(["pgbouncer", pgdir / "pgbouncer.ini"], start_new_session=True,
                               **{**quiet, "stdout": open(pgdir / "pgbouncer.log", "ab")})
    processes.append(bouncer)
    wait_for_pg(bouncer_port, "bench", bouncer, pgdir / "pgbouncer.log").close()
    systems.append(System("pgbouncer", "pg-simple", bouncer_port, [("pgbouncer", bouncer.pid), *roles]))
    return systems, None


def stop(processes: list[subprocess.Popen]) -> None:
    """Stop what this run started, newest first: SIGTERM to each one's process group
    (postgres: SIGINT, its fast shutdown, to the postmaster alone); SIGKILL after 20 s."""
    for process in reversed(processes):
        try:
            if str(process.args[0]).endswith("postgres"):
                process.send_signal(signal.SIGINT)
            else:
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except OSError:
            pass


def median_cell(figures: list[dict]) -> dict:
    roles = {role for figure in figures for role in figure["cpu"]}
    return {**{key: statistics.median(f[key] for f in figures) for key in ("rate", "p50", "p99")},
            "cpu": {role: statistics.median(f["cpu"].get(role, 0.0) for f in figures) for role in roles}}


def print_table(title: str, cells: dict, systems: list[System], connections: list[int]) -> None:
    print(f"\n{title}")
    print(f"{'system':<23}{'conns':>6}{'rt/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          + "".join(f"{'/' + name:>13}" for name in RATIO_COLUMNS))
    for count in connections:
        for system in systems:
            cell = cells[(system.name, count)]
            peers = (*REFERENCES.get(system.name, ()), *(("floor",) if system.name != "floor" else ()))
            ratios = "".join(f"{cell['rate'] / cells[(name, count)]['rate']:>13.2f}"
                             if name in peers and (name, count) in cells else " " * 13
                             for name in RATIO_COLUMNS)
            print(f"{system.name:<23}{count:>6}{cell['rate']:>9.0f}{cell['p50']:>9.3f}{cell['p99']:>9.3f}"
                  + ratios.rstrip())
    if 1 in connections:
        print("CPU time per request at 1 connection (us, user+system, children included):")
        for system in systems:
            cpu = cells[(system.name, 1)]["cpu"]
            print(f"  {system.name:<23}" + "  ".join(
                f"{role} {cpu.get(role, 0.0):.0f}" for role in [*(r for r, _ in system.processes), "client"]))


def print_relay_ratio(cells: dict, connections: list[int]) -> None:
    """The one relay beside the chain it replaces: rt/s ratio and p50 difference per count."""
    print_pair_ratio(cells, connections, RELAY, CHAIN)


def print_pair_ratio(cells: dict, connections: list[int], system: str, reference: str) -> None:
    """`system` beside `reference`: rt/s ratio and p50 difference per connection count."""
    parts = [f"{count} conn: rt/s x{cells[(system, count)]['rate'] / cells[(reference, count)]['rate']:.2f}, "
             f"p50 {cells[(system, count)]['p50'] - cells[(reference, count)]['p50']:+.3f} ms"
             for count in connections if (system, count) in cells and (reference, count) in cells]
    if parts:
        print(f"{system} / {reference}: " + "; ".join(parts))


def print_hit_cpu(cells: dict) -> None:
    """A cache hit's CPU in the process that answers it, against the floor's per request."""
    floor = cells.get(("floor", 1))
    if floor is None:
        return
    for system, role in ((CHAIN, "proxy"), (RELAY, "relay")):
        cell = cells.get((system, 1))
        if cell is not None:
            spent, reference = cell["cpu"].get(role, 0.0), floor["cpu"]["floor"]
            print(f"cache hit, 1 conn: the {role} spends {spent:.1f} us of CPU per hit, "
                  f"{spent / reference:.2f}x the floor's {reference:.1f} us")


def first_read_after_write(port: int, pairs: int = 60) -> None:
    """A point read right after an insert into the same table vs right after a read, server direct.

    A third figure, a read right after an idle pause as long as the insert
    took, with no write: what this machine charges any request that finds
    its CPU caches cold (a virtual CPU that went idle; here ~1.6-1.8x a read
    right behind another, in-process too). A write costs the next read what
    it costs beyond that.
    """
    print(f"\nfirst read after a write (server direct, 1 connection, median of {pairs} pairs):")
    print(f"{'rows':>8}{'after write ms':>16}{'no write ms':>13}{'ratio':>8}"
          f"{'after pause ms':>16}{'ratio':>8}")
    for rows in (1_000, 10_000, 100_000):
        table = f"f{rows}"
        with WireConnection(port, decode_relations=False) as setup:
            assert setup.request("ampiasao bench;").ok
            fill(setup, table, rows)
        client = RawClient(port, table)
        after_write, no_write, after_pause = list[float](), list[float](), list[float]()
        client.read(0)  # the first read of the freshly filled table is not one of the pairs
        for pair in range(pairs):
            began = time.perf_counter()
            client.insert(10_000_000 + pair)
            insert_s = time.perf_counter() - began
            for out in (after_write, no_write):
                began = time.perf_counter()
                client.read(random.randrange(rows))
                out.append((time.perf_counter() - began) * 1000)
            time.sleep(insert_s)
            began = time.perf_counter()
            client.read(random.randrange(rows))
            after_pause.append((time.perf_counter() - began) * 1000)
        client.close()
        after, before = statistics.median(after_write), statistics.median(no_write)
        paused = statistics.median(after_pause)
        print(f"{rows:>8}{after:>16.3f}{before:>13.3f}{after / before:>8.2f}"
              f"{paused:>16.3f}{paused / before:>8.2f}")


def machine_line(when: str) -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{when}: {datetime.now().isoformat(timespec='seconds')}  load average {load}"


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--seconds", type=float, default=2.0, help="per cell")
    options.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    options.add_argument("--connections", default="1,4,16,64")
    options.add_argument("--only", default="read,insert,hit,first-read",
                         help="comma-separated among read, insert, hit, first-read")
    options.add_argument("--workers", type=int, default=max(2, len(os.sched_getaffinity(0))),
                         help="load-generating processes (at most one per connection)")
    options.add_argument("--pairs", type=int, default=60,
                         help="first read after a write: pairs measured per table size (median)")
    options.add_argument("--serve-floor", action="store_true", help=argparse.SUPPRESS)
    options.add_argument("--journal", help=argparse.SUPPRESS)
    options.add_argument("--forward-to", type=int, help=argparse.SUPPRESS)
    options.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = options.parse_args()
    if args.serve_floor:
        return serve_floor(args.port, args.journal)
    if args.forward_to:
        return serve_forward(args.port, args.forward_to)
    connections = [int(x) for x in args.connections.split(",")]
    only = set(args.only.split(","))
    print(f"{machine_line('start')}  {platform.machine()}  nproc {len(os.sched_getaffinity(0))}  "
          f"python {platform.python_version()}  load workers {args.workers}")
    workdir = Path(tempfile.mkdtemp(prefix="peers-bench-"))
    pgdir = Path(tempfile.mkdtemp(prefix="peers-bench-pg-"))
    processes: list[subprocess.Popen] = []
    try:
        systems = start_tahiry(workdir, processes)
        pg_systems, skipped = start_postgres(pgdir, processes)
        systems += pg_systems
        if skipped:
            print(skipped)
        if pg_systems:
            version = subprocess.run([PG_BIN / "postgres", "--version"], capture_output=True, text=True)
            bouncer = subprocess.run(["pgbouncer", "--version"], capture_output=True, text=True) \
                if shutil.which("pgbouncer") else None
            bouncer_version = bouncer.stdout.splitlines()[0] if bouncer else "no pgbouncer"
            print(f"{version.stdout.strip()}, {bouncer_version}, psycopg {psycopg.__version__} "
                  f"({psycopg.pq.__impl__})")
        cell_number = 0
        for workload in [w for w in ("read", "insert", "hit") if w in only]:
            figures: dict[tuple[str, int], list[dict]] = {}
            measured = [s for s in systems if workload != "hit" or s.name in HIT_SYSTEMS]
            for round_index in range(args.rounds):
                shift = round_index % len(measured)
                for count in connections:
                    for system in measured[shift:] + measured[:shift]:
                        cell_number += 1
                        first = random.randrange(ROWS) if workload == "read" else 1_000_000 * cell_number
                        figures.setdefault((system.name, count), []).append(
                            run_cell(system, workload, count, args.seconds, args.workers, first))
            title = {"read": "read: uncached point read, equality on id, 1,000 rows",
                     "insert": "insert: durable single-row insert",
                     "hit": "hit: a proxy cache hit, the same read every time"}[workload]
            cells = {key: median_cell(values) for key, values in figures.items()}
            print_table(f"{title}; median of {args.rounds} round(s) of {args.seconds:g} s cells; "
                        "/X: rt/s divided by X's", cells, measured, connections)
            print_relay_ratio(cells, connections)
            if workload == "hit":
                print_hit_cpu(cells)
                continue
            print_pair_ratio(cells, connections, CHAIN, FLOOR_CHAIN)
            if workload == "read":
                for system in systems[3:5]:
                    counters = json.loads(request_once(system.port, ".status;").message)
                    print(f"{system.name} cache: {counters['hits']} hits, "
                          f"{counters['misses']} misses")
        if "first-read" in only:
            first_read_after_write(systems[1].port, args.pairs)
        print(machine_line("end"))
    finally:
        stop(processes)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(pgdir, ignore_errors=True)


if __name__ == "__main__":
    main()
