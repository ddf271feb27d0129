"""`asehoy ny tsanganana [ao@ T]`: the columns of tables and views, with their domains.

One table or view (`ao@ T`): columns `tsanganana` (the column's name) and
`efitra` (its domain as written in docs/LANGUAGE.md 3, e.g.
`ISA(0,20):TANISA("ABS")`), one row per column in declaration order.
Every table and view of the current database (no `ao@`): columns
`anarana` (the table or view), `karazana` (`tabilao` or `jery`),
`tsanganana`, `efitra`, the objects sorted by name, each one's columns in
order.

A view's columns are those of its query's result. Its query is run over
empty tables (the names resolve as they would, no row is read), so
describing a view costs the same whatever its tables hold. A view column
that is a plain column of a table or view has that column's domain; a
computed one (an expression, an aggregate, a derived table's column) has
NULL. In the list of everything, a view whose query cannot run (a table
it reads was dropped) has one row with NULL column and domain.
"""

from __future__ import annotations

from engine.errors import TahiryError
from engine.evaluation import query
from engine.evaluation.catalog import DatabaseCatalog, TableData
from engine.evaluation.domains import format_domain
from engine.evaluation.outcome import Column, Relation
from engine.evaluation.relational import QueryLimits
from engine.language import ast
from engine.vocabulary import OBJECT_KIND_WORDS

ONE_COLUMNS = ("tsanganana", "efitra")
ALL_COLUMNS = ("anarana", "karazana", "tsanganana", "efitra")
ALL_NAME = "tsanganana"


class _EmptyTables:
    """A catalog whose tables have their columns and no rows (a view's shape, for free)."""

    def __init__(self, catalog: DatabaseCatalog):
        self._catalog = catalog
        self.database = catalog.database

    def table(self, name: str) -> TableData | None:
        table = self._catalog.table(name)
        return None if table is None else TableData(table.name, table.columns, [])

    def view_query(self, name: str) -> ast.SelectExpr | None:
        return self._catalog.view_query(name)


def columns_of(catalog: DatabaseCatalog, name: str,
               limits: QueryLimits) -> list[tuple[str | None, str | None]] | None:
    """[(column, domain text or None)] of table or view `name`; None if there is neither."""
    table = catalog.table(name)
    if table is not None:
        return [(column.name, format_domain(column.domain)) for column in table.columns]
    select = catalog.view_query(name)
    if select is None:
        return None
    return _view_columns(catalog, select, limits, (name,))


def _view_columns(catalog: DatabaseCatalog, select: ast.SelectExpr, limits: QueryLimits,
                  seen: tuple[str, ...]) -> list[tuple[str | None, str | None]]:
    relation = query.evaluate_query(select, _EmptyTables(catalog), limits)
    core = select
    while isinstance(core, ast.SetOperation):  # the result takes the left side's columns
        core = core.left
    assert isinstance(core, ast.SelectCore)
    sources = {}
    for node in ast.walk(core):
        if isinstance(node, ast.TableSource):
            sources[node.alias or node.name] = node.name
    out: list[tuple[str | None, str | None]] = []
    for position, column in enumerate(relation.columns):
        source_name: str | None = column.name
        if core.items is not None:
            expr = core.items[position].expr
            source_name = expr.name if isinstance(expr, ast.ColumnRef) else None
        out.append((column.name, _source_domain(catalog, sources.get(column.origin or ""),
                                                source_name, limits, seen)))
    return out


def _source_domain(catalog: DatabaseCatalog, source: str | None, column: str | None,
                   limits: QueryLimits, seen: tuple[str, ...]) -> str | None:
    """The domain of `column` of table or view `source` (None: computed, or not found)."""
    if source is None or column is None or source in seen or len(seen) > limits.max_nesting:
        return None
    table = catalog.table(source)
    if table is not None:
        return next((format_domain(c.domain) for c in table.columns if c.name == column), None)
    select = catalog.view_query(source)
    if select is None:
        return None
    found = dict(_view_columns(catalog, select, limits, seen + (source,)))
    return found.get(column)


def describe_one(catalog: DatabaseCatalog, name: str, limits: QueryLimits) -> Relation | None:
    """The relation of `asehoy ny tsanganana ao@ name`; None if there is no such object."""
    columns = columns_of(catalog, name, limits)
    if columns is None:
        return None
    return Relation(name, [Column(c) for c in ONE_COLUMNS], [list(row) for row in columns])


def describe_all(catalog: DatabaseCatalog, tables: list[str], views: list[str],
                 limits: QueryLimits) -> Relation:
    """The relation of `asehoy ny tsanganana`: every table and view, by name."""
    kinds = {name: "table" for name in tables}
    kinds.update({name: "view" for name in views})
    rows = []
    for name in sorted(kinds):
        word = OBJECT_KIND_WORDS[kinds[name]]
        try:
            columns = columns_of(catalog, name, limits) or []
        except TahiryError:
            # A view that cannot run (a table it reads was dropped) is listed
            # all the same, without columns; `alaivo * ao@ V` says why.
            columns = [(None, None)]
        for column, domain in columns:
            rows.append([name, word, column, domain])
    return Relation(ALL_NAME, [Column(c) for c in ALL_COLUMNS], rows)
