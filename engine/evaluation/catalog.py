"""One database's tables, views and domains, as the query evaluator sees them.

The evaluator reads through the `Catalog` protocol only; `DatabaseCatalog`
implements it over a `Store` (engine/storage/store.py). Rows handed out here are
shared with the store's cache: readers must never mutate them.

A `TableData` read through `DatabaseCatalog` lives as long as the version
of the file it was decoded from stays in the store's cache (it is kept in
that cache entry's memo), so what it derives lazily -- the equality indexes
of engine/evaluation/equality_lookup.py -- is built once per version of the table and
dropped with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from engine.errors import TahiryError
from engine.language.ast import Query, SelectExpr


@dataclass(frozen=True)
class ColumnInfo:
    """A table column: its name and its domain as JSON atoms (see domains.py)."""

    name: str
    domain: list[dict]


@dataclass
class TableData:
    """A table as read from disk. `rows` must not be mutated by readers."""

    name: str
    columns: list[ColumnInfo]
    rows: list[list]
    _indexes: dict[int, dict] = field(default_factory=dict, repr=False, compare=False)

    def equality_index(self, column: int) -> dict[object, list[list]]:
        """{value: the rows holding it in that column, in table order}; NULLs left out.

        Built on first use and kept with this object. Two threads may build
        it at the same time; either result is the same.
        """
        index = self._indexes.get(column)
        if index is None:
            index = {}
            for row in self.rows:
                value = row[column]
                if value is not None:
                    bucket = index.get(value)
                    if bucket is None:
                        index[value] = [row]
                    else:
                        bucket.append(row)
            self._indexes[column] = index
        return index


class Catalog(Protocol):
    """What the evaluator needs from a database."""

    @property
    def database(self) -> str | None:
        """The database's name (None: no database chosen, a query of constants)."""

    def table(self, name: str) -> TableData | None:
        """The table called `name`, or None if there is none."""

    def view_query(self, name: str) -> SelectExpr | None:
        """The parsed query of the view called `name`, or None."""


class DatabaseCatalog:
    """The `Catalog` of one database, read through a `Store`.

    Every lookup goes to the store, whose cache re-validates files with
    `os.stat`, so a table replaced on disk is seen by the next statement.
    View queries are parsed with the session's parser (LRU-cached by text).
    """

    def __init__(self, store, database: str, parser):
        self.store = store
        self.database = database
        self._parser = parser

    def table(self, name: str) -> TableData | None:
        entry = self.store.read_with_memo(self.database, "table", name)
        if entry is None:
            return None
        document, memo = entry
        table = memo.get("table")
        if table is None:
            table = memo["table"] = table_from_document(document)
        return table

    def view_query(self, name: str) -> SelectExpr | None:
        document = self.store.read(self.database, "view", name)
        if document is None:
            return None
        return parse_view_text(self._parser, document["query"])


def table_from_document(document: dict) -> TableData:
    """A TableData sharing the document's rows (no copy)."""
    columns = [ColumnInfo(column["name"], column["domain"]) for column in document["columns"]]
    return TableData(document["name"], columns, document["rows"])


def parse_view_text(parser, text: str) -> SelectExpr:
    """Parse a stored view query (SELECT_EXPR source text) into its AST."""
    statement = parser.parse(text)
    if not isinstance(statement, Query):
        raise TahiryError("Ny fangatahana voatahiry ao amin'ny jery dia tsy alaivo")
    return statement.select
