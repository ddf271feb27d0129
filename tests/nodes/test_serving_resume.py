"""nodes.runtime.serving: nothing is written from inside `resume_writing`.

uvloop 0.22 calls `resume_writing` from its own pass over queued writes; a
write made right then could stay in the transport's buffer with no pass to
come, so the last bytes of a big answer never left (a client waited forever
for the end of a 20 MB answer, about one answer in a hundred:
tests/integration/test_hardening_streams.py hung in CI). The connection
therefore only notes the resumption there and sends from a callback of its
own. A recording transport (the one place a fake stands in, for this one
module) shows the order of calls, which a real socket cannot.
"""

from __future__ import annotations

import asyncio
import logging

from nodes.protocol.wire import ResponseDecoder, encode_message
from nodes.runtime.outbox import CHUNK_BYTES
from nodes.runtime.serving import ClientConnection, ClientHandler, ConnectionStats

LOG = logging.getLogger("test-serving-resume")
HIGH_WATER = 2 * CHUNK_BYTES


class RecordingTransport(asyncio.Transport):
    """Takes writes, pauses its protocol above `HIGH_WATER` unsent bytes, flushes on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.protocol: ClientConnection | None = None
        self.sent = bytearray()       # what "reached the client"
        self.unsent = 0
        self.paused = False
        self.in_resume = False        # inside our call of protocol.resume_writing()
        self.writes_in_resume = 0

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 50000) if name == "peername" else default

    def write(self, data) -> None:
        if self.in_resume:
            self.writes_in_resume += 1
        self.sent += data
        self.unsent += len(data)
        if not self.paused and self.unsent > HIGH_WATER:
            self.paused = True
            assert self.protocol is not None
            self.protocol.pause_writing()

    def flush(self) -> None:
        """The client read everything: resume the protocol the way an event loop does."""
        self.unsent = 0
        if self.paused:
            self.paused = False
            self.in_resume = True
            try:
                assert self.protocol is not None
                self.protocol.resume_writing()
            finally:
                self.in_resume = False

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return self.unsent


def test_a_big_answer_is_sent_whole_and_never_from_inside_resume_writing():
    answer = encode_message("x" * (20 * CHUNK_BYTES + 12345))

    async def scenario():
        connection = ClientConnection(lambda: ClientHandler(lambda request: answer, None, 5.0),
                                      ConnectionStats(), LOG, 1 << 20, None, set())
        transport = RecordingTransport()
        transport.protocol = connection
        connection.connection_made(transport)
        connection.data_received(b"big;")
        assert transport.paused   # most of the answer waits in the outbox
        for _ in range(200):
            transport.flush()
            await asyncio.sleep(0)   # one turn of the loop: the connection's own callback
            if len(transport.sent) >= len(answer) and not transport.paused:
                break
        return transport

    transport = asyncio.run(scenario())
    assert transport.writes_in_resume == 0
    responses = ResponseDecoder().feed(bytes(transport.sent))
    assert [len(response.raw) for response in responses] == [len(answer)]
