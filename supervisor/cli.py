"""`python -m supervisor up|down|status|restart|logs|reload|check|accounts|backup|restore`: the CLI.

`up` validates the topology (nothing starts from an invalid file), says so
and exits 0 if a supervisor already answers on the control port, refuses
(starting nothing) when a server's data directory belongs to another
cluster or another live process (`--take-over` hands over directories of a
stopped cluster), else runs the supervisor in the foreground (or, with
`-d`, in a detached process and returns once every node settled). The other
commands talk to the running supervisor over its control port, only if it
is the supervisor of the topology they were given (else they refuse, naming
the one that answers: `ask`), presenting the run's control token
(run/control-token, docs/SECURITY.md); `status` with no supervisor lists the
nodes a dead supervisor left running as UNSUPERVISED (checked and probed),
the others as STOPPED, and exits 3.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import ipaddress
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import psutil

from .control import NotRunning, control_port_in_force, read_token, send_command
from .errors import SupervisorError
from .first_admin import ADMIN_PASSWORD_ENV, AdminPasswordMissing, admin_password_for_up
from .leftovers import (
    UNSUPERVISED,
    find_leftovers,
    hand_over_departed,
    status_rows,
    stop_leftovers,
)
from .logfiles import close_logger, follow, supervisor_logger, timestamp
from .machine import machine_addresses, place
from .ownership import ownership_problems
from .port_check import port_problems, status_page_problem
from .quorum_service import voter_file_problem
from .restore import RestoreRefused, finish_interrupted
from .status_table import duration, render_accounts, render_running, render_table
from .topology import ID_PATTERN, NodeSpec, Topology, TopologyError, load_topology, parse_topology

LOADED_TOPOLOGY = "loaded-topology.yaml"

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_NOT_RUNNING = 0, 1, 2, 3
EXIT_BROKEN_PIPE = 141  # what a shell reports for a program a closed pipe stopped (128 + SIGPIPE)
DETACH_DEADLINE_S = 60.0
WATCH_INTERVAL_S = 2.0
# The client's defaults (nodes/client/cli.py DEFAULT_HOST, DEFAULT_PORT): `up` says which
# flags `./tahiry client` needs to reach this cluster; the supervisor never imports the client.
CLIENT_DEFAULT_HOST, CLIENT_DEFAULT_PORT = "127.0.0.1", 3951



# The topology file when none is named: `./tahiry` passes the one it resolved through
# the environment (an argument after the options would take the slot of a positional:
# `logs m1 -n 5 FILE` is refused by argparse).
TOPOLOGY_ENV = "TAHIRY_TOPOLOGY"
default_topology = os.environ.get(TOPOLOGY_ENV) or "topology.yaml"


def _ip_address(text: str) -> str:
    """An argparse type: `--host` names one of this machine's addresses, as an IP."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r} (one of this "
                                         f"machine's, as in the topology's `host:`)") from None
    return text


def _at_least(low: float, kind: type):
    """An argparse type: a number of `kind` no smaller than `low` (`-n 0` printed the
    whole log, `-n -5` nothing, `--watch -n 0` redrew without pause)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low:g}: {text}")
        return value
    return parse

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m supervisor",
                                     description="Run and watch a Tahiry cluster.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the cluster (foreground; -d to detach)")
    up.add_argument("topology", nargs="?", default=default_topology)
    up.add_argument("-d", "--detach", action="store_true", help="run in the background")
    up.add_argument("--take-over", action="store_true",
                    help="hand over to this cluster the data directories another, stopped, "
                         "cluster used (refused while it runs)")
    up.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    up.add_argument("--host", action="append", default=[], metavar="ADDRESS", type=_ip_address,
                    help="this machine's address (repeatable): it runs the nodes whose host "
                         "is one of them (default: every address of its interfaces)")
    status = commands.add_parser("status", help="show every node")
    status.add_argument("topology", nargs="?", default=default_topology)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("-w", "--watch", action="store_true",
                        help="redraw every few seconds (like watch/top) until Ctrl-C")
    status.add_argument("-n", "--interval", type=_at_least(0.1, float), default=WATCH_INTERVAL_S,
                        metavar="SECONDS", help=f"with --watch: seconds between redraws "
                                                f"(default {WATCH_INTERVAL_S:g})")
    down = commands.add_parser("down", help="stop every node and the supervisor")
    down.add_argument("topology", nargs="?", default=default_topology)
    restart = commands.add_parser("restart", help="restart one node")
    restart.add_argument("node")
    restart.add_argument("topology", nargs="?", default=default_topology)
    logs = commands.add_parser("logs", help="show a node's log (or 'supervisor')")
    logs.add_argument("node")
    logs.add_argument("topology", nargs="?", default=default_topology)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=_at_least(1, int), default=50,
                      help="how many of the last lines (default 50)")
    reload = commands.add_parser("reload", help="apply the topology file now (it is also "
                                                "applied by itself when edited)")
    reload.add_argument("topology", nargs="?", default=default_topology)
    check = commands.add_parser("check", help="validate the topology file, and that the ports "
                                              "it adds or moves are free (changes nothing)")
    check.add_argument("topology", nargs="?", default=default_topology)
    check.add_argument("--host", action="append", default=[], metavar="ADDRESS", type=_ip_address,
                       help="check as the machine with this address (as `up --host`)")
    backup = commands.add_parser("backup", help="write one archive of the running cluster's "
                                                "data, at one point in time (writes pause "
                                                "only while the point is taken)")
    backup.add_argument("topology", nargs="?", default=default_topology)
    backup.add_argument("--to", metavar="FILE", default=None,
                        help="the archive to write (must not exist; a folder: the default name "
                             "in it; default: ./tahiry-backup-YYYYMMDD-HHMMSS.tar.gz)")
    restore = commands.add_parser("restore", help="put a backup in place for every server of "
                                                  "this machine (the cluster stopped)")
    restore.add_argument("file", help="the archive `backup` wrote")
    restore.add_argument("topology", nargs="?", default=default_topology)
    accounts = commands.add_parser("accounts", help="accounts of a class (with `accounts:` on): "
                                                    "create-class, reset, remove-class, stop "
                                                    "(supervisor/accounts.py)")
    accounts.add_argument("topology")
    actions = accounts.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create-class", help="one account per name of a CSV file, each "
                                                     "with a new password written to --out")
    create.add_argument("names", help="one name a line (the first column; blank lines and "
                                      "lines starting with # skipped)")
    create.add_argument("--out", required=True, metavar="FILE",
                        help="where the passwords go (name,password,status; created 0600, "
                             "must not exist)")
    reset = actions.add_parser("reset", help="a new password for one account, printed once")
    reset.add_argument("name")
    remove = actions.add_parser("remove-class", help="the end of a term: remove the accounts "
                                                     "of a CSV file and the databases they own, "
                                                     "keeping a copy of each in --keep")
    remove.add_argument("names", help="one name a line, as for create-class")
    remove.add_argument("--keep", required=True, metavar="FOLDER",
                        help="where each student's databases are copied (FOLDER/NAME/DB.tah, "
                             "scripts that recreate them; made 0700, must not exist)")
    stop = actions.add_parser("stop", help="stop the statement an account runs now on each "
                                           "server (its session goes on)")
    stop.add_argument("name")
    for action in (create, reset, remove, stop):
        action.add_argument("--user", metavar="NAME",
                            help="the administrator to act as (default: the topology's "
                                 "accounts.admin); password from TAHIRY_ADMIN_PASSWORD or asked")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        topology = load_topology(args.topology)
        if args.command in ("up", "check"):
            # This machine's part: the nodes whose host is one of its addresses.
            topology = place(topology, machine_addresses(args.host))
    except TopologyError as error:
        print(error, file=sys.stderr)
        if args.command in ("up", "check", "reload", "accounts", "restore"):
            if args.command == "up":
                print("nothing was started.", file=sys.stderr)
            return EXIT_INVALID
        # The file may have been edited badly while the cluster runs: still
        # reach the running supervisor (its run directory says where).
        running = _running_topology(Path(args.topology))
        if running is None:
            return EXIT_INVALID
        topology = running
        print(f"(using the topology the running supervisor loaded: {topology.path})",
              file=sys.stderr)
    if args.command in ("up", "check"):
        for warning in topology.notices:
            print(f"warning: {warning}", file=sys.stderr)
    handler = {"up": cmd_up, "status": cmd_status, "down": cmd_down, "restart": cmd_restart,
               "logs": cmd_logs, "check": cmd_check, "reload": cmd_reload,
               "accounts": cmd_accounts, "backup": cmd_backup,
               "restore": cmd_restore}[args.command]
    try:
        code = handler(topology, args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
        return code
    except OtherCluster as error:   # any command asking this topology's supervisor (`ask`)
        print(error, file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """Stdout's reader left (`status | head -1`): stop quietly, as `cat` would.

    Python would otherwise report the broken pipe again when it flushes
    stdout at exit; pointing stdout at /dev/null leaves nothing to flush.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def _running_topology(path: Path) -> Topology | None:
    """The last valid topology the running supervisor applied (run/loaded-topology.yaml),
    if it is this file's: run/state.json names the topology file it runs (another file of
    the folder would be handed another topology's copy under its own name)."""
    path = path.resolve()
    try:
        state = json.loads((path.parent / "run" / "state.json").read_text(encoding="utf-8"))
        if not isinstance(state, dict) or state.get("topology") != str(path):
            return None
        text = (path.parent / "run" / LOADED_TOPOLOGY).read_text(encoding="utf-8")
        return parse_topology(text, path)
    except (OSError, ValueError, TopologyError):
        return None


class OtherCluster(SupervisorError):
    """The control port is answered by the supervisor of another topology."""


def ask(topology: Topology, request: dict, timeout_s: float = 5.0) -> dict:
    """Send a command to the supervisor of `topology`, with its control token.

    Raises NotRunning when nothing answers, OtherCluster (naming it) when the
    supervisor on the control port runs another topology: a command given a
    topology acts on that topology's cluster or on none.
    """
    port = control_port_in_force(topology.supervisor.run, topology.supervisor.control_port)
    hello = send_command(port, {"cmd": "hello"}, timeout_s=min(timeout_s, 5.0))
    if hello.get("topology") != str(topology.path):
        raise OtherCluster(f"the control port {port} is used by the supervisor of "
                           f"{hello.get('topology')} (pid {hello.get('pid')}), not of "
                           f"{topology.path}: nothing was done")
    return send_command(port, request, timeout_s=timeout_s,
                        token=read_token(topology.supervisor.run))


# -- commands

def cmd_check(topology: Topology, args) -> int:
    """Valid, and every port it adds or moves free (those the running cluster holds are ours)."""
    ours, running = _addresses_held_by_us(topology)
    problems = port_problems(topology, ours)
    if problems:
        print(f"{topology.path.name}: valid, but cannot be applied now:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID
    if not running:   # (a running supervisor holds the page, or says why not)
        page = status_page_problem(topology)
        if page is not None:
            print(f"{topology.path.name}: warning: {page}", file=sys.stderr)
    accounts = f"; accounts on, administrator {topology.accounts.admin}" \
        if topology.accounts.enabled else ""
    print(f"{topology.path.name}: valid ({len(topology.nodes)} nodes{accounts})")
    return EXIT_OK


def _addresses_held_by_us(topology: Topology) -> tuple[set[str], bool]:
    """Node addresses this cluster's own processes hold: the running supervisor's nodes
    (the topology in force), or the nodes a dead one left (`up` stops those first); and
    whether this topology's supervisor answered."""
    try:
        return {row["address"] for row in ask(topology, {"cmd": "status"})["nodes"]}, True
    except OtherCluster:
        return set(), False  # that cluster's ports are someone else's for this topology
    except NotRunning:
        return {leftover.address for leftover in find_leftovers(topology).nodes}, False


def cmd_up(topology: Topology, args) -> int:
    port = control_port_in_force(topology.supervisor.run, topology.supervisor.control_port)
    try:
        hello = send_command(port, {"cmd": "hello"}, timeout_s=2)
        if hello.get("topology") != str(topology.path):
            if port != topology.supervisor.control_port:   # read from a run folder in use
                run = topology.supervisor.run
                print(f"cannot start: {run} is the run folder of the supervisor of "
                      f"{hello.get('topology')} (pid {hello.get('pid')}, control port {port}); "
                      f"two topologies in one folder need folders of their own: give "
                      f"{topology.path.name} `supervisor: {{run: run-{topology.path.stem}, "
                      f"logs: logs-{topology.path.stem}}}`, or stop that cluster",
                      file=sys.stderr)
                return EXIT_FAILED
            print(f"cannot start: the control port {port} is used by the supervisor of "
                  f"{hello.get('topology')} (pid {hello.get('pid')})", file=sys.stderr)
            return EXIT_FAILED
        print(f"the cluster already runs (supervisor pid {hello.get('pid')}, "
              f"{hello.get('topology')}); nothing to do.")
        print(connect_line(topology))
        return EXIT_OK
    except NotRunning as error:
        if "something else" in str(error):
            print(f"cannot start: {error}", file=sys.stderr)
            return EXIT_FAILED
    # Checked here too so that the refusal reaches the terminal; our own nodes
    # left by a supervisor that died hold their directories and are fine.
    scan = find_leftovers(topology)
    if scan.supervisor_alive:   # stopped or hung: it still holds the control port
        print(f"cannot start: the supervisor of this cluster (pid {scan.supervisor_pid}) still "
              f"runs but does not answer on its control port; "
              f"{_unfreeze_hint(scan.supervisor_pid)}", file=sys.stderr)
        print("nothing was started.", file=sys.stderr)
        return EXIT_FAILED
    try:   # a restore killed among its renames: finished before anything reads the data
        for line in finish_interrupted(topology):
            print(line)
    except (RestoreRefused, OSError) as error:
        print(f"cannot start: {error}", file=sys.stderr)
        print("nothing was started.", file=sys.stderr)
        return EXIT_FAILED
    leftovers = frozenset(leftover.pid for leftover in scan.nodes)
    problems = ownership_problems(topology, args.take_over, leftovers) or port_problems(
        topology, {leftover.address for leftover in scan.nodes})
    if not problems and topology.write_leases.enabled and topology.remote:
        voter = voter_file_problem(topology.supervisor.run,
                                   [spec.host for spec in topology.nodes.values()])
        problems = [voter] if voter is not None else []
    if problems:
        for problem in problems:
            print(f"cannot start: {problem}", file=sys.stderr)
        print("nothing was started.", file=sys.stderr)
        return EXIT_FAILED
    try:   # accounts on: the first administrator's password (environment or prompt)
        admin_password = admin_password_for_up(topology)
    except AdminPasswordMissing as error:
        print(f"cannot start: {error}", file=sys.stderr)
        print("nothing was started.", file=sys.stderr)
        return EXIT_FAILED
    if args.detach:
        return _up_detached(topology, args.take_over, args.host, admin_password)
    return _up_foreground(topology, echo=not args.quiet, take_over=args.take_over,
                          admin_password=admin_password)


def _up_foreground(topology: Topology, echo: bool, take_over: bool = False,
                   admin_password: str | None = None) -> int:
    from .app import SupervisorApp  # only `up` needs the asyncio machinery

    settings = topology.supervisor
    logger = supervisor_logger(settings.logs, settings.log_max_bytes, settings.log_backups, echo)

    def ready(rows: list[dict], all_running: bool) -> None:
        if echo:
            print(render_table(rows), flush=True)
            print("the cluster runs" if all_running else "the cluster started with problems "
                  "(see the table)", f"- Ctrl-C or {stop_hint(topology)} stops it.",
                  flush=True)
            print(connect_line(topology), flush=True)

    try:
        return asyncio.run(SupervisorApp(topology, logger, take_over, admin_password).run(ready))
    finally:
        close_logger(logger)


def _up_detached(topology: Topology, take_over: bool = False, hosts: list[str] | None = None,
                 admin_password: str | None = None) -> int:
    settings = topology.supervisor
    env = _child_env()
    if admin_password:   # the child reads it where a detached `up` can: its environment
        env[ADMIN_PASSWORD_ENV] = admin_password
    settings.logs.mkdir(parents=True, exist_ok=True)
    console_log = settings.logs / "supervisor.console.log"
    with open(console_log, "ab") as console:
        console_start = console.tell()
        child = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "up", str(topology.path), "--quiet",
             *(["--take-over"] if take_over else []),
             *(flag for host in hosts or [] for flag in ("--host", host))],
            stdin=subprocess.DEVNULL, stdout=console, stderr=console, start_new_session=True,
            cwd=str(topology.base_dir), env=env)
    deadline = time.monotonic() + DETACH_DEADLINE_S
    answer = None
    started = timestamp(time.time() - 1)
    while time.monotonic() < deadline:
        if child.poll() is not None:
            print(f"the supervisor exited with code {child.returncode}:", file=sys.stderr)
            if not _print_errors(settings.logs / "supervisor.log", since=started, quiet=True):
                _print_console_end(console_log, console_start)
            return EXIT_FAILED
        try:
            answer = ask(topology, {"cmd": "status"})
            states = {row["state"] for row in answer["nodes"] if not row.get("remote")}
            if states <= {"RUNNING", "FATAL"}:
                break
        except (NotRunning, OtherCluster):
            pass  # not listening yet (or the port is still another's: the child will say)
        time.sleep(0.05)
    if answer is None:
        print("the supervisor did not answer in time", file=sys.stderr)
        return EXIT_FAILED
    print(render_table(answer["nodes"]))
    print(f"supervisor runs in the background (pid {child.pid}); "
          f"{stop_hint(topology)} stops it.")
    print(connect_line(topology))
    return EXIT_OK if all(r["state"] == "RUNNING" for r in answer["nodes"]
                          if not r.get("remote")) else EXIT_FAILED


def stop_hint(topology: Topology) -> str:
    """The commands that stop this topology's cluster: without an argument they act on the
    project's topology.yaml, so any other file is named."""
    if topology.path == Path(__file__).resolve().parent.parent / "topology.yaml":
        return "`python -m supervisor down` (`./tahiry down`)"
    path = shlex.quote(str(topology.path))   # as typed in a shell: spaces quoted
    return f"`python -m supervisor down {path}` (`./tahiry down {path}`)"


def connect_line(topology: Topology) -> str:
    """Where a user connects: the client command and the entry node's address.

    The entry is the first proxy cache (what the client reaches by default),
    else the first balancer, else the first server. With accounts on, it
    logs in as the administrator (the students use their own names).
    """
    entry = _entry_node(topology)
    if entry is None:
        return "no node to connect to"
    flags = "".join([f" --host {entry.host}" if entry.host != CLIENT_DEFAULT_HOST else "",
                     f" --port {entry.port}" if entry.port != CLIENT_DEFAULT_PORT else "",
                     # accounts on: a login is needed (the password is asked, never an argument)
                     f" --user {topology.accounts.admin}" if topology.accounts.enabled else "",
                     _client_tls_flags(topology)])
    named = {"proxycache": "proxy cache", "balancer": "balancer"}.get(entry.kind, entry.kind)
    return (f"connect with: ./tahiry client{flags}   ({named} {entry.id} at {entry.address}; "
            f"python -m nodes.client{flags})")


def _client_tls_flags(topology: Topology) -> str:
    """With a `tls:` section the client needs the class's CA (and, when the nodes require
    client certificates, one: this machine's)."""
    tls = topology.tls
    if not tls.enabled or tls.ca is None:
        return ""
    flags = f" --tls-ca {shlex.quote(str(tls.ca))}"
    if tls.client_certs and tls.cert is not None and tls.key is not None:
        flags += f" --tls-cert {shlex.quote(str(tls.cert))} --tls-key {shlex.quote(str(tls.key))}"
    return flags


def _entry_node(topology: Topology) -> NodeSpec | None:
    for kind in ("proxycache", "balancer", "server"):
        nodes = topology.of_kind(kind)
        if nodes:
            return nodes[0]
    return None


def _print_errors(log: Path, since: str, lines: int = 5, quiet: bool = False) -> bool:
    """The log's ERROR lines since `since` on stderr (else, unless `quiet`, where to look);
    whether there were any."""
    try:
        errors = [line for line in log.read_text(errors="replace").splitlines()
                  if " ERROR " in line and line >= since][-lines:]
    except OSError:
        errors = []
    if not errors and quiet:
        return False
    for line in errors or [f"(see {log})"]:
        print("  " + line, file=sys.stderr)
    return bool(errors)


def _print_console_end(console_log: Path, start: int, lines: int = 10) -> None:
    """What a detached supervisor wrote to its console (from `start`) before it logged
    anything: a refusal or a traceback; its last lines on stderr, and where the rest is."""
    try:
        with open(console_log, "rb") as console:
            console.seek(start)
            text = console.read().decode(errors="replace")
    except OSError:
        text = ""
    for line in [line for line in text.splitlines() if line.strip()][-lines:]:
        print("  " + line, file=sys.stderr)
    print(f"  (its output: {console_log})", file=sys.stderr)


def _child_env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p)}


def cmd_status(topology: Topology, args) -> int:
    if getattr(args, "watch", False):
        return _watch(topology, args)
    try:
        answer = ask(topology, {"cmd": "status"})
    except NotRunning as error:
        return _status_without_supervisor(topology, args, error)
    page = answer.get("supervisor", {}).get("page")
    if args.json:
        print(json.dumps({"running": True, **answer, **({"page": page} if page else {})},
                         indent=1))
        return EXIT_OK
    info = answer.get("supervisor", {})
    print(f"supervisor pid {info.get('pid')}, up {duration(info.get('uptime_s'))}, "
          f"{info.get('topology')}")
    if page:
        print(f"status page: {page}   (metrics: {page.rstrip('/')}/metrics)")
    elif info.get("page_error"):
        print(f"status page: not served: {info['page_error']} (logs/supervisor.log; "
              f"another http.port in the topology moves it)")
    leases = info.get("write_leases")
    if leases:   # docs/REPLICATION.md, "Write leases"
        left = leases.get("lease_left_s")
        print(f"write leases: epoch {leases.get('epoch')} ("
              + ", ".join(f"{machine} {state}" for machine, state
                          in sorted((leases.get("machines") or {}).items()))
              + f"); this machine {leases.get('me')}: "
              + ("votes, runs no server" if not leases.get("servers", True)
                 else f"lease {left:.1f} s left" if left else "no write lease"))
    for node_id, data in (info.get("handing_over") or {}).items():
        # (docs/REPLICATION.md, "Membership and ownership": retried every 2 s)
        print(f"handing over: {node_id} ({data}): its newest copies have not all landed on "
              f"the other servers yet; keep that directory")
    reload = info.get("last_reload")
    if reload and not reload["ok"]:
        print("last topology edit refused:\n  " + reload["message"].replace("\n", "\n  "))
    print(render_table(answer["nodes"]))
    accounts = render_accounts(answer["nodes"])
    if accounts is not None:
        print("\n" + accounts)
    running = render_running(answer["nodes"])
    if running is not None:
        print("\n" + running)
    return EXIT_OK


# -- status --watch

CLEAR_SCREEN = "\x1b[H\x1b[2J"   # cursor home, clear: the terminal shows one table, like watch


def _watch(topology: Topology, args) -> int:
    """`status` again every `args.interval` seconds until Ctrl-C (which ends it with 0)."""
    interval = max(0.1, args.interval)
    screen = sys.stdout.isatty()
    once = argparse.Namespace(**{**vars(args), "watch": False})
    try:
        while True:
            started = time.monotonic()
            text = io.StringIO()
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                cmd_status(topology, once)
            head = (f"every {interval:g}s: status of {topology.path}    "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')}    (Ctrl-C ends)")
            if args.json:
                sys.stdout.write(text.getvalue())
            else:
                sys.stdout.write((CLEAR_SCREEN if screen else "\n") + head + "\n\n"
                                 + text.getvalue())
            sys.stdout.flush()
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        if screen:
            sys.stdout.write("\n")
        return EXIT_OK


def _status_without_supervisor(topology: Topology, args, error: NotRunning) -> int:
    """No supervisor answers: nodes it left running are UNSUPERVISED, never STOPPED."""
    scan = find_leftovers(topology)
    rows = status_rows(topology, scan)
    unsupervised = sum(row["state"] == UNSUPERVISED for row in rows)
    if scan.supervisor_alive:
        header = (f"the supervisor (pid {scan.supervisor_pid}) does not answer on its control "
                  f"port: {error}")
    else:
        header = f"the supervisor is not running: {error}"
    if unsupervised:
        between = ("from this machine's servers" if any(row.get("remote") for row in rows)
                   else "between the servers")
        header += (f"\n{unsupervised} node(s) still run UNSUPERVISED: they serve and take writes "
                   f"(nothing acknowledged is lost), but replication {between} is ")
        if scan.supervisor_alive:   # `up` cannot take over while it holds the control port
            header += f"paused while it does not answer: {_unfreeze_hint(scan.supervisor_pid)}"
        else:
            header += "paused until `./tahiry up` (python -m supervisor up) takes them over"
    if args.json:
        print(json.dumps({"ok": False, "running": False, "supervised": False,
                          "unsupervised": unsupervised,
                          "replication": "paused" if unsupervised else "stopped",
                          "error": str(error), "message": header, "nodes": rows}, indent=1))
    else:
        print(header if unsupervised else f"the cluster is not running: {error}")
        print(render_table(rows))
    return EXIT_NOT_RUNNING


def _unfreeze_hint(pid: int | None) -> str:
    """What to do about a supervisor that runs but does not answer its control port."""
    return (f"if it was stopped (Ctrl-Z, SIGSTOP), `kill -CONT {pid}`; if it hangs, "
            f"`kill {pid}` (its nodes keep running), then `./tahiry up`")


def cmd_down(topology: Topology, args) -> int:
    try:
        answer = ask(topology, {"cmd": "down"}, timeout_s=60)
    except NotRunning as error:
        return _down_without_supervisor(topology, error)
    if not answer["ok"]:
        print(answer.get("error"), file=sys.stderr)
        return EXIT_FAILED
    pid = answer.get("pid")
    if pid:
        try:
            psutil.Process(pid).wait(timeout=30)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            print(f"the supervisor (pid {pid}) is still finishing", file=sys.stderr)
            return EXIT_FAILED
    print("the cluster is stopped.")
    left = answer.get("replication_left")
    if left:
        # (What the last pass could not copy is still in the directory that holds it, and
        # goes out when the cluster runs again; a backup taken now may lack it.)
        print(f"warning: the final replication pass left something undone ({left}): "
              f"see logs/supervisor.log; the servers' directories may differ until the "
              f"cluster runs again", file=sys.stderr)
    return EXIT_OK


def _down_without_supervisor(topology: Topology, error: NotRunning) -> int:
    """No supervisor answers: stop the nodes a dead one left running, cleanly."""
    scan = find_leftovers(topology)
    if scan.supervisor_alive:
        print(f"the supervisor (pid {scan.supervisor_pid}) does not answer on its control "
              f"port: {error}", file=sys.stderr)
        return EXIT_FAILED
    if not scan.nodes:
        print(f"the cluster is not running: {error}")
        return EXIT_OK
    settings = topology.supervisor
    logger = supervisor_logger(settings.logs, settings.log_max_bytes, settings.log_backups, True)
    left = ""
    try:
        stubborn = stop_leftovers(scan.nodes, settings.restart.stop_grace_ms / 1000, logger)
        if not stubborn:
            # Replication was paused since the supervisor died: reconcile the directories
            # as its own `down` would have (a server removed from the file next must not
            # take with it the writes only it acknowledged).
            from .cluster import Cluster
            hand_over_departed(topology, scan.nodes, logger)
            left = asyncio.run(Cluster(topology, logger).reconcile_stopped())
    finally:
        close_logger(logger)
    if stubborn:
        print("still running: " + ", ".join(f"{n.node} (pid {n.pid})" for n in stubborn),
              file=sys.stderr)
        return EXIT_FAILED
    (settings.run / "state.json").unlink(missing_ok=True)
    print(f"the cluster is stopped ({len(scan.nodes)} node(s) left by a supervisor that died).")
    if left:
        print(f"warning: the final replication pass left something undone ({left}): "
              f"see logs/supervisor.log; the servers' directories may differ until the "
              f"cluster runs again", file=sys.stderr)
    return EXIT_OK


def cmd_restart(topology: Topology, args) -> int:
    try:
        answer = ask(topology, {"cmd": "restart", "node": args.node}, timeout_s=60)
    except NotRunning as error:
        print(f"the cluster is not running: {error}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    if not answer["ok"]:
        print(answer["error"], file=sys.stderr)
        return EXIT_FAILED
    print(render_table([answer["node"]]))
    return EXIT_OK if answer["node"]["state"] == "RUNNING" else EXIT_FAILED


def cmd_reload(topology: Topology, args) -> int:
    try:
        answer = ask(topology, {"cmd": "reload"}, timeout_s=120)
    except NotRunning as error:
        print(f"the cluster is not running: {error}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    print(answer.get("message") or answer.get("error"),
          file=sys.stdout if answer["ok"] else sys.stderr)
    return EXIT_OK if answer["ok"] else EXIT_FAILED


BACKUP_TIMEOUT_S = 3600.0   # a backup of a big class's data takes its time to compress


def cmd_backup(topology: Topology, args) -> int:
    """Ask the running supervisor for a backup (supervisor/backup.py); print where it went."""
    from .backup import default_name, target_problem

    target = Path(os.path.abspath(args.to)) if args.to else Path.cwd() / default_name()
    if target.is_dir():
        target = target / default_name()
    if (problem := target_problem(target)) is not None:
        print(f"no backup made: {problem}", file=sys.stderr)
        return EXIT_FAILED
    try:
        answer = ask(topology, {"cmd": "backup", "to": str(target)}, timeout_s=BACKUP_TIMEOUT_S)
    except NotRunning as error:
        print(f"the cluster is not running: {error} (with the cluster stopped, every server's "
              f"directory holds the same data: copy one, README \"Back up and restore\")",
              file=sys.stderr)
        return EXIT_NOT_RUNNING
    if not answer["ok"]:
        print(answer.get("error"), file=sys.stderr)
        return EXIT_FAILED
    done = answer["backup"]
    others = done["from_others"]
    print(f"backup written and checked: {done['path']} ({done['objects']} objects, "
          f"{done['bytes']:,} bytes, from {done['server']}"
          + (f"; {len(others)} newer on {', '.join(sorted(set(others.values())))}"
             if others else "") + ")")
    print(f"writes paused {done['paused_ms']:.1f} ms (waited {done['lock_wait_ms']:.1f} ms for "
          f"the commit locks); {done['seconds']:.2f} s in all")
    for what, why in sorted(done["skipped"].items()):
        print(f"warning: left out {what}: {why}", file=sys.stderr)
    return EXIT_OK


def cmd_restore(topology: Topology, args) -> int:
    """Check the archive whole, then put it in place for this machine's servers
    (supervisor/restore.py); one line and nothing changed when it cannot."""
    from .backup_archive import BadArchive
    from .restore import cluster_note, restore

    try:
        result = restore(topology, Path(os.path.abspath(args.file)))
    except (RestoreRefused, BadArchive) as error:
        print(f"nothing restored: {error}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as error:
        print(f"nothing restored: {error.strerror or error}", file=sys.stderr)
        return EXIT_FAILED
    manifest = result.manifest
    print(f"restored the backup taken {manifest.taken} on {manifest.server} "
          f"({len(manifest.objects)} objects) into "
          + ", ".join(f"{placed.server} ({placed.data})" for placed in result.placed))
    if (note := cluster_note(topology, manifest)) is not None:
        print(note)
    for placed in result.placed:
        if placed.kept is not None:
            print(f"{placed.server}: the directory it replaced is kept at {placed.kept} "
                  f"(remove it once you no longer need it)")
    print("start the cluster: ./tahiry up -d")
    return EXIT_OK


def cmd_accounts(topology: Topology, args) -> int:
    from .accounts import cmd_accounts as accounts_command  # the client driver: only here

    return accounts_command(topology, args)


def _runs_here(topology: Topology, node_id: str) -> bool:
    try:
        return place(topology, machine_addresses(), leaving_ok=True).runs_here(node_id)
    except TopologyError:
        return True    # (a file `up` would refuse: nothing to say about where it runs)


def cmd_logs(topology: Topology, args) -> int:
    path = topology.supervisor.logs / f"{args.node}.log"
    if args.node != "supervisor" and args.node not in topology.nodes:
        if not ID_PATTERN.match(args.node) or not path.is_file():
            print(f"unknown node {args.node!r} (nodes: {', '.join(topology.nodes)}, supervisor)",
                  file=sys.stderr)
            return EXIT_FAILED
        # A node an edit removed: its log stays, with its last run.
        print(f"(the topology no longer lists {args.node}: its last log)", file=sys.stderr)
    if not path.exists() and not args.follow:
        if args.node != "supervisor" and not _runs_here(topology, args.node):
            print(f"{args.node} runs on another machine ({topology.nodes[args.node].host}): "
                  f"its log is there, in {topology.supervisor.logs.name}/{args.node}.log",
                  file=sys.stderr)
            return EXIT_FAILED
        print(f"no log yet: {path}", file=sys.stderr)
        return EXIT_FAILED
    try:
        follow(path, sys.stdout, from_lines=args.lines, stop=(lambda: False) if args.follow else None)
    except KeyboardInterrupt:
        pass
    return EXIT_OK
