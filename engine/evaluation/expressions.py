"""Name resolution and compilation of expressions into Python functions over rows.

A row is a list; a `Scope` says which column sits at which index and under
which qualifiers (table name or alias) it can be named. Compiling an `Expr`
resolves every name first (so an unknown column fails even on an empty
table), checks the static kinds (a condition must be boolean, arithmetic
never takes a boolean) and then generates the source of ONE Python lambda
for the whole expression, with column indexes and constants baked in, so
that evaluating a row costs no AST walk and few function calls.

Constants are never pasted into the generated source: each lives in the
lambda's namespace under a generated name (`c0`, `c1`, ...). Only indexes,
generated names and operators are written as text.

Kinds: VALUE (number or string, never boolean), BOOL (a condition), ANY
(NULL literal, or a column that may hold anything, e.g. from a set
operation mixing booleans and numbers). Runtime checks in engine/evaluation/values.py
cover what the static kinds cannot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import FunctionType
from typing import Protocol

from engine.errors import TahiryError
from engine.evaluation import values
from engine.evaluation.code_cache import CodeCache
from engine.evaluation.domains import is_date
from engine.language.ast import (
    Binary,
    ColumnRef,
    Expr,
    FunctionCall,
    IsNull,
    Literal,
    Unary,
    walk,
)
from engine.language.english import WRITTEN_OTHERWISE
from engine.language.hints import keyword_hint, name_hint
from engine.language.messages import text

VALUE = "value"
BOOL = "bool"
ANY = "any"

AGGREGATE_FUNCTIONS = ("count", "sum", "avg", "min", "max")
_COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=")
_ARITHMETIC_OPS = ("+", "-", "*", "/")
_ORDERING_OPS = ("<", "<=", ">", ">=")
_PY_COMPARISON = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_HELPER_NAMES = {"=": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge",
                 "+": "add", "-": "sub", "*": "mul", "/": "div"}
# Generated code nested deeper than this is split into separate lambdas:
# CPython's parser rejects sources with ~200 nested parentheses.
_MAX_CODE_DEPTH = 40


# --------------------------------------------------------------------------
# Scope


@dataclass(frozen=True)
class ScopeColumn:
    """A column as expressions see it: name, the qualifiers naming it, kind."""

    name: str
    qualifiers: tuple[str, ...] = ()
    kind: str = VALUE
    dates: bool = False   # a stored column whose domain is DATY only

    @property
    def origin(self) -> str | None:
        return self.qualifiers[0] if self.qualifiers else None


# The database's tables a query does not read, and their columns (called on an error only).
OtherTables = Callable[[], Mapping[str, Sequence[str]]]


@dataclass(frozen=True)
class SelectAlias:
    """A name the select list gives (`alaivo naoty + 1 antso n`): the expression's text, and
    whether it holds an aggregate (then only a derived table can filter on it)."""

    text: str
    aggregate: bool


class UnknownColumn(TahiryError):
    """`Le champ 'c' n'existe pas dans la relation.`, with its hint."""

    def __init__(self, ref: ColumnRef, columns: list[ScopeColumn], no_source: bool,
                 renamed: dict[str, str] | None = None, elsewhere: OtherTables | None = None,
                 aliases: Callable[[], Mapping[str, SelectAlias]] | None = None):
        """`renamed`: table or view name -> the alias it was given (`ao@ naoty n`);
        `elsewhere`: the tables of the database the query does not read; `aliases()`: the
        select list's (`alaivo naoty antso n`), which only `alaharo` knows."""
        tables = {} if no_source or elsewhere is None else elsewhere()
        other = _other_table(ref, tables)
        if ref.qualifier is None:
            names = [column.name for column in columns]
        else:  # `m.anaran` -> `m.anarana`; `mm.anarana` -> `m.anarana`
            names = [f"{qualifier}.{column.name}" for column in columns
                     for qualifier in column.qualifiers]
        alias = (renamed or {}).get(ref.qualifier or "")
        given = aliases().get(ref.name) if aliases is not None and ref.qualifier is None \
            else None
        if given is not None:
            # `alaivo naoty antso n ... rehefa n > 10` (SQL refuses it too): the expression.
            hint = text("hint_select_alias_aggregate", alias=ref.name,
                        example=WRITTEN_OTHERWISE["having"]) if given.aggregate \
                else text("hint_select_alias", alias=ref.name, expression=given.text)
        elif alias is not None and f"{alias}.{ref.name}" in names:
            # `naoty.id` after `ao@ naoty n`: the alias qualifies it (LANGUAGE.md 4b).
            hint = text("hint_did_you_mean", suggestion=f"{alias}.{ref.name}",
                        word=column_text(ref))
        elif no_source:
            # A query without a source (`alaivo anarana mpianatra;`): `ao@` forgotten.
            hint = text("hint_no_source")
        elif other is not None:
            # `ao@ mpianatra rehefa naoty > 10`: a column of a table the query does not join.
            hint = text("hint_other_table", column=ref.name, table=other,
                        example=_join_example(other, columns, tables))
        else:
            hint = name_hint(column_text(ref), names)
        super().__init__(f"Le champ '{column_text(ref)}' n'existe pas dans la relation." + hint)
        self.hinted = bool(hint)
        self.ref = ref
        self.columns = columns
        self.renamed = renamed
        self.elsewhere = elsewhere

    def as_unquoted_text(self) -> TahiryError:
        """This error where the unknown name was compared with something (`rehefa anarana =
        Rakoto`): most likely a text written without its quotes, and said so, unless a
        hint already names a column (`anaran`) or the name is qualified (`x.Rakoto`)."""
        if self.hinted or self.ref.qualifier is not None:
            return self
        return TahiryError(f"Le champ '{self.ref.name}' n'existe pas dans la relation."
                           + text("hint_quoted_text", word=self.ref.name))

    def among_outputs(self, outputs: list[ScopeColumn]) -> UnknownColumn:
        """The error for an `alaharo` key: the output columns (aliases) are candidates
        too, and the select list resolved, so a missing `ao@` is not the cause."""
        return UnknownColumn(self.ref, list(outputs) + list(self.columns), no_source=False,
                             renamed=self.renamed, elsewhere=self.elsewhere)


def _other_table(ref: ColumnRef, tables: Mapping[str, Sequence[str]]) -> str | None:
    """The table, not in the query, that `ref` names a column of (`naoty` or `naoty.naoty`
    for the table naoty), or None."""
    if ref.qualifier is not None:
        return ref.qualifier if ref.name in tables.get(ref.qualifier, ()) else None
    return next((table for table in sorted(tables) if ref.name in tables[table]), None)


def _join_example(table: str, columns: list[ScopeColumn],
                  tables: Mapping[str, Sequence[str]]) -> str:
    """`tonona naoty ka m.id = naoty.id`: the join of `table` on a column name it shares
    with the query's first source (`ka ...` when it shares none)."""
    source = columns[0].origin if columns else None
    theirs = tables.get(table, ())
    shared = next((column.name for column in columns
                   if column.origin == source and column.name in theirs), None)
    if source is None or shared is None:
        return f"tonona {table} ka ..."
    return f"tonona {table} ka {source}.{shared} = {table}.{shared}"


def _ambiguous_column(ref: ColumnRef, count: int,
                      candidates: Sequence[ScopeColumn] = ()) -> TahiryError:
    """`ka id = id` over two tables with an `id`: the error ends with the names that say
    which (`mpianatra.id`, `naoty.id`), when each comes from another source."""
    origins = [column.origin for column in candidates]
    hint = ""
    if ref.qualifier is None and None not in origins and len(set(origins)) == len(origins):
        hint = text("hint_qualify", names=", ".join(f"{origin}.{ref.name}"
                                                      for origin in origins))
    return TahiryError(
        f"Le champ '{column_text(ref)}' est ambigu. Il apparaît {count} fois dans la relation."
        + hint)


class Scope:
    """The columns of a row, indexed by name and by (qualifier, name)."""

    def __init__(self, columns: list[ScopeColumn], no_source: bool = False,
                 renamed: dict[str, str] | None = None, elsewhere: OtherTables | None = None):
        """`no_source`: the row of a query without `ao@` (its errors say so).
        `renamed`: table or view name -> its alias in the query (for the hint of an
        unknown `naoty.id` after `ao@ naoty n`); `elsewhere`: the database's tables the
        query does not read (for the hint of a column of one of them)."""
        self.columns = list(columns)
        self.no_source = no_source
        self.renamed = renamed
        self.elsewhere = elsewhere
        # The select list's aliases, set by the query for its `rehefa` and `vondrona` (their
        # errors' hint only: they do not resolve there), made only when such an error is.
        self.aliases: Callable[[], Mapping[str, SelectAlias]] | None = None
        self._by_name: dict[str, list[int]] = {}
        self._by_qualified: dict[tuple[str, str], list[int]] = {}
        for index, column in enumerate(self.columns):
            self._by_name.setdefault(column.name, []).append(index)
            for qualifier in column.qualifiers:
                self._by_qualified.setdefault((qualifier, column.name), []).append(index)

    @property
    def width(self) -> int:
        return len(self.columns)

    def concat(self, other: Scope) -> Scope:
        return Scope(self.columns + other.columns, renamed=self.renamed or other.renamed,
                     elsewhere=self.elsewhere or other.elsewhere)

    def resolve(self, ref: ColumnRef) -> int:
        """The one index `ref` names; errors if none or several match."""
        if ref.qualifier is None:
            found = self._by_name.get(ref.name)
        else:
            found = self._by_qualified.get((ref.qualifier, ref.name))
        if not found:
            raise UnknownColumn(ref, self.columns, self.no_source, self.renamed, self.elsewhere,
                                self.aliases)
        if len(found) > 1:
            raise _ambiguous_column(ref, len(found), [self.columns[i] for i in found])
        return found[0]


class ColumnResolver(Protocol):
    """What names resolve in: a `Scope`, or one side of a join seen through the
    combined scope (engine.evaluation.query's `_SideScope`)."""

    columns: list[ScopeColumn]

    def resolve(self, ref: ColumnRef) -> int: ...


# --------------------------------------------------------------------------
# Expression text (for error messages and column names)

_PRECEDENCE = {"na": 1, "ary": 2, "=": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
               "+": 6, "-": 6, "*": 7, "/": 7}


def column_text(ref: ColumnRef) -> str:
    return ref.name if ref.qualifier is None else f"{ref.qualifier}.{ref.name}"


def _precedence(expr: Expr) -> int:
    if isinstance(expr, Binary):
        return _PRECEDENCE.get(expr.op, 9)
    if isinstance(expr, Unary):
        return 3 if expr.op == "!" else 8
    if isinstance(expr, IsNull):
        return 5
    return 10


def expression_text(expr: Expr) -> str:
    """The expression written back as query text (whitespace normalised)."""
    if isinstance(expr, Literal):
        return values.describe_value(expr.value)
    if isinstance(expr, ColumnRef):
        return column_text(expr)
    if isinstance(expr, FunctionCall):
        inside = "*" if expr.star else ", ".join(expression_text(a) for a in expr.args)
        return f"{expr.name}({inside})"
    own = _precedence(expr)

    def part(child: Expr, strict: bool = False) -> str:
        text = expression_text(child)
        child_level = _precedence(child)
        if child_level < own or (strict and child_level == own):
            return f"({text})"
        return text

    if isinstance(expr, Unary):
        return f"{expr.op}{part(expr.operand, strict=True)}"
    if isinstance(expr, IsNull):
        return f"{part(expr.operand, strict=True)} dia {'tsy ' if expr.negated else ''}null"
    # comparisons do not chain: `(a = b) < c` keeps its parentheses on the left too
    left_strict = expr.op in _COMPARISON_OPS
    return f"{part(expr.left, strict=left_strict)} {expr.op} {part(expr.right, strict=True)}"


def contains_aggregate(expr: Expr | None) -> bool:
    """Whether any aggregate function call occurs in `expr`."""
    return any(isinstance(node, FunctionCall) and node.name in AGGREGATE_FUNCTIONS
               for node in walk(expr))


def column_refs(expr: Expr) -> list[ColumnRef]:
    """Every column reference in `expr`, outside aggregate arguments too."""
    return [node for node in walk(expr) if isinstance(node, ColumnRef)]


def check_function(call: FunctionCall) -> None:
    """Reject unknown functions and wrong argument shapes."""
    if call.name not in AGGREGATE_FUNCTIONS:
        hint = keyword_hint(call.name) if call.name.lower() == "not" \
            else name_hint(call.name, AGGREGATE_FUNCTIONS)
        # (`upper`, `length`: none close; which ones there are.)
        raise TahiryError(f"Tsy fantatra ny fonction '{call.name}'."
                          + (hint or text("hint_functions", names=", ".join(AGGREGATE_FUNCTIONS))))
    if call.star:
        if call.name != "count":
            raise TahiryError(f"Ny {call.name}(*) dia tsy azo atao : count(*) ihany.")
        return
    if len(call.args) != 1:
        raise TahiryError(
            f"Ny fonction {call.name} dia mila argument iray, fa {len(call.args)} no nomena.")


# --------------------------------------------------------------------------
# Contexts: how a name or an aggregate becomes an index in the row


class ExpressionContext(Protocol):
    """How a compiled expression's names and aggregates become row indexes, with their kinds."""

    def column(self, ref: ColumnRef) -> tuple[int, str]: ...

    def aggregate(self, call: FunctionCall) -> tuple[int, str]: ...


class RowContext:
    """Names resolve in one scope; aggregates are not allowed (clause named)."""

    def __init__(self, scope: ColumnResolver, clause: str):
        self.scope = scope
        self.clause = clause

    def column(self, ref: ColumnRef) -> tuple[int, str]:
        index = self.scope.resolve(ref)
        return index, self.scope.columns[index].kind

    def aggregate(self, call: FunctionCall) -> tuple[int, str]:
        check_function(call)
        # SQL's WHERE holding an aggregate, HAVING meant: how groups are filtered.
        hint = text("hint_aggregate_filter", example=WRITTEN_OTHERWISE["having"]) \
            if self.clause == "rehefa" else ""
        raise TahiryError(
            f"Tsy azo ampiasaina ao amin'ny '{self.clause}' ny fonction d'agrégation "
            f"{expression_text(call)}." + hint)


# --------------------------------------------------------------------------
# Compilation


@dataclass
class Compiled:
    """A compiled expression: call `function(row)`; `constant` when foldable."""

    function: Callable[[list], object]
    kind: str
    constant: bool = False
    value: object = None


@dataclass
class _Code:
    text: str
    kind: str
    depth: int
    constant: bool = False
    value: object = None


@dataclass
class _Generator:
    context: ExpressionContext
    codes: CodeCache | None = None
    namespace: dict = field(default_factory=dict)
    counter: int = 0
    # A literal's value decided more than its type (a date checked): no template.
    value_checked: bool = False

    def __post_init__(self):
        self.namespace.update(
            eq=values.eq, ne=values.ne, lt=values.lt, le=values.le, gt=values.gt,
            ge=values.ge, add=values.add, sub=values.sub, mul=values.mul, div=values.div,
            neg=values.neg, and3=values.and3, or3=values.or3, not3=values.not3,
            chk=values.check_boolean, _num=values.NUMBER_TYPES)

    def name(self, prefix: str, value: object) -> str:
        self.counter += 1
        name = f"{prefix}{self.counter}"
        self.namespace[name] = value
        return name

    def temp(self) -> str:
        self.counter += 1
        return f"_v{self.counter}"

    def constant(self, value: object, kind: str | None = None) -> _Code:
        """A constant; `kind` is the folded expression's (a NULL keeps it:
        `null = 1` is still a condition, `null + 1` still a number)."""
        if value is None:
            return _Code("None", kind or ANY, 1, True, None)
        if kind is None:
            kind = BOOL if type(value) is bool else VALUE
        return _Code(self.name("c", value), kind, 1, True, value)

    def lambda_of(self, code: _Code) -> Callable[[list], object]:
        source = f"lambda r: {code.text}"
        if self.codes is not None:
            return self.codes.function(source, self.namespace)
        return eval(source, self.namespace)  # noqa: S307 - generated

    def fold(self, code: _Code) -> _Code:
        """Evaluate a constant subexpression now; keep deep code shallow."""
        if code.constant:
            return self.constant(self.lambda_of(code)([]), code.kind)
        if code.depth > _MAX_CODE_DEPTH:
            function = self.name("f", self.lambda_of(code))
            return _Code(f"{function}(r)", code.kind, 1)
        return code

    # -- nodes

    def emit(self, expr: Expr) -> _Code:
        if isinstance(expr, Literal):
            return self.constant(expr.value)
        if isinstance(expr, ColumnRef):
            index, kind = self.context.column(expr)
            return _Code(f"r[{index}]", kind, 1)
        if isinstance(expr, FunctionCall):
            index, kind = self.context.aggregate(expr)
            return _Code(f"r[{index}]", kind, 1)
        if isinstance(expr, IsNull):
            operand = self.emit(expr.operand)
            test = "is not None" if expr.negated else "is None"
            return self.fold(_Code(f"({operand.text} {test})", BOOL, operand.depth + 1,
                                   operand.constant))
        if isinstance(expr, Unary):
            return self.emit_unary(expr)
        if isinstance(expr, Binary):
            if expr.op in ("ary", "na"):
                return self.emit_logic(expr)
            if expr.op in _COMPARISON_OPS:
                return self.emit_comparison(expr)
            if expr.op in _ARITHMETIC_OPS:
                return self.emit_arithmetic(expr)
        raise TahiryError(f"Tsy fantatra ny fomba fanoratra '{expression_text(expr)}'.")

    def emit_unary(self, expr: Unary) -> _Code:
        operand = self.emit(expr.operand)
        if expr.op == "-":
            if operand.kind == BOOL:
                raise _boolean_arithmetic("-", expr.operand)
            # a number or NULL whatever the operand (neg refuses the rest)
            code = _Code(f"neg({operand.text})", VALUE, operand.depth + 1, operand.constant)
        else:
            if operand.kind == VALUE:
                raise _not_boolean("!", expr.operand)
            code = _Code(f"not3({operand.text})", BOOL, operand.depth + 1, operand.constant)
        return self.fold(code)

    def emit_logic(self, expr: Binary) -> _Code:
        left, right = self.emit(expr.left), self.emit(expr.right)
        for side, code in ((expr.left, left), (expr.right, right)):
            if code.kind == VALUE:
                raise _not_boolean(expr.op, side)
        helper = "and3" if expr.op == "ary" else "or3"
        return self.fold(_Code(f"{helper}({left.text}, {right.text})", BOOL,
                               max(left.depth, right.depth) + 1,
                               left.constant and right.constant))

    def emit_comparison(self, expr: Binary) -> _Code:
        try:
            left, right = self.emit(expr.left), self.emit(expr.right)
        except UnknownColumn as unknown:
            if unknown.ref in (expr.left, expr.right):
                raise unknown.as_unquoted_text() from None
            raise
        op = expr.op
        self.check_date_literal(expr.left, right, expr.right)
        self.check_date_literal(expr.right, left, expr.left)
        if {left.kind, right.kind} == {BOOL, VALUE}:
            raise TahiryError(
                f"Tsy azo ampitahaina amin'ny '{op}' ny {expression_text(expr.left)} sy "
                f"{expression_text(expr.right)} : booléen sy tsy booléen.")
        if op in _ORDERING_OPS and BOOL in (left.kind, right.kind):
            raise TahiryError(
                f"Tsy azo alahatra amin'ny '{op}' ny booléen ({expression_text(expr)}).")
        depth = max(left.depth, right.depth) + 1
        constant = left.constant and right.constant
        fast = self.inline_comparison(op, left, right)
        text = fast or f"{_HELPER_NAMES[op]}({left.text}, {right.text})"
        return self.fold(_Code(text, BOOL, depth + 1, constant))

    def check_date_literal(self, side: Expr, other: _Code, other_expr: Expr) -> None:
        """A DATY column compared with a text that is no date (`'2024-1-1'`), or with a
        number (`2024-01-01`, its quotes forgotten, is 2022): an error.

        Dates are compared as their `YYYY-MM-DD` text; any other spelling would be
        compared as text, silently wrong ('2024-05-01' < '2024-1-1'), and a number
        compares with no text (unknown): every row silently left out.
        """
        number = type(other.value) in (int, float)
        if not (isinstance(side, ColumnRef) and other.constant
                and (type(other.value) is str or number)):
            return
        scope = getattr(self.context, "scope", None)
        if scope is None:
            return
        try:
            column = scope.columns[scope.resolve(side)]
        except TahiryError:
            return   # reported where the column is emitted
        if not column.dates:
            return
        self.value_checked = True
        if number:
            raise TahiryError(
                f"Tsy daty ny {expression_text(other_expr)} ampitahaina amin'ny tsanganana DATY "
                f"'{column_text(side)}' fa isa : soraty eo anelanelan'ny ' ny daty (ohatra "
                f"'2024-01-31').")
        if not is_date(str(other.value)):   # (a text here: numbers are refused above)
            raise TahiryError(
                f"Tsy daty voasoratra 'YYYY-MM-DD' ny '{values.literal_text(str(other.value))}' "
                f"ampitahaina amin'ny tsanganana DATY '{column_text(side)}' (ohatra "
                f"'2024-01-31').")

    def inline_comparison(self, op: str, left: _Code, right: _Code) -> str | None:
        """`col OP constant` with the type test inline: no call in the common case."""
        if left.constant == right.constant:
            return None
        variable, constant = (right, left) if left.constant else (left, right)
        kind = type(constant.value)
        if kind is str:
            test = "is str"
        elif kind is int or kind is float:
            test = "in _num"
        else:
            return None
        temp = self.temp()
        py_op = _PY_COMPARISON[op]
        pair = (f"{constant.text} {py_op} {temp}" if left.constant
                else f"{temp} {py_op} {constant.text}")
        helper_args = (f"{constant.text}, {temp}" if left.constant
                       else f"{temp}, {constant.text}")
        return (f"({pair} if type({temp} := {variable.text}) {test} "
                f"else {_HELPER_NAMES[op]}({helper_args}))")

    def emit_arithmetic(self, expr: Binary) -> _Code:
        left, right = self.emit(expr.left), self.emit(expr.right)
        for side, code in ((expr.left, left), (expr.right, right)):
            if code.kind == BOOL:
                raise _boolean_arithmetic(expr.op, side)
        # Arithmetic gives a number or NULL, never a boolean (the helpers
        # refuse them): VALUE even over NULL or ANY operands.
        return self.fold(_Code(f"{_HELPER_NAMES[expr.op]}({left.text}, {right.text})", VALUE,
                               max(left.depth, right.depth) + 1,
                               left.constant and right.constant))

    # -- conditions: only "is it true" matters, so ary/na may short-circuit

    def emit_filter(self, expr: Expr, clause: str) -> _Code:
        if isinstance(expr, Binary) and expr.op in ("ary", "na"):
            left = self.emit_filter(expr.left, clause)
            example = _repeated_comparison(expr)
            if example is not None:
                raise TahiryError(
                    f"Ny fepetra ao amin'ny '{clause}' dia tsy maintsy booléen, "
                    f"fa tsy booléen ny {expression_text(expr.right)}."
                    + text("hint_repeat_operand", example=example))
            right = self.emit_filter(expr.right, clause)
            if left.constant and right.constant:
                return self.emit(expr)
            word = "and" if expr.op == "ary" else "or"
            return self.fold(_Code(f"({left.text} {word} {right.text})", BOOL,
                                   max(left.depth, right.depth) + 1))
        code = self.emit(expr)
        if code.kind == VALUE:
            raise TahiryError(
                f"Ny fepetra ao amin'ny '{clause}' dia tsy maintsy booléen, "
                f"fa tsy booléen ny {expression_text(expr)}.")
        if code.kind == ANY and not code.constant:
            clause_name = self.name("k", clause)
            code = _Code(f"chk({code.text}, {clause_name})", BOOL, code.depth + 1)
        return self.fold(code)


def _repeated_comparison(expr: Binary) -> str | None:
    """`taranja = 'BD' na taranja = 'Algo'` for `taranja = 'BD' na 'Algo'` (a value alone
    after `ary`/`na`, as the sentence is said, the comparison before it to repeat); None
    for anything else."""
    value = expr.right
    if not isinstance(value, Literal) or value.value is None:
        return None
    before = expr.left
    while isinstance(before, Binary) and before.op in ("ary", "na"):
        before = before.right   # `id = 1 ary naoty = 2 na 3`: the comparison next to it
    if not (isinstance(before, Binary) and before.op in _COMPARISON_OPS):
        return None
    return (f"{expression_text(before)} {expr.op} {expression_text(before.left)} "
            f"{before.op} {expression_text(value)}")


def _boolean_arithmetic(op: str, operand: Expr) -> TahiryError:
    return TahiryError(
        f"Tsy azo atao ny '{op}' amin'ny booléen ({expression_text(operand)}) : "
        "isa ihany no azo kajiana.")


def _not_boolean(op: str, operand: Expr) -> TahiryError:
    return TahiryError(
        f"Ny '{op}' dia mila booléen, fa tsy booléen ny {expression_text(operand)}.")


def compile_expression(expr: Expr, context: ExpressionContext,
                       codes: CodeCache | None = None) -> Compiled:
    """Compile a value expression; `context` resolves columns and aggregates.

    `codes`: where compiled sources are kept for the next statement of the
    same shape (None: compile every time).
    """
    generator = _Generator(context, codes)
    code = generator.emit(expr)
    if code.constant:
        value = code.value
        return Compiled(lambda row: value, code.kind, True, value)
    return Compiled(generator.lambda_of(code), code.kind)


def compile_condition(expr: Expr, context: ExpressionContext, clause: str, strict: bool = False,
                      codes: CodeCache | None = None) -> Callable[[list], object]:
    """Compile a condition; the function's result is truthy exactly when it is true.

    With strict=True the function returns exactly True or False.
    """
    generator = _Generator(context, codes)
    code = generator.emit_filter(expr, clause)
    if strict:
        code = _Code(f"({code.text}) is True", BOOL, code.depth + 1, code.constant)
    if code.constant:
        value = generator.lambda_of(code)([])
        return lambda row: value
    return generator.lambda_of(code)


# --------------------------------------------------------------------------
# Templates: compiled once per statement shape, bound to each statement's values

_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Template:
    """A compiled expression whose literal values are parameters.

    Compiled once from a statement shape's probe (its literals are unique
    sentinel values, engine/language/statement_cache.py); `bind(values)` is
    the function that compiling the same expression with `values` in place
    of the sentinels gives: the same code, with the sentinels' names in
    its namespace holding the values.
    """

    code: object                       # the lambda's code object (None: `fixed` is the function)
    namespace: dict
    slots: tuple[tuple[str, int], ...]  # (name in the namespace, index of the value)
    kind: str
    fixed: Callable[[list], object] | None = None

    def bind(self, values: Sequence) -> Callable[[list], object]:
        if self.fixed is not None:
            return self.fixed
        namespace = self.namespace.copy()
        for name, slot in self.slots:
            namespace[name] = values[slot]
        return FunctionType(self.code, namespace)  # type: ignore[arg-type]


def compile_template(expr: Expr, context: ExpressionContext,
                     params: Mapping[tuple[type, object], int], clause: str | None = None,
                     codes: CodeCache | None = None) -> Template | None:
    """A `Template` of `expr` whose literals equal to a key of `params` are parameters.

    `clause`: compile as a condition of that clause (`compile_condition`),
    else as a value (`compile_expression`). Raises what compiling raises.
    None when the compiled function depends on a parameter's value beyond
    its type: the literal was folded into a constant at compile time (its
    value decided the code, and could decide an error), or split into a
    nested function that keeps its own namespace. Otherwise the only way
    a parameter reaches the function is its own name, read when a row is
    evaluated, so binding other values of the same types gives exactly
    what compiling with them gives (the code only looks at a constant's type:
    `inline_comparison`).
    """
    generator = _Generator(context, codes)
    code = generator.emit_filter(expr, clause) if clause is not None else generator.emit(expr)
    if generator.value_checked:
        return None   # each statement's literal is checked when it compiles
    namespace = generator.namespace
    named = {name: value for name, value in namespace.items()
             if name[0] in "cf" and name[1:].isdigit()}
    if any(name[0] == "f" for name in named):
        return None
    slots = []
    for name, value in named.items():
        slot = params.get((type(value), value))
        if slot is not None:
            slots.append((name, slot))
    if code.constant:
        if slots:
            return None  # a parameter was folded
        value = code.value if clause is None else generator.lambda_of(code)([])
        return Template(None, {}, (), code.kind, lambda row: value)
    used = set(_IDENTIFIER.findall(code.text))
    if any(name not in used for name, _ in slots):
        return None  # folded into another constant
    function = generator.lambda_of(code)
    return Template(function.__code__, namespace, tuple(slots), code.kind)
