"""Injected failures for in-process tests of disk writes.

`fail_on_call(real, number, error)` wraps a function (os.replace, a temp
file writer, ...) so that exactly its `number`-th call raises `error` and
every other call goes through; monkeypatch the wrapper in place of `real`.
"""

from __future__ import annotations

import errno


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
