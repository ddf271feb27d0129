"""The control port: `status`, `down`, `restart NODE` from another terminal.

The running supervisor listens on 127.0.0.1:<supervisor.control_port> only.
A request is one JSON object on one line (`{"cmd": "status"}`,
`{"cmd": "restart", "node": "m1"}`, `{"cmd": "down"}`, `{"cmd": "hello"}`);
the answer is one JSON object on one line, always with `"ok"`, and with
`"error"` when the command was refused. Bad input gets an error answer and
changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable

from .errors import SupervisorError

MAX_REQUEST_BYTES = 64 * 1024

Handler = Callable[[dict], Awaitable[dict]]


class ControlServer:
    def __init__(self, port: int, handler: Handler, host: str = "127.0.0.1"):
        self.port = port
        self.host = host
        self.handler = handler
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port,
                                                 limit=MAX_REQUEST_BYTES)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            # Do not wait for clients: the one that sent `down` waits for our answer.
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await self._answer(writer, {"ok": False, "error": "request too long"})
                    return
                if not line:
                    return
                await self._answer(writer, await self._dispatch(line))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _dispatch(self, line: bytes) -> dict:
        try:
            request = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return {"ok": False, "error": "a request is one JSON object per line"}
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return {"ok": False, "error": 'a request needs a "cmd" string'}
        try:
            return await self.handler(request)
        except Exception as error:  # the control port must survive any command
            return {"ok": False, "error": f"{type(error).__name__}: {error}"}

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, answer: dict) -> None:
        writer.write(json.dumps(answer, separators=(",", ":")).encode() + b"\n")
        await writer.drain()


class NotRunning(SupervisorError):
    """Nothing answers on the control port."""


def send_command(port: int, request: dict, timeout_s: float = 5.0,
                 host: str = "127.0.0.1") -> dict:
    """Send one command to a running supervisor and return its answer."""
    try:
        sock = socket.create_connection((host, port), timeout=min(timeout_s, 2.0))
    except OSError as error:
        raise NotRunning(f"no supervisor answers on {host}:{port} ({error.strerror or error})") \
            from None
    with sock:
        sock.settimeout(timeout_s)
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        try:
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError as error:
            raise NotRunning(f"the supervisor on {host}:{port} did not answer: {error}") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise NotRunning(f"something else listens on {host}:{port} (not a Tahiry supervisor)") \
            from None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise NotRunning(f"something else listens on {host}:{port} (not a Tahiry supervisor)")
    return answer
