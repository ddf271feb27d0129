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
from tests.nodes.scripted_backends import ScriptedBackend, ask, balanced

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
