"""What accounts cost the proxy cache: a hit validated with `.rights;`, beside a plain hit.

Starts, in a temporary directory, two chains of real processes (server,
balancer, proxy cache): one without accounts, one whose server runs with
`--accounts` (a student account reading its own database). Prints, on 1
and 8 connections, round trips per second and p50/p99 latency of:
- a cache hit with accounts off (the plain hit: bytes from memory);
- a cache hit for a logged-in account (one `.rights;` round trip through
  the balancer to every server before the cached bytes are sent);
- an uncached point read through the same chain (what a hit saves);
and the ratio of each to the plain hit, all measured in this run. Also a
login's time (one scrypt on the server). The load average is printed
before and after: the figures mean little on a busy machine.

    .venv/bin/python bench/accounts_bench.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
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

from nodes.protocol import login_request  # noqa: E402

ADMIN, ADMIN_PW = "mpampianatra", "Bench-admin-pass1"
STUDENT, STUDENT_PW = "ana", "Bench-student-pass2"
HIT = "alaivo * ao@ t rehefa id = 7;"


def start(module: str, name: str, workdir: Path, *args: str,
          env: dict[str, str] | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    log = open(workdir / f"{name}.log", "ab")
    process = subprocess.Popen([sys.executable, "-m", f"nodes.{module}", "--id", name,
                                "--port", str(port), *args], cwd=workdir, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if "PONG" in WireConnection(port).request(".ping;").message:
                return process, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not start: {(workdir / f'{name}.log').read_text()}")


def session(port: int, login: tuple[str, str] | None) -> WireConnection:
    connection = WireConnection(port, decode_relations=False)
    if login is not None:
        response = connection.request(login_request(*login).decode())
        assert response.ok, response.message
    assert connection.request("ampiasao bench;").ok
    return connection


def measure(port: int, login, statement_of, seconds: float, connections: int):
    """(round trips/s, p50 ms, p99 ms) with `connections` threads for `seconds`."""
    clients = [session(port, login) for _ in range(connections)]
    latencies: list[list[float]] = [[] for _ in range(connections)]
    stop = time.perf_counter() + seconds

    def loop(index: int) -> None:
        client, out, counter = clients[index], latencies[index], 0
        while time.perf_counter() < stop:
            began = time.perf_counter()
            response = client.request(statement_of(index, counter))
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
    for client in clients:
        client.close()
    return len(merged) / elapsed, statistics.median(merged) * 1000, p99 * 1000


def chain(workdir: Path, prefix: str, accounts: bool, processes: list) -> int:
    """server > balancer > proxy with database bench (table t, 1,000 rows); the proxy's port."""
    server_args = ["--data", f"data/{prefix}m1"] + (["--accounts"] if accounts else [])
    env = {"TAHIRY_ADMIN_USER": ADMIN, "TAHIRY_ADMIN_PASSWORD": ADMIN_PW} if accounts else None
    server, server_port = start("server", f"{prefix}m1", workdir, *server_args, env=env)
    processes.append(server)
    setup = WireConnection(server_port)
    if accounts:
        assert setup.request(login_request(ADMIN, ADMIN_PW).decode()).ok
        assert setup.request(f'manamboara mpampiasa {STUDENT} tenimiafina "{STUDENT_PW}";').ok
        setup = WireConnection(server_port)
        assert setup.request(login_request(STUDENT, STUDENT_PW).decode()).ok
    for statement in ("manamboara tahiry bench;", "ampiasao bench;",
                      "manamboara tabilao t (id ISA(null,null), anarana LAHATSORATRA(null,null));"):
        assert setup.request(statement).ok, statement
    values = ", ".join(f"({i}, 'n{i}')" for i in range(1000))
    assert setup.request(f"manampia ao@ t sanda {values};").ok
    balancer, balancer_port = start("balancer", f"{prefix}lb", workdir,
                                    "--backend", f"m1=127.0.0.1:{server_port}")
    processes.append(balancer)
    proxy, proxy_port = start("proxycache", f"{prefix}px", workdir,
                              "--upstream", f"127.0.0.1:{balancer_port}",
                              "--ttl-ms", "600000", "--max-entries", "10000", "--settle-ms", "0")
    processes.append(proxy)
    return proxy_port


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--seconds", type=float, default=2.0)
    args = options.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="accounts-bench-"))
    processes: list[subprocess.Popen] = []
    try:
        plain_port = chain(workdir, "plain-", False, processes)
        accounts_port = chain(workdir, "acct-", True, processes)
        student = (STUDENT, STUDENT_PW)

        def hit(index: int, counter: int) -> str:
            return HIT

        def point_read(index: int, counter: int) -> str:
            key = (counter * 8 + index) % 1000
            return f"alaivo * ao@ t rehefa id = {key} ary {counter} = {counter};"

        began = time.perf_counter()
        session(accounts_port, student).close()
        print(f"a login through proxy > balancer > server (one scrypt): "
              f"{(time.perf_counter() - began) * 1000:.1f} ms")
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{'workload':<34}{'conns':>6}{'rt/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'x plain':>9}")
        for connections in (1, 8):
            rows = [("cache hit, accounts off", plain_port, None, hit),
                    ("cache hit, account (validated)", accounts_port, student, hit),
                    ("uncached read, account", accounts_port, student, point_read)]
            reference = None
            for name, port, login, statement_of in rows:
                rate, p50, p99 = measure(port, login, statement_of, args.seconds, connections)
                reference = reference or p50
                print(f"{name:<34}{connections:>6}{rate:>10.0f}{p50:>9.3f}{p99:>9.3f}"
                      f"{p50 / reference:>9.1f}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("proxy counters (accounts):",
              WireConnection(accounts_port).request(".status;").message)
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
