"""Running scripts of statements and client commands through a runner.

Shared by the interactive loop and the non-interactive modes (`-e`, `-f`,
stdin). A script is read by the engine's `ScriptSource` (in chunks, split
incrementally at `;` outside strings and comments), so a file of any size
runs with the memory of its longest statement; each statement runs even
after an earlier one failed. The client's own commands (`miala`,
`fanampiana` / `\\h` / `?`) are recognised here, in order with the
statements: `miala` stops the script, nothing after it is sent.

Non-interactive runs are pipelined (the runner's `run_all`: statements sent
ahead, answers shown in order, a failure with its `file:line`); the
interactive loop runs one statement at a time. A long `-f` run on a
terminal shows a progress line on stderr (engine/progress.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from engine.errors import ERROR_PREFIX
from engine.evaluation.outcome import Outcome
from engine.language.script import Piece, normalise_statement
from engine.language.script_source import PENDING, ScriptSource
from engine.progress import ProgressLine
from nodes.client.cheatsheet import GENERAL, topic_help
from nodes.client.completion import Vocabulary
from nodes.client.display import Display
from nodes.client.pipeline import Step
from nodes.client.runners import Runner, run_each

QUIT_WORDS = frozenset({"miala", "\\q", "quit", "exit"})
HELP_WORDS = frozenset({"fanampiana", "\\h", "?", "help", "\\?"})
# The client holds at most this much of one statement while reading a
# script: engine.evaluation.executor.Limits.max_statement_chars (not imported: the
# client does not load the engine to start); a node refuses more anyway.
MAX_STATEMENT_CHARS = 1_000_000


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
    errors: int = 0


# A ScriptSteps step's tag: its piece of the script, and the client command it is (or None).
ScriptTag = tuple[Piece, ClientCommand | None]


class ScriptSteps:
    """A script's statements and client commands as runner steps (`StepSource`).

    Each step's tag is (piece, command): the client command, or None for a
    statement. Comment-only statements are skipped; after `miala` the
    source ends. A statement over the length limit is not sent (its step
    has no statement; the batch reports it).
    """

    def __init__(self, script: ScriptSource):
        self.script = script
        self.stopped = False

    def fileno(self) -> int | None:
        return None if self.stopped else self.script.fileno()

    def poll(self, block: bool):
        while not self.stopped:
            piece = self.script.poll(block)
            if piece is None or piece is PENDING:
                return piece
            if piece.overlong:
                return Step(None, (piece, None))
            if not normalise_statement(piece.text):
                continue  # only comments: nothing to run
            command = client_command(piece.text)
            if command is not None:
                self.stopped = command.kind == "quit"
                return Step(None, (piece, command))
            return Step(piece.text, (piece, None))
        return None


def run_text(text: str, runner: Runner, display: Display,
             vocabulary: Vocabulary | None = None, source: str | None = None,
             pipelined: bool = False) -> BatchResult:
    """Run every statement of `text`; raises `NotListening` if the node is unreachable.

    source: the file name the text came from; failures then say where their
    statement starts (`script.tah:12:`), since error positions count from
    the start of the statement. pipelined: send statements ahead (not for
    the interactive loop, which keeps one statement at a time).
    """
    return run_script(ScriptSource(text=text, max_chars=MAX_STATEMENT_CHARS), runner, display,
                      vocabulary, source, pipelined=pipelined)


def run_script(script: ScriptSource, runner: Runner, display: Display,
               vocabulary: Vocabulary | None = None, source: str | None = None, *,
               pipelined: bool = True, progress: ProgressLine | None = None) -> BatchResult:
    """Run a script as it is read (a file, a pipe that may never end: `tail -f log | ...`).

    Each statement runs as soon as its `;` has been read; with `pipelined`
    up to the runner's window of them are in flight, and their answers are
    shown in order.
    """
    result = BatchResult()
    steps = ScriptSteps(script)
    results = runner.run_all(steps) if pipelined else run_each(runner, steps)
    try:
        for done in results:
            piece, command = cast(ScriptTag, done.step.tag)   # ScriptSteps tags every step so
            if progress is not None:
                progress.clear_for(display.out)
            if command is not None:
                if command.kind == "quit":
                    result.quit = True
                else:
                    display.text(help_text(command.topic))
                continue
            result.statements += 1
            outcome = done.outcome
            if piece.overlong:
                outcome = _too_long(piece)
            if outcome is None:
                continue
            if not outcome.ok:
                result.ok = False
                result.errors += 1
            if vocabulary is not None:
                vocabulary.learn(piece.text, outcome)
            display.outcome(outcome, _place(source, piece) if not outcome.ok else None)
            if progress is not None:
                progress.update(result.statements, result.errors, script.estimated_total())
    finally:
        if progress is not None:
            progress.finish()
    return result


def _too_long(piece: Piece) -> Outcome:
    return Outcome.failure(f"{ERROR_PREFIX}Lava loatra ny baiko : {piece.overlong} litera "
                           f"(max {MAX_STATEMENT_CHARS})")


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
