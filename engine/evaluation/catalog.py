"""One database's tables, views and domains, as the query evaluator sees them.

The evaluator reads through the `Catalog` protocol only; `DatabaseCatalog`
implements it over a `Store` (engine/storage/store.py). Rows handed out here are
shared with the store's cache: readers must never mutate them.

A `TableData` read through `DatabaseCatalog` lives as long as the version
of the file it was decoded from stays in the store's cache (it is kept in
that cache entry's memo), so what it derives lazily -- the equality indexes
of engine/evaluation/equality_lookup.py -- is built once per version of the table and
dropped with it.

A write does not start the next version from nothing: when the store commits
a table's row changes (its journal ops) on top of a cached version, it asks
that version's memo for successors (engine/storage/document_cache.py,
`derive_memo`), and `TableData.successor` derives the new version's indexes
from the old ones, costing the rows changed instead of the table
(`EqualityIndex.derive`). The old version's indexes are never changed:
readers that still hold it keep seeing exactly that version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from engine.collector import LASTING_ROWS, lasting_build
from engine.errors import TahiryError
from engine.evaluation.row_positions import RowPositions, fold_limit
from engine.language.ast import Query, SelectExpr
from engine.language.hints import name_hint
from engine.storage.row_list import search_positions


@dataclass(frozen=True)
class ColumnInfo:
    """A table column: its name and its domain as JSON atoms (see domains.py)."""

    name: str
    domain: list[dict]


class _NotDerivable(Exception):
    """A change whose effect on an index is not known cheaply: that index is built again."""


class EqualityIndex:
    """{value: the rows holding it in one column, in table order}; NULLs left out.

    Read like a dict (`get`). Never changed once built, since readers on
    other threads may hold it: the next version of the table gets its own
    index from `derive`, sharing this one's base dict and copying only the
    delta, the buckets changed since that base (an empty bucket: no row
    holds the value any more).
    """

    __slots__ = ("_base", "_delta")

    def __init__(self, base: dict[object, list[list]], delta: dict[object, list[list]] | None = None):
        self._base = base
        self._delta = delta if delta is not None else {}

    @classmethod
    def build(cls, rows: list[list], column: int) -> EqualityIndex:
        """The index of `column` over `rows`, from scratch (one list per distinct value)."""
        index: dict[object, list[list]] = {}
        # It lives as long as this version: kept out of later collections.
        with lasting_build(len(rows) >= LASTING_ROWS):
            for row in rows:
                value = row[column]
                if value is not None:
                    bucket = index.get(value)
                    if bucket is None:
                        index[value] = [row]
                    else:
                        bucket.append(row)
        return cls(index)

    def get(self, value: object, default: list[list] | None = None) -> list[list] | None:
        """The rows holding `value` (dict rules: 5 and 5.0 are one key), else `default`."""
        delta = self._delta
        if delta:
            bucket = delta.get(value)
            if bucket is not None:
                return bucket if bucket else default
        return self._base.get(value, default)

    def as_dict(self) -> dict[object, list[list]]:
        """The whole index as one plain dict (what `build` gives, key order aside)."""
        merged = dict(self._base)
        for value, bucket in self._delta.items():
            if bucket:
                merged[value] = bucket
            else:
                merged.pop(value, None)
        return merged

    def derive(self, column: int, rows_before: list[list], ops: list | tuple,
               rows_after: int, count_before: int | None = None) -> EqualityIndex | None:
        """The index of the version that `ops` make of `rows_before` (this index's rows).

        `ops` are a table's row changes as its journal has them
        (engine/storage/journal.py: append, set, remove), `rows_after` the
        new version's row count (a check). `count_before`: how many of
        `rows_before` this index covers when the list has grown since (a
        batch's own rows, extended in place; default: all). Appends cost the rows added; a
        set or remove finds the old row in its bucket by identity (rows of
        one version are distinct objects). None when the effect is not known
        cheaply -- a row moved into a bucket that already holds other rows
        (where it goes in table order is not known here), a set or remove
        after a remove in one entry, a row not found exactly once, ops that
        do not fit -- and the caller builds that index again on first use.
        """
        delta = dict(self._delta)
        owned: set[object] = set()   # values whose bucket in `delta` is this derivation's list

        def bucket(value: object) -> list[list]:
            if value in owned:
                return delta[value]
            found = self.get(value)
            fresh = delta[value] = list(found) if found else []
            owned.add(value)
            return fresh

        base_count = len(rows_before) if count_before is None else count_before
        appended: list[list] = []           # rows added, as they stand now
        replaced: dict[int, list] = {}      # base positions set to another row
        count = base_count
        shifted = False                     # a remove moved the positions after it

        def current(position: object) -> list:
            if type(position) is not int or not 0 <= position < count:
                raise _NotDerivable
            if position >= base_count:
                return appended[position - base_count]
            row = replaced.get(position)
            return rows_before[position] if row is None else row

        try:
            for kind, items in ops:
                if kind == "append":
                    for row in items:
                        value = row[column]
                        if value is not None:
                            bucket(value).append(row)
                    appended.extend(items)
                    count += len(items)
                elif shifted:
                    raise _NotDerivable
                elif kind == "set":
                    for position, row in items:
                        old = current(position)
                        _replaced_in_buckets(bucket, old, row, column)
                        if position >= base_count:
                            appended[position - base_count] = row
                        else:
                            replaced[position] = row
                elif kind == "remove":
                    for position in items:
                        old = current(position)
                        if old[column] is not None:
                            left = bucket(old[column])
                            del left[_only_position(left, old)]
                    count -= len(items)
                    shifted = True
                else:
                    raise _NotDerivable
        except (_NotDerivable, IndexError, KeyError, TypeError, ValueError):
            return None
        if count != rows_after:
            return None
        if len(delta) > fold_limit(len(self._base)):
            return EqualityIndex(EqualityIndex(self._base, delta).as_dict())
        return EqualityIndex(self._base, delta)


def _replaced_in_buckets(bucket, old: list, new: list, column: int) -> None:
    """The buckets after row `old` became `new` at the same position (_NotDerivable if unknown)."""
    old_value, new_value = old[column], new[column]
    if old_value is not None and new_value is not None and old_value == new_value:
        same = bucket(old_value)   # same key (dict rules): same place in the same bucket
        same[_only_position(same, old)] = new
        return
    if old_value is not None:
        left = bucket(old_value)
        del left[_only_position(left, old)]
    if new_value is not None:
        target = bucket(new_value)
        if target:
            raise _NotDerivable   # its place among those rows is not known here
        target.append(new)


def _only_position(bucket: list[list], row: list) -> int:
    """Where `row` (this very object) is in `bucket`; _NotDerivable unless exactly once."""
    ids = [*map(id, bucket)]
    if ids.count(id(row)) != 1:
        raise _NotDerivable
    return ids.index(id(row))


@dataclass
class TableData:
    """A table as read from disk. `rows` must not be mutated by readers."""

    name: str
    columns: list[ColumnInfo]
    rows: list[list]
    _indexes: dict[int, EqualityIndex] = field(default_factory=dict, repr=False, compare=False)
    _positions: RowPositions | None = field(default=None, repr=False, compare=False)
    # A point write searched this version's rows (no map): the next version builds one.
    _searched: bool = field(default=False, repr=False, compare=False)
    _map_due: bool = field(default=False, repr=False, compare=False)

    def equality_index(self, column: int) -> EqualityIndex:
        """The equality index of `column` (`EqualityIndex`: value -> rows in table order).

        Built on first use, or derived from the previous version's when this
        one came from `successor`, and kept with this object. Two threads may
        build it at the same time; either result is the same.
        """
        index = self._indexes.get(column)
        if index is None:
            index = self._indexes[column] = EqualityIndex.build(self.rows, column)
        return index

    def positions_of(self, wanted: list[list]) -> list[int] | None:
        """The positions of the row objects `wanted` (rows of this version, in table order);
        None if one is not found.

        From this version's map of positions (engine/evaluation/row_positions.py),
        derived from the previous version's. Without one they are found by a
        search in C (`row_list.search_positions`: it costs the rows before
        them), and the map is built (costing the whole table once, at C
        speed) by the second point write in a row that finds none: the
        versions after it derive theirs.
        """
        positions = self._positions
        if positions is None:
            if not self._map_due:
                self._searched = True
                return search_positions(self.rows, wanted)
            positions = self._positions = RowPositions.build(self.rows)
        return positions.positions_of(self.rows, wanted)

    def successor(self, document: dict, ops: list | tuple) -> TableData:
        """The TableData of `document`, the version the row changes `ops` make of this one.

        Called by the store when it commits them (engine/storage/document_cache.py,
        `derive_memo`): the indexes this version built are derived, not built
        again; one that cannot be (see `EqualityIndex.derive`) is built on
        first use. This version and its indexes are left as they are.
        """
        table = table_from_document(document)
        if table.columns != self.columns:
            return table
        # The same columns object: what readers keep per table shape
        # (engine/session.py's plans, by identity) stays valid across writes.
        table.columns = self.columns
        count_before = len(self.rows)
        if table.rows is self.rows:
            # A batch's own row list grown in place by an INSERT (store._rows_plus):
            # this version's rows are its first ones, those before the appends.
            if any(kind != "append" for kind, _ in ops):
                return table
            count_before -= sum(len(items) for _, items in ops)
        for column, index in self._indexes.copy().items():
            derived = index.derive(column, self.rows, ops, len(table.rows), count_before)
            if derived is not None:
                table._indexes[column] = derived
        if self._positions is not None:
            table._positions = self._positions.derive(ops, table.rows)
        table._map_due = self._searched
        return table


class Catalog(Protocol):
    """What the evaluator needs from a database."""

    @property
    def database(self) -> str | None:
        """The database's name (None: no database chosen, a query of constants)."""

    def table(self, name: str) -> TableData | None:
        """The table called `name`, or None if there is none."""

    def view_query(self, name: str) -> SelectExpr | None:
        """The parsed query of the view called `name`, or None."""


class DatabaseCatalog:
    """The `Catalog` of one database, read through a `Store`.

    Every lookup goes to the store, whose cache re-validates files with
    `os.stat`, so a table replaced on disk is seen by the next statement.
    View queries are parsed with the session's parser (LRU-cached by text).
    """

    def __init__(self, store, database: str, parser):
        self.store = store
        self.database = database
        self._parser = parser

    def table(self, name: str) -> TableData | None:
        entry = self.store.read_with_memo(self.database, "table", name)
        return None if entry is None else memoized_table(*entry)

    def view_query(self, name: str) -> SelectExpr | None:
        document = self.store.read(self.database, "view", name)
        if document is None:
            return None
        return parse_view_text(self._parser, document["query"])

    def object_names(self) -> list[str]:
        """The names of the database's tables and views (for "did you mean")."""
        return (self.store.list_objects(self.database, "table")
                + self.store.list_objects(self.database, "view"))


class NoSuchTable(TahiryError):
    """A table or view that does not exist: the language's missing-table error, given as it
    is even when a view's query meets it (docs/LANGUAGE.md: the view then fails at use with it)."""


def no_such_table(database: str | None, name: str, names: Iterable[str] = ()) -> TahiryError:
    """The error for a missing table or view `name`, with a hint among `names` (its neighbours)."""
    return NoSuchTable(f"La table {database}.{name} n'as pas été trouvé" + name_hint(name, names))


def memoized_table(document: dict, memo: dict) -> TableData:
    """The TableData of a table's document, kept in the memo of its version (see above)."""
    table = memo.get("table")
    if table is None:
        table = memo["table"] = table_from_document(document)
    return table


def table_from_document(document: dict) -> TableData:
    """A TableData sharing the document's rows (no copy)."""
    columns = [ColumnInfo(column["name"], column["domain"]) for column in document["columns"]]
    return TableData(document["name"], columns, document["rows"])


def parse_view_text(parser, text: str) -> SelectExpr:
    """Parse a stored view query (SELECT_EXPR source text) into its AST."""
    statement = parser.parse(text)
    if not isinstance(statement, Query):
        raise TahiryError("Ny fangatahana voatahiry ao amin'ny jery dia tsy alaivo")
    return statement.select
