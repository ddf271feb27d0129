"""Keep one node alive: health probes, restarts with backoff, FATAL on crash loops.

A `NodeKeeper` owns the successive `ChildProcess`es of one node. It starts
the child, waits until it answers the `.ping;` probe (STARTING -> RUNNING),
then probes it every interval; when the child exits or misses `fall` probes
in a row it is restarted after an exponential, capped, jittered delay
(BACKOFF). The delay resets once a run has lasted `reset_after_s`; more than
`max_restarts` restarts within `window_s` marks the node FATAL and it is
left stopped until a manual `restart`.

`restarts` counts the keeper's own restarts (after a crash or missed
probes), `manual_restarts` the operator's (`restart NODE`): a node restarted
by hand ten times has not crashed. `last_exit` says in one line why the last
run ended: the exit code or the signal, and the last error line of the
node's output (`describe_exit`; a port another program holds is named so,
with its holder when visible).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import signal
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nodes.protocol import ProtocolError, Response, ResponseDecoder, auth_request

from .logfiles import RotatingLog
from .port_check import port_holder
from .process import ChildProcess
from .topology import HealthSettings, NodeSpec, RestartSettings


class NodeState(enum.StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"
    FATAL = "FATAL"
    STOPPED = "STOPPED"


class Backoff:
    """Exponential delays: initial, doubling, capped, with +-jitter; `reset()` starts over."""

    def __init__(self, initial_s: float, max_s: float, jitter: float = 0.2,
                 rng: random.Random | None = None):
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter = jitter
        self.rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        base = min(self.max_s, self.initial_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        spread = base * self.jitter
        return min(self.max_s, max(0.0, base + self.rng.uniform(-spread, spread)))

    def reset(self) -> None:
        self.attempt = 0


class CrashLoopDetector:
    """True from `record` once more than max_restarts happened within window_s."""

    def __init__(self, max_restarts: int, window_s: float):
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.times: deque[float] = deque()

    def record(self, now: float) -> bool:
        self.times.append(now)
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()
        return len(self.times) > self.max_restarts

    def clear(self) -> None:
        self.times.clear()


async def probe_response(host: str, port: int, timeout_s: float, request: bytes = b".ping;",
                         secret: str | None = None,
                         tls: ssl.SSLContext | None = None) -> Response:
    """Send an admin request, return its decoded response.

    With a secret, `.auth <secret>;` goes first (docs/SECURITY.md) and its
    answer must be a success; with `tls` (nodes/protocol/tls.py
    `client_context`), over TLS, the node's certificate checked. Raises OSError (or asyncio.TimeoutError) when
    the node does not answer in time, breaks the wire protocol or refuses
    the secret.
    """
    async def exchange() -> Response:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=host if tls is not None else None)
        try:
            writer.write((auth_request(secret) if secret else b"") + request)
            await writer.drain()
            decoder = ResponseDecoder()
            responses: list[Response] = []
            wanted = 2 if secret else 1
            while len(responses) < wanted:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                try:
                    responses += decoder.feed(chunk)
                except ProtocolError as error:
                    raise ConnectionError(f"not a wire response: {error}") from None
            if secret and responses and not responses[0].ok:
                raise ConnectionError(f"secret refused: {responses[0].message.strip()[-120:]}")
            if len(responses) < wanted:
                raise ConnectionError("connection closed before END")
            return responses[-1]
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
    return await asyncio.wait_for(exchange(), timeout_s)


async def probe(host: str, port: int, timeout_s: float, request: bytes = b".ping;",
                secret: str | None = None, tls: ssl.SSLContext | None = None) -> str:
    """`probe_response`, as the response's text (RESULT_MESSAGE ... END)."""
    response = await probe_response(host, port, timeout_s, request, secret, tls)
    return response.raw.decode("utf-8", "replace")


async def ping(host: str, port: int, timeout_s: float, secret: str | None = None,
               tls: ssl.SSLContext | None = None) -> float:
    """Round trip of the health probe in ms; raises OSError if it failed."""
    started = time.perf_counter()
    answer = await probe_response(host, port, timeout_s, secret=secret, tls=tls)
    if not answer.message.startswith("PONG"):
        raise ConnectionError(f"unexpected answer to .ping: {answer.message.strip()[:80]!r}")
    return (time.perf_counter() - started) * 1000


def probe_error_text(error: BaseException, health: HealthSettings) -> str:
    """Why a probe failed, never empty (a TimeoutError carries no text)."""
    if isinstance(error, TimeoutError):
        return f"no answer within {health.timeout_ms} ms"
    return str(error) or type(error).__name__


async def cancel_until_done(task: asyncio.Task, recheck_s: float = 0.5) -> None:
    """Cancel `task` and wait until it has ended, cancelling again if it goes on.

    Python 3.11's `asyncio.wait_for` can swallow a cancellation that arrives
    just as the awaited operation completes (the keeper's health probes run
    under it): the task then carries on, and a plain `await task` after one
    `cancel()` waits forever -- a `down` that never stopped the servers.
    """
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=recheck_s)
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]  # an error of the loop itself: not hidden


SHOWN_ERROR_CHARS = 200  # of a node's last error line, in `last_exit`
_PORT_TAKEN = ("address already in use", "errno 98", "eaddrinuse")


def describe_exit(code: int, last_error: str | None, address: str,
                  holder: str | None = None, when: str = "") -> str:
    """One line: how a run ended (`exited with code 1` / `killed by SIGKILL (exit code -9)`,
    then `when`, e.g. " before answering its probe") and, after an error exit, what the
    node said last (a taken port said plainly)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name} (exit code {code}){when}"
    text = f"exited with code {code}{when}"
    if last_error is None or code == 0:
        return text
    if is_port_taken(last_error):
        held = f", held by {holder}" if holder else ""
        return f"{text}: cannot listen on {address}: address already in use{held}"
    if len(last_error) > SHOWN_ERROR_CHARS:
        last_error = last_error[:SHOWN_ERROR_CHARS - 3] + "..."
    return f"{text}: {last_error}"


def is_port_taken(error_line: str) -> bool:
    lowered = error_line.lower()
    return any(sign in lowered for sign in _PORT_TAKEN)


@dataclass
class NodeHooks:
    """What the cluster does around a node's (re)start; every hook is optional."""

    before_start: Callable[[NodeSpec, bool], Awaitable[None]] | None = None  # (spec, is_restart)
    on_running: Callable[[NodeSpec, bool], Awaitable[None]] | None = None
    on_state: Callable[[NodeSpec, NodeState], None] | None = None


class NodeKeeper:
    """Runs one node and keeps it alive until `stop()`."""

    def __init__(self, spec: NodeSpec, argv: list[str], log: RotatingLog,
                 health: HealthSettings, restart: RestartSettings, logger: logging.Logger,
                 hooks: NodeHooks | None = None, env: dict[str, str] | None = None,
                 cwd: str | None = None, rng: random.Random | None = None,
                 secret: str | None = None, tls: ssl.SSLContext | None = None):
        self.spec = spec
        self.secret = secret  # presented by the health probe (`.auth` first)
        self.tls = tls        # the probe's TLS context (the topology's `tls:`)
        self.argv = argv
        self.log = log
        self.health = health
        self.policy = restart
        self.logger = logger
        self.hooks = hooks or NodeHooks()
        self.env = env
        self.cwd = cwd
        self.backoff = Backoff(restart.backoff_initial_ms / 1000, restart.backoff_max_ms / 1000,
                               rng=rng)
        self.crash_loop = CrashLoopDetector(restart.max_restarts, restart.window_s)
        self.state = NodeState.STOPPED
        self.child: ChildProcess | None = None
        self.restarts = 0          # by the keeper, after a crash or missed probes
        self.manual_restarts = 0   # asked by the operator (`restart NODE`)
        self.last_probe_ms: float | None = None
        # Health probes failed in a row while RUNNING, and why the last one failed: a
        # node that stopped answering is shown so, not with its last good probe.
        self.probe_failures = 0
        self.probe_error: str | None = None
        self.last_exit: str | None = None
        self.running_since: float | None = None
        self.running_event = asyncio.Event()   # set while RUNNING
        self.settled_event = asyncio.Event()   # set once RUNNING or FATAL (or stopped)
        self._task: asyncio.Task | None = None

    # -- public

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child and self.child.running else None

    @property
    def uptime_s(self) -> float | None:
        if self.state is NodeState.RUNNING and self.running_since is not None:
            return time.monotonic() - self.running_since
        return None

    def start(self, is_restart: bool = False) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keep_alive(is_restart),
                                             name=f"keeper-{self.spec.id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_until_done(task)
        await self._stop_child()
        self._set_state(NodeState.STOPPED)
        self.settled_event.set()

    async def restart(self) -> None:
        """Manual restart: stop now, forget the crash history (also leaves FATAL), start."""
        await self.stop()
        self.crash_loop.clear()
        self.backoff.reset()
        self.manual_restarts += 1
        self.settled_event.clear()
        self.start(is_restart=True)

    async def wait_settled(self, timeout_s: float) -> bool:
        """Wait until RUNNING or FATAL; True if RUNNING."""
        try:
            await asyncio.wait_for(self.settled_event.wait(), timeout_s)
        except TimeoutError:
            pass
        return self.state is NodeState.RUNNING

    def snapshot(self) -> dict:
        state = self.state
        if state is NodeState.RUNNING and self.pid is None:
            state = NodeState.BACKOFF  # died a moment ago; the loop is about to notice
        failing = self.probe_failures if state is NodeState.RUNNING else 0
        return {"node": self.spec.id, "kind": self.spec.kind, "address": self.spec.address,
                "pid": self.pid, "state": state.value,
                "uptime_s": round(self.uptime_s, 1) if self.uptime_s is not None else None,
                "restarts": self.restarts, "manual_restarts": self.manual_restarts,
                # (A node not running, or no longer answering, has no probe to show:
                # its last answered one is stale.)
                "probe_ms": round(self.last_probe_ms, 2)
                if self.last_probe_ms is not None and state is NodeState.RUNNING
                and not failing else None,
                "probe_failures": failing, "probe_fall": self.health.fall,
                "probe_error": self.probe_error if failing else None,
                "last_exit": self.last_exit}

    # -- the loop

    async def _keep_alive(self, is_restart: bool) -> None:
        while True:
            reason = await self._one_run(is_restart)
            # Not RUNNING from here on: a child that missed its probes is still there
            # while it is stopped (up to the stop grace), and no longer serves.
            self.last_exit = reason
            self._set_state(NodeState.BACKOFF)
            await self._stop_child()
            ran_for = (time.monotonic() - self.running_since) if self.running_since else 0.0
            self.running_since = None
            if ran_for >= self.policy.reset_after_s:
                self.backoff.reset()
            if self.crash_loop.record(time.monotonic()):
                self.logger.error("%s: %s; more than %d restarts within %ss: FATAL, "
                                  "not restarted (use `restart %s`)", self.spec.id, reason,
                                  self.policy.max_restarts, self.policy.window_s, self.spec.id)
                self._set_state(NodeState.FATAL)
                self.settled_event.set()
                return
            delay = self.backoff.next_delay()
            self.logger.warning("%s: %s; restarting in %.0f ms", self.spec.id, reason,
                                delay * 1000)
            self._set_state(NodeState.BACKOFF)
            await asyncio.sleep(delay)
            self.restarts += 1
            is_restart = True

    async def _one_run(self, is_restart: bool) -> str:
        """Start the child and watch it; returns why this run ended."""
        self._set_state(NodeState.STARTING)
        self.probe_failures, self.probe_error = 0, None
        if self.hooks.before_start:
            try:
                await self.hooks.before_start(self.spec, is_restart)
            except Exception as error:  # a failed catch-up must not stop the node forever
                self.logger.error("%s: preparing the start failed: %s", self.spec.id, error)
        self.child = ChildProcess(self.argv, self.log, env=self.env, cwd=self.cwd)
        try:
            await self.child.start()
        except OSError as error:
            return f"could not start: {error}"
        exited = asyncio.create_task(self.child.wait())
        try:
            if not await self._wait_ready(exited):
                if exited.done():
                    return await self._exit_reason(exited.result(), " before answering its probe")
                return (f"did not answer its probe within "
                        f"{self.health.start_timeout_ms} ms")
            self.running_since = time.monotonic()
            self._set_state(NodeState.RUNNING)
            self.logger.info("%s: RUNNING (pid %s, %s)", self.spec.id, self.child.pid,
                             self.spec.address)
            if self.hooks.on_running:
                try:
                    await self.hooks.on_running(self.spec, is_restart)
                except Exception as error:
                    self.logger.error("%s: after-start step failed: %s", self.spec.id, error)
            self.settled_event.set()
            return await self._watch(exited)
        finally:
            if not exited.done():
                exited.cancel()

    async def _wait_ready(self, exited: asyncio.Task) -> bool:
        deadline = time.monotonic() + self.health.start_timeout_ms / 1000
        while time.monotonic() < deadline and not exited.done():
            try:
                self.last_probe_ms = await ping(self.spec.host, self.spec.port,
                                                self.health.timeout_ms / 1000, self.secret,
                                                self.tls)
                return True
            except (TimeoutError, OSError):
                pass
            # Probe often while starting: a node is usually listening ~0.1 s after spawn.
            await asyncio.wait({exited}, timeout=0.02)
        return False

    async def _watch(self, exited: asyncio.Task) -> str:
        failures = 0
        interval = self.health.interval_ms / 1000
        while True:
            await asyncio.wait({exited}, timeout=interval)
            if exited.done():
                return await self._exit_reason(exited.result())
            try:
                self.last_probe_ms = await ping(self.spec.host, self.spec.port,
                                                self.health.timeout_ms / 1000, self.secret,
                                                self.tls)
                failures = self.probe_failures = 0
            except (TimeoutError, OSError) as error:
                if exited.done():
                    return await self._exit_reason(exited.result())
                failures += 1
                self.probe_failures, self.probe_error = failures, probe_error_text(error,
                                                                                   self.health)
                self.logger.warning("%s: probe failed (%d/%d): %s", self.spec.id, failures,
                                    self.health.fall, self.probe_error)
                if failures >= self.health.fall:
                    return f"missed {failures} health probes in a row"

    async def _exit_reason(self, code: int, when: str = "") -> str:
        """`describe_exit` of the child that just ended (`when` follows the exit code)."""
        last_error = self.child.last_error if self.child is not None else None
        holder = None
        if code > 0 and last_error is not None and is_port_taken(last_error):
            holder = await asyncio.to_thread(port_holder, self.spec.port)  # reads /proc
        return describe_exit(code, last_error, self.spec.address, holder, when)

    async def _stop_child(self) -> None:
        child = self.child
        if child is not None and child.process is not None:
            await child.stop(self.policy.stop_grace_ms / 1000)
        self.running_event.clear()

    def _set_state(self, state: NodeState) -> None:
        self.state = state
        if state is NodeState.RUNNING:
            self.running_event.set()
        else:
            self.running_event.clear()
        if self.hooks.on_state:
            self.hooks.on_state(self.spec, state)
