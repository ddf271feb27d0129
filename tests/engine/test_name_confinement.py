"""Every name that reaches the filesystem stays inside the data directory.

Through the engine's one entry point (`Session.execute`) and through the
`Store` API directly: `..`, separators, NUL, absolute paths, over-long
names, and symlinks placed in the data directory that lead outside. Each
attempt is a clean `Hadisoana : ` error and changes nothing, inside the data
directory or outside it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ERROR_PREFIX, TahiryError
from engine.language.messages import WORDS, translate
from engine.session import Session
from engine.storage.store import Store, validate_name


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under root (symlinks not followed) with file contents."""
    found: dict[str, bytes | None] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            found[str(path.relative_to(root))] = (
                path.read_bytes() if path.is_file() and not path.is_symlink() else None)
    return found


@pytest.fixture
def place(tmp_path):
    """tmp_path/data (the store) and tmp_path/outside (must never change)."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep.txt").write_text("mine")
    store = Store(tmp_path / "data", durable=False)
    session = Session(store)
    for statement in ("manamboara tahiry db", "ampiasao db",
                      "manamboara tabilao t (a ISA(null,null))", "manampia ao@ t sanda (1)"):
        assert session.execute_one(statement).ok
    return tmp_path, store, session


def assert_refused(session: Session, statement: str) -> str:
    outcome = session.execute_one(statement)
    assert not outcome.ok, statement
    assert outcome.message.startswith(ERROR_PREFIX)
    assert "Traceback" not in outcome.message
    return outcome.message


HOSTILE_STATEMENTS = [
    "ampiasao ..",
    "ampiasao ../outside",
    "ampiasao /etc",
    "manamboara tahiry ..",
    "manamboara tahiry ../x",
    "manamboara tahiry a/b",
    "manamboara tahiry 'x'",
    "manamboara tahiry a\\b",
    "manamboara tahiry a\0b",
    "manamboara tabilao ../../x (a ISA(1,2))",
    "manamboara tabilao ../outside/t (a ISA(1,2))",
    "manamboara tabilao \"../x\" (a ISA(1,2))",
    "manamboara tabilao x\0y (a ISA(1,2))",
    "manamboara efitra ../d (ISA(1,2))",
    "manamboara jery ../v @ alaivo 1",
    "manampia ao@ ../../x sanda (1)",
    "alaivo * ao@ ../t",
    "alaivo * ao@ db/t",
    "havaozy ../t ova a = 1",
    "fafao ao@ ../t",
    "ravao ny tabilao ../t",
    "ravao ny tahiry ..",
    "ravao ny tahiry /tmp",
    "manamboara tahiry " + "a" * 300,
    "manamboara tabilao " + "b" * 300 + " (a ISA(1,2))",
]


@pytest.mark.parametrize("statement", HOSTILE_STATEMENTS,
                         ids=[f"s{i}" for i in range(len(HOSTILE_STATEMENTS))])
def test_hostile_names_in_statements_are_refused_and_change_nothing(place, statement):
    tmp_path, _, session = place
    before = tree(tmp_path)
    assert_refused(session, statement)
    assert tree(tmp_path) == before
    assert session.execute_one("alaivo * ao@ t").relation.rows == [[1]]


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", "a\0b", "/abs", "x" * 129,
                                  "é" * 101, "1abc", "a b", "a.json", ".hidden", "~", "a\n"])
def test_validate_name_refuses_unsafe_names(name):
    with pytest.raises(TahiryError) as caught:
        validate_name(name, "table")
    assert caught.value.message.startswith(ERROR_PREFIX)


@pytest.mark.parametrize("name, kind, word", [("à" * 128, "table", "tabilao"),
                                              ("名" * 70, "view", "jery"),
                                              ("x" * 129, "column", "tsanganana")])
def test_a_name_too_long_is_told_both_limits_and_its_kind(name, kind, word):
    """128 'à' are 128 characters but 256 bytes: "(max 128 litera)" named the wrong limit;
    a column was "a name"."""
    with pytest.raises(TahiryError) as caught:
        validate_name(name, kind)
    assert f"ho {word} (max 128 litera sy 200 bytes UTF-8)" in caught.value.message
    english = translate(caught.value.message, "en")
    assert english.endswith("(max 128 characters and 200 UTF-8 bytes)"), english
    assert f"for a {WORDS[word]} (" in english


@pytest.mark.parametrize("method, args", [
    ("create_database", ("..",)),
    ("create_database", ("../escape",)),
    ("write", ("db", "table", "../../escape", {"columns": [], "rows": []})),
    ("write", ("..", "table", "t", {"columns": [], "rows": []})),
    ("write", ("db", "view", "a/b", {"query": "alaivo 1"})),
    ("read", ("db", "table", "../../outside/keep")),
    ("drop", ("db", "table", "..")),
    ("drop_database", ("/tmp",)),
    ("list_objects", ("..", "table")),
])
def test_store_api_refuses_unsafe_names(place, method, args):
    tmp_path, store, _ = place
    before = tree(tmp_path)
    with pytest.raises(TahiryError):
        getattr(store, method)(*args)
    assert tree(tmp_path) == before


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_accepted_name_stays_inside_the_root(tmp_path_factory, name):
    root = tmp_path_factory.getbasetemp() / "confinement-root"
    store = Store(root, durable=False)
    try:
        path = store.object_path("db", "table", name)
    except TahiryError:
        return
    real = os.path.realpath(path)
    assert real.startswith(os.path.realpath(root) + os.sep)
    assert Path(real).parent == Path(os.path.realpath(root)) / "db" / "tables"


# --------------------------------------------------------------------------
# Symlinks placed in the data directory


def outside_database(tmp_path: Path) -> Path:
    """A database folder outside the data directory, with a table `t` in it."""
    source = tmp_path / "elsewhere"
    store = Store(source, durable=False)
    session = Session(store)
    for statement in ("manamboara tahiry hafa", "ampiasao hafa",
                      "manamboara tabilao t (a ISA(null,null))", "manampia ao@ t sanda (99)"):
        assert session.execute_one(statement).ok
    return source / "hafa"


def test_symlinked_database_folder_is_neither_used_nor_written(place):
    tmp_path, _, session = place
    target = outside_database(tmp_path)
    os.symlink(target, tmp_path / "data" / "evil")
    before = tree(tmp_path / "elsewhere")
    assert_refused(session, "ampiasao evil")
    assert_refused(session, "manamboara tahiry evil")
    assert_refused(session, "ravao ny tahiry evil")
    assert ["evil"] not in session.execute_one("asehoy ny tahiry").relation.rows
    assert tree(tmp_path / "elsewhere") == before


def test_creating_a_database_over_a_symlink_makes_no_folder_outside(place):
    tmp_path, _, session = place
    os.symlink(tmp_path / "outside", tmp_path / "data" / "hafa")
    assert_refused(session, "manamboara tahiry hafa")
    assert sorted(p.name for p in (tmp_path / "outside").iterdir()) == ["keep.txt"]


def test_symlinked_tables_folder_is_neither_read_nor_written(place):
    tmp_path, _, session = place
    target = outside_database(tmp_path) / "tables"
    assert session.execute_one("manamboara tahiry db2").ok
    tables = tmp_path / "data" / "db2" / "tables"
    tables.rmdir()
    os.symlink(target, tables)
    before = tree(tmp_path / "elsewhere")
    assert session.execute_one("ampiasao db2").ok
    assert session.execute_one("asehoy ny tabilao").relation.rows == []
    assert_refused(session, "alaivo * ao@ t")
    assert_refused(session, "manampia ao@ t sanda (5)")
    assert_refused(session, "manamboara tabilao u (a ISA(1,2))")
    assert_refused(session, "ravao ny tabilao t")
    assert tree(tmp_path / "elsewhere") == before


def test_symlinked_table_file_is_not_read(place):
    tmp_path, _, session = place
    target = outside_database(tmp_path) / "tables" / "t.json"
    os.symlink(target, tmp_path / "data" / "db" / "tables" / "stolen.json")
    before = tree(tmp_path / "elsewhere")
    assert ["stolen"] not in session.execute_one("asehoy ny tabilao").relation.rows
    assert_refused(session, "alaivo * ao@ stolen")
    assert_refused(session, "manampia ao@ stolen sanda (1)")
    assert tree(tmp_path / "elsewhere") == before


def test_stale_temp_cleanup_never_follows_a_symlinked_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    bait = outside / ".x.json.abc.tmp"
    bait.write_text("not yours")
    os.utime(bait, (0, 0))
    (tmp_path / "data" / "db").mkdir(parents=True)
    os.symlink(outside, tmp_path / "data" / "db" / "tables")
    Store(tmp_path / "data", durable=False).remove_stale_temp_files(0)
    assert bait.exists()


def test_only_real_folders_below_the_root_skip_the_long_containment_check(tmp_path):
    """`is_plain_folder` (one lstat per part) says yes only when no part below the root is a symlink."""
    store = Store(tmp_path / "data")
    session = Session(store)
    assert session.execute_one("manamboara tahiry db").ok
    reader = store._reader
    root = store.root
    tables = store.object_path("db", "table", "t").parent
    assert reader.is_plain_folder(tables)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", root / "link")
    os.symlink(root / "db", root / "inside")
    for folder in (root / "link", root / "inside" / tables.name, root / "missing",
                   root / "db" / ".." / "db", tmp_path / "elsewhere", root):
        assert not reader.is_plain_folder(folder), folder
    assert session.execute_one("ampiasao db").ok
    assert session.execute_one("manamboara tabilao t (a ISA(0,null))").ok
    os.rename(root / "db" / tables.name, tmp_path / "elsewhere" / "tables")
    os.symlink(tmp_path / "elsewhere" / "tables", tables)
    assert not reader.is_plain_folder(tables)
    assert_refused(session, "manampia ao@ t sanda (5)")
