"""Log files: one per node plus the supervisor's, timestamped and size-bounded.

`RotatingLog` appends timestamped lines to `logs/<name>.log`; when the file
grows past `max_bytes` it becomes `<name>.log.1` (older ones shift up to
`.log.<backups>`, the oldest is dropped). `supervisor_logger` gives the
supervisor a `logging.Logger` writing through the same kind of file.

Logger names: every supervisor module logs under its own name
(`logging.getLogger(__name__)`, e.g. `supervisor.replication`), and the
run's logger is the package's, `supervisor`, so those module loggers reach
the run's file through propagation. One supervisor run configures it once;
a second configuration in the same process (tests, `down` after `up`)
replaces its handlers instead of adding more, and no logger is created
under a new name per call (the logging module keeps every logger it ever
made).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path


def timestamp(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"


class RotatingLog:
    """Append-only, size-bounded log file with numbered backups."""

    def __init__(self, path: Path, max_bytes: int = 5_000_000, backups: int = 3):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")

    def write_line(self, text: str) -> None:
        self.write_raw(f"{timestamp()} {text.rstrip(chr(10))}\n".encode("utf-8", "replace"))

    def write_raw(self, data: bytes) -> None:
        if self._file.closed:
            return
        self._file.write(data)
        self._file.flush()  # so `logs -f` in another terminal sees the line at once
        if self._file.tell() >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        if self.backups > 0:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self._file = open(self.path, "ab")

    def close(self) -> None:
        self._file.close()


class _RotatingLogHandler(logging.Handler):
    def __init__(self, log: RotatingLog):
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.log.write_line(self.format(record))
        except Exception:  # a log write must never take the supervisor down
            self.handleError(record)

    def close(self) -> None:
        self.log.close()
        super().close()


SUPERVISOR_LOGGER = "supervisor"  # the package's logger: supervisor.* module loggers propagate to it


def supervisor_logger(log_dir: Path, max_bytes: int, backups: int, echo: bool,
                      name: str = SUPERVISOR_LOGGER) -> logging.Logger:
    """The run's logger, writing to log_dir/supervisor.log, and to stderr when `echo`.

    The same logger every call: its previous handlers (an earlier run in this
    process) are closed and replaced, never duplicated.
    """
    logger = logging.getLogger(name)
    close_logger(logger)
    logger.propagate = False  # the run's lines go to its own file, not the root's handlers
    logger.setLevel(logging.INFO)
    handler = _RotatingLogHandler(RotatingLog(Path(log_dir) / "supervisor.log", max_bytes, backups))
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    if echo:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("supervisor: %(message)s"))
        logger.addHandler(console)
    return logger


def close_logger(logger: logging.Logger) -> None:
    """End a run's logging: its handlers closed and removed, and the logger
    back to the logging defaults (the `supervisor.*` module loggers of a
    replicator used without a run propagate to the root again)."""
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def follow(path: Path, out, from_lines: int = 20, poll_s: float = 0.2, stop=None) -> None:
    """Print the last lines of a log file, then (if `stop` is given) keep printing
    new lines until stop() is true, surviving rotation."""
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()[-from_lines:]
    except OSError:
        lines = []
    for line in lines:
        out.write(line + "\n")
    out.flush()
    if stop is None:
        return
    position = path.stat().st_size if path.exists() else 0
    identity = _identity(path)
    while not stop():
        time.sleep(poll_s)
        if _identity(path) != identity:  # rotated: start the new file from its beginning
            identity, position = _identity(path), 0
        try:
            with open(path, "rb") as handle:
                handle.seek(position)
                data = handle.read()
                position = handle.tell()
        except OSError:
            continue
        if data:
            out.write(data.decode("utf-8", "replace"))
            out.flush()


def _identity(path: Path):
    try:
        stat = path.stat()
        return (stat.st_dev, stat.st_ino)
    except OSError:
        return None
