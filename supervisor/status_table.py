"""The `status` table: one row per node, and the INFO column's one-line summaries.

`render_table(rows)` takes the rows of the control port's `status` answer
(or of `leftovers.status_rows` when no supervisor runs) and aligns them in
columns. RESTARTS counts the supervisor's own restarts (a crash, missed
probes), MANUAL the operator's (`restart NODE`). PROBE is the last answered
health probe, `-` while the last ones failed. INFO joins, in one line, the
health probes failing in a row (`probe failed 2/3: ...`), the node's own
alerts, replication and cache figures, and for a node that is FATAL, in
BACKOFF or starting again, why its last run ended.
`render_accounts(rows)`, with accounts on, is a second table: per account,
its connections logged in now, logins and failed logins, summed over the
servers (one session through the balancer counts on each server it reached:
the column says CONNECTIONS, not sessions); and
`render_running(rows)` a third, the statements the servers have been running
for a second or more (`accounts stop NAME` stops one).
"""

from __future__ import annotations

import time

from .account_stats import RUNNING_STATEMENTS, account_totals
from .leftovers import UNSUPERVISED

# RESTARTS: by the supervisor (a crash, missed probes); MANUAL: by `restart NODE`.
COLUMNS = ("NODE", "KIND", "ADDRESS", "PID", "STATE", "UPTIME", "RESTARTS", "MANUAL", "PROBE",
           "INFO")


def render_table(rows: list[dict]) -> str:
    lines = [COLUMNS]
    for row in rows:
        lines.append((row["node"], row["kind"], row["address"], str(row.get("pid") or "-"),
                      row["state"], duration(row.get("uptime_s")),
                      _count(row.get("restarts", 0)), _count(row.get("manual_restarts", 0)),
                      f"{row['probe_ms']:.1f} ms" if row.get("probe_ms") is not None else "-",
                      _info(row)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


# CONNECTIONS, not SESSIONS: a server cannot tell a student's own connection from one a
# balancer opened for that student's session (one on each server it reached).
ACCOUNT_COLUMNS = ("ACCOUNT", "CONNECTIONS", "LOGINS", "FAILURES")


def render_accounts(rows: list[dict]) -> str | None:
    """Per account (counts only), summed over the servers; None when no server counts accounts."""
    figures = account_totals(rows)
    if figures is None:
        return None
    totals, unknown = figures
    lines = [ACCOUNT_COLUMNS] + [(name, str(t.sessions), str(t.logins), str(t.failures))
                                 for name, t in totals.items()]
    widths = [max(len(line[i]) for line in lines) for i in range(len(ACCOUNT_COLUMNS))]
    text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                     .rstrip() for line in lines)
    return (f"accounts (counted by the servers since they started; CONNECTIONS: logged in on "
            f"the servers now, not students: one session through the balancer holds one, and "
            f"counted a login, on each server it reached):\n{text}"
            + ("" if unknown is None else f"\nfailed logins naming no account: {unknown}"))


RUNNING_COLUMNS = ("SERVER", "ACCOUNT", "DATABASE", "SECONDS", "STATEMENT")


def render_running(rows: list[dict]) -> str | None:
    """The statements running now for a second or more, longest first; None when none is."""
    running = sorted((entry for row in rows if row.get("kind") == "server"
                      for entry in row.get(RUNNING_STATEMENTS) or []),
                     key=lambda entry: -entry["seconds"])
    if not running:
        return None
    lines = [RUNNING_COLUMNS] + [(str(entry["server"]), entry["account"], entry["database"] or "-",
                                  f"{entry['seconds']:.1f}", entry["statement"])
                                 for entry in running]
    widths = [max(len(line[i]) for line in lines) for i in range(len(RUNNING_COLUMNS))]
    text = "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                     .rstrip() for line in lines)
    return ("running now (a server runs one statement at a time: the others wait behind it; "
            "`accounts stop NAME` stops one):\n" + text)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _info(row: dict) -> str:
    parts = [probe_failing(row)] if row.get("probe_failures") else []
    parts += [f"alert: {alert}" for alert in row.get("alerts") or []]
    if row["kind"] == "proxycache" and "hit_ratio" in row:
        ratio = row["hit_ratio"]
        parts.append(f"hit ratio {ratio:.0%}" if ratio is not None else "hit ratio -")
    if row["kind"] == "proxycache" and row.get("backends") is not None:
        # The one relay runs the balancer itself: its servers as that balancer sees them.
        parts.append("balancer in process: " + (", ".join(
            f"{backend} {state}" for backend, state in row["backends"].items()) or "no server"))
    if row["kind"] == "server":
        p50, p99 = row.get("repl_lag_p50_ms"), row.get("repl_lag_p99_ms")
        if p50 is not None:
            parts.append(f"repl lag p50 {p50:.1f} ms p99 {p99:.1f} ms")
        if row.get("repl_conflicts"):
            parts.append(f"{row['repl_conflicts']} conflicts")
        parts.extend(_replica_health(row))
        if row.get("writable") is False and row["state"] not in ("STOPPED", "FATAL", "BACKOFF"):
            parts.append("catching up (read-only)")
        lease = row.get("write_lease")
        if lease is not None:   # write leases on (docs/REPLICATION.md, "Write leases")
            held = "" if "left_s" not in lease else (
                f", lease {lease['left_s']:.1f} s left" if lease["left_s"] is not None
                else ", no write lease")
            parts.append(f"epoch {lease['epoch']}: {lease['machine']}{held}")
        for fault in row.get("storage_faults") or []:
            parts.append(f"storage fault: {fault['object']} ({fault['operation']}: "
                         f"{fault['reason']}, x{fault['count']})")
    if row.get("remote"):   # another machine runs it (supervisor/remote.py)
        parts.append("on another machine" if row["state"] == "REMOTE"
                     else row.get("last_exit") or "on another machine; does not answer")
        parts.append(_reported(row))
    if row["state"] == UNSUPERVISED:
        parts.append("no supervisor" + (": replication paused" if row["kind"] == "server" else "")
                     + ("" if row.get("answers") else "; does not answer .ping"))
    if row["state"] in ("FATAL", "BACKOFF") and row.get("last_exit"):
        parts.append(row["last_exit"])
    elif row["state"] == "STARTING" and row.get("last_exit"):  # again, after that
        parts.append(f"restarting; last run {row['last_exit']}")
    return ", ".join(parts)


def probe_failing(row: dict) -> str:
    """A RUNNING node that stopped answering its health probes (restarted at `fall`)."""
    return (f"probe failed {row['probe_failures']}/{row.get('probe_fall') or '?'}: "
            f"{row.get('probe_error') or 'no answer'}")


def _reported(row: dict) -> str:
    """What the other machine's supervisor says about its node (or why it could not tell)."""
    reported = row.get("reported")
    if reported is None:
        return f"its supervisor: {row.get('report_error') or 'not asked'}"
    text = (f"its supervisor: {reported.get('state')}, pid {reported.get('pid') or '-'}, "
            f"up {duration(reported.get('uptime_s'))}, restarts {_count(reported.get('restarts'))}")
    theirs = _info({**reported, "node": row["node"], "kind": row["kind"], "remote": False,
                    "state": reported.get("state") or "?"})
    return f"{text} ({theirs})" if theirs else text


SHOWN_PROBLEMS = 3


def _replica_health(row: dict) -> list[str]:
    """A server's replicas (replication on): ok, or failing copies and corrupt objects; repairs."""
    health = row.get("repl_health")
    if health is None:
        return []
    parts = [f"repl {health}"]
    for failing in row.get("repl_failing", [])[:SHOWN_PROBLEMS]:
        parts.append(f"copy of {failing['path']} failing since {_clock(failing['since'])} "
                     f"({failing['attempts']} attempts)")
    for corrupt in row.get("repl_corrupt", [])[:SHOWN_PROBLEMS]:
        parts.append(f"corrupt {corrupt['path']} ({corrupt['reason']}; {corrupt['not_healed']})")
    repairs = row.get("repl_repairs") or []
    if row.get("repl_healed") and repairs:
        last = repairs[0]
        parts.append(f"healed {row['repl_healed']} corrupt (last {last['path']} from "
                     f"{last['source']} at {_clock(last['healed_at'])}, kept as {last['kept_as']})")
    refused = row.get("repl_refused") or []
    if refused:
        parts.append(f"{len(refused)} symlink(s) not replicated ({refused[0]['path']})")
    return parts


def _clock(wall_time: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(wall_time))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
