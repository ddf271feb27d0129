"""Value semantics: comparison, arithmetic, three-valued logic, display."""

import pytest

from engine.errors import TahiryError
from engine.evaluation import values


def sentence(call, *args):
    with pytest.raises(TahiryError) as caught:
        call(*args)
    return caught.value.sentence


def test_numbers_compare_across_int_and_float():
    assert values.eq(5, 5.0) is True
    assert values.ne(5, 5.0) is False
    assert values.lt(2, 2.5) is True
    assert values.ge(3.0, 3) is True


def test_strings_order_by_code_point_and_dates_as_strings():
    assert values.lt("B", "a") is True
    assert values.lt("a", "é") is True
    assert values.lt("2023-12-31", "2024-01-01") is True
    assert values.eq("x", "x") is True


def test_number_against_string_equality_and_ordering():
    assert values.eq(1, "1") is False
    assert values.ne(1, "1") is True
    assert values.eq("2024-01-01", 20240101) is False
    # Ordering a number against a string is unknown (LANGUAGE.md 4, "Mixed domains").
    for op in (values.lt, values.le, values.gt, values.ge):
        assert op(1, "abc") is None and op("2024-01-01", 3.5) is None
    message = sentence(values.lt, True, 1)
    assert "'<'" in message and "true" in message


def test_null_comparisons_are_null():
    for op in (values.eq, values.ne, values.lt, values.le, values.gt, values.ge):
        assert op(None, 1) is None
        assert op("a", None) is None
        assert op(None, None) is None


def test_booleans_compare_only_with_booleans():
    assert values.eq(True, True) is True
    assert values.ne(True, False) is True
    assert values.eq(True, None) is None
    assert "booléen" in sentence(values.eq, True, 1)
    assert "booléen" in sentence(values.ne, 0, False)
    assert "booléen" in sentence(values.lt, True, False)


def test_exact_division():
    assert values.div(7, 2) == 3.5
    result = values.div(6, 3)
    assert result == 2 and type(result) is int
    assert values.div(-7, 2) == -3.5
    assert values.div(5.0, 2) == 2.5
    assert values.div(None, 0) is None
    assert values.div(1, None) is None


def test_division_by_zero_is_an_error():
    message = sentence(values.div, 5, 0)
    assert "aotra" in message and "5 / 0" in message
    assert "aotra" in sentence(values.div, 5, 0.0)


def test_arithmetic_keeps_ints_and_propagates_null():
    assert values.add(2, 3) == 5 and type(values.add(2, 3)) is int
    assert values.mul(2, 2.5) == 5.0
    assert values.sub(1, 0.5) == 0.5
    assert values.add(None, 1) is None
    assert values.neg(None) is None
    assert values.neg(4) == -4


def test_arithmetic_on_strings_and_booleans_is_an_error():
    message = sentence(values.add, "abc", 1)
    assert "'abc'" in message and "+" in message
    assert "booléen" in sentence(values.mul, True, 2)
    assert "lahatsoratra" in sentence(values.sub, 1, "2024-01-01")
    assert "'x'" in sentence(values.neg, "x")
    # even with a NULL beside it, a string operand is a type error
    assert "'a'" in sentence(values.add, "a", None)


def test_float_overflow_is_an_error():
    assert "Lehibe loatra" in sentence(values.mul, 1e308, 10)


def test_three_valued_logic():
    T, F, N = True, False, None
    assert values.and3(T, T) is T and values.and3(T, F) is F
    assert values.and3(N, F) is F and values.and3(N, T) is N
    assert values.or3(N, T) is T and values.or3(N, F) is N and values.or3(F, F) is F
    assert values.not3(N) is N and values.not3(T) is F


def test_logic_on_non_booleans_is_an_error():
    assert "'ary'" in sentence(values.and3, 1, True)
    assert "'na'" in sentence(values.or3, False, "x")
    assert "'!'" in sentence(values.not3, 0)


def test_number_formatting():
    assert values.format_number(3) == "3"
    assert values.format_number(2.5) == "2.5"
    assert values.format_number(2.0) == "2"
    assert values.format_number(0.1) == "0.1"
    assert values.format_number(1e-05) == "0.00001"
    assert values.format_number(-3.25) == "-3.25"
    assert values.format_value(None) == "NULL"
    assert values.format_value(True) == "true" and values.format_value(False) == "false"
    assert values.format_value("x") == "x"


def test_sortable_kind_rejects_mixed_values():
    assert values.sortable_kind([1, 2.5, None]) == "number"
    assert values.sortable_kind(["a", None]) == "string"
    assert values.sortable_kind([None]) is None
    assert values.sortable_kind([1, "a", None]) == "mixed"
    assert sorted([3, "A", 1.5, "0"], key=values.mixed_key) == [1.5, 3, "0", "A"]
    with pytest.raises(TahiryError):
        values.sortable_kind([1, True])
