"""One workload through one Tahiry system, this tree against another, in alternated pairs.

A change to a relay moves an insert's latency by a few microseconds where a
shared machine moves it by a millisecond from one minute to the next, and
`bench/peers_bench.py` starts everything again (PostgreSQL included) for
each run. Here both trees' systems stay up side by side (each started by its
own tree's `peers_bench.start_tahiry`: a server with the bench's 1,000-row
table, a balancer, a proxy cache, the one relay) and one connection runs the
workload for `--seconds` on one, then the other, the order swapped every
pair; nothing else runs meanwhile. Printed: each side's median of the
cells' rt/s, p50 and CPU per request of each process (`psutil`), and the
median of the pairwise p50 differences with how many pairs were slower.

    ./tahiry py bench/relay_pairs.py --base ../base-worktree [--workload insert|read]
        [--system "proxy>balancer>server"] [--pairs 20] [--seconds 3]

`--base` is a checkout of the code before (`git worktree add ../base-worktree
COMMIT`); its own `bench/peers_bench.py` starts its systems.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def serve(tree: Path) -> None:
    """A side (a child process): `tree`'s systems up; one JSON line answered per command line.

    A command is `SYSTEM<TAB>WORKLOAD<TAB>SECONDS`; the answer gives rt/s, the
    p50 in ms and the CPU µs per request of each process of that system.
    """
    sys.path[:0] = [str(tree / "bench"), str(tree)]
    import peers_bench  # this tree's: its start_tahiry starts its own nodes
    import psutil

    processes: list = []
    with contextlib.redirect_stdout(sys.stderr):   # stdout carries the answers only
        systems = {s.name: s for s in peers_bench.start_tahiry(
            Path(tempfile.mkdtemp(prefix="pairs-")), processes)}
    key = 10_000_000 * (1 + int(time.time()) % 100)   # ids no earlier run inserted
    print(json.dumps({"ready": sorted(systems)}), flush=True)
    try:
        for line in sys.stdin:
            name, workload, seconds = line.rstrip("\n").split("\t")
            system = systems[name]
            watched = {role: psutil.Process(pid) for role, pid in system.processes}
            cpu_before = {role: sum(p.cpu_times()[:2]) for role, p in watched.items()}
            client = peers_bench.RawClient(system.port)
            latencies = []
            deadline = time.perf_counter() + float(seconds)
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                if workload == "insert":
                    client.insert(key)
                else:
                    client.read(key % peers_bench.ROWS)
                latencies.append(time.perf_counter() - began)
                key += 1
            client.close()
            count = len(latencies)
            cpu = {role: round((sum(p.cpu_times()[:2]) - cpu_before[role]) / count * 1e6)
                   for role, p in watched.items()}
            print(json.dumps({"rt/s": round(count / float(seconds)),
                              "p50": round(statistics.median(latencies) * 1000, 3), "cpu": cpu}),
                  flush=True)
    finally:
        peers_bench.stop(processes)


class Side:
    """A child process serving one tree's systems."""

    def __init__(self, label: str, tree: Path):
        self.label = label
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(tree)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = json.loads(self.process.stdout.readline())   # type: ignore[union-attr]
        self.systems = ready["ready"]
        self.cells: list[dict] = []

    def cell(self, system: str, workload: str, seconds: float) -> dict:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{system}\t{workload}\t{seconds}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--serve", help=argparse.SUPPRESS)
    options.add_argument("--base", type=Path, help="a checkout of the code before")
    options.add_argument("--workload", choices=("insert", "read"), default="insert")
    options.add_argument("--system", default="proxy>balancer>server")
    options.add_argument("--pairs", type=int, default=20)
    options.add_argument("--seconds", type=float, default=3.0)
    args = options.parse_args()
    if args.serve:
        serve(Path(args.serve))
        return
    if args.base is None:
        options.error("--base is required")
    sides = [Side("before", args.base.resolve()), Side("after", ROOT)]
    try:
        if args.system not in sides[0].systems or args.system not in sides[1].systems:
            options.error(f"--system must be one of {sides[1].systems}")
        for side in sides:   # a first cell each, not counted: connections and caches warm
            side.cell(args.system, args.workload, 1.0)
        print(f"{args.workload} through {args.system}, {args.pairs} pairs of {args.seconds:g} s cells")
        for pair in range(args.pairs):
            for side in (sides if pair % 2 == 0 else sides[::-1]):
                side.cells.append(side.cell(args.system, args.workload, args.seconds))
            before, after = sides[0].cells[-1], sides[1].cells[-1]
            print(f"  pair {pair + 1:2d}: p50 {before['p50']:.3f} -> {after['p50']:.3f} ms, "
                  f"rt/s {before['rt/s']} -> {after['rt/s']}, cpu {before['cpu']} -> {after['cpu']}",
                  flush=True)
    finally:
        for side in sides:
            side.close()
    for side in sides:
        roles = side.cells[0]["cpu"]
        cpu = ", ".join(f"{role} {statistics.median(c['cpu'][role] for c in side.cells):g}"
                        for role in roles)
        print(f"{side.label:6s}: rt/s {statistics.median(c['rt/s'] for c in side.cells):g}, "
              f"p50 {statistics.median(c['p50'] for c in side.cells):.3f} ms, "
              f"µs of CPU per request: {cpu}")
    differences = [b["p50"] - a["p50"] for a, b in zip(sides[0].cells, sides[1].cells, strict=True)]
    print(f"p50 after - before, median of the pairs: {statistics.median(differences) * 1000:+.0f} µs "
          f"({sum(d > 0 for d in differences)} of {len(differences)} pairs slower after)")


if __name__ == "__main__":
    main()
