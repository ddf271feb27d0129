"""Session + executor: manampia, havaozy, fafao; atomicity, domains, limits."""

import os

import orjson
import pytest

from engine.evaluation.executor import Limits
from engine.session import Session
from engine.storage.journal import journal_path
from engine.storage.object_format import decode_document
from engine.storage.object_state import current_document
from engine.storage.store import Store
from tests.engine.sessionkit import one, rows, run

CHANGED = "Tafinditra ny fiovana ny tabilao"


def table_file(tmp_path, name="t"):
    return tmp_path / "data" / "sekoly" / "tables" / f"{name}.json"


def assert_refused_and_unchanged(session, tmp_path, text, fragment):
    """`text` fails with `fragment` in its message and table t's file keeps its bytes."""
    before = table_file(tmp_path).read_bytes()
    outcome = one(session, text)
    assert not outcome.ok
    assert fragment in outcome.message
    assert table_file(tmp_path).read_bytes() == before


def make_session(tmp_path, limits=None):
    session = Session(Store(tmp_path / "data"), limits=limits)
    run(session, "manamboara tahiry sekoly; ampiasao sekoly;"
                 "manamboara tabilao t (id ISA(0,100), anarana LAHATSORATRA(1,10), daty DATY);")
    return session


@pytest.fixture
def session(tmp_path):
    return make_session(tmp_path)


# ------------------------------------------------------------------ INSERT

def test_insert_values_message_and_rows(session):
    assert run(session, "manampia ao@ t sanda (1, 'a', '2024-01-02'), (2, \"b\", null);") == [
        f"{CHANGED} (2 andalana)"]
    assert rows(session, "alaivo * ao@ t;") == [[1, "a", "2024-01-02"], [2, "b", None]]


def test_insert_negative_numbers_and_expressions(session):
    run(session, "manampia ao@ t sanda (-0 + 3 * 2, 'x', null);")
    assert rows(session, "alaivo id ao@ t;") == [[6]]
    outcome = one(session, "manampia ao@ t sanda (-1, 'x', null);")
    assert outcome.message == ("Hadisoana : Ny sanda -1 dia tsy mifanaraka amin'ny efitra "
                               "ISA(0,100) an'ny tsanganana 'id'")


def test_insert_with_column_list_matched_case_insensitively_and_nulls(session):
    assert run(session, "manampia ao@ t (ANARANA, Id) sanda ('z', 7);") == [
        f"{CHANGED} (1 andalana)"]
    assert rows(session, "alaivo * ao@ t;") == [[7, "z", None]]


def test_insert_with_empty_column_list_means_all_columns(session):
    run(session, "manampia ao@ t () sanda (1, 'a', '2000-02-29');")
    assert rows(session, "alaivo * ao@ t;") == [[1, "a", "2000-02-29"]]


@pytest.mark.parametrize("text,fragment", [
    ("manampia ao@ t (id, ID) sanda (1, 2);", "'ID' dia voatonona indroa"),
    ("manampia ao@ t (tsisy) sanda (1);", "Le champ 'tsisy' n'existe pas dans la relation."),
    ("manampia ao@ t sanda (1, 'a');", "isan'ny sanda (2) sy ny tsanganana (3)"),
    ("manampia ao@ t (id) sanda (1, 2);", "isan'ny sanda (2) sy ny tsanganana voatonona (1) "
                                          "ho an'ny tabilao t"),
    ("manampia ao@ t (id) alaivo 1, 2;", "2 avy amin'ny alaivo, 1 voatonona ho an'ny tabilao t"),
    ("manampia ao@ tsisy sanda (1);", "La table sekoly.tsisy n'as pas été trouvé"),
    ("manampia ao@ t sanda (1, '', null);", "LAHATSORATRA(1,10)"),
    ("manampia ao@ t sanda (1, 'a', '2023-02-30');", "DATY"),
    ("manampia ao@ t sanda (1 = 1, 'a', null);", "bool"),
    ("manampia ao@ t sanda (1 / 0, 'a', null);", "Hadisoana : "),
    ("manampia ao@ t sanda ('1' + 1, 'a', null);", "Hadisoana : "),
    ("manampia ao@ t sanda (id, 'a', null);", "Hadisoana : "),
])
def test_insert_errors_write_nothing(session, tmp_path, text, fragment):
    assert_refused_and_unchanged(session, tmp_path, text, fragment)


def test_insert_is_atomic_when_a_later_row_fails(session, tmp_path):
    run(session, "manampia ao@ t sanda (1, 'a', null);")
    before = table_file(tmp_path).read_bytes()
    outcome = one(session, "manampia ao@ t sanda (2, 'b', null), (3, 'c', null), (300, 'd', null);")
    assert outcome.message == ("Hadisoana : Ny sanda 300 dia tsy mifanaraka amin'ny efitra "
                               "ISA(0,100) an'ny tsanganana 'id' (Andalana faha-3 amin'ny sanda.)")
    assert table_file(tmp_path).read_bytes() == before
    assert rows(session, "alaivo id ao@ t;") == [[1]]


def test_insert_select(session):
    run(session, "manamboara tabilao s (n ISA(null,null), label LAHATSORATRA(null,null));"
                 "manampia ao@ s sanda (1, 'x'), (2, 'y'), (200, 'z');")
    assert run(session, "manampia ao@ t (id, anarana) alaivo n, label ao@ s rehefa n < 100;") == [
        f"{CHANGED} (2 andalana)"]
    assert rows(session, "alaivo * ao@ t;") == [[1, "x", None], [2, "y", None]]
    outcome = one(session, "manampia ao@ t (id, anarana) alaivo n, label ao@ s;")
    assert "ISA(0,100)" in outcome.message and "200" in outcome.message
    outcome = one(session, "manampia ao@ t alaivo n ao@ s;")
    assert not outcome.ok and "1" in outcome.message and "3" in outcome.message
    assert len(rows(session, "alaivo * ao@ t;")) == 2


def test_insert_select_from_the_same_table_doubles_it(session):
    run(session, "manampia ao@ t sanda (1, 'a', null), (2, 'b', null);")
    assert run(session, "manampia ao@ t alaivo * ao@ t;") == [f"{CHANGED} (2 andalana)"]
    assert rows(session, "alaivo id ao@ t;") == [[1], [2], [1], [2]]


def test_insert_limit_is_a_clean_error(tmp_path):
    session = make_session(tmp_path, Limits(max_insert_rows=2))
    outcome = one(session, "manampia ao@ t (id) sanda (1), (2), (3);")
    assert not outcome.ok and "Be loatra" in outcome.message
    assert run(session, "manampia ao@ t (id) sanda (1), (2);") == [f"{CHANGED} (2 andalana)"]


def test_table_row_limit_is_a_clean_error(tmp_path):
    session = make_session(tmp_path, Limits(max_table_rows=3))
    run(session, "manampia ao@ t (id) sanda (1), (2);")
    assert not one(session, "manampia ao@ t (id) sanda (3), (4);").ok
    assert len(rows(session, "alaivo * ao@ t;")) == 2


def test_writing_into_a_view_is_an_error(session, tmp_path):
    run(session, "manamboara jery v @ alaivo * ao@ t;")
    for text in ("manampia ao@ v sanda (1, 'a', null);", "havaozy v ova id = 1;",
                 "fafao ao@ v;"):
        outcome = one(session, text)
        assert not outcome.ok and "jery : v" in outcome.message, text
    assert not table_file(tmp_path, "v").exists()


def test_change_counter_grows_with_each_write(session, tmp_path):
    change = current_document(table_file(tmp_path))["change"]
    run(session, "manampia ao@ t (id) sanda (1); manampia ao@ t (id) sanda (2);")
    assert current_document(table_file(tmp_path))["change"] == change + 2


# ------------------------------------------------------------------ UPDATE

@pytest.fixture
def filled(session):
    run(session, "manampia ao@ t sanda (1, 'a', '2024-01-01'), (2, 'b', null), (3, 'c', null);")
    return session


def test_update_keeps_positions(filled):
    assert run(filled, "havaozy t ova anarana = 'B' rehefa id = 2;") == [f"{CHANGED} (1 andalana)"]
    assert rows(filled, "alaivo id, anarana ao@ t;") == [[1, "a"], [2, "B"], [3, "c"]]


def test_update_all_rows_and_right_sides_see_the_old_row(filled):
    run(filled, "manamboara tabilao p (x ISA(null,null), y ISA(null,null));"
                "manampia ao@ p sanda (1, 2), (3, 4);")
    assert run(filled, "havaozy p ova x = y, y = x;") == [f"{CHANGED} (2 andalana)"]
    assert rows(filled, "alaivo * ao@ p;") == [[2, 1], [4, 3]]


def test_update_targets_are_case_insensitive(filled):
    run(filled, "havaozy t ova ID = id + 10 rehefa id = 1;")
    assert rows(filled, "alaivo id ao@ t;") == [[11], [2], [3]]


def test_update_without_match_changes_nothing(filled, tmp_path):
    before = table_file(tmp_path).read_bytes()
    assert run(filled, "havaozy t ova id = 0 rehefa id > 50;") == [f"{CHANGED} (0 andalana)"]
    assert table_file(tmp_path).read_bytes() == before


@pytest.mark.parametrize("text,fragment", [
    ("havaozy t ova id = id * 50;", "ISA(0,100) an'ny tsanganana 'id'"),
    ("havaozy t ova id = 1, Id = 2;", "'Id' dia voatonona indroa"),
    ("havaozy t ova tsisy = 1;", "Le champ 'tsisy' n'existe pas dans la relation."),
    ("havaozy t ova id = 1 rehefa tsisy = 1;", "Le champ 'tsisy' n'existe pas"),
    ("havaozy t ova id = 10 / (id - 2);", "Hadisoana : "),
    ("havaozy t ova daty = '2024-13-01' rehefa id = 1;", "DATY"),
    ("havaozy t ova id = anarana;", "ISA(0,100)"),
    ("havaozy tsisy ova id = 1;", "La table sekoly.tsisy n'as pas été trouvé"),
    ("havaozy t ova id = 1 rehefa anarana + 1 < 1;", "Hadisoana : "),
    ("havaozy t ova id = 1 rehefa 1;", "Hadisoana : "),
])
def test_update_errors_write_nothing(filled, tmp_path, text, fragment):
    assert_refused_and_unchanged(filled, tmp_path, text, fragment)


def test_unknown_column_in_where_is_an_error_even_on_an_empty_table(session):
    assert not one(session, "fafao ao@ t rehefa tsisy = 1;").ok
    assert not one(session, "havaozy t ova id = 1 rehefa tsisy = 1;").ok


# ------------------------------------------------------------------ DELETE

def test_delete_with_condition(filled):
    assert run(filled, "fafao ao@ t rehefa id >= 2;") == [f"{CHANGED} (2 andalana)"]
    assert rows(filled, "alaivo id ao@ t;") == [[1]]


def test_delete_null_test(filled):
    assert run(filled, "fafao ao@ t rehefa daty dia null;") == [f"{CHANGED} (2 andalana)"]
    assert rows(filled, "alaivo id ao@ t;") == [[1]]


def test_delete_everything(filled):
    assert run(filled, "fafao ao@ t;") == [f"{CHANGED} (3 andalana)"]
    assert rows(filled, "alaivo * ao@ t;") == []


def test_delete_errors_write_nothing(filled, tmp_path):
    before = table_file(tmp_path).read_bytes()
    for text in ("fafao ao@ t rehefa id / 0 = 1;", "fafao ao@ t rehefa anarana + 1 > 1;",
                 "fafao ao@ tsisy;"):
        assert not one(filled, text).ok, text
    assert table_file(tmp_path).read_bytes() == before


# ------------------------------------------------------------------ files

def test_next_statement_sees_a_file_replaced_by_another_process(filled, tmp_path):
    assert len(rows(filled, "alaivo * ao@ t;")) == 3
    path = table_file(tmp_path)
    document = decode_document(path.read_bytes(), path)
    document["rows"] = [[42, "r", None]]
    document["change"] += 1
    temp = path.parent / ".t.json.repl.tmp"
    temp.write_bytes(orjson.dumps(document))
    os.replace(temp, path)
    assert rows(filled, "alaivo * ao@ t;") == [[42, "r", None]]
    run(filled, "manampia ao@ t (id) sanda (43);")
    assert rows(filled, "alaivo id ao@ t;") == [[42], [43]]


def test_failed_write_on_disk_is_a_clean_error_and_leaves_the_file(filled, tmp_path, monkeypatch):
    before = table_file(tmp_path).read_bytes()
    journal_before = journal_path(table_file(tmp_path)).read_bytes()

    def disk_full(descriptor, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)   # the journal append's write
    outcome = one(filled, "manampia ao@ t (id) sanda (9);")
    monkeypatch.undo()
    assert not outcome.ok and outcome.message.startswith("Hadisoana : Tsy voasoratra")
    assert table_file(tmp_path).read_bytes() == before
    assert journal_path(table_file(tmp_path)).read_bytes() == journal_before
    assert rows(filled, "alaivo id ao@ t;") == [[1], [2], [3]]


def test_failed_fsync_after_the_append_says_the_outcome_is_unknown(filled, tmp_path, monkeypatch):
    """The entry is appended under the locks and fsynced after them: by then
    others may have read or copied it, so a failed fsync cannot be undone and
    is never answered as a plain failure."""

    def broken_fsync(descriptor):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken_fsync)
    outcome = one(filled, "manampia ao@ t (id) sanda (9);")
    monkeypatch.undo()
    assert not outcome.ok and "Tsy fantatra raha voasoratra" in outcome.message
    assert "outcome unknown" in outcome.message
    assert rows(filled, "alaivo id ao@ t;") == [[1], [2], [3], [9]]


def test_string_length_limit_is_a_clean_error(tmp_path):
    session = make_session(tmp_path, Limits(max_string_length=3))
    outcome = one(session, "manampia ao@ t (id, anarana) sanda (1, 'abcd');")
    assert not outcome.ok and "Lava loatra" in outcome.message
    assert rows(session, "alaivo * ao@ t;") == []


def test_integers_beyond_64_bits_are_refused(session, tmp_path):
    run(session, "manamboara tabilao big (n ISA(null,null));")
    outcome = one(session, "manampia ao@ big sanda (9223372036854775807 + 1);")
    assert not outcome.ok and "64 bits" in outcome.message
    assert run(session, "manampia ao@ big sanda (9223372036854775807);") == [
        f"{CHANGED} (1 andalana)"]
    assert rows(session, "alaivo n ao@ big;") == [[9223372036854775807]]
    fresh = Session(Store(tmp_path / "data"))
    fresh.execute("ampiasao sekoly;")
    assert rows(fresh, "alaivo n ao@ big;") == [[9223372036854775807]]


@pytest.mark.parametrize("statement", ["manampia ao@ big sanda (-9223372036854775808);",
                                       "manampia ao@ big sanda (-9223372036854775807 - 1), (0);",
                                       "manampia ao@ big alaivo -9223372036854775807 - 1;"])
def test_the_smallest_64_bit_integer_is_stored(session, tmp_path, statement):
    """Signed 64 bits run from -2**63 to 2**63 - 1 (docs/LANGUAGE.md 4b); -2**63 was refused."""
    run(session, "manamboara tabilao big (n ISA(null,null));")
    assert run(session, statement)[0].startswith(CHANGED)
    refused = one(session, "manampia ao@ big sanda (-9223372036854775808 - 1);")
    assert not refused.ok and "64 bits" in refused.message
    fresh = Session(Store(tmp_path / "data"))
    fresh.execute("ampiasao sekoly;")
    assert [-2 ** 63] in rows(fresh, "alaivo n ao@ big;")
