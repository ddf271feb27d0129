"""The control channel between machines' supervisors: the secret, read-only, TLS, versions.

Real sockets on loopback (a machine's address is just an address to
`listen_remote`); supervisor/control.py is the module under test.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from nodes.protocol.tls import client_context, server_context
from supervisor.control import (
    CONTROL_VERSION,
    ControlServer,
    NotRunning,
    VersionMismatch,
    ask_remote,
    new_token,
    send_command,
)

SECRET = "a-class-secret-of-some-length"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def obey(request: dict) -> dict:
    return {"ok": True, "done": request["cmd"], "scope": request.get("scope")}


async def with_remote_listener(check, tls_server=None):
    server = ControlServer(free_port(), obey, token=new_token())
    assert await server.listen_remote(frozenset({"127.0.0.1"}), tls_server, SECRET) == []
    try:
        return await check(server.port)
    finally:
        await server.close()


def test_another_machine_reads_status_with_the_secret_and_nothing_more():
    async def check(port: int) -> None:
        answer = await ask_remote("127.0.0.1", port, {"cmd": "status", "scope": "machine"},
                                  SECRET, None, 2.0)
        assert answer == {"ok": True, "done": "status", "scope": "machine",
                          "version": CONTROL_VERSION}
        for secret in (None, "", "wrong", SECRET[:-1]):
            refused = await ask_remote("127.0.0.1", port, {"cmd": "status"}, secret, None, 2.0)
            assert refused["ok"] is False and "secret" in refused["error"], refused
        # The control token never leaves its machine: with the secret, `down` is still refused.
        for command in ("down", "restart", "reload"):
            refused = await ask_remote("127.0.0.1", port, {"cmd": command, "token": "x"},
                                       SECRET, None, 2.0)
            assert refused["ok"] is False and "on this machine itself" in refused["error"]

    asyncio.run(with_remote_listener(check))


def test_a_request_of_another_version_is_refused_with_a_clear_sentence():
    async def check(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(json.dumps({"cmd": "status", "secret": SECRET, "version": 99}).encode()
                     + b"\n")
        answer = json.loads(await reader.readline())
        writer.close()
        assert answer["ok"] is False and answer["version"] == CONTROL_VERSION
        assert "control protocol version 99" in answer["error"]
        assert "same Tahiry release" in answer["error"]

    asyncio.run(with_remote_listener(check))


@pytest.mark.parametrize("answer", [{"ok": True, "version": CONTROL_VERSION + 1},
                                    {"ok": True}])
def test_an_answer_of_another_version_is_an_error_not_a_status(answer):
    async def fake(reader, writer) -> None:
        await reader.readline()
        writer.write(json.dumps(answer).encode() + b"\n")
        await writer.drain()
        writer.close()

    async def check() -> None:
        server = await asyncio.start_server(fake, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(VersionMismatch, match="same Tahiry release"):
                await ask_remote("127.0.0.1", port, {"cmd": "status"}, SECRET, None, 2.0)
        finally:
            server.close()

    asyncio.run(check())


@pytest.mark.parametrize("reply", [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"[" * 30000 + b"\n"])
def test_nothing_or_something_else_on_the_port_is_not_running(reply):
    """Something else answering, even `[[[[...` nested too deep for json (RecursionError,
    a traceback from `status` before), is "not a Tahiry supervisor"."""
    async def other(reader, writer) -> None:
        await reader.readline()
        writer.write(reply)
        await writer.drain()
        writer.close()

    async def check() -> None:
        with pytest.raises(NotRunning, match="no supervisor answers"):
            await ask_remote("127.0.0.1", free_port(), {"cmd": "status"}, SECRET, None, 2.0)
        server = await asyncio.start_server(other, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(NotRunning, match="not a Tahiry supervisor"):
                await ask_remote("127.0.0.1", port, {"cmd": "status"}, SECRET, None, 2.0)
            with pytest.raises(NotRunning, match="not a Tahiry supervisor"):
                await asyncio.to_thread(send_command, port, {"cmd": "status"}, 2.0)
        finally:
            server.close()

    asyncio.run(check())


def test_over_tls_the_certificate_is_checked(tmp_path):
    from tests.tlskit import Certificates

    certificates = Certificates(tmp_path / "tls")
    settings = certificates.machine("h1", ["127.0.0.1"])
    stranger = Certificates(tmp_path / "other", ca_name="other")
    other = stranger.machine("h2", ["127.0.0.1"])

    async def check(port: int) -> None:
        answer = await ask_remote("127.0.0.1", port, {"cmd": "hello"}, SECRET,
                                  client_context(settings), 2.0)
        assert answer["ok"] is True
        with pytest.raises(NotRunning):   # a plain client on a TLS port
            await ask_remote("127.0.0.1", port, {"cmd": "hello"}, SECRET, None, 2.0)
        with pytest.raises(NotRunning):   # a CA that did not sign its certificate
            await ask_remote("127.0.0.1", port, {"cmd": "hello"}, SECRET,
                             client_context(other), 2.0)

    asyncio.run(with_remote_listener(check, server_context(settings)))


def test_remote_rows_carry_what_their_own_supervisor_reports():
    from supervisor.remote import MachineReports
    from supervisor.status_table import render_table

    asked: list[dict] = []

    async def theirs(request: dict) -> dict:
        asked.append(request)
        return {"ok": True, "nodes": [{"node": "m2", "kind": "server", "state": "RUNNING",
                                       "pid": 4242, "uptime_s": 75, "restarts": 1,
                                       "alerts": [], "writable": True, "repl_lag_p50_ms": 1.5,
                                       "repl_lag_p99_ms": 3.0}]}

    def row(node: str) -> dict:
        return {"node": node, "kind": "server", "address": "x:1", "pid": None,
                "state": "REMOTE", "remote": True, "probe_ms": 1.0}

    async def check() -> list[dict]:
        server = ControlServer(free_port(), theirs, token=new_token())
        await server.listen_remote(frozenset({"127.0.0.1"}), None, SECRET)
        try:
            reports = MachineReports(server.port, SECRET, None)
            rows = [row("m2"), row("m3"), row("m4")]
            await reports.merge(rows, {"m2": "127.0.0.1", "m3": "127.0.0.1", "m4": "127.0.0.9"})
            await reports.merge([row("m2")], {"m2": "127.0.0.1"})   # within a second: reused
            return rows
        finally:
            await server.close()

    rows = asyncio.run(check())
    assert len(asked) == 1 and asked[0]["scope"] == "machine" and "secret" in asked[0]
    assert rows[0]["reported"]["pid"] == 4242 and rows[0]["reported"]["state"] == "RUNNING"
    assert "does not run m3" in rows[1]["report_error"]
    assert "no supervisor answers on 127.0.0.9" in rows[2]["report_error"]
    table = render_table(rows)
    assert "its supervisor: RUNNING, pid 4242, up 1m15s, restarts 1" in table
    assert "repl lag p50 1.5 ms" in table
