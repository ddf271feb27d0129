"""Classifying a parsed statement for routing (the load balancer's view).

`classify(statement)` says whether a statement reads, writes, selects a
database or creates/drops one, which database it names (for `use` and
`database` kinds) and which objects it touches: for writes the object
written (first), then what it depends on (a view's tables, the named domains
a CREATE TABLE / CREATE DOMAIN copies); for reads the tables and views read.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.language import ast

READ, WRITE, USE, DATABASE = "read", "write", "use", "database"


@dataclass(frozen=True)
class StatementClass:
    kind: str                      # 'read', 'write', 'use' or 'database'
    database: str | None = None    # the database named by 'use'/'database' statements
    objects: tuple[str, ...] = ()  # written object first; for reads, what is read


def classify(statement: ast.Statement) -> StatementClass:
    """The routing class of `statement`."""
    if isinstance(statement, ast.Query):
        return StatementClass(READ, objects=read_objects(statement.select))
    if isinstance(statement, ast.Show):
        return StatementClass(READ)
    if isinstance(statement, ast.Describe):
        # The table's or view's own file holds its columns: a change of its
        # definition is a write of that object (cache invalidation, freshness).
        return StatementClass(READ, objects=() if statement.name is None else (statement.name,))
    if isinstance(statement, ast.Use):
        return StatementClass(USE, database=statement.database)
    if isinstance(statement, ast.CreateDatabase):
        return StatementClass(DATABASE, database=statement.name)
    if isinstance(statement, ast.Drop):
        if statement.what == "database":
            return StatementClass(DATABASE, database=statement.name)
        return StatementClass(WRITE, objects=(statement.name,))
    if isinstance(statement, ast.Insert):
        read = read_objects(statement.query) if statement.query is not None else ()
        return StatementClass(WRITE, objects=_unique((statement.table, *read)))
    if isinstance(statement, (ast.Update, ast.Delete)):
        return StatementClass(WRITE, objects=(statement.table,))
    if isinstance(statement, (ast.CreateTable, ast.CreateDomain)):
        return StatementClass(WRITE, objects=_unique((statement.name, *domains_used(statement))))
    if isinstance(statement, ast.CreateView):
        return StatementClass(WRITE, objects=_unique((statement.name, *read_objects(statement.query))))
    raise TypeError(f"not a statement: {type(statement).__name__}")


def read_objects(select: ast.SelectExpr) -> tuple[str, ...]:
    """The table and view names a query reads, in first-seen order."""
    return _unique(node.name for node in ast.walk(select) if isinstance(node, ast.TableSource))


def domains_used(statement: ast.CreateTable | ast.CreateDomain) -> list[str]:
    """The named domains a CREATE TABLE / CREATE DOMAIN refers to, in order.

    The created object copies them, so whoever runs the statement must
    already have them.
    """
    return [node.name for node in ast.walk(statement) if isinstance(node, ast.NamedAtom)]


def _unique(names) -> tuple[str, ...]:
    return tuple(dict.fromkeys(names))
