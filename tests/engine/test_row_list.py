"""RowList (engine/storage/row_list.py): a big table's rows grown by inserts without a copy.

Unit tests against a plain list as the model, then the store and the
language over tables past one chunk: every version keeps its own rows, and
whatever a statement reads gives what it gives over a plain list.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.session import Session
from engine.storage import journal
from engine.storage.atomic_files import encode_document
from engine.storage.object_format import decode_document
from engine.storage.row_list import (
    CHUNK,
    RowList,
    encode_default,
    rows_with,
    rows_without,
    search_positions,
)
from engine.storage.store import Store


def rows_of(first: int, count: int) -> list[list]:
    return [[value, f"r{value}"] for value in range(first, first + count)]


# A base and up to five inserts, sized around the chunk's edges.
SIZES = st.sampled_from([0, 1, 2, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3, 3])


@settings(max_examples=60, deadline=None)
@given(base=SIZES, inserts=st.lists(SIZES, max_size=5))
def test_a_row_list_reads_like_the_list_it_stands_for(base, inserts):
    model = rows_of(0, base)
    rows: RowList | list = model
    versions = []
    for count in inserts:
        added = rows_of(len(model), count)
        rows = RowList.plus(rows, added)
        model = model + added
        versions.append((rows, model))
    for version, expected in versions:
        assert len(version) == len(expected)
        assert list(version) == expected
        assert list(reversed(version)) == expected[::-1]
        assert version == expected and expected == version and version == RowList.plus(expected, [])
        for index in (0, 1, CHUNK - 1, CHUNK, len(expected) - 1, -1, -len(expected)):
            if -len(expected) <= index < len(expected):
                assert version[index] is expected[index]
        for wrong in (len(expected), -len(expected) - 1):
            with pytest.raises(IndexError):
                version[wrong]
        for part in (slice(None), slice(1, CHUNK + 2), slice(CHUNK - 1, None),
                     slice(None, None, 7), slice(-3, None), slice(5, 2)):
            assert version[part] == expected[part] and type(version[part]) is list
        assert orjson.loads(orjson.dumps(version, default=encode_default)) == expected


def test_every_slice_and_index_kind_is_the_list_s():
    model = rows_of(0, 5 * CHUNK - 3)
    rows = RowList.plus(model[:4 * CHUNK], model[4 * CHUNK:])
    bounds = [None, 0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, len(model) - 1, len(model),
              len(model) + 5, -1, -CHUNK, -len(model) - 2]
    for start in bounds:
        for stop in bounds:
            for step in (None, 1, 2, 3, -1, -5):
                assert rows[start:stop:step] == model[start:stop:step], (start, stop, step)
    assert rows[True] is model[1] and rows[False] is model[0]
    with pytest.raises(TypeError):
        rows["1"]


def test_growing_shares_every_full_chunk_and_leaves_the_version_before_alone():
    first = RowList.plus(rows_of(0, 3 * CHUNK + 10), [])
    before = list(first)
    second = RowList.plus(first, rows_of(3 * CHUNK + 10, 5))
    assert list(first) == before, "the version grown from is unchanged"
    assert len(second) == len(first) + 5 and second[-1] == [3 * CHUNK + 14, f"r{3 * CHUNK + 14}"]
    assert all(mine is theirs for mine, theirs in zip(second._chunks[:3], first._chunks[:3], strict=True)), \
        "full chunks are shared, not copied"
    assert second._chunks[3] is not first._chunks[3], "the partial chunk is the new version's own"


def test_extend_owned_grows_in_place():
    rows = RowList.plus(rows_of(0, CHUNK + 1), [])
    rows.extend_owned(rows_of(CHUNK + 1, CHUNK))
    assert list(rows) == rows_of(0, 2 * CHUNK + 1)


def test_a_document_with_a_row_list_is_written_as_a_plain_list():
    rows = RowList.plus(rows_of(0, CHUNK + 2), rows_of(CHUNK + 2, 3))
    encoded = encode_document({"name": "t", "rows": rows})
    assert decode_document(encoded, "t") == {"name": "t", "rows": rows_of(0, CHUNK + 5)}


def test_a_journal_of_appends_shares_a_big_table_s_chunks_and_anything_else_is_a_list():
    big = rows_of(0, CHUNK)
    appended = journal.apply(big, [["append", rows_of(CHUNK, 2)]], 2)
    assert type(appended) is RowList and appended == rows_of(0, CHUNK + 2) and len(big) == CHUNK
    changed = journal.apply(appended, [["set", [[0, [-1, "x"]]]]], 2)
    assert type(changed) is list and changed[0] == [-1, "x"] and appended[0] == [0, "r0"]
    small = journal.apply(rows_of(0, 3), [["append", rows_of(3, 1)]], 2)
    assert type(small) is list and small == rows_of(0, 4)


# -- point writes: replace or remove a few rows, find row objects -------------------------


def versions_of(size: int) -> list:
    """The same rows as a plain list and as a RowList."""
    rows = rows_of(0, size)
    return [rows, RowList.plus(rows, [])]


@settings(max_examples=60, deadline=None)
@given(size=SIZES.filter(bool), data=st.data())
def test_replacing_and_removing_rows_give_what_the_list_gives(size, data):
    positions = data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=6, unique=True))
    positions.sort()
    for rows in versions_of(size):
        copy_before = list(rows)
        changes = [(position, [-position, "new"]) for position in positions]
        replaced = rows_with(rows, changes)
        model = list(rows)
        for position, row in changes:
            model[position] = row
        assert list(replaced) == model and len(replaced) == size
        kept = rows_without(rows, positions)
        assert list(kept) == [row for i, row in enumerate(copy_before) if i not in positions]
        assert len(kept) == size - len(positions)
        assert list(rows) == copy_before, "the version before is left as it was"
        if type(kept) is RowList:   # every chunk full but the last: indexes still work
            assert [kept[i] for i in range(len(kept))] == list(kept)


@settings(max_examples=150, deadline=None)
@given(size=SIZES, data=st.data())
def test_a_chain_of_writes_keeps_every_version_as_it_was(size, data):
    """Inserts, updates, deletes and in-place growth (a batch's own version) in any order:
    each version reads as its list model, indexes and slices included, and no later
    version changes it, whatever chunks they share (partly filled ones too)."""
    rows: list | RowList = rows_of(0, size)
    versions = [(rows, list(rows))]
    made = size
    for _ in range(data.draw(st.integers(1, 12))):
        kind = data.draw(st.sampled_from(["plus", "with", "without", "own"]))
        if kind == "plus" or not rows:
            count = data.draw(st.sampled_from([1, 3, CHUNK - 1, CHUNK + 2]))
            rows = RowList.plus(rows, rows_of(made, count))
            made += count
        elif kind == "with":
            places = data.draw(st.lists(st.integers(0, len(rows) - 1), min_size=1, max_size=4,
                                        unique=True))
            rows = rows_with(rows, [(place, [-place, "set"]) for place in places])
        elif kind == "without":
            places = sorted(data.draw(st.lists(
                st.integers(0, len(rows) - 1), min_size=1,
                max_size=min(len(rows), data.draw(st.sampled_from([3, CHUNK + 5]))), unique=True)))
            rows = rows_without(rows, places)
        elif type(rows) is RowList:   # a batch grows the version it just made
            rows.extend_owned(rows_of(made, 2))
            made += 2
            versions.pop()
        versions.append((rows, list(rows)))
        for version, model in versions:
            assert list(version) == model and len(version) == len(model)
            assert list(reversed(version)) == model[::-1]
        probes = [0, len(model) // 2, len(model) - 1, -1, CHUNK - 1, CHUNK, CHUNK + 1]
        for probe in (p for p in probes if -len(model) <= p < len(model)):
            assert rows[probe] == model[probe]
        for start, stop in ((0, CHUNK + 3), (CHUNK - 2, 2 * CHUNK + 1), (-5, None), (3, 2)):
            assert rows[start:stop] == model[start:stop]
        if model:
            wanted = sorted({0, len(model) - 1, len(model) // 3})
            assert search_positions(rows, [rows[i] for i in wanted]) == wanted


def test_a_delete_emptying_the_last_chunk_owns_the_partly_filled_one_before_it():
    first = rows_without(RowList.plus(rows_of(0, 3 * CHUNK), []), [CHUNK + 1])  # chunk 1 partial
    second = rows_with(first, [(0, ["x", "y"])])   # shares that partial chunk with `first`
    models = [list(first), list(second)]
    third = rows_without(second, list(range(2 * CHUNK - 1, 3 * CHUNK - 1)))   # all of chunk 2
    assert len(third) == 2 * CHUNK - 1
    third.extend_owned(rows_of(10_000, 5))   # the batch grows the version it made
    assert [list(first), list(second)] == models
    assert list(third) == models[1][:2 * CHUNK - 1] + rows_of(10_000, 5)


def test_replacing_copies_only_the_chunks_it_changes():
    rows = RowList.plus(rows_of(0, 3 * CHUNK), [])
    replaced = rows_with(rows, [(CHUNK + 5, ["x", "y"])])
    assert replaced._chunks[0] is rows._chunks[0] and replaced._chunks[2] is rows._chunks[2]
    assert replaced._chunks[1] is not rows._chunks[1] and rows[CHUNK + 5] == [CHUNK + 5, f"r{CHUNK + 5}"]
    removed = rows_without(rows, [2 * CHUNK + 1])
    assert removed._chunks[:2] == rows._chunks[:2] and removed._chunks[0] is rows._chunks[0]


def test_a_version_made_by_a_point_write_grows_in_place_without_touching_the_one_before():
    # A batch grows its own version in place (store._rows_plus, extend_owned): its last,
    # partly filled chunk must be its own, whatever made that version.
    rows = RowList.plus(rows_of(0, 2 * CHUNK + 5), [])
    copy_before = list(rows)
    for made in (rows_with(rows, [(0, ["x", "y"])]), rows_without(rows, [3])):
        made.extend_owned(rows_of(10_000, 3))
        assert list(rows) == copy_before and len(list(rows)) == len(rows)


@settings(max_examples=60, deadline=None)
@given(size=SIZES.filter(bool), data=st.data())
def test_search_finds_the_very_row_objects_even_among_equal_rows(size, data):
    # Every row equal to every other: only identity tells them apart.
    rows = [["same"] for _ in range(size)]
    wanted = sorted(data.draw(st.lists(st.integers(0, size - 1), max_size=5, unique=True)))
    for version in (rows, RowList.plus(rows, [])):
        assert search_positions(version, [version[i] for i in wanted]) == wanted
        assert search_positions(version, [["same"]]) is None, "an equal row is not this row"
        if len(wanted) > 1:   # out of table order: not found
            assert search_positions(version, [version[wanted[1]], version[wanted[0]]]) is None


# -- a store and a session over a table past one chunk -------------------------------------

BIG = 3 * CHUNK + 7
COLUMNS = "(id ISA(0,null), k ISA(0,null), w LAHATSORATRA(null,null))"


def values(first: int, count: int) -> str:
    return ", ".join(f"({i}, {i % 7}, 'w{i % 13}')" for i in range(first, first + count))


def session_on(path, *scripts) -> Session:
    session = Session(Store(path, journal_writes=True))
    for script in ("manamboara tahiry db; ampiasao db;", *scripts):
        outcomes = session.execute(script)
        assert all(o.ok for o in outcomes), [o.message for o in outcomes if not o.ok]
    return session


@pytest.fixture
def grown(tmp_path):
    """Table t built by one big insert, then 40 one-row inserts (each a new version)."""
    session = session_on(tmp_path / "grown", f"manamboara tabilao t {COLUMNS};",
                         f"manampia ao@ t sanda {values(0, BIG)};")
    for i in range(BIG, BIG + 40):
        assert session.execute_one(f"manampia ao@ t sanda {values(i, 1)};").ok
    return session


def test_each_insert_leaves_the_version_read_before_it_as_it_was(grown):
    store = grown.store
    before = store.read("db", "table", "t")
    rows_before = before["rows"]
    copy_before = list(rows_before)
    assert grown.execute_one(f"manampia ao@ t sanda {values(10_000, 2)};").ok
    after = store.read("db", "table", "t")["rows"]
    assert type(after) is RowList, "a big table's insert shares its rows"
    assert list(rows_before) == copy_before and len(rows_before) == BIG + 40
    assert len(after) == BIG + 42 and after[-1] == [10_001, 10_001 % 7, f"w{10_001 % 13}"]


STATEMENTS = [
    "alaivo * ao@ t;",
    "alaivo * ao@ t rehefa id = 5;",
    f"alaivo * ao@ t rehefa id = {BIG + 39};",
    "alaivo id, w ao@ t rehefa k = 3 fetra 10;",
    f"alaivo * ao@ t fetra {CHUNK - 2} {CHUNK + 3};",
    "alaivo k, count(id) antso n ao@ t vondrona (k) alaharo k;",
    "alaivo * ao@ t alaharo id midina fetra 5;",
    "alaivo a.id ao@ t antso a tonona@ t antso b ka a.id = b.k rehefa a.id < 3;",
    "alaivo id ao@ t rehefa k = 1 ankambana alaivo id ao@ t rehefa k = 2;",
    "alaivo count(*) ao@ (alaivo * ao@ t rehefa w = 'w3') antso x;",
]


def test_queries_give_over_grown_rows_what_they_give_over_one_plain_list(grown, tmp_path):
    plain = session_on(tmp_path / "plain", f"manamboara tabilao t {COLUMNS};",
                       f"manampia ao@ t sanda {values(0, BIG + 40)};")
    assert type(plain.store.read("db", "table", "t")["rows"]) is list
    for statement in STATEMENTS:
        mine, theirs = grown.execute_one(statement), plain.execute_one(statement)
        assert mine.ok and theirs.ok, (statement, mine.message, theirs.message)
        assert (mine.message, mine.relation.rows) == (theirs.message, theirs.relation.rows), statement
    for change in ("havaozy t ova w = 'x' rehefa k = 2;", "fafao ao@ t rehefa k = 4;",
                   f"manampia ao@ t sanda {values(20_000, 3)};"):
        assert grown.execute_one(change).message == plain.execute_one(change).message
    again = "alaivo * ao@ t;"
    assert grown.execute_one(again).relation.rows == plain.execute_one(again).relation.rows


def test_a_grown_table_is_written_and_read_back_whole(grown, tmp_path):
    grown.store.checkpoint_all()
    reopened = Session(Store(tmp_path / "grown"))
    reopened.current_database = "db"
    rows = reopened.execute_one("alaivo id ao@ t;").relation.rows
    assert [row[0] for row in rows] == list(range(BIG + 40))
