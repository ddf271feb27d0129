"""Injected failures for in-process tests of disk writes.

`fail_on_call(real, number, error)` wraps a function (os.replace, a temp
file writer, ...) so that exactly its `number`-th call raises `error` and
every other call goes through; monkeypatch the wrapper in place of `real`.
For a real full disk: `tiny_tmpfs(folder, size)` mounts a small tmpfs
there (root only: the test is skipped otherwise) and `fill_up(folder)`
fills it.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def io_error() -> OSError:
    """What a failing disk raises."""
    return OSError(errno.EIO, "Input/output error")


def disk_full() -> OSError:
    """What a full disk raises."""
    return OSError(errno.ENOSPC, "No space left on device")


def fail_on_call(real, number: int, error: OSError):
    """`real`, except that its `number`-th call (counting from 1) raises `error`."""
    calls = 0

    def wrapper(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == number:
            raise error
        return real(*args, **kwargs)

    return wrapper


@contextmanager
def tiny_tmpfs(folder: Path, size: str = "256k") -> Iterator[Path]:
    """A real tmpfs of `size` mounted on `folder` (made if missing) for the block.

    Needs root (CI runs as root); skips the test in one line when it is not
    root or the mount is refused (a container without the capability).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill_up(folder: Path) -> Path:
    """Write `folder/filler.bin` until the file system is full; its path (unlink to free)."""
    filler = folder / "filler.bin"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        size = 1 << 16
        while size:
            try:
                os.write(descriptor, b"\0" * size)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                size //= 2  # a last partial block may still take smaller writes
    finally:
        os.close(descriptor)
    return filler
