"""Point lookups: the rows of a table that can satisfy `col = literal`, from a hash index.

A query over one stored table whose condition is `col = literal`, alone or
as one conjunct of an `ary` chain, only needs the rows holding that value:
`candidate_rows` takes them from the table's equality index (a dict
value -> rows in table order, built once per version of the table or
derived from the previous version's by the rows a write changed, see
`TableData.equality_index`) instead of every row. The caller still runs the
whole compiled condition over the candidates, so the other conjuncts filter
as before; the index only skips rows that could never pass.

Why the result is exactly that of a full scan:

- the index holds every row whose value is `==` to the literal under
  Python's dict (hash + ==) rules, which are the language's `=` for stored
  values: `5 = 5.0` (equal, same hash), a number never equals a string,
  NULL is never a key (and `col = null` is not indexed at all). Booleans
  are never stored, so Python's `True == 1` cannot arise;
- rows keep the table's order (buckets are filled in order);
- errors: the condition is compiled with Python's `and`, evaluated left to
  right, stopping at the first false conjunct. A row outside the bucket is
  false at the indexed conjunct, so the scan evaluates on it only the
  conjuncts to its LEFT. The index is used only when those cannot raise
  (equality, NULL tests, logic over columns and literals), so skipping
  such rows can never hide an error the scan would have raised.
"""

from __future__ import annotations

from engine.evaluation.catalog import TableData
from engine.evaluation.expressions import Scope
from engine.language.ast import Binary, ColumnRef, Expr, IsNull, Literal, Unary

# Below this size a scan costs about what the lookup does.
MIN_INDEXED_ROWS = 32
_INDEXABLE_TYPES = (int, float, str)
_SAFE_BINARY_OPS = ("=", "!=", "ary", "na")


def candidate_rows(where: Expr, scope: Scope, table: TableData) -> list[list] | None:
    """The rows of `table` that may satisfy `where` (in table order), or None to scan them all.

    `scope` is the table's own scope (its columns at their indexes) and
    `where` must already have compiled in it.
    """
    if len(table.rows) < MIN_INDEXED_ROWS:
        return None
    for conjunct in conjuncts(where):
        lookup = _column_equals_literal(conjunct, scope)
        if lookup is not None:
            column, value = lookup
            return table.equality_index(column).get(value) or []
        if not cannot_raise(conjunct):
            return None
    return None


def conjuncts(expr: Expr) -> list[Expr]:
    """The operands of a chain of `ary`, in evaluation order (one item if none)."""
    if isinstance(expr, Binary) and expr.op == "ary":
        return conjuncts(expr.left) + conjuncts(expr.right)
    return [expr]


def _column_equals_literal(expr: Expr, scope: Scope) -> tuple[int, object] | None:
    """(column index, value) for `col = literal` / `literal = col` with a non-NULL literal."""
    if not (isinstance(expr, Binary) and expr.op == "="):
        return None
    left, right = expr.left, expr.right
    if isinstance(left, Literal) and isinstance(right, ColumnRef):
        left, right = right, left
    if not (isinstance(left, ColumnRef) and isinstance(right, Literal)):
        return None
    if type(right.value) not in _INDEXABLE_TYPES:
        return None
    return scope.resolve(left), right.value


def cannot_raise(expr: Expr) -> bool:
    """Whether evaluating `expr` on a stored row can never raise (once it compiled).

    `=` / `!=` never raise on numbers, strings and NULL; kinds were checked at
    compile time, so logic operators only see booleans and NULL. Arithmetic
    and ordering can raise (a string against a number), so they do not count.
    """
    if isinstance(expr, (Literal, ColumnRef)):
        return True
    if isinstance(expr, IsNull):
        return cannot_raise(expr.operand)
    if isinstance(expr, Unary):
        return expr.op == "!" and cannot_raise(expr.operand)
    if isinstance(expr, Binary):
        return (expr.op in _SAFE_BINARY_OPS and cannot_raise(expr.left)
                and cannot_raise(expr.right))
    return False
