"""Round trips through the node chain: server, balancer + server, proxy + balancer + server.

Starts its own processes on free loopback ports in a temporary directory and
prints, for each path (server, balancer>server, proxy>balancer>server):
round trips per second and p50/p99 latency on one connection and over 8
concurrent connections, for an uncached point read (`alaivo * ... rehefa id
= N` on a 1,000-row, 5-column table) and a single-row durable insert into
that table (the 8-connection figure shows group commit); and for a proxy
cache hit. The "added" column is the p50 difference to the previous hop.
The load average is printed before and after: the figures mean little on a
busy machine.

    .venv/bin/python bench/chain_bench.py [--seconds 2] [--inline] [--only read,insert,hit] [--with-peer]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchkit import WireConnection, free_port  # noqa: E402


def connect(port: int) -> WireConnection:
    """A blocking connection that tells an error from a success and keeps the message.

    It does not decode the relation (a real client would, but here that
    Python work would be measured as if it were the nodes' latency).
    """
    return WireConnection(port, decode_relations=False)


def start(module: str, name: str, workdir: Path, *args: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = open(workdir / f"{name}.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", f"nodes.{module}", "--id", name, "--port", str(port),
                                *args], cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if "PONG" in connect(port).request(".ping;").message:
                return process, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not start: {(workdir / f'{name}.log').read_text()}")


def measure(port: int, statement_of, seconds: float, connections: int) -> tuple[float, float, float]:
    """(round trips/s, p50 ms, p99 ms) with `connections` threads for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    clients = [connect(port) for _ in range(connections)]
    for client in clients:
        assert client.request("ampiasao bench;").ok
    stop = time.perf_counter() + seconds

    def loop(index: int) -> None:
        client, out, counter = clients[index], latencies[index], 0
        while time.perf_counter() < stop:
            statement = statement_of(index, counter)
            began = time.perf_counter()
            response = client.request(statement)
            out.append(time.perf_counter() - began)
            if not response.ok:
                raise RuntimeError(response.message)
            counter += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    merged = sorted(x for chunk in latencies for x in chunk)
    p99 = merged[min(len(merged) - 1, int(len(merged) * 0.99))]
    return len(merged) / elapsed, statistics.median(merged) * 1000, p99 * 1000


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--seconds", type=float, default=2.0)
    options.add_argument("--inline", action="store_true", help="servers run statements inline")
    options.add_argument("--only", default="read,insert,hit",
                         help="comma-separated workloads among read, insert, hit")
    options.add_argument("--with-peer", action="store_true",
                         help="give the server a peer data directory (a copy of its own, "
                              "not replicated): measures pull on write and the commit fence")
    args = options.parse_args()
    args.only = set(args.only.split(","))
    workdir = Path(tempfile.mkdtemp(prefix="chain-bench-"))
    processes = []
    try:
        server_args = ["--data", "data/m1"] + (["--inline"] if args.inline else [])
        if args.with_peer:
            server_args += ["--peer", f"m2={workdir / 'data' / 'm2'}"]
        server, server_port = start("server", "m1", workdir, *server_args)
        processes.append(server)
        setup = connect(server_port)
        for statement in ("manamboara tahiry bench;", "ampiasao bench;",
                          "manamboara tabilao t (id ISA(null,null), anarana LAHATSORATRA(null,null), "
                          "isa ISA(null,null), fanamarihana LAHATSORATRA(null,null), "
                          "sokajy ISA(null,null));"):
            assert setup.request(statement).ok
        values = ", ".join(f"({i}, 'n{i}', {i * 3}, 'fanamarihana {i}', {i % 7})" for i in range(1000))
        assert setup.request(f"manampia ao@ t sanda {values};").ok
        if args.with_peer:  # the peer holds every object, at older counters from now on
            shutil.copytree(workdir / "data" / "m1", workdir / "data" / "m2")
        paths = [("server", server_port)]
        balancer, balancer_port = start("balancer", "lb", workdir, "--backend", f"m1=127.0.0.1:{server_port}")
        processes.append(balancer)
        paths.append(("balancer>server", balancer_port))
        proxy, proxy_port = start("proxycache", "proxy", workdir, "--upstream", f"127.0.0.1:{balancer_port}",
                                  "--ttl-ms", "600000", "--max-entries", "10000")
        processes.append(proxy)
        paths.append(("proxy>" + paths[-1][0], proxy_port))

        next_id = iter(range(10_000, 10_000_000))
        lock = threading.Lock()

        def point_read(index: int, counter: int) -> str:
            # A different text each time (never a cache hit), a key among the 1,000 rows.
            key = (counter * 8 + index) % 1000
            return f"alaivo * ao@ t rehefa id = {key} ary {counter} = {counter};"

        def insert(index: int, counter: int) -> str:
            with lock:
                row = next(next_id)
            return f"manampia ao@ t sanda ({row}, 'x', 1, 'y', 2);"

        def cache_hit(index: int, counter: int) -> str:
            return "alaivo * ao@ t rehefa id = 7;"

        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{'workload':<14}{'path':<26}{'conns':>6}{'rt/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'added':>9}")
        workloads = [(name, of) for name, of in (("point read", point_read), ("insert", insert))
                     if name.split()[-1] in args.only]
        for workload, statement_of in workloads:
            for connections in (1, 8):
                previous = None
                for path, port in paths:
                    rate, p50, p99 = measure(port, statement_of, args.seconds, connections)
                    added = f"{p50 - previous:+.3f}" if previous is not None else ""
                    previous = p50
                    print(f"{workload:<14}{path:<26}{connections:>6}{rate:>10.0f}{p50:>9.3f}{p99:>9.3f}{added:>9}")
        for connections in ((1, 8) if "hit" in args.only else ()):
            rate, p50, p99 = measure(proxy_port, cache_hit, args.seconds, connections)
            print(f"{'cache hit':<14}{'proxy':<26}{connections:>6}{rate:>10.0f}{p50:>9.3f}{p99:>9.3f}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("server counters:", connect(server_port).request(".status;").message)
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
