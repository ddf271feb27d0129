"""One handle per thread and server, made again when what it points at changed.

Replication's workers each keep their own handle on a server's directory
write lock (flock belongs to the open file: two threads sharing one
descriptor would both "hold" the lock) and their own network link to a
server of another machine (a link carries one request at a time).
`ThreadHandles` is that bookkeeping, once: `get(server_id, target)` gives
this thread's handle, closing and replacing one made for another target
(the server's directory or address changed); `close_thread()` closes this
thread's handles (a worker that ends, or a caller's thread that may never
come back).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Closable(Protocol):
    def close(self) -> None: ...


H = TypeVar("H", bound=Closable)
T = TypeVar("T")


class ThreadHandles(Generic[T, H]):
    """This thread's handle per server: `make(target)`, kept while `target_of(handle) == target`."""

    def __init__(self, make: Callable[[T], H], target_of: Callable[[H], T]):
        self._make = make
        self._target_of = target_of
        self._local = threading.local()

    def get(self, server_id: str, target: T) -> H:
        handles: dict[str, H] = self._local.__dict__.setdefault("by_server", {})
        handle = handles.get(server_id)
        if handle is None or self._target_of(handle) != target:
            if handle is not None:
                handle.close()
            handle = handles[server_id] = self._make(target)
        return handle

    def close_thread(self) -> None:
        for handle in self._local.__dict__.pop("by_server", {}).values():
            handle.close()
