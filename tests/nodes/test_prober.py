"""nodes.balancer.prober: one probe is one round trip (`.ping;` and `.rights;` in one write),
and the rights answer never decides a backend's health.

The backend is a fake server over a real socket that answers as told.
"""

from __future__ import annotations

import asyncio
import logging

from nodes.balancer.backend_config import BackendSpec
from nodes.balancer.backend_pool import BackendPool
from nodes.balancer.health import BackendState, HealthPolicy
from nodes.balancer.prober import Prober
from nodes.protocol import encode_message, encode_rights

LOG = logging.getLogger("test.prober")
PROBE_TIMEOUT_S = 0.3


class FakeBackend:
    """Answers `.ping;` with PONG and `.rights;` with `generation` (never, when None).

    `pipelined_only`: the ping is answered only once the `.rights;` behind it
    has arrived too, as a server would answer both of one write; a prober
    that waits for the ping's answer before it sends `.rights;` gets none.
    """

    def __init__(self, generation: int | None = 7, pipelined_only: bool = False):
        self.generation = generation
        self.pipelined_only = pipelined_only
        self.connections = 0
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._handlers: list[asyncio.Task] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()   # each handler then reads its end and returns
        await asyncio.gather(*self._handlers)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        self._handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        pending: list[str] = []
        buffer = b""
        try:
            while chunk := await reader.read(4096):
                buffer += chunk
                *complete, buffer = buffer.split(b";")
                pending += [request.strip().decode() for request in complete]
                self.requests += [request.strip().decode() for request in complete]
                if self.pipelined_only and pending[-1:] == [".ping"]:
                    continue   # waits for the request behind it
                for request in pending:
                    answer = self._answer(request)
                    if answer is not None:
                        writer.write(answer)
                pending = []
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _answer(self, request: str) -> bytes | None:
        if request == ".ping":
            return encode_message("PONG m1 server")
        if request == ".rights":
            if self.generation is None:
                return None
            return encode_message(encode_rights({"m1": self.generation}))
        return encode_message("Hadisoana : unexpected request")


def probed(fake: FakeBackend, rounds: int, known_generation: int | None = None):
    """Run `rounds` probes of one backend served by `fake`: (its state, its rights generation,
    the connections the fake saw, the requests it got)."""

    async def scenario():
        port = await fake.start()
        pool = BackendPool(HealthPolicy(rise=1, fall=1), LOG)
        pool.apply_specs([BackendSpec("m1", "127.0.0.1", port)])
        backend = pool["m1"]
        if known_generation is not None:
            pool.saw_rights("m1", known_generation)
        prober = Prober(pool, PROBE_TIMEOUT_S, interval=1.0)
        try:
            for _ in range(rounds):
                await prober.probe(backend)
        finally:
            backend.abort_connections()
            await fake.close()
        return backend.health.state, backend.rights_generation, fake.connections, fake.requests

    return asyncio.run(scenario())


def test_a_probe_sends_both_requests_in_one_write():
    # Fails when `.rights;` waits for the ping's answer: this backend answers
    # the ping only once it has seen the request behind it.
    state, generation, connections, requests = probed(FakeBackend(pipelined_only=True), 2)
    assert state is BackendState.ONLINE
    assert generation == 7
    assert (connections, requests) == (1, [".ping", ".rights"] * 2)   # one connection, kept


def test_a_backend_that_never_answers_rights_stays_healthy_and_keeps_its_generation():
    # The ping answered: healthy. The rights answer missing: its last known
    # generation kept (it falls behind the others once they move), and the
    # connection replaced (a late answer could no longer be matched).
    state, generation, connections, requests = probed(FakeBackend(generation=None), 3,
                                                      known_generation=4)
    assert state is BackendState.ONLINE
    assert generation == 4
    assert connections == 3 and requests == [".ping", ".rights"] * 3


def test_a_backend_that_never_answers_rights_is_no_rights_candidate_once_others_move():
    async def scenario():
        silent, answering = FakeBackend(generation=None), FakeBackend(generation=9)
        ports = [await silent.start(), await answering.start()]
        pool = BackendPool(HealthPolicy(rise=1, fall=1), LOG)
        pool.apply_specs([BackendSpec("m1", "127.0.0.1", ports[0]),
                          BackendSpec("m2", "127.0.0.1", ports[1])])
        pool.saw_rights("m1", 4)   # what it said before it went silent on rights
        prober = Prober(pool, PROBE_TIMEOUT_S, interval=1.0)
        try:
            await prober.probe_all()
        finally:
            for backend in pool:
                backend.abort_connections()
            await silent.close()
            await answering.close()
        return sorted(pool.candidates()), pool.candidates(rights_current=True)

    assert asyncio.run(scenario()) == (["m1", "m2"], ["m2"])


def test_a_ping_not_answered_marks_the_backend_down():
    class Mute(FakeBackend):
        def _answer(self, request: str) -> bytes | None:
            return None

    state, generation, _, _ = probed(Mute(), 1)
    assert state is BackendState.OFFLINE and generation is None


def test_a_bad_ping_answer_is_a_failure_and_its_rights_answer_is_not_kept():
    class Refusing(FakeBackend):
        def _answer(self, request: str) -> bytes | None:
            if request == ".ping":
                return encode_message("Hadisoana : not now")
            return super()._answer(request)

    state, generation, _, _ = probed(Refusing(), 1)
    assert state is BackendState.OFFLINE and generation is None
