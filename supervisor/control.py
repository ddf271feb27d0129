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
run directory holds it. `hello`, `status` and `holding` only read, and are
answered to anyone (the CLI needs `hello` to name the supervisor that owns a
port), `status` without the statements the servers run now unless it
carries the token (`without_statements`: a student on the lab machine must
not read the others' queries); every other command needs `"token"`,
compared in constant time (docs/SECURITY.md, "The control port").

Other machines' supervisors (a topology spanning machines): the supervisor
also listens on the control port at each address of this machine that a
local node's host names (`listen_remote`), over TLS when the topology has a
`tls:` section. What comes in there may only read (`hello`, `status`,
`holding`: which servers' directories this machine still holds, so that a
moved server's old directory stops being certified against elsewhere once
it is handed over), and must carry the cluster's secret (`"secret"`,
compared in constant time), and besides those only `quorum` is taken there (the write
leases' grants and votes, docs/REPLICATION.md, "Write leases"):
the control token never leaves its machine, so `down`, `restart` and
`reload` are given on each machine itself. `ask_remote` is the asking side
(supervisor/remote.py polls each other machine with it).

Versions: every answer carries `"version": CONTROL_VERSION`; a request that
names another version is refused with one sentence saying so, and
`ask_remote` refuses an answer of another version (or none) the same way:
the machines of one cluster must run one Tahiry release, never a silent
mix of two.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil

from .account_stats import RUNNING_STATEMENTS
from .errors import SupervisorError

MAX_REQUEST_BYTES = 64 * 1024
# A connection that sends no whole request for this long is closed, and at most this
# many are served at once (a new one beyond gets an error answer): idle connections
# must not hold the supervisor's file descriptors (its nodes, their logs need them).
IDLE_S = 30.0
MAX_CONNECTIONS = 64
TOKEN_FILE = "control-token"
# Read-only: answered without the token (`holding`: the servers whose directories this
# machine holds, asked by the other machines' supervisors: supervisor/cluster.py
# supervisor/elsewhere.py).
OPEN_COMMANDS = frozenset({"hello", "status", "holding"})
# What other machines' supervisors may also send (with the secret): the write leases'
# votes (supervisor/quorum_service.py); on this machine itself they need the token.
MACHINE_COMMANDS = OPEN_COMMANDS | {"quorum"}
# The control protocol's version: a request or answer of another version is refused.
CONTROL_VERSION = 1

Handler = Callable[[dict], Awaitable[dict]]


def new_token() -> str:
    """A fresh control token: 256 random bits, so guessing is hopeless (no rate limit needed)."""
    return secrets.token_hex(32)


CONTROL_PORT_FILE = "control"   # run/control: the running supervisor's control port


def without_statements(answer: dict) -> dict:
    """A `status` answer without the statements the servers run now (their account and
    text: supervisor/account_stats.py), for whoever asked without the control token."""
    nodes = answer.get("nodes")
    if not isinstance(nodes, list):
        return answer
    return {**answer, "nodes": [{key: value for key, value in row.items()
                                 if key != RUNNING_STATEMENTS} if isinstance(row, dict) else row
                                for row in nodes]}


def token_file(run_dir: Path) -> Path:
    return run_dir / TOKEN_FILE


def control_port_in_force(run_dir: Path, configured: int) -> int:
    """The port the supervisor running from `run_dir` listens on: the one it wrote in
    `run/control` at `up` (an edit of `control_port` takes effect at the next `up`),
    else `configured` (the topology's): also when the supervisor that wrote it is gone
    (`run/supervisor.pid` names no live process: a kill -9 leaves both files)."""
    try:
        pid = int((run_dir / "supervisor.pid").read_text(encoding="ascii").strip())
        port = int((run_dir / CONTROL_PORT_FILE).read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError):
        return configured
    return port if psutil.pid_exists(pid) else configured


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
        # Listeners other machines' supervisors reach: (hosts, TLS context, secret) -> servers.
        self.remote_config: tuple[frozenset[str], ssl.SSLContext | None, str | None] | None = None
        self._remote_servers: list[asyncio.base_events.Server] = []
        self._connections = 0   # served now, on every listener

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port,
                                                 limit=MAX_REQUEST_BYTES)

    async def listen_remote(self, hosts: frozenset[str], tls: ssl.SSLContext | None,
                            secret: str | None) -> list[str]:
        """Listen for other machines' supervisors on `hosts` (again, if they changed).

        Returns a problem per address that could not be bound (the cluster
        runs on; only other machines' `status` misses this one's report).
        """
        if self.remote_config == (hosts, tls, secret):
            return []
        await self._close_remote()
        self.remote_config = (hosts, tls, secret)
        problems = []
        for host in sorted(hosts):
            try:
                self._remote_servers.append(await asyncio.start_server(
                    lambda r, w: self._serve(r, w, remote=True), host, self.port,
                    limit=MAX_REQUEST_BYTES, ssl=tls))
            except OSError as error:
                problems.append(f"cannot listen for other machines' supervisors on "
                                f"{host}:{self.port}: {error.strerror or error}")
        return problems

    async def _close_remote(self) -> None:
        servers, self._remote_servers = self._remote_servers, []
        for server in servers:
            server.close()

    async def close(self) -> None:
        await self._close_remote()
        self.remote_config = None
        if self.server is not None:
            self.server.close()
            # Do not wait for clients: the one that sent `down` waits for our answer.
            self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     remote: bool = False) -> None:
        self._connections += 1
        try:
            if self._connections > MAX_CONNECTIONS:
                await self._answer(writer, {"ok": False, "version": CONTROL_VERSION,
                                            "error": "too many connections to the control "
                                                     "port: try again"})
                return
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), IDLE_S)
                except TimeoutError:
                    return   # no whole request within IDLE_S: closed
                except (ValueError, asyncio.LimitOverrunError):
                    await self._answer(writer, {"ok": False, "error": "request too long",
                                                "version": CONTROL_VERSION})
                    return
                if not line:
                    return
                await self._answer(writer, await self._dispatch(line, remote))
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            self._connections -= 1
            writer.close()

    async def _dispatch(self, line: bytes, remote: bool = False) -> dict:
        return {**await self._obey(line, remote), "version": CONTROL_VERSION}

    async def _obey(self, line: bytes, remote: bool) -> dict:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: `[[[[...` nested too deep
            return {"ok": False, "error": "a request is one JSON object per line"}
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return {"ok": False, "error": 'a request needs a "cmd" string'}
        version = request.get("version", CONTROL_VERSION)
        if version != CONTROL_VERSION:
            return {"ok": False, "error": version_mismatch(version)}
        if remote:
            refusal = self._remote_refusal(request)
            if refusal is not None:
                return {"ok": False, "error": refusal}
        elif not self._authorized(request):
            return {"ok": False, "error": f"refused: {request['cmd']!r} needs this cluster's "
                                          f"control token (run/{TOKEN_FILE}, readable only by "
                                          f"its operator; python -m supervisor sends it)"}
        try:
            answer = await self.handler(request)
        except Exception as error:  # the control port must survive any command
            return {"ok": False, "error": f"{type(error).__name__}: {error}"}
        if request["cmd"] == "status" and (remote or not self._token_given(request)):
            # `status` is open to every local user (and to other machines' supervisors);
            # the statements the students run now are the operator's to read only.
            answer = without_statements(answer)
        return answer

    def _remote_refusal(self, request: dict) -> str | None:
        """Why another machine's request is refused (None: answer it)."""
        secret = self.remote_config[2] if self.remote_config is not None else None
        given = request.get("secret")
        if secret is None or not isinstance(given, str) or not hmac.compare_digest(
                given.encode("utf-8", "replace"), secret.encode()):
            return "refused: another machine's supervisor must send this cluster's secret"
        if request["cmd"] not in MACHINE_COMMANDS:
            return (f"refused: {request['cmd']!r} is given on this machine itself; other "
                    f"machines may only ask {', '.join(sorted(MACHINE_COMMANDS))}")
        return None

    def _authorized(self, request: dict) -> bool:
        return request["cmd"] in OPEN_COMMANDS or self._token_given(request)

    def _token_given(self, request: dict) -> bool:
        if self.token is None:
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


class VersionMismatch(SupervisorError):
    """The other supervisor speaks another version of the control protocol."""


def version_mismatch(other: object) -> str:
    return (f"the other side speaks control protocol version {other!r}, this supervisor "
            f"version {CONTROL_VERSION}: run the same Tahiry release on every machine of a "
            f"cluster (docs/DEPLOY.md)")


async def ask_remote(host: str, port: int, request: dict, secret: str | None,
                     tls: ssl.SSLContext | None, timeout_s: float) -> dict:
    """One request to another machine's supervisor (with the secret, over TLS if given).

    Raises NotRunning when nothing (or something else) answers in time,
    VersionMismatch when it speaks another control protocol version; an
    answer with `"ok": false` is returned as it is.
    """
    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(
            host, port, ssl=tls, server_hostname=host if tls is not None else None,
            limit=16 * 1024 * 1024)
        try:
            message = {**request, "secret": secret, "version": CONTROL_VERSION}
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
            return await reader.readline()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    try:
        line = await asyncio.wait_for(exchange(), timeout_s)
    except TimeoutError:
        raise NotRunning(f"the supervisor on {host}:{port} did not answer within "
                         f"{timeout_s:g} s") from None
    except (OSError, ssl.SSLError, ValueError, asyncio.LimitOverrunError) as error:
        raise NotRunning(f"no supervisor answers on {host}:{port} "
                         f"({getattr(error, 'strerror', None) or error})") from None
    try:
        answer = json.loads(line)
    except (ValueError, RecursionError):
        answer = None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise NotRunning(f"something else listens on {host}:{port} (not a Tahiry supervisor)")
    if answer.get("version") != CONTROL_VERSION:
        raise VersionMismatch(version_mismatch(answer.get("version")))
    return answer


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
    except (ValueError, RecursionError):
        raise NotRunning(f"something else listens on {host}:{port} (not a Tahiry supervisor)") \
            from None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise NotRunning(f"something else listens on {host}:{port} (not a Tahiry supervisor)")
    return answer
