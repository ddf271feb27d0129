"""Supervisor figures on this machine (prints them; not a test).

- up: from `python -m supervisor up` to the table saying every node RUNNING
  (target <= 3 s);
- restart: from kill -9 of a server to the supervisor noticing it, and to the
  server RUNNING again (target <= 1 s);
- replication lag p50/p99 over a few hundred writes through the balancer, then
  with ten sessions writing at once (a class at work),
  as the supervisor's status reports it (target p99 <= 100 ms).

    .venv/bin/python bench/cluster_bench.py [--class-rate N]

`--class-rate N`: each of the ten sessions writes at most N rows a second
(default: as fast as it can), so two versions of the code can be compared
at the same offered load: as fast as possible, a faster write path also
sends the replicator more copies a second.

Runs a throw-away cluster on free loopback ports in a temporary folder.
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

from supervisor.control import NotRunning, send_command  # noqa: E402

UP_RUNS = 3
KILLS = 5
WRITES = 300
CLASS_WRITERS = 10
CLASS_WRITES = 100


def topology_text(ports: dict[str, int]) -> str:
    return f"""\
supervisor:
  control_port: {ports['control']}
  health: {{interval_ms: 200, timeout_ms: 1000, fall: 3}}
  restart: {{backoff_initial_ms: 100, backoff_max_ms: 2000, max_restarts: 50, window_s: 60,
            reset_after_s: 1}}
nodes:
  m1: {{kind: server, host: 127.0.0.1, port: {ports['m1']}, data: data/m1}}
  m2: {{kind: server, host: 127.0.0.1, port: {ports['m2']}, data: data/m2}}
  lb: {{kind: balancer, host: 127.0.0.1, port: {ports['lb']}, backends: [m1, m2]}}
  proxy: {{kind: proxycache, host: 127.0.0.1, port: {ports['proxy']}, upstream: lb,
          ttl_ms: 3000, max_entries: 200}}
"""


def start_foreground(topology: Path) -> tuple[subprocess.Popen, float]:
    """Start `up` and return once it printed its table; (process, seconds taken)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "supervisor", "up", str(topology)],
                               cwd=topology.parent, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    for line in process.stdout:
        if line.startswith("the cluster"):
            if "runs" not in line:
                raise SystemExit("the cluster did not start cleanly: " + line)
            return process, time.perf_counter() - started
    raise SystemExit("the supervisor exited before the cluster ran")


def stop_foreground(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)


def status(port: int) -> dict[str, dict]:
    return {row["node"]: row for row in send_command(port, {"cmd": "status"})["nodes"]}


def measure_restart(port: int) -> tuple[float, float]:
    old = status(port)["m1"]
    if old["pid"] is None:
        raise SystemExit(f"m1 is not running: {old}")
    os.kill(old["pid"], signal.SIGKILL)
    killed = time.perf_counter()
    noticed = None
    while True:
        row = status(port)["m1"]
        now = time.perf_counter()
        if noticed is None and (row["state"] != "RUNNING" or row["pid"] != old["pid"]):
            noticed = now - killed
        if row["state"] == "RUNNING" and row["pid"] != old["pid"]:
            return noticed if noticed is not None else now - killed, now - killed
        time.sleep(0.002)


def session(port: int, statements, interval_s: float = 0.0) -> None:
    """Run `statements` one after the other, starting one at most every `interval_s`."""
    with WireConnection(port, timeout_s=10, decode_relations=False) as connection:
        next_start = time.monotonic()
        for statement in statements:
            if interval_s:
                time.sleep(max(0.0, next_start - time.monotonic()))
                next_start += interval_s
            response = connection.request(statement)
            if not response.ok:
                raise SystemExit(f"{statement!r} failed: {response.message}")


def print_lag(rows: dict[str, dict], label: str) -> None:
    for server in ("m1", "m2"):
        row = rows[server]
        if row["repl_lag_p99_ms"] is None:
            print(f"replication lag into {server}, {label}: no copy made into it")
            continue
        print(f"replication lag into {server}, {label}: p50 {row['repl_lag_p50_ms']:.1f} ms, "
              f"p99 {row['repl_lag_p99_ms']:.1f} ms (target p99 <= 100 ms)")


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--class-rate", type=float, default=0.0,
                         help="rows a second each of the ten writers sends at most")
    class_rate = options.parse_args().class_rate
    with tempfile.TemporaryDirectory(prefix="tahiry-bench-") as folder:
        ports = {name: free_port() for name in ("control", "m1", "m2", "lb", "proxy")}
        topology = Path(folder) / "topology.yaml"
        topology.write_text(topology_text(ports))

        up_times = []
        for _ in range(UP_RUNS):
            process, seconds = start_foreground(topology)
            up_times.append(seconds)
            stop_foreground(process)
        print(f"up -> all 4 nodes RUNNING: median {statistics.median(up_times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in up_times)}; target <= 3 s)")

        process, _ = start_foreground(topology)
        try:
            results = []
            for _ in range(KILLS):
                time.sleep(1.2)  # up longer than reset_after_s: the backoff starts over
                results.append(measure_restart(ports["control"]))
            noticed, running = zip(*results, strict=True)
            print(f"kill -9 of a server -> noticed: median {statistics.median(noticed) * 1000:.0f} ms;"
                  f" RUNNING again: median {statistics.median(running) * 1000:.0f} ms, "
                  f"max {max(running) * 1000:.0f} ms over {KILLS} kills (target <= 1 s)")

            session(ports["lb"], ["manamboara tahiry bench;", "ampiasao bench;",
                                  "manamboara tabilao t (id ISA(0,1000000));"]
                    + [f"manampia ao@ t sanda ({i});" for i in range(WRITES)])
            time.sleep(0.5)
            print_lag(status(ports["control"]), "one writer")

            # A class at work: ten sessions writing their own tables at once,
            # so the servers' commits and the replicator's copies contend.
            session(ports["lb"], ["ampiasao bench;"] + [
                f"manamboara tabilao s{n} (id ISA(0,1000000));" for n in range(CLASS_WRITERS)])
            interval = 1.0 / class_rate if class_rate else 0.0
            writers = [threading.Thread(target=session, args=(ports["lb"], ["ampiasao bench;"] + [
                f"manampia ao@ s{n} sanda ({i});" for i in range(CLASS_WRITES)], interval))
                for n in range(CLASS_WRITERS)]
            for writer in writers:
                writer.start()
            for writer in writers:
                writer.join()
            time.sleep(0.5)
            pace = f", {class_rate}/s each" if class_rate else ""
            print_lag(status(ports["control"]), f"{CLASS_WRITERS} writers at once{pace} (whole run)")
        except NotRunning as error:
            print(f"the supervisor stopped answering: {error}")
        finally:
            stop_foreground(process)


if __name__ == "__main__":
    main()
