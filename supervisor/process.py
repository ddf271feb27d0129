"""Start and stop one child process.

Each child runs in its own session (so its own process group): stopping it
sends SIGTERM to the whole group, waits a grace period, then SIGKILLs the
group, so no grandchild survives either. Its stdout and stderr are piped
into the node's `RotatingLog`, one timestamped line at a time, in the
supervisor's one timestamp format (`2026-12-02 15:56:21.123`, local time: a
node's own `logging` stamp, `15:56:21,123`, gets the same dot). The last
error line of a run (an ERROR/CRITICAL log line, or the last line of a
traceback or of a message printed before exiting) is kept as `last_error`:
`status` shows it as the reason a node died.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time

from .logfiles import RotatingLog

_STAMPED = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d")
# Python logging's default stamp: `2026-12-02 15:56:21,123` (or ISO's T).
_LOGGING_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)[,.](\d{3})")
_ERROR_LEVEL = re.compile(r" (ERROR|CRITICAL) ")
# Lines of a traceback that are not its cause.
_TRACEBACK_NOISE = ("Traceback (most recent call last):", "During handling of the above",
                    "The above exception was the direct cause", "[supervisor] ")


def uniform_stamp(line: str) -> str:
    """A stamped node log line with the supervisor's timestamp format (see `timestamp`)."""
    return _LOGGING_STAMP.sub(r"\1 \2.\3", line, count=1)


def error_line(text: str) -> str | None:
    """What `text` (one output line of a node) says went wrong, or None if it says nothing.

    A stamped line counts when its level is ERROR or CRITICAL (from the level
    on, without the stamp); an unstamped one (stderr of a dying process) when
    it is not a traceback's frame or header: the last such line is the
    exception, or the message printed before exit.
    """
    line = text.rstrip()
    if not line.strip():
        return None
    if _STAMPED.match(line):
        level = _ERROR_LEVEL.search(line)
        return line[level.start() + 1:] if level else None
    if line[0].isspace() or line.startswith(_TRACEBACK_NOISE) or set(line) <= set("^~ "):
        return None
    return line


class ChildProcess:
    """One run of one child: created by `start`, ended by `stop` or by itself."""

    def __init__(self, argv: list[str], log: RotatingLog, env: dict[str, str] | None = None,
                 cwd: str | None = None):
        self.argv = list(argv)
        self.log = log
        self.env = env
        self.cwd = cwd
        self.process: asyncio.subprocess.Process | None = None
        self.started_at: float | None = None   # time.monotonic()
        self._pump: asyncio.Task | None = None
        self._stopped = False
        self.last_error: str | None = None  # the last error line of its output (error_line)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        process = self.process = await asyncio.create_subprocess_exec(
            *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True, env=self.env, cwd=self.cwd)
        assert process.stdout is not None  # stdout=PIPE above
        self.started_at = time.monotonic()
        self.log.write_line(f"[supervisor] started pid {process.pid}: {' '.join(self.argv)}")
        self._pump = asyncio.create_task(self._copy_output(process.stdout))

    async def _copy_output(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # a line longer than the stream limit: take what is there
                line = await stream.read(65536)
            except (ConnectionError, asyncio.CancelledError):
                return
            if not line:
                return
            text = line.decode("utf-8", "replace")
            self.last_error = error_line(text) or self.last_error
            # Nodes stamp their own log lines; stamp only the others (tracebacks, prints).
            if _STAMPED.match(text):
                text = uniform_stamp(text)
                self.log.write_raw(text.encode("utf-8", "replace") if text.endswith("\n")
                                   else (text + "\n").encode("utf-8", "replace"))
            else:
                self.log.write_line(text)

    async def wait(self) -> int:
        """Wait for the child to exit (and its output to be copied); its exit code."""
        if self.process is None:
            raise RuntimeError("wait() before start()")
        code = await self.process.wait()
        if self._pump is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._pump), 0.5)
            except TimeoutError:  # a grandchild still holds the pipe
                self._pump.cancel()
        return code

    def signal_group(self, sig: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    async def stop(self, grace_s: float) -> int | None:
        """SIGTERM the group, wait up to grace_s, then SIGKILL; returns the exit code."""
        if self.process is None:
            return None
        if self._stopped:
            return self.process.returncode
        self._stopped = True
        if self.process.returncode is None:
            self.signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace_s)
            except TimeoutError:
                self.log.write_line(f"[supervisor] pid {self.pid} ignored SIGTERM for "
                                    f"{grace_s:.1f}s: SIGKILL")
        # Even when the leader is gone, members of its group may remain.
        self.signal_group(signal.SIGKILL)
        code = await self.wait()
        self.log.write_line(f"[supervisor] pid {self.pid} stopped (exit code {code})")
        return code
