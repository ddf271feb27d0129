"""A Python DB-API 2.0 (PEP 249) driver for Tahiry.

    connection = connect("127.0.0.1", 3951)          # or connect(embedded="data/dev")
    cursor = connection.cursor()
    cursor.execute("manampia ao@ naoty sanda (?, ?, ?)", ("E1", "BD", 12))
    cursor.execute("alaivo * ao@ naoty rehefa naoty >= ?", (10,))
    rows = cursor.fetchall()

paramstyle is `qmark`; parameters become literals (`params.py`), never
text the statement could be confused by. Tahiry has no transactions: every
statement is atomic and durable when it returns, `commit()` does nothing
and `rollback()` raises `NotSupportedError`. One connection is one session
(its current database); do not share a connection between threads.

`executemany` pipelines: it sends the statements ahead without waiting for
each answer (up to 64 in flight, nodes/client/pipeline.py), so a server
commits them in a few group commits instead of one per row. When one fails
it sends no more, but those already sent (at most the window) still run;
it then raises the first failure, whose message says which parameter set
it was, and `rowcount` counts the rows the others changed.
"""

from __future__ import annotations

import datetime
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from engine.evaluation.outcome import Outcome
from engine.language.script import normalise_statement, split_statements
from nodes.client.connection import PASSWORD_ENV, ConnectionProblem
from nodes.client.exceptions import (  # noqa: F401 (re-exported: PEP 249 names)
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
    error_for_message,
)
from nodes.client.params import ParameterError, bind
from nodes.client.pipeline import IterSteps, Step
from nodes.client.runners import EmbeddedRunner, RemoteRunner, Runner
from nodes.protocol.tls import TlsConfigError, TlsSettings, client_context

apilevel = "2.0"
threadsafety = 1          # threads may share the module, not connections
paramstyle = "qmark"

_ROW_COUNT = re.compile(r"(\d+)")


# --- type objects and constructors (PEP 249) --------------------------------

class _TypeObject:
    """Compares equal to each type code it stands for."""

    def __init__(self, *codes: str):
        self.codes = frozenset(codes)

    def __eq__(self, other: object) -> bool:
        return other in self.codes

    def __hash__(self) -> int:
        return hash(self.codes)


STRING = _TypeObject("STRING")
NUMBER = _TypeObject("NUMBER")
DATETIME = _TypeObject("DATE")
BINARY = _TypeObject("BINARY")
ROWID = _TypeObject("ROWID")

Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime


def DateFromTicks(ticks: float) -> datetime.date:  # noqa: N802 (PEP 249 name)
    return datetime.date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> datetime.time:  # noqa: N802
    return datetime.time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> datetime.datetime:  # noqa: N802
    return datetime.datetime(*time.localtime(ticks)[:6])


def Binary(value: bytes) -> bytes:  # noqa: N802
    raise NotSupportedError("Tahiry stores no binary values")


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _type_code(values: list) -> str | None:
    """A column's type code from its first non-null value ('NUMBER', 'STRING', 'DATE')."""
    for value in values:
        if value is None:
            continue
        if isinstance(value, bool):
            return "BOOLEAN"
        if isinstance(value, (int, float)):
            return "NUMBER"
        if isinstance(value, str):
            return "DATE" if _DATE.fullmatch(value) else "STRING"
        return None
    return None


# --- connection -------------------------------------------------------------

def connect(host: str = "127.0.0.1", port: int = 3951, timeout: float = 30.0, *,
            database: str | None = None, embedded: str | None = None,
            restart_wait: float = 0.0, tls_ca: str | None = None, tls_cert: str | None = None,
            tls_key: str | None = None, user: str | None = None, password: str | None = None,
            secret: str | None = None) -> Connection:
    """Open a connection (to the local proxy cache by default).

    database: run `ampiasao database` first. embedded: a data directory to run
    the engine in-process on instead of connecting (for tests and scripts).
    restart_wait: when the node stops listening during the session, try again
    for this many seconds (a node the supervisor restarts is back within a
    few) before raising; 0, the default, raises at once, as a program with
    its own retries expects. A connection the node closed while idle is
    always reopened quietly, and a read cut off is sent again once.
    tls_ca: connect with TLS, checking the node's certificate against this CA
    file (tls_cert, tls_key: this program's certificate, when the nodes
    require one; docs/SECURITY.md).
    user, password: log in to that account on every connection opened (a
    cluster with accounts; password None: the TAHIRY_PASSWORD environment
    variable). secret: the shared secret (None: TAHIRY_SECRET).
    Raises OperationalError when the node cannot be reached or refuses the
    login.
    """
    login = None
    if user is not None:
        if password is None:
            password = os.environ.get(PASSWORD_ENV) or None
        if password is None:
            raise ProgrammingError(f"user={user!r} needs password= (or {PASSWORD_ENV} set)")
        if embedded is not None:
            raise NotSupportedError("an embedded engine has no login: user= needs a node")
        login = (user, password)
    if embedded is not None:
        try:
            runner: Runner = EmbeddedRunner(embedded)
        except ConnectionProblem as problem:  # a server holds that directory
            raise OperationalError(str(problem)) from None
    else:
        try:
            tls = client_context(TlsSettings(cert=Path(tls_cert) if tls_cert else None,
                                             key=Path(tls_key) if tls_key else None,
                                             ca=Path(tls_ca) if tls_ca else None))
        except TlsConfigError as error:
            raise OperationalError(str(error)) from None
        runner = RemoteRunner(host, port, timeout=timeout, connect_timeout=min(timeout, 10.0),
                              restart_wait=restart_wait, tls=tls, secret=secret, login=login)
        try:
            runner.connect()
        except ConnectionProblem as problem:
            raise OperationalError(str(problem)) from None
    connection = Connection(runner)
    if database is not None:
        connection.cursor().execute(f"ampiasao {_name(database)}")
    return connection


def _name(text: str) -> str:
    if not re.fullmatch(r"[^\W\d]\w*", text):
        raise ProgrammingError(f"{text!r} is not a database name")
    return text


class Connection:
    """One session with Tahiry (PEP 249 Connection)."""

    # PEP 249 optional extension: the exceptions as connection attributes.
    Error, DatabaseError, InterfaceError, OperationalError = (
        Error, DatabaseError, InterfaceError, OperationalError)
    ProgrammingError, IntegrityError, DataError, InternalError, NotSupportedError, Warning = (
        ProgrammingError, IntegrityError, DataError, InternalError, NotSupportedError, Warning)

    def __init__(self, runner: Runner):
        self._runner: Runner | None = runner

    @property
    def closed(self) -> bool:
        return self._runner is None

    @property
    def database(self) -> str | None:
        """The current database of this session (extension)."""
        return self._live_runner().database

    def cursor(self) -> Cursor:
        self._live_runner()
        return Cursor(self)

    def commit(self) -> None:
        """Nothing to do: every Tahiry statement is durable when it returns."""
        self._live_runner()

    def rollback(self) -> None:
        self._live_runner()
        raise NotSupportedError("Tahiry has no transactions: statements cannot be rolled back")

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _live_runner(self) -> Runner:
        if self._runner is None:
            raise InterfaceError("the connection is closed")
        return self._runner

    def _run(self, statement: str) -> Outcome:
        try:
            outcome = self._live_runner().run(statement)
        except ConnectionProblem as problem:
            raise OperationalError(str(problem)) from None
        if outcome is None:
            return Outcome.success("")
        if not outcome.ok:
            raise error_for_message(outcome.message)
        return outcome


# --- cursor -----------------------------------------------------------------

class Cursor:
    """PEP 249 Cursor: execute statements, fetch the rows of the last query."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.arraysize = 1
        self.description: tuple | None = None
        self.rowcount = -1
        self.message: str | None = None      # extension: the last success message
        self._rows: list[tuple] = []
        self._position = 0
        self._closed = False

    def execute(self, operation: str, parameters: Sequence[object] | None = None) -> Cursor:
        """Run `operation` (one statement, or several separated by `;`)."""
        self._check_open()
        if not isinstance(operation, str):
            raise ProgrammingError("the statement must be a str")
        try:
            # Without parameters the text goes as written (a stray `?` is
            # then the server's syntax error, as in any other client).
            text = operation if parameters is None else bind(operation, parameters)
        except ParameterError as error:
            raise ProgrammingError(str(error)) from None
        self._reset()
        for piece in split_statements(text):
            if normalise_statement(piece.text):
                self._take(self.connection._run(piece.text))
        return self

    def executemany(self, operation: str, seq_of_parameters) -> Cursor:
        """Run `operation` once per parameter set, pipelined (see the module docstring)."""
        self._check_open()
        if not isinstance(operation, str):
            raise ProgrammingError("the statement must be a str")
        self._reset()
        refused: list[ProgrammingError] = []

        def steps():
            for index, parameters in enumerate(seq_of_parameters):
                try:
                    text = bind(operation, parameters)
                except ParameterError as error:
                    refused.append(ProgrammingError(f"parameters #{index}: {error}"))
                    return
                for piece in split_statements(text):
                    if normalise_statement(piece.text):
                        yield Step(piece.text, index)

        source = IterSteps(steps())
        total, failure = 0, None
        try:
            for result in self.connection._live_runner().run_all(source):
                outcome = result.outcome
                if outcome is None:
                    continue
                if not outcome.ok:
                    if failure is None:
                        failure = (result.step.tag, outcome.message)
                    source.stop()   # send no more; those in flight still answer
                    continue
                self._take(outcome)
                if self.rowcount > 0:
                    total += self.rowcount
        except ConnectionProblem as problem:
            raise OperationalError(str(problem)) from None
        self.rowcount = total
        self.description = None
        self._rows, self._position = [], 0
        if failure is not None:
            index, message = failure
            error = error_for_message(message)
            error.args = (f"{message} (executemany: parameters #{index})",)
            raise error
        if refused:
            raise refused[0]
        return self

    def fetchone(self) -> tuple | None:
        self._check_result()
        if self._position >= len(self._rows):
            return None
        row = self._rows[self._position]
        self._position += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        self._check_result()
        size = self.arraysize if size is None else size
        rows = self._rows[self._position:self._position + max(0, size)]
        self._position += len(rows)
        return rows

    def fetchall(self) -> list[tuple]:
        self._check_result()
        rows = self._rows[self._position:]
        self._position = len(self._rows)
        return rows

    def close(self) -> None:
        self._closed = True
        self._rows = []

    def setinputsizes(self, sizes) -> None:
        pass

    def setoutputsize(self, size, column=None) -> None:
        pass

    def __iter__(self) -> Iterator[tuple]:
        return self

    def __next__(self) -> tuple:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _reset(self) -> None:
        self.description = None
        self.rowcount = -1
        self.message = None
        self._rows, self._position = [], 0

    def _take(self, outcome: Outcome) -> None:
        self.message = outcome.message
        relation = outcome.relation
        if relation is None:
            self.description = None
            self._rows, self._position = [], 0
            found = _ROW_COUNT.search(outcome.message)
            self.rowcount = int(found.group(1)) if found and outcome.message.startswith(
                "Tafinditra") else -1
            return
        self._rows = [tuple(row) for row in relation.rows]
        self._position = 0
        self.rowcount = len(self._rows)
        self.description = tuple(
            (column.name, _type_code([row[index] for row in relation.rows]),
             None, None, None, None, None)
            for index, column in enumerate(relation.columns))

    def _check_open(self) -> None:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        self.connection._live_runner()

    def _check_result(self) -> None:
        self._check_open()
        if self.description is None:
            raise ProgrammingError("the last statement returned no rows to fetch")
