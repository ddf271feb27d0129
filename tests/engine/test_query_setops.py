"""Set operators, ordering (alaharo) and fetra."""

from engine.evaluation.query import QueryLimits
from tests.engine.querykit import MemoryCatalog, error_of, names, rows, run, school


def pair():
    catalog = MemoryCatalog()
    catalog.add_table("a", ["x", "y"], [[1, "p"], [2, "q"], [1, "p"], [3, None]])
    catalog.add_table("b", ["u", "v"], [[2, "q"], [4, "r"], [3, None]])
    return catalog


def test_union_is_distinct_and_takes_left_names():
    catalog = pair()
    relation = run(catalog, "alaivo * ao@ a ankambana alaivo * ao@ b")
    assert [c.name for c in relation.columns] == ["x", "y"]
    assert relation.rows == [[1, "p"], [2, "q"], [3, None], [4, "r"]]
    assert rows(catalog, "alaivo * ao@ a + alaivo * ao@ b") == relation.rows
    assert rows(catalog, "alaivo * ao@ a #ankambana@ alaivo * ao@ b") == relation.rows


def test_intersect_and_except():
    catalog = pair()
    assert rows(catalog, "alaivo * ao@ a atifitra alaivo * ao@ b") == [[2, "q"], [3, None]]
    assert rows(catalog, "alaivo * ao@ a ^ alaivo * ao@ b") == [[2, "q"], [3, None]]
    assert rows(catalog, "alaivo * ao@ a analana alaivo * ao@ b") == [[1, "p"]]
    assert rows(catalog, "alaivo * ao@ a - alaivo * ao@ b") == [[1, "p"]]


def test_set_operators_are_left_associative_and_accept_parentheses():
    catalog = pair()
    assert rows(catalog, "alaivo x ao@ a + alaivo u ao@ b - alaivo 4") == [[1], [2], [3]]
    assert rows(catalog, "alaivo x ao@ a - (alaivo u ao@ b - alaivo 3)") == [[1], [3]]


def test_set_operators_mix_types_and_compare_numbers_exactly():
    catalog = MemoryCatalog()
    assert rows(catalog, "alaivo 1 ankambana alaivo 'a' ankambana alaivo 1.0") == [[1], ["a"]]
    assert rows(catalog, "alaivo 1 = 1 ankambana alaivo 1") == [[True], [1]]


def test_set_operators_need_the_same_column_count():
    message = error_of(pair(), "alaivo x ao@ a ankambana alaivo * ao@ b")
    assert "1" in message and "2" in message


def test_order_and_limit_apply_to_their_operand():
    catalog = pair()
    assert rows(catalog, "alaivo x ao@ a alaharo x midina fetra 1 ankambana alaivo u ao@ b") == \
        [[3], [2], [4]]


def test_order_by_ascending_descending_with_nulls():
    catalog = MemoryCatalog().add_table("t", ["a", "b"], [[2, "x"], [None, "y"], [1, "z"],
                                                         [2, "w"]])
    assert rows(catalog, "alaivo a ao@ t alaharo a") == [[None], [1], [2], [2]]
    assert rows(catalog, "alaivo a ao@ t alaharo a miakatra") == [[None], [1], [2], [2]]
    assert rows(catalog, "alaivo a ao@ t alaharo a midina") == [[2], [2], [1], [None]]
    # stable: equal keys keep their order
    assert rows(catalog, "alaivo a, b ao@ t alaharo a midina") == \
        [[2, "x"], [2, "w"], [1, "z"], [None, "y"]]
    assert rows(catalog, "alaivo a, b ao@ t alaharo a midina, b") == \
        [[2, "w"], [2, "x"], [1, "z"], [None, "y"]]


def test_order_keys_resolve_against_output_first_then_source():
    catalog = MemoryCatalog().add_table("t", ["a", "b"], [[1, 3], [2, 2], [3, 1]])
    assert rows(catalog, "alaivo a antso b ao@ t alaharo b midina") == [[3], [2], [1]]
    assert rows(catalog, "alaivo a ao@ t alaharo t.b") == [[3], [2], [1]]
    assert rows(catalog, "alaivo a ao@ t alaharo b") == [[3], [2], [1]]
    assert rows(catalog, "alaivo a * 10 antso z ao@ t alaharo z midina") == [[30], [20], [10]]
    assert rows(catalog, "alaivo a ao@ t alaharo a - b * 2") == [[1], [2], [3]]


def test_ordering_numbers_and_strings_puts_numbers_first():
    # LANGUAGE.md 4, "Mixed domains": every number, then every string; NULLs first.
    catalog = MemoryCatalog().add_table("t", ["a"], [[12], ["x"], [None], ["ABS"], [3.5]])
    assert rows(catalog, "alaivo a ao@ t alaharo a") == [[None], [3.5], [12], ["ABS"], ["x"]]
    assert rows(catalog, "alaivo a ao@ t alaharo a midina") == [["x"], ["ABS"], [12], [3.5],
                                                                  [None]]


def test_ordering_booleans_with_other_values_is_an_error():
    catalog = MemoryCatalog().add_table("t", ["a"], [[1], [True]])   # a set operator's column
    assert error_of(catalog, "alaivo a ao@ t alaharo a") == (
        "alaharo a : Tsy azo alahatra miaraka ny sanda booléen sy isa.")


def test_order_by_unknown_or_ambiguous_name():
    catalog = school()
    assert error_of(catalog, "alaivo id ao@ naoty alaharo nope") == \
        "Le champ 'nope' n'existe pas dans la relation."
    assert "ambigu" in error_of(catalog, "alaivo * ao@ mpianatra m tonona naoty n "
                                         "ka m.id = n.id alaharo id")


def test_fetra():
    catalog = MemoryCatalog().add_table("t", ["a"], [[i] for i in range(10)])
    assert rows(catalog, "alaivo a ao@ t fetra 3") == [[0], [1], [2]]
    assert rows(catalog, "alaivo a ao@ t fetra 2 5") == [[2], [3], [4]]
    assert rows(catalog, "alaivo a ao@ t fetra 0") == []
    assert rows(catalog, "alaivo a ao@ t fetra 8 100") == [[8], [9]]
    assert rows(catalog, "alaivo a ao@ t alaharo a midina #fetra 2") == [[9], [8]]


def test_union_result_size_is_limited():
    catalog = MemoryCatalog().add_table("t", ["a"], [[i] for i in range(60)])
    limits = QueryLimits(max_result_rows=100)
    assert "100" in error_of(catalog, "alaivo a ao@ t ankambana alaivo a + 100 ao@ t", limits)
    assert names(catalog, "alaivo a ao@ t ankambana alaivo a ao@ t") == ["a"]


def test_many_set_operators_in_a_row():
    catalog = MemoryCatalog()
    text = " ankambana ".join(f"alaivo {i}" for i in range(60))
    assert rows(catalog, text) == [[i] for i in range(60)]
