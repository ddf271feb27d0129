"""The relays' fast paths give exactly what their slow paths give.

- `RequestFramer`: a chunk holding one whole statement is framed without the
  splitter; fuzzed against chunkings that always take the splitter.
- `ResponseReceiver`: `expect_call` (a function instead of a future) and the
  one timer per connection (a request's timeout fails the connection);
  `send_call` behind earlier requests, and on a connection found reset (not
  sent: its callback never called).
- The balancer's fast read (`Balancer._fast_read`, sent from the read
  callback) against scripted backends: the same bytes as the slow path, a
  storage fault resent to the other backend, a broken connection retried
  elsewhere, and pipelined statements still answered in order.
"""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from nodes.protocol import RequestFramer, Response, encode_message
from nodes.runtime.upstream import NotSent, ResponseReceiver, UpstreamError, send_call
from tests.nodes.scripted_backends import (
    READ,
    ScriptedBackend,
    ask,
    balanced,
    relation_answer,
    session_with_connections,
)

LOG = logging.getLogger("test.relay_fast_paths")

PIECES = ["alaivo * ao@ t rehefa id = 1", ".ping", ".status", "  ", "-- note\n", "// x\n",
          "alaivo 'a;b' ao@ t", 'alaivo "x--y"', "manampia ao@ t sanda (1, 'é')", "é",
          "ampiasao db", ".auth s3cret", ".versions db t", "\n\t", "a" * 40]


def _stream(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 8)):
        parts.append(rng.choice(PIECES))
        parts.append(rng.choice([";", ";", ";", "", ";\n", " ;"]))
    data = "".join(parts).encode()
    if rng.random() < 0.1:
        data += b"\xff;"   # not UTF-8
    return data


def _chunks(rng: random.Random, data: bytes) -> list[bytes]:
    chunks, at = [], 0
    while at < len(data):
        step = rng.choice([1, 2, 5, len(data)]) if rng.random() < 0.5 else len(data)
        chunks.append(data[at:at + step])
        at += step
    return chunks


def _framed(framer: RequestFramer, chunks: list[bytes], slow: bool) -> list:
    requests = []
    for chunk in chunks:
        if slow and len(chunk) > 1:
            # A first byte alone never ends a statement: both parts take the splitter.
            requests += framer.feed(chunk[:1])
            requests += framer.feed(chunk[1:])
        else:
            requests += framer.feed(chunk)
    return requests + [framer.pending]


def test_framer_fast_path_frames_as_the_splitter_does():
    rng = random.Random(12)
    for _ in range(3000):
        data = _stream(rng)
        chunks = _chunks(rng, data)
        limit = rng.choice([20, 1 << 20])
        assert _framed(RequestFramer(limit), chunks, slow=False) == \
            _framed(RequestFramer(limit), chunks, slow=True), chunks


def test_framer_fast_path_after_a_split_utf8_sequence():
    framer = RequestFramer()
    assert framer.feed("alaivo 'é".encode()[:-1]) == []
    # The decoder holds half a character: the next chunk must not skip it.
    assert [r.text for r in framer.feed(b"\xa9';")] == ["alaivo 'é'"]
    assert [r.text for r in framer.feed(b"alaivo 2;")] == ["alaivo 2"]


# --------------------------------------------------------------------------
# ResponseReceiver


class _Transport:
    def __init__(self) -> None:
        self.aborted = False
        self.written: list[bytes] = []

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted

    def write(self, data: bytes) -> None:
        self.written.append(data)


def test_expect_call_is_called_in_order_with_the_futures():
    async def scenario():
        receiver = ResponseReceiver()
        receiver.connection_made(_Transport())  # type: ignore[arg-type]
        calls: list = []
        first = receiver.expect(1, 5.0)
        receiver.expect_call(2, 5.0, lambda responses, error: calls.append((responses, error)))
        receiver.data_received(encode_message("a") + encode_message("b"))
        assert first.done() and calls == []
        receiver.data_received(encode_message("c"))
        assert [r.message for r in first.result()] == ["a"]
        assert [r.message for r in calls[0][0]] == ["b", "c"] and calls[0][1] is None

    asyncio.run(scenario())


def test_a_request_timeout_fails_the_whole_connection():
    async def scenario():
        receiver = ResponseReceiver()
        transport = _Transport()
        receiver.connection_made(transport)  # type: ignore[arg-type]
        calls: list = []
        slow = receiver.expect(1, 60.0)
        receiver.expect_call(1, 0.02, lambda responses, error: calls.append(error))
        with pytest.raises(UpstreamError, match="no answer within 0.02s"):
            await slow
        assert isinstance(calls[0], UpstreamError) and str(calls[0]) == "no answer within 0.02s"
        assert transport.aborted and receiver.closed

    asyncio.run(scenario())


def test_the_timer_waits_for_the_latest_deadline_only_while_requests_wait():
    async def scenario():
        receiver = ResponseReceiver()
        transport = _Transport()
        receiver.connection_made(transport)  # type: ignore[arg-type]
        answered = receiver.expect(1, 0.02)
        receiver.data_received(encode_message("a"))
        later = receiver.expect(1, 0.2)
        await asyncio.sleep(0.05)   # the first deadline passed, answered: no failure
        assert answered.done() and not later.done() and not transport.aborted
        receiver.data_received(encode_message("b"))
        assert later.result()[0].message == "b"

    asyncio.run(scenario())


class _ResettingTransport(_Transport):
    """A peer that reset the connection: the write finds it so and the transport closes."""

    def write(self, data: bytes) -> None:
        super().write(data)
        self.aborted = True


def test_send_call_written_behind_earlier_requests_is_answered_after_them():
    async def scenario():
        receiver = ResponseReceiver()
        transport = _Transport()
        receiver.connection_made(transport)  # type: ignore[arg-type]
        calls: list = []
        first = receiver.expect(1, 5.0)
        send_call(transport, receiver, b"b;", 1, 5.0,  # type: ignore[arg-type]
                  lambda responses, error: calls.append((responses, error)))
        assert transport.written == [b"b;"] and receiver.waiting == 2 and calls == []
        receiver.data_received(encode_message("a") + encode_message("b"))
        assert first.result()[0].message == "a"
        assert [r.message for r in calls[0][0]] == ["b"] and calls[0][1] is None

    asyncio.run(scenario())


def test_send_call_on_a_reset_connection_is_not_sent_and_never_called():
    async def scenario():
        receiver = ResponseReceiver()
        transport = _ResettingTransport()
        receiver.connection_made(transport)  # type: ignore[arg-type]
        calls: list = []
        earlier = receiver.expect(1, 5.0)
        with pytest.raises(NotSent):
            send_call(transport, receiver, b"x;", 1, 5.0,  # type: ignore[arg-type]
                      lambda responses, error: calls.append((responses, error)))
        # Its wait was never queued; the request written before it fails with the connection.
        assert calls == [] and receiver.waiting == 0 and receiver.closed
        with pytest.raises(UpstreamError, match="connection reset before sending"):
            earlier.result()

    asyncio.run(scenario())


# --------------------------------------------------------------------------
# The balancer's fast read against scripted backends


def test_fast_reads_answer_what_slow_reads_answer():
    async def scenario():
        script: dict = {"seen": []}
        balancer = await balanced(script)
        fast_handler = await session_with_connections(balancer)
        fast = [await ask(balancer, fast_handler, READ.format(n)) for n in range(6)]
        fast_count = balancer.counters.reads
        # Slow: the same reads through `answer` (the coroutine path) on a new session.
        slow_handler = await session_with_connections(balancer)
        slow = []
        for n in range(6):
            (request,) = RequestFramer().feed(f"{READ.format(n)};".encode())
            session = slow_handler.answer.args[0]   # functools.partial(handle, session)
            slow.append(await balancer.answer(session, request))
        def who(raw: bytes) -> str:
            return "m1" if b'"m1"' in raw else "m2"

        def anonymous(raw: bytes) -> bytes:
            return raw.replace(b'"m1"', b'"m"').replace(b'"m2"', b'"m"')

        assert [anonymous(r) for r in fast] == [anonymous(r) for r in slow]
        # The same round robin over the two (equally loaded) backends.
        assert [who(r) for r in fast][::2] == [who(fast[0])] * 3
        assert [who(r) for r in slow][1::2] == [who(slow[1])] * 3 != [who(slow[0])] * 3
        assert balancer.counters.reads == fast_count + 6 + 4
        assert {b for b, t in script["seen"] if t == READ.format(5)} == {"m1", "m2"}
        assert all(b.outstanding == 0 for b in balancer.pool)

    asyncio.run(scenario())


def test_a_fast_read_meeting_a_storage_fault_is_read_once_more_elsewhere():
    async def scenario():
        script: dict = {"seen": []}
        balancer = await balanced(script)
        handler = await session_with_connections(balancer)
        text = READ.format(7)
        script["fault:m1"] = script["fault:m2"] = ()
        # Whichever backend the fast path picks fails: the other one answers.
        script["fault:m1"] = (text,)
        answers = [await ask(balancer, handler, text) for _ in range(2)]
        assert all(b'"m2"' in answer for answer in answers)
        assert balancer.counters.storage_faults >= 1
        assert balancer.counters.storage_resent_reads == balancer.counters.storage_faults

    asyncio.run(scenario())


def test_a_fast_read_on_a_broken_connection_is_retried_on_another_backend():
    async def scenario():
        script: dict = {"seen": []}
        balancer = await balanced(script)
        handler = await session_with_connections(balancer)
        text = READ.format(8)
        script["drop:m1"] = (text,)
        answers = [await ask(balancer, handler, text) for _ in range(2)]
        assert all(b'"m2"' in answer for answer in answers)
        assert balancer.counters.retries >= 1
        assert all(b.outstanding == 0 for b in balancer.pool)

    asyncio.run(scenario())


def test_pipelined_statements_behind_a_fast_read_are_answered_in_order():
    async def scenario():
        script: dict = {"seen": []}
        balancer = await balanced(script, ids=("m1",))
        handler = await session_with_connections(balancer)
        requests = RequestFramer().feed(
            "".join(f"{READ.format(n)};" for n in range(10)).encode())
        answers = [handler.answer(request) for request in requests]  # as serving hands them
        raws = [a if isinstance(a, bytes) else await a for a in answers]
        assert raws == [relation_answer("m1", READ.format(n)) for n in range(10)]

    asyncio.run(scenario())


def test_upstream_connection_send_call_reports_a_connection_not_open():
    from nodes.runtime.upstream import UpstreamConnection

    calls: list = []
    UpstreamConnection("127.0.0.1", 9).send_call(b"x;", lambda r, e: calls.append((r, e)))
    assert calls[0][0] is None and "not connected" in str(calls[0][1])


def test_open_upstream_send_call_answers_through_a_real_socket():
    async def scenario():
        loop = asyncio.get_running_loop()
        script: dict = {"seen": []}
        server = await loop.create_server(lambda: ScriptedBackend("m9", script), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        from nodes.runtime.upstream import UpstreamConnection

        connection = UpstreamConnection("127.0.0.1", port)
        await connection.connect()
        done = loop.create_future()
        connection.send_call(b"alaivo 1;", lambda r, e: done.set_result((r, e)))
        response, error = await done
        assert error is None and isinstance(response, Response)
        assert response.raw == relation_answer("m9", "alaivo 1")
        await connection.close()
        server.close()

    asyncio.run(scenario())


# --------------------------------------------------------------------------
# The hit path: a repeated chunk, one request on an idle connection, the
# proxy's remembered text facts

CHUNKS = [b"alaivo * ao@ t rehefa id = 7;", b"alaivo * ao@ t rehefa id = 7;", b".ping;", b".auth s;",
          b"alaivo 'a", b"';", "é".encode()[:1], "é".encode()[1:] + b";", b"\xff;", b";", b" ;",
          b"x" * 30 + b";", b"-- c\n", b"ampiasao db;", b"alaivo 1; alaivo 2;", b"alaivo",
          b".PING;", b" .Status ;", b".VERSIONS db t;", b".pingx;", "İ.ping;".encode(),
          b"\xed\xb2\x80;"]


def test_framer_repeated_chunks_frame_as_the_splitter_does():
    rng = random.Random(7)
    for _ in range(3000):
        chunks = [rng.choice(CHUNKS) for _ in range(rng.randint(1, 12))]
        limit = rng.choice([20, 1 << 20])
        assert _framed(RequestFramer(limit), chunks, slow=False) == \
            _framed(RequestFramer(limit), chunks, slow=True), chunks


class _ClientTransport(_Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name, default=None):
        return None

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _serve_chunks(chunks: list[bytes], window: int) -> tuple[list[bytes], bool]:
    """What a connection writes for `chunks` (fed one at a time), and whether it closed."""
    from nodes.runtime.serving import ClientConnection, ClientHandler, CloseConnection, ConnectionStats

    async def run() -> tuple[list[bytes], bool]:
        loop = asyncio.get_running_loop()

        def answer(request):
            text = request.text
            if text.startswith("wait"):
                done = loop.create_future()
                loop.call_later(0.001, done.set_result, encode_message(f"waited {text}"))
                return done
            if text == "close":
                raise CloseConnection(encode_message("bye"))
            if text == "fail":
                raise RuntimeError("handler failed")
            return encode_message(f"ready {text}")

        transport = _ClientTransport()
        connection = ClientConnection(lambda: ClientHandler(answer, window=window), ConnectionStats(),
                                      LOG, 1 << 20, None, set())
        connection.connection_made(transport)
        for chunk in chunks:
            if not transport.closed:
                connection.data_received(chunk)
            await asyncio.sleep(0.003)
        # Every answer given (a busy machine fires the 1 ms timers late, and
        # a chain of waits then outlasts the pauses above).
        deadline = loop.time() + 10
        while (connection._answers or connection._pending) and not transport.closed \
                and loop.time() < deadline:
            await asyncio.sleep(0.001)
        return transport.written, transport.closed

    return asyncio.run(run())


def test_one_request_per_chunk_is_answered_as_when_framed_together():
    rng = random.Random(3)
    words = ["a", "b", "wait1", "wait2", ".ping", "close", "fail", "x" * 30]
    for _ in range(60):
        texts = [rng.choice(words) for _ in range(rng.randint(1, 6))]
        window = rng.choice([1, 4])
        apart = _serve_chunks([f"{text};".encode() for text in texts], window)
        together = _serve_chunks(["".join(f"{text};" for text in texts).encode()], window)
        assert apart == together, texts


def test_the_proxy_remembers_each_texts_normal_form_and_kind():
    from engine.language.script import normalise_statement
    from nodes.proxycache import node as proxy_node
    from nodes.proxycache.cache import ResponseCache

    proxy = proxy_node.ProxyCache("p", ("127.0.0.1", 1), ResponseCache(1000, 10), LOG)
    texts = ["alaivo  *  ao@ t", "ASEHOY ny tabilao", "ampiasao db", "manampia ao@ t sanda (1)",
             "alaivo 'a  b' -- x\n ao@ t", "  ", "1 + 2"]
    for _ in range(2):
        for text in texts:
            normal = normalise_statement(text)
            kind = proxy_node.statement_kind(normal)
            plain_write = text.startswith("manampia")   # its normal form is never read
            assert proxy.text_facts(text) == (None if plain_write else normal, kind)
    for index in range(proxy_node.MAX_KNOWN_TEXTS + 10):   # bounded
        proxy.text_facts(f"alaivo {index}")
    assert len(proxy.known_texts) <= proxy_node.MAX_KNOWN_TEXTS
    assert proxy.text_facts("alaivo  1") == ("alaivo 1", proxy_node.READ)


def test_the_proxy_normalises_only_the_writes_whose_normal_form_it_reads():
    from engine.language.script import normalise_statement
    from nodes.proxycache import node as proxy_node
    from nodes.proxycache.cache import ResponseCache

    coarse = proxy_node.ProxyCache("p", ("127.0.0.1", 1), ResponseCache(1000, 10), LOG)
    fine = proxy_node.ProxyCache("p", ("127.0.0.1", 1), ResponseCache(1000, 10), LOG,
                                 fine_invalidation=True)
    plain = ["manampia ao@ t sanda (1, 'a  b')", "HAVAOZY t ova a = 1", "fafao ao@ t",
             "manampia--x\nao@ t sanda (1)", "_x 1"]
    needed = ["manamboara  tahiry db", "RAVAO ny -- x\n tahiry db", "ampiasao  db",
              "alaivo  1", "asehoy ny tabilao", "-- c\nmanampia ao@ t sanda (1)",
              "'x' manampia", "1 + 2"]
    for text in plain + needed:
        normal = normalise_statement(text)
        kind = proxy_node.statement_kind(normal)
        assert fine.text_facts(text) == (normal, kind), text
        assert coarse.text_facts(text) == (None if text in plain else normal, kind), text
        if text in plain:
            assert kind == proxy_node.WRITE


def test_the_proxys_writes_never_push_its_reads_out_of_the_remembered_texts():
    from nodes.proxycache import node as proxy_node
    from nodes.proxycache.cache import ResponseCache

    proxy = proxy_node.ProxyCache("p", ("127.0.0.1", 1), ResponseCache(1000, 10), LOG)
    read = "alaivo * ao@ t rehefa id = 7"
    remembered = proxy.text_facts(read)
    for index in range(proxy_node.MAX_KNOWN_TEXTS + 10):   # a bulk load, one insert at a time
        assert proxy.text_facts(f"manampia ao@ t sanda ({index}, 'n{index}')")[1] == proxy_node.WRITE
    assert proxy.known_texts.get(read) is remembered


def _serve_pending(chunks: list[bytes], give_now: set[str], window: int) -> tuple[list[bytes], bool]:
    """What a connection writes when its handler answers with `PendingAnswer`s (or futures)."""
    from nodes.runtime.serving import ClientConnection, ClientHandler, ConnectionStats, PendingAnswer

    async def run() -> tuple[list[bytes], bool]:
        loop = asyncio.get_running_loop()
        timers_waiting = 0

        def later(delay: float, callback, *args) -> None:
            nonlocal timers_waiting
            timers_waiting += 1

            def fire() -> None:
                nonlocal timers_waiting
                timers_waiting -= 1
                callback(*args)
            loop.call_later(delay, fire)

        def answer(request):
            text = request.text
            if text.startswith("future"):
                future = loop.create_future()
                later(0.001, future.set_result, encode_message(f"future {text}"))
                return future
            pending = PendingAnswer()
            if text in give_now:   # given before the handler returns
                pending.give(encode_message(f"now {text}"))
            elif text.startswith("cancel"):
                later(0.001, pending.cancel)
            else:
                later(0.001, pending.give, encode_message(f"later {text}"))
                later(0.002, pending.give, b"never sent: given twice")
            return pending

        transport = _ClientTransport()
        connection = ClientConnection(lambda: ClientHandler(answer, window=window), ConnectionStats(),
                                      LOG, 1 << 20, None, set())
        connection.connection_made(transport)
        for chunk in chunks:
            if not transport.closed:
                connection.data_received(chunk)
            await asyncio.sleep(0.004)
        # Every answer given and every timer fired, however late a busy
        # machine fires them (a chain of window-1 answers outlasts any pause).
        deadline = loop.time() + 10
        while loop.time() < deadline and (
                timers_waiting or ((connection._answers or connection._pending) and not transport.closed)):
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)   # what the last timer's callback scheduled runs
        return transport.written, transport.closed

    return asyncio.run(run())


def test_pending_answers_are_sent_in_order_as_futures_would_be():
    rng = random.Random(9)
    words = ["a", "b", "c", "future1", "cancel"]
    for _ in range(40):
        texts = [rng.choice(words) for _ in range(rng.randint(1, 6))]
        give_now = set(rng.sample(["a", "b", "c"], rng.randint(0, 3)))
        window = rng.choice([1, 4])
        apart = _serve_pending([f"{text};".encode() for text in texts], give_now, window)
        together = _serve_pending(["".join(f"{text};" for text in texts).encode()], give_now, window)
        assert apart == together, texts
        written, closed = together
        expected = []
        for text in texts:
            if text == "cancel":
                break
            prefix = "future" if text.startswith("future") else "now" if text in give_now else "later"
            expected.append(encode_message(f"{prefix} {text}"))
        assert written == expected and closed == ("cancel" in texts), texts


def test_a_pending_answer_may_be_awaited_like_a_future():
    from nodes.runtime.serving import PendingAnswer

    async def main():
        loop = asyncio.get_running_loop()
        later = PendingAnswer()
        loop.call_soon(later.give, b"x")
        assert await later == b"x" and later.done()
        given = PendingAnswer()
        given.give(b"y")
        given.give(b"z")   # ignored
        assert await given == b"y"
        cancelled = PendingAnswer()
        loop.call_soon(cancelled.cancel)
        with pytest.raises(asyncio.CancelledError):
            await cancelled

    asyncio.run(main())
