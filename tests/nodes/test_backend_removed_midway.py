"""A backend removed from the backends file while a statement is being tried on another.

A hot reload that restarts or moves servers (a port moved, a server removed,
`supervisor: local_sockets` flipped) rewrites the balancer's backends file
while clients are using it: a statement whose first backend fails before
anything is sent goes on to the next one, which the pool may no longer hold.
That one is then unavailable like any other (the statement goes on to the
next, or gets "no backend"), never the balancer's internal error.

Real sockets (tests/nodes/scripted_backends.py): the first backend, on the
request it is given, has the other removed from the pool and drops the
connection, so nothing was applied.
"""

from __future__ import annotations

import asyncio

from nodes.balancer.backend_config import BackendSpec
from nodes.balancer.node import INTERNAL_ERROR, NO_BACKEND_TO_ANSWER, NO_BACKEND_TO_WRITE
from nodes.balancer.routing import rank_owners
from nodes.protocol import RequestFramer
from tests.nodes.scripted_backends import READ, ScriptedBackend, ask, balanced

OWNER, OTHER = rank_owners("db", "t", ["m1", "m2"])


class RemovingBackend(ScriptedBackend):
    """Answers as a scripted backend, but on `script["remove_on"]` removes the other
    backend from the pool (the backends file rewritten) and drops the connection."""

    def data_received(self, data: bytes) -> None:
        for request in RequestFramer().feed(data):
            if request.text.startswith(self.script["remove_on"]):
                pool = self.script["pool"]
                pool.apply_specs([pool[self.backend_id].spec])
                self.transport.abort()
                return
        super().data_received(data)


async def balancer_with_removing(first: str, remove_on: str):
    """A balancer whose backend `first` is a `RemovingBackend`, the one tried first."""
    script: dict = {"seen": [], "remove_on": remove_on}
    balancer = await balanced(script)
    script["pool"] = balancer.pool
    server = await asyncio.get_running_loop().create_server(
        lambda: RemovingBackend(first, script), "127.0.0.1", 0)
    script["servers"].append(server)
    port = server.sockets[0].getsockname()[1]
    others = [backend.spec for backend in balancer.pool if backend.id != first]
    balancer.pool.apply_specs([BackendSpec(first, "127.0.0.1", port), *others])
    for backend in balancer.pool:
        balancer.pool.record_success(backend)
    # Least loaded first: the one the test wants tried first.
    for backend in balancer.pool:
        backend.outstanding = 0 if backend.id == first else 1
    return balancer


def test_a_database_choice_whose_next_backend_was_removed_meanwhile_is_no_internal_error():
    async def scenario():
        balancer = await balancer_with_removing(OWNER, "ampiasao")
        answer = await ask(balancer, balancer.open_client(), "ampiasao db")
        assert INTERNAL_ERROR.encode() not in answer
        assert NO_BACKEND_TO_ANSWER.encode() in answer

    asyncio.run(scenario())


def test_a_write_whose_next_owner_was_removed_meanwhile_is_no_internal_error():
    async def scenario():
        balancer = await balancer_with_removing(OWNER, "ampiasao")
        handler = balancer.open_client()
        session = handler.answer.args[0]   # functools.partial(handle, session)
        session.database = "db"   # chosen before (its connection to the owner is new)
        write = "manampia ao@ t sanda (1, 'x')"
        (request,) = RequestFramer().feed(f"{write};".encode())
        answer = await balancer.answer(session, request)
        assert INTERNAL_ERROR.encode() not in answer
        assert NO_BACKEND_TO_WRITE.encode() in answer

    asyncio.run(scenario())


class HoldingBackend(ScriptedBackend):
    """Answers as a scripted backend, but keeps its answer to a text of `script["hold"]`,
    and to whatever follows it on that connection, until `script["release"]` is set (a
    statement still on its way when a reload rewrites the backends file)."""

    held: list[bytes] | None = None   # the requests kept back, in order

    def data_received(self, data: bytes) -> None:
        for request in RequestFramer().feed(data):
            text = request.text.encode() + b";"
            if self.held is None and request.text in self.script.get("hold", ()):
                self.held = []
                self.script["held"].set()
                asyncio.get_running_loop().create_task(self._answer_later())
            if self.held is not None:
                self.held.append(text)
            else:
                super().data_received(text)

    async def _answer_later(self) -> None:
        await self.script["release"].wait()
        held, self.held = self.held, None
        super().data_received(b"".join(held))


async def balancer_with_holding(write: str):
    """A balancer in front of two holding backends; `write`'s answer is kept back."""
    script: dict = {"seen": [], "hold": {write}, "held": asyncio.Event(),
                    "release": asyncio.Event(), "servers": []}
    loop = asyncio.get_running_loop()
    specs = []
    for backend_id in ("m1", "m2"):
        server = await loop.create_server(lambda b=backend_id: HoldingBackend(b, script),
                                          "127.0.0.1", 0)
        script["servers"].append(server)
        specs.append(BackendSpec(backend_id, "127.0.0.1", server.sockets[0].getsockname()[1]))
    balancer = await balanced({"seen": []})
    balancer.pool.apply_specs(specs)
    for backend in balancer.pool:
        balancer.pool.record_success(backend)
    return balancer, script


def test_a_write_on_its_way_to_a_backend_removed_meanwhile_gets_its_answer():
    """The backends file loses the owner while the owner is writing: the statement is
    not cut (before: its connection was aborted, its client told "outcome unknown"); the
    pool sends nothing new there, lists it as retiring until the answer is in (what the
    supervisor's reload waits for before it stops the server), then closes its
    connections."""
    write = "manampia ao@ t sanda (1, 'x')"

    async def scenario():
        balancer, script = await balancer_with_holding(write)
        handler = balancer.open_client()
        assert b"miasa" in await ask(balancer, handler, "ampiasao db")
        on_its_way = asyncio.ensure_future(ask(balancer, handler, write))
        await asyncio.wait_for(script["held"].wait(), 5)
        owner = balancer.pool[OWNER]
        balancer.pool.apply_specs([balancer.pool[OTHER].spec])   # the reload drops the owner
        assert OWNER not in balancer.pool.status()
        assert balancer.status()["retiring"] == {OWNER: 1}
        assert OWNER not in balancer.pool.candidates()
        script["release"].set()
        answer = await asyncio.wait_for(on_its_way, 5)
        assert f"voasoratra {OWNER} {write}".encode() in answer, answer
        assert not owner.connections
        assert balancer.status()["retiring"] == {}
        # The next write goes to the one backend left.
        script["hold"] = set()
        again = await ask(balancer, handler, "manampia ao@ t sanda (2, 'y')")
        assert f"voasoratra {OTHER} ".encode() in again, again

    asyncio.run(scenario())


def test_an_idle_connection_to_a_removed_backend_is_closed_at_once():
    async def scenario():
        balancer, _ = await balancer_with_holding("never")
        handler = balancer.open_client()
        assert b"miasa" in await ask(balancer, handler, "ampiasao db")
        for number in range(4):   # reads spread: every backend gets its connection
            await ask(balancer, handler, READ.format(number))
        leaving = balancer.pool[OWNER]
        assert leaving.connections
        balancer.pool.apply_specs([balancer.pool[OTHER].spec])
        assert not leaving.connections
        assert balancer.status()["retiring"] == {}

    asyncio.run(scenario())
