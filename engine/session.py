"""The one entry point into the engine: a session with its current database.

`Session(store).execute(text)` splits the text into statements, parses and
runs each one, and returns one `Outcome` per non-empty statement. Every
statement runs even after an earlier one failed. A script of any size is
read by `engine.language.script_source.ScriptSource` and each of its statements run
with `run_piece`: the length limit is one statement's, not the script's. The embedded runner, the
client's embedded mode and the server (one session per connection) all use
this object.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from engine.errors import ERROR_PREFIX, StorageFault, TahiryError
from engine.evaluation.code_cache import CodeCache
from engine.evaluation.executor import Executor, Limits
from engine.evaluation.outcome import Outcome
from engine.language import ast
from engine.language.lexer import describe_char
from engine.language.parser import StatementParser, syntax_error
from engine.language.script import Piece, split_statements
from engine.language.statement_cache import StatementCache
from engine.storage.store import Store

log = logging.getLogger(__name__)

INTERNAL_ERROR = ERROR_PREFIX + "Nisy olana tao anatin'ny motera (internal error)"
TOO_DEEP = ERROR_PREFIX + "Lalina loatra ny fangatahana (jery miantso ny tenany ve ?)"


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_encodable(text: str, line: int, column: int) -> None:
    """Refuse text holding lone surrogates (bytes that were not UTF-8, as the
    embedded runner gets them in `-e`): a string made of them could be
    neither stored nor sent."""
    if text.isascii():
        return
    found = _SURROGATE.search(text)
    if found is not None:
        raise syntax_error(f"litera tsy UTF-8 {describe_char(found.group())}", text,
                           found.start(), line, column)


class Session:
    """A connection's view of the engine: the current database and a parser."""

    def __init__(self, store: Store, parser=None, limits: Limits | None = None,
                 codes: CodeCache | None = None):
        """`codes`: a compiled-expression cache to share with other sessions (else its own)."""
        if parser is None:
            parser = StatementParser()
        self.store = store
        self.parser = parser
        self.limits = limits or Limits()
        self.current_database: str | None = None
        self.executor = Executor(store, parser, self.limits, codes)
        # Statements of the same shape with other values skip the parser.
        self.statements = StatementCache()

    def execute(self, text: str) -> list[Outcome]:
        """Run every statement of `text`; one Outcome per non-empty statement."""
        return list(self.execute_iter(text))

    def execute_iter(self, text: str) -> Iterator[Outcome]:
        """Like `execute`, yielding each outcome as soon as its statement ran.

        `text` is one request (a server's statement): over the statement
        limit it is refused whole. Scripts go through `run_piece`.
        """
        if len(text) > self.limits.max_statement_chars:
            yield Outcome.failure(self._too_long(len(text)))
            return
        try:
            pieces = split_statements(text)
        except TahiryError as error:
            yield Outcome.failure(error.message)
            return
        for piece in pieces:
            outcome = self._run_piece(piece.text, piece.line, piece.column)
            if outcome is not None:
                yield outcome

    def run_piece(self, piece: Piece) -> Outcome | None:
        """Run one statement of a script; None for one made only of comments.

        A statement over the length limit (or one a `ScriptSource` dropped
        as `overlong`) gets the "too long" error with its line.
        """
        length = piece.overlong or len(piece.text)
        if length > self.limits.max_statement_chars:
            return Outcome.failure(f"{self._too_long(length)} (andalana {piece.line})")
        return self._run_piece(piece.text, piece.line, piece.column)

    def _too_long(self, length: int) -> str:
        return (f"{ERROR_PREFIX}Lava loatra ny baiko : {length} litera "
                f"(max {self.limits.max_statement_chars})")

    def execute_one(self, text: str) -> Outcome:
        """Run one statement's text (the server's unit); an empty one is an error."""
        outcomes = self.execute(text)
        if not outcomes:
            return Outcome.failure(ERROR_PREFIX + "Baiko foana")
        if len(outcomes) == 1:
            return outcomes[0]
        failures = [outcome for outcome in outcomes if not outcome.ok]
        return failures[0] if failures else outcomes[-1]

    def try_small_read(self, text: str, max_rows: int) -> Outcome | None:
        """Run `text` if it is one query over one table of at most `max_rows` rows.

        Returns None, having run nothing, for anything else (writes, joins,
        views, set operators, bigger tables, syntax errors): the caller runs
        those the usual way. Lets a server answer cheap reads without a
        thread hand-off; their cost is bounded by the table size.
        """
        if self.current_database is None:
            return None
        try:
            if ";" in text:  # maybe several statements: split them to be sure
                pieces = split_statements(text)
                if len(pieces) != 1:
                    return None
                text = pieces[0].text
            # else: one statement already framed (the server's case), no split needed
            text = text.strip()
            check_encodable(text, 1, 1)
            statement = self.statements.parse(self.parser, text)
        except (TahiryError, RecursionError):
            return None
        if not isinstance(statement, ast.Query):
            return None
        core = statement.select
        if (not isinstance(core, ast.SelectCore) or core.joins
                or not isinstance(core.source, ast.TableSource)):
            return None
        try:
            document = self.store.read(self.current_database, "table", core.source.name)
        except TahiryError:
            return None
        if document is None or len(document["rows"]) > max_rows:
            return None
        return self._run_statement(statement, text)

    def _run_piece(self, text: str, line: int, column: int) -> Outcome | None:
        try:
            check_encodable(text, line, column)
            statement = self.statements.parse(self.parser, text, line, column)
            if statement is None:
                return None
        except TahiryError as error:
            return Outcome.failure(error.message)
        except RecursionError:
            return Outcome.failure(TOO_DEEP)
        return self._run_statement(statement, text)

    def _run_statement(self, statement, text: str) -> Outcome:
        try:
            return self.executor.run(statement, self)
        except StorageFault as fault:  # the server reports which file failed
            return Outcome.failure(fault.message, fault)
        except TahiryError as error:
            return Outcome.failure(error.message)
        except RecursionError:
            return Outcome.failure(TOO_DEEP)
        except Exception:  # a bug: report cleanly, keep the session alive
            log.exception("internal error while running %r", text[:200])
            return Outcome.failure(INTERNAL_ERROR)
