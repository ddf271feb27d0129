"""Joins: inner, outer, natural, cross, hash and nested-loop plans."""

import pytest

from tests.engine.querykit import MemoryCatalog, error_of, names, rows, run, school


def test_inner_join_on_equality():
    catalog = school()
    assert rows(catalog, "alaivo m.anarana, n.taranja ao@ mpianatra m tonona naoty n "
                         "ka m.id = n.id") == [["Alice", "Algo"], ["Alice", "BD"], ["Bob", "Algo"]]
    # same result with the equality written the other way round, and tonona:anatiny
    assert rows(catalog, "alaivo m.anarana, n.taranja ao@ mpianatra m tonona:anatiny@ naoty n "
                         "#ka n.id = m.id") == [["Alice", "Algo"], ["Alice", "BD"], ["Bob", "Algo"]]


def test_join_condition_mixing_equality_and_other_tests():
    catalog = school()
    assert rows(catalog, "alaivo m.anarana, n.naoty ao@ mpianatra m tonona naoty n "
                         "ka m.id = n.id ary n.naoty > 10") == [["Alice", 14], ["Bob", 16]]
    assert rows(catalog, "alaivo m.anarana, n.naoty ao@ mpianatra m tonona naoty n "
                         "ka n.naoty > 10 ary n.id = m.id ary m.kilasy = 'M1'") == [["Bob", 16]]


def test_join_on_several_equalities_and_expressions():
    catalog = MemoryCatalog()
    catalog.add_table("a", ["x", "y"], [[1, 1], [1, 2], [2, 2]])
    catalog.add_table("b", ["x", "y"], [[1, 2], [2, 2.0], [2, 3]])
    assert rows(catalog, "alaivo a.x, a.y ao@ a tonona b ka a.x = b.x ary a.y = b.y") == \
        [[1, 2], [2, 2]]
    assert rows(catalog, "alaivo a.x, b.y ao@ a tonona b ka a.x + 1 = b.y") == \
        [[1, 2], [1, 2], [1, 2], [1, 2], [2, 3]]


def test_null_never_matches_null():
    catalog = MemoryCatalog()
    catalog.add_table("a", ["k"], [[None], [1]])
    catalog.add_table("b", ["k"], [[None], [1]])
    assert rows(catalog, "alaivo * ao@ a tonona b ka a.k = b.k") == [[1, 1]]
    assert rows(catalog, "alaivo * ao@ a tonona:natoraly@ b") == [[1]]


def test_numbers_join_across_int_and_float_but_not_strings():
    catalog = MemoryCatalog()
    catalog.add_table("a", ["k"], [[5], ["5"]])
    catalog.add_table("b", ["k"], [[5.0]])
    assert rows(catalog, "alaivo * ao@ a tonona b ka a.k = b.k") == [[5, 5.0]]


def test_left_right_and_full_joins_pad_with_nulls():
    catalog = school()
    left = rows(catalog, "alaivo m.id, n.taranja ao@ mpianatra m tonona:avia@ naoty n ka m.id = n.id")
    assert left == [["E1", "Algo"], ["E1", "BD"], ["E2", "Algo"], ["E3", None]]
    assert rows(catalog, "alaivo m.id, n.taranja ao@ mpianatra m tonona:ankavia@ naoty n "
                         "ka m.id = n.id") == left
    right = rows(catalog, "alaivo m.id, n.id ao@ mpianatra m tonona:avanana@ naoty n "
                          "ka m.id = n.id")
    assert right == [["E1", "E1"], ["E1", "E1"], ["E2", "E2"], [None, "E9"]]
    assert rows(catalog, "alaivo m.id, n.id ao@ mpianatra m tonona:ankavanana@ naoty n "
                         "ka m.id = n.id") == right
    full = rows(catalog, "alaivo m.id, n.id ao@ mpianatra m tonona:feno@ naoty n ka m.id = n.id")
    assert sorted(full, key=repr) == sorted(
        [["E1", "E1"], ["E1", "E1"], ["E2", "E2"], ["E3", None], [None, "E9"]], key=repr)


def test_outer_join_residual_decides_the_match():
    catalog = school()
    assert rows(catalog, "alaivo m.id, n.naoty ao@ mpianatra m tonona:avia@ naoty n "
                         "ka m.id = n.id ary n.naoty > 15") == \
        [["E1", None], ["E2", 16], ["E3", None]]


def test_theta_joins_use_nested_loops_including_outer():
    catalog = MemoryCatalog()
    catalog.add_table("a", ["x"], [[1], [2], [3]])
    catalog.add_table("b", ["y"], [[2], [3]])
    assert rows(catalog, "alaivo * ao@ a tonona b ka a.x > b.y") == [[3, 2]]
    assert rows(catalog, "alaivo * ao@ a tonona:avia@ b ka a.x > b.y") == \
        [[1, None], [2, None], [3, 2]]
    assert rows(catalog, "alaivo * ao@ a tonona:avanana@ b ka a.x < b.y") == \
        [[1, 2], [1, 3], [2, 3]]
    assert rows(catalog, "alaivo * ao@ a tonona:feno@ b ka a.x > b.y na b.y = 9") == \
        [[1, None], [2, None], [3, 2], [None, 3]]


def test_cross_product_and_self_join_with_aliases():
    catalog = MemoryCatalog().add_table("u", ["id"], [[1], [2]])
    assert rows(catalog, "alaivo * ao@ u a tonona u b") == [[1, 1], [1, 2], [2, 1], [2, 2]]
    assert rows(catalog, "alaivo a.id ao@ u a #tonona u b #ka a.id = b.id") == [[1], [2]]


def test_natural_join_columns_and_rows():
    catalog = school()
    relation = run(catalog, "alaivo * ao@ mpianatra tonona:natoraly@ naoty")
    assert [c.name for c in relation.columns] == ["id", "anarana", "kilasy", "taranja", "naoty"]
    assert relation.rows == [["E1", "Alice", "L3", "Algo", 14], ["E1", "Alice", "L3", "BD", 9],
                             ["E2", "Bob", "M1", "Algo", 16]]
    # the shared column can be named unqualified or through either side
    assert rows(catalog, "alaivo id, naoty.id, mpianatra.id ao@ mpianatra "
                         "tonona:natoraly@ naoty rehefa naoty = 9") == [["E1", "E1", "E1"]]


def test_natural_join_on_several_columns_and_with_none_shared():
    catalog = MemoryCatalog()
    catalog.add_table("a", ["x", "y", "p"], [[1, 1, "a"], [1, 2, "b"]])
    catalog.add_table("b", ["q", "y", "x"], [["c", 2, 1], ["d", 2, 2]])
    assert names(catalog, "alaivo * ao@ a tonona:natoraly@ b") == ["x", "y", "p", "q"]
    assert rows(catalog, "alaivo * ao@ a tonona:natoraly@ b") == [[1, 2, "b", "c"]]
    catalog.add_table("c", ["z"], [[7], [8]])
    assert rows(catalog, "alaivo p, z ao@ a tonona:natoraly@ c") == \
        [["a", 7], ["a", 8], ["b", 7], ["b", 8]]


def test_join_errors():
    catalog = school()
    assert "ka" in error_of(catalog, "alaivo * ao@ mpianatra tonona:avia@ naoty")
    assert "ka" in error_of(catalog, "alaivo * ao@ mpianatra tonona:feno@ naoty")
    assert error_of(catalog, "alaivo id ao@ mpianatra tonona naoty ka mpianatra.id = naoty.id") \
        == ("Le champ 'id' est ambigu. Il apparaît 2 fois dans la relation."
            " Soraty miaraka amin'ny anaran'ny tabilao misy azy : mpianatra.id, naoty.id.")
    assert "count(m.id)" in error_of(catalog, "alaivo * ao@ mpianatra m tonona naoty n "
                                            "ka count(m.id) = 1")
    assert "booléen" in error_of(catalog, "alaivo * ao@ mpianatra m tonona naoty n ka 1")
    assert "La table" in error_of(catalog, "alaivo * ao@ mpianatra tonona tsisy ka a = b")


def test_three_way_join():
    catalog = school().add_table("kilasy", ["kilasy", "anarana_kilasy"], [["L3", "Licence 3"]])
    assert rows(catalog, "alaivo m.anarana, k.anarana_kilasy, n.naoty ao@ mpianatra m "
                         "tonona kilasy k ka m.kilasy = k.kilasy tonona naoty n ka n.id = m.id") \
        == [["Alice", "Licence 3", 14], ["Alice", "Licence 3", 9]]


def test_outer_joins_never_match_null_keys():
    catalog = MemoryCatalog()
    catalog.add_table("a", ["k", "j"], [[None, 1], [1, 1], [2, None]])
    catalog.add_table("b", ["k", "j"], [[None, 1], [1, 1], [2, None]])
    assert rows(catalog, "alaivo a.k, b.k ao@ a tonona:feno@ b ka a.k = b.k") == \
        [[None, None], [1, 1], [2, 2], [None, None]]
    assert rows(catalog, "alaivo a.k, b.k ao@ a tonona:avanana@ b ka a.k = b.k") == \
        [[None, None], [1, 1], [2, 2]]
    # two-column keys: a NULL in either part never matches
    assert rows(catalog, "alaivo a.k, b.k ao@ a tonona:avia@ b ka a.k = b.k ary a.j = b.j") == \
        [[None, None], [1, 1], [2, None]]


def test_join_result_size_is_checked_before_it_is_built():
    from engine.evaluation.query import QueryLimits
    catalog = MemoryCatalog()
    catalog.add_table("a", ["k"], [[1]] * 100)
    catalog.add_table("b", ["k"], [[1]] * 100)
    limits = QueryLimits(max_result_rows=9999)
    assert "9999" in error_of(catalog, "alaivo * ao@ a tonona b ka a.k = b.k", limits)
    assert "9999" in error_of(catalog, "alaivo * ao@ a tonona:natoraly@ b", limits)
    assert "9999" in error_of(catalog, "alaivo * ao@ a tonona:avanana@ b ka a.k = b.k", limits)
    assert len(run(catalog, "alaivo * ao@ a tonona b ka a.k = b.k").rows) == 10000


def test_a_join_too_large_says_only_ka_makes_it_smaller():
    """The advice "add conditions (rehefa, ka) or a limit" sent students adding `rehefa`
    and `fetra` to a cross join, which are applied after it is built."""
    from engine.evaluation.query import QueryLimits
    from engine.language.messages import translate
    catalog = MemoryCatalog()
    catalog.add_table("a", ["k"], [[i] for i in range(100)])
    limits = QueryLimits(max_result_rows=9999)
    message = error_of(catalog, "alaivo x.k ao@ a x tonona a y rehefa x.k = 1 fetra 3", limits)
    assert "(10000) : 9999" in message and "Ny fepetra 'ka' ihany" in message, message
    assert "fetra." not in message
    english = translate("Hadisoana : " + message.removeprefix("Hadisoana : "), "en")
    assert "Only 'ka' conditions make a join smaller" in english, english


@pytest.mark.parametrize("query", [
    "alaivo count(*) ao@ a x tonona a y ka x.k < y.k",                       # nested loops
    "alaivo count(*) ao@ a x tonona a y ka x.j = y.j ary x.k < y.k",         # hash + residual
    "alaivo count(*) ao@ a x tonona:avia@ a y ka x.j = y.j ary x.k < y.k",
    "alaivo count(*) ao@ a x tonona:avanana@ a y ka x.k < y.k",
])
def test_a_join_with_ka_too_large_is_called_a_join_not_the_result(query):
    """`alaivo count(*) ... tonona ... ka x.k < y.k` answers one row, yet the error said
    "too many rows in the result: add rehefa, ka or fetra": neither `rehefa` nor `fetra`
    makes the join smaller."""
    from engine.evaluation.query import QueryLimits
    catalog = MemoryCatalog()
    catalog.add_table("a", ["k", "j"], [[i, 1] for i in range(200)])
    message = error_of(catalog, query, QueryLimits(max_result_rows=9999))
    assert "fitambarana (tonona)" in message and "Ny fepetra 'ka' ihany" in message, message
    assert "valiny" not in message and "fetra." not in message, message


def test_theta_join_work_is_limited():
    from engine.evaluation.query import QueryLimits
    catalog = MemoryCatalog()
    catalog.add_table("a", ["k"], [[i] for i in range(100)])
    limits = QueryLimits(max_join_comparisons=5000)
    assert "100 x 100" in error_of(catalog, "alaivo * ao@ a x tonona a y ka x.k < y.k", limits)
