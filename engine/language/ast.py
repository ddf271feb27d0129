"""The abstract syntax tree of the query language, as plain frozen dataclasses.

The parser (`engine.language.parser`) produces these; the executor
(`engine.evaluation.executor`) and the query evaluator
(`engine.evaluation.query`, `engine.evaluation.expressions`) consume them;
the balancer classifies statements with them. Nothing here does any work:
every node is a value. `walk` and `transform` at the end are the one generic
way to visit or rewrite a tree (a module that only looks for some kind of
node uses them instead of its own chain of isinstance tests).

Names keep the case the user wrote (they are file names). Keywords never
appear here: the parser turns them into node types and fields. Function
names are lower-cased by the parser (`COUNT(x)` -> `count`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, is_dataclass, replace

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


Expr = Literal | ColumnRef | Unary | Binary | IsNull | FunctionCall

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


Source = TableSource | SubquerySource


@dataclass(frozen=True)
class Join:
    """`tonona[:KIND][@] SOURCE [ka COND]`.

    kind is one of 'inner', 'left', 'right', 'full', 'natural' (engine.vocabulary).
    An inner join with no condition is a cross product.
    """

    kind: str
    source: Source
    condition: Expr | None = None


@dataclass(frozen=True)
class OrderItem:
    """One `alaharo` key: `expr [miakatra | midina]` (a whole number alone, `alaharo 2`,
    is the result's column at that place, as in SQL: engine/evaluation/query.py)."""

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
    """`left SETOP right`; op is 'union', 'except' or 'intersect' (engine.vocabulary).

    Left-associative: `a + b - c` is SetOperation('except',
    SetOperation('union', a, b), c). A parenthesised right operand may itself
    be a SetOperation.
    """

    op: str
    left: SelectExpr
    right: SelectExpr


SelectExpr = SelectCore | SetOperation

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


Atom = NumberAtom | TextAtom | DateAtom | EnumAtom | NamedAtom


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

    what: str  # the object kind: 'database', 'table', 'domain' or 'view' (engine.vocabulary)


@dataclass(frozen=True)
class Describe:
    """`asehoy ny tsanganana ao@ T` (`name` T) or `asehoy ny tsanganana` (`name` None)."""

    name: str | None = None


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

    what: str  # the object kind: 'database', 'table', 'domain' or 'view' (engine.vocabulary)
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


# --------------------------------------------------------------------------
# Accounts (docs/LANGUAGE.md 2, "Accounts and rights"). A password is never
# part of a node's repr: a tree that reaches a log line does not carry it.


@dataclass(frozen=True)
class CreateAccount:
    """`manamboara mpampiasa NAME tenimiafina "PW" [mpitantana]`."""

    name: str
    password: str = field(repr=False)
    admin: bool = False


@dataclass(frozen=True)
class DropAccount:
    """`ravao ny mpampiasa NAME`."""

    name: str


@dataclass(frozen=True)
class SetPassword:
    """`ovay ny tenimiafina NAME "PW"`."""

    name: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Grant:
    """`omeo NAME zo mamaky|manoratra ao@ DB` (give) and `esory ...` (take away, `give` False)."""

    account: str
    right: str      # 'read' or 'write' (engine.vocabulary.RIGHT_WORDS)
    database: str
    give: bool = True


@dataclass(frozen=True)
class ShowAccounts:
    """`asehoy ny mpampiasa`."""


AccountStatement = CreateAccount | DropAccount | SetPassword | Grant | ShowAccounts

Statement = (
    Use | Show | Describe | CreateDatabase | CreateTable | CreateDomain | CreateView
    | Drop | Insert | Update | Delete | Query | AccountStatement
)


# --------------------------------------------------------------------------
# Walking a tree
#
# A tree is made of the node dataclasses above, tuples (and lists, while a
# parser builds them) of nodes, and leaves (str, numbers, bool, None). Every
# node is a frozen dataclass without slots: its fields are its `__dict__`,
# in declaration order.


def _is_node(value: object) -> bool:
    return is_dataclass(value) and not isinstance(value, type)


def children(value: object) -> Iterator[object]:
    """The direct parts of a tree value: a node's field values in declaration order,
    a tuple's or list's items; nothing for a leaf."""
    if isinstance(value, (tuple, list)):
        return iter(value)
    if _is_node(value):
        return iter(value.__dict__.values())
    return iter(())


def walk(value: object) -> Iterator[object]:
    """Every node under `value` (itself first if it is one), depth first in field order.

    Tuples and lists are gone through, not yielded; leaves are not yielded.
    An explicit stack: a deeply nested tree never hits the recursion limit.
    """
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, (tuple, list)):
            pending.extend(reversed(item))
        elif _is_node(item):
            yield item
            pending.extend(reversed(item.__dict__.values()))


def transform(value: object, rewrite: Callable[[object], object | None]) -> object:
    """A copy of the tree under `value` with some nodes replaced.

    `rewrite(node)` is called on each node from the top: it returns the
    node's replacement (used as it is, not gone into) or None to keep the
    node and transform its parts. Unchanged subtrees are shared, not copied.
    """
    if isinstance(value, (tuple, list)):
        items = [transform(item, rewrite) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return tuple(items) if isinstance(value, tuple) else items
    if not _is_node(value):
        return value
    replacement = rewrite(value)
    if replacement is not None:
        return replacement
    changes = {}
    for name, part in value.__dict__.items():
        new = transform(part, rewrite)
        if new is not part:
            changes[name] = new
    return replace(value, **changes) if changes else value  # type: ignore[type-var]
