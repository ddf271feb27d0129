"""Runs one parsed statement against the store: DDL, DML, queries, show, use.

Every statement is atomic: all checks (names, domains, expressions of every
row) happen before the one file write that applies it, so a statement that
fails writes nothing. A write statement runs in a batch (the server's group
commit, or one of its own) so that what it writes is based on the versions
it read, and its commit is certified against the peers (docs/REPLICATION.md).
Queries are handed to the evaluator (engine.evaluation.query).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from engine.errors import TahiryError
from engine.evaluation import accounts as account_statements
from engine.evaluation import describe, query, rights
from engine.evaluation.catalog import (
    DatabaseCatalog,
    TableData,
    memoized_table,
    no_such_table,
)
from engine.evaluation.code_cache import CodeCache
from engine.evaluation.domains import (
    check_column_names,
    check_value,
    column_checker,
    domain_to_json,
)
from engine.evaluation.outcome import Column, Outcome, Relation
from engine.evaluation.query import DEFAULT_LIMITS, QueryLimits
from engine.language import ast
from engine.language.hints import name_hint
from engine.language.messages import text
from engine.storage import accounts
from engine.storage.accounts import Identity
from engine.storage.certified import certified_write
from engine.storage.names import validate_name
from engine.storage.row_list import rows_with, rows_without
from engine.storage.store import Store
from engine.vocabulary import OBJECT_KIND_WORDS

SHOW_COLUMN = "fanasehoana"
READ_ONLY = (ast.Query, ast.Show, ast.Describe, ast.Use, ast.ShowAccounts)
# Statements that write accounts or grants (engine/evaluation/accounts.py).
ACCOUNT_WRITES = (ast.CreateAccount, ast.DropAccount, ast.SetPassword, ast.Grant)
NO_DATABASE = "Tsy nisafidy tahiry ianao"
COLUMN_CHECKS_KEPT = 256   # tables whose column checks are kept (then they are made again)
CHANGED = "Tafinditra ny fiovana ny tabilao"


@dataclass(frozen=True)
class Limits:
    """Caps on one statement's work, checked where it is cheap."""

    max_insert_rows: int = 100_000        # rows one INSERT may add
    max_table_rows: int = 2_000_000       # rows a table may hold after a write
    max_string_length: int = 1_000_000    # code points of one stored string
    max_statement_chars: int = 1_000_000  # text of one script given to a session
    query: QueryLimits = DEFAULT_LIMITS   # result rows, join work, nesting of queries


class SessionState(Protocol):
    """What the executor needs from a session (engine.session.Session): the current
    database, and the account it acts for (None: accounts off, everything allowed).
    (A session may also carry `hashed_password`, the password of the statement it
    runs hashed ahead: engine/evaluation/accounts.py.)"""

    current_database: str | None
    identity: Identity | None


def _changed(count: int) -> str:
    return f"{CHANGED} ({count} andalana)"


def _unknown_column(name: str, table: TableData) -> TahiryError:
    return TahiryError(f"Le champ '{name}' n'existe pas dans la relation."
                       + name_hint(name, (column.name for column in table.columns)))


class Executor:
    """Statement runner over one Store; stateless apart from what it is given."""

    def __init__(self, store: Store, parser, limits: Limits | None = None,
                 codes: CodeCache | None = None):
        self.store = store
        self.parser = parser
        self.limits = limits or Limits()
        # Compiled expressions, kept for the next statement of the same shape.
        self.codes = codes if codes is not None else CodeCache()
        # id(a table document's column list) -> (that list, one value check per column).
        # A write's new version shares the list of the version it read, so the
        # checks are made once per table, not per insert.
        self._column_checks: dict[int, tuple[list, list[Callable[[object], object]]]] = {}

    def run(self, statement: ast.Statement, session: SessionState) -> Outcome:
        identity = getattr(session, "identity", None)
        if identity is not None:  # refused before anything is read for it or written
            if self.store.has_peers and not isinstance(statement, READ_ONLY):
                rights.pull_rights(self.store, identity, statement, session.current_database)
            rights.check(self.store, identity, statement, session.current_database)
        handler: Callable[[ast.Statement, SessionState], Outcome] | None
        if isinstance(statement, ACCOUNT_WRITES):
            # Hashed before the batch: scrypt's time is spent holding no lock (a
            # server hashed it already, off its engine thread: `hashed_password`).
            password = account_statements.hash_for(
                statement, getattr(session, "hashed_password", None))

            def handler(statement: ast.Statement, session: SessionState) -> Outcome:
                outcome = self._run_account(statement, password)
                if (outcome.ok and identity is not None and password is not None
                        and isinstance(statement, ast.SetPassword)
                        and statement.name == identity.name):
                    # Its own new password: this session carries on (the others end).
                    session.identity = replace(identity, stamp=accounts.password_stamp(password))
                return outcome
        else:
            handler = getattr(self, "_run_" + type(statement).__name__, None)
        if handler is None:
            raise TahiryError(f"Baiko tsy fantatra : {type(statement).__name__}")
        if isinstance(statement, READ_ONLY):
            return handler(statement, session)
        store = self.store
        if store.in_own_batch:  # the server's group commit: it commits and re-runs
            with store.write_lock:
                store.begin_statement()
                if store.has_peers:
                    self._pull_written_objects(statement, session)
                return handler(statement, session)
        return self._run_certified(handler, statement, session)

    def _run_certified(self, handler, statement: ast.Statement, session: SessionState) -> Outcome:
        """A write statement alone: its own batch, committed, certified; run again while fenced
        (engine/storage/certified.py)."""

        def work() -> Outcome:
            if self.store.has_peers:
                self._pull_written_objects(statement, session)
            return handler(statement, session)
        return certified_write(self.store, work)

    def _pull_written_objects(self, statement: ast.Statement, session: SessionState) -> None:
        """Pull on write: a peer's newer copy of what this statement may write comes in first.

        The database marker too (a database dropped elsewhere stays dropped),
        except for database DDL, which the load balancer sends to every
        server. A name this misses is still safe: the commit fence refuses
        the write.
        """
        store = self.store
        if isinstance(statement, ACCOUNT_WRITES):
            account_statements.pull(store, statement)
            return
        if isinstance(statement, ast.CreateDatabase):
            return  # sent to every server: each decides from its own marker
        if isinstance(statement, ast.Drop) and statement.what == "database":
            store.pull_newer_objects(statement.name)  # tombstones above every peer's copy
            return
        database = session.current_database
        if database is None:
            return
        wanted = [("database", database)]
        if isinstance(statement, (ast.Insert, ast.Update, ast.Delete)):
            wanted.append(("table", statement.table))
        elif isinstance(statement, (ast.CreateTable, ast.CreateView)):
            wanted += [("table", statement.name), ("view", statement.name)]
        elif isinstance(statement, ast.CreateDomain):
            wanted.append(("domain", statement.name))
        elif isinstance(statement, ast.Drop) and statement.what in OBJECT_KIND_WORDS:
            wanted.append((statement.what, statement.name))
        store.pull_newer_all(database, wanted)   # (a network peer is asked once for all)

    # ------------------------------------------------------------ helpers

    def _database(self, session: SessionState) -> str:
        database = session.current_database
        if database is None:
            raise TahiryError(NO_DATABASE)
        if not self.store.database_exists(database):
            raise TahiryError(f"Tsy misy ny tahiry : {database}")
        return database

    def catalog(self, database: str) -> DatabaseCatalog:
        return DatabaseCatalog(self.store, database, self.parser)

    def _no_table(self, database: str, name: str) -> TahiryError:
        return no_such_table(database, name, self.catalog(database).object_names())

    def _writable_table(self, database: str, name: str) -> tuple[dict, TableData]:
        validate_name(name, "table")
        entry = self.store.read_with_memo(database, "table", name)
        if entry is None:
            if self.store.read(database, "view", name) is not None:
                raise TahiryError(
                    f"Tsy azo soratana ny jery : {name} (tabilao ihany no azo ovaina)")
            raise self._no_table(database, name)
        # The version's own TableData, as readers get it: its indexes and row
        # positions are derived from one version to the next.
        return entry[0], memoized_table(*entry)

    @staticmethod
    def _rows_to_test(where: ast.Expr | None, table: TableData) -> Iterable[tuple[int, list]]:
        """(position, row) of each row a write's condition must be tested on, in table order.

        `rehefa id = 5` (a condition the equality index narrows,
        engine/evaluation/equality_lookup.py): only the rows holding 5, at
        their positions in this version (engine/evaluation/row_positions.py),
        so a point update or delete costs its rows, not the table. The rows
        left out could only be false, and testing them could raise nothing
        (equality_lookup.py says why): the outcome is the full scan's.
        """
        if where is not None:
            candidates = query.table_candidates(where, table)
            if candidates is not None:
                positions = table.positions_of(candidates)
                if positions is not None:
                    return zip(positions, candidates, strict=True)
        return enumerate(table.rows)

    def _name_taken(self, database: str, name: str) -> None:
        """Tables and views share one namespace."""
        if self.store.read(database, "table", name) is not None:
            raise TahiryError(f"Ny tabilao : {name} dia efa misy")
        if self.store.read(database, "view", name) is not None:
            raise TahiryError(f"Ny jery : {name} dia efa misy")

    def _cell(self, column, value: object) -> object:
        """`value` if it may be stored in `column` (size limit, domain)."""
        if isinstance(value, str) and len(value) > self.limits.max_string_length:
            raise TahiryError(
                f"Lava loatra ny lahatsoratra ho an'ny tsanganana '{column.name}' "
                f"(max {self.limits.max_string_length})")
        return check_value(column.name, value, column.domain)

    def _checked(self, checks: list[Callable[[object], object]], positions: list[int],
                 values: Sequence) -> list:
        """A full table row from values for `positions`, domain-checked (`checks`: `_checks_of`)."""
        row: list[object] = [None] * len(checks)
        for position, value in zip(positions, values, strict=True):
            row[position] = checks[position](value)
        # Columns not given are NULL, which fits every domain.
        return row

    def _checks_of(self, document: dict, table: TableData) -> list[Callable[[object], object]]:
        """One value check per column of `table` (`_cell`'s, quicker for the plain cases)."""
        columns = document["columns"]
        known = self._column_checks.get(id(columns))
        if known is not None and known[0] is columns:
            return known[1]
        limit = self.limits.max_string_length
        checks = [column_checker(column.domain, limit, functools.partial(self._cell, column))
                  for column in table.columns]
        if len(self._column_checks) >= COLUMN_CHECKS_KEPT:
            self._column_checks.clear()
        self._column_checks[id(columns)] = (columns, checks)
        return checks

    def _check_size(self, document: dict, rows: int) -> None:
        if rows > self.limits.max_table_rows:
            raise TahiryError(
                f"Feno ny tabilao {document['name']} : {self.limits.max_table_rows} andalana "
                f"farafahabetsany")

    def _write_rows(self, database: str, document: dict, rows: Sequence[list], ops: list) -> None:
        """The table's new rows; `ops` say what changed from the rows read (its journal entry)."""
        self._check_size(document, len(rows))
        self.store.write(database, "table", document["name"],
                         {"columns": document["columns"], "rows": rows}, ops)

    # ------------------------------------------------------------ use / show

    def _run_Use(self, statement: ast.Use, session: SessionState) -> Outcome:
        name = validate_name(statement.database, "database")
        if not self.store.database_exists(name):
            raise TahiryError(f"Tsy misy ny tahiry : {name}")
        session.current_database = name
        return Outcome.success(f"Ny tahiry : {name} dia miasa ankehitriny")

    def _run_Show(self, statement: ast.Show, session: SessionState) -> Outcome:
        kind = statement.what
        word = OBJECT_KIND_WORDS.get(kind)
        if word is None:
            raise TahiryError(f"Tsy azo asehoy : {kind}")
        if kind == "database":
            identity = getattr(session, "identity", None)
            names = (self.store.list_databases() if identity is None
                     else accounts.visible_databases(self.store, identity))
        else:
            names = self.store.list_objects(self._database(session), kind)
        relation = Relation(word, [Column(SHOW_COLUMN, None)], [[n] for n in names])
        return Outcome.success(f"{len(names)} andalana", relation)

    def _run_Describe(self, statement: ast.Describe, session: SessionState) -> Outcome:
        database = self._database(session)
        catalog = self.catalog(database)
        if statement.name is None:
            relation = describe.describe_all(
                catalog, self.store.list_objects(database, "table"),
                self.store.list_objects(database, "view"), self.limits.query)
        else:
            name = validate_name(statement.name, "table")
            found = describe.describe_one(catalog, name, self.limits.query)
            if found is None:
                raise self._no_table(database, name)
            relation = found
        return Outcome.success(f"{len(relation.rows)} andalana", relation)

    # ------------------------------------------------------------ accounts

    def _run_ShowAccounts(self, statement: ast.ShowAccounts, session: SessionState) -> Outcome:
        return account_statements.show_accounts(self.store, getattr(session, "identity", None))

    def _run_account(self, statement: ast.Statement, password: dict | None) -> Outcome:
        """An account statement that writes (its password already hashed, if it sets one)."""
        store = self.store
        if isinstance(statement, ast.CreateAccount):
            assert password is not None
            return account_statements.create_account(store, statement, password)
        if isinstance(statement, ast.SetPassword):
            assert password is not None
            return account_statements.set_password(store, statement, password)
        if isinstance(statement, ast.DropAccount):
            return account_statements.drop_account(store, statement)
        assert isinstance(statement, ast.Grant)
        return account_statements.grant(store, statement)

    # ------------------------------------------------------------ create / drop

    def _run_CreateDatabase(self, statement: ast.CreateDatabase, session) -> Outcome:
        name = validate_name(statement.name, "database")
        if self.store.database_exists(name):
            raise TahiryError(f"Ny tahiry ({name}) dia efa misy")
        identity = getattr(session, "identity", None)
        self.store.create_database(name, owner=identity.name if identity is not None else None)
        return Outcome.success(f"Ny tahiry : {name} dia voaforona soamantsara")

    def _lookup_domain(self, database: str):
        def lookup(name: str) -> list[dict] | None:
            validate_name(name, "domain")
            document = self.store.read(database, "domain", name)
            return None if document is None else document["domain"]
        return lookup

    def _domain_names(self, database: str):
        """The database's domains, listed when called (for a misspelled one's hint)."""
        return lambda: self.store.list_objects(database, "domain")

    def _run_CreateTable(self, statement: ast.CreateTable, session) -> Outcome:
        database = self._database(session)
        name = validate_name(statement.name, "table")
        self._name_taken(database, name)
        check_column_names([column.name for column in statement.columns])
        lookup = self._lookup_domain(database)
        domains = self._domain_names(database)
        columns = []
        for column in statement.columns:
            validate_name(column.name, "column")
            columns.append({"name": column.name,
                            "domain": domain_to_json(column.domain, lookup, domains)})
        self.store.write(database, "table", name, {"columns": columns, "rows": []})
        return Outcome.success(f"Ny tabilao : {name} dia voaforona soamantsara")

    def _run_CreateDomain(self, statement: ast.CreateDomain, session) -> Outcome:
        database = self._database(session)
        name = validate_name(statement.name, "domain")
        if self.store.read(database, "domain", name) is not None:
            raise TahiryError(f"Ny efitra : {name} dia efa misy")
        atoms = domain_to_json(statement.domain, self._lookup_domain(database),
                               self._domain_names(database))
        self.store.write(database, "domain", name, {"domain": atoms})
        return Outcome.success(f"Ny efitra : {name} dia voaforona soamantsara")

    def _run_CreateView(self, statement: ast.CreateView, session) -> Outcome:
        database = self._database(session)
        name = validate_name(statement.name, "view")
        self._name_taken(database, name)
        # Checked now: a view that cannot be evaluated is refused.
        relation = query.evaluate_query(statement.query, self.catalog(database), self.limits.query)
        seen: set[str] = set()
        for column in relation.columns:
            if column.name in seen:   # it could never be read by its name: ambiguous
                raise TahiryError(
                    f"Ny tsanganana '{column.name}' dia indroa ao amin'ny jery {name} : omeo "
                    f"anarana hafa ny iray amin'izy ireo (antso)")
            seen.add(column.name)
        self.store.write(database, "view", name, {"query": statement.query_text.strip()})
        return Outcome.success(f"Ny jery : {name} dia voaforona soamantsara")

    def _run_Drop(self, statement: ast.Drop, session: SessionState) -> Outcome:
        kind = statement.what
        if kind == "database":
            name = validate_name(statement.name, "database")
            if not self.store.drop_database(name):
                raise TahiryError(f"Tsy misy ny tahiry : {name}")
            if session.current_database == name:
                session.current_database = None
            return Outcome.success(f"Ny tahiry : {name} dia voafafa")
        word = OBJECT_KIND_WORDS.get(kind)
        if word is None:
            raise TahiryError(f"Tsy azo ravana : {kind}")
        database = self._database(session)
        name = validate_name(statement.name, kind)
        if not self.store.drop(database, kind, name):
            if kind == "table":
                if self.store.read(database, "view", name) is not None:
                    raise TahiryError(f"Ny {name} dia jery fa tsy tabilao (ravao ny jery {name})")
                raise self._no_table(database, name)
            if kind == "view" and self.store.read(database, "table", name) is not None:
                raise TahiryError(f"Ny {name} dia tabilao fa tsy jery (ravao ny tabilao {name})")
            raise TahiryError(f"Tsy misy ny {word} : {name}")
        return Outcome.success(f"Ny {word} : {name} dia voafafa")

    # ------------------------------------------------------------ DML

    def _column_positions(self, table: TableData, names) -> list[int]:
        """Positions of the named columns, matched case-insensitively."""
        by_name = {column.name.casefold(): index for index, column in enumerate(table.columns)}
        positions = []
        for name in names:
            index = by_name.get(name.casefold())
            if index is None:
                raise _unknown_column(name, table)
            if index in positions:
                raise TahiryError(f"Ny tsanganana '{name}' dia voatonona indroa")
            positions.append(index)
        return positions

    def _run_Insert(self, statement: ast.Insert, session) -> Outcome:
        database = self._database(session)
        document, table = self._writable_table(database, statement.table)
        if statement.columns:
            positions = self._column_positions(table, statement.columns)
        else:
            positions = list(range(len(table.columns)))
        if statement.query is not None:
            relation = query.evaluate_query(statement.query, self.catalog(database),
                                            self.limits.query)
            if len(relation.columns) != len(positions):
                hint = _insert_columns_hint(table, positions)
                if statement.columns:
                    raise TahiryError(
                        f"Tsy mitovy ny isan'ny tsanganana : {len(relation.columns)} avy amin'ny "
                        f"alaivo, {len(positions)} voatonona ho an'ny tabilao {table.name}" + hint)
                raise TahiryError(
                    f"Tsy mitovy ny isan'ny tsanganana : {len(relation.columns)} avy amin'ny "
                    f"alaivo, {len(positions)} ao amin'ny tabilao {table.name}" + hint)
            # Rows of values, or (below) rows of the statement's expressions.
            sources: Sequence[Sequence] = relation.rows
            evaluate = None
        else:
            sources = statement.rows or ()
            evaluate = query.evaluate_constant
        if len(sources) > self.limits.max_insert_rows:
            raise TahiryError(
                f"Be loatra ny andalana : {len(sources)} (max {self.limits.max_insert_rows} "
                f"isaky ny manampia)")
        new_rows = []
        checks = self._checks_of(document, table)
        for number, source in enumerate(sources, 1):
            if len(source) != len(positions):
                # Which columns take the values, and which row is wrong when there are several.
                hint = _insert_columns_hint(table, positions) + (
                    text("hint_insert_row", row=number) if len(sources) > 1 else "")
                if statement.columns:
                    raise TahiryError(
                        f"Tsy mitovy ny isan'ny sanda ({len(source)}) sy ny tsanganana "
                        f"voatonona ({len(positions)}) ho an'ny tabilao {table.name}" + hint)
                raise TahiryError(
                    f"Tsy mitovy ny isan'ny sanda ({len(source)}) sy ny tsanganana "
                    f"({len(positions)}) ao amin'ny tabilao {table.name}" + hint)
            try:
                values = ([item.value if type(item) is ast.Literal else evaluate(item)
                           for item in source] if evaluate else source)
                new_rows.append(self._checked(checks, positions, values))
            except TahiryError as error:
                if evaluate is None or len(sources) == 1 or type(error) is not TahiryError:
                    raise
                # `sanda (...), (..., 25)`: which row of the values the error is in.
                raise TahiryError(error.sentence + text("hint_insert_row", row=number)) from None
        if new_rows:
            self._check_size(document, len(table.rows) + len(new_rows))
            # The store adds them to the rows read: in place when this batch
            # already wrote the table, so a pipelined load costs each row once.
            self.store.append_rows(database, document["name"], document["columns"], new_rows)
        return Outcome.success(_changed(len(new_rows)))

    def _run_Update(self, statement: ast.Update, session) -> Outcome:
        database = self._database(session)
        document, table = self._writable_table(database, statement.table)
        positions = self._column_positions(
            table, [assignment.column for assignment in statement.assignments])
        expressions = [query.compile_table_expression(assignment.expr, table, self.codes)
                       for assignment in statement.assignments]
        predicate = (query.compile_table_predicate(statement.where, table, self.codes)
                     if statement.where is not None else None)
        checks = self._checks_of(document, table)
        changed = []
        for index, row in self._rows_to_test(statement.where, table):
            if predicate is None or predicate(row):
                # Every right-hand side sees the row as it was.
                values = [expression(row) for expression in expressions]
                updated = list(row)
                for position, value in zip(positions, values, strict=True):
                    updated[position] = checks[position](value)
                changed.append([index, updated])
        count = len(changed)
        if count:
            self._write_rows(database, document, rows_with(table.rows, changed),
                             [["set", changed]])
        return Outcome.success(_changed(count))

    def _run_Delete(self, statement: ast.Delete, session) -> Outcome:
        database = self._database(session)
        document, table = self._writable_table(database, statement.table)
        if statement.where is None:
            removed = list(range(len(table.rows)))
        else:
            predicate = query.compile_table_predicate(statement.where, table, self.codes)
            tested = self._rows_to_test(statement.where, table)
            removed = [index for index, row in tested if predicate(row)]
        count = len(removed)
        if count:
            self._write_rows(database, document, rows_without(table.rows, removed),
                             [["remove", removed]])
        return Outcome.success(_changed(count))

    # ------------------------------------------------------------ queries

    def _run_Query(self, statement: ast.Query, session) -> Outcome:
        database = self._database(session) if session.current_database is not None else None
        catalog = self.catalog(database) if database is not None else _NoDatabaseCatalog()
        relation = query.evaluate_query(statement.select, catalog, self.limits.query, self.codes)
        return Outcome.success(f"{len(relation.rows)} andalana", relation)


class _NoDatabaseCatalog:
    """Lets `alaivo 1 + 1;` run with no database; any table use says why it fails."""

    database = None

    def table(self, name):
        raise TahiryError(NO_DATABASE)

    def view_query(self, name):
        raise TahiryError(NO_DATABASE)


def _insert_columns_hint(table: TableData, positions: list[int]) -> str:
    """` Ny tsanganana, araka ny filaharany : id, taranja, naoty.`: what an insert's values
    fill, in order (the end of its count error)."""
    return text("hint_insert_columns",
                columns=", ".join(table.columns[index].name for index in positions))
