"""The PEP 249 exception hierarchy, and which one a `Hadisoana : ` maps to.

The server reports every failure as one message line starting with
`Hadisoana : `. `error_for_message` picks the DB-API class a program would
expect for it: syntax errors and unknown or duplicate names are
`ProgrammingError`, values refused by a domain `IntegrityError`, bad
arithmetic or comparisons `DataError`, internal failures `InternalError`,
no server available `OperationalError`, and so is a storage fault (a
server could not read or write its own file; nothing was applied: the
message ends `[storage:read]` or `[storage:write]`). Connection problems
of the client itself are `OperationalError` too.
"""

from __future__ import annotations

import re

from engine.errors import is_storage_fault
from nodes.errors import NodeError

ERROR_PREFIX = "Hadisoana : "


class Warning(NodeError):  # noqa: A001 (the name is fixed by PEP 249)
    """Important warnings (PEP 249). Tahiry raises none today."""


class Error(NodeError):
    """Base class of every DB-API error raised by the driver."""


class InterfaceError(Error):
    """The driver was misused (closed cursor or connection, bad parameters)."""


class DatabaseError(Error):
    """The database refused or failed a statement."""


class DataError(DatabaseError):
    """A value problem: division by zero, a comparison of different types."""


class OperationalError(DatabaseError):
    """The connection failed or was lost; the statement's outcome may be unknown."""


class IntegrityError(DatabaseError):
    """A value did not fit its column's domain."""


class InternalError(DatabaseError):
    """The server reported an internal failure."""


class ProgrammingError(DatabaseError):
    """Syntax error, unknown or duplicate table/column/database, no database selected."""


class NotSupportedError(DatabaseError):
    """A DB-API feature Tahiry does not have (transactions, rollback)."""


# Checked in order against the sentence (lower-cased); first match wins.
# The texts are the engine's (engine/evaluation/values.py, domains.py, executor.py).
_RULES: tuple[tuple[type[DatabaseError], re.Pattern], ...] = (
    (IntegrityError, re.compile(r"tsy mifanaraka amin'ny efitra|sanda tsy mety ao amin'ny tanisa")),
    (DataError, re.compile(
        r"zaraina amin'ny aotra|tsy azo ampitahaina|isa ihany no azo kajiana|lehibe loatra|"
        r"tsy azo alahatra|dia mila booléen|isa tsy azo tehirizina")),
    (InternalError, re.compile(r"internal error|simba ny rakitra")),
    (OperationalError, re.compile(r"tsy misy mpizara|tapaka ny fifandraisana|be loatra ny fifandraisana")),
)


def error_for_message(message: str) -> DatabaseError:
    """The DB-API exception for a failed statement's message."""
    if is_storage_fault(message):
        return OperationalError(message)
    sentence = message[len(ERROR_PREFIX):] if message.startswith(ERROR_PREFIX) else message
    lowered = sentence.lower()
    for kind, pattern in _RULES:
        if pattern.search(lowered):
            return kind(message)
    # Everything else is a statement the database cannot run as written: a
    # syntax error, an unknown or duplicate name, no database selected.
    return ProgrammingError(message)
