"""nodes.runtime.local_upstream: the in-process upstream of the one relay.

First against scripted handlers, one per way a node answers (bytes at once,
a `PendingAnswer` given later, a coroutine, `CloseConnection`, a bug); then
a real `ProxyCache` over a real `Balancer` over scripted servers on real
sockets (tests/nodes/test_relay_fast_paths.py): cached reads, writes that
invalidate, pipelined statements, `.login` replayed on a new session.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from nodes.protocol import Request, RequestFramer, encode_message
from nodes.proxycache.cache import ResponseCache
from nodes.proxycache.node import ProxyCache
from nodes.relay.node import local_balancer
from nodes.runtime.local_upstream import InProcessUpstream, LocalUpstream
from nodes.runtime.serving import ClientHandler, CloseConnection, PendingAnswer
from nodes.runtime.upstream import NotSent, UpstreamError
from tests.nodes.scripted_backends import READ, balanced

LOG = logging.getLogger("test.local_upstream")
RELATION = (b'RELATION_JSON_PAGE 1/1\n{"type":"relation","name":"t","page":1,"totalPages":1,'
            b'"columns":[{"name":"a","origin":"t"}],"rows":[[1]]}\n'
            b"RELATION_JSON_END\nRESULT_MESSAGE\nok\nEND\n")


class ScriptedNode:
    """A node whose handler answers each statement as its text says, and records what it saw."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.opened = 0
        self.closed = 0
        self.pending: list[tuple[PendingAnswer, bytes]] = []
        self.release = asyncio.Event()

    def open_client(self) -> ClientHandler:
        self.opened += 1
        return ClientHandler(self.answer, self._closed)

    def _closed(self) -> None:
        self.closed += 1

    def answer(self, request: Request):
        text = request.text
        self.seen.append(text)
        if text == "later":
            pending = PendingAnswer()
            self.pending.append((pending, encode_message("given later")))
            return pending
        if text == "slow":
            return self._slow()
        if text == "refuse":
            raise CloseConnection(encode_message("Hadisoana : nolavina"))
        if text == "bug":
            raise RuntimeError("a bug")
        if text == "relation":
            return RELATION
        return encode_message(f"ok {text}")

    async def _slow(self) -> bytes:
        await self.release.wait()
        return encode_message("slow done")

    def give_all(self) -> None:
        for pending, raw in self.pending:
            pending.give(raw)
        self.pending.clear()


def upstream_of(node: ScriptedNode, decode_relations: bool = False) -> InProcessUpstream:
    return InProcessUpstream(LocalUpstream("scripted", node.open_client, dict),
                             decode_relations=decode_relations)


def test_each_way_of_answering_gives_the_decoded_response():
    async def scenario():
        node = ScriptedNode()
        upstream = upstream_of(node)
        assert not upstream.usable
        assert (await upstream.request(b"alaivo 1;")).message == "ok alaivo 1"
        assert upstream.usable and node.opened == 1
        later = upstream.send(b"later;")
        slow = upstream.send(b"slow;")
        at_once = await upstream.send(b"relation;")
        assert at_once.ok and at_once.has_relation and at_once.raw == RELATION
        node.give_all()
        node.release.set()
        assert (await later).message == "given later"
        assert (await slow).message == "slow done"
        return node.seen

    assert asyncio.run(scenario()) == ["alaivo 1", "later", "slow", "relation"]


def test_send_many_hands_every_request_over_and_answers_in_request_order():
    async def scenario():
        node = ScriptedNode()
        upstream = upstream_of(node)
        await upstream.connect()
        waiting = upstream.send_many(b"a;later;b;", 3)
        assert node.seen == ["a", "later", "b"]   # handed over in the send itself
        node.give_all()
        return [r.message for r in await waiting]

    assert asyncio.run(scenario()) == ["ok a", "given later", "ok b"]


def test_relations_are_decoded_when_asked():
    async def scenario():
        upstream = upstream_of(ScriptedNode(), decode_relations=True)
        return (await upstream.request(b"relation;")).relation

    relation = asyncio.run(scenario())
    assert relation is not None and relation.rows == [[1]]


def test_send_call_answers_in_the_call_when_the_answer_is_ready_and_later_otherwise():
    async def scenario():
        node = ScriptedNode()
        upstream = upstream_of(node)
        await upstream.connect()
        calls: list = []
        upstream.send_call(b"x;", lambda response, error: calls.append(response.message))
        assert calls == ["ok x"]   # no task, no turn of the loop
        upstream.send_call(b"later;", lambda response, error: calls.append(response.message))
        assert calls == ["ok x"]
        node.give_all()
        assert calls == ["ok x", "given later"]
        upstream.send_call(b"bug;", lambda response, error: calls.append(error))
        return calls[-1], upstream.usable

    error, usable = asyncio.run(scenario())
    assert isinstance(error, UpstreamError) and "a bug" in str(error)
    assert not usable   # as over TCP: a failing node closes the connection


def test_a_connection_not_open_sends_nothing():
    async def scenario():
        node = ScriptedNode()
        upstream = upstream_of(node)
        with pytest.raises(NotSent, match="not connected"):
            await upstream.send(b"x;")
        return node.seen

    assert asyncio.run(scenario()) == []


def test_close_connection_answers_then_closes_and_nothing_behind_it_is_handed_over():
    async def scenario():
        node = ScriptedNode()
        upstream = upstream_of(node)
        await upstream.connect()
        with pytest.raises(UpstreamError, match="connection closed"):
            await upstream.send_many(b"refuse;after;", 2)
        await upstream.connect()
        refused = await upstream.send(b"refuse;")
        usable_after = upstream.usable
        again = await upstream.request(b"y;")   # a new session, as a reconnection
        return refused, usable_after, again, node

    refused, usable_after, again, node = asyncio.run(scenario())
    assert refused.message == "Hadisoana : nolavina" and not refused.ok
    assert not usable_after
    assert again.message == "ok y"
    assert "after" not in node.seen
    assert (node.opened, node.closed) == (3, 2)


def test_the_node_s_session_is_closed_once_its_last_answer_is_in():
    async def scenario():
        node = ScriptedNode()
        upstream = upstream_of(node)
        await upstream.connect()
        waiting = upstream.send(b"later;")
        await upstream.close()
        closed_while_waiting = node.closed
        node.give_all()
        answer = await waiting
        return closed_while_waiting, node.closed, answer.message

    assert asyncio.run(scenario()) == (0, 1, "given later")


def test_a_request_count_that_does_not_match_is_refused_unsent():
    async def scenario():
        node = ScriptedNode()
        upstream = upstream_of(node)
        await upstream.connect()
        with pytest.raises(NotSent, match="2 requests framed where 1 were sent"):
            await upstream.send(b"a;b;")
        return node.seen, upstream.usable

    assert asyncio.run(scenario()) == ([], False)


# --- a real proxy over a real balancer, in one process ---------------------


async def _relay(script: dict) -> tuple[ProxyCache, ClientHandler]:
    balancer = await balanced(script)
    proxy = ProxyCache("relay", local_balancer(balancer), ResponseCache(60_000, 100, settle_ms=0),
                       LOG)
    return proxy, proxy.open_client()


async def _ask(handler: ClientHandler, text: str) -> bytes:
    (request,) = RequestFramer().feed(f"{text};".encode())
    answer = handler.answer(request)
    return answer if isinstance(answer, bytes) else await answer


def test_the_proxy_caches_reads_through_the_in_process_balancer_and_writes_invalidate():
    async def scenario():
        script: dict = {"seen": []}
        proxy, handler = await _relay(script)
        assert b"miasa" in await _ask(handler, "ampiasao db")
        first = await _ask(handler, READ.format(1))
        seen_after_first = len(script["seen"])
        assert await _ask(handler, READ.format(1)) == first   # a hit: no server asked
        hit_seen = len(script["seen"])
        await _ask(handler, "manampia ao@ t sanda (2)")
        assert await _ask(handler, READ.format(1)) != b""
        status = proxy.status()
        return seen_after_first, hit_seen, script["seen"], status

    seen_after_first, hit_seen, seen, status = asyncio.run(scenario())
    assert hit_seen == seen_after_first
    assert [t for _, t in seen].count(READ.format(1)) == 2   # read again after the write
    assert status["hits"] == 1 and status["upstream"] == "in-process balancer"
    assert status["balancer"]["clients"] == 1
    assert status["balancer"]["counters"]["writes"] == 1


def test_pipelined_statements_through_the_relay_are_answered_in_order():
    async def scenario():
        script: dict = {"seen": []}
        _, handler = await _relay(script)
        assert b"miasa" in await _ask(handler, "ampiasao db")
        texts = [READ.format(n) for n in range(8)]
        framed = RequestFramer().feed("".join(f"{t};" for t in texts).encode())
        answers = [handler.answer(r) for r in framed]
        return texts, [a if isinstance(a, bytes) else await a for a in answers]

    texts, answers = asyncio.run(scenario())
    assert [t.encode() in a for t, a in zip(texts, answers, strict=True)] == [True] * 8


def test_closing_the_client_closes_its_balancer_session():
    async def scenario():
        script: dict = {"seen": []}
        proxy, handler = await _relay(script)
        await _ask(handler, "ampiasao db")
        await _ask(handler, READ.format(1))
        balancer = proxy.upstream.status()   # type: ignore[union-attr]
        before = balancer["clients"]
        assert handler.closed is not None
        await handler.closed()
        return before, proxy.upstream.status()["clients"]   # type: ignore[union-attr]

    assert asyncio.run(scenario()) == (1, 0)
