"""What certifying a write against a peer costs: no peer, a folder peer, a network peer.

Starts two servers m1 and m2 on free loopback ports in a temporary directory,
in each configuration:

- `alone`: m1 without peers (no certification at all: the floor);
- `folder`: m1 and m2 peers by data directory (`--peer ID=DIR`: flock and
  header reads of the other's folder);
- `network`: m1 and m2 peers by address only (`--peer-address`: `.peer`
  requests, a lease per commit; nodes/server/remote_peer.py).

and prints, for a durable single-row insert into a 1,000-row table on m1:
p50/p99 latency and inserts per second on one connection, inserts per
second over 8 connections (group commit: one certification per batch), and
"ping-pong": inserts alternating between m1 and m2 on one connection each
(every write first pulls the version the other server just wrote). No
replicator runs: only the servers' own certification and pull on write.
The load average is printed before and after: the figures mean little on a
busy machine.

    .venv/bin/python bench/network_peer_bench.py [--seconds 2] [--only alone,folder,network]
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

from benchkit import WireConnection, free_port, wait_listening  # noqa: E402

CONFIGURATIONS = ("alone", "folder", "network")


def start(name: str, workdir: Path, port: int, *args: str) -> subprocess.Popen:
    log = open(workdir / f"{name}.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "nodes.server", "--id", name, "--port", str(port), *args],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    wait_listening(port)
    return process


def servers(configuration: str, workdir: Path) -> tuple[list[subprocess.Popen], dict[str, int]]:
    ports = {"m1": free_port(), "m2": free_port()}
    data = {name: workdir / "data" / name for name in ports}
    processes = []
    for name, other in (("m1", "m2"), ("m2", "m1")):
        peer: list[str] = []
        if configuration == "folder":
            peer = ["--peer", f"{other}={data[other]}"]
        elif configuration == "network":
            peer = ["--peer-address", f"{other}=127.0.0.1:{ports[other]}"]
        if configuration == "alone" and name == "m2":
            continue
        processes.append(start(name, workdir, ports[name], "--data", str(data[name]), *peer))
    return processes, ports


def ok(connection: WireConnection, text: str) -> None:
    answer = connection.request(text)
    if not answer.ok:
        raise RuntimeError(f"{text!r}: {answer.message}")


def prepare(ports: dict[str, int], alone: bool) -> None:
    for name in (["m1"] if alone else ["m1", "m2"]):
        with WireConnection(ports[name]) as connection:
            ok(connection, "manamboara tahiry b;")
    with WireConnection(ports["m1"]) as connection:
        ok(connection, "ampiasao b;")
        ok(connection, "manamboara tabilao t (id ISA(null,null), a ISA(null,null), "
                       "b LAHATSORATRA(null,null), c ISA(null,null), d LAHATSORATRA(null,null));")
        values = ", ".join(f'({i}, {i}, "x{i}", {i * 2}, "y")' for i in range(1000))
        ok(connection, f"manampia ao@ t sanda {values};")


def one_connection(port: int, seconds: float, first_key: int) -> list[float]:
    latencies = []
    with WireConnection(port) as connection:
        ok(connection, "ampiasao b;")
        key = first_key
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            ok(connection, f'manampia ao@ t sanda ({key}, 1, "z", 2, "w");')
            latencies.append(time.perf_counter() - started)
            key += 1
    return latencies


def many_connections(port: int, seconds: float, connections: int = 8) -> float:
    counts = [0] * connections

    def run(index: int) -> None:
        counts[index] = len(one_connection(port, seconds, 10_000_000 * (index + 1)))

    threads = [threading.Thread(target=run, args=(index,)) for index in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def ping_pong(ports: dict[str, int], seconds: float) -> list[float]:
    latencies = []
    with WireConnection(ports["m1"]) as one, WireConnection(ports["m2"]) as two:
        for connection in (one, two):
            ok(connection, "ampiasao b;")
        key = 90_000_000
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            connection = one if key % 2 else two
            started = time.perf_counter()
            ok(connection, f'manampia ao@ t sanda ({key}, 1, "z", 2, "w");')
            latencies.append(time.perf_counter() - started)
            key += 1
    return latencies


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--only", default=",".join(CONFIGURATIONS))
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'peer':<9} {'p50 ms':>8} {'p99 ms':>8} {'ins/s 1c':>9} {'ins/s 8c':>9} "
          f"{'pingpong p50':>13} {'p99 ms':>8}")
    for configuration in chosen:
        workdir = Path(tempfile.mkdtemp(prefix=f"tahiry-peer-bench-{configuration}-"))
        processes: list[subprocess.Popen] = []
        try:
            processes, ports = servers(configuration, workdir)
            prepare(ports, configuration == "alone")
            one_connection(ports["m1"], 0.3, 1_000_000)   # warm up
            single = one_connection(ports["m1"], args.seconds, 2_000_000)
            rate = many_connections(ports["m1"], args.seconds)
            pong = ping_pong(ports, args.seconds) if configuration != "alone" else []
            print(f"{configuration:<9} {statistics.median(single) * 1e3:8.2f} "
                  f"{quantile(single, 0.99) * 1e3:8.2f} {len(single) / args.seconds:9.0f} "
                  f"{rate:9.0f} "
                  + (f"{statistics.median(pong) * 1e3:13.2f} {quantile(pong, 0.99) * 1e3:8.2f}"
                     if pong else f"{'-':>13} {'-':>8}"), flush=True)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
