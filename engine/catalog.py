"""One database's tables, views and domains, as the query evaluator sees them.

The evaluator reads through the `Catalog` protocol only; `DatabaseCatalog`
implements it over a `Store` (engine/storage.py). Rows handed out here are
shared with the store's cache: readers must never mutate them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.ast import Query, SelectExpr
from engine.errors import TahiryError


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

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


class Catalog(Protocol):
    """What the evaluator needs from a database."""

    database: str

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
        document = self.store.read(self.database, "table", name)
        if document is None:
            return None
        return table_from_document(document)

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
