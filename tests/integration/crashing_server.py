"""A database server that kills itself at a chosen point of its write path.

    python tests/integration/crashing_server.py --kill-at before-replace:3 -- <nodes.server args>

It wraps the file-system calls the store makes (`os.open`, `os.write`,
`os.fsync`/`os.fdatasync`, `os.replace`/`os.rename`), counts the calls that
touch the server's data directory, and at the Nth call of the chosen
operation sends SIGKILL to its own process, as a crash would: no cleanup,
no `finally`, no flushing. Then it runs `nodes.server`'s main unchanged, so
no product code knows about the fault.

Kill point syntax: `<phase>-<operation>:<N>`

- operation: `open` (a file opened for writing), `opendir` (a directory
  opened, to fsync it), `write`, `fsync` (of a file), `fsyncdir` (of a
  directory), `replace` (`os.replace` or `os.rename`);
- phase: `before` (die before the real call), `after` (die right after it
  returned), `mid` (only for `write`: write the first half of the bytes,
  then die), or `fail` (do not die: raise `OSError(EIO)` instead of the
  call, once, to exercise the error path);
- N: 1 for the first such call since the process started.

Right before dying it writes `CRASHING_SERVER KILL <point> <path>` to
stderr, so a test can tell that the point was reached (and that the
process did not die of something else). A `fail` point writes
`CRASHING_SERVER FAIL <point> <path>` and continues.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ("open", "opendir", "write", "fsync", "fsyncdir", "replace")
# The data directory's ownership files (engine/data_owner.py), written once at
# start: not the write path under test, so they never count as a call.
OWNERSHIP_FILES = (".tahiry.owner", ".tahiry.cluster")
PHASES = ("before", "after", "mid", "fail")


@dataclass(frozen=True)
class KillPoint:
    phase: str
    operation: str
    count: int

    @classmethod
    def parse(cls, text: str) -> "KillPoint":
        try:
            head, count_text = text.rsplit(":", 1)
            phase, operation = head.split("-", 1)
            count = int(count_text)
        except ValueError:
            raise ValueError(f"bad kill point {text!r}: expected PHASE-OPERATION:N") from None
        if phase not in PHASES or operation not in OPERATIONS or count < 1:
            raise ValueError(f"bad kill point {text!r}: phase in {PHASES}, operation in "
                             f"{OPERATIONS}, N >= 1")
        if phase == "mid" and operation != "write":
            raise ValueError(f"bad kill point {text!r}: 'mid' only applies to write")
        return cls(phase, operation, count)

    def __str__(self) -> str:
        return f"{self.phase}-{self.operation}:{self.count}"


class FaultInjector:
    """Counts data-directory calls per operation and fires at the chosen one."""

    def __init__(self, point: KillPoint, data_dir: Path):
        self.point = point
        self.data_prefix = os.path.realpath(data_dir) + os.sep
        self.counts = dict.fromkeys(OPERATIONS, 0)
        self.fired = False
        self.real_write = os.write

    # -- deciding

    def _inside(self, path) -> bool:
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        name = os.path.basename(real)
        if name in OWNERSHIP_FILES or name.startswith(tuple(f".{n}." for n in OWNERSHIP_FILES)):
            return False
        return (real + os.sep).startswith(self.data_prefix)

    def _fd_inside(self, fd: int) -> bool:
        try:
            return self._inside(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return False

    def _arm(self, operation: str, target) -> str | None:
        """Count one call; the phase to act on if this is the chosen call."""
        self.counts[operation] += 1
        if self.fired or operation != self.point.operation \
                or self.counts[operation] != self.point.count:
            return None
        self.fired = True
        return self.point.phase

    def _announce(self, word: str, target) -> None:
        self.real_write(2, f"CRASHING_SERVER {word} {self.point} {target}\n".encode())

    def die(self, target) -> None:
        self._announce("KILL", target)
        os.kill(os.getpid(), signal.SIGKILL)

    def fail(self, target) -> None:
        self._announce("FAIL", target)
        raise OSError(errno.EIO, os.strerror(errno.EIO), os.fsdecode(target))

    def around(self, operation: str, target, call, mid=None):
        """Run `call()` with the fault around it when this call is the chosen one."""
        phase = self._arm(operation, target)
        if phase is None:
            return call()
        if phase == "before":
            self.die(target)
        if phase == "fail":
            self.fail(target)
        if phase == "mid":
            mid()
            self.die(target)
        result = call()
        self.die(target)  # phase "after"
        return result

    # -- installing

    def install(self) -> None:
        real_open, real_write = os.open, os.write
        real_fsync, real_fdatasync = os.fsync, os.fdatasync
        real_replace, real_rename = os.replace, os.rename
        injector = self

        def open_(path, flags, mode=0o777, *, dir_fd=None):
            if dir_fd is None and injector._inside(path):
                is_dir = bool(flags & os.O_DIRECTORY) or os.path.isdir(path)
                writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
                if is_dir or writing:
                    return injector.around("opendir" if is_dir else "open", path,
                                           lambda: real_open(path, flags, mode))
            return real_open(path, flags, mode, dir_fd=dir_fd)

        def write(fd, data):
            if not injector._fd_inside(fd):
                return real_write(fd, data)
            view = memoryview(data)
            return injector.around("write", f"fd {fd}", lambda: real_write(fd, data),
                                   mid=lambda: real_write(fd, view[:max(1, len(view) // 2)]))

        def fsync_with(real):
            def fsync(fd):
                number = fd if isinstance(fd, int) else fd.fileno()
                if not injector._fd_inside(number):
                    return real(fd)
                try:
                    operation = "fsyncdir" if stat.S_ISDIR(os.fstat(number).st_mode) else "fsync"
                except OSError:
                    operation = "fsync"
                return injector.around(operation, f"fd {number}", lambda: real(fd))
            return fsync

        def replace_with(real):
            def replace(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
                if src_dir_fd is None and dst_dir_fd is None and injector._inside(dst):
                    return injector.around("replace", dst, lambda: real(src, dst))
                return real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
            return replace

        os.open = open_
        os.write = write
        os.fsync = fsync_with(real_fsync)
        os.fdatasync = fsync_with(real_fdatasync)
        os.replace = replace_with(real_replace)
        os.rename = replace_with(real_rename)


def data_dir_of(server_args: list[str]) -> Path:
    """The --data argument of the server command line."""
    for index, arg in enumerate(server_args):
        if arg == "--data" and index + 1 < len(server_args):
            return Path(server_args[index + 1])
        if arg.startswith("--data="):
            return Path(arg.split("=", 1)[1])
    raise SystemExit("crashing_server: the server arguments need --data DIR")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" in argv:
        split = argv.index("--")
        own, server_args = argv[:split], argv[split + 1:]
    else:
        own, server_args = argv, []
    parser = argparse.ArgumentParser(prog="crashing_server",
                                     description="nodes.server that SIGKILLs itself at a write-path point")
    parser.add_argument("--kill-at", required=True, type=KillPoint.parse,
                        help="PHASE-OPERATION:N, e.g. before-replace:3, mid-write:5, fail-fsync:2")
    args = parser.parse_args(own)
    data_dir = data_dir_of(server_args)
    data_dir.mkdir(parents=True, exist_ok=True)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    FaultInjector(args.kill_at, data_dir).install()
    from nodes.server import main as server_main
    server_main(server_args)


if __name__ == "__main__":
    main()
