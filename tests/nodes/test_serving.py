"""nodes.serving: answers in order (ready or awaited), EOF, closing, cleanup, over a real socket."""

from __future__ import annotations

import asyncio
import logging

from nodes.protocol.wire import ResponseDecoder, encode_message
from nodes.runtime.serving import ClientConnection, ClientHandler, CloseConnection, ConnectionStats
from tests.conftest import wait_until

LOG = logging.getLogger("test-serving")


async def serve(answer, closed=None, window=1):
    """A listening socket serving `answer`; returns (server, port, connections)."""
    connections: set = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ClientConnection(lambda: ClientHandler(answer, closed, 5.0, window),
                                 ConnectionStats(), LOG, 1 << 20, None, connections),
        "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], connections


async def wait_for(predicate, what: str, timeout_s: float = 5.0):
    """`wait_until` from a coroutine: it polls in a worker thread, so that the
    event loop, where the connection is served, goes on meanwhile."""
    return await asyncio.to_thread(wait_until, predicate, timeout_s, what, 0.01)


async def read_all(reader: asyncio.StreamReader) -> list:
    decoder = ResponseDecoder()
    responses = []
    while True:
        chunk = await asyncio.wait_for(reader.read(1 << 16), 5)
        if not chunk:
            return responses
        responses.extend(decoder.feed(chunk))


def test_ready_and_awaited_answers_come_back_in_request_order():
    async def scenario():
        async def slow(text):
            await asyncio.sleep(0.02)
            return encode_message(f"slow {text}")

        def answer(request):
            if request.text.startswith("slow"):
                return slow(request.text)
            future = asyncio.get_running_loop().create_future()
            if request.text.startswith("later"):
                asyncio.get_running_loop().call_later(0.01, future.set_result,
                                                      encode_message(f"later {request.text}"))
                return future
            return encode_message(f"now {request.text}")

        closed = []
        server, port, _ = await serve(answer, lambda: closed.append(True))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"slow 1; now 2; later 3; now 4; slow 5; unfinished")
        writer.write_eof()
        responses = await read_all(reader)
        writer.close()
        server.close()
        await wait_for(lambda: closed, "the connection's cleanup to run")
        return [r.message for r in responses], closed

    messages, closed = asyncio.run(scenario())
    assert messages == ["slow slow 1", "now now 2", "later later 3", "now now 4", "slow slow 5"]
    assert closed == [True]   # cleanup ran once; the unfinished statement was never run


def test_close_connection_sends_its_answer_then_closes():
    async def scenario():
        def answer(request):
            if request.text == "stop":
                raise CloseConnection(encode_message("bye"))
            return encode_message("ok")

        server, port, connections = await serve(answer)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"a; stop; never;")
        responses = await read_all(reader)   # ends: the node closed the connection
        writer.close()
        server.close()
        return [r.message for r in responses], len(connections)

    messages, open_connections = asyncio.run(scenario())
    assert messages == ["ok", "bye"]
    assert open_connections == 0


def test_a_failing_handler_closes_only_that_connection():
    async def scenario():
        def answer(request):
            if request.text == "bug":
                raise RuntimeError("a bug")
            return encode_message("fine")

        server, port, _ = await serve(answer)
        first_reader, first_writer = await asyncio.open_connection("127.0.0.1", port)
        first_writer.write(b"bug;")
        broken = await read_all(first_reader)
        second_reader, second_writer = await asyncio.open_connection("127.0.0.1", port)
        second_writer.write(b"x;")
        second_writer.write_eof()
        fine = await read_all(second_reader)
        for writer in (first_writer, second_writer):
            writer.close()
        server.close()
        return broken, [r.message for r in fine]

    broken, fine = asyncio.run(scenario())
    assert broken == [] and fine == ["fine"]


def test_a_window_hands_pipelined_requests_over_together_and_answers_in_order():
    async def scenario():
        loop = asyncio.get_running_loop()
        futures = []
        handed_over = []

        def answer(request):
            handed_over.append((request.text, len(futures)))
            if request.text.startswith("now"):
                return encode_message(request.text)
            future = loop.create_future()
            futures.append((request.text, future))
            return future

        # Four answers outstanding at most: a ready one behind an awaited one counts.
        server, port, _ = await serve(answer, window=4)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"a; now b; c; d; e;")
        await wait_for(lambda: len(futures) >= 3, "the window to fill (a, now b, c, d)")
        assert [text for text, _ in futures] == ["a", "c", "d"]   # e waits for room
        for text, future in reversed(futures):                    # completed out of order
            future.set_result(encode_message(text))
        await wait_for(lambda: len(futures) >= 4, "e to be handed over once there is room")
        assert [text for text, _ in futures] == ["a", "c", "d", "e"]
        futures[3][1].set_result(encode_message("e"))
        writer.write_eof()
        responses = await read_all(reader)
        writer.close()
        server.close()
        return [r.message for r in responses], handed_over

    messages, handed_over = asyncio.run(scenario())
    assert messages == ["a", "now b", "c", "d", "e"]
    # a, b, c, d were handed over before any answer was known.
    assert handed_over[:4] == [("a", 0), ("now b", 1), ("c", 1), ("d", 2)]


def test_a_refused_connection_is_closed_unanswered_and_the_next_one_served():
    async def scenario():
        def answer(request):
            return encode_message("ok")

        opened = []

        def open_client():
            opened.append(True)
            if len(opened) == 1:
                return None                      # the node refuses it
            if len(opened) == 2:
                raise RuntimeError("a bug")      # or fails to open it
            return ClientHandler(answer)

        connections: set = set()
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: ClientConnection(open_client, ConnectionStats(), LOG, 1 << 20, None, connections),
            "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        results = []
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"a;")
                writer.write_eof()
            except OSError:
                pass   # already closed by the node
            try:
                responses = await read_all(reader)
            except OSError:
                responses = []
            results.append([r.message for r in responses])
            writer.close()
        server.close()
        await wait_for(lambda: not connections, "every connection to be forgotten")
        return results, len(connections)

    results, open_connections = asyncio.run(scenario())
    assert results == [[], [], ["ok"]]
    assert open_connections == 0
