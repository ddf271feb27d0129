"""What a connection still has to send to a client that reads slower than it is answered.

A response is written to the transport in chunks of `CHUNK_BYTES` while the
transport accepts them (nodes/runtime/serving.py); what is left once the
client stops reading waits here, in order. At most `MEMORY_CAP_BYTES` of it
is kept in memory per connection; the rest goes to an unlinked temporary
file (`tempfile.TemporaryFile`: nothing is left on disk when the process
dies) and is read back a chunk at a time as the client reads. So a client
that never reads pins at most the cap in this process's memory (plus one
chunk in the transport and the kernel's socket buffers), whatever the size
of the answers it asked for (docs/SECURITY.md, "Limits").

Pure bookkeeping over bytes and one file: no sockets.
"""

from __future__ import annotations

import tempfile
from collections import deque
from typing import IO

CHUNK_BYTES = 256 * 1024          # written to the transport at a time
MEMORY_CAP_BYTES = 1024 * 1024    # unsent bytes kept in memory per connection; the rest spills
# What one slow reader can hold in this process's memory: the outbox's cap, and
# what the transport took before it paused (at most a chunk past its high-water
# mark). A node's `.status` counts it (`unsent_bytes_in_memory`).
HELD_BYTES_BOUND = MEMORY_CAP_BYTES + 2 * CHUNK_BYTES


class Outbox:
    """Unsent bytes, in order: up to `memory_cap` in memory, the rest in a temporary file."""

    def __init__(self, memory_cap: int = MEMORY_CAP_BYTES, chunk: int = CHUNK_BYTES) -> None:
        self.memory_cap = memory_cap
        self.chunk = chunk
        self._memory: deque[bytes] = deque()
        self._memory_bytes = 0
        self._file: IO[bytes] | None = None
        self._read_at = 0
        self._write_at = 0
        self.spilled_bytes = 0     # ever written to the file

    def __len__(self) -> int:
        """Bytes waiting."""
        return self._memory_bytes + self._write_at - self._read_at

    @property
    def in_memory(self) -> int:
        return self._memory_bytes

    def add(self, data: bytes | memoryview) -> None:
        """Queue `data` behind what waits (a slice of it is copied: never a view pinning the whole)."""
        if not data:
            return
        room = self.memory_cap - self._memory_bytes if self._file is None else 0
        if len(data) <= room:
            self._memory.append(bytes(data) if isinstance(data, memoryview) else data)
            self._memory_bytes += len(data)
            return
        if room > 0:
            self._memory.append(bytes(data[:room]))
            self._memory_bytes += room
            data = data[room:]
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="tahiry-outbox-")
            self._read_at = self._write_at = 0
        self._file.seek(self._write_at)
        self._file.write(data)
        self._write_at += len(data)
        self.spilled_bytes += len(data)

    def take(self) -> bytes | None:
        """The next chunk to send (at most `chunk` bytes), or None when nothing waits."""
        memory = self._memory
        if memory:
            head = memory.popleft()
            if len(head) > self.chunk:
                memory.appendleft(head[self.chunk:])
                head = head[:self.chunk]
            self._memory_bytes -= len(head)
            return head
        spill = self._file
        if spill is None:
            return None
        spill.seek(self._read_at)
        data = spill.read(min(self.chunk, self._write_at - self._read_at))
        self._read_at += len(data)
        if self._read_at >= self._write_at or not data:
            self._drop_file()
        return data or None

    def close(self) -> None:
        """Forget everything (the connection is gone)."""
        self._memory.clear()
        self._memory_bytes = 0
        self._drop_file()

    def _drop_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._read_at = self._write_at = 0
