"""The interactive loop: prompt_toolkit prompt, multi-line until `;`.

Enter submits when the text holds at least one statement ended by `;`
outside strings and comments with nothing but blanks or comments after it,
or is a client command (`miala`, `fanampiana`, `\\x`, `\\d naoty`, ...:
nodes/client/commands.py, listed by `\\?`); otherwise it starts a new
line. Esc-Enter always submits. History is kept in ~/.tahiry_history, every
password in it replaced by `"***"` (account statements, `.login`); Tab
completes keywords and learned names; the prompt shows the current
database. Ctrl-C cancels the input (or a running statement), Ctrl-D quits.
"""

from __future__ import annotations

from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings

from engine.language.script import StatementSplitter, normalise_statement
from engine.language.secrets import redact_secrets
from nodes.client.batch import client_command, run_text
from nodes.client.commands import leading_comment_lines
from nodes.client.completion import TahiryCompleter, Vocabulary
from nodes.client.connection import AuthenticationFailed, NotListening
from nodes.client.display import Display
from nodes.client.runners import Runner
from nodes.protocol import redact_login

HISTORY_FILE = Path.home() / ".tahiry_history"
WELCOME = ("Tahiry — {where}\n"
           "Baiko mifarana amin'ny ';' / statements end with ';'. "
           "fanampiana (\\h, ?) = help, \\? = client commands, miala = quit.")


def trailing_command(text: str) -> tuple[str, str] | None:
    """(what to run now, the statement kept) when the last line of `text` is a backslash
    command standing outside any string or comment, under an unfinished statement.

    As in psql, the statements already ended above it and the command run, and the
    unfinished statement stays in the input: a backslash starts no statement, so such a
    line can only be a command (`\\q` after a forgotten `;` was read as the statement's
    text, and so was every `\\q` or `miala` after it).
    """
    head, newline, last = text.rpartition("\n")
    if not newline or not last.lstrip().startswith("\\") or not normalise_statement(head):
        return None
    head += "\n"
    splitter = StatementSplitter()
    splitter.feed(head)
    if splitter.in_literal():
        return None
    cut = len(head) - splitter.pending_length()
    kept = head[cut:].lstrip()
    if not normalise_statement(kept):
        return head + last.strip(), ""   # nothing unfinished: all of it runs
    return head[:cut] + "\n" + last.strip(), kept


def input_complete(text: str) -> bool:
    """Whether Enter should submit `text` rather than start a new line."""
    if not text.strip() or client_command(text[leading_comment_lines(text)[1]:]) is not None:
        return True
    if trailing_command(text) is not None:
        return True
    if not normalise_statement(text):
        return True   # only comments: they run nothing, and a command may follow
    splitter = StatementSplitter()
    if not splitter.feed(text):
        return False
    # Text after the last `;` (an unfinished statement or string) keeps the
    # input open, unless it is only comments.
    rest = splitter.finish()
    return rest is None or not normalise_statement(rest.text)


def prompt_text(database: str | None) -> str:
    return f"tahiry({database})> " if database else "tahiry> "


def _key_bindings() -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("enter")
    def _enter(event) -> None:
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            buffer.apply_completion(state.current_completion)
            return
        if input_complete(buffer.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    @bindings.add("escape", "enter")
    def _submit(event) -> None:
        event.current_buffer.validate_and_handle()

    return bindings


class Repl:
    """Reads statements interactively and runs them until `miala` or Ctrl-D."""

    def __init__(self, runner: Runner, display: Display, *, history: History | None = None,
                 input=None, output=None, vocabulary: Vocabulary | None = None):
        self.runner = runner
        self.display = display
        self.vocabulary = vocabulary or Vocabulary()
        if history is None:
            history = _file_history()
        self.session: PromptSession = PromptSession(
            history=history,
            multiline=True,
            key_bindings=_key_bindings(),
            completer=TahiryCompleter(self.vocabulary),
            complete_while_typing=False,
            auto_suggest=AutoSuggestFromHistory(),
            prompt_continuation=self._continuation,
            input=input,
            output=output,
        )

    def _continuation(self, width: int, line_number: int, wrap_count: int) -> str:
        """`...>` before a line the user started; blanks before the rest of a long line
        folded by the terminal (it drew `...>` too, which looked like a line break)."""
        return " " * width if wrap_count else "...> ".rjust(width)

    def run(self) -> int:
        """The loop; returns the exit status (always 0: errors were shown)."""
        self.display.text(WELCOME.format(where=self.runner.where))
        pending = ""   # a statement kept in the input while a command ran under it
        while True:
            try:
                text = self.session.prompt(prompt_text(self.runner.database), default=pending)
            except KeyboardInterrupt:
                pending = ""
                continue
            except EOFError:
                return 0
            pending = ""
            command = trailing_command(text)
            if command is not None:
                text, pending = command
            try:
                result = run_text(text, self.runner, self.display, self.vocabulary)
            except KeyboardInterrupt:
                self.runner.interrupted()
                self.display.failure("nofoanana / interrupted (the statement's outcome is unknown)")
                continue
            except (NotListening, AuthenticationFailed) as problem:
                self.display.failure(str(problem))
                continue
            if result.quit:
                return 0


def redact(text: str) -> str:
    """`text` with every password replaced by `"***"` (what history keeps)."""
    return redact_login(redact_secrets(text))


class RedactingFileHistory(FileHistory):
    """The history file, never holding a password (the up arrow shows the redacted text too)."""

    def append_string(self, string: str) -> None:
        super().append_string(redact(string))


class RedactingMemoryHistory(InMemoryHistory):
    def append_string(self, string: str) -> None:
        super().append_string(redact(string))


def _file_history(path: Path | None = None) -> History:
    path = HISTORY_FILE if path is None else path
    try:
        path.touch(mode=0o600, exist_ok=True)
        return RedactingFileHistory(str(path))
    except OSError:
        return RedactingMemoryHistory()
