"""The relays' fast writes give exactly what their slow paths give.

- The balancer (`Balancer._fast_write`, sent from the client's read callback,
  answered from the backend connection's): the same owner, bytes, `.versions`
  follow-up and read-your-writes mark as the coroutine path; a storage fault
  hands the write once to the next owner; a connection lost after the write
  was sent gives "outcome unknown" and never sends it again; one that could
  not be written at all (the connection found reset) is sent once the usual
  way; writes pipelined behind it go behind it on the same connection,
  answered in order.
- The proxy cache (`ProxySession._fast_write`): the upstream's answer, the
  cache emptied after it; a lost connection gives the error, the write is not
  sent again, and the next statement reconnects.

Each test checks that the fast path was taken (a `PendingAnswer`, no task):
on the code before it, a write always took the coroutine path.
"""

from __future__ import annotations

import asyncio

from nodes.balancer.routing import rank_owners
from nodes.protocol import RequestFramer, encode_message
from nodes.runtime.serving import PendingAnswer
from tests.nodes.scripted_backends import (
    LOG,
    READ,
    ScriptedBackend,
    balanced,
    session_with_connections,
)

WRITE = "manampia ao@ t sanda ({}, 'x')"
OWNER, OTHER = rank_owners("db", "t", ["m1", "m2"])


def took(backend_id: str, text: str) -> bytes:
    """A scripted backend's answer to a write it took."""
    return encode_message(f"voasoratra {backend_id} {text}")


def _request(text: str):
    (request,) = RequestFramer().feed(f"{text};".encode())
    return request


def test_fast_writes_answer_what_slow_writes_answer():
    async def scenario():
        script: dict = {"seen": []}
        balancer = await balanced(script)
        fast_handler = await session_with_connections(balancer)
        fast = []
        for n in range(4):
            answer = fast_handler.answer(_request(WRITE.format(n)))
            assert isinstance(answer, PendingAnswer), "a write on an idle session takes the fast path"
            fast.append(await answer)
        fast_session = fast_handler.answer.args[0]   # functools.partial(handle, session)
        mark = fast_session.writes.mark("db", "t")
        assert mark.backend_id == OWNER and mark.versions == {"table": 4}
        # Slow: the same writes through `answer` (the coroutine path) on a new session.
        slow_handler = await session_with_connections(balancer)
        slow_session = slow_handler.answer.args[0]
        slow = [await balancer.answer(slow_session, _request(WRITE.format(n))) for n in range(4)]
        assert fast == slow == [took(OWNER, WRITE.format(n))
                                for n in range(4)]
        assert slow_session.writes.mark("db", "t").versions == {"table": 8}
        written = [(b, t) for b, t in script["seen"] if t.startswith(("manampia", ".versions"))]
        # Each write on the owner, its `.versions` right behind it (two backends).
        assert written == [(OWNER, WRITE.format(n // 2 % 4)) if n % 2 == 0
                           else (OWNER, ".versions db t") for n in range(16)]
        assert balancer.counters.writes == 8
        assert all(b.outstanding == 0 for b in balancer.pool)

    asyncio.run(scenario())


def test_a_fast_write_meeting_a_storage_fault_goes_once_to_the_next_owner():
    async def scenario():
        script: dict = {"seen": []}
        balancer = await balanced(script)
        handler = await session_with_connections(balancer)
        text = WRITE.format(7)
        script[f"fault:{OWNER}"] = (text,)
        answer = handler.answer(_request(text))
        assert isinstance(answer, PendingAnswer)
        assert await answer == took(OTHER, text)
        assert [b for b, t in script["seen"] if t == text] == [OWNER, OTHER]
        assert balancer.counters.storage_resent_writes == 1 == balancer.counters.storage_faults
        assert balancer.counters.writes == 1 and balancer.counters.rerouted_writes == 1
        mark = handler.answer.args[0].writes.mark("db", "t")
        assert mark.backend_id == OTHER
        assert all(b.outstanding == 0 for b in balancer.pool)

    asyncio.run(scenario())


def test_a_fast_write_whose_connection_breaks_is_unknown_and_not_sent_again():
    async def scenario():
        script: dict = {"seen": []}
        balancer = await balanced(script)
        handler = await session_with_connections(balancer)
        text = WRITE.format(8)
        script[f"drop:{OWNER}"] = (text,)
        answer = handler.answer(_request(text))
        assert isinstance(answer, PendingAnswer)
        raw = await answer
        assert b"Hadisoana" in raw and b"the outcome of this write is unknown" in raw
        assert [b for b, t in script["seen"] if t == text] == [OWNER]
        assert balancer.counters.unknown_writes == 1
        assert all(b.outstanding == 0 for b in balancer.pool)
        # The next write is taken (the usual way: the session's connection is gone).
        assert await handler.answer(_request(WRITE.format(9))) in (
            took(OWNER, WRITE.format(9)), took(OTHER, WRITE.format(9)))

    asyncio.run(scenario())


class _ResetOnWrite:
    """A backend connection's transport whose peer reset it: the write finds it closed."""

    def __init__(self, real) -> None:
        self._real = real

    def write(self, data: bytes) -> None:
        self._real.abort()   # nothing leaves

    def __getattr__(self, name: str):
        return getattr(self._real, name)


def test_a_fast_write_that_could_not_be_written_is_sent_once_the_usual_way():
    async def scenario():
        script: dict = {"seen": []}
        balancer = await balanced(script)
        handler = await session_with_connections(balancer)
        session = handler.answer.args[0]
        connection = session.connections[OWNER]
        connection.transport = _ResetOnWrite(connection.transport)
        text = WRITE.format(10)
        statements = balancer.counters.statements
        answer = handler.answer(_request(text))
        assert isinstance(answer, PendingAnswer), "the fast path was tried"
        raw = await answer
        # Nothing reached the owner on the reset connection; the usual path sent it once.
        assert raw in (took(OWNER, text), took(OTHER, text))
        assert len([b for b, t in script["seen"] if t == text]) == 1
        assert balancer.counters.writes == 1 and balancer.counters.unknown_writes == 0
        assert balancer.counters.statements == statements + 1
        assert session.writes.mark("db", "t") is not None and session.idle
        assert all(b.outstanding == 0 for b in balancer.pool)
        # The session goes on: the next write takes the fast path again.
        after = handler.answer(_request(WRITE.format(11)))
        assert isinstance(after, PendingAnswer)
        assert await after in (took(OWNER, WRITE.format(11)), took(OTHER, WRITE.format(11)))

    asyncio.run(scenario())


def test_writes_pipelined_behind_a_fast_write_follow_it_and_are_answered_in_order():
    async def scenario():
        script: dict = {"seen": []}
        balancer = await balanced(script)
        handler = await session_with_connections(balancer)
        requests = RequestFramer().feed("".join(f"{WRITE.format(n)};" for n in range(6)).encode()
                                        + f"{READ.format(1)};".encode())
        # As serving hands them: a coroutine becomes a task at once.
        answers = [handler.answer(request) for request in requests]
        answers = [asyncio.ensure_future(a) if asyncio.iscoroutine(a) else a for a in answers]
        assert isinstance(answers[0], PendingAnswer)
        raws = [a if isinstance(a, bytes) else await a for a in answers]
        assert raws[:6] == [took(OWNER, WRITE.format(n))
                            for n in range(6)]
        assert f'"{READ.format(1)}"'.encode() in raws[6]
        assert balancer.counters.pipelined_writes >= 1
        assert [t for b, t in script["seen"] if t.startswith("manampia")] == \
            [WRITE.format(n) for n in range(6)]
        assert all(b.outstanding == 0 for b in balancer.pool)

    asyncio.run(scenario())


# --------------------------------------------------------------------------
# The proxy cache's fast write


def test_the_proxys_fast_write_empties_the_cache_and_a_lost_one_is_not_sent_again():
    from nodes.proxycache import node as proxy_node
    from nodes.proxycache.cache import ResponseCache

    async def scenario():
        loop = asyncio.get_running_loop()
        script: dict = {"seen": []}
        server = await loop.create_server(lambda: ScriptedBackend("m1", script), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        proxy = proxy_node.ProxyCache("p", ("127.0.0.1", port), ResponseCache(1000, 10), LOG)
        handler = proxy.open_client()

        async def ask(text: str):
            answer = handler.answer(_request(text))
            return answer, (answer if isinstance(answer, bytes) else await answer)

        await ask("ampiasao db")
        read = READ.format(1)
        await ask(read)
        assert len(proxy.cache) == 1
        answer, raw = await ask(WRITE.format(1))
        assert isinstance(answer, PendingAnswer), "a write alone on a usable connection is fast"
        assert raw == took("m1", WRITE.format(1))
        assert len(proxy.cache) == 0
        # A connection lost once the write is sent: the error, never sent again.
        text = WRITE.format(2)
        script["drop:m1"] = (text,)
        answer, raw = await ask(text)
        assert isinstance(answer, PendingAnswer)
        assert b"Hadisoana" in raw and proxy.upstream_errors == 1
        assert [t for _, t in script["seen"]].count(text) == 1
        # The next statement reconnects, in the session's database.
        _, raw = await ask(read)
        assert b'"m1"' in raw and script["seen"][-2:] == [("m1", "ampiasao db"), ("m1", read)]
        server.close()

    asyncio.run(scenario())
