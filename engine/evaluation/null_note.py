"""The note a success message ends with when its statement compares with `null` (LANGUAGE.md 5b).

`rehefa n = null` is never true, not even on the rows where `n` is NULL
(SQL's rule, kept: docs/LANGUAGE.md 4): such a query is silently empty
and a student cannot tell why. Its answer stays exactly what it was (the
relation, the row count, the message the clients read) and ends with one
more sentence naming the comparison and the test that finds NULLs
(`n dia null`), the way an error ends with its hint.

Decided on the syntax tree, never on the text: only a comparison
(`= != < <= > >=`) one of whose sides is the `null` literal counts. A
column that holds NULL is data, and `'null'` is a text. The walk goes
through the statement's expressions only (never an insert's rows, which may
be many and compare nothing), without a generator: every statement of the
general path goes through it, so it costs about a microsecond on the
usual query. A planned query asks its shape once (engine/session.py).
"""

from __future__ import annotations

from engine.evaluation.expressions import expression_text
from engine.language import ast
from engine.language.messages import text

_COMPARISONS = frozenset(("=", "!=", "<", "<=", ">", ">="))


def null_note(statement: ast.Statement) -> str:
    """The note for `statement`'s success message ("" when it compares nothing with `null`)."""
    comparison = null_comparison(statement)
    if comparison is None:
        return ""
    operand = comparison.right if _is_null(comparison.left) else comparison.left
    # (Written as a tree: `expression_text` puts `(a = 1) dia null` in parentheses.)
    is_null = f"'{expression_text(ast.IsNull(operand))}'"
    is_not_null = f"'{expression_text(ast.IsNull(operand, True))}'"
    written = expression_text(comparison)
    if comparison.op in ("=", "!="):
        return text("hint_null_comparison", comparison=written,
                    test=is_null if comparison.op == "=" else is_not_null)
    # `n > null`: what was meant is not known, both tests are shown.
    return text("hint_null_ordering", comparison=written, is_null=is_null,
                is_not_null=is_not_null)


def null_comparison(statement: ast.Statement) -> ast.Binary | None:
    """The first comparison of `statement` with the `null` literal, or None."""
    if isinstance(statement, ast.Query):
        return _in_select(statement.select)
    if isinstance(statement, ast.Delete):
        return _in_expr(statement.where)
    if isinstance(statement, ast.Update):
        found = _in_expr(statement.where)
        for assignment in statement.assignments:   # `ova a = (b = null)`: NULL stored
            if found is not None:
                break
            found = _in_expr(assignment.expr)
        return found
    if isinstance(statement, (ast.Insert, ast.CreateView)) and statement.query is not None:
        return _in_select(statement.query)
    return None


def _is_null(expr: ast.Expr) -> bool:
    return type(expr) is ast.Literal and expr.value is None


def _in_select(select: ast.SelectExpr) -> ast.Binary | None:
    if type(select) is ast.SetOperation:
        return _in_select(select.left) or _in_select(select.right)
    assert type(select) is ast.SelectCore
    for item in select.items or ():
        found = _in_expr(item.expr)
        if found is not None:
            return found
    if type(select.source) is ast.SubquerySource:
        found = _in_select(select.source.query)
        if found is not None:
            return found
    for join in select.joins:
        if type(join.source) is ast.SubquerySource:
            found = _in_select(join.source.query)
            if found is not None:
                return found
        found = _in_expr(join.condition)
        if found is not None:
            return found
    found = _in_expr(select.where)
    for key in select.order_by:
        if found is not None:
            break
        found = _in_expr(key.expr)
    return found


def _in_expr(expr: ast.Expr | None) -> ast.Binary | None:
    """Its first comparison with `null`, left to right.

    `type(...) is` tests and a stack, not `ast.walk`: a quarter of its cost
    (this runs for every statement), and no recursion limit.
    """
    pending = [expr]
    while pending:
        node = pending.pop()
        kind = type(node)
        if kind is ast.Binary:
            assert isinstance(node, ast.Binary)
            if node.op in _COMPARISONS and (_is_null(node.left) or _is_null(node.right)):
                return node
            pending.append(node.right)
            pending.append(node.left)
        elif kind is ast.Unary or kind is ast.IsNull:
            assert isinstance(node, (ast.Unary, ast.IsNull))
            pending.append(node.operand)
        elif kind is ast.FunctionCall:
            assert isinstance(node, ast.FunctionCall)
            pending.extend(reversed(node.args))
    return None
