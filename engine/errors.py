"""The engine's exceptions: the root `EngineError`, and the error a user is told.

`EngineError` is the root of every exception class of the engine (those of
engine/storage derive from it too, keeping their `OSError` / `ValueError`
bases where callers catch them by those).

Every user-facing failure (syntax, unknown name, domain violation, type
error, limits) is a `TahiryError` whose text is one clear sentence in the
DirkDB flavour (Malagasy with some French). `message` adds the wire prefix
`Hadisoana : `. Anything else escaping the engine is a bug.

`StorageFault` is the one exception to "the user did something wrong": this
server could not read or write one of its own files (corrupt, unreadable,
disk full, read-only). Nothing of the statement was applied. Its message
ends with a marker, ` [storage:read]` or ` [storage:write]`, so that a load
balancer, which only sees the wire, can tell it apart (and which operation
failed) and send the statement to another server.
"""

from __future__ import annotations

ERROR_PREFIX = "Hadisoana : "
ENGLISH_ERROR_PREFIX = "Error: "   # ERROR_PREFIX in English (engine.language.messages.translate)
# Ends the message of every storage fault (and of nothing else the engine
# says), followed by the operation that failed and "]".
STORAGE_FAULT_MARKER = " [storage:"
STORAGE_OPERATIONS = ("read", "write")


class EngineError(Exception):
    """The root of every exception the engine defines (catch it to catch them all).

    A `TahiryError` is a statement's failure told to the user; the others
    are the storage's and the data directory's own conditions (a batch not
    written, a journal entry that does not apply, an invalid document, a
    lock held too long, a directory in use, ...). Some also keep the
    built-in base their callers catch them by (`OSError`, `ValueError`).
    """


class TahiryError(EngineError):
    """A statement failed; `str(error)` is the sentence, without prefix."""

    def __init__(self, sentence: str):
        super().__init__(sentence)
        self.sentence = sentence

    @property
    def message(self) -> str:
        return ERROR_PREFIX + self.sentence


class StorageFault(TahiryError):
    """This server could not read or write a file of its own; nothing was applied.

    `object`: the file, relative to the data directory (`db/tables/t.json`);
    `operation`: "read" or "write"; `reason`: why, in a few words (for
    `.status;` and logs). The message is the Malagasy sentence plus the
    marker, so clients see the same kind of error as any other.
    """

    def __init__(self, sentence: str, obj: str, operation: str, reason: str):
        super().__init__(sentence)
        self.object = obj
        self.operation = operation
        self.reason = reason

    @property
    def message(self) -> str:
        return f"{ERROR_PREFIX}{self.sentence}{STORAGE_FAULT_MARKER}{self.operation}]"


def storage_fault_operation(message: str) -> str | None:
    """"read" or "write" if an error message (wire form) reports a storage fault, else None."""
    if not (message.endswith("]") and message.startswith(ERROR_PREFIX)):
        return None
    start = message.rfind(STORAGE_FAULT_MARKER)
    if start < 0:
        return None
    operation = message[start + len(STORAGE_FAULT_MARKER):-1]
    return operation if operation in STORAGE_OPERATIONS else None


def is_storage_fault(message: str) -> bool:
    """Whether an error message (wire form) reports a storage fault of the server that sent it."""
    return storage_fault_operation(message) is not None


class TahirySyntaxError(TahiryError):
    """A statement could not be parsed; carries its 1-based line and column."""

    def __init__(self, sentence: str, line: int, column: int):
        super().__init__(sentence)
        self.line = line
        self.column = column
