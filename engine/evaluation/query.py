"""The query evaluator: a SELECT_EXPR AST plus a Catalog in, a Relation out.

`evaluate_query` walks the query once: it loads sources (tables, views
evaluated at each use, derived tables), joins them, filters, groups,
sorts, limits and projects, delegating row work to engine/evaluation/relational.py
and expression compilation to engine/evaluation/expressions.py. Every expression is
compiled (names resolved, kinds checked) before any row is touched.

Also here: the helpers the executor uses for single-table statements
(`compile_table_predicate`, `compile_table_expression`) and VALUES
(`evaluate_constant`), and `plan_query`: a compiled plan of a simple query
over one table, made once per statement shape and run with each
statement's literal values (`QueryPlan`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import TypeVar, cast

from engine.collector import collector_paused
from engine.errors import TahiryError
from engine.evaluation import relational, values
from engine.evaluation.catalog import Catalog, TableData, no_such_table
from engine.evaluation.code_cache import CodeCache
from engine.evaluation.domains import only_dates
from engine.evaluation.equality_lookup import (
    MIN_INDEXED_ROWS,
    candidate_rows,
    cannot_raise,
    conjuncts,
)
from engine.evaluation.expressions import (
    ANY,
    BOOL,
    VALUE,
    ColumnResolver,
    Compiled,
    RowContext,
    Scope,
    ScopeColumn,
    SelectAlias,
    Template,
    UnknownColumn,
    check_function,
    column_refs,
    compile_condition,
    compile_expression,
    compile_template,
    contains_aggregate,
    expression_text,
)
from engine.evaluation.outcome import Column, Relation
from engine.evaluation.relational import DEFAULT_LIMITS, AggregateSpec, QueryLimits
from engine.language.ast import (
    Binary,
    ColumnRef,
    Expr,
    FunctionCall,
    Join,
    Literal,
    OrderItem,
    SelectCore,
    SelectExpr,
    SetOperation,
    Source,
    SubquerySource,
    TableSource,
    transform,
)
from engine.language.messages import text as message
from engine.vocabulary import JOIN_KIND_WORD, SET_OPERATION_WORD

__all__ = ["evaluate_query", "compile_table_predicate", "compile_table_expression",
           "evaluate_constant", "plan_query", "QueryPlan", "QueryLimits", "DEFAULT_LIMITS"]

RESULT_NAME = "valiny"
_T = TypeVar("_T")


@dataclass
class _Result:
    """An evaluated (sub)query: output columns (name, origin, kind) and rows."""

    name: str
    columns: list[ScopeColumn]
    rows: list[list]


class ViewCycle(TahiryError):
    """A view whose query reads itself, through others or not (the error names the cycle)."""


def evaluate_query(select: SelectExpr, catalog: Catalog,
                   limits: QueryLimits = DEFAULT_LIMITS, codes: CodeCache | None = None) -> Relation:
    """Evaluate a SELECT_EXPR against a database; raises TahiryError.

    `codes`: compiled expression code kept between statements (None: none kept).
    """
    with collector_paused():
        try:
            result = _Evaluator(catalog, limits.started(), codes).evaluate(select)
        except RecursionError:
            raise TahiryError("Sarotra loatra ny fangatahana (lalina loatra).") from None
        except TahiryError as error:
            raise _released(error) from None
    columns = [Column(c.name, c.origin) for c in result.columns]
    return Relation(result.name, columns, result.rows)


def _released(error: BaseException) -> BaseException:
    """`error` without the tracebacks that hold the frames of a failed evaluation.

    Those frames hold every row it built (millions, for a query stopped by
    its time limit). Dropped here, while the collector is still paused, they
    are freed at once; kept until after it is re-enabled, its next collection
    would first scan them all, about as long as building them took.
    """
    seen: BaseException | None = error
    while seen is not None:
        seen.__traceback__ = None
        seen = seen.__cause__ or seen.__context__
    return error


# --------------------------------------------------------------------------
# Single-table helpers for UPDATE / DELETE and VALUES


def _stored_columns(table: TableData, qualifier: str) -> list[ScopeColumn]:
    """A stored table's columns as a scope sees them (a DATY-only one marked: dates)."""
    return [ScopeColumn(c.name, (qualifier,), VALUE, only_dates(c.domain)) for c in table.columns]


def _table_scope(table: TableData) -> Scope:
    return Scope(_stored_columns(table, table.name))


def _guarded(compile_step: Callable[[], _T]) -> _T:
    try:
        return compile_step()
    except RecursionError:
        raise TahiryError("Sarotra loatra ny fanambarana (lalina loatra).") from None


def _reject_boolean(compiled: Compiled, expr: Expr) -> Compiled:
    if compiled.kind == BOOL:
        raise TahiryError(
            f"Tsy azo tehirizina ao anaty tabilao ny booléen ({expression_text(expr)}).")
    return compiled


def compile_table_predicate(where: Expr, table: TableData,
                            codes: CodeCache | None = None) -> Callable[[list], bool]:
    """A function row -> True exactly when the condition holds for that row."""
    context = RowContext(_table_scope(table), "rehefa")
    predicate = _guarded(lambda: compile_condition(where, context, "rehefa", strict=True, codes=codes))
    return cast(Callable[[list], bool], predicate)  # strict=True: exactly True or False


def table_candidates(where: Expr, table: TableData) -> list[list] | None:
    """The rows of `table` that may satisfy `where` (compiled over the table alone), from
    its equality index (engine/evaluation/equality_lookup.py); None: every row may."""
    return candidate_rows(where, _table_scope(table), table)


def compile_table_expression(expr: Expr, table: TableData,
                             codes: CodeCache | None = None) -> Callable[[list], object]:
    """A function row -> value of `expr` (UPDATE's right-hand sides)."""
    context = RowContext(_table_scope(table), "ova")
    compiled = _guarded(lambda: _unquoted_text_said(expr, context, codes))
    return _reject_boolean(compiled, expr).function


def evaluate_constant(expr: Expr) -> object:
    """The value of an expression without columns (VALUES items)."""
    context = RowContext(Scope([]), "sanda")
    compiled = _guarded(lambda: _unquoted_text_said(expr, context, None))
    return _reject_boolean(compiled, expr).function([])


def _unquoted_text_said(expr: Expr, context: RowContext, codes: CodeCache | None) -> Compiled:
    """`expr` compiled; a value that is only an unknown name (`sanda (E3, ...)`, `ova
    taranja = BD`) is most likely a text without its quotes, and its error says so."""
    try:
        return compile_expression(expr, context, codes)
    except UnknownColumn as unknown:
        if isinstance(expr, ColumnRef):
            raise unknown.as_unquoted_text() from None
        raise


# --------------------------------------------------------------------------
# Plans: a simple query over one table, compiled once per statement shape

# Above this many rows the plan pauses the cyclic collector while it builds
# them, as `evaluate_query` does (below, pausing costs more than it saves).
_PLAN_GC_ROWS = 1000
# Above this many rows to filter, a plan's scan is timed (QueryLimits.max_seconds).
_PLAN_TIMED_ROWS = 4096


@dataclass(frozen=True)
class QueryPlan:
    """`alaivo ... ao@ TABLE [rehefa ...] [fetra ...]` compiled for one list of column names.

    Made by `plan_query` from a statement shape's probe; `run(table, values)`
    gives what `evaluate_query` gives for the statement of that shape with
    those literal values, over a stored table with exactly `column_names`
    (the caller checks them, and that the name is a table, not a view):
    the same candidate rows (equality index), the same compiled condition
    and items (`Template`: the same code with the values bound), the same
    order of evaluation, hence the same rows and the same errors.
    """

    table_name: str
    column_names: tuple[str, ...]
    result_name: str
    columns: tuple[Column, ...]
    where: Template | None
    index: tuple[int, int] | None           # (column, value slot) of the equality lookup
    items: tuple[Template, ...] | None      # None: `*`, or only columns (`take`)
    take: Callable[[list], list] | None
    limit: tuple[int, int] | None

    def run(self, table: TableData, values: list, limits: QueryLimits = DEFAULT_LIMITS) -> Relation:
        """The relation; the time limit of `limits` holds over a long scan (its
        deadline only starts for a table of more than _PLAN_TIMED_ROWS rows, so
        a point read pays nothing for it)."""
        rows = table.rows
        timed = len(rows) > _PLAN_TIMED_ROWS and limits.max_seconds is not None
        if timed:
            limits = limits.started()
        try:
            if len(rows) > _PLAN_GC_ROWS:
                with collector_paused():
                    return self._run(table, rows, values, limits, timed)
            return self._run(table, rows, values, limits, timed)
        except TahiryError as error:
            raise _released(error) from None

    def _run(self, table: TableData, rows: list, values: list, limits: QueryLimits,
             timed: bool) -> Relation:
        if self.where is not None:
            predicate = self.where.bind(values)
            index = self.index
            if index is not None and len(rows) >= MIN_INDEXED_ROWS:
                # As `candidate_rows` does.
                rows = table.equality_index(index[0]).get(values[index[1]]) or []
            if timed:
                rows = relational.filter_rows(predicate, rows, limits)
            else:
                rows = [row for row in rows if predicate(row)]
        if self.limit is not None:
            rows = relational.apply_limit(rows, *self.limit)
        if self.items is not None:
            functions = [item.bind(values) for item in self.items]
            if timed:
                rows = relational.in_parts(
                    rows, limits, lambda part: [[f(row) for f in functions] for row in part])
            else:
                rows = [[f(row) for f in functions] for row in rows]
        elif self.take is not None:
            rows = list(map(self.take, rows))
        else:
            rows = list(map(list, rows))  # never hand out the table's own lists
        return Relation(self.result_name, list(self.columns), rows)


def plan_query(select: SelectExpr, table: TableData, params: dict[tuple[type, object], int],
               codes: CodeCache | None = None) -> QueryPlan | None:
    """The plan of `select` over `table`, or None where the general evaluator is needed.

    `select` is a statement shape's probe: its literals with a key in
    `params` (their sentinel values) are the parameters. Planned: one
    stored table (no view, join, derived table), no grouping, aggregate or
    ordering. Compilation errors (an unknown column) raise, as they would
    from `evaluate_query`. Wrapped in the same RecursionError guard.
    """
    if not isinstance(select, SelectCore) or select.joins or select.group_by is not None \
            or select.order_by or not isinstance(select.source, TableSource):
        return None
    items = select.items
    if items is not None and any(contains_aggregate(item.expr) for item in items):
        return None
    try:
        return _plan_core(select, select.source, table, params, codes)
    except RecursionError:
        raise TahiryError("Sarotra loatra ny fangatahana (lalina loatra).") from None


def _plan_core(core: SelectCore, source: TableSource, table: TableData,
               params: dict[tuple[type, object], int], codes: CodeCache | None) -> QueryPlan | None:
    qualifier = source.alias or source.name
    scope = Scope(_stored_columns(table, qualifier))
    scope.aliases = partial(_select_aliases, core)
    where = index = None
    if core.where is not None:
        where = compile_template(core.where, RowContext(scope, "rehefa"), params, "rehefa", codes)
        if where is None:
            return None
        found = _indexed_equality(core.where, scope, params)
        if found is False:
            return None
        index = found if isinstance(found, tuple) else None
    item_templates: tuple[Template, ...] | None = None
    take = None
    if core.items is None:
        columns = tuple(Column(c.name, c.origin) for c in scope.columns)
    else:
        context = RowContext(scope, "alaivo")
        templates = []
        for item in core.items:
            template = compile_template(item.expr, context, params, None, codes)
            if template is None:
                return None
            templates.append(template)
        columns = tuple(Column(c.name, c.origin) for c in (
            _output_column(item, template.kind, scope)
            for item, template in zip(core.items, templates, strict=True)))
        refs = [item.expr for item in core.items if isinstance(item.expr, ColumnRef)]
        if len(refs) == len(core.items):
            take = relational.row_getter([scope.resolve(ref) for ref in refs])
        else:
            item_templates = tuple(templates)
    limit = (core.limit.start, core.limit.stop) if core.limit is not None else None
    return QueryPlan(source.name, tuple(c.name for c in table.columns), source.name, columns,
                     where, index, item_templates, take, limit)


def _indexed_equality(where: Expr, scope: Scope,
                      params: dict[tuple[type, object], int]) -> tuple[int, int] | None | bool:
    """(column, slot) of the conjunct `candidate_rows` looks up, None if it scans.

    The same walk as engine/evaluation/equality_lookup.py's, decided once for the
    shape: which conjunct is `col = literal` depends on the tree and the
    literal's type only (a shape fixes both). False if the literal is not a
    parameter (then its value would be part of the plan: not planned).
    """
    for conjunct in conjuncts(where):
        if isinstance(conjunct, Binary) and conjunct.op == "=":
            left, right = conjunct.left, conjunct.right
            if isinstance(left, Literal) and isinstance(right, ColumnRef):
                left, right = right, left
            if isinstance(left, ColumnRef) and isinstance(right, Literal) \
                    and type(right.value) in (int, float, str):
                slot = params.get((type(right.value), right.value))
                if slot is None:
                    return False
                return scope.resolve(left), slot
        if not cannot_raise(conjunct):
            return None
    return None


# --------------------------------------------------------------------------
# The evaluator


class _GroupContext:
    """Names in a grouped query: grouping columns and aggregates.

    Rows seen by expressions compiled here are the group rows: the grouping
    values in `vondrona` order, then one value per distinct aggregate.
    """

    def __init__(self, scope: Scope, group_indexes: list[int], codes: CodeCache | None):
        self.scope = scope
        self.codes = codes
        self.slot_of_source = {index: slot for slot, index in enumerate(group_indexes)}
        self.aggregates: list[AggregateSpec] = []
        self.aggregate_slots: dict[FunctionCall, int] = {}
        self.aggregate_kinds: dict[FunctionCall, str] = {}
        self.argument_context = RowContext(scope, "fonction d'agrégation")
        self.getters: dict[int, itemgetter] = {}

    def _getter(self, index: int):
        return self.getters.setdefault(index, itemgetter(index))

    def column(self, ref: ColumnRef) -> tuple[int, str]:
        index = self.scope.resolve(ref)
        slot = self.slot_of_source.get(index)
        if slot is None:
            # What to write instead: the group with it, or it inside an aggregate.
            name = expression_text(ref)
            groups = [self.scope.columns[i].name for i in self.slot_of_source] + [name]
            raise TahiryError(
                f"Ny champ '{name}' dia tsy ao amin'ny vondrona ary tsy "
                "ao anaty fonction d'agrégation."
                + message("hint_not_grouped", name=name, groups=", ".join(dict.fromkeys(groups))))
        return slot, self.scope.columns[index].kind

    def aggregate(self, call: FunctionCall) -> tuple[int, str]:
        check_function(call)
        text = expression_text(call)
        if call in self.aggregate_slots:
            slot = self.aggregate_slots[call]
        else:
            argument = None
            kind = VALUE
            if not call.star:
                if contains_aggregate(call.args[0]):
                    raise TahiryError(
                        f"Tsy azo atao ny fonction d'agrégation ao anatin'ny hafa : {text}.")
                compiled = compile_expression(call.args[0], self.argument_context, self.codes)
                if compiled.kind == BOOL and call.name != "count":  # count: any value
                    raise TahiryError(f"Ny {text} dia tsy mandray booléen.")
                argument = compiled.function
                if call.name in ("min", "max"):
                    kind = compiled.kind  # they return one of their values
                if isinstance(call.args[0], ColumnRef):
                    # one shared C-level getter per column: faster, and lets
                    # sum(v) and avg(v) share the values they read
                    argument = self._getter(self.scope.resolve(call.args[0]))
            slot = len(self.slot_of_source) + len(self.aggregates)
            self.aggregates.append(AggregateSpec(call.name, argument, text))
            self.aggregate_slots[call] = slot
            self.aggregate_kinds[call] = kind
        return slot, self.aggregate_kinds[call]


class _Evaluator:
    def __init__(self, catalog: Catalog, limits: QueryLimits, codes: CodeCache | None):
        self.catalog = catalog
        self.limits = limits
        self.codes = codes
        self.view_stack: list[str] = []
        self.depth = 0

    def evaluate(self, select: SelectExpr) -> _Result:
        relational.check_deadline(self.limits)
        if isinstance(select, SetOperation):
            return self._set_operation(select)
        return self._core(select)

    def _nested(self, select: SelectExpr) -> _Result:
        """Evaluate a view's or a derived table's query, one level deeper."""
        self.depth += 1
        try:
            if self.depth > self.limits.max_nesting:
                raise TahiryError(
                    f"Lalina loatra ny fangatahana : mihoatra ny {self.limits.max_nesting} "
                    "ny jery sy fangatahana ao anatin'ny hafa.")
            return self.evaluate(select)
        finally:
            self.depth -= 1

    # -- set operators

    def _set_operation(self, select: SetOperation) -> _Result:
        left = self.evaluate(select.left)
        right = self.evaluate(select.right)
        if len(left.columns) != len(right.columns):
            raise TahiryError(
                f"Tsy mitovy ny isan'ny tsanganana amin'ny {SET_OPERATION_WORD[select.op]} : "
                f"{len(left.columns)} sy {len(right.columns)}.")
        columns = []
        for mine, theirs in zip(left.columns, right.columns, strict=True):
            kind = mine.kind if mine.kind == theirs.kind else ANY
            # Dates only if both sides hold only dates (else a text may be no date).
            columns.append(ScopeColumn(mine.name, mine.qualifiers, kind,
                                       mine.dates and theirs.dates))
        # Where a column may hold booleans beside numbers, True must not equal 1.
        tagged = any(column.kind == ANY for column in columns)
        rows = relational.set_operation(select.op, left.rows, right.rows, tagged, self.limits)
        return _Result(RESULT_NAME, columns, rows)

    # -- sources

    def _missing_table(self, name: str) -> TahiryError:
        names = getattr(self.catalog, "object_names", None)  # a catalog that can list: a hint
        return no_such_table(self.catalog.database, name, names() if names is not None else ())

    def _other_tables(self, core: SelectCore) -> dict[str, list[str]]:
        """The database's tables `core` does not read, with their columns (an error's hint)."""
        read = {source.name for source in (core.source, *(join.source for join in core.joins))
                if isinstance(source, TableSource)}
        names = getattr(self.catalog, "object_names", None)   # a catalog that can list
        tables: dict[str, list[str]] = {}
        for name in names() if names is not None else ():
            table = self.catalog.table(name) if name not in read else None
            if table is not None:
                tables[name] = [column.name for column in table.columns]
        return tables

    def _source(self, source: Source) -> tuple[str, list[ScopeColumn], list[list], TableData | None]:
        """(qualifier, columns, rows, table) of one `ao@` or join source.

        table: the stored table when the rows are its own lists (never to be
        handed out or mutated), None when they are fresh ones (views, derived tables).
        """
        if isinstance(source, SubquerySource):
            if not source.alias:
                raise TahiryError("Tous les tables dérivé doit avoir leur propre alias")
            result = self._nested(source.query)
            qualifier = source.alias
        else:
            qualifier = source.alias or source.name
            table = self.catalog.table(source.name)
            if table is not None:
                columns = _stored_columns(table, qualifier)
                return qualifier, columns, table.rows, table
            result = self._view(source.name)
        # A plain column of a DATY column stays one (its literals are checked).
        columns = [ScopeColumn(c.name, (qualifier,), c.kind, c.dates) for c in result.columns]
        return qualifier, columns, result.rows, None

    def _view(self, name: str) -> _Result:
        if name in self.view_stack:
            cycle = " -> ".join(self.view_stack[self.view_stack.index(name):] + [name])
            raise ViewCycle(f"Ny jery '{name}' dia miantso ny tenany ({cycle}).")
        query = self.catalog.view_query(name)
        if query is None:
            raise self._missing_table(name)
        self.view_stack.append(name)
        try:
            return self._nested(query)
        except TahiryError as error:
            if type(error) not in (TahiryError, UnknownColumn):
                raise   # (a missing table, a cycle, the time limit, a storage fault: as they are)
            # The query read the view, not what its definition names: say which view
            # (a column dropped from its table fails here, not in the query's text).
            raise TahiryError(f"jery {name} : {error.sentence}") from None
        finally:
            self.view_stack.pop()

    def _from(self, core: SelectCore) -> tuple[Scope, list[list], str, TableData | None]:
        """The joined sources of a core: scope, rows, the relation's name, and the
        stored table whose own lists the rows are (to be copied, never handed out), if any.
        """
        if core.source is None:
            if core.joins:
                raise TahiryError("Ny tonona dia mila loharano 'ao@'.")
            if core.items is None:
                raise TahiryError("Ny 'alaivo *' dia mila loharano 'ao@'.")
            return Scope([], no_source=True), [[]], RESULT_NAME, None
        qualifier, columns, rows, table = self._source(core.source)
        seen = {qualifier}
        renamed: dict[str, str] = {}   # table or view name -> its alias (error hints)
        _note_alias(core.source, renamed)
        elsewhere = partial(self._other_tables, core)   # called by an error's hint only
        scope = Scope(columns, renamed=renamed, elsewhere=elsewhere)
        for join in core.joins:
            right_qualifier, right_columns, right_rows, _ = self._source(join.source)
            _note_alias(join.source, renamed)
            table = None  # joined rows are new lists
            if right_qualifier in seen:
                raise TahiryError(
                    f"Ny anarana '{right_qualifier}' dia ampiasaina indroa ao amin'ny "
                    "fangatahana : omeo anarana hafa (antso) ny iray.")
            seen.add(right_qualifier)
            scope, rows = self._join(join, scope, rows, Scope(right_columns, renamed=renamed),
                                     right_rows)
            scope.renamed, scope.elsewhere = renamed, elsewhere
        if isinstance(core.source, TableSource) and not core.joins:
            name = core.source.name
        else:
            name = RESULT_NAME
        return scope, rows, name, table

    # -- joins

    def _join(self, join: Join, left: Scope, left_rows: list, right: Scope,
              right_rows: list) -> tuple[Scope, list]:
        limits = self.limits
        if join.kind == "natural":
            if join.condition is not None:
                raise TahiryError("Ny tonona:natoraly dia tsy mandray 'ka'.")
            return self._natural_join(left, left_rows, right, right_rows)
        combined = left.concat(right)
        if join.condition is None:
            if join.kind != "inner":
                raise TahiryError(f"Ny tonona:{JOIN_KIND_WORD[join.kind]} dia mila fepetra 'ka'.")
            return combined, relational.cross_join(left_rows, right_rows, limits)
        condition = compile_condition(join.condition, RowContext(combined, "ka"), "ka",
                                      codes=self.codes)
        plan = _equi_join_plan(join.condition, left, right, combined, self.codes)
        if plan is None:
            rows = relational.loop_join(join.kind, left_rows, right_rows, condition,
                                        left.width, right.width, limits)
        else:
            rows = relational.hash_join(join.kind, left_rows, right_rows, plan,
                                        left.width, right.width, limits)
        return combined, rows

    def _natural_join(self, left: Scope, left_rows: list, right: Scope,
                      right_rows: list) -> tuple[Scope, list]:
        right_names = {c.name for c in right.columns}
        shared = []
        for column in left.columns:
            if column.name in right_names and column.name not in shared:
                shared.append(column.name)
        if not shared:
            return left.concat(right), relational.cross_join(left_rows, right_rows,
                                                             self.limits)
        left_keys, right_keys = [], []
        for name in shared:
            left_keys.append(left.resolve(ColumnRef(name)))
            right_keys.append(right.resolve(ColumnRef(name)))
        kept = [i for i, c in enumerate(right.columns) if c.name not in shared]
        columns = list(left.columns)
        for li, ri in zip(left_keys, right_keys, strict=True):
            merged = left.columns[li]
            columns[li] = ScopeColumn(
                merged.name, merged.qualifiers + right.columns[ri].qualifiers,
                merged.kind if merged.kind == right.columns[ri].kind else ANY,
                merged.dates or right.columns[ri].dates)   # equal to the DATY side's values
        columns += [right.columns[i] for i in kept]
        plan: relational.EquiJoin | None = relational.EquiJoin(
            relational.key_getter(left_keys), relational.key_getter(right_keys), len(shared) == 1)
        if any(left.columns[i].kind != VALUE for i in left_keys) or any(
                right.columns[i].kind != VALUE for i in right_keys):
            plan = None
        take = relational.row_getter(kept)
        if plan is None:
            rows = _natural_loop(left_rows, right_rows, left_keys, right_keys, take,
                                 self.limits)
        else:
            rows = relational.natural_join(left_rows, right_rows, plan, take, self.limits)
        return Scope(columns), rows

    # -- one SELECT core

    def _core(self, core: SelectCore) -> _Result:
        scope, rows, name, table = self._from(core)
        scope.aliases = partial(_select_aliases, core)
        if core.where is not None:
            predicate = compile_condition(core.where, RowContext(scope, "rehefa"), "rehefa",
                                          codes=self.codes)
            if table is not None:
                candidates = candidate_rows(core.where, scope, table)
                if candidates is not None:
                    rows = candidates
            rows = relational.filter_rows(predicate, rows, self.limits)
        order_by = core.order_by or ()
        grouped = core.group_by is not None or (
            core.items is not None and any(contains_aggregate(i.expr) for i in core.items)
        ) or any(contains_aggregate(o.expr) for o in order_by)
        if grouped:
            return self._grouped(core, scope, rows, name)
        if core.items is None:
            columns = list(scope.columns)
            project = None
            item_functions = None
        else:
            context = RowContext(scope, "alaivo")
            compiled = [compile_expression(item.expr, context, self.codes) for item in core.items]
            columns = [_output_column(item, c.kind, scope)
                       for item, c in zip(core.items, compiled, strict=True)]
            item_functions = [c.function for c in compiled]
            project = _projector(core.items, compiled, scope)
        if order_by:
            keys = [self._order_key(o, core.items, columns, item_functions,
                                    RowContext(scope, "alaharo")) for o in order_by]
            rows = relational.sort_rows(rows, keys, self.limits)
        if core.limit is not None:
            rows = relational.apply_limit(rows, core.limit.start, core.limit.stop)
        if project is None:
            if table is not None:
                # never hand out the catalog's own lists
                rows = relational.map_rows(list, rows, self.limits)
        else:
            rows = relational.in_parts(rows, self.limits, project)
        return _Result(name, columns, rows)

    def _grouped(self, core: SelectCore, scope: Scope, rows: list, name: str) -> _Result:
        if core.items is None:
            raise TahiryError("Tsy azo atao ny 'alaivo *' miaraka amin'ny vondrona.")
        group_indexes = [scope.resolve(ref) for ref in (core.group_by or ())]
        context = _GroupContext(scope, group_indexes, self.codes)
        compiled = [compile_expression(item.expr, context, self.codes) for item in core.items]
        columns = []
        for item, c in zip(core.items, compiled, strict=True):
            columns.append(_output_column(item, c.kind, scope))
        item_functions = [c.function for c in compiled]
        keys = [self._order_key(o, core.items, columns, item_functions, context)
                for o in core.order_by or ()]
        if core.group_by is None:
            key = None
        else:
            key = relational.key_getter(group_indexes) if group_indexes else (lambda row: ())
            if any(scope.columns[i].kind != VALUE for i in group_indexes):
                key = _tagged_key(group_indexes)
        limits = self.limits
        groups = relational.group_rows(rows, key, group_indexes, context.aggregates, limits)
        if keys:
            groups = relational.sort_rows(groups, keys, limits)
        if core.limit is not None:
            groups = relational.apply_limit(groups, core.limit.start, core.limit.stop)
        rows = relational.in_parts(
            groups, limits, lambda part: [[f(g) for f in item_functions] for g in part])
        return _Result(name, columns, rows)

    def _order_key(self, order: OrderItem, items, columns: list[ScopeColumn],
                   item_functions: list | None, context):
        """(function over the pre-projection row, descending, text) for one key.

        Names resolve against the output columns first, then the source
        (LANGUAGE.md 4b): a bare output name uses that column's function; in
        an expression, each such name stands for its select item. A whole
        number alone is an output column's position.
        """
        text = order.text or expression_text(order.expr)
        expr = order.expr
        index: int | None = None
        if isinstance(expr, Literal) and type(expr.value) is int:   # a column's position
            index = expr.value - 1
            if index < 0:
                raise TahiryError(
                    f"alaharo {expr.value} : manomboka amin'ny 1 ny laharan'ny tsanganana "
                    f"(1 ka hatramin'ny {len(columns)})")
            if index >= len(columns):
                raise TahiryError(
                    f"alaharo {expr.value} : tsy misy tsanganana faha-{expr.value} "
                    f"(tsanganana {len(columns)} no ao amin'ny valiny)")
        elif isinstance(expr, Literal):
            # (A constant key leaves the rows as they were: never what was meant.)
            raise TahiryError(
                f"alaharo {text} : tsy mandahatra na inona na inona ny sanda raikitra "
                "(omeo ny anaran'ny tsanganana na ny laharany, ohatra : alaharo 1)")
        elif isinstance(expr, ColumnRef) and expr.qualifier is None:
            index = _output_index(expr, columns)
        elif items is not None:
            expr = _with_output_columns(expr, items, columns)
        if index is not None:
            if item_functions is None:
                return _index_key(index), order.descending, text
            return item_functions[index], order.descending, text
        try:
            compiled = compile_expression(expr, context, self.codes)
        except UnknownColumn as unknown:
            raise unknown.among_outputs(columns) from None
        return compiled.function, order.descending, text


# --------------------------------------------------------------------------
# Helpers




def _note_alias(source: Source, renamed: dict[str, str]) -> None:
    """Remember the alias a table or view was given (`ao@ naoty n`: naoty -> n)."""
    if isinstance(source, TableSource) and source.alias and source.alias != source.name:
        renamed.setdefault(source.name, source.alias)


def _output_index(ref: ColumnRef, columns: list[ScopeColumn]) -> int | None:
    """The output column an unqualified name means (None: not an output name)."""
    matches = [i for i, c in enumerate(columns) if c.name == ref.name]
    if len(matches) > 1:
        raise TahiryError(
            f"Le champ '{ref.name}' est ambigu. Il apparaît {len(matches)} fois "
            "dans la relation.")
    return matches[0] if matches else None


def _with_output_columns(expr: Expr, items, columns: list[ScopeColumn]) -> Expr:
    """`expr` with every unqualified output column name replaced by its select item.

    Aggregate arguments are row level: the names inside them stay source names.
    """
    def output_item(node: object) -> object | None:
        if isinstance(node, ColumnRef):
            if node.qualifier is not None:
                return node
            index = _output_index(node, columns)
            return node if index is None else items[index].expr
        if isinstance(node, FunctionCall):
            return node  # an aggregate's argument: row level, left as it is
        return None

    return cast(Expr, transform(expr, output_item))


def _index_key(index: int):
    return lambda row: row[index]


def _tagged_key(indexes: list[int]):
    """A group key where a boolean never equals the number 1."""
    return lambda row: tuple((type(row[i]) is bool, row[i]) for i in indexes)


def _select_aliases(core: SelectCore) -> dict[str, SelectAlias]:
    """The names `core`'s select list gives, for the hint of one used in `rehefa` or
    `vondrona` (only `alaharo` resolves them)."""
    return {item.alias: SelectAlias(item.text or expression_text(item.expr),
                                    contains_aggregate(item.expr))
            for item in core.items or () if item.alias}


def _output_column(item, kind: str, scope: Scope) -> ScopeColumn:
    """Result column: alias, else column name, else the expression's text."""
    expr = item.expr
    origin: tuple[str, ...] = ()
    dates = False
    if isinstance(expr, ColumnRef):
        source = scope.columns[scope.resolve(expr)]
        origin = source.qualifiers[:1]
        name = item.alias or expr.name
        dates = source.dates   # a DATY column's values, read through a view or subquery
    else:
        name = item.alias or item.text or expression_text(expr)
    return ScopeColumn(name, origin, kind, dates)


def _projector(items, compiled: list[Compiled], scope: Scope):
    """rows -> projected rows; plain column lists use itemgetter (C speed)."""
    if all(isinstance(item.expr, ColumnRef) for item in items):
        take = relational.row_getter([scope.resolve(item.expr) for item in items])
        return lambda rows: list(map(take, rows))
    functions = [c.function for c in compiled]
    if len(functions) == 1:
        (only,) = functions
        return lambda rows: [[only(row)] for row in rows]
    return lambda rows: [[f(row) for f in functions] for row in rows]


def _equi_join_plan(condition: Expr, left: Scope, right: Scope, combined: Scope,
                    codes: CodeCache | None) -> relational.EquiJoin | None:
    """Hash keys from the `=` conjuncts that compare one side with the other."""
    parts = conjuncts(condition)
    # Names are resolved as in the combined row (ambiguity is judged over
    # both sides), then mapped to the index within each side's row.
    left_scope = _SideScope(combined, left.columns, 0)
    right_scope = _SideScope(combined, right.columns, left.width)
    left_keys, right_keys, rest = [], [], []
    for conjunct in parts:
        sides = _equality_sides(conjunct, left.width, combined)
        if sides is None:
            rest.append(conjunct)
            continue
        left_expr, right_expr = sides
        left_compiled = compile_expression(left_expr, RowContext(left_scope, "ka"), codes)
        right_compiled = compile_expression(right_expr, RowContext(right_scope, "ka"), codes)
        if left_compiled.kind != VALUE or right_compiled.kind != VALUE:
            rest.append(conjunct)
            continue
        left_keys.append((left_expr, left_compiled))
        right_keys.append((right_expr, right_compiled))
    if not left_keys:
        return None
    residual = None
    if rest:
        expr = rest[0]
        for more in rest[1:]:
            expr = _and(expr, more)
        residual = compile_condition(expr, RowContext(combined, "ka"), "ka", codes=codes)
    return relational.EquiJoin(_key_function(left_keys, left_scope),
                               _key_function(right_keys, right_scope),
                               len(left_keys) == 1, residual)


class _SideScope:
    """One side of a join: names resolve in the combined scope, indexes in the side."""

    def __init__(self, combined: Scope, columns: list[ScopeColumn], offset: int):
        self.combined = combined
        self.columns = columns
        self.offset = offset

    def resolve(self, ref: ColumnRef) -> int:
        return self.combined.resolve(ref) - self.offset


def _and(left: Expr, right: Expr) -> Expr:
    return Binary("ary", left, right)


def _equality_sides(expr: Expr, left_width: int, combined: Scope):
    """(left-side expr, right-side expr) if `expr` is `=` across the sides."""
    if not (isinstance(expr, Binary) and expr.op == "="):
        return None
    if contains_aggregate(expr):
        return None
    a_sides = {combined.resolve(ref) < left_width for ref in column_refs(expr.left)}
    b_sides = {combined.resolve(ref) < left_width for ref in column_refs(expr.right)}
    if a_sides == {True} and b_sides == {False}:
        return expr.left, expr.right
    if a_sides == {False} and b_sides == {True}:
        return expr.right, expr.left
    return None


def _key_function(keys: list[tuple[Expr, Compiled]], scope: ColumnResolver):
    """One key value for one equality, a tuple for several (itemgetter for columns)."""
    refs = [expr for expr, _ in keys if isinstance(expr, ColumnRef)]
    if len(refs) == len(keys):
        return relational.key_getter([scope.resolve(ref) for ref in refs])
    functions = [compiled.function for _, compiled in keys]
    if len(functions) == 1:
        return functions[0]
    return lambda row: tuple([f(row) for f in functions])


def _natural_loop(left_rows, right_rows, left_keys, right_keys, take, limits):
    """Natural join by nested loops, for shared columns that may hold booleans."""
    if len(left_rows) * len(right_rows) > limits.max_join_comparisons:
        raise TahiryError(
            f"Be loatra ny andalana tokony ampitahaina ({len(left_rows)} x {len(right_rows)}) "
            "amin'ny tonona:natoraly.")
    out = []
    pairs = list(zip(left_keys, right_keys, strict=True))
    first = 1 + 4096 // max(1, len(right_rows))
    for piece in relational.pieces(left_rows, len(left_rows), limits, first):
        for left_row in piece:
            for right_row in right_rows:
                if all(values.eq(left_row[i], right_row[j]) is True for i, j in pairs):
                    out.append(left_row + take(right_row))
            if len(out) > limits.max_result_rows:
                raise relational.too_many_join_rows(limits)
    return out
