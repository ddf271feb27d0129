"""Relational operators over lists of rows: joins, grouping, set operators, sorting.

Everything here works on plain rows (lists) with precompiled functions; no
AST and no name resolution (engine/evaluation/query.py does that and engine/evaluation/expressions.py
compiles). Joins and grouping hash whenever the condition allows; nested
loops are only used for join conditions without any equality between the
two sides. Sizes are checked against `QueryLimits` before or while rows are
produced, so a runaway query fails cleanly instead of exhausting memory.

The time limit (`QueryLimits.deadline`), and a cancellation (`QueryLimits.cancel`:
a server's client went away, or an administrator stopped the query), are tested inside every loop over rows,
not only between operators: loops run in parts of adaptive size (`pieces`,
`in_parts`, `filter_rows`, `map_rows`) with one clock reading per part, so a
query stops within milliseconds of its deadline whatever one row costs, and a
cheap row pays next to nothing. A sort, which cannot be interrupted, is
refused up front when it would end past the deadline (`_sorted`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain, islice, repeat
from operator import itemgetter
from typing import Any

from engine.errors import TahiryError
from engine.evaluation import values

Row = list
RowFunction = Callable[[list], object]


@dataclass(frozen=True)
class QueryLimits:
    """Safety limits of one query evaluation."""

    max_result_rows: int = 5_000_000          # rows of any intermediate or final result
    max_join_comparisons: int = 50_000_000    # row pairs a nested-loop join may test
    max_nesting: int = 32                     # views and derived tables inside each other
    max_seconds: float | None = 30.0          # wall clock of one query evaluation
    deadline: float | None = None             # set per evaluation from max_seconds (monotonic)
    # Set by whoever runs the query when its answer is no longer wanted (a server: the
    # client left); tested where the deadline is, so the query ends within milliseconds.
    cancel: threading.Event | None = None

    def started(self) -> QueryLimits:
        """These limits with the deadline of an evaluation starting now."""
        if self.max_seconds is None or self.deadline is not None:
            return self
        # The constructor directly: dataclasses.replace costs several times more.
        return QueryLimits(self.max_result_rows, self.max_join_comparisons, self.max_nesting,
                           self.max_seconds, time.monotonic() + self.max_seconds, self.cancel)


DEFAULT_LIMITS = QueryLimits()


class QueryStopped(TahiryError):
    """The whole query was stopped (its time limit, or nobody waits for it): said as it is,
    wherever the evaluation was (inside a view's query too)."""


def out_of_time(limits: QueryLimits) -> TahiryError:
    """The error of an evaluation that ran past its time limit."""
    return QueryStopped(
        f"Ela loatra ny fangatahana : mihoatra ny {limits.max_seconds:g} segondra. "
        "Ampio fepetra (rehefa, ka) na fetra.")


class Cancel(threading.Event):
    """A query's cancellation (`QueryLimits.cancel`) that says why it was set: its client
    went away (`set`), or an administrator stopped it (`stop`, which may be taken back
    with `resume` once the statement it was meant for has ended)."""

    def __init__(self) -> None:
        super().__init__()
        self.by_administrator = False
        # stop and set come from a server's event loop, resume from its engine thread.
        self._changing = threading.Lock()

    def stop(self) -> None:
        with self._changing:
            if not self.is_set():
                self.by_administrator = True
                super().set()

    def set(self) -> None:
        with self._changing:
            self.by_administrator = False
            super().set()

    def resume(self) -> None:
        """Clear a stop by an administrator (never a client gone: that one stays)."""
        with self._changing:
            if self.by_administrator:
                self.by_administrator = False
                self.clear()


def cancelled(cancel: threading.Event | None = None) -> TahiryError:
    """The error of an evaluation stopped because nobody waits for its answer any more,
    or because an administrator stopped it (`Cancel.stop`)."""
    if isinstance(cancel, Cancel) and cancel.by_administrator:
        return QueryStopped("Najanon'ny mpitantana ny fangatahana.")
    return QueryStopped("Najanona ny fangatahana : tsy miandry ny valiny intsony ny mpangataka.")


def check_deadline(limits: QueryLimits) -> None:
    """Refuse to go on once the evaluation ran past its deadline, or was cancelled
    (checked between operators and between the parts of every row loop: a query is
    never interrupted mid-write)."""
    if limits.deadline is not None and time.monotonic() > limits.deadline:
        raise out_of_time(limits)
    if limits.cancel is not None and limits.cancel.is_set():
        raise cancelled(limits.cancel)


# Row loops run in parts, the deadline tested after each (`pieces`): a part
# starts at _FIRST_PART rows (fewer where one row is known to cost much), and
# doubles while parts take under _QUICK_PART seconds, up to _MAX_PART rows; one
# that took over _SLOW_PART seconds makes the next one as much smaller. So a
# part lasts a few milliseconds whatever a row costs, and testing the clock
# costs next to nothing. Parts are taken from one iterator (`islice`, the
# last one the iterator itself): slicing the rows into lists would cost more
# than the loop of a cheap filter.
_FIRST_PART = 256
_MAX_PART = 65_536
_QUICK_PART = 0.005
_SLOW_PART = 0.05


def pieces(rows: Iterable, count: int, limits: QueryLimits,
           first: int = _FIRST_PART) -> Iterator[Iterable]:
    """`rows` (`count` of them) in successive pieces, the deadline tested before
    the first piece and after each one; without a deadline, `rows` itself.

    Each piece but the last is an `islice` of one iterator over `rows`; the
    last is that iterator itself, so a cheap loop pays for no extra layer.
    """
    deadline = limits.deadline
    if deadline is None:
        yield rows
        return
    cancel = limits.cancel
    last = time.monotonic()
    if last > deadline:
        raise out_of_time(limits)
    rest = iter(rows)
    size = max(1, first)
    while count > 0:
        yield rest if count <= size else islice(rest, size)
        count -= size
        now = time.monotonic()
        if now > deadline:
            raise out_of_time(limits)
        if cancel is not None and cancel.is_set():
            raise cancelled(cancel)
        took = now - last
        if took < _QUICK_PART:
            if size < _MAX_PART:
                size *= 2
        elif took > _SLOW_PART:
            size = max(1, int(size * _QUICK_PART / took))
        last = now


def in_parts(rows: Collection, limits: QueryLimits, work: Callable[[Iterable], list],
             first: int = _FIRST_PART) -> list:
    """`work(rows)` (a list built row by row from an iterable of rows), done
    part by part with the deadline tested between parts (`pieces`); in one go
    when `rows` is small."""
    if limits.deadline is None or len(rows) <= first:
        return work(rows)
    out: list = []
    for piece in pieces(rows, len(rows), limits, first):
        out += work(piece)
    return out


def filter_rows(predicate: RowFunction, rows: list, limits: QueryLimits) -> list:
    """The rows for which `predicate` is true, the deadline tested between parts."""
    if limits.deadline is None or len(rows) <= _FIRST_PART:
        return list(filter(predicate, rows))
    out: list = []
    for piece in pieces(rows, len(rows), limits):
        out += filter(predicate, piece)
    return out


def map_rows(function: Callable[[Any], Any], rows: Collection, limits: QueryLimits) -> list:
    """`function` of every row, the deadline tested between parts."""
    if limits.deadline is None or len(rows) <= _FIRST_PART:
        return list(map(function, rows))
    out: list = []
    for piece in pieces(rows, len(rows), limits):
        out += map(function, piece)
    return out


def too_many_rows(limits: QueryLimits, count: int | None = None) -> TahiryError:
    shown = f" ({count})" if count is not None else ""
    return TahiryError(
        f"Be loatra ny andalana ho an'ny valiny{shown} : {limits.max_result_rows} "
        "ny fetra farany ambony. Ampio fepetra (rehefa, ka) na fetra.")


def too_many_join_rows(limits: QueryLimits, count: int | None = None) -> TahiryError:
    """A join too large to build: only `ka` helps (`rehefa` and `fetra` come after it).

    `count`: the join's rows when known before building it (None: it was stopped as it
    grew past the limit, its `ka` tested on each pair)."""
    shown = f" ({count})" if count is not None else ""
    return TahiryError(
        f"Be loatra ny andalana ho an'ny fitambarana (tonona){shown} : "
        f"{limits.max_result_rows} ny fetra farany ambony. Ny fepetra 'ka' ihany no "
        "manakely ny fitambarana (ny 'rehefa' sy ny 'fetra' dia ampiharina aoriany) : "
        "ampifandraiso amin'ny tsanganana manavaka ny andalana (ohatra : ka x.id = y.id).")


def check_size(rows: list, limits: QueryLimits) -> list:
    if len(rows) > limits.max_result_rows:
        raise too_many_rows(limits, len(rows))
    check_deadline(limits)
    return rows


def check_join_size(rows: list, limits: QueryLimits) -> list:
    """`check_size` for a join's rows: the error says only `ka` makes it smaller."""
    if len(rows) > limits.max_result_rows:
        raise too_many_join_rows(limits, len(rows))
    check_deadline(limits)
    return rows


def row_getter(indexes: list[int]) -> Callable[[list], list]:
    """A function returning a new list of the values at `indexes`."""
    if not indexes:
        return lambda row: []
    if len(indexes) == 1:
        (index,) = indexes
        return lambda row: [row[index]]
    getter = itemgetter(*indexes)
    return lambda row: list(getter(row))


def key_getter(indexes: list[int]) -> Callable[[list], object]:
    """A hashable key of the values at `indexes` (the value itself for one)."""
    if len(indexes) == 1:
        return itemgetter(indexes[0])
    return itemgetter(*indexes)


def _has_null(key: Any, single: bool) -> bool:
    """Whether a join key holds a NULL: the value itself (`single`), else a tuple of values."""
    return key is None if single else None in key


# --------------------------------------------------------------------------
# Joins


@dataclass
class EquiJoin:
    """A join plan: hash keys on each side, plus a residual condition.

    left_key / right_key compute the key of a row of each side (a value for
    one equality, a tuple for several). residual, if any, is a filter over
    the combined row (left + right).
    """

    left_key: RowFunction
    right_key: RowFunction
    single: bool
    residual: RowFunction | None = None


def cross_join(left: list, right: list, limits: QueryLimits) -> list:
    if len(left) * len(right) > limits.max_result_rows:
        raise too_many_join_rows(limits, len(left) * len(right))
    return in_parts(left, limits,
                    lambda part: [left_row + right_row for left_row in part for right_row in right],
                    _rows_per_part(len(right)))


def _rows_per_part(width: int) -> int:
    """The first part's left rows when each one meets `width` right rows."""
    return max(1, _FIRST_PART * 16 // max(1, width))


def _buckets(rows: list, keys: list, single: bool, limits: QueryLimits) -> dict:
    """key -> rows with that key; rows whose key holds a NULL are left out."""
    table: dict = {}
    get = table.get
    for piece in pieces(zip(rows, keys, strict=True), len(rows), limits):
        if single:
            for row, key in piece:
                bucket = get(key)
                if bucket is None:
                    table[key] = [row]
                else:
                    bucket.append(row)
        else:
            for row, key in piece:
                if None in key:
                    continue
                bucket = get(key)
                if bucket is None:
                    table[key] = [row]
                else:
                    bucket.append(row)
    if single:
        table.pop(None, None)
    return table


def _check_total(keys: list, table: dict, default: tuple, limits: QueryLimits) -> None:
    """Fail before building a join result that would be too large."""
    total = sum(map(len, map(table.get, keys, repeat(default))))
    if total > limits.max_result_rows:
        raise too_many_join_rows(limits, total)


def hash_join(kind: str, left: list, right: list, plan: EquiJoin,
              left_width: int, right_width: int, limits: QueryLimits) -> list:
    """inner / left / right / full join on equal keys; NULL keys never match.

    Without a residual condition the whole join is one flat comprehension:
    a missing key yields the padding row for outer joins (the dict lookup's
    default), so no per-row Python frame runs.
    """
    if plan.residual is not None:
        return _filtered_hash_join(kind, left, right, plan, left_width, right_width, limits)
    single = plan.single
    left_keys = map_rows(plan.left_key, left, limits)
    right_keys = map_rows(plan.right_key, right, limits)
    if kind == "right":
        table = _buckets(left, left_keys, single, limits)
        default: tuple[list, ...] = ([None] * left_width,)
        _check_total(right_keys, table, default, limits)
        get = table.get
        out: list = []
        for piece in pieces(zip(right, right_keys, strict=True), len(right), limits):
            out += [left_row + right_row
                    for right_row, key in piece
                    for left_row in get(key, default)]
        return check_join_size(out, limits)
    table = _buckets(right, right_keys, single, limits)
    default = () if kind == "inner" else ([None] * right_width,)
    _check_total(left_keys, table, default, limits)
    get = table.get
    out = []
    for piece in pieces(zip(left, left_keys, strict=True), len(left), limits):
        out += [left_row + right_row
                for left_row, key in piece
                for right_row in get(key, default)]
    if kind == "full":
        seen = set(left_keys)
        pad_left = [None] * left_width
        for piece in pieces(zip(right, right_keys, strict=True), len(right), limits):
            out += [pad_left + right_row
                    for right_row, key in piece
                    if _has_null(key, single) or key not in seen]
    return check_join_size(out, limits)


def _filtered_hash_join(kind: str, left: list, right: list, plan: EquiJoin,
                        left_width: int, right_width: int, limits: QueryLimits) -> list:
    """Hash join whose matches must also pass a residual condition."""
    if kind == "right":
        swapped = EquiJoin(plan.right_key, plan.left_key, plan.single,
                           _swap_residual(plan.residual, left_width, right_width))
        rows = _filtered_hash_join("left", right, left, swapped, right_width, left_width,
                                   limits)
        return in_parts(rows, limits,
                        lambda part: [row[right_width:] + row[:right_width] for row in part])
    buckets: dict = defaultdict(list)
    single = plan.single
    right_keys = map_rows(plan.right_key, right, limits)
    for index, key in enumerate(right_keys):
        if not _has_null(key, single):
            buckets[key].append(index)
    get = dict(buckets).get  # plain dict: lookups of absent keys must not insert
    left_keys = map_rows(plan.left_key, left, limits)
    residual = plan.residual
    assert residual is not None  # hash_join sends only plans with a residual here
    maximum = limits.max_result_rows
    out: list = []
    right_matched = bytearray(len(right)) if kind == "full" else None
    pad_right = [None] * right_width
    # Parts of left rows, each first part's row meeting about the average bucket.
    first = _rows_per_part(len(right) // max(1, len(buckets)))
    for piece in pieces(zip(left, left_keys, strict=True), len(left), limits, first):
        for left_row, key in piece:
            found = get(key)
            hit = False
            if found is not None:
                for i in found:
                    row = left_row + right[i]
                    if residual(row):
                        out.append(row)
                        hit = True
                        if right_matched is not None:
                            right_matched[i] = 1
                if len(out) > maximum:
                    raise too_many_join_rows(limits)
            if not hit and kind != "inner":
                out.append(left_row + pad_right)
    if right_matched is not None:
        _append_unmatched_right(out, right, right_matched, left_width)
    return check_join_size(out, limits)


def _swap_residual(residual: RowFunction | None, left_width: int,
                   right_width: int) -> RowFunction | None:
    """The residual condition for rows laid out right + left."""
    if residual is None:
        return None
    return lambda row: residual(row[right_width:] + row[:right_width])


def _append_unmatched_right(out: list, right: list, matched: bytearray,
                            left_width: int) -> None:
    pad_left = [None] * left_width
    out += [pad_left + right_row for right_row, hit in zip(right, matched, strict=True) if not hit]


def loop_join(kind: str, left: list, right: list, condition: RowFunction,
              left_width: int, right_width: int, limits: QueryLimits) -> list:
    """Nested loops for conditions with no equality between the two sides."""
    if len(left) * len(right) > limits.max_join_comparisons:
        raise TahiryError(
            f"Be loatra ny andalana tokony ampitahaina ({len(left)} x {len(right)}) "
            "amin'ny tonona tsy misy '=' eo amin'ny andaniny roa.")
    maximum = limits.max_result_rows
    out: list = []
    right_matched = bytearray(len(right)) if kind in ("right", "full") else None
    pad_right = [None] * right_width
    for piece in pieces(left, len(left), limits, _rows_per_part(len(right))):
        for left_row in piece:
            hit = False
            for index, right_row in enumerate(right):
                row = left_row + right_row
                if condition(row):
                    out.append(row)
                    hit = True
                    if right_matched is not None:
                        right_matched[index] = 1
            if len(out) > maximum:
                raise too_many_join_rows(limits)
            if not hit and kind in ("left", "full"):
                out.append(left_row + pad_right)
    if right_matched is not None:
        _append_unmatched_right(out, right, right_matched, left_width)
    return check_join_size(out, limits)


# --------------------------------------------------------------------------
# Grouping and aggregates


@dataclass
class AggregateSpec:
    """One aggregate call: function name, argument (None for count(*)), text."""

    function: str
    argument: RowFunction | None
    text: str


def _numbers_only(found: list, spec: AggregateSpec) -> None:
    kinds = set(map(type, found))
    if not kinds <= {int, float}:
        bad = next(v for v in found if type(v) not in (int, float))
        raise TahiryError(
            f"Ny {spec.text} dia mila isa, fa {values.type_name(bad)} ny "
            f"{values.describe_value(bad)}.")


def _checked_sum(found: list, spec: AggregateSpec) -> int | float:
    _numbers_only(found, spec)
    try:
        total = sum(found)
    except OverflowError:  # an integer too large to become a float
        total = math.inf
    if not -values.MAX_NUMBER <= total <= values.MAX_NUMBER:
        raise TahiryError(f"Lehibe loatra ny valin'ny {spec.text}.")
    return total


def _present(argument: RowFunction, group: list, cache: dict, limits: QueryLimits) -> list:
    """The non-NULL argument values of one group, shared by aggregates of one argument."""
    found = cache.get(argument)
    if found is None:
        # A small group's rows count in group_rows' budget.
        found = list(map(argument, group)) if len(group) <= _GROUP_ROWS else \
            map_rows(argument, group, limits)
        if None in found:
            found = [v for v in found if v is not None]
        cache[argument] = found
    return found


def compute_aggregate(spec: AggregateSpec, group: list, cache: dict | None = None,
                      limits: QueryLimits = DEFAULT_LIMITS) -> object:
    """The aggregate over the rows of one group; NULLs are skipped."""
    argument = spec.argument
    if argument is None:
        return len(group)
    found = _present(argument, group, {} if cache is None else cache, limits)
    function = spec.function
    if function == "count":
        return len(found)
    if not found:
        return None
    if function == "sum":
        return _checked_sum(found, spec)
    if function == "avg":
        return values.div(_checked_sum(found, spec), len(found))
    try:
        kind = values.sortable_kind(found)
    except TahiryError as error:
        raise TahiryError(f"{spec.text} : {error.sentence}") from None
    if kind == "boolean":
        raise TahiryError(f"Tsy azo alahatra ny booléen ao amin'ny {spec.text}.")
    if kind == "mixed":
        return (min if function == "min" else max)(found, key=values.mixed_key)
    return min(found) if function == "min" else max(found)


def group_rows(rows: list, key: RowFunction | None, group_indexes: list[int],
               aggregates: list[AggregateSpec], limits: QueryLimits = DEFAULT_LIMITS) -> list:
    """One output row per group: the grouping values, then each aggregate.

    key None means no `vondrona`: the whole input is one group, even empty.
    The deadline is tested between parts of the rows (keys, a large group's
    aggregate arguments) and after every _GROUP_ROWS rows of small groups.
    """
    if key is None:
        groups: Iterable[list] = [rows]
    else:
        partition: dict = defaultdict(list)
        for piece in pieces(rows, len(rows), limits):
            for row in piece:
                partition[key(row)].append(row)
        groups = partition.values()
    take = row_getter(group_indexes)
    out = []
    budget = _GROUP_ROWS
    for group in groups:
        head = take(group[0]) if group_indexes else []
        cache: dict = {}
        out.append(head + [compute_aggregate(spec, group, cache, limits) for spec in aggregates])
        budget -= len(group) * (len(aggregates) + 1)
        if budget < 0:
            check_deadline(limits)
            budget = _GROUP_ROWS
    return out


# Rows (times aggregates) of small groups between two tests of the deadline.
_GROUP_ROWS = 4096


# --------------------------------------------------------------------------
# Set operators


def _tagged(row: list) -> tuple:
    """A row's key where a boolean never equals the number 1."""
    return tuple((type(v) is bool, v) for v in row)


def set_operation(op: str, left: list, right: list, tagged: bool,
                  limits: QueryLimits) -> list:
    """union / intersect: distinct rows; except: distinct left rows not in right.

    Rows are deduplicated by hashing tuples (5 and 5.0 are one value). With
    `tagged`, some column may mix booleans and numbers, and keys carry the type.
    """
    if op not in ("union", "intersect", "except"):
        raise TahiryError(f"Tsy fantatra ny fandidiana '{op}'.")
    if tagged:
        return _tagged_set_operation(op, left, right, limits)
    # One C-level pass over each side; `pieces` tests the deadline between parts.
    left_rows = chain.from_iterable(pieces(left, len(left), limits))
    right_rows = chain.from_iterable(pieces(right, len(right), limits))
    if op == "union":
        distinct = dict.fromkeys(map(tuple, chain(left_rows, right_rows)))
        return check_size(map_rows(list, distinct, limits), limits)
    in_right = set(map(tuple, right_rows))
    distinct_left = dict.fromkeys(map(tuple, left_rows))
    check_deadline(limits)
    if op == "intersect":
        kept = [key for key in distinct_left if key in in_right]
    else:
        kept = [key for key in distinct_left if key not in in_right]
    return map_rows(list, kept, limits)


def _tagged_set_operation(op: str, left: list, right: list, limits: QueryLimits) -> list:
    chosen: dict = {}
    for piece in pieces(left, len(left), limits):
        for row in piece:
            chosen.setdefault(_tagged(row), row)
    if op == "union":
        for piece in pieces(right, len(right), limits):
            for row in piece:
                chosen.setdefault(_tagged(row), row)
        return check_size(map_rows(list, chosen.values(), limits), limits)
    in_right = set(map_rows(_tagged, right, limits))
    keep = op == "intersect"
    check_deadline(limits)
    return map_rows(list, [row for key, row in chosen.items() if (key in in_right) == keep],
                    limits)


# --------------------------------------------------------------------------
# Ordering and limits


def sort_rows(rows: list, keys: list[tuple[RowFunction, bool, str]],
              limits: QueryLimits = DEFAULT_LIMITS) -> list:
    """Stable sort by (function, descending, text) keys; NULLs first ascending."""
    for function, descending, text in reversed(keys):
        column = map_rows(function, rows, limits)
        try:
            kind = values.sortable_kind(column)
        except TahiryError as error:
            raise TahiryError(f"alaharo {text} : {error.sentence}") from None
        key: Callable[[int], Any] = column.__getitem__
        if kind == "mixed":
            key = _mixed_getter(column)
        if None in column:
            nulls = [i for i, v in enumerate(column) if v is None]
            present = [i for i, v in enumerate(column) if v is not None]
            present = _sorted(present, key, descending, limits)
            order = present + nulls if descending else nulls + present
        else:
            order = _sorted(range(len(rows)), key, descending, limits)
        rows = map_rows(rows.__getitem__, order, limits)
    return rows


def _mixed_getter(column: list) -> Callable[[int], Any]:
    mixed_key = values.mixed_key
    return lambda index: mixed_key(column[index])


# A sort cannot be interrupted. Up to _SORT_AT_ONCE rows it takes a fraction
# of a second; a longer one first sorts its first _SORT_SAMPLE rows, and stops
# there when the whole sort, estimated from that part, would end past the
# deadline (sorting the rest joined to that sorted part then costs little more
# than the plain sort would).
_SORT_AT_ONCE = 1 << 19
_SORT_SAMPLE = 1 << 16


def _sorted(indexes: Any, key: Callable[[int], Any], descending: bool,
            limits: QueryLimits) -> list:
    """`sorted(indexes, key=key, reverse=descending)`, refused at once (the time
    limit's error) when it would end past the deadline.

    The part sorted first holds the earliest rows, so among equal keys they
    stay first, as in one stable sort.
    """
    count = len(indexes)
    deadline = limits.deadline
    if deadline is None or count <= _SORT_AT_ONCE:
        order = sorted(indexes, key=key, reverse=descending)
        check_deadline(limits)
        return order
    started = time.monotonic()
    if started > deadline:
        raise out_of_time(limits)
    order = sorted(indexes[:_SORT_SAMPLE], key=key, reverse=descending)
    now = time.monotonic()
    estimate = ((now - started) * count / _SORT_SAMPLE
                * math.log2(count) / math.log2(_SORT_SAMPLE))
    if now + estimate > deadline:
        raise out_of_time(limits)
    order += indexes[_SORT_SAMPLE:]
    order.sort(key=key, reverse=descending)
    check_deadline(limits)
    return order


def apply_limit(rows: list, start: int, stop: int) -> list:
    """`fetra A B`: rows A to B-1 (0-based), like Python's range."""
    return rows[start:stop]


def natural_join(left: list, right: list, plan: EquiJoin,
                 take_right: Callable[[list], list], limits: QueryLimits) -> list:
    """Inner join on equal keys, keeping only `take_right(r)` of each right row."""
    left_keys = map_rows(plan.left_key, left, limits)
    right_keys = map_rows(plan.right_key, right, limits)
    table = _buckets(map_rows(take_right, right, limits), right_keys, plan.single, limits)
    _check_total(left_keys, table, (), limits)
    get = table.get
    out: list = []
    for piece in pieces(zip(left, left_keys, strict=True), len(left), limits):
        out += [left_row + right_row
                for left_row, key in piece
                for right_row in get(key, ())]
    return check_size(out, limits)
