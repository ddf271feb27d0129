"""Grouping and aggregates, with and without vondrona."""

from tests.engine.querykit import MemoryCatalog, error_of, names, rows, run, school


def sales():
    return MemoryCatalog().add_table("s", ["shop", "item", "qty", "price"], [
        ["A", "pen", 2, 1.5], ["B", "pen", 1, 1.5], ["A", "ink", None, 4],
        ["C", "pad", 3, 2], ["A", "pen", 5, 1.5], ["B", None, 4, 2]])


def test_language_example_query():
    catalog = school()
    relation = run(catalog, "alaivo anarana, count(taranja) antso isa, avg(naoty) ao@ mpianatra "
                            "#tonona:natoraly@ naoty #rehefa naoty >= 10 #vondrona (anarana) "
                            "alaharo anarana")
    assert [c.name for c in relation.columns] == ["anarana", "isa", "avg(naoty)"]
    assert relation.rows == [["Alice", 1, 14], ["Bob", 1, 16]]


def test_group_by_with_every_aggregate():
    got = rows(sales(), "alaivo shop, count(*), count(qty), sum(qty), avg(qty), min(qty), "
                        "max(item) ao@ s vondrona shop alaharo shop")
    assert got == [["A", 3, 2, 7, 3.5, 2, "pen"], ["B", 2, 2, 5, 2.5, 1, "pen"],
                   ["C", 1, 1, 3, 3, 3, "pad"]]


def test_group_by_without_parentheses_and_several_keys():
    got = rows(sales(), "alaivo shop, item, sum(qty) ao@ s vondrona shop, item "
                        "alaharo shop, item")
    assert got == [["A", "ink", None], ["A", "pen", 7], ["B", None, 4], ["B", "pen", 1],
                   ["C", "pad", 3]]


def test_null_keys_form_one_group():
    catalog = MemoryCatalog().add_table("t", ["k", "v"], [[None, 1], [1, 2], [None, 3]])
    assert rows(catalog, "alaivo k, sum(v) ao@ t vondrona k alaharo k") == [[None, 4], [1, 2]]


def test_no_vondrona_is_one_group_even_when_empty():
    catalog = sales()
    assert rows(catalog, "alaivo count(*), sum(qty), avg(price) ao@ s") == [[6, 15, 12.5 / 6]]
    assert rows(catalog, "alaivo count(*), count(qty), sum(qty), avg(qty), min(qty), max(qty) "
                         "ao@ s rehefa qty > 100") == [[0, 0, None, None, None, None]]
    assert rows(catalog, "alaivo shop, count(*) ao@ s rehefa qty > 100 vondrona shop") == []


def test_aggregates_over_expressions_and_arithmetic_over_aggregates():
    catalog = sales()
    assert rows(catalog, "alaivo shop, sum(qty * price) antso total, count(*) * 10 + 1, 'x' "
                         "ao@ s vondrona shop alaharo shop") == \
        [["A", 10.5, 31, "x"], ["B", 9.5, 21, "x"], ["C", 6, 11, "x"]]
    assert rows(catalog, "alaivo max(qty) - min(qty) ao@ s") == [[4]]
    assert names(catalog, "alaivo sum(qty)  /  count(qty) ao@ s") == ["sum(qty) / count(qty)"]


def test_grouping_columns_may_appear_in_expressions():
    assert rows(sales(), "alaivo shop, qty + 1 ao@ s rehefa qty > 2 vondrona shop, qty "
                         "alaharo shop") == [["A", 6], ["B", 5], ["C", 4]]


def test_avg_is_exact_division():
    catalog = MemoryCatalog().add_table("t", ["v"], [[2], [4]])
    result = rows(catalog, "alaivo avg(v) ao@ t")[0][0]
    assert result == 3 and type(result) is int


def test_min_max_on_strings_and_dates():
    catalog = MemoryCatalog().add_table("t", ["d"], [["2024-03-01"], ["2023-12-31"], [None]])
    assert rows(catalog, "alaivo min(d), max(d) ao@ t") == [["2023-12-31", "2024-03-01"]]


def test_order_by_aggregate_in_grouped_query():
    assert rows(sales(), "alaivo shop ao@ s vondrona shop alaharo count(*) midina, shop") == \
        [["A"], ["B"], ["C"]]
    assert rows(sales(), "alaivo shop, sum(qty) antso t ao@ s vondrona shop alaharo t") == \
        [["C", 3], ["B", 5], ["A", 7]]


def test_grouping_errors():
    catalog = sales()
    assert "item" in error_of(catalog, "alaivo item, count(*) ao@ s vondrona shop")
    assert "qty" in error_of(catalog, "alaivo qty, count(*) ao@ s")
    assert "rehefa" in error_of(catalog, "alaivo shop ao@ s rehefa count(*) > 1 vondrona shop")
    assert "sum(count(qty))" in error_of(catalog, "alaivo sum(count(qty)) ao@ s")
    assert "vondrona" in error_of(catalog, "alaivo * ao@ s vondrona shop")
    assert "'pen'" in error_of(catalog, "alaivo sum(item) ao@ s")
    assert "avg(shop)" in error_of(catalog, "alaivo avg(shop) ao@ s")
    assert "count(*)" in error_of(catalog, "alaivo sum(*) ao@ s")
    assert "foo" in error_of(catalog, "alaivo foo(qty) ao@ s")
    assert error_of(catalog, "alaivo shop ao@ s vondrona nope") == \
        "Le champ 'nope' n'existe pas dans la relation."


def test_min_max_over_numbers_and_strings_put_numbers_first():
    # LANGUAGE.md 4, "Mixed domains" (a column of ISA(0,20):TANISA('ABS')).
    catalog = MemoryCatalog().add_table("t", ["v"], [[12], ["ABS"], [3], [None]])
    assert rows(catalog, "alaivo min(v), max(v) ao@ t") == [[3, "ABS"]]


def test_min_max_over_booleans_and_numbers_is_an_error():
    catalog = MemoryCatalog().add_table("t", ["v"], [[1], [True]])   # a set operator's column
    assert error_of(catalog, "alaivo max(v) ao@ t") == (
        "max(v) : Tsy azo alahatra miaraka ny sanda booléen sy isa.")


def test_grouping_many_rows():
    catalog = MemoryCatalog().add_table("t", ["k", "v"], [[i % 7, i] for i in range(7000)])
    got = rows(catalog, "alaivo k, count(*), sum(v) ao@ t vondrona k alaharo k")
    assert [r[1] for r in got] == [1000] * 7
    assert sum(r[2] for r in got) == sum(range(7000))
