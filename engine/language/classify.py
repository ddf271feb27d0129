"""Classifying a parsed statement for routing (the load balancer's view).

`classify(statement)` says whether a statement reads, writes, selects a
database or creates/drops one, which database it names (for `use` and
`database` kinds) and which objects it touches: for writes the object
written (first), then what it depends on (a view's tables, the named domains
a CREATE TABLE / CREATE DOMAIN copies); for reads the tables and views read.

The account statements (docs/LANGUAGE.md 2, "Accounts and rights") that
write are of kind 'account': they belong to no database (a grant names
its database in `database`); any one server runs them, certified against
its peers, and replication carries them. `asehoy ny mpampiasa` is a read.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.language import ast

READ, WRITE, USE, DATABASE, ACCOUNT = "read", "write", "use", "database", "account"


@dataclass(frozen=True)
class StatementClass:
    kind: str                      # 'read', 'write', 'use', 'database' or 'account'
    database: str | None = None    # the database named by 'use'/'database' statements
    objects: tuple[str, ...] = ()  # written object first; for reads, what is read


def classify(statement: ast.Statement) -> StatementClass:
    """The routing class of `statement`."""
    if isinstance(statement, ast.Query):
        return StatementClass(READ, objects=read_objects(statement.select))
    if isinstance(statement, (ast.Show, ast.ShowAccounts)):
        return StatementClass(READ)
    if isinstance(statement, ast.Grant):
        return StatementClass(ACCOUNT, database=statement.database)
    if isinstance(statement, (ast.CreateAccount, ast.DropAccount, ast.SetPassword)):
        return StatementClass(ACCOUNT)
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
