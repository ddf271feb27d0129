"""Scripted backends for the balancer's fast paths (tests/nodes/test_relay_fast_paths.py,
tests/nodes/test_fast_writes.py): real sockets, a few lines of behaviour each.

A `ScriptedBackend` answers `ampiasao db`, a read with who answered and what,
a write (`manampia ...`) with who wrote it (counting the writes it took), and
`.versions db t` with that count; `script["fault:<id>"]` texts get a storage
fault, `script["drop:<id>"]` texts drop the connection, and every request is
noted in `script["seen"]` as (backend id, text).
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from nodes.balancer.backend_config import BackendSpec
from nodes.balancer.backend_pool import BackendPool
from nodes.balancer.backends import Timeouts
from nodes.balancer.health import HealthPolicy
from nodes.balancer.node import Balancer
from nodes.protocol import RequestFramer, encode_message

LOG = logging.getLogger("test.scripted_backends")

READ = "alaivo * ao@ t rehefa id = {}"


def relation_answer(backend_id: str, text: str) -> bytes:
    """What a scripted backend answers to a read: who answered, and the text."""
    return (b'RELATION_JSON_PAGE 1/1\n{"type":"relation","name":"t","page":1,"totalPages":1,'
            b'"columns":[{"name":"at","origin":"t"}],"rows":[["' + backend_id.encode()
            + b'","' + text.encode() + b'"]]}\nRELATION_JSON_END\nRESULT_MESSAGE\nok\nEND\n')


class ScriptedBackend(asyncio.Protocol):
    """A server as the module docstring says: `script` is shared by every backend of a test."""

    def __init__(self, backend_id: str, script: dict) -> None:
        self.backend_id = backend_id
        self.script = script
        self.framer = RequestFramer()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for request in self.framer.feed(data):
            text = request.text
            self.script["seen"].append((self.backend_id, text))
            if text.startswith("ampiasao"):
                answer = encode_message(f"Ny tahiry : {text.split()[1]} dia miasa ankehitriny")
            elif text in self.script.get(f"drop:{self.backend_id}", ()):
                self.transport.abort()
                return
            elif text in self.script.get(f"fault:{self.backend_id}", ()):
                operation = "write" if text.startswith("manampia") else "read"
                answer = encode_message(f"Hadisoana : Tsy voavaky ny t [storage:{operation}]")
            elif text.startswith(".versions"):
                written = self.script.get(f"writes:{self.backend_id}", 0)
                answer = encode_message(orjson.dumps({"t": {"table": written}}).decode())
            elif text.startswith("manampia"):
                key = f"writes:{self.backend_id}"
                self.script[key] = self.script.get(key, 0) + 1
                answer = encode_message(f"voasoratra {self.backend_id} {text}")
            else:
                answer = relation_answer(self.backend_id, text)
            self.transport.write(answer)


async def balanced(script: dict, ids=("m1", "m2")) -> Balancer:
    """A balancer in front of a scripted backend per id (all ONLINE)."""
    loop = asyncio.get_running_loop()
    specs = []
    for backend_id in ids:
        server = await loop.create_server(lambda b=backend_id: ScriptedBackend(b, script),
                                          "127.0.0.1", 0)
        script.setdefault("servers", []).append(server)
        specs.append(BackendSpec(backend_id, "127.0.0.1", server.sockets[0].getsockname()[1]))
    pool = BackendPool(HealthPolicy(rise=1, fall=5), LOG)
    pool.apply_specs(specs)
    for backend in pool:
        pool.record_success(backend)
    return Balancer("lb", pool, Timeouts(connect=1.0, probe=1.0, request=2.0), LOG)


async def ask(balancer: Balancer, handler, text: str) -> bytes:
    """One statement through a client handler of `balancer`, awaited if it must be."""
    (request,) = RequestFramer().feed(f"{text};".encode())
    answer = handler.answer(request)
    return answer if isinstance(answer, bytes) else await answer


async def session_with_connections(balancer: Balancer):
    """A client handler whose session has a ready connection to every backend."""
    handler = balancer.open_client()
    assert b"miasa" in await ask(balancer, handler, "ampiasao db")
    for _ in range(4):   # reads spread: every backend gets its connection
        await ask(balancer, handler, READ.format(0))
    return handler
