"""NodeKeeper with stand-in child processes: start, probe, restart, FATAL, stop."""

import asyncio
import logging
import os
import random
import re
import signal
import socket
import sys

import psutil

from supervisor.keeper import (
    Backoff,
    CrashLoopDetector,
    NodeKeeper,
    NodeState,
    cancel_until_done,
    describe_exit,
)
from supervisor.logfiles import RotatingLog
from supervisor.process import ChildProcess
from supervisor.topology import HealthSettings, NodeSpec, RestartSettings
from tests.conftest import REPO_ROOT, free_port, wait_until

STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")  # supervisor.logfiles.timestamp

# A stand-in node: answers `.ping;` like a real one. MODE: "ok", "crash"
# (exits at once), "ignore-term" (ignores SIGTERM and has a grandchild).
STAND_IN = r"""
import os, signal, socket, subprocess, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
print("stand-in starting", mode, flush=True)
if mode == "crash":
    sys.exit(3)
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(16)
while True:
    conn, _ = server.accept()
    conn.settimeout(2)
    try:
        data = b""
        while not data.endswith(b";"):
            chunk = conn.recv(1024)
            if not chunk:
                break
            data += chunk
        conn.sendall(b"RESULT_MESSAGE\nPONG stand-in test\nEND\n")
    except OSError:
        pass
    conn.close()
"""

FAST_HEALTH = HealthSettings(interval_ms=50, timeout_ms=200, fall=2, start_timeout_ms=5000)


def restart_policy(**overrides) -> RestartSettings:
    values = dict(backoff_initial_ms=20, backoff_max_ms=200, max_restarts=5, window_s=60,
                  reset_after_s=10, stop_grace_ms=300)
    values.update(overrides)
    return RestartSettings(**values)


def make_keeper(tmp_path, mode="ok", policy=None, health=FAST_HEALTH):
    port = free_port()
    spec = NodeSpec(id="n1", kind="server", host="127.0.0.1", port=port, data=tmp_path / "d")
    log = RotatingLog(tmp_path / "n1.log", 100_000, 1)
    logger = logging.getLogger(f"test-keeper-{port}")
    return NodeKeeper(spec, [sys.executable, "-c", STAND_IN, str(port), mode], log, health,
                      policy or restart_policy(), logger, rng=random.Random(1))


async def wait_for(predicate, what: str, timeout_s: float = 10.0):
    """`wait_until` from a coroutine: it polls in a worker thread, so that the
    event loop, where the keeper restarts its child, goes on meanwhile (a
    blocking wait on the loop would stop the keeper). The predicates only read
    the keeper's attributes: `restarts` is raised before the new child starts,
    so reading it first never pairs a new count with the old RUNNING state."""
    return await asyncio.to_thread(wait_until, predicate, timeout_s, what, 0.01)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- pure policies

def test_backoff_doubles_is_capped_and_resets():
    backoff = Backoff(0.1, 1.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.next_delay() == 0.1


def test_backoff_jitter_stays_within_bounds_and_cap():
    backoff = Backoff(0.1, 0.3, jitter=0.2, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(50)]
    assert 0.08 <= delays[0] <= 0.12
    assert all(d <= 0.3 for d in delays)
    assert len(set(delays)) > 10  # really jittered


def test_crash_loop_detector_counts_within_the_window():
    detector = CrashLoopDetector(max_restarts=2, window_s=10)
    assert not detector.record(0) and not detector.record(1)
    assert detector.record(2)  # the third within 10 s
    detector = CrashLoopDetector(max_restarts=2, window_s=10)
    assert not any(detector.record(t) for t in (0, 11, 22, 33))


# -- real children

def test_start_probe_and_stop_leaves_no_process(tmp_path):
    async def scenario():
        keeper = make_keeper(tmp_path)
        keeper.start()
        assert await keeper.wait_settled(10)
        pid = keeper.pid
        assert keeper.state is NodeState.RUNNING and psutil.pid_exists(pid)
        assert keeper.last_probe_ms is not None and keeper.snapshot()["probe_ms"] is not None
        await keeper.stop()
        assert keeper.state is NodeState.STOPPED and keeper.pid is None
        assert keeper.snapshot()["probe_ms"] is None   # a stopped node's last probe is stale
        return pid
    pid = asyncio.run(scenario())
    assert gone(pid)
    assert "stand-in starting ok" in (tmp_path / "n1.log").read_text()


def test_killed_child_is_restarted(tmp_path):
    async def scenario():
        keeper = make_keeper(tmp_path)
        keeper.start()
        assert await keeper.wait_settled(10)
        first = keeper.pid
        os.kill(first, signal.SIGKILL)
        await wait_for(lambda: keeper.restarts == 1 and keeper.state is NodeState.RUNNING,
                       "the killed child to be restarted and running")
        second = keeper.pid
        assert second != first and "code -9" in keeper.last_exit
        await keeper.stop()
        return second
    assert gone(asyncio.run(scenario()))


def test_hung_child_is_restarted_after_missed_probes(tmp_path):
    async def scenario():
        keeper = make_keeper(tmp_path)
        keeper.start()
        assert await keeper.wait_settled(10)
        first = keeper.pid
        os.kill(first, signal.SIGSTOP)  # alive but no longer answering
        await wait_for(lambda: keeper.restarts == 1 and keeper.state is NodeState.RUNNING,
                       "the hung child to be restarted and running")
        assert "missed 2 health probes" in keeper.last_exit
        await keeper.stop()
        return first
    assert gone(asyncio.run(scenario()))


def test_crash_loop_ends_in_fatal_and_manual_restart_clears_it(tmp_path):
    async def scenario():
        keeper = make_keeper(tmp_path, mode="crash", policy=restart_policy(max_restarts=2))
        keeper.start()
        assert not await keeper.wait_settled(10)
        assert keeper.state is NodeState.FATAL and keeper.restarts == 2
        assert "exited with code 3" in keeper.last_exit
        keeper.argv[-1] = "ok"  # fixed: a manual restart brings it back
        await keeper.restart()
        assert await keeper.wait_settled(10)
        await keeper.stop()
    asyncio.run(scenario())


def test_stop_kills_a_child_that_ignores_sigterm_and_its_group(tmp_path):
    async def scenario():
        keeper = make_keeper(tmp_path, mode="ignore-term")
        keeper.start()
        assert await keeper.wait_settled(10)
        group = [keeper.pid] + [c.pid for c in psutil.Process(keeper.pid).children(recursive=True)]
        assert len(group) == 2
        await keeper.stop()
        return group
    group = asyncio.run(scenario())
    for pid in group:
        try:
            psutil.Process(pid).wait(timeout=5)  # the grandchild is reparented: let init reap it
        except psutil.NoSuchProcess:
            pass
        assert gone(pid)
    assert "ignored SIGTERM" in (tmp_path / "n1.log").read_text()


def test_child_output_goes_to_a_rotating_log(tmp_path):
    async def scenario():
        log = RotatingLog(tmp_path / "x.log", max_bytes=2000, backups=2)
        child = ChildProcess([sys.executable, "-c", "for i in range(300): print('line', i)"], log)
        await child.start()
        assert await child.wait() == 0
        log.close()
    asyncio.run(scenario())
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["x.log", "x.log.1", "x.log.2"]  # bounded: older ones dropped
    assert all(p.stat().st_size < 2100 for p in tmp_path.iterdir())
    last = (tmp_path / "x.log").read_text().splitlines()[-1]
    assert last.endswith("line 299") and last[:4].isdigit()  # timestamped


def test_stopping_a_task_that_swallowed_its_cancellation_still_ends_it():
    """Python 3.11's wait_for can swallow a cancellation (the keeper's probes run under it):
    stopping must cancel again until the task has ended, not wait for it forever."""

    async def scenario() -> list[str]:
        seen: list[str] = []

        async def stubborn() -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                seen.append("swallowed")          # as a racing wait_for may do
            while True:
                await asyncio.sleep(0.01)

        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        await asyncio.wait_for(cancel_until_done(task, recheck_s=0.05), timeout=5)
        seen.append("cancelled" if task.cancelled() else "still running")
        return seen

    assert asyncio.run(scenario()) == ["swallowed", "cancelled"]


def test_manual_restarts_are_counted_apart_from_crashes(tmp_path):
    async def scenario():
        keeper = make_keeper(tmp_path)
        keeper.start()
        assert await keeper.wait_settled(10)
        await keeper.restart()
        assert await keeper.wait_settled(10)
        snapshot = keeper.snapshot()
        assert (snapshot["restarts"], snapshot["manual_restarts"]) == (0, 1)
        os.kill(keeper.pid, signal.SIGKILL)
        await wait_for(lambda: keeper.restarts == 1 and keeper.state is NodeState.RUNNING,
                       "the killed child to be restarted")
        assert keeper.manual_restarts == 1
        assert keeper.last_exit == "killed by SIGKILL (exit code -9)"
        await keeper.stop()
    asyncio.run(scenario())


def test_a_node_that_cannot_bind_says_so_in_one_line(tmp_path):
    """Bug: a real server on a port another program holds went FATAL with the
    cause only as a traceback in its log."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", free_port()))
    holder.listen(1)
    port = holder.getsockname()[1]
    spec = NodeSpec(id="m3", kind="server", host="127.0.0.1", port=port, data=tmp_path / "m3")
    argv = [sys.executable, "-m", "nodes.server", "--id", "m3", "--host", "127.0.0.1",
            "--port", str(port), "--data", str(tmp_path / "m3"), "--cluster", "test"]
    log = RotatingLog(tmp_path / "m3.log", 1_000_000, 1)

    async def scenario():
        keeper = NodeKeeper(spec, argv, log, FAST_HEALTH, restart_policy(max_restarts=1),
                            logging.getLogger("test-keeper-bind"),
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=str(tmp_path))
        keeper.start()
        assert not await keeper.wait_settled(60)
        return keeper
    try:
        keeper = asyncio.run(scenario())
    finally:
        holder.close()
    assert keeper.state is NodeState.FATAL
    assert keeper.last_exit.startswith(
        f"exited with code 1 before answering its probe: cannot listen on 127.0.0.1:{port}: "
        f"address already in use, held by pid {os.getpid()} (")
    assert "\n" not in keeper.last_exit
    # the node's own lines are stamped as the supervisor stamps its lines
    lines = (tmp_path / "m3.log").read_text().splitlines()
    assert any(" m3 INFO " in line for line in lines)
    assert all(STAMP.match(line) for line in lines), lines[:5]


def test_describe_exit():
    assert describe_exit(-15, "ERROR x: y", "h:1") == "killed by SIGTERM (exit code -15)"
    assert describe_exit(0, "ERROR x: y", "h:1") == "exited with code 0"
    assert describe_exit(2, None, "h:1", when=" before answering its probe") == (
        "exited with code 2 before answering its probe")
    assert describe_exit(1, "KeyError: 'x'", "h:1") == "exited with code 1: KeyError: 'x'"
    assert describe_exit(1, "OSError: [Errno 98] error while attempting to bind on address "
                            "('h', 1): address already in use", "h:1") == (
        "exited with code 1: cannot listen on h:1: address already in use")
    assert len(describe_exit(1, "E" * 1000, "h:1")) < 250


def test_stopping_a_remote_nodes_probe_loop_ends_even_if_its_probe_swallowed_the_cancel(
        tmp_path, monkeypatch):
    """supervisor/remote.py: `down` stops the probe loop of each node another machine
    runs. A probe finishing just as it is cancelled (wait_for, Python 3.11) must not
    leave `down` waiting forever (a supervisor seen alive 10 minutes after its `down`)."""
    from supervisor import remote

    swallowed: list[bool] = []

    async def probe_that_swallows(*args, **kwargs):
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            if swallowed:
                raise
            swallowed.append(True)   # the one cancel that came as the probe completed
        raise ConnectionRefusedError("not there")

    monkeypatch.setattr(remote, "probe_response", probe_that_swallows)
    spec = NodeSpec(id="m9", kind="server", host="127.0.0.1", port=free_port(),
                    data=tmp_path / "m9")

    async def scenario() -> bool:
        node = remote.RemoteNode(spec, FAST_HEALTH, secret=None)
        node.start()
        await asyncio.sleep(0.05)   # inside its first probe
        task = node._task
        # (Not wait_for: its own cancellation at the timeout would end the loop for it.)
        stopping = asyncio.ensure_future(node.stop())
        done, _ = await asyncio.wait({stopping}, timeout=5)
        if not done:
            stopping.cancel()
        return stopping in done and task is not None and task.done()

    assert asyncio.run(scenario()) and swallowed


def test_a_probe_that_times_out_says_so_in_the_log(tmp_path, caplog):
    """Bug: a frozen node's missed probes were logged `probe failed (1/3): ` with nothing
    after the colon (a TimeoutError has no text; `error or ...` never chose the other)."""
    caplog.set_level(logging.WARNING)

    async def scenario():
        keeper = make_keeper(tmp_path)
        keeper.start()
        assert await keeper.wait_settled(10)
        os.kill(keeper.pid, signal.SIGSTOP)  # alive but no longer answering
        await wait_for(lambda: keeper.restarts == 1, "the hung child to be restarted")
        await keeper.stop()
    asyncio.run(scenario())
    failures = [r.getMessage() for r in caplog.records if "probe failed" in r.getMessage()]
    assert failures, caplog.text
    for message in failures:
        assert message.endswith(f"no answer within {FAST_HEALTH.timeout_ms} ms"), message


def test_a_node_that_stops_answering_is_shown_failing_not_with_its_last_good_probe(tmp_path):
    """Bug: a frozen node (SIGSTOP) stayed RUNNING with its last answered probe's latency
    while its probes failed, and still RUNNING for the stop grace after the last one
    (SIGTERM waits on a stopped process): `status` showed a healthy node for seconds."""
    health = HealthSettings(interval_ms=100, timeout_ms=200, fall=3, start_timeout_ms=5000)

    async def scenario():
        keeper = make_keeper(tmp_path, policy=restart_policy(stop_grace_ms=1500), health=health)
        keeper.start()
        assert await keeper.wait_settled(10)
        assert keeper.snapshot().get("probe_failures", 0) == 0
        first = keeper.pid
        os.kill(first, signal.SIGSTOP)  # alive but no longer answering
        await wait_for(lambda: keeper.snapshot().get("probe_failures", 0) >= 1,
                       "the missed probes to show in the node's row")
        shown = keeper.snapshot()
        assert shown["state"] == "RUNNING" and shown["pid"] == first
        assert shown["probe_ms"] is None, shown          # not the last good probe
        assert shown["probe_fall"] == 3
        assert shown["probe_error"] == "no answer within 200 ms"
        await wait_for(lambda: keeper.snapshot()["state"] != "RUNNING",
                       "the node to leave RUNNING once it missed its probes")
        shown = keeper.snapshot()
        assert not gone(first), "left RUNNING only once the frozen child was gone"
        assert shown["state"] == "BACKOFF" and shown["probe_ms"] is None
        assert shown["last_exit"] == "missed 3 health probes in a row"
        await wait_for(lambda: keeper.restarts == 1 and keeper.state is NodeState.RUNNING,
                       "the hung child to be restarted and running")
        assert keeper.snapshot()["probe_failures"] == 0 and keeper.snapshot()["probe_ms"]
        await keeper.stop()
        return first
    assert gone(asyncio.run(scenario()))
