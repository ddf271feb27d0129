"""Fault report: crash points, cluster faults and hostile input, as one table of figures.

    .venv/bin/python bench/fault_report.py [--points-per-operation 4] [--no-crash] [--no-cluster]
                                           [--no-replication] [--no-fuzz] [--no-hardening]
                                           [--answer-rows 4000000] [--query-rows 2000]

Runs, in temporary folders:
1. the crash-point sweep (tests/integration/crash_sweep.py): a server
   SIGKILLed at every point of its write path, the state checked after each:
   a table's journal append (a torn tail at mid-write), checkpoints, whole
   documents, the recovery at the next start (torn tails cut, temp files
   removed) and the format 1 -> 2 upgrade of the directory it starts from;
   plus I/O errors injected at and after the rename (a statement whose file is
   in place must be acknowledged or "outcome unknown", never "failed");
2. the cluster fault scenario (tests/integration/cluster_scenario.py): the
   default topology under the supervisor, four clients through the proxy,
   kill -9 of each server, SIGSTOP of one for 5 s, kill -9 of the balancer
   and of the proxy, restart of everything;
3. the replication scenarios that once lost acknowledged writes
   (tests/integration/replication_scenarios.py): writers straight to both
   servers of one table, a slow write racing a replicated copy, a write
   owner frozen in the middle of a statement;
4. the hostile-input and wire-fuzz suites (pytest, with Hypothesis
   statistics) for the fuzz figures;
5. issue 14's attacks (tests/integration/hardening_scenarios.py): a flood of
   slow-byte unauthenticated connections, an idle flood beyond one server's
   cap under the balancer, the 60-term filter past the query time limit,
   three clients that never read a big answer (`--answer-rows`), secret
   guessing on 200 connections, `down` from another topology.
Prints the figures with the bar each must meet, then the client figures per
fault. Exit status 1 if a figure misses its bar.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from nodes.runtime.outbox import HELD_BYTES_BOUND  # noqa: E402
from tests.conftest import NodeStarter  # noqa: E402
from tests.integration import hardening_scenarios as hardening  # noqa: E402
from tests.integration.cluster_scenario import ScenarioResult, run_scenario  # noqa: E402
from tests.integration.crash_sweep import FAIL_AFTER_RENAME, SweepResult, run_sweep, sweep_points  # noqa: E402
from tests.integration.replication_scenarios import (  # noqa: E402
    ReplicatedPair,
    WriteHistory,
    run_corrupt_heal,
    run_disk_full_failover,
    run_frozen_owner,
    run_multi_master,
    run_second_cluster,
    run_slow_write_race,
)

FUZZ_SUITES = ("tests/integration/test_hostile_input.py", "tests/nodes/test_wire_fuzz.py")


def fuzz_figures() -> dict:
    """Run the hostile-input suites; count tests, Hypothesis examples, failures."""
    suites = [s for s in FUZZ_SUITES if (REPO_ROOT / s).exists()]
    if not suites:
        return {"suites": "none found", "cases": None, "crashes": None}
    run = subprocess.run([sys.executable, "-m", "pytest", *suites, "-q", "-p", "no:cacheprovider",
                          "--hypothesis-show-statistics"], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=900)
    output = run.stdout + run.stderr
    examples = sum(int(n) for n in re.findall(r"(\d+) passing examples", output))
    examples += sum(int(n) for n in re.findall(r"(\d+) failing examples", output))
    summary = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|error)", output)}
    tests = summary.get("passed", 0) + summary.get("failed", 0) + summary.get("error", 0)
    return {"suites": ", ".join(Path(s).name for s in suites),
            "cases": tests + examples, "tests": tests, "examples": examples,
            "crashes": summary.get("failed", 0) + summary.get("error", 0)}


@contextmanager
def node_starter(folder: Path) -> Iterator[NodeStarter]:
    """Start nodes in `folder`; every one of them stopped at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    starter = NodeStarter(folder)
    try:
        yield starter
    finally:
        starter.stop_all()


def replication_rows(work: Path) -> list[tuple[str, str, str, bool]]:
    """Run each replication scenario on a fresh pair of servers; (figure, value, bar, met) rows."""
    def lost_row(name: str, history: WriteHistory) -> tuple[str, str, str, bool]:
        return (f"{name}: acknowledged writes lost",
                f"{history.lost_total} of {len(history.acknowledged)} ({len(history.failed)} "
                f"refused cleanly, {len(history.unknown)} unknown)", "0",
                history.lost_total == 0 and bool(history.acknowledged))

    rows = []
    scenarios = [("direct multi-master writers", lambda pair: run_multi_master(pair, seconds=10)),
                 ("slow write vs replicated copy", lambda pair: run_slow_write_race(pair)[0]),
                 ("write owner frozen mid-statement", run_frozen_owner)]
    for index, (name, scenario) in enumerate(scenarios):
        folder = work / f"replication-{index}"
        with node_starter(folder) as starter, ReplicatedPair(starter, folder) as pair:
            history = scenario(pair)
            conflicts = len(pair.replicator.conflicts())
        rows.append(lost_row(name, history))
        rows.append((f"{name}: failed writes present / conflicts",
                     f"{len(history.failed_present({1}))} / {conflicts}", "0 / 0",
                     not history.failed_present({1}) and conflicts == 0))
    rows += _healing_rows(work)
    return rows


def _healing_rows(work: Path) -> list[tuple[str, str, str, bool]]:
    """A second cluster on the same directories, a corrupt replica, a full disk."""
    rows = []
    second = run_second_cluster(work / "second-cluster")
    rows.append(("second cluster on the same data dirs: refused, first intact",
                 f"{'yes' if second.refused else 'NO'}, {'yes' if second.first_intact else 'NO'}",
                 "yes, yes", second.refused and second.first_intact))
    folder = work / "heal"
    with node_starter(folder) as starter, ReplicatedPair(starter, folder) as pair:
        heal = run_corrupt_heal(pair)
    rows.append(("corrupt replica repaired from the good copy (kept in .corrupt)",
                 f"{heal.seconds * 1000:.0f} ms ({'kept' if heal.kept_aside else 'NOT kept'})",
                 "repaired, kept", heal.identical and heal.kept_aside))
    folder = work / "disk-full"
    try:
        with node_starter(folder) as starter:
            failover = run_disk_full_failover(starter, folder)
    except pytest.skip.Exception as skipped:  # no root or no tmpfs here
        rows.append(("disk-full write failover", f"not measured ({skipped})", "", True))
        return rows
    history = failover.history
    rows.append(("disk-full write failover: first write / slowest",
                 f"{failover.first_write_s * 1000:.0f} ms / {failover.max_write_s * 1000:.0f} ms",
                 "no error", not history.failed and not history.unknown))
    rows.append(("disk-full: acknowledged writes lost",
                 f"{history.lost_total} of {len(history.acknowledged)}", "0",
                 history.lost_total == 0 and bool(history.acknowledged)))
    return rows


def hardening_rows(work: Path, answer_rows: int, query_rows: int) -> list[tuple[str, str, str, bool]]:
    """Issue 14's attacks, each on fresh nodes: (figure, value, bar, met) rows."""
    rows = []
    with node_starter(work / "unauthenticated") as starter:
        flood = hardening.unauthenticated_flood(starter, 300, wait_deadline=True)
    rows.append(("unauthenticated flood (300 slow-byte): authenticated client served, latency",
                 f"{'yes' if flood.served else 'NO'}, {flood.latency_s * 1000:.0f} ms",
                 "yes, < 1 s", flood.served and flood.latency_s < 1.0))
    rows.append(("unauthenticated flood: all closed after (deadline 10 s from accept)",
                 f"{flood.flood_left_open_s:.1f} s", "<= 12 s",
                 flood.flood_left_open_s is not None and flood.flood_left_open_s <= 12))
    with node_starter(work / "idle-flood") as starter:
        served, tried = hardening.idle_flood_via_balancer(starter, 260, 10)
    rows.append(("idle flood (260 on one server): new balancer clients served",
                 f"{served} of {tried}", "all", served == tried))
    with node_starter(work / "time-limit") as starter:
        past, message = hardening.query_past_limit(starter, rows=query_rows)
    rows.append((f"60-term filter over {query_rows} x {query_rows}: longest past its 30 s limit",
                 f"{past:.2f} s", "<= 1 s", past <= 1.0 and "Ela loatra" in message))
    side = max(1, int(answer_rows ** 0.5))
    with node_starter(work / "slow-readers") as starter:
        readers = hardening.slow_readers(starter, side, answer_rows // side, 3)
    # What they pin, by the server's own count (the bound: nodes/runtime/outbox.py);
    # RSS beside it moves by tens of MB with the allocator alone, so it only has to
    # stay below one answer (before the outbox, each reader pinned its whole answer:
    # +136 MB).
    held_bound = 3 * HELD_BYTES_BOUND / (1 << 20)
    rss_pinned = readers.settled_mb - readers.base_mb
    rows.append((f"3 non-reading clients of a {readers.rows:,}-row answer ({readers.answer_mb:.0f} MB): "
                 "held in memory / on disk (server's count), RSS peak / pinned",
                 f"{readers.unsent_in_memory_mb:.1f} MB / {readers.unsent_spilled_mb:.0f} MB, "
                 f"{readers.peak_mb:.0f} MB / {rss_pinned:+.0f} MB",
                 f"in memory <= {held_bound:.1f} MB, RSS pinned < {readers.answer_mb:.0f} MB",
                 readers.slow_readers == 3 and readers.unsent_in_memory_mb <= held_bound
                 and rss_pinned < readers.answer_mb))
    rows.append(("  their outboxes dropped once they hung up", "yes" if readers.released else "NO",
                 "yes", readers.released))
    rows.append(("  another client served meanwhile", "no" if readers.other_served_s is None
                 else f"yes, {readers.other_served_s * 1000:.0f} ms", "yes",
                 readers.other_served_s is not None))
    with node_starter(work / "guesses") as starter:
        per_second, gets_in = hardening.auth_guesses(starter, 3.0, 200)
    rows.append(("auth guesses per second accepted (200 connections, 3 s)",
                 f"{per_second:.0f}/s; right secret then {'gets in' if gets_in else 'REFUSED'}",
                 "<= 40/s, gets in", per_second <= 40 and gets_in))
    refused = hardening.foreign_down_refused(work / "control")
    rows.append(("foreign `down` refused (another topology, same control port)",
                 "yes" if refused else "NO", "yes", refused))
    return rows


def figure_rows(sweep: SweepResult | None, after_rename: SweepResult | None,
                cluster: ScenarioResult | None, fuzz: dict | None) -> list[tuple[str, str, str, bool]]:
    """(figure, value, bar, met) rows."""
    rows = []
    if sweep is not None:
        # Where each reached point landed (crashing_server.py's scopes): a table's
        # journal append, a checkpoint, the recovery at start, the format upgrade, a
        # group commit's whole documents and folder fsyncs; anything else is "other".
        landed = sweep.reached_by_scope()
        areas = ("journal", "checkpoint", "recover", "upgrade", "commit")
        other = sum(count for area, count in landed.items() if area not in areas)
        rows += [
            ("kill points tried (reached)", f"{sweep.points_tried} ({sweep.points_reached})",
             ">= 100, all reached",
             sweep.points_reached >= 100 and sweep.points_reached == sweep.points_tried),
            ("crash: reached in journal append / checkpoint / recovery / upgrade / "
             "whole-document commit" + (" / other" if other else ""),
             " / ".join(str(landed[area]) for area in areas) + (f" / {other}" if other else ""),
             "each > 0", all(landed[area] > 0 for area in areas)),
            ("crash: killed while starting (recovery, upgrade)", str(sweep.killed_at_start),
             "> 0", sweep.killed_at_start > 0),
            ("files torn (not whole, or a journal damaged past a torn tail)",
             str(sweep.files_torn), "0", sweep.files_torn == 0),
            ("crash: torn journal tails left / still there after the restart",
             f"{sweep.torn_tails_left} / {sweep.tails_not_cut}", "> 0 / 0",
             sweep.torn_tails_left > 0 and sweep.tails_not_cut == 0),
            ("crash: after the clean stop, journals left / problems", f"{sweep.final_journals} / "
             f"{len(sweep.final_problems)}", "0 / 0",
             sweep.final_journals == 0 and not sweep.final_problems),
            ("crash: acknowledged writes lost", str(sweep.lost_acknowledged), "0",
             sweep.lost_acknowledged == 0),
            ("crash: failed writes present", str(sweep.failed_present), "0", sweep.failed_present == 0),
            ("crash: in-flight partly applied", str(sweep.partial_in_flight), "0",
             sweep.partial_in_flight == 0),
            ("crash: in-flight applied / absent", f"{sweep.in_flight_applied} / {sweep.in_flight_absent}",
             "both > 0", sweep.in_flight_applied > 0 and sweep.in_flight_absent > 0),
            ("crash: statements acked / failed", f"{sweep.acknowledged} / {sweep.failed}", "", True),
            ("crash sweep time", f"{sweep.seconds:.1f} s", "", True),
        ]
    if after_rename is not None:
        rows.append(("EIO at/after rename: failed yet present / acked lost",
                     f"{after_rename.failed_present} / {after_rename.lost_acknowledged}", "0 / 0",
                     after_rename.failed_present == 0 and after_rename.lost_acknowledged == 0))
    if cluster is not None:
        reads_bad = sum(cluster.total(k) for k in ("read_error", "read_wrong", "use_error"))
        rows += [
            ("cluster: read errors", str(reads_bad), "0", reads_bad == 0),
            ("cluster: write errors (not unknown)", str(cluster.total("write_error")), "0",
             cluster.total("write_error") == 0),
            ("cluster: writes unknown (present after)", f"{cluster.unknown} ({cluster.unknown_present})",
             "allowed", True),
            ("cluster: timeouts (hangs)", str(cluster.total("timeout")), "0",
             cluster.total("timeout") == 0),
            ("cluster: acknowledged writes lost", f"{cluster.lost_total} of {cluster.acknowledged}",
             "0", cluster.lost_total == 0),
            ("cluster: failed writes present", str(sum(cluster.failed_present.values())), "0",
             sum(cluster.failed_present.values()) == 0),
            ("cluster: replication conflicts", str(len(cluster.conflicts)), "0", not cluster.conflicts),
            ("convergence time after load", "never" if cluster.convergence_s is None
             else f"{cluster.convergence_s:.3f} s", "converges", cluster.convergence_s is not None),
            ("data dirs identical object by object", "yes" if not cluster.differences else
             f"no ({len(cluster.differences)} differ)", "yes", not cluster.differences),
        ]
    if fuzz is not None:
        rows += [
            ("fuzz cases run", "-" if fuzz["cases"] is None else
             f"{fuzz['cases']} ({fuzz.get('tests', 0)} tests + {fuzz.get('examples', 0)} examples)",
             "> 0", bool(fuzz["cases"])),
            ("crashes", "-" if fuzz["crashes"] is None else str(fuzz["crashes"]), "0",
             fuzz["crashes"] == 0),
        ]
    return rows


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    line = "+".join("-" * (w + 2) for w in widths)
    print(f"+{line}+")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)) + " |")
    print(f"+{line}+")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) + " |")
    print(f"+{line}+")


def print_phases(cluster: ScenarioResult) -> None:
    headers = ["fault", "reads ok", "read err", "wrong", "read resent", "refused", "max outage",
               "writes ok", "unknown", "write err", "max latency"]
    rows = []
    for name, figures in cluster.phases.items():
        c = figures.counts
        rows.append([name, c["read_ok"], c["read_error"] + c["use_error"], c["read_wrong"],
                     c["read_retried"], c["refused"], f"{figures.max_outage_s:.2f} s", c["write_ok"],
                     c["write_unknown_reported"] + c["write_unknown_connection"], c["write_error"],
                     f"{figures.max_latency_s:.2f} s"])
    print_table(headers, rows)
    print("refused: connection attempts refused while the proxy itself was down (the client "
          "retried them;\nnot counted as errors); max outage: longest time a client could not "
          "connect at all.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points-per-operation", type=int, default=4)
    parser.add_argument("--no-crash", action="store_true")
    parser.add_argument("--no-cluster", action="store_true")
    parser.add_argument("--no-replication", action="store_true")
    parser.add_argument("--no-fuzz", action="store_true")
    parser.add_argument("--no-hardening", action="store_true")
    parser.add_argument("--answer-rows", type=int, default=4_000_000,
                        help="rows of the answer the non-reading clients ask for")
    parser.add_argument("--query-rows", type=int, default=2000,
                        help="rows of each table of the time-limit query's cross join")
    args = parser.parse_args(argv)
    sweep = after_rename = cluster = fuzz = None
    replication: list[tuple[str, str, str, bool]] = []
    hardened: list[tuple[str, str, str, bool]] = []
    with tempfile.TemporaryDirectory(prefix="tahiry-faults-") as folder:
        work = Path(folder)
        if not args.no_crash:
            print("crash-point sweep ...", flush=True)
            sweep = run_sweep(work / "sweep", sweep_points(args.points_per_operation))
            # From a format 2 directory with the default checkpoints: the failures land
            # in the commits' renames and folder fsyncs, not in an upgrade or a checkpoint.
            after_rename = run_sweep(work / "after-rename",
                                     [f"fail-{op}:{n}" for op in FAIL_AFTER_RENAME for n in (1, 2)],
                                     start_format=2, checkpoints=None)
        if not args.no_cluster:
            print("cluster fault scenario ...", flush=True)
            cluster = run_scenario(work / "cluster")
        if not args.no_replication:
            print("replication scenarios ...", flush=True)
            replication = replication_rows(work)
        if not args.no_hardening:
            print("hardening scenarios ...", flush=True)
            hardened = hardening_rows(work, args.answer_rows, args.query_rows)
    if not args.no_fuzz:
        print("hostile input suites ...", flush=True)
        fuzz = fuzz_figures()
    rows = figure_rows(sweep, after_rename, cluster, fuzz) + replication + hardened
    print()
    print_table(["figure", "value", "bar", "met"],
                [[f, v, b, "yes" if ok else "NO"] for f, v, b, ok in rows])
    if cluster is not None:
        print()
        print_phases(cluster)
        for problem in cluster.problems + cluster.conflicts[:6]:
            print("  " + problem)
    if sweep is not None:
        for problem in sweep.problems[:10]:
            print("  crash sweep: " + problem)
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
