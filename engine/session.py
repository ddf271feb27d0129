"""The one entry point into the engine: a session with its current database.

`Session(store).execute(text)` splits the text into statements, parses and
runs each one, and returns one `Outcome` per non-empty statement. Every
statement runs even after an earlier one failed. A script of any size is
read by `engine.language.script_source.ScriptSource` and each of its statements run
with `run_piece`: the length limit is one statement's, not the script's. The embedded runner, the
client's embedded mode and the server (one session per connection) all use
this object.

A query of a shape seen before (engine/language/statement_cache.py) over one
stored table runs by its plan (engine/evaluation/query.py's `QueryPlan`,
compiled once per shape and list of column names and DATY columns): no tree is built and
nothing compiled, the statement's values are bound to the plan's
functions. It reads the database and the table exactly as the executor
does; anything the plan does not cover (views, joins, grouping, ...) runs
the usual way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from engine.errors import ERROR_PREFIX, StorageFault, TahiryError
from engine.evaluation.accounts import PasswordHash, password_ahead
from engine.evaluation.catalog import DatabaseCatalog, TableData
from engine.evaluation.code_cache import CodeCache
from engine.evaluation.domains import only_dates
from engine.evaluation.equality_lookup import MIN_INDEXED_ROWS
from engine.evaluation.executor import Executor, Limits
from engine.evaluation.null_note import null_comparison, null_note
from engine.evaluation.outcome import Outcome
from engine.evaluation.query import QueryPlan, plan_query
from engine.evaluation.rights import may_read
from engine.language import ast
from engine.language.account_syntax import may_set_password
from engine.language.lexer import describe_char
from engine.language.parser import StatementParser, syntax_error
from engine.language.script import Piece, split_statements
from engine.language.secrets import redact_secrets
from engine.language.statement_cache import Shape, StatementCache
from engine.storage.accounts import Identity
from engine.storage.store import Store

log = logging.getLogger(__name__)

INTERNAL_ERROR = ERROR_PREFIX + "Nisy olana tao anatin'ny motera (internal error)"
TOO_DEEP = ERROR_PREFIX + "Lalina loatra ny fangatahana (jery miantso ny tenany ve ?)"


_SURROGATE = re.compile("[\ud800-\udfff]")
# Keys of a shape's `plans` besides the column tuples, (name, DATY only) per column
# (no tuple equals them).
_SOURCE = "source"     # the table the probe reads, None when not plannable
_LAST = "last"         # (the columns list last checked, its plan): no names compared again
_NULL = "null"         # whether the probe compares with `null` (its answer's note, null_note.py)
# Plans kept per shape (one per list of columns its table had).
MAX_PLANS = 8
# `_planned`'s answer when the table is too big for `try_small_read` (nothing run).
_TOO_BIG = Outcome.failure("")


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
                 codes: CodeCache | None = None, identity: Identity | None = None):
        """`codes`: a compiled-expression cache to share with other sessions (else its own).

        `identity`: the account the session acts for (a server sets it after
        `.login`); None means accounts are off: every statement is allowed,
        exactly as without accounts. Every statement's rights are checked
        against the files at the time it runs (engine/evaluation/rights.py).
        """
        if parser is None:
            parser = StatementParser()
        self.identity: Identity | None = identity
        self.store = store
        self.parser = parser
        self.limits = limits or Limits()
        self.current_database: str | None = None
        self.executor = Executor(store, parser, self.limits, codes)
        # Statements of the same shape with other values skip the parser.
        self.statements = StatementCache()
        # The catalog plans read through (it holds nothing but the database's name).
        self._catalog: DatabaseCatalog | None = None
        # The password of the statement running now, hashed ahead (`execute_one`).
        self.hashed_password: PasswordHash | None = None
        # `password_to_hash`'s own parser (it runs beside this session's statements).
        self._ahead_parser: StatementParser | None = None

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

    def execute_one(self, text: str, hashed: PasswordHash | None = None) -> Outcome:
        """Run one statement's text (the server's unit); an empty one is an error.

        `hashed`: the password the statement sets, hashed ahead
        (`password_to_hash`, then engine.evaluation.accounts.hash_ahead, on
        another thread); stored as it is if the statement sets that very
        password, else ignored (the statement hashes its own, as always).
        """
        self.hashed_password = hashed
        try:
            outcomes = self.execute(text)
        finally:
            self.hashed_password = None
        if not outcomes:
            return Outcome.failure(ERROR_PREFIX + "Baiko foana")
        if len(outcomes) == 1:
            return outcomes[0]
        failures = [outcome for outcome in outcomes if not outcome.ok]
        return failures[0] if failures else outcomes[-1]

    def password_to_hash(self, text: str) -> str | None:
        """The password `text` sets if it is one statement that sets a password, this
        session may run it now and the password is acceptable; else None. Runs nothing.

        For a server: it hashes that password off the thread that runs
        statements, then hands the statement over with the hash
        (`execute_one(text, hashed)`), so scrypt never holds the others'
        statements. Called from one thread (the server's event loop), maybe
        while another runs this session's statements: it parses with a
        parser of its own, without its cache (the text holds a password),
        and reads only durable files (engine/evaluation/accounts.py).
        """
        if not may_set_password(text):
            return None
        parser = self._ahead_parser
        if parser is None:
            parser = self._ahead_parser = StatementParser(cache_size=1)
        try:
            pieces = split_statements(text)
            if len(pieces) != 1:
                return None
            statement = parser.parse_with_grammar(pieces[0].text)
            return password_ahead(self.store, self.identity, statement)
        except (TahiryError, RecursionError):
            return None
        except Exception:  # a bug: the statement runs the usual way and says what it says
            log.exception("internal error while looking ahead at %r", redact_secrets(text)[:200])
            return None

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
            pieces = split_statements(text)   # (a framed statement: no scan)
            if len(pieces) != 1:
                return None
            text = pieces[0].text
            check_encodable(text, 1, 1)
            hit = self.statements.lookup(text)
            if hit is not None:
                shape, values = hit
                if not isinstance(shape.probe, ast.Query):
                    return None   # a write: no tree built for nothing
                planned = self._planned(shape, values, text, max_rows)
                if planned is _TOO_BIG:
                    return None   # the usual way would find the same table as big
                if planned is not None:
                    return planned
                statement = shape.build(values)
            else:
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

    def is_small_literal_insert(self, text: str, max_rows: int) -> bool:
        """Whether `text` is one learnt INSERT of at most `max_rows` literal rows (nothing run).

        Its cost is then its rows, whatever the table. Only shapes already
        learnt say yes (a shape lookup, free right after `try_small_read`'s).
        """
        try:
            pieces = split_statements(text)   # (a framed statement: no scan)
        except TahiryError:
            return False
        if len(pieces) != 1:
            return False
        hit = self.statements.lookup(pieces[0].text)
        if hit is None:
            return False
        probe = hit[0].probe
        return (isinstance(probe, ast.Insert) and probe.rows is not None
                and len(probe.rows) <= max_rows)

    def _run_piece(self, text: str, line: int, column: int) -> Outcome | None:
        try:
            check_encodable(text, line, column)
            hit = self.statements.lookup(text)
            if hit is not None:
                shape, values = hit
                planned = self._planned(shape, values, text)
                if planned is not None:
                    return planned
                statement = shape.build(values)
            else:
                statement = self.statements.parse(self.parser, text, line, column)
            if statement is None:
                return None
        except TahiryError as error:
            return Outcome.failure(error.message)
        except RecursionError:
            return Outcome.failure(TOO_DEEP)
        return self._run_statement(statement, text)

    def _planned(self, shape: Shape, values: list, text: str,
                 max_rows: int | None = None) -> Outcome | None:
        """The outcome of the shape's statement with `values` by its plan; None: no plan.

        None (nothing run) too when the database is missing or the name is
        no table (a view): the usual way says why, or runs it. With
        `max_rows`, `_TOO_BIG` (nothing run) for a table of more rows,
        unless the plan is a point read whose equality index is already
        built and finds at most `max_rows` candidates: its cost is a dict
        lookup and those rows, whatever the table's size. Any failure once
        the plan runs is the outcome the executor gives for it (the same
        reads in the same order, then the same functions over the same rows).
        """
        database = self.current_database
        if database is None:
            return None
        name = shape.plans.get(_SOURCE, False)
        if name is False:
            name = shape.plans[_SOURCE] = _planned_source(shape.probe)
            shape.plans[_NULL] = null_comparison(shape.probe) is not None
        if name is None:
            return None
        if self.identity is not None and not may_read(self.store, self.identity, database):
            return None   # the executor's way refuses it, naming the right
        try:
            if not self.store.database_exists(database):
                return None
            catalog = self._catalog
            if catalog is None or catalog.database != database:
                catalog = self._catalog = self.executor.catalog(database)
            table = catalog.table(name)
            if table is None:
                return None
            plan = self._plan_for(shape, table)
            if plan is None:
                return None
            if max_rows is not None and len(table.rows) > max_rows \
                    and not _cheap_point_read(plan, table, values, max_rows):
                return _TOO_BIG
            relation = plan.run(table, values, self.limits.query)
        except Exception as error:
            return self._failure(error, text)
        message = f"{len(relation.rows)} andalana"
        if shape.plans[_NULL]:
            # The note shows the statement's own values (the probe holds sentinels): the
            # tree is built, as the general path has it, only for such a rare shape.
            message += null_note(shape.build(values))
        return Outcome.success(message, relation)

    def _plan_for(self, shape: Shape, table: TableData) -> QueryPlan | None:
        """The shape's plan for the columns of `table` (compiled on first use)."""
        plans = shape.plans
        last = plans.get(_LAST)
        if last is not None and last[0] is table.columns:
            return last[1]
        # The names, and which columns are DATY only: a plan compiled a text column's
        # comparisons without the date check (`check_date_literal`) a DATY one needs.
        names = tuple((column.name, only_dates(column.domain)) for column in table.columns)
        if names in plans:
            plan = plans[names]
        else:
            if len(plans) >= MAX_PLANS + 3:   # (the plans, then _SOURCE, _NULL and _LAST)
                kept = {key: plans[key] for key in (_SOURCE, _NULL)}
                plans.clear()
                plans.update(kept)
            probe = shape.probe
            assert isinstance(probe, ast.Query)  # `_planned_source` said so
            try:
                plan = plan_query(probe.select, table, shape.params, self.executor.codes)
            except TahiryError:
                # Let the executor report it, in its order (rows may fail first).
                plan = None
            plans[names] = plan
        # Holding the columns list keeps its identity from being reused.
        plans[_LAST] = (table.columns, plan)
        return plan

    def _failure(self, error: Exception, text: str) -> Outcome:
        """The outcome `_run_statement` gives when running raised `error`."""
        if isinstance(error, StorageFault):
            return Outcome.failure(error.message, error)
        if isinstance(error, TahiryError):
            return Outcome.failure(error.message)
        if isinstance(error, RecursionError):
            return Outcome.failure(TOO_DEEP)
        log.error("internal error while running %r", redact_secrets(text)[:200], exc_info=error)
        return Outcome.failure(INTERNAL_ERROR)

    def _run_statement(self, statement, text: str) -> Outcome:
        try:
            outcome = self.executor.run(statement, self)
        except StorageFault as fault:  # the server reports which file failed
            return Outcome.failure(fault.message, fault)
        except TahiryError as error:
            return Outcome.failure(error.message)
        except RecursionError:
            return Outcome.failure(TOO_DEEP)
        except Exception:  # a bug: report cleanly, keep the session alive
            log.exception("internal error while running %r", redact_secrets(text)[:200])
            return Outcome.failure(INTERNAL_ERROR)
        if outcome.ok:
            # Here, once for every way a statement runs but a plan (`_planned` adds the same).
            note = null_note(statement)
            if note:
                return Outcome.success(outcome.message + note, outcome.relation)
        return outcome


def _cheap_point_read(plan: QueryPlan, table: TableData, values: list, max_rows: int) -> bool:
    """Whether `plan` reads `table` through an equality index already built, finding at
    most `max_rows` candidate rows for `values` (so running it costs no more than a
    small table's read).

    An index not built yet is not built here: building it costs a pass over
    the table (the engine thread does it, on the statement's usual way, and
    later versions derive it at commit).
    """
    index = plan.index
    if plan.where is None or index is None or len(table.rows) < MIN_INDEXED_ROWS:
        return False
    # (Whether it is built, without building it: TableData keeps them by column.)
    built = table._indexes.get(index[0])
    if built is None:
        return False
    try:
        candidates = built.get(values[index[1]])
    except TypeError:   # not a hashable value: the plan's own run says what it gives
        return False
    return candidates is None or len(candidates) <= max_rows


def _planned_source(probe: ast.Statement) -> str | None:
    """The table a query's plan would read, or None when it is no plain one-table query."""
    if not isinstance(probe, ast.Query):
        return None
    core = probe.select
    if (not isinstance(core, ast.SelectCore) or core.joins or core.group_by is not None
            or core.order_by or not isinstance(core.source, ast.TableSource)):
        return None
    return core.source.name
