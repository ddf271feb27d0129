"""Where the client's statements run: a Tahiry node over TCP, or in-process.

Both runners offer `run(statement) -> Outcome | None` (None: the statement
was empty), `run_all(steps)` (many statements, results in order) and
`database` (the current database, for the prompt), so the interactive loop,
the non-interactive modes and the DB-API driver do not care which one they
use.

`RemoteRunner` reconnects on demand after a lost connection and replays
`ampiasao <db>` so the session keeps its database. Before each statement it
checks that the node has not closed the idle connection (an idle timeout, a
restart): then it reconnects quietly, nothing having been in flight. When
nothing listens any more on a port it was connected to, the node is
probably being restarted by the supervisor: it says so and tries again for
`restart_wait` seconds before giving up. A read (or `ampiasao`) whose
connection broke is sent again once on a new connection (doing it twice
changes nothing; not when it broke for taking longer than the timeout); any
other statement whose connection broke is reported, never re-sent (its
outcome is unknown). Its `run_all` sends statements ahead
(nodes/client/pipeline.py); the database it replays after a loss is the
one the statements sent so far selected: an `ampiasao` among the
unanswered ones counts (selecting a database changes no data, and the
statements after it were written for it).
`EmbeddedRunner.run_all` runs them one after the other.
"""

from __future__ import annotations

import functools
import os
import re
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from engine.errors import ERROR_PREFIX, TahiryError
from engine.evaluation.outcome import Outcome
from engine.language.account_syntax import password_set_for
from engine.language.script import StatementSplitter, normalise_statement
from engine.language.script_source import PENDING
from engine.storage.data_owner import DirectoryTaken, OwnerLock, OwnerRecord, make_data_directory
from nodes.client.connection import (
    ConnectionLost,
    ConnectionProblem,
    LoginFailed,
    NoAnswer,
    NotListening,
    Refused,
    ServerConnection,
)
from nodes.client.pipeline import WINDOW, Pipeline, Step, StepResult, StepSource
from nodes.protocol import ADMIN_LOGIN, LOGIN_NOT_NEEDED, Request, login_arguments
from nodes.protocol.wire import LOGIN_WORD

if TYPE_CHECKING:
    from engine.language.parser import StatementParser

_USE_MESSAGE = re.compile(r"^Ny tahiry : (\S+) dia miasa ankehitriny$")
_DROP_DATABASE_MESSAGE = re.compile(r"^Ny tahiry : (\S+) dia voafafa")
_USE_STATEMENT = re.compile(r"^ampiasao\s+([^\W\d]\w*)$", re.IGNORECASE)


class Runner(Protocol):
    database: str | None
    where: str

    def run(self, statement: str) -> Outcome | None: ...

    def run_all(self, steps: StepSource) -> Iterator[StepResult]:
        """Every step's result, in order (statements may be sent ahead)."""

    def interrupted(self) -> None:
        """A statement was interrupted (Ctrl-C) while it ran."""

    def close(self) -> None: ...


def next_database(current: str | None, outcome: Outcome) -> str | None:
    """The current database after `outcome` (the messages of USE and DROP say it)."""
    if not outcome.ok:
        return current
    used = _USE_MESSAGE.match(outcome.message)
    if used:
        return used.group(1)
    dropped = _DROP_DATABASE_MESSAGE.match(outcome.message)
    if dropped and dropped.group(1) == current:
        return None
    return current


def typed_login(statement: str) -> tuple[str, str] | None:
    """(name, password) of a `.login NAME "PASSWORD";` statement, else None (kept in memory only)."""
    text = statement.strip().removesuffix(";").strip()
    if text[:len(LOGIN_WORD)].lower() != LOGIN_WORD:
        return None
    try:
        return login_arguments(Request(text, ADMIN_LOGIN))
    except ValueError:
        return None


def login_after(statement: str, login: tuple[str, str] | None) -> tuple[str, str] | None:
    """The login a reconnection uses once `statement` succeeded: the one it typed
    (`.login`), or the account's own new password (`ovay ny tenimiafina`, its own
    name), else None (unchanged)."""
    typed = typed_login(statement)
    if typed is not None or login is None:
        return typed
    password = password_set_for(statement, login[0])
    return None if password is None else (login[0], password)


def run_each(runner: Runner, steps: StepSource) -> Iterator[StepResult]:
    """`run_all` one statement at a time (ConnectionProblem propagates, as from `run`)."""
    while True:
        step = steps.poll(True)
        if step is None:
            return
        if step is PENDING:
            continue
        step = cast(Step, step)   # neither None nor PENDING: a Step
        if step.statement is None:
            yield StepResult(step, None)
            continue
        try:
            outcome = runner.run(step.statement)
        except ConnectionLost as lost:
            yield StepResult(step, Outcome.failure(ERROR_PREFIX + str(lost)), lost=True)
            continue
        yield StepResult(step, outcome)


def _self_terminating(statement: str) -> bool:
    """Whether a `;` after the text ends it (no unterminated string or comment)."""
    splitter = StatementSplitter()
    return bool(splitter.feed(statement + "\n;"))


def _local_syntax_error(statement: str) -> Outcome:
    """The engine's own error for a statement that never ends."""
    from engine.language.parser import StatementParser  # only here: building it costs ~60 ms
    try:
        StatementParser().parse(statement)
    except TahiryError as error:
        return Outcome.failure(error.message)
    return Outcome.failure(ERROR_PREFIX + "Tsy tapitra ny baiko / the statement never ends")


def is_repeatable(statement: str, parser=None) -> bool:
    """Whether sending `statement` again changes nothing: a read (a query, `asehoy`), `ampiasao`."""
    from engine.language.classify import READ, USE, classify  # only after a loss: parsing costs
    from engine.language.parser import StatementParser
    try:
        parsed = (parser or StatementParser()).parse(statement)
    except TahiryError:   # not parsable: not known to be a read
        return False
    return parsed is not None and classify(parsed).kind in (READ, USE)


# How long a node that refuses connections after having accepted ours is
# waited for: the supervisor restarts a killed node within a few seconds.
RESTART_WAIT_S = 10.0
RETRY_INTERVAL_S = 0.2


class RemoteRunner:
    """Statements sent to a node (normally the local proxy cache).

    notify: where to say what the runner does on its own (waiting for a
    restarting node, sending a read again); None says nothing. restart_wait:
    how long a node that stopped listening during the session is waited for
    (0: not at all). secret: the shared secret (else TAHIRY_SECRET); login:
    (account name, password), with which every connection it opens logs in.
    """

    def __init__(self, host: str, port: int, timeout: float = 30.0,
                 connect_timeout: float = 5.0, window: int = WINDOW,
                 notify: Callable[[str], None] | None = None,
                 restart_wait: float = RESTART_WAIT_S, tls: ssl.SSLContext | None = None,
                 secret: str | None = None, login: tuple[str, str] | None = None):
        self.database: str | None = None
        self.where = f"{host}:{port}"
        self.timeout = timeout
        self.window = window   # statements in flight in run_all (1: one at a time)
        self.notify = notify
        self.restart_wait = restart_wait
        # Every (re)connection opens the same way (logged in again, `login`; a
        # `.login` the user typed and the node accepted replaces it).
        self._open_connection = functools.partial(
            ServerConnection, host, port, timeout=timeout, connect_timeout=connect_timeout,
            tls=tls, secret=secret)
        self._login = login
        self._connection: ServerConnection | None = None
        self._was_connected = False
        self._parser: StatementParser | None = None   # built on the first loss

    def connect(self) -> None:
        """Have an open connection (raises `NotListening` with a clear message).

        A connection the node closed while it was idle is replaced quietly.
        """
        if self._connection is not None:
            if not self._connection.closed_by_peer():
                return
            self._connection.close()
            self._connection = None
        try:
            connection = self._open_waiting()
        except LoginFailed as refused:
            if not self._was_connected or self._login is None:
                raise
            name, self._login = self._login[0], None   # (a `.login` typed next goes through)
            raise LoginFailed(
                f"{str(refused).removeprefix(ERROR_PREFIX)}: the login as {name} no longer "
                f"holds (was the password changed?); type .login {name} \"PASSWORD\"; or "
                f"start the client again"
            ) from None
        if not self._was_connected and connection.login_answer == LOGIN_NOT_NEEDED:
            # Any name and password "work" there: say so rather than let a student
            # believe they are logged in.
            self._say("accounts are off on this cluster: --user logged nobody in and "
                      "nothing checked the password (every statement runs without an account)")
        self._was_connected = True
        if self.database is not None:
            # A reconnection: put the new session back on the same database.
            outcome = connection.request(f"ampiasao {self.database};")
            if not outcome.ok:
                self.database = None
        self._connection = connection

    def _open_waiting(self) -> ServerConnection:
        """A new connection; a refusal after an earlier connection is waited out a while."""
        try:
            return self._open_connection(login=self._login)
        except Refused as refused:
            if not self._was_connected or self.restart_wait <= 0:
                raise
            first = refused
        self._say(f"Tsy misy mihaino ao amin'ny {self.where} / nothing is listening at "
                  f"{self.where}: the node may be restarting; trying again for up to "
                  f"{self.restart_wait:g}s (Ctrl-C to stop)")
        deadline = time.monotonic() + self.restart_wait
        while time.monotonic() < deadline:
            time.sleep(RETRY_INTERVAL_S)
            try:
                connection = self._open_connection(login=self._login)
            except Refused:
                continue
            self._say(f"Tafaverina / connected again to {self.where}")
            return connection
        raise NotListening(
            f"Tsy misy mihaino ao amin'ny {self.where} / nothing is listening at {self.where} "
            f"(tried for {self.restart_wait:g}s). See ./tahiry status (is the node FATAL?), "
            f"or start the cluster with ./tahiry up") from first

    def _say(self, text: str) -> None:
        if self.notify is not None:
            self.notify(text)

    def run(self, statement: str) -> Outcome | None:
        if not _self_terminating(statement):
            # Sent as is, the node would wait for the rest of the string.
            return _local_syntax_error(statement)
        try:
            outcome = self._request(statement)
        except ConnectionLost as lost:
            if isinstance(lost, NoAnswer) or not self.retryable(statement):
                raise   # too slow, not broken: sending it again would wait as long
            self._say("(Tapaka nandritra ny famakiana / the connection broke during a read: "
                      "sent again)")
            outcome = self._request(statement)
        self.answered(statement, outcome)
        return outcome

    def _request(self, statement: str) -> Outcome:
        self.connect()
        assert self._connection is not None
        try:
            return self._connection.request(statement)
        except ConnectionProblem:
            self._connection.close()
            self._connection = None
            raise

    def retryable(self, statement: str) -> bool:
        """Whether a statement whose connection broke may be sent again (a read, `ampiasao`)."""
        if self._parser is None:
            from engine.language.parser import StatementParser
            self._parser = StatementParser()
        return is_repeatable(statement, self._parser)

    def run_all(self, steps: StepSource) -> Iterator[StepResult]:
        """Statements sent ahead, up to `window` in flight; results in order."""
        return Pipeline(self, self.window).run(steps)

    # -- what the pipeline asks of its runner

    def open_connection(self) -> ServerConnection:
        self.connect()
        assert self._connection is not None
        return self._connection

    def check(self, statement: str) -> Outcome | None:
        if not _self_terminating(statement):
            return _local_syntax_error(statement)
        return None

    def answered(self, statement: str, outcome: Outcome) -> None:
        self.database = next_database(self.database, outcome)
        if outcome.ok:
            login = login_after(statement, self._login)
            if login is not None:   # what a reconnection logs in with from now on
                if self._login is not None and login[0] != self._login[0]:
                    self.database = None   # another account starts afresh (as the node)
                self._login = login

    def lost(self, statements: list[str]) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        for statement in statements:
            used = _USE_STATEMENT.match(normalise_statement(statement))
            if used:
                self.database = used.group(1)

    def interrupted(self) -> None:
        # The node may still answer the interrupted statement: this
        # connection is out of step, so drop it (with a reset: the node stops
        # the query, nodes/server/node.py); the next statement reconnects.
        if self._connection is not None:
            self._connection.abort()
            self._connection = None

    def request_admin(self, text: str) -> Outcome:
        """An admin request such as `.ping;` or `.status;`."""
        self.connect()
        assert self._connection is not None
        return self._connection.request(text)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class EmbeddedRunner:
    """Statements run by the engine in this process on a data directory."""

    def __init__(self, data_dir: str | Path):
        from engine.session import Session  # imported late: the engine loads the parser
        from engine.storage.store import Store
        make_data_directory(Path(data_dir))   # (a file there: said so, not "File exists")
        # Never beside a running server on the same directory: their writes
        # are not certified against each other (docs/REPLICATION.md).
        try:
            self._owner = OwnerLock.acquire(Path(data_dir), OwnerRecord(
                node="embedded client", pid=os.getpid(), host="embedded", port=0,
                started=time.time()))
        except DirectoryTaken as error:
            raise ConnectionProblem(str(error)) from None
        self.session = Session(Store(Path(data_dir), exclusive=True))
        self.database: str | None = None
        self.where = f"embedded {data_dir}"

    def run_all(self, steps: StepSource) -> Iterator[StepResult]:
        return run_each(self, steps)

    def run(self, statement: str) -> Outcome | None:
        outcomes = self.session.execute(statement)
        self.database = self.session.current_database
        if not outcomes:
            return None
        # Like the server's answer to one request: the first failure, else the last.
        failures = [outcome for outcome in outcomes if not outcome.ok]
        return failures[0] if failures else outcomes[-1]

    def interrupted(self) -> None:
        pass  # every statement is atomic: the session is still usable

    def close(self) -> None:
        if not self._owner.held:
            return
        close = getattr(self.session, "close", None)
        if callable(close):
            close()
        self.session.store.checkpoint_all()   # every .json holds its table when we are done
        self._owner.release()
