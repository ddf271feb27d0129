"""Accounts on the wire (nodes/protocol/login.py) and on a server (nodes/server/accounts.py).

The engine's accounts API is replaced by a small fake (`FakeAccounts`): these
tests are about the node side (framing, the gate before a login, the order
of a login and the statements pipelined behind it, the limits and the log),
served over a real loopback socket by the real `ClientConnection`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import pytest

from nodes.protocol import (
    LOGIN_MALFORMED,
    LOGIN_REFUSED,
    LOGIN_REQUIRED,
    LoginGate,
    RequestFramer,
    decode_responses,
    decode_rights,
    encode_rights,
    login_arguments,
    login_request,
    redact_login,
)
from nodes.protocol.auth import AuthLimiter, AuthRates
from nodes.protocol.wire import ResponseDecoder
from nodes.runtime.serving import ClientConnection
from nodes.server.accounts import (
    AccountsEngine,
    ServerAccounts,
    first_admin_from_environment,
)
from nodes.server.node import DatabaseServer
from tests.conftest import ManualClock

LOG = logging.getLogger("test.login")
PASSWORDS = ["pw", 'a b;"c\\d\n--x //y \'z', "é" * 40, "x" * 1024]


@dataclass(frozen=True)
class FakeIdentity:
    name: str
    admin: bool


class FakeAccounts:
    """verify_login / ensure_first_admin / rights_generation over a dict, with scrypt's delay."""

    def __init__(self, delay_s: float = 0.05):
        self.passwords: dict[str, str] = {}
        self.delay_s = delay_s
        self.generation = 7
        self.threads: set[str] = set()

    def verify(self, store, name: str, password: str):
        import threading

        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay_s)
        if self.passwords.get(name) == password:
            return FakeIdentity(name, name == "mpampianatra")
        return None

    def ensure_first_admin(self, store, name: str, password: str) -> bool:
        if self.passwords:
            return False
        self.passwords[name] = password
        return True

    def api(self) -> AccountsEngine:
        return AccountsEngine(self.verify, self.ensure_first_admin, lambda store: self.generation,
                              lambda store, name: name in self.passwords)


# --------------------------------------------------------------------------
# The wire


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_login_frames_as_one_request_and_gives_back_the_password(password):
    wire = login_request("bob", password)
    for chunks in ([wire], [wire[:i] for i in range(1, 2)] + [wire[1:]],
                   [bytes([b]) for b in wire]):
        framer = RequestFramer()
        requests = [r for chunk in chunks for r in framer.feed(chunk)]
        assert len(requests) == 1 and requests[0].admin == "login"
        assert login_arguments(requests[0]) == ("bob", password)
        assert password not in repr(requests[0])


def test_a_bare_password_is_taken_and_malformed_logins_say_why():
    framer = RequestFramer()
    assert login_arguments(framer.feed(b".login ana s3cret;")[0]) == ("ana", "s3cret")
    for wire, why in ((b".login;", "a name and a password"), (b".login ana;", "a name and a password"),
                      (b".login 9x pw;", "one word"), (b'.login ana "op"en;', "not closed"),
                      (b".login ana two words;", "between double quotes")):
        requests = RequestFramer().feed(wire)
        with pytest.raises(ValueError, match=why):
            login_arguments(requests[0])
    with pytest.raises(ValueError):
        login_request("ana", "")


def test_redaction_hides_every_login_password():
    for password in PASSWORDS[:2]:
        text = login_request("ana", password).decode() + " alaivo x ao@ t;"
        redacted = redact_login(text)
        assert redacted.startswith('.login ana "***"') and redacted.endswith("alaivo x ao@ t;")
    assert redact_login(".login ana secret;") == '.login ana "***";'
    assert redact_login("alaivo * ao@ t;") == "alaivo * ao@ t;"


def test_rights_answers_round_trip():
    assert decode_rights(encode_rights({"m2": 3, "m1": 3})) == {"m1": 3, "m2": 3}
    assert decode_rights("[1]") is None and decode_rights('{"m1": "3"}') is None


def test_the_gate_locks_out_an_address_and_logs_name_and_address_never_the_password(caplog):
    clock = ManualClock()
    gate = LoginGate(LOG, AuthLimiter(AuthRates(per_address_failures=3), clock=clock))
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        for _ in range(3):
            assert gate.admit("10.0.0.5:4000") == (None, 0.0)
            gate.refused("10.0.0.5:4000", "ana")
            clock.now += 2   # past the one-line-a-second log limit
    refusal, _ = gate.admit("10.0.0.5:4001")
    assert refusal is not None and b"locked out" in refusal
    assert gate.admit("10.0.0.6:1") == (None, 0.0)   # another address is not
    assert "refused login as ana from 10.0.0.5:4000" in caplog.text
    assert "locked out" in caplog.text
    assert gate.status()["login_lockouts"] == 1


# --------------------------------------------------------------------------
# A server with --accounts, over a real socket


async def _serve(server: DatabaseServer):
    stats = server.stats
    stats.login = LoginGate(LOG)
    connections: set = set()
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        lambda: ClientConnection(server.open_client, stats, LOG, 1 << 20, None, connections),
        "127.0.0.1", 0)
    return listener, listener.sockets[0].getsockname()[1]


async def _exchange(port: int, data: bytes, count: int, timeout: float = 10.0):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    decoder = ResponseDecoder()
    responses: list = []
    closed = False
    while len(responses) < count:
        chunk = await asyncio.wait_for(reader.read(65536), timeout)
        if not chunk:
            closed = True
            break
        responses.extend(decoder.feed(chunk))
    writer.close()
    return responses, closed


@pytest.fixture
def accounts_server(tmp_path):
    """A server with --accounts over real account files: "ana" (an administrator), "right-pass"."""
    from engine.storage.store import Store

    fake = FakeAccounts()
    store = Store(tmp_path / "data")
    real = AccountsEngine.from_engine()
    assert real.ensure_first_admin(store, "ana", "right-pass")

    def verify(store, name, password):
        fake.verify(store, name, password)   # its delay and its thread
        return real.verify_login(store, name, password)

    api = AccountsEngine(verify, real.ensure_first_admin, real.rights_generation,
                         real.account_exists, login_problem=real.login_problem,
                         is_administrator=real.is_administrator)
    accounts = ServerAccounts("m1", store, True, api, logger=LOG)
    server = DatabaseServer("m1", store, LOG, inline=True, accounts=accounts)
    yield server, fake
    accounts.stop()


def test_before_a_login_only_auth_login_ping_status_and_rights_are_answered(accounts_server):
    server, _ = accounts_server

    async def scenario():
        listener, port = await _serve(server)
        async with listener:
            return await _exchange(port, b".ping; .status; alaivo 1; manamboara tahiry x; "
                                         b".versions x t; .rights; .ping;", 7)

    responses, closed = asyncio.run(scenario())
    assert not closed
    assert responses[0].message.startswith("PONG m1") and responses[1].ok
    assert [r.message for r in responses[2:5]] == [LOGIN_REQUIRED] * 3
    assert list(decode_rights(responses[5].message) or {}) == ["m1"]
    assert responses[6].ok
    assert not (server.store.root / "x").exists()   # nothing was run


def test_statements_pipelined_behind_a_login_run_as_that_account(accounts_server):
    server, fake = accounts_server

    async def scenario():
        listener, port = await _serve(server)
        async with listener:
            wire = login_request("ana", "right-pass") + b" manamboara tahiry x; ampiasao x; .rights; .status;"
            return await _exchange(port, wire, 5)

    responses, closed = asyncio.run(scenario())
    assert [r.ok for r in responses] == [True] * 5, [r.message for r in responses]
    assert "ana" in responses[0].message
    assert list(decode_rights(responses[3].message) or {}) == ["m1"]
    # (ana is an administrator: the account names are shown to her.)
    assert '"ana":{"logins":1,"failures":0,"sessions":1}' in responses[4].message
    assert fake.threads and all(name.startswith("login") for name in fake.threads)


def test_a_wrong_password_is_refused_closes_and_is_logged_without_it(accounts_server, caplog):
    server, _ = accounts_server

    async def scenario():
        listener, port = await _serve(server)
        async with listener:
            wrong = await _exchange(port, login_request("ana", "guess-me") + b" alaivo 1;", 2)
            await _exchange(port, login_request("nobody", "guess-me"), 1)
            malformed = await _exchange(port, b".login ana;", 1)
            status = await _exchange(port, b".status;", 1)
            server.accounts.status_token = "ab" * 32   # what the supervisor gives the server
            by_token = await _exchange(port, b".status " + b"ab" * 32 + b";", 1)
            return wrong, malformed, status, by_token

    with caplog.at_level(logging.INFO, logger=LOG.name):
        (wrong, closed), (malformed, _), (status, _), (by_token, _) = asyncio.run(scenario())
    assert closed and [r.message for r in wrong] == [LOGIN_REFUSED]
    assert malformed[0].message.startswith(LOGIN_MALFORMED.split("{")[0])
    assert "refused login as ana from 127.0.0.1:" in caplog.text
    assert "guess-me" not in caplog.text
    # Before a login, the counts without the names; with the supervisor's token, by name.
    assert '"ana"' not in status[0].message and '"accounts"' not in status[0].message
    assert '"ana":{"logins":0,"failures":1,"sessions":0}' in by_token[0].message
    assert '"login_failures":2' in status[0].message and '"login_failures_unknown":1' in status[0].message
    assert "nobody" not in status[0].message + by_token[0].message


def test_the_event_loop_answers_while_a_login_is_verified(accounts_server):
    server, fake = accounts_server
    fake.delay_s = 0.5

    async def scenario():
        listener, port = await _serve(server)
        async with listener:
            login = asyncio.ensure_future(_exchange(port, login_request("ana", "right-pass"), 1))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            await _exchange(port, b".ping;", 1)
            ping_s = time.monotonic() - started
            await login
            return ping_s

    assert asyncio.run(scenario()) < 0.25


def test_without_accounts_a_login_is_not_needed_and_changes_nothing(tmp_path):
    from engine.storage.store import Store

    store = Store(tmp_path / "data")
    server = DatabaseServer("m1", store, LOG, inline=True,
                            accounts=ServerAccounts("m1", store, False, FakeAccounts().api()))

    async def scenario():
        listener, port = await _serve(server)
        async with listener:
            return await _exchange(port, b"manamboara tahiry y; " + login_request("x", "y")
                                   + b" ampiasao y;", 3)

    responses, _ = asyncio.run(scenario())
    assert [r.ok for r in responses] == [True, True, True]
    assert "not needed" in responses[1].message


def test_the_first_administrator_comes_from_the_environment_which_forgets_it():
    fake = FakeAccounts()
    environ = {"TAHIRY_ADMIN_USER": "mpampianatra", "TAHIRY_ADMIN_PASSWORD": "long secret", "X": "1"}
    assert first_admin_from_environment(None, fake.api(), LOG, environ) is True
    assert environ == {"X": "1"} and fake.passwords == {"mpampianatra": "long secret"}
    again = {"TAHIRY_ADMIN_USER": "other", "TAHIRY_ADMIN_PASSWORD": "p"}
    assert first_admin_from_environment(None, fake.api(), LOG, again) is False
    assert first_admin_from_environment(None, fake.api(), LOG, {"X": "1"}) is None


def test_decode_responses_is_the_protocols():
    assert decode_responses(b"RESULT_MESSAGE\nok\nEND\n")[0].ok


def test_an_unexpected_login_is_refused_without_echoing_the_password():
    from nodes.runtime.serving import admin_response

    request = RequestFramer().feed(login_request("ana", "Hunter2-secret"))[0]
    answer = admin_response(request, "lb", "balancer", dict)
    assert b"Hunter2" not in answer and b"Fangatahana tsy fantatra : .login" in answer
