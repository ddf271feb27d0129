"""Test helpers for the query evaluator: an in-memory Catalog and shortcuts.

`make_catalog` builds a Catalog over plain lists; `run(catalog, text)` parses
a SELECT_EXPR with the real parser and evaluates it; `error_of` returns the
TahiryError sentence a query fails with.
"""

from __future__ import annotations

import pytest

from engine.errors import TahiryError
from engine.evaluation.catalog import ColumnInfo, TableData
from engine.evaluation.query import QueryLimits, evaluate_query
from engine.language.parser import StatementParser

PARSER = StatementParser()


class MemoryCatalog:
    """Tables and views held in dicts; views are stored as query text."""

    def __init__(self, database: str = "db"):
        self.database = database
        self.tables: dict[str, TableData] = {}
        self.views: dict[str, str] = {}

    def add_table(self, name: str, columns: list[str], rows: list[list]) -> MemoryCatalog:
        self.tables[name] = TableData(name, [ColumnInfo(c, []) for c in columns], rows)
        return self

    def add_view(self, name: str, query: str) -> MemoryCatalog:
        self.views[name] = query
        return self

    def table(self, name: str) -> TableData | None:
        return self.tables.get(name)

    def view_query(self, name: str):
        text = self.views.get(name)
        return None if text is None else PARSER.parse_select(text)


def parse(text: str):
    return PARSER.parse_select(text)


def run(catalog, text: str, limits: QueryLimits | None = None):
    if limits is None:
        return evaluate_query(parse(text), catalog)
    return evaluate_query(parse(text), catalog, limits)


def rows(catalog, text: str) -> list[list]:
    return run(catalog, text).rows


def names(catalog, text: str) -> list[str]:
    return [column.name for column in run(catalog, text).columns]


def error_of(catalog, text: str, limits: QueryLimits | None = None) -> str:
    with pytest.raises(TahiryError) as caught:
        run(catalog, text, limits)
    return caught.value.sentence


def school() -> MemoryCatalog:
    """The example database of LANGUAGE.md section 6, plus a few rows."""
    catalog = MemoryCatalog("sekoly")
    catalog.add_table("mpianatra", ["id", "anarana", "kilasy"], [
        ["E1", "Alice", "L3"], ["E2", "Bob", "M1"], ["E3", "Carl", None]])
    catalog.add_table("naoty", ["id", "taranja", "naoty"], [
        ["E1", "Algo", 14], ["E1", "BD", 9], ["E2", "Algo", 16], ["E9", "X", 3]])
    return catalog
