"""The abstract syntax tree of the query language, as plain frozen dataclasses.

The parser (`engine.language.parser`) produces these; the executor (`engine.evaluation.executor`)
and the evaluator (`engine.evaluator`) consume them; the balancer classifies
statements with them. Nothing here does any work: every node is a value.

Names keep the case the user wrote (they are file names). Keywords never
appear here: the parser turns them into node types and fields. Function
names are lower-cased by the parser (`COUNT(x)` -> `count`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

# --------------------------------------------------------------------------
# Expressions


@dataclass(frozen=True)
class Literal:
    """A constant: int, float, str, or None (the `null` literal)."""

    value: int | float | str | None


@dataclass(frozen=True)
class ColumnRef:
    """`name` or `qualifier.name` (qualifier is a table name or an alias)."""

    name: str
    qualifier: str | None = None


@dataclass(frozen=True)
class Unary:
    """`-x` (op '-') or `!x` (op '!')."""

    op: str
    operand: Expr


@dataclass(frozen=True)
class Binary:
    """Arithmetic `+ - * /`, comparison `= != < <= > >=`, logic `ary` / `na`.

    `op` is the symbol for arithmetic and comparisons, and the word
    'ary' or 'na' (lower case) for the logical operators.
    """

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class IsNull:
    """`x dia null` (negated False) or `x dia tsy null` (negated True)."""

    operand: Expr
    negated: bool = False


@dataclass(frozen=True)
class FunctionCall:
    """`count(x)`, `count(*)` (star True, args empty), `sum(a * b)`, ..."""

    name: str  # lower case
    args: tuple[Expr, ...] = ()
    star: bool = False


Expr = Union[Literal, ColumnRef, Unary, Binary, IsNull, FunctionCall]

# --------------------------------------------------------------------------
# Queries


@dataclass(frozen=True)
class SelectItem:
    """One item of the select list.

    `text` is the expression's source text with runs of whitespace collapsed
    to one space: it names the result column when there is no alias and the
    expression is not a plain column reference.
    """

    expr: Expr
    alias: str | None
    text: str


@dataclass(frozen=True)
class TableSource:
    """`name [antso] alias` in `ao@` or after a join keyword (table or view)."""

    name: str
    alias: str | None = None


@dataclass(frozen=True)
class SubquerySource:
    """`( SELECT_EXPR ) [antso] alias`: a derived table (alias required)."""

    query: SelectExpr
    alias: str


Source = Union[TableSource, SubquerySource]


@dataclass(frozen=True)
class Join:
    """`tonona[:KIND][@] SOURCE [ka COND]`.

    kind is one of 'inner', 'left', 'right', 'full', 'natural'.
    An inner join with no condition is a cross product.
    """

    kind: str
    source: Source
    condition: Expr | None = None


@dataclass(frozen=True)
class OrderItem:
    """One `alaharo` key: `expr [miakatra | midina]`."""

    expr: Expr
    descending: bool = False
    text: str = ""


@dataclass(frozen=True)
class Limit:
    """`fetra N` is Limit(0, N); `fetra A B` is Limit(A, B): rows A..B-1."""

    start: int
    stop: int


@dataclass(frozen=True)
class SelectCore:
    """`alaivo FIELDS [ao@ SOURCE] {JOIN} [rehefa] [vondrona] [alaharo] [fetra]`.

    items is None for `alaivo *`.
    """

    items: tuple[SelectItem, ...] | None
    source: Source | None = None
    joins: tuple[Join, ...] = ()
    where: Expr | None = None
    group_by: tuple[ColumnRef, ...] | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: Limit | None = None


@dataclass(frozen=True)
class SetOperation:
    """`left SETOP right`; op is 'union', 'except' or 'intersect'.

    Left-associative: `a + b - c` is SetOperation('except',
    SetOperation('union', a, b), c). A parenthesised right operand may itself
    be a SetOperation.
    """

    op: str
    left: SelectExpr
    right: SelectExpr


SelectExpr = Union[SelectCore, SetOperation]

# --------------------------------------------------------------------------
# Domains (column types)


@dataclass(frozen=True)
class NumberAtom:
    """`ISA(min,max)`; None is an open bound."""

    low: int | float | None
    high: int | float | None


@dataclass(frozen=True)
class TextAtom:
    """`LAHATSORATRA(min,max)`: string length bounds (code points)."""

    low: int | None
    high: int | None


@dataclass(frozen=True)
class DateAtom:
    """`DATY`: a 'YYYY-MM-DD' string that is a real calendar date."""


@dataclass(frozen=True)
class EnumAtom:
    """`TANISA(v1, v2, ...)`: exactly one of the values ('1' is not 1)."""

    values: tuple[int | float | str, ...]


@dataclass(frozen=True)
class NamedAtom:
    """A domain created with `manamboara efitra NAME (...)`."""

    name: str


Atom = Union[NumberAtom, TextAtom, DateAtom, EnumAtom, NamedAtom]


@dataclass(frozen=True)
class DomainSpec:
    """`atom : atom : ...` -- a value fits if it fits any atom."""

    atoms: tuple[Atom, ...]


@dataclass(frozen=True)
class ColumnDef:
    name: str
    domain: DomainSpec


# --------------------------------------------------------------------------
# Statements


@dataclass(frozen=True)
class Use:
    database: str


@dataclass(frozen=True)
class Show:
    """`asehoy ny tahiry | tabilao | efitra | jery`."""

    what: str  # 'tahiry', 'tabilao', 'efitra' or 'jery'


@dataclass(frozen=True)
class CreateDatabase:
    name: str


@dataclass(frozen=True)
class CreateTable:
    name: str
    columns: tuple[ColumnDef, ...]


@dataclass(frozen=True)
class CreateDomain:
    name: str
    domain: DomainSpec


@dataclass(frozen=True)
class CreateView:
    """`manamboara jery V @ SELECT_EXPR`; query_text is the SELECT_EXPR source."""

    name: str
    query: SelectExpr
    query_text: str


@dataclass(frozen=True)
class Drop:
    """`ravao ny tahiry|tabilao|efitra|jery NAME`."""

    what: str  # 'tahiry', 'tabilao', 'efitra' or 'jery'
    name: str


@dataclass(frozen=True)
class Insert:
    """`manampia ao@ T [(cols)] sanda (...), ...` or `... SELECT_EXPR`.

    columns is None when no list (or `()`) was given: all columns in order.
    Exactly one of rows and query is set.
    """

    table: str
    columns: tuple[str, ...] | None
    rows: tuple[tuple[Expr, ...], ...] | None = None
    query: SelectExpr | None = None


@dataclass(frozen=True)
class Assignment:
    column: str
    expr: Expr


@dataclass(frozen=True)
class Update:
    table: str
    assignments: tuple[Assignment, ...]
    where: Expr | None = None


@dataclass(frozen=True)
class Delete:
    table: str
    where: Expr | None = None


@dataclass(frozen=True)
class Query:
    """A SELECT_EXPR used as a statement."""

    select: SelectExpr


Statement = Union[
    Use, Show, CreateDatabase, CreateTable, CreateDomain, CreateView,
    Drop, Insert, Update, Delete, Query,
]
