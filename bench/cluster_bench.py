"""Supervisor figures on this machine (prints them; not a test).

- up: from `python -m supervisor up` to the table saying every node RUNNING
  (target <= 3 s);
- restart: from kill -9 of a server to the supervisor noticing it, and to the
  server RUNNING again (target <= 1 s);
- replication lag p50/p99 over a few hundred writes through the balancer, then
  with ten sessions writing at once (a class at work),
  as the supervisor's status reports it (target p99 <= 100 ms).

    .venv/bin/python bench/cluster_bench.py [--class-rate N] [--machines]

`--machines` (root: Linux network namespaces, tests/integration/netkit.py)
measures instead the replication lag between servers on different
simulated machines (m1 on h1, m2 on h2, the balancer on h3, one supervisor
per machine): p50/p99 over MACHINE_SECONDS of writes through the balancer,
without and with TLS, with 0 and 5 ms added one-way delay on every link
(netkit's delayer: every packet a machine sends waits that long).

`--class-rate N`: each of the ten sessions writes at most N rows a second
(default: as fast as it can), so two versions of the code can be compared
at the same offered load: as fast as possible, a faster write path also
sends the replicator more copies a second.

Runs a throw-away cluster on free loopback ports in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
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


def start_foreground(topology: Path, root: Path = ROOT) -> tuple[subprocess.Popen, float]:
    """Start `up` (the code under `root`) and return once it printed its table; (process, seconds)."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "supervisor", "up", str(topology)],
                               cwd=topology.parent, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONPATH": str(root)})
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


MACHINE_SECONDS = 8.0
MACHINE_WRITERS = 2


def machines_topology(h1: str, h2: str, h3: str, tls: bool) -> str:
    return f"""\
supervisor:
  control_port: 4099
  health: {{interval_ms: 200, timeout_ms: 1000, fall: 3}}
secret: {MACHINE_SECRET}
http: {{enabled: false}}
{"tls: {cert: tls/MACHINE.crt, key: tls/MACHINE.key, ca: tls/ca.crt}" if tls else ""}
nodes:
  m1: {{kind: server, host: "{h1}", port: 4101, data: data/m1}}
  m2: {{kind: server, host: "{h2}", port: 4102, data: data/m2}}
  lb: {{kind: balancer, host: "{h3}", port: 4103, backends: [m1, m2]}}
"""


MACHINE_SECRET = "a-class-secret-of-some-length"


def machines_lag(tls: bool, delay_ms: float) -> str:
    """One line: the lag between servers on two simulated machines."""
    from tests.integration.netkit import Machines
    from tests.integration.test_machines import Supervisors

    names = ("h1", "h2", "h3")
    with Machines(list(names)) as machines, \
            tempfile.TemporaryDirectory(prefix="tahiry-bench-") as folder:
        h1, h2, h3 = (machines.address(name) for name in names)
        files: dict[str, dict[str, bytes]] = {}
        if tls:
            from tests.tlskit import Certificates
            certificates = Certificates(Path(folder) / "tls")
            for name in names:
                certificates.machine(name, [machines.address(name)])
            files = {name: {f"tls/{file}": (Path(folder) / "tls" / file).read_bytes()
                            for file in ("ca.crt", f"{name}.crt", f"{name}.key")}
                     for name in names}
        supervisors = Supervisors(machines, Path(folder) / "machines",
                                  machines_topology(h1, h2, h3, tls), files, names=names)
        try:
            supervisors.up()
            if delay_ms:
                for name in names:
                    machines.delay(name, delay_ms)
            client = [sys.executable, "-m", "nodes.client", "--host", h3, "--port", "4103",
                      *(["--tls-ca", str(supervisors.folders["h3"] / "tls" / "ca.crt")]
                        if tls else [])]
            deadline = time.monotonic() + 20
            while True:
                made = machines.run("h3", [*client, "-e", "manamboara tahiry sekoly;"
                                           "ampiasao sekoly; manamboara tabilao t "
                                           "(id ISA(null,null));"],
                                    env=supervisors.environment, cwd=folder)
                if made.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    return f"the schema could not be made: {made.stdout}{made.stderr}"
                time.sleep(0.2)
            loads = []
            for writer in range(MACHINE_WRITERS):
                out, stop = Path(folder) / f"load{writer}.json", Path(folder) / f"stop{writer}"
                loads.append((out, stop, machines.popen("h3", [
                    sys.executable, "-m", "tests.integration.netload", h3, "4103", str(out),
                    str(stop), "--first-id", str(writer * 1_000_000 + 1), "--no-reads",
                    *(["--tls-ca", str(supervisors.folders["h3"] / "tls" / "ca.crt")]
                      if tls else [])], env=supervisors.environment, cwd=str(ROOT))))
            time.sleep(MACHINE_SECONDS)
            for _, stop, _ in loads:
                stop.touch()
            acked = 0
            for out, _, process in loads:
                process.wait(timeout=30)
                acked += len(json.loads(out.read_text())["acked"])
            time.sleep(1.0)   # the last copies land
            lags = []
            for machine, remote in (("h1", "m2"), ("h2", "m1")):
                row = supervisors.rows(machine)[remote]
                if row.get("repl_lag_p99_ms") is not None:
                    lags.append(f"{machine}->{remote} p50 {row['repl_lag_p50_ms']:.1f} ms "
                                f"p99 {row['repl_lag_p99_ms']:.1f} ms")
            return (f"{acked} writes in {MACHINE_SECONDS:g} s ({acked / MACHINE_SECONDS:.0f}/s); "
                    f"lag {'; '.join(lags) or 'no copy measured'}")
        finally:
            supervisors.down()


def machines_main() -> None:
    for tls in (False, True):
        for delay_ms in (0.0, 5.0):
            line = machines_lag(tls, delay_ms)
            print(f"across machines, {'TLS' if tls else 'plain TCP'}, "
                  f"{delay_ms:g} ms one-way delay: {line}", flush=True)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--class-rate", type=float, default=0.0,
                         help="rows a second each of the ten writers sends at most")
    options.add_argument("--machines", action="store_true",
                         help="the lag between servers on simulated machines (needs root)")
    parsed = options.parse_args()
    if parsed.machines:
        machines_main()
        return
    class_rate = parsed.class_rate
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
