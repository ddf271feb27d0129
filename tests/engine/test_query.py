"""evaluate_query: sources, views, filtering, projection, names, errors, limits."""

import pytest

from engine.errors import TahiryError
from engine.evaluation.catalog import ColumnInfo, TableData
from engine.evaluation.query import (
    QueryLimits,
    compile_table_expression,
    compile_table_predicate,
    evaluate_constant,
)
from engine.language.ast import ColumnRef
from tests.engine.querykit import MemoryCatalog, error_of, names, parse, rows, run, school


def expr(text):
    return parse(f"alaivo {text}").items[0].expr


def test_select_without_source_is_one_row():
    catalog = MemoryCatalog()
    assert rows(catalog, "alaivo 1 + 1, 7 / 2, 6 / 3, 'x', null") == [[2, 3.5, 2, "x", None]]
    assert names(catalog, "alaivo 1 + 1, 2 antso roa") == ["1 + 1", "roa"]
    assert rows(catalog, "alaivo 1 rehefa 1 = 2") == []
    assert rows(catalog, "alaivo 5 = 5.0, 1 = '1', 1 != '1'") == [[True, False, True]]


def test_star_without_source_is_an_error():
    assert "ao@" in error_of(MemoryCatalog(), "alaivo *")


def test_full_scan_and_filter_keep_duplicates_and_order():
    catalog = MemoryCatalog().add_table("t", ["a", "b"], [[1, "x"], [2, "y"], [1, "x"], [3, None]])
    assert rows(catalog, "alaivo * ao@ t") == [[1, "x"], [2, "y"], [1, "x"], [3, None]]
    assert rows(catalog, "alaivo * ao@ t rehefa a = 1") == [[1, "x"], [1, "x"]]
    assert rows(catalog, "alaivo b ao@ t rehefa b != 'x'") == [["y"]]
    assert rows(catalog, "alaivo a ao@ t #rehefa b dia null") == [[3]]
    assert rows(catalog, "alaivo a * 10, a ao@ t rehefa !(b = 'x')") == [[20, 2]]


def test_result_rows_are_fresh_lists():
    table_rows = [[1, "x"]]
    catalog = MemoryCatalog().add_table("t", ["a", "b"], table_rows)
    result = rows(catalog, "alaivo * ao@ t")
    result[0][0] = 99
    assert table_rows == [[1, "x"]]


def test_result_names_and_origins():
    catalog = school()
    relation = run(catalog, "alaivo m.id, anarana antso n, count(*)  +  1 ao@ mpianatra m "
                            "vondrona id, anarana")
    assert [(c.name, c.origin) for c in relation.columns] == [
        ("id", "m"), ("n", "m"), ("count(*) + 1", None)]
    assert relation.name == "mpianatra"
    assert run(catalog, "alaivo * ao@ mpianatra tonona naoty").name == "valiny"


def test_missing_table_and_column_errors():
    catalog = school()
    assert error_of(catalog, "alaivo * ao@ tsisy") == "La table sekoly.tsisy n'as pas été trouvé"
    assert error_of(catalog, "alaivo tsisy ao@ naoty") == \
        "Le champ 'tsisy' n'existe pas dans la relation."


def test_unknown_column_fails_even_on_an_empty_table():
    catalog = MemoryCatalog().add_table("t", ["a"], [])
    assert "'b'" in error_of(catalog, "alaivo * ao@ t rehefa b = 1")
    assert "'b'" in error_of(catalog, "alaivo b ao@ t")
    assert "booléen" in error_of(catalog, "alaivo * ao@ t rehefa a")


def test_alias_replaces_the_table_name():
    catalog = school()
    assert rows(catalog, "alaivo x.anarana ao@ mpianatra x rehefa x.id = 'E2'") == [["Bob"]]
    assert "mpianatra.id" in error_of(catalog, "alaivo mpianatra.id ao@ mpianatra x")


def test_derived_table_needs_an_alias_and_is_qualified_by_it():
    catalog = school()
    assert rows(catalog, "alaivo d.id ao@ (alaivo id, naoty * 2 antso v ao@ naoty) d "
                         "rehefa v > 20") == [["E1"], ["E2"]]


def test_views_are_evaluated_at_each_use_and_keep_their_order():
    catalog = school().add_view("tsara", "alaivo id, naoty ao@ naoty rehefa naoty >= 10 "
                                         "alaharo naoty midina fetra 2")
    assert rows(catalog, "alaivo * ao@ tsara") == [["E2", 16], ["E1", 14]]
    catalog.tables["naoty"].rows.append(["E5", "Z", 20])
    assert rows(catalog, "alaivo * ao@ tsara") == [["E5", 20], ["E2", 16]]
    assert rows(catalog, "alaivo v.id ao@ tsara v rehefa v.naoty < 20") == [["E2"]]
    assert run(catalog, "alaivo * ao@ tsara").columns[0].origin == "tsara"


def test_view_over_a_dropped_table_fails_with_the_missing_table_error():
    catalog = MemoryCatalog().add_view("v", "alaivo * ao@ gone")
    assert error_of(catalog, "alaivo * ao@ v") == "La table db.gone n'as pas été trouvé"


def test_view_cycles_fail_cleanly():
    catalog = MemoryCatalog().add_view("a", "alaivo * ao@ b").add_view("b", "alaivo * ao@ a")
    assert error_of(catalog, "alaivo * ao@ a") == "Ny jery 'a' dia miantso ny tenany (a -> b -> a)."


def test_nesting_depth_is_limited():
    catalog = MemoryCatalog().add_table("t", ["a"], [[1]])
    text = "alaivo * ao@ t"
    for level in range(40):
        text = f"alaivo * ao@ ({text}) d{level}"
    assert "Lalina loatra" in error_of(catalog, text)


def test_result_size_is_limited():
    catalog = MemoryCatalog().add_table("t", ["a"], [[i] for i in range(100)])
    limits = QueryLimits(max_result_rows=5000)
    assert "5000" in error_of(catalog, "alaivo * ao@ t x tonona t y", limits)
    assert "5000" in error_of(catalog, "alaivo * ao@ t x tonona t y ka x.a >= y.a "
                                       "tonona t z ka z.a = y.a", limits)
    assert len(run(catalog, "alaivo * ao@ t x tonona t y ka x.a > y.a", limits).rows) == 4950


def test_same_alias_twice_is_an_error():
    catalog = school()
    assert "'m'" in error_of(catalog, "alaivo * ao@ mpianatra m tonona naoty m ka m.id = m.id")
    assert "'naoty'" in error_of(catalog, "alaivo * ao@ naoty tonona naoty")


def test_table_predicate_and_expression_for_update_and_delete():
    table = TableData("t", [ColumnInfo("a", []), ColumnInfo("b", [])], [[1, "x"], [None, "y"]])
    predicate = compile_table_predicate(expr("a >= 1 na b = 'y'"), table)
    assert [predicate(r) for r in table.rows] == [True, True]
    predicate = compile_table_predicate(expr("a = 1"), table)
    assert [predicate(r) for r in table.rows] == [True, False]
    predicate = compile_table_predicate(expr("t.a dia null"), table)
    assert [predicate(r) for r in table.rows] == [False, True]
    update = compile_table_expression(expr("a * 2 + 1"), table)
    assert [update(r) for r in table.rows] == [3, None]
    with pytest.raises(TahiryError):
        compile_table_predicate(expr("c = 1"), table)
    with pytest.raises(TahiryError):
        compile_table_predicate(expr("a + 1"), table)
    with pytest.raises(TahiryError):
        compile_table_expression(expr("a > 1"), table)
    with pytest.raises(TahiryError):
        compile_table_predicate(expr("count(a) > 1"), table)


def test_evaluate_constant_for_values():
    assert evaluate_constant(expr("-5")) == -5
    assert evaluate_constant(expr("7 / 2")) == 3.5
    assert evaluate_constant(expr("'it''s'")) == "it's"
    assert evaluate_constant(expr("null")) is None
    with pytest.raises(TahiryError) as caught:
        evaluate_constant(ColumnRef("a"))
    # A VALUES item is never a column: a bare name is a text without its quotes.
    assert caught.value.sentence == ("Le champ 'a' n'existe pas dans la relation. Raha "
                                     "lahatsoratra no tianao, soraty eo anelanelan'ny ' : 'a'.")
    with pytest.raises(TahiryError):
        evaluate_constant(expr("1 / 0"))
    with pytest.raises(TahiryError):
        evaluate_constant(expr("1 < 2"))


def test_boolean_columns_of_derived_tables():
    catalog = MemoryCatalog().add_table("t", ["a"], [[1], [2], [3]])
    derived = "(alaivo a, a > 1 antso big ao@ t)"
    assert rows(catalog, f"alaivo a ao@ {derived} x rehefa big") == [[2], [3]]
    assert rows(catalog, f"alaivo big, count(*) ao@ {derived} x vondrona big alaharo big") == \
        [[False, 1], [True, 2]]
    # natural join on a number column and a boolean column (nested-loop path)
    assert rows(catalog, f"alaivo * ao@ {derived} x tonona:natoraly@ "
                         f"(alaivo a > 2 antso big, a ao@ t) y") == [[1, False], [3, True]]
    assert "booléen" in error_of(catalog, f"alaivo big + 1 ao@ {derived} x")
    assert "booléen" in error_of(catalog, f"alaivo a ao@ {derived} x rehefa big = 1")


def test_a_whole_number_alone_orders_by_the_column_at_that_place():
    """As in SQL: `alaharo 2` is the result's second column (it was the constant 2,
    which left the rows unsorted), grouped or not; another constant is an error."""
    catalog = MemoryCatalog().add_table("t", ["a", "b"], [[1, "z"], [3, "x"], [2, "y"], [3, "w"]])
    assert rows(catalog, "alaivo * ao@ t alaharo 2") == [[3, "w"], [3, "x"], [2, "y"], [1, "z"]]
    assert rows(catalog, "alaivo b, a ao@ t alaharo 2 midina, 1") == \
        [["w", 3], ["x", 3], ["y", 2], ["z", 1]]
    assert rows(catalog, "alaivo a, count(*) ao@ t vondrona a alaharo 2 midina, 1 midina") == \
        [[3, 2], [2, 1], [1, 1]]
    assert rows(catalog, "alaivo a ao@ t alaharo 1 + 0 midina") == [[1], [3], [2], [3]]   # an expression
    assert error_of(catalog, "alaivo * ao@ t alaharo 3") == \
        "alaharo 3 : tsy misy tsanganana faha-3 (tsanganana 2 no ao amin'ny valiny)"
    for position in ("0", "-1"):   # ("faha--1" before)
        assert error_of(catalog, f"alaivo * ao@ t alaharo {position}") == \
            f"alaharo {position} : manomboka amin'ny 1 ny laharan'ny tsanganana (1 ka hatramin'ny 2)"
    for constant in ("'x'", "1.5", "null"):
        assert error_of(catalog, f"alaivo * ao@ t alaharo {constant}").startswith(
            f"alaharo {constant} : tsy mandahatra na inona na inona ny sanda raikitra")
