"""Running scripts of statements and client commands through a runner.

Shared by the interactive loop and the non-interactive modes (`-e`, `-f`,
stdin). A script is read by the engine's `ScriptSource` (in chunks, split
incrementally at `;` outside strings and comments), so a file of any size
runs with the memory of its longest statement; each statement runs even
after an earlier one failed. The client's own commands
(nodes/client/commands.py) are recognised here, in order with the
statements: a backslash command on the first line of a piece (`\\x` with
no `;`, the statement on the next lines still runs), a word command
(`miala`, `fanampiana`) alone; `miala` stops the script, nothing after it
is sent; `\\d T` is sent as the statement it stands for; `\\i FILE` runs FILE's
statements and commands in its place (its failures named `FILE:line:`).

Comment-only lines are not sent (nodes/client/positions.py); a failure
says where it is in the script (`script.tah:12:5:`), whatever line of its
statement it is on.

Non-interactive runs are pipelined (the runner's `run_all`: statements sent
ahead, answers shown in order); the interactive loop runs one statement at
a time. A long `-f` run on a terminal shows a progress line on stderr
(engine/progress.py). With `\\timing` each answer shows the time since the
previous one (for one statement at a time: the statement's own time).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import cast

from engine.errors import ERROR_PREFIX
from engine.evaluation.outcome import Outcome
from engine.language.script import Piece, normalise_statement
from engine.language.script_source import PENDING, ScriptSource, unreadable
from engine.progress import ProgressLine
from nodes.client.cheatsheet import GENERAL, topic_help
from nodes.client.commands import (
    ClientCommand,
    CommandError,
    apply,
    client_command,
    command_list,
    describe_statement,
    leading_comment_lines,
)
from nodes.client.completion import Vocabulary
from nodes.client.display import Display
from nodes.client.pipeline import Step
from nodes.client.positions import ScriptPlace, Sent, sendable
from nodes.client.runners import Runner, run_each

__all__ = ["BatchResult", "ClientCommand", "client_command", "help_text", "run_script",
           "run_text"]

# The client holds at most this much of one statement while reading a
# script: engine.evaluation.executor.Limits.max_statement_chars (not imported: the
# client does not load the engine to start); a node refuses more anyway.
MAX_STATEMENT_CHARS = 1_000_000


@dataclass
class BatchResult:
    """What running some text did: whether all of it succeeded, whether to quit."""

    ok: bool = True
    quit: bool = False
    statements: int = 0
    errors: int = 0


@dataclass(frozen=True)
class ScriptItem:
    """A ScriptSteps step's tag: its piece of the script, the command it is, the text sent.

    included: the file an `\\i` command brought the piece from (None: the script run);
    problem: why an `\\i` command could not run its file.
    """

    piece: Piece
    command: ClientCommand | None
    sent: Sent | None = None
    included: str | None = None
    problem: str | None = None


# `\i` inside included files: deeper than this is surely a loop through several files.
MAX_INCLUDE_DEPTH = 16


class ScriptSteps:
    """A script's statements and client commands as runner steps (`StepSource`).

    Each step's tag is a `ScriptItem`. Comment-only statements are skipped;
    after `miala` the source ends. A statement over the length limit is not
    sent (its step has no statement; the batch reports it). `\\i FILE` is
    expanded here, into FILE's own steps, so that FILE's statements are sent
    in their place even when statements are sent ahead (pipelined).
    """

    def __init__(self, script: ScriptSource, included: str | None = None,
                 chain: tuple[str, ...] = ()):
        self.script = script
        self.included = included   # the `\i` file name this source is (None: the top)
        self.chain = chain         # real paths of the files being included, outermost first
        self.stopped = False
        self.held: Piece | None = None   # the rest of a piece after its command line
        self.inner: ScriptSteps | None = None   # the file of an `\i` being run

    def fileno(self) -> int | None:
        if self.inner is not None:
            return self.inner.fileno()
        return None if self.stopped or self.held is not None else self.script.fileno()

    def close(self) -> None:
        """Close the files `\\i` opened (the script itself is its opener's)."""
        while self.inner is not None:
            inner, self.inner = self.inner, None
            inner.close()
            inner.script.close()

    def poll(self, block: bool):
        while not self.stopped:
            if self.inner is not None:
                step = self.inner.poll(block)
                if step is not None:
                    return step
                inner, self.inner = self.inner, None
                inner.script.close()
                self.stopped = inner.stopped   # `miala` in an included file quits, as psql's
                continue
            if self.held is not None:
                piece, self.held = self.held, None
            else:
                piece = self.script.poll(block)
                if piece is None or piece is PENDING:
                    return piece
            if piece.overlong:
                return Step(None, ScriptItem(piece, None))
            piece, self.held = _command_line(piece)
            command = client_command(piece.text)
            if command is not None:
                self.stopped = command.kind == "quit"
                if command.kind == "describe":
                    text = describe_statement(command)
                    return Step(text, ScriptItem(piece, None, included=self.included))
                if command.kind == "include":
                    problem = self._include(command)
                    if problem is None:
                        continue   # its steps come next
                    return Step(None, ScriptItem(piece, command, included=self.included,
                                                 problem=problem))
                return Step(None, ScriptItem(piece, command, included=self.included))
            if not normalise_statement(piece.text):
                continue  # only comments: nothing to run
            sent = sendable(piece.text)
            return Step(sent.text, ScriptItem(piece, None, sent, included=self.included))
        return None

    def _include(self, command: ClientCommand) -> str | None:
        """Open the file of `\\i FILE` as the steps to run next; None, or why it cannot."""
        if len(command.arguments) != 1:
            return "\\i FILE"
        path = command.arguments[0]
        problem = unreadable(path) if path != "-" else "- (stdin) is read by -f -, not \\i"
        if problem is None:
            real = os.path.realpath(path)
            if real in self.chain:
                problem = "already being run: a file including itself would never end"
            elif len(self.chain) >= MAX_INCLUDE_DEPTH:
                problem = f"more than {MAX_INCLUDE_DEPTH} files included one in another"
        if problem is None:
            try:
                script = ScriptSource.open(path, errors="replace", max_chars=MAX_STATEMENT_CHARS)
            except OSError as error:
                problem = (error.strerror or str(error)).lower()
            else:
                self.inner = ScriptSteps(script, path, (*self.chain, real))
        return None if problem is None else f"\\i {path}: {problem}"


def _is_command_line(text: str) -> bool:
    """Whether `text` starts with a line that is a client command: a backslash one, or a
    word one alone on its line (`miala`, as at the prompt; no statement starts so)."""
    return text.startswith("\\") or client_command(text.split("\n", 1)[0]) is not None


def _command_line(piece: Piece) -> tuple[Piece, Piece | None]:
    """A piece starting with a client command line: (that line, the rest or None).

    Comment lines before the command are dropped (they run nothing).
    """
    lines, cut = leading_comment_lines(piece.text)
    if lines and _is_command_line(piece.text[cut:].lstrip(" \t")):
        rest = piece.text[cut:]
        text = rest.lstrip(" \t")
        piece = Piece(text, piece.line + lines, len(rest) - len(text) + 1)
    if "\n" not in piece.text or not _is_command_line(piece.text):
        return piece, None
    first, rest = piece.text.split("\n", 1)
    body = rest.lstrip()
    if not body:
        return Piece(first, piece.line, piece.column), None
    lead = rest[:len(rest) - len(body)]
    newlines = lead.count("\n")
    column = len(lead) - lead.rfind("\n") if newlines else len(lead) + 1
    return Piece(first, piece.line, piece.column), Piece(body, piece.line + 1 + newlines, column)


def run_text(text: str, runner: Runner, display: Display,
             vocabulary: Vocabulary | None = None, source: str | None = None,
             pipelined: bool = False) -> BatchResult:
    """Run every statement of `text`; raises `NotListening` if the node is unreachable.

    source: the file name the text came from (failures then start with
    `file:line:`). pipelined: send statements ahead (not for the
    interactive loop, which keeps one statement at a time).
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
    steps = ScriptSteps(script, chain=(os.path.realpath(source),) if source and
                        source != "stdin" and os.path.isfile(source) else ())
    results = runner.run_all(steps) if pipelined else run_each(runner, steps)
    last = time.perf_counter()
    try:
        for done in results:
            item = cast(ScriptItem, done.step.tag)   # ScriptSteps tags every step so
            if progress is not None:
                progress.clear_for(display.out)
            where = item.included or source
            if item.command is not None:
                _run_command(item.command, display, result,
                             ScriptPlace(where, item.piece.line, item.piece.column), item.problem)
                last = time.perf_counter()
                continue
            result.statements += 1
            outcome = done.outcome
            if item.piece.overlong:
                outcome = _too_long(item.piece)
            if outcome is None:
                continue
            if not outcome.ok:
                result.ok = False
                result.errors += 1
            if vocabulary is not None:
                vocabulary.learn(done.step.statement or item.piece.text, outcome)
            now = time.perf_counter()
            display.outcome(outcome, None if outcome.ok else _place(where, item, outcome),
                            elapsed=now - last)
            last = now
            if progress is not None:
                progress.update(result.statements, result.errors, script.estimated_total())
    finally:
        steps.close()
        if progress is not None:
            progress.finish()
    return result


def _run_command(command: ClientCommand, display: Display, result: BatchResult,
                 place: ScriptPlace, problem: str | None = None) -> None:
    if problem is not None:   # an `\i` whose file cannot run (one that can has run)
        result.ok = False
        display.failure(problem, place)
    elif command.kind == "quit":
        result.quit = True
    elif command.kind == "help":
        display.text(help_text(command.topic))
    elif command.kind == "commands":
        display.text(command_list())
    else:
        try:
            said = apply(command, display)
        except CommandError as problem:
            result.ok = False
            display.failure(str(problem), place)
            return
        if said:
            display.text(said)


def _too_long(piece: Piece) -> Outcome:
    return Outcome.failure(f"{ERROR_PREFIX}Lava loatra ny baiko : {piece.overlong} litera "
                           f"(max {MAX_STATEMENT_CHARS})")


def _place(source: str | None, item: ScriptItem, outcome: Outcome) -> ScriptPlace:
    piece = item.piece
    if item.sent is None:   # `\d`, or not sent: the statement's start
        return ScriptPlace(source, piece.line, piece.column)
    return ScriptPlace.of(outcome.message, source, piece.text, item.sent, piece.line,
                          piece.column)


def help_text(topic: str | None) -> str:
    if topic is None:
        return GENERAL
    found = topic_help(topic)
    if found is None:
        return (f"Tsy misy fanampiana momba ny '{topic}' / no help on '{topic}'. "
                f"Type fanampiana for the overview.")
    return found
