"""Loading a dump of single-row inserts, side by side with sqlite3 (prints figures; not a test).

    ./tahiry py bench/load_bench.py                  # N = 20,000 then 100,000
    ./tahiry py bench/load_bench.py --rows 2000      # smaller runs (repeatable option)
    ./tahiry py bench/load_bench.py --max-seconds 60 # bound each path of each run

A dump of N statements `manampia ao@ t sanda (...);`, one row each, into a
5-column table, run through:

  (a) the embedded runner:  python -m engine --data D -f dump.tah
  (b) the client to one server:  python -m nodes.client --port P -f dump.tah
  (c) the client through proxy > balancer > servers, replication on: the
      repository's topology.yaml copied to a temporary folder with free ports,
      `python -m supervisor up -d`, the dump, then `down`

and, in the same run, Python's sqlite3 on a file with the same rows:

  sqlite3 autocommit, journal_mode=WAL, synchronous=FULL: one fsync per
      statement (the WAL's), the durability Tahiry gives each statement;
  sqlite3 autocommit, journal_mode=DELETE, synchronous=FULL: the default
      journal, several fsyncs per statement;
  sqlite3 in one transaction (WAL, FULL): one fsync in all.

Each path prints seconds and statements/s; the ratio line compares (c) with
sqlite3 autocommit (WAL, FULL): below 1.0 means (c) was faster. A path that
passes --max-seconds is stopped; its line then says how many statements it
did and at what rate, so a slow path still gives an honest figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchkit import free_port, request_once, wait_listening  # noqa: E402

from supervisor.control import NotRunning, send_command  # noqa: E402

DEFAULT_ROWS = (20_000, 100_000)
DEFAULT_MAX_SECONDS = 300.0
HEAD = ("manamboara tahiry enta;\nampiasao enta;\n"
        "manamboara tabilao mpianatra (laharana ISA(0,null), anarana LAHATSORATRA(1,40), "
        "naoty ISA(0,20), teraka DATY, kilasy LAHATSORATRA(null,null));\n")
SQLITE_TABLE = ("CREATE TABLE mpianatra (laharana INTEGER, anarana TEXT, naoty INTEGER, "
                "teraka TEXT, kilasy TEXT)")


def row(n: int) -> tuple:
    return (n, f"Mpianatra {n}", n % 21, f"20{n % 10:02d}-0{1 + n % 9}-{10 + n % 19}",
            f"L{n % 7}")


def dump_text(rows: int) -> str:
    lines = [HEAD]
    for n in range(rows):
        number, name, mark, born, group = row(n)
        lines.append(f"manampia ao@ mpianatra sanda ({number}, '{name}', {mark}, '{born}', "
                     f"'{group}');\n")
    return "".join(lines)


@dataclass
class Figure:
    label: str
    done: int          # insert statements completed
    seconds: float
    stopped: bool = False
    errors: int = 0
    cpu: float | None = None   # CPU seconds of the command itself (client or engine runner)
    notes: list[str] = field(default_factory=list)   # printed under its line

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def line(self, rows: int) -> str:
        what = f"{self.done} of {rows} stopped at --max-seconds" if self.stopped else f"{self.done}"
        errors = f", {self.errors} errors" if self.errors else ""
        cpu = f", its CPU {self.cpu:.1f} s" if self.cpu is not None else ""
        return (f"  {self.label:<44} {self.seconds:9.2f} s  {self.rate:9.0f} statements/s"
                f"  ({what}{errors}{cpu})" + "".join(f"\n      {note}" for note in self.notes))


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


# --------------------------------------------------------------------------
# running a dump through a process, bounded


def run_dump(label: str, command: list[str], rows: int, max_seconds: float, cwd: Path) -> Figure:
    """Run `command` (prints one JSON line per statement); count the inserts' answers.

    The first three statements (database, use, table) are not timed as inserts
    but are part of the run; the clock starts when the command starts.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env(), start_new_session=True)
    answered = errors = 0
    stopped = False
    os.set_blocking(process.stdout.fileno(), False)
    buffer = b""
    while True:
        if time.perf_counter() - started > max_seconds:
            stopped = True
            os.killpg(process.pid, signal.SIGKILL)
            break
        try:
            chunk = process.stdout.read(1 << 16)
        except BlockingIOError:
            chunk = None
        if chunk:
            buffer += chunk
            lines = buffer.split(b"\n")
            buffer = lines.pop()
            for line in lines:
                answered += 1
                if not json.loads(line)["ok"]:
                    errors += 1
            continue
        if chunk == b"" or process.poll() is not None:
            rest = process.stdout.read() or b""
            for line in (buffer + rest).split(b"\n"):
                if line.strip():
                    answered += 1
                    errors += not json.loads(line)["ok"]
            break
        time.sleep(0.01)
    process.wait()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if not stopped and process.returncode not in (0, 1):
        print(f"  {label}: exited {process.returncode}: {process.stderr.read().decode()[-500:]}")
    return Figure(label, max(0, answered - 3), seconds, stopped, errors, cpu)


def embedded(dump: Path, rows: int, max_seconds: float, work: Path) -> Figure:
    return run_dump("(a) python -m engine -f", [
        sys.executable, "-m", "engine", "--data", str(work / "embedded"), "--format", "json",
        "-f", str(dump)], rows, max_seconds, work)


def one_server(dump: Path, rows: int, max_seconds: float, work: Path) -> Figure:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "nodes.server", "--id", "m1", "--host", "127.0.0.1",
         "--port", str(port), "--data", str(work / "server")],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(),
        start_new_session=True)
    try:
        wait_listening(port, deadline_s=20.0)
        figure = run_dump("(b) client -f -> server", client_command(port, dump), rows,
                          max_seconds, work)
        figure.notes.append(batches({"m1": port}))
        return figure
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def cluster(dump: Path, rows: int, max_seconds: float, work: Path) -> Figure:
    folder = work / "cluster"
    folder.mkdir()
    document = yaml.safe_load((ROOT / "topology.yaml").read_text())
    document["supervisor"]["control_port"] = free_port()
    for spec in document["nodes"].values():
        spec["port"] = free_port()
    topology = folder / "topology.yaml"
    topology.write_text(yaml.safe_dump(document, sort_keys=False))
    proxy = next(spec["port"] for spec in document["nodes"].values()
                 if spec["kind"] == "proxycache")
    servers = sum(spec["kind"] == "server" for spec in document["nodes"].values())
    up = supervisor(folder, "up", "-d", str(topology))
    if up.returncode != 0:
        raise SystemExit(f"supervisor up failed: {up.stdout}{up.stderr}")
    try:
        wait_whole(document["supervisor"]["control_port"],
                   [name for name, spec in document["nodes"].items() if spec["kind"] == "server"])
        figure = run_dump(f"(c) client -f -> proxy > lb > {servers} servers, repl.",
                          client_command(proxy, dump), rows, max_seconds, folder)
        figure.notes.append(cpu_used(document["supervisor"]["control_port"]))
        figure.notes.append(batches({name: spec["port"] for name, spec in
                                     document["nodes"].items() if spec["kind"] == "server"}))
    finally:
        supervisor(folder, "down", str(topology))
    return figure


def cpu_used(control_port: int) -> str:
    """CPU seconds each node of the cluster (and the supervisor: replication) used so far."""
    answer = send_command(control_port, {"cmd": "status"}, timeout_s=5)
    pids = [(row["node"], row.get("pid")) for row in answer["nodes"]]
    pids.append(("supervisor", (answer.get("supervisor") or {}).get("pid")))
    parts = []
    for name, pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except (psutil.Error, TypeError, ValueError):
            continue
        parts.append(f"{name} {times.user + times.system:.1f}")
    return f"CPU seconds used: {', '.join(parts)}"


def batches(servers: dict[str, int]) -> str:
    """Statements per group commit on each server (`.status;`)."""
    parts = []
    for name, port in servers.items():
        try:
            counters = server_status(port)
        except (OSError, ValueError, KeyError):
            continue
        if counters.get("batches"):
            parts.append(f"{name} {counters['batched_statements']} statements in "
                         f"{counters['batches']} group commits")
    return "; ".join(parts)


def server_status(port: int) -> dict:
    return json.loads(request_once(port, ".status;").message)


def client_command(port: int, dump: Path) -> list[str]:
    return [sys.executable, "-m", "nodes.client", "--port", str(port), "--format", "json",
            "-f", str(dump)]


def supervisor(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "supervisor", *args], cwd=folder,
                          capture_output=True, text=True, timeout=120, env=env())


def wait_whole(control_port: int, servers: list[str], deadline_s: float = 60.0) -> None:
    """Until every node is RUNNING and every server writable (the supervisor's status)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            rows = {row["node"]: row for row in
                    send_command(control_port, {"cmd": "status"}, timeout_s=5)["nodes"]}
        except (NotRunning, OSError, KeyError):
            time.sleep(0.1)
            continue
        if all(row["state"] == "RUNNING" for row in rows.values()) and all(
                rows.get(server, {}).get("writable") for server in servers):
            return
        time.sleep(0.1)
    raise SystemExit("the cluster did not start")


# --------------------------------------------------------------------------
# sqlite3


def sqlite_run(label: str, path: Path, rows: int, max_seconds: float, journal: str,
               one_transaction: bool) -> Figure:
    connection = sqlite3.connect(path, isolation_level=None)   # autocommit
    connection.execute(f"PRAGMA journal_mode={journal}")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(SQLITE_TABLE)
    insert = "INSERT INTO mpianatra VALUES (?, ?, ?, ?, ?)"
    started = time.perf_counter()
    done, stopped = 0, False
    if one_transaction:
        connection.execute("BEGIN")
    for n in range(rows):
        if n % 256 == 0 and time.perf_counter() - started > max_seconds:
            stopped = True
            break
        connection.execute(insert, row(n))
        done += 1
    if one_transaction:
        connection.execute("COMMIT")
    seconds = time.perf_counter() - started
    connection.close()
    return Figure(label, done, seconds, stopped)


# --------------------------------------------------------------------------


def bench(rows: int, max_seconds: float, paths: set[str], base: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix="tahiry-load-", dir=base) as folder:
        work = Path(folder)
        dump = work / "dump.tah"
        dump.write_text(dump_text(rows))
        print(f"\nN = {rows} single-row inserts ({dump.stat().st_size / 1e6:.1f} MB dump), "
              f"5 columns, --max-seconds {max_seconds:g} per path, in {work}")
        figures: dict[str, Figure] = {}
        figures["wal"] = sqlite_run("sqlite3 autocommit (WAL, synchronous=FULL)",
                                    work / "wal.db", rows, max_seconds, "WAL", False)
        figures["delete"] = sqlite_run("sqlite3 autocommit (DELETE, synchronous=FULL)",
                                       work / "delete.db", rows, max_seconds, "DELETE", False)
        figures["one"] = sqlite_run("sqlite3 one transaction (WAL, synchronous=FULL)",
                                    work / "one.db", rows, max_seconds, "WAL", True)
        for figure in figures.values():
            print(figure.line(rows), flush=True)
        runs = {"a": embedded, "b": one_server, "c": cluster}
        for key in ("a", "b", "c"):
            if key in paths:
                figures[key] = runs[key](dump, rows, max_seconds, work)
                print(figures[key].line(rows), flush=True)
        if "c" in figures:
            ratio = figures["wal"].rate / figures["c"].rate if figures["c"].rate else float("inf")
            print(f"  ratio (c) / sqlite3 autocommit (WAL, FULL), time per statement: {ratio:.2f}"
                  f"  (target <= 1.0)")
            ratio = figures["delete"].rate / figures["c"].rate if figures["c"].rate else float("inf")
            print(f"  ratio (c) / sqlite3 autocommit (DELETE, FULL), time per statement: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append",
                        help=f"statements in the dump (repeatable; default {DEFAULT_ROWS})")
    parser.add_argument("--max-seconds", type=float, default=DEFAULT_MAX_SECONDS,
                        help="stop a path after this long and report its rate so far")
    parser.add_argument("--paths", default="abc", help="which of (a) (b) (c) to run (default abc)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the temporary folder goes (default: the system's)")
    arguments = parser.parse_args()
    for rows in arguments.rows or DEFAULT_ROWS:
        bench(rows, arguments.max_seconds, set(arguments.paths), arguments.dir)


if __name__ == "__main__":
    main()
