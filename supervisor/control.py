"""The control port: `status`, `down`, `restart NODE` from another terminal.

The running supervisor listens on 127.0.0.1:<supervisor.control_port> only.
A request is one JSON object on one line (`{"cmd": "status"}`,
`{"cmd": "restart", "node": "m1", "token": "..."}`, `{"cmd": "down", "token":
"..."}`, `{"cmd": "hello"}`); the answer is one JSON object on one line,
always with `"ok"`, and with `"error"` when the command was refused. Bad
input gets an error answer and changes nothing.

Who may command: loopback is not enough (any local user, any other checkout
reaches it). Each run draws a random control token and keeps it in
run/control-token, mode 0600: only the operator who can read the cluster's
run directory holds it. `hello` and `status` only read, and are answered
to anyone (the CLI needs `hello` to name the supervisor that owns a port);
every other command needs `"token"`, compared in constant time
(docs/SECURITY.md, "The control port").
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from .errors import SupervisorError

MAX_REQUEST_BYTES = 64 * 1024
TOKEN_FILE = "control-token"
OPEN_COMMANDS = frozenset({"hello", "status"})  # read-only: answered without the token

Handler = Callable[[dict], Awaitable[dict]]


def new_token() -> str:
    """A fresh control token: 256 random bits, so guessing is hopeless (no rate limit needed)."""
    return secrets.token_hex(32)


def token_file(run_dir: Path) -> Path:
    return run_dir / TOKEN_FILE


def read_token(run_dir: Path) -> str | None:
    """The control token of the supervisor that runs from `run_dir`, if readable."""
    try:
        return token_file(run_dir).read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


class ControlServer:
    def __init__(self, port: int, handler: Handler, host: str = "127.0.0.1",
                 token: str | None = None):
        self.port = port
        self.host = host
        self.handler = handler
        self.token = token  # None: every command is obeyed (only tests build one so)
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
        if not self._authorized(request):
            return {"ok": False, "error": f"refused: {request['cmd']!r} needs this cluster's "
                                          f"control token (run/{TOKEN_FILE}, readable only by "
                                          f"its operator; python -m supervisor sends it)"}
        try:
            return await self.handler(request)
        except Exception as error:  # the control port must survive any command
            return {"ok": False, "error": f"{type(error).__name__}: {error}"}

    def _authorized(self, request: dict) -> bool:
        if self.token is None or request["cmd"] in OPEN_COMMANDS:
            return True
        token = request.get("token")
        return isinstance(token, str) and hmac.compare_digest(token.encode("utf-8", "replace"),
                                                              self.token.encode())

    @staticmethod
    async def _answer(writer: asyncio.StreamWriter, answer: dict) -> None:
        writer.write(json.dumps(answer, separators=(",", ":")).encode() + b"\n")
        await writer.drain()


class NotRunning(SupervisorError):
    """Nothing answers on the control port."""


def send_command(port: int, request: dict, timeout_s: float = 5.0,
                 host: str = "127.0.0.1", token: str | None = None) -> dict:
    """Send one command to a running supervisor (with its control token, if given); its answer."""
    if token is not None:
        request = {**request, "token": token}
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
