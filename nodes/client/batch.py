"""Running text made of statements: client commands, then the runner.

Shared by the interactive loop and the non-interactive modes (`-e`, `-f`,
stdin). Text is split at `;` outside strings and comments by the engine's
splitter; each statement runs even after an earlier one failed. The client's
own commands (`miala`, `fanampiana` / `\\h` / `?`) are recognised here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from engine.errors import ERROR_PREFIX
from engine.script import Piece, StatementSplitter, normalise_statement

from nodes.client.cheatsheet import GENERAL, topic_help
from nodes.client.completion import Vocabulary
from nodes.client.connection import ConnectionLost
from nodes.client.display import Display
from nodes.client.runners import Runner

QUIT_WORDS = frozenset({"miala", "\\q", "quit", "exit"})
HELP_WORDS = frozenset({"fanampiana", "\\h", "?", "help", "\\?"})


@dataclass(frozen=True)
class ClientCommand:
    """A command the client handles itself: `quit` or `help` (maybe on a topic)."""

    kind: str
    topic: str | None = None


def client_command(text: str) -> ClientCommand | None:
    """The client command `text` is, if it is one (with or without `;`)."""
    words = text.strip().rstrip(";").split()
    if not words or len(words) > 2:
        return None
    first = words[0].lower()
    if first in QUIT_WORDS and len(words) == 1:
        return ClientCommand("quit")
    if first in HELP_WORDS:
        return ClientCommand("help", words[1] if len(words) == 2 else None)
    return None


@dataclass
class BatchResult:
    """What running some text did: whether all of it succeeded, whether to quit."""

    ok: bool = True
    quit: bool = False
    statements: int = 0


def run_text(text: str, runner: Runner, display: Display,
             vocabulary: Vocabulary | None = None, source: str | None = None) -> BatchResult:
    """Run every statement of `text`; raises `NotListening` if the node is unreachable.

    source: the file name the text came from; failures then say where their
    statement starts (`script.tah:12:`), since error positions count from
    the start of the statement.
    """
    return run_stream([text], runner, display, vocabulary, source)


def run_stream(chunks: Iterable[str], runner: Runner, display: Display,
               vocabulary: Vocabulary | None = None, source: str | None = None) -> BatchResult:
    """Like `run_text`, but each statement runs as soon as its `;` has been read.

    For files and pipes: a long script starts at once and a script that
    never ends (`tail -f log | ...`) is served as it grows.
    """
    result = BatchResult()
    splitter = StatementSplitter()
    for chunk in chunks:
        for piece in splitter.feed(chunk):
            if _run_piece(piece, runner, display, vocabulary, source, result):
                return result
    last = splitter.finish()
    if last is not None:
        _run_piece(last, runner, display, vocabulary, source, result)
    return result


def _run_piece(piece: Piece, runner: Runner, display: Display, vocabulary: Vocabulary | None,
               source: str | None, result: BatchResult) -> bool:
    """Run one statement (or client command) into `result`; True means quit."""
    statement = piece.text
    if not normalise_statement(statement):
        return False  # only comments: nothing to run
    command = client_command(statement)
    if command is not None:
        if command.kind == "quit":
            result.quit = True
            return True
        display.text(help_text(command.topic))
        return False
    result.statements += 1
    try:
        outcome = runner.run(statement)
    except ConnectionLost as lost:
        result.ok = False
        display.failure(ERROR_PREFIX + str(lost), _place(source, piece))
        return False
    if outcome is None:
        return False
    if not outcome.ok:
        result.ok = False
    if vocabulary is not None:
        vocabulary.learn(statement, outcome)
    display.outcome(outcome, _place(source, piece) if not outcome.ok else None)
    return False


def _place(source: str | None, piece: Piece) -> str | None:
    return f"{source}:{piece.line}" if source is not None else None


def help_text(topic: str | None) -> str:
    if topic is None:
        return GENERAL
    found = topic_help(topic)
    if found is None:
        return (f"Tsy misy fanampiana momba ny '{topic}' / no help on '{topic}'. "
                f"Type fanampiana for the overview.")
    return found
