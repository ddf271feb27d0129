"""Replication lag of this code beside a reference commit's, measured in one run.

Two throw-away clusters (m1, m2, balancer, proxy; the topology of
bench/cluster_bench.py), one running this checkout's code and one a
reference commit's (checked out in a temporary git worktree), take turns,
round after round (A B, B A, A B, ...), each started for its round only and
stopped after it (so the other adds no load):
ten sessions through the balancer, each inserting `--writes` rows into a
table of its own at `--class-rate` rows a second. After each round it reads
the lag figures the cluster's supervisor reports (event on the source to
the copy in place, fsync'd, over its last 1000 copies per server; a
supervisor started anew counts from zero). Taking turns puts the machine's noise on both
alike; the medians over the rounds and their ratio are printed.

    .venv/bin/python bench/lag_compare.py [--reference 5bb0bf2] [--rounds 6]
        [--class-rate 40] [--writes 220]

The default reference is main as it stood when the replication issue
(certified commits) was opened: its figures are the ones not to regress.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import free_port  # noqa: E402
from cluster_bench import (  # noqa: E402
    CLASS_WRITERS,
    session,
    start_foreground,
    status,
    stop_foreground,
    topology_text,
)

DEFAULT_REFERENCE = "5bb0bf2"


class Cluster:
    """One cluster of the comparison: its code, its folder, its ports, its tables so far."""

    def __init__(self, label: str, root: Path, folder: Path):
        self.label = label
        self.root = root
        self.ports = {name: free_port() for name in ("control", "m1", "m2", "lb", "proxy")}
        folder.mkdir()
        self.topology = folder / "topology.yaml"
        self.topology.write_text(topology_text(self.ports))
        self.process: subprocess.Popen | None = None
        self.rounds = 0
        self.p50: list[float] = []
        self.p99: list[float] = []

    def start(self) -> None:
        self.process, _ = start_foreground(self.topology, self.root)
        if not self.rounds:
            session(self.ports["lb"], ["manamboara tahiry bench;"])

    def stop(self) -> None:
        if self.process is not None:
            stop_foreground(self.process)
            self.process = None

    def class_round(self, rate: float, writes: int) -> None:
        """Ten writers at once, each into a new table of its own; then the lag figures."""
        self.rounds += 1
        tables = [f"r{self.rounds}s{n}" for n in range(CLASS_WRITERS)]
        session(self.ports["lb"], ["ampiasao bench;"]
                + [f"manamboara tabilao {t} (id ISA(0,1000000));" for t in tables])
        writers = [threading.Thread(target=session, args=(self.ports["lb"], ["ampiasao bench;"] + [
            f"manampia ao@ {t} sanda ({i});" for i in range(writes)], 1.0 / rate))
            for t in tables]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        time.sleep(0.5)   # the last copies land
        rows = status(self.ports["control"])
        p50 = [rows[s]["repl_lag_p50_ms"] for s in ("m1", "m2")]
        p99 = [rows[s]["repl_lag_p99_ms"] for s in ("m1", "m2")]
        if None in p50 or None in p99:
            raise SystemExit(f"{self.label}: no copy made into a server: {rows}")
        self.p50.append(statistics.mean(p50))
        self.p99.append(statistics.mean(p99))
        print(f"  round {self.rounds} {self.label:>9}: p50 {self.p50[-1]:.1f} ms, "
              f"p99 {self.p99[-1]:.1f} ms (mean of m1 and m2)", flush=True)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--reference", default=DEFAULT_REFERENCE, help="the commit to compare with")
    options.add_argument("--rounds", type=int, default=6)
    options.add_argument("--class-rate", type=float, default=40.0,
                         help="rows a second each of the ten writers sends")
    options.add_argument("--writes", type=int, default=220, help="rows each writer inserts a round")
    parsed = options.parse_args()
    with tempfile.TemporaryDirectory(prefix="tahiry-lag-") as temp:
        folder = Path(temp)
        reference_root = folder / "reference"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet",
                        str(reference_root), parsed.reference], check=True)
        clusters = [Cluster("this code", ROOT, folder / "new"),
                    Cluster(parsed.reference, reference_root, folder / "old")]
        try:
            print(f"{parsed.rounds} rounds of {CLASS_WRITERS} writers x {parsed.writes} rows at "
                  f"{parsed.class_rate:g}/s each, taking turns:")
            for round_number in range(parsed.rounds):
                for cluster in (clusters if round_number % 2 == 0 else clusters[::-1]):
                    # Only the cluster measured runs: the other's probes and
                    # replicator would be load on this one's figures.
                    cluster.start()
                    cluster.class_round(parsed.class_rate, parsed.writes)
                    cluster.stop()
        finally:
            for cluster in clusters:
                cluster.stop()
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(reference_root)], check=False)
        new, old = clusters
        for figure in ("p50", "p99"):
            mine = statistics.median(getattr(new, figure))
            theirs = statistics.median(getattr(old, figure))
            print(f"replication lag {figure}, median over {parsed.rounds} rounds: this code "
                  f"{mine:.1f} ms, {old.label} {theirs:.1f} ms: ratio {mine / theirs:.2f}")


if __name__ == "__main__":
    main()
