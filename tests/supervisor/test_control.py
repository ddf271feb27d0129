"""The control port's token check and the private run files (docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import subprocess
import sys

from supervisor import control
from supervisor.cluster import write_atomically
from supervisor.control import (
    CONTROL_VERSION,
    ControlServer,
    control_port_in_force,
    new_token,
    read_token,
    token_file,
)

TOKEN = new_token()


def dispatch(request: dict, token: str | None = TOKEN) -> dict:
    async def obey(request: dict) -> dict:
        return {"ok": True, "done": request["cmd"]}

    server = ControlServer(0, obey, token=token)
    return asyncio.run(server._dispatch(json.dumps(request).encode()))


def test_commands_that_change_something_need_the_token():
    for command in ("down", "restart", "reload", "anything"):
        for token in (None, "", "guess", TOKEN[:-1], 42, ["x"], TOKEN + "\u00e9"):
            request = {"cmd": command} if token is None else {"cmd": command, "token": token}
            answer = dispatch(request)
            assert answer["ok"] is False and "control token" in answer["error"], (request, answer)
        assert dispatch({"cmd": command, "token": TOKEN}) == {"ok": True, "done": command,
                                                              "version": CONTROL_VERSION}


def test_read_only_commands_are_open():
    for command in ("hello", "status"):
        assert dispatch({"cmd": command}) == {"ok": True, "done": command,
                                              "version": CONTROL_VERSION}


def test_tokens_are_fresh_and_read_back(tmp_path):
    assert new_token() != new_token() and len(TOKEN) == 64
    assert read_token(tmp_path) is None
    write_atomically(token_file(tmp_path), TOKEN + "\n")
    assert read_token(tmp_path) == TOKEN
    assert stat.S_IMODE(token_file(tmp_path).stat().st_mode) == 0o600


def test_run_files_are_written_private_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        write_atomically(tmp_path / "run" / "loaded-topology.yaml", "secret: x\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "run" / "loaded-topology.yaml").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o700
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["loaded-topology.yaml"]


def test_the_control_port_in_force_is_the_running_supervisors(tmp_path):
    """`control_port` edited while the cluster runs takes effect at the next `up`: the
    commands find the supervisor on the port it wrote in run/control, unless it is gone."""
    assert control_port_in_force(tmp_path, 3947) == 3947                 # nothing running
    (tmp_path / "control").write_text("4247\n")
    (tmp_path / "supervisor.pid").write_text(f"{os.getpid()}\n")          # alive
    assert control_port_in_force(tmp_path, 3947) == 4247
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "supervisor.pid").write_text(f"{dead.pid}\n")             # killed -9 long ago
    assert control_port_in_force(tmp_path, 3947) == 3947
    (tmp_path / "supervisor.pid").write_text("garbage")
    assert control_port_in_force(tmp_path, 3947) == 3947


def test_a_request_nested_too_deep_gets_an_answer_not_a_dropped_connection():
    """`[[[[...` (json.loads raises RecursionError, not ValueError) closed the connection
    without an answer, the traceback in the supervisor's log; now the usual error."""
    for line in (b"[" * 30000, b'{"cmd": "status", "scope": ' + b"[" * 5000 + b"]" * 5000 + b"}"):
        answer = dispatch_line(line)
        assert answer == {"ok": False, "error": "a request is one JSON object per line",
                          "version": CONTROL_VERSION}
    too_long = dispatch_line(b"x" * 70000)
    assert too_long == {"ok": False, "error": "request too long", "version": CONTROL_VERSION}


@contextlib.asynccontextmanager
async def listening_control_server():
    """A ControlServer on a free loopback port that says ok to every command; its port."""
    async def obey(request: dict) -> dict:
        return {"ok": True}

    server = ControlServer(0, obey, token=TOKEN)
    await server.start()
    assert server.server is not None
    try:
        yield server.server.sockets[0].getsockname()[1]
    finally:
        await server.close()


def dispatch_line(line: bytes) -> dict:
    """`line` sent to a ControlServer on a real socket; its answer (or {} for none)."""
    async def scenario() -> dict:
        async with listening_control_server() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(line + b"\n")
            answer = await asyncio.wait_for(reader.readline(), 5)
            writer.close()
            return json.loads(answer) if answer else {}
    return asyncio.run(scenario())


def test_idle_connections_are_closed_and_capped(monkeypatch):
    """Bug: a connection that sent nothing (or half a line) was kept for ever, and there
    was no cap: any local user, or any host reaching the listener off loopback, could
    hold the supervisor's file descriptors until it could not start a node or open a
    log. An idle connection now closes after IDLE_S, and beyond MAX_CONNECTIONS a new
    one gets an error answer and is closed."""
    monkeypatch.setattr(control, "IDLE_S", 0.5)
    monkeypatch.setattr(control, "MAX_CONNECTIONS", 3)

    async def scenario() -> None:
        async with listening_control_server() as port:
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            idle[0][1].write(b'{"cmd": "sta')    # half a line, never ended
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            refused = json.loads(await asyncio.wait_for(reader.readline(), 5))
            assert refused["ok"] is False and "too many connections" in refused["error"]
            writer.close()
            for idle_reader, _ in idle:                       # closed by the supervisor
                assert await asyncio.wait_for(idle_reader.read(), 5) == b""
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b'{"cmd": "hello"}\n')
            assert json.loads(await asyncio.wait_for(reader.readline(), 5))["ok"] is True
            writer.close()
    asyncio.run(scenario())
