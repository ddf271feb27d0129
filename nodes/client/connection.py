"""A blocking TCP connection to a Tahiry node.

`ServerConnection.request(statement)` sends one statement and returns its
`Outcome`, decoded by the shared sans-IO `nodes.protocol.ResponseDecoder`.
For statements sent ahead (nodes/client/pipeline.py) it also offers the
pieces of one exchange on their own: `send_some` and `receive_some`, each
called once `select` said the socket is ready, so the caller can read
answers while it still has statements to send and never blocks on either.
Every socket operation has a timeout. Failures become `ConnectionProblem`s
whose text is a sentence for a person, never a traceback: `NotListening`
when the node cannot be reached (`Refused` when nothing listens on the
port: a node not started, or being restarted), `ConnectionLost` when it
went away (or stopped answering: `NoAnswer`) during a statement, whose
outcome is then unknown. `closed_by_peer()` tells, before anything is sent, whether the
node closed an idle connection (its idle timeout, a restart), so the
caller can open a new one without losing anything.

With a shared secret (the `secret` argument, else the TAHIRY_SECRET
environment variable) the connection opens with `.auth <secret>;`
(docs/SECURITY.md); a refusal is `AuthenticationFailed`. With an account
(`login`: name and password) it then logs in, `.login NAME "PASSWORD";`;
a refusal is `LoginFailed` (the node closes the connection).
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
from collections.abc import Iterator
from contextlib import contextmanager

from engine.evaluation.outcome import Outcome
from engine.language.script import StatementSplitter
from nodes.errors import NodeError
from nodes.protocol import (
    ProtocolError,
    ResponseDecoder,
    auth_request,
    login_request,
    secret_from_environment,
    statement_bytes,
)

RECEIVE_CHUNK = 1 << 16
# Where an account's password is read from when it is not typed (never the command line).
PASSWORD_ENV = "TAHIRY_PASSWORD"


class ConnectionProblem(NodeError):
    """The node could not be reached or stopped answering."""


class NotListening(ConnectionProblem):
    """Nothing accepted the connection."""


class Refused(NotListening):
    """Nothing listens on the port (the node is not started, or is restarting)."""


class ConnectionLost(ConnectionProblem):
    """The connection broke or timed out during a statement."""


class NoAnswer(ConnectionLost):
    """The node did not answer within the timeout (it may still be working on it)."""


class AuthenticationFailed(ConnectionProblem):
    """The node refused the shared secret (or required one we do not have)."""


class LoginFailed(AuthenticationFailed):
    """The node refused the account's name or password."""


def request_bytes(statement: str) -> bytes:
    """The statement as sent: with exactly one terminating `;` (`statement_bytes`).

    A text ending in a `;` of its own is sent as it is only when that `;` ends
    it: in a trailing comment (`alaivo 1 -- farany;`, the last statement of a
    file without a final line break) it ends nothing, and the node would
    wait for the rest of the statement.
    """
    text = statement.strip()
    if text.endswith(";"):
        splitter = StatementSplitter()
        splitter.feed(text)
        if not splitter.pending_length():
            return text.encode("utf-8")
    return statement_bytes(text)


class ServerConnection:
    """One open connection to a node; not safe to share between threads."""

    def __init__(self, host: str, port: int, timeout: float = 30.0,
                 connect_timeout: float = 5.0, secret: str | None = None,
                 tls: ssl.SSLContext | None = None, login: tuple[str, str] | None = None):
        self.host = host
        self.port = port
        self.timeout = timeout
        try:
            raw = socket.create_connection((host, port), timeout=connect_timeout)
        except ConnectionRefusedError:
            raise Refused(
                f"Tsy misy mihaino ao amin'ny {host}:{port} / nothing is listening at "
                f"{host}:{port}. If the cluster is running, the node may be restarting: "
                f"see ./tahiry status; otherwise start it with ./tahiry up") from None
        except TimeoutError:
            raise NotListening(
                f"Tsy namaly ny {host}:{port} / no answer from {host}:{port} "
                f"within {connect_timeout:g}s") from None
        except OSError as error:
            raise NotListening(
                f"Tsy afaka nifandray tamin'ny {host}:{port} / cannot connect to "
                f"{host}:{port}: {error.strerror or error}") from None
        try:
            # TLS (nodes/protocol/tls.py): the node's certificate is checked
            # against the CA and the address connected to.
            self._socket = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
        except ssl.SSLCertVerificationError as error:
            raw.close()
            raise NotListening(f"TLS: the node at {host}:{port} is not who it should be: "
                               f"{error.verify_message or error}") from None
        except (ssl.SSLError, OSError) as error:
            raw.close()
            raise NotListening(f"TLS with {host}:{port} failed: {error.strerror or error} (does "
                               f"the node use TLS, and does it want a client certificate?)") from None
        self._tls = tls is not None
        self._answered = False   # a response came on this connection (see `_closed_at_once`)
        self._socket.settimeout(timeout)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._decoder = ResponseDecoder()
        self._broken = False
        self.login_answer: str | None = None   # the node's answer to the login, if any
        secret = secret if secret is not None else secret_from_environment()
        if secret:
            self._authenticate(secret)
        if login is not None:
            self._login(*login)

    def _login(self, name: str, password: str) -> None:
        try:
            wire = login_request(name, password).decode()
        except ValueError as error:
            self.close()
            raise LoginFailed(f"cannot log in as {name}: {error}") from None
        outcome = self.request(wire)
        if not outcome.ok:
            self.close()
            raise LoginFailed(outcome.message)
        self.login_answer = outcome.message

    def _authenticate(self, secret: str) -> None:
        try:
            wire = auth_request(secret).decode("ascii")
        except ValueError as error:
            self.close()
            raise AuthenticationFailed(f"unusable secret: {error}") from None
        outcome = self.request(wire)
        if not outcome.ok:
            self.close()
            raise AuthenticationFailed(outcome.message)

    def request(self, statement: str) -> Outcome:
        """Send one statement and wait for its response."""
        with self._failures_lose_the_connection():
            self._socket.sendall(request_bytes(statement))
            while True:
                data = self._socket.recv(RECEIVE_CHUNK)
                if not data:
                    raise ConnectionLost(self._lost(self._closed_at_once()))
                responses = self._decoder.feed(data)
                if responses:
                    self._answered = True
                    # One statement, one response: more would mean we lost sync.
                    if len(responses) > 1 or self._decoder.pending:
                        raise ConnectionLost(self._lost("the node sent more than one response"))
                    return responses[0].outcome()

    @contextmanager
    def _failures_lose_the_connection(self) -> Iterator[None]:
        """Refuse a broken connection; turn every failure inside into ConnectionLost (and break it)."""
        if self._broken:
            raise ConnectionLost("the connection was closed after an earlier failure")
        try:
            yield
        except TimeoutError:
            self._broken = True
            raise NoAnswer(self._lost(f"no answer within {self.timeout:g}s")) from None
        except ProtocolError as error:
            self._broken = True
            raise ConnectionLost(self._lost(f"unreadable response ({error})")) from None
        except ConnectionLost:
            self._broken = True
            raise
        except OSError as error:
            self._broken = True
            raise ConnectionLost(self._lost(error.strerror or str(error))) from None

    def closed_by_peer(self) -> bool:
        """Whether this connection, with nothing in flight, can no longer be used.

        True when the node closed or reset it (an idle timeout, a restart) or
        sent bytes nobody asked for: in every case nothing was lost, and a
        new connection is the way on.
        """
        if self._broken:
            return True
        try:
            readable, _, _ = select.select([self._socket], [], [], 0)
            if not readable and not self.pending():
                return False
            if self._tls:
                return self._tls_closed()
            self._socket.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return True
        return True   # end of stream, or an answer to nothing

    def _tls_closed(self) -> bool:
        """`closed_by_peer` over TLS: bytes may be a TLS record that carries no data (a session
        ticket), so a non-blocking read decides (nothing is in flight: no answer is lost)."""
        self._socket.setblocking(False)
        try:
            self._socket.recv(1)
            return True   # data nobody asked for, or the end of the stream
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return False
        except OSError:
            return True
        finally:
            self._socket.settimeout(self.timeout)

    def pending(self) -> int:
        """Bytes TLS already decrypted and holds (select cannot see them); 0 without TLS."""
        return self._socket.pending() if isinstance(self._socket, ssl.SSLSocket) else 0

    # -- statements sent ahead (the caller waits on fileno() with select)

    def fileno(self) -> int:
        return self._socket.fileno()

    def send_some(self, data: bytes | memoryview) -> int:
        """Send what the socket takes now of `data` (it was reported writable); bytes sent."""
        with self._failures_lose_the_connection():
            try:
                return self._socket.send(data)
            except (BlockingIOError, InterruptedError):
                return 0

    def receive_some(self) -> list[Outcome]:
        """Read what arrived (the socket was reported readable); the complete answers in it."""
        with self._failures_lose_the_connection():
            try:
                data = self._socket.recv(RECEIVE_CHUNK)
            except (BlockingIOError, InterruptedError):
                return []
            if not data:
                raise ConnectionLost(self._lost(self._closed_at_once()))
            responses = self._decoder.feed(data)
            if responses:
                self._answered = True
            return [response.outcome() for response in responses]

    def _closed_at_once(self) -> str:
        """Why the node ended the stream: a plain connection closed before any answer is
        most often a node that speaks TLS (it closes, without a word, what is not TLS)."""
        if self._tls or self._answered:
            return "the node closed the connection"
        return ("the node closed the connection before any answer (a node that uses TLS "
                "closes a plain connection at once: if the cluster's topology has `tls:`, "
                "connect with --tls-ca FILE, as the `connect with:` line of ./tahiry up says)")

    def lost(self, why: str, timed_out: bool = False) -> ConnectionLost:
        """The error for this connection failing with `why` (it is then unusable)."""
        self._broken = True
        return (NoAnswer if timed_out else ConnectionLost)(self._lost(why))

    def _lost(self, why: str) -> str:
        return (f"Tapaka ny fifandraisana tamin'ny {self.host}:{self.port} / connection to "
                f"{self.host}:{self.port} lost: {why}; the statement's outcome is unknown")

    def close(self) -> None:
        self._broken = True
        try:
            self._socket.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Close with a reset, not an end of stream: the statement in flight is abandoned.

        A node keeps answering a connection that only ended its stream (a
        script piped through `nc` ends it and still reads); a reset tells it
        nobody will read, and it stops a query it still runs (Ctrl-C).
        """
        try:
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()
