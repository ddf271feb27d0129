"""Passwords set by statement are hashed off the engine thread (nodes/server/node.py).

A real `DatabaseServer` with its engine thread, accounts required, over real
account files and a real loopback socket. The engine's `hash_password` is
wrapped to record the thread that runs it, and, in one test, to hold the
hash until the test lets it go: another connection's insert is answered
meanwhile, which it never was while the hash ran on the engine thread.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading

import pytest

from engine.storage import accounts as stored_accounts
from engine.storage.store import Store
from nodes.protocol import LoginGate, login_request
from nodes.protocol.wire import ResponseDecoder
from nodes.runtime.serving import ClientConnection
from nodes.server.accounts import AccountsEngine, ServerAccounts
from nodes.server.node import DatabaseServer
from tests.conftest import wait_until

LOG = logging.getLogger("test.password_hashing")
ADMIN, ADMIN_PW = "ana", "Ana-pass-12345"
WAIT_S = 10.0


class RecordedHashes:
    """`hash_password` as the engine has it, recording each caller's thread; `hold()` makes
    the next hashes wait for `release()`."""

    def __init__(self, real):
        self.real = real
        self.threads: list[str] = []
        self.entered = threading.Event()
        self.go_on = threading.Event()
        self.go_on.set()

    def __call__(self, password: str, salt: bytes | None = None) -> dict:
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.go_on.wait(WAIT_S), "the test never let the hash go on"
        return self.real(password, salt)

    def hold(self) -> None:
        self.go_on.clear()
        self.entered.clear()

    def release(self) -> None:
        self.go_on.set()


@pytest.fixture
def hashes(monkeypatch):
    recorded = RecordedHashes(stored_accounts.hash_password)
    monkeypatch.setattr(stored_accounts, "hash_password", recorded)
    yield recorded
    recorded.release()


@pytest.fixture
def server(tmp_path):
    """A server with its engine thread and --accounts; administrator "ana", database "s"."""
    store = Store(tmp_path / "data")
    api = AccountsEngine.from_engine()
    assert api.ensure_first_admin(store, ADMIN, ADMIN_PW)
    accounts = ServerAccounts("m1", store, True, api, logger=LOG)
    server = DatabaseServer("m1", store, LOG, accounts=accounts)
    yield server
    asyncio.run(server.stop())


async def _serve(server: DatabaseServer):
    server.stats.login = LoginGate(LOG)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        lambda: ClientConnection(server.open_client, server.stats, LOG, 1 << 20, None, set()),
        "127.0.0.1", 0)
    return listener, listener.sockets[0].getsockname()[1]


class Connection:
    """One client connection: `ask(text, count)` sends and reads `count` answers."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.decoder = ResponseDecoder()
        self.ready: list = []

    @classmethod
    async def open(cls, port: int, name: str = ADMIN, password: str = ADMIN_PW) -> Connection:
        connection = cls(*await asyncio.open_connection("127.0.0.1", port))
        [answer] = await connection.ask(login_request(name, password).decode(), 1)
        assert answer.ok, answer.message
        return connection

    def send(self, text: str) -> None:
        self.writer.write(text.encode())

    async def read(self, count: int) -> list:
        while len(self.ready) < count:
            chunk = await asyncio.wait_for(self.reader.read(65536), WAIT_S)
            assert chunk, "connection closed"
            self.ready.extend(self.decoder.feed(chunk))
        taken, self.ready = self.ready[:count], self.ready[count:]
        return taken

    async def ask(self, text: str, count: int = 1) -> list:
        self.send(text)
        return await self.read(count)

    def close(self) -> None:
        self.writer.close()


def run(server: DatabaseServer, scenario):
    async def main():
        listener, port = await _serve(server)
        async with listener:
            return await scenario(port)
    return asyncio.run(main())


def test_the_engine_thread_never_runs_scrypt_for_a_statement(server, hashes):
    async def scenario(port):
        ana = await Connection.open(port)
        answers = await ana.ask(
            "manamboara tahiry s; ampiasao s; manamboara tabilao t (id ISA(null,null));"
            'manamboara mpampiasa rabe tenimiafina "Rabe-first-1";'
            "omeo rabe zo manoratra ao@ s;"
            "-- opened by comments\n  // (skipped to find what it is)\n"
            'ovay ny tenimiafina rabe "Rabe-second-2";'
            "manampia ao@ t sanda (1);"
            'ovay ny tenimiafina ana "Ana-new-pass-9";', 8)
        ana.close()
        return answers

    answers = run(server, scenario)
    assert [a.ok for a in answers] == [True] * 8, [a.message for a in answers]
    assert len(hashes.threads) == 3
    assert not [name for name in hashes.threads if name == "engine"], hashes.threads
    store = server.store
    assert stored_accounts.verify_login(store, "rabe", "Rabe-second-2") is not None
    assert stored_accounts.verify_login(store, "rabe", "Rabe-first-1") is None
    assert stored_accounts.verify_login(store, ADMIN, "Ana-new-pass-9") is not None
    assert store.read("s", "grant", "rabe")["right"] == "write"


def test_other_connections_writes_go_on_while_a_password_is_hashed(server, hashes):
    async def scenario(port):
        ana = await Connection.open(port)
        await ana.ask("manamboara tahiry s; ampiasao s; manamboara tabilao t (id ISA(null,null));", 3)
        other = await Connection.open(port)
        await other.ask("ampiasao s;")
        hashes.hold()
        ana.send('manamboara mpampiasa rabe tenimiafina "Rabe-first-1"; manampia ao@ t sanda (1);')
        assert await asyncio.to_thread(hashes.entered.wait, WAIT_S)
        # The hash is held: the other connection's write is answered all the same.
        inserted = await other.ask("manampia ao@ t sanda (2); alaivo id ao@ t;", 2)
        hashes.release()
        created = await ana.read(2)
        after = await other.ask("alaivo id ao@ t;")
        ana.close()
        other.close()
        return inserted, created, after

    inserted, created, after = run(server, scenario)
    assert [a.ok for a in inserted] == [True, True], [a.message for a in inserted]
    assert inserted[1].relation.rows == [[2]]   # ana's insert waits behind its account
    assert [a.ok for a in created] == [True, True], [a.message for a in created]
    assert sorted(after[0].relation.rows) == [[1], [2]]


def test_a_statement_that_would_be_refused_costs_no_hash(server, hashes):
    async def scenario(port):
        ana = await Connection.open(port)
        await ana.ask('manamboara mpampiasa rabe tenimiafina "Rabe-first-1";')
        hashes.threads.clear()
        rabe = await Connection.open(port, "rabe", "Rabe-first-1")
        refused = await rabe.ask('manamboara mpampiasa koto tenimiafina "Koto-pass-44";'
                                 'ovay ny tenimiafina ana "Taken-over-55";'
                                 'ovay ny tenimiafina rabe "short";', 3)
        rabe.close()
        ana.close()
        return refused

    refused = run(server, scenario)
    assert [a.ok for a in refused] == [False] * 3
    assert "mpitantana ihany" in refused[0].message
    assert "tenimiafinao ihany" in refused[1].message
    assert "Fohy loatra" in refused[2].message
    assert hashes.threads == []


def test_a_statement_whose_connection_is_gone_before_its_hash_is_not_run(server, hashes):
    handed_over = asyncio.Event()
    hand_over = server._hand_over_held

    def hand_over_held(client) -> None:   # (its hash is done: the held statements' turn)
        hand_over(client)
        handed_over.set()

    server._hand_over_held = hand_over_held  # type: ignore[method-assign]

    async def scenario(port):
        ana = await Connection.open(port)
        await ana.ask("manamboara tahiry s;")
        gone = await Connection.open(port)
        hashes.hold()
        gone.send('manamboara mpampiasa rabe tenimiafina "Rabe-first-1"; ampiasao s;')
        assert await asyncio.to_thread(hashes.entered.wait, WAIT_S)
        # A reset (SO_LINGER 0), as a client killed with its answers unread: they are cancelled.
        gone.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                        struct.pack("ii", 1, 0))
        gone.writer.transport.abort()
        await asyncio.to_thread(wait_until, lambda: server.stats.open_connections == 1, WAIT_S,
                                "the server to see the connection gone")
        hashes.release()
        await asyncio.wait_for(handed_over.wait(), WAIT_S)
        # Whatever was handed over then runs before the next statement.
        [listed] = await ana.ask("asehoy ny mpampiasa;")
        ana.close()
        return listed

    listed = run(server, scenario)
    assert [row[0] for row in listed.relation.rows] == [ADMIN]
    assert server.store.read_account("rabe") is None


def test_the_first_administrator_retried_at_idle_ticks_is_hashed_once(tmp_path, monkeypatch):
    """A peer unreachable at start-up: the first administrator is created by an idle
    task of the engine thread, tried at each tick; the password is hashed once, not per try."""
    from engine.errors import TahiryError
    from nodes.server.startup import first_admin_task

    hashes = RecordedHashes(stored_accounts.hash_password)
    monkeypatch.setattr(stored_accounts, "hash_password", hashes)
    engine = AccountsEngine.from_engine()
    tries = []

    def unreachable_twice(store, name, password, stored=None):
        tries.append(stored)
        if len(tries) <= 2:
            raise TahiryError("a peer is unreachable (as the certified write would say)")
        return engine.ensure_first_admin(store, name, password, stored)

    api = AccountsEngine(engine.verify_login, unreachable_twice, engine.rights_generation,
                         hash_ahead=engine.hash_ahead)
    store = Store(tmp_path / "data", durable=False)
    attempt = first_admin_task(store, (ADMIN, ADMIN_PW), LOG, api)
    assert [attempt(), attempt(), attempt()] == [False, False, True]
    assert len(hashes.threads) == 1 and all(stored is not None for stored in tries)
    assert engine.verify_login(store, ADMIN, ADMIN_PW) is not None
    assert engine.verify_login(store, ADMIN, "not-the-password") is None
