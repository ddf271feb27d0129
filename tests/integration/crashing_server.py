"""A database server that kills itself (or stalls) at a chosen point of its write path.

    python tests/integration/crashing_server.py --kill-at before-replace:3 -- <nodes.server args>

It wraps the file-system calls the store makes (`os.open` and the built-in
`open` for writing, `os.write`, `os.fsync`/`os.fdatasync`,
`os.replace`/`os.rename`, `os.unlink`/`os.remove`, and truncation), counts
the calls that touch the server's data directory, and at the Nth call of the
chosen operation sends SIGKILL to its own process, as a crash would: no
cleanup, no `finally`, no flushing. Then it runs `nodes.server`'s main
unchanged, so no product code knows about the fault. Calls made while the
server starts (recovery, the format upgrade) count like any other: a point
may kill the server before it is ready.

Kill point syntax: `<phase>-<operation>:<N>[@<scope>]`

- operation: `open` (a file opened for writing), `opendir` (a directory
  opened, to fsync it), `write`, `fsync` (of a file, `fsync` or
  `fdatasync`), `fsyncdir` (of a directory), `replace` (`os.replace` or
  `os.rename`), `unlink` (`os.unlink` or `os.remove`), `truncate`
  (`os.truncate`, `os.ftruncate`, or a file object's `truncate`);
- phase: `before` (die before the real call), `after` (die right after it
  returned), `mid` (only for `write`: write the first half of the bytes,
  then die), `fail` (do not die: raise `OSError(EIO)` instead of the
  call, once, to exercise the error path), or `stall` (do not die: wait
  `--stall-s` seconds, then make the call, as a disk that hangs a while);
- N: 1 for the first such call since the process started (within the scope,
  when one is given);
- scope (optional): count only the calls made by one part of the store,
  told by the code on the call stack (innermost first, see SCOPE_FRAMES):
  `journal` (a table's journal append, engine/journal.append_entry and
  append_line, its cut-back on a failed write, and the entry's fsync),
  `checkpoint` (Store.checkpoint: new snapshot, journal removed, folder
  fsynced), `recover` (engine/maintenance.recover at start: temp files
  removed, torn journal tails cut), `upgrade` (the format 1 -> 2
  rewrite and its marker), `commit` (the rest of a group commit: whole
  documents, folder fsyncs), `other`.

Several points joined with `+` are all armed, e.g.
`fail-write:1@journal+before-truncate:1@journal`: an append whose write
fails, killed before it is cut back.

Right before dying it writes `CRASHING_SERVER KILL <point> [<scope>] <path>`
to stderr (`<point>` is the one that fired), so a test can tell that the
point was reached, where, and that the process did not die of something
else. A `fail` point writes `CRASHING_SERVER FAIL <point> [<scope>] <path>`
and continues; a `stall` point writes `CRASHING_SERVER STALL ...` before it waits.

(A sweep with small tables passes the server `--checkpoint-bytes` and
`--checkpoint-ratio` so that it checkpoints every few statements.)
"""

from __future__ import annotations

import argparse
import builtins
import errno
import os
import signal
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ("open", "opendir", "write", "fsync", "fsyncdir", "replace", "unlink", "truncate")
# The data directory's ownership files (engine/storage/data_owner.py), written once at
# start: not the write path under test, so they never count as a call.
OWNERSHIP_FILES = (".tahiry.owner", ".tahiry.cluster")
PHASES = ("before", "after", "mid", "fail", "stall")
# Which part of the store a call belongs to: the innermost of these frames on
# the call stack ((file under the repository, function) -> scope). Innermost
# first matters: the upgrade runs inside `recover`, a checkpoint may run inside
# a commit, and the journal append inside the group commit's install.
SCOPE_FRAMES = {
    ("engine/storage/maintenance.py", "upgrade"): "upgrade",
    ("engine/storage/maintenance.py", "_upgrade_file"): "upgrade",
    ("engine/storage/maintenance.py", "recover"): "recover",
    ("engine/storage/store.py", "checkpoint"): "checkpoint",
    ("engine/storage/journal.py", "append_line"): "journal",
    ("engine/storage/journal.py", "append_entry"): "journal",
    ("engine/storage/journal.py", "sync"): "journal",
    ("engine/storage/group_commit.py", "install"): "commit",
    ("engine/storage/group_commit.py", "prepare"): "commit",
}
SCOPES = ("journal", "checkpoint", "recover", "upgrade", "commit", "other")
_SCOPE_BY_FUNCTION: dict[str, list[tuple[str, str]]] = {}
for (_file, _function), _scope in SCOPE_FRAMES.items():
    _SCOPE_BY_FUNCTION.setdefault(_function, []).append((os.sep + _file, _scope))


@dataclass(frozen=True)
class KillPoint:
    phase: str
    operation: str
    count: int
    scope: str | None = None

    @classmethod
    def parse(cls, text: str) -> KillPoint:
        head, _, scope = text.partition("@")
        try:
            head, count_text = head.rsplit(":", 1)
            phase, operation = head.split("-", 1)
            count = int(count_text)
        except ValueError:
            raise ValueError(f"bad kill point {text!r}: expected PHASE-OPERATION:N[@SCOPE]") from None
        if phase not in PHASES or operation not in OPERATIONS or count < 1:
            raise ValueError(f"bad kill point {text!r}: phase in {PHASES}, operation in "
                             f"{OPERATIONS}, N >= 1")
        if phase == "mid" and operation != "write":
            raise ValueError(f"bad kill point {text!r}: 'mid' only applies to write")
        if "@" in text and scope not in SCOPES:
            raise ValueError(f"bad kill point {text!r}: scope in {SCOPES}")
        return cls(phase, operation, count, scope or None)

    @classmethod
    def parse_all(cls, text: str) -> list[KillPoint]:
        """`point+point+...`: every point armed at once."""
        return [cls.parse(part) for part in text.split("+")]

    def __str__(self) -> str:
        where = f"@{self.scope}" if self.scope else ""
        return f"{self.phase}-{self.operation}:{self.count}{where}"


def call_scope() -> str:
    """The part of the store making the current call (SCOPE_FRAMES), from the call stack."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        for file, scope in _SCOPE_BY_FUNCTION.get(code.co_name, ()):
            if code.co_filename.endswith(file):
                return scope
        frame = frame.f_back
    return "other"


class FaultInjector:
    """Counts data-directory calls per operation (and scope) and fires at the chosen ones."""

    def __init__(self, points: list[KillPoint] | KillPoint, data_dir: Path, stall_s: float = 2.0):
        self.stall_s = stall_s
        self.points = [points] if isinstance(points, KillPoint) else list(points)
        self.data_prefix = os.path.realpath(data_dir) + os.sep
        self.counts: dict[tuple[str, str | None], int] = {}
        self.fired: set[KillPoint] = set()
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

    def _fd_path(self, fd: int) -> str | None:
        """The path of a descriptor inside the data directory (None: elsewhere)."""
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
        return path if self._inside(path) else None

    def _arm(self, operation: str, scope: str) -> KillPoint | None:
        """Count one call; the point to act on if this is a chosen call."""
        counts = self.counts
        for key in ((operation, None), (operation, scope)):
            counts[key] = counts.get(key, 0) + 1
        for point in self.points:
            if point in self.fired or point.operation != operation \
                    or point.scope not in (None, scope) \
                    or counts[(operation, point.scope)] != point.count:
                continue
            self.fired.add(point)
            return point
        return None

    def _announce(self, word: str, point: KillPoint, scope: str, target) -> None:
        self.real_write(2, f"CRASHING_SERVER {word} {point} [{scope}] {target}\n".encode())

    def die(self, point: KillPoint, scope: str, target) -> None:
        self._announce("KILL", point, scope, target)
        os.kill(os.getpid(), signal.SIGKILL)

    def fail(self, point: KillPoint, scope: str, target) -> None:
        self._announce("FAIL", point, scope, target)
        raise OSError(errno.EIO, os.strerror(errno.EIO), os.fsdecode(target))

    def around(self, operation: str, target, call, mid=None):
        """Run `call()` with the fault around it when this call is a chosen one."""
        scope = call_scope()
        point = self._arm(operation, scope)
        if point is None:
            return call()
        if point.phase == "before":
            self.die(point, scope, target)
        if point.phase == "fail":
            self.fail(point, scope, target)
        if point.phase == "mid":
            mid()
            self.die(point, scope, target)
        if point.phase == "stall":
            self._announce("STALL", point, scope, target)
            time.sleep(self.stall_s)   # the thread making the call waits, as on a hung disk
            return call()
        result = call()
        self.die(point, scope, target)  # phase "after"
        return result

    # -- installing

    def install(self) -> None:
        real_open, real_write = os.open, os.write
        real_fsync, real_fdatasync = os.fsync, os.fdatasync
        real_replace, real_rename = os.replace, os.rename
        real_unlink, real_remove = os.unlink, os.remove
        real_truncate, real_ftruncate = os.truncate, os.ftruncate
        real_builtin_open = builtins.open
        injector = self

        def open_(path, flags, mode=0o777, *, dir_fd=None):
            if dir_fd is None and injector._inside(path):
                is_dir = bool(flags & os.O_DIRECTORY) or os.path.isdir(path)
                writing = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
                if is_dir or writing:
                    return injector.around("opendir" if is_dir else "open", path,
                                           lambda: real_open(path, flags, mode))
            return real_open(path, flags, mode, dir_fd=dir_fd)

        def builtin_open(file, mode="r", *args, **kwargs):
            # A file object opened for writing (the journal's torn-tail cut uses
            # one): its opening counts as `open`, its truncate as `truncate`.
            if isinstance(file, (str, bytes, os.PathLike)) and isinstance(mode, str) \
                    and any(flag in mode for flag in "wax+") and injector._inside(file):
                handle = injector.around("open", file,
                                         lambda: real_builtin_open(file, mode, *args, **kwargs))
                return TracedFile(handle, injector, os.fsdecode(file))
            return real_builtin_open(file, mode, *args, **kwargs)

        def write(fd, data):
            path = injector._fd_path(fd)
            if path is None:
                return real_write(fd, data)
            view = memoryview(data)
            return injector.around("write", path, lambda: real_write(fd, data),
                                   mid=lambda: real_write(fd, view[:max(1, len(view) // 2)]))

        def fsync_with(real):
            def fsync(fd):
                number = fd if isinstance(fd, int) else fd.fileno()
                path = injector._fd_path(number)
                if path is None:
                    return real(fd)
                try:
                    operation = "fsyncdir" if stat.S_ISDIR(os.fstat(number).st_mode) else "fsync"
                except OSError:
                    operation = "fsync"
                return injector.around(operation, path, lambda: real(fd))
            return fsync

        def replace_with(real):
            def replace(src, dst, *, src_dir_fd=None, dst_dir_fd=None):
                if src_dir_fd is None and dst_dir_fd is None and injector._inside(dst):
                    return injector.around("replace", dst, lambda: real(src, dst))
                return real(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
            return replace

        def unlink_with(real):
            def unlink(path, *, dir_fd=None):
                if dir_fd is None and injector._inside(path):
                    return injector.around("unlink", path, lambda: real(path))
                return real(path, dir_fd=dir_fd)
            return unlink

        def truncate(path, length):
            target = injector._fd_path(path) if isinstance(path, int) else \
                (path if injector._inside(path) else None)
            if target is None:
                return real_truncate(path, length)
            return injector.around("truncate", target, lambda: real_truncate(path, length))

        def ftruncate(fd, length):
            path = injector._fd_path(fd)
            if path is None:
                return real_ftruncate(fd, length)
            return injector.around("truncate", path, lambda: real_ftruncate(fd, length))

        os.open = open_
        os.write = write
        os.fsync = fsync_with(real_fsync)
        os.fdatasync = fsync_with(real_fdatasync)
        os.replace = replace_with(real_replace)
        os.rename = replace_with(real_rename)
        os.unlink = unlink_with(real_unlink)
        os.remove = unlink_with(real_remove)
        os.truncate = truncate
        os.ftruncate = ftruncate
        builtins.open = builtin_open


class TracedFile:
    """A file object whose `truncate` goes through the injector; the rest passes through."""

    def __init__(self, handle, injector: FaultInjector, path: str):
        self._handle = handle
        self._injector = injector
        self._path = path

    def truncate(self, size=None):
        return self._injector.around("truncate", self._path, lambda: self._handle.truncate(size))

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __iter__(self):
        return iter(self._handle)

    def __enter__(self) -> TracedFile:
        self._handle.__enter__()
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)


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
    parser.add_argument("--kill-at", required=True, type=KillPoint.parse_all,
                        help="PHASE-OPERATION:N[@SCOPE][+...], e.g. before-replace:3, "
                             "mid-write:5@journal, fail-fsync:2, stall-fsync:4@journal")
    parser.add_argument("--stall-s", type=float, default=2.0,
                        help="how long a `stall` point waits before its call (seconds)")
    args = parser.parse_args(own)
    data_dir = data_dir_of(server_args)
    data_dir.mkdir(parents=True, exist_ok=True)
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    FaultInjector(args.kill_at, data_dir, args.stall_s).install()
    import nodes.server.startup
    nodes.server.startup.main(server_args)


if __name__ == "__main__":
    main()
