"""Discrepancies found by a line-by-line review of docs/LANGUAGE.md against the
engine, each pinned by the statement that showed it (run through a real
Session on a real data directory)."""

import pytest

from engine.session import INTERNAL_ERROR
from tests.engine.sessionkit import one, prepared_session

SETUP = """
manamboara tahiry s; ampiasao s;
manamboara tabilao t (a ISA(null,null), b LAHATSORATRA(null,null));
manampia ao@ t sanda (1, 'x'), (2, 'y'), (null, 'z');
"""

BIG = "1" + "0" * 308     # 1e308 as an integer: within the range of a float
HUGE = "1" + "0" * 400    # beyond it


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return prepared_session(tmp_path_factory, "review", SETUP)


def error_of(session, text):
    outcome = one(session, text)
    assert not outcome.ok, outcome.relation and outcome.relation.rows
    assert outcome.message != INTERNAL_ERROR
    assert outcome.message.startswith("Hadisoana : ")
    return outcome.message


def rows_of(session, text):
    outcome = one(session, text)
    assert outcome.ok, outcome.message
    return outcome.relation.rows


# -------------------------------------------------------------- number range

@pytest.mark.parametrize("text", [
    f"alaivo {BIG} * 10;",
    f"alaivo {BIG} + {BIG};",
    f"alaivo -{BIG} - {BIG};",
    f"alaivo {BIG} * 2.0;",
    f"alaivo sum(x) ao@ (alaivo {BIG} antso x ankambana alaivo {BIG} - 1) y;",
    f"alaivo avg(x) ao@ (alaivo {BIG} antso x ankambana alaivo {BIG} - 1) y;",
    f"alaivo sum(x) ao@ (alaivo {BIG} antso x ankambana alaivo {BIG} - 1 ankambana alaivo 0.5) y;",
    # a product no client could print (Python refuses str() of > 4300 digits)
    "alaivo " + " * ".join([BIG] * 15) + ";",
], ids=[f"overflow{i}" for i in range(8)])
def test_number_overflow_is_a_clean_error(session, text):
    assert "Lehibe loatra" in error_of(session, text)


@pytest.mark.parametrize("text", [
    f"alaivo {HUGE};",
    f"alaivo {HUGE} + 0.5;",
    f"alaivo a ao@ t rehefa a = {HUGE};",
    f"manampia ao@ t sanda ({HUGE}, 'x');",      # the literal-rows fast path
    f"manampia ao@ t (a) sanda (-{HUGE});",
], ids=["select", "mixed", "where", "values", "negative"])
def test_integer_literal_beyond_float_range_is_refused_like_a_decimal_one(session, text):
    # the same sentence as for `1000...0.0`; three times, so the statement
    # cache (which learns a shape the second time) answers the third
    decimal = error_of(session, "alaivo 1" + "0" * 400 + ".0;")
    assert "isa lehibe loatra" in decimal
    for _ in range(3):
        assert "isa lehibe loatra" in error_of(session, text)


def test_integers_within_float_range_still_compute_exactly(session):
    assert rows_of(session, "alaivo 9223372036854775807 * 2, 10000000000000000000001 - 1;") == [
        [18446744073709551614, 10000000000000000000000]]
    assert rows_of(session, f"alaivo {BIG} - 1;") == [[10**308 - 1]]
    assert rows_of(session, f"alaivo {BIG} * 1.5;") == [[1.5e308]]


# -------------------------------------------------------------- static kinds vs NULL

@pytest.mark.parametrize("text,fragment", [
    # `rehefa a + 1` is refused (not a condition); a NULL operand must not change that
    ("alaivo a ao@ t rehefa a + null;", "tsy maintsy booléen"),
    ("alaivo 1 rehefa null + 1;", "tsy maintsy booléen"),
    ("alaivo a ao@ t rehefa -null;", "tsy maintsy booléen"),
    # `(a = 1) + 1` is refused (arithmetic on a boolean); so is it when the
    # comparison folds to NULL
    ("alaivo (null = 1) + 1;", "booléen"),
    ("alaivo -(null = 1);", "booléen"),
    ("alaivo (null = 1) = 5;", "booléen sy tsy booléen"),
    ("alaivo (null = 1) < 5;", "booléen"),
    ("alaivo !(null + 1);", "mila booléen"),
    ("alaivo (null + 1) ary (1 = 1);", "mila booléen"),
    ("alaivo sum(null = 1) ao@ t;", "booléen"),
])
def test_null_operand_keeps_the_static_kind(session, text, fragment):
    assert fragment in error_of(session, text)


def test_null_still_works_where_a_value_or_condition_is_expected(session):
    assert rows_of(session, "alaivo null + 1, -null, (null = 1) ary (1 = 0), null dia null;") == [
        [None, None, False, True]]
    assert rows_of(session, "alaivo a ao@ t rehefa null;") == []
    assert rows_of(session, "alaivo a ao@ t rehefa (null = 1) na a = 2;") == [[2]]


# -------------------------------------------------------------- error texts

def test_comparison_of_comparisons_is_shown_with_its_parentheses(session):
    message = error_of(session, "alaivo (1 = 1) < (1 = 0);")
    assert "(1 = 1) < (1 = 0)" in message


# -------------------------------------------------------------- text that is not UTF-8

def test_lone_surrogate_in_a_string_is_a_syntax_error_not_an_internal_error(session):
    # The embedded runner turns bytes that are not UTF-8 in `-e` into lone
    # surrogates; such a string can be neither stored nor sent.
    outcomes = session.execute("alaivo 1;\nmanampia ao@ t (b) sanda ('x\udcff');\nalaivo count(*) ao@ t;")
    assert [o.ok for o in outcomes] == [True, False, True]
    message = outcomes[1].message
    assert message != INTERNAL_ERROR
    assert "andalana 2, tsanganana 29" in message and "U+DCFF" in message
    assert outcomes[2].relation.rows == [[3]]
    assert "U+DCFF" in error_of(session, "alaivo 'x\udcff';")
    assert "U+DCFF" in error_of(session, "alaivo 1 -- \udcff\n;")


def test_domain_errors_print_numbers_as_the_language_writes_them(session):
    # LANGUAGE.md 1 and 4: no exponent (`1e3` is a syntax error), shortest form
    outcomes = session.execute(
        "manamboara tabilao dom (x ISA(0.000001, 100000000000000000000.5));"
        "manampia ao@ dom sanda (0.0000001);"
        "manampia ao@ dom sanda (200000000000000000000.5);")
    assert outcomes[0].ok
    assert "Ny sanda 0.0000001 " in outcomes[1].message
    assert "ISA(0.000001,100000000000000000000)" in outcomes[1].message
    assert "Ny sanda 200000000000000000000 " in outcomes[2].message


# -------------------------------------------------------------- 5 = 5.0 everywhere

@pytest.fixture(scope="module")
def numbers(session):
    """A hybrid column holding 5, 5.0, '5' and NULL; enough rows for the equality index."""
    filler = ", ".join(f"({i + 100}, 'f')" for i in range(40))
    outcomes = session.execute(
        "manamboara tabilao h (k ISA(null,null):LAHATSORATRA(null,null), tag LAHATSORATRA(null,null));"
        "manampia ao@ h sanda (5, 'int'), (5.0, 'dec'), ('5', 'str'), (null, 'nul'), " + filler + ";"
        "manamboara tabilao h2 (k ISA(null,null):LAHATSORATRA(null,null), other LAHATSORATRA(null,null));"
        "manampia ao@ h2 sanda (5.0, 'x'), ('5', 'y'), (null, 'z');")
    assert all(o.ok for o in outcomes), [o.message for o in outcomes]
    return session


def test_five_equals_five_point_zero_in_where_and_in_the_equality_index(numbers):
    # 44 rows: `k = literal` goes through the index; the `na` forms scan
    for literal in ("5", "5.0"):
        indexed = rows_of(numbers, f"alaivo tag ao@ h rehefa k = {literal};")
        scanned = rows_of(numbers, f"alaivo tag ao@ h rehefa k = {literal} na 1 = 0;")
        assert indexed == scanned == [["int"], ["dec"]]
    assert rows_of(numbers, "alaivo tag ao@ h rehefa k = '5';") == [["str"]]
    assert rows_of(numbers, "alaivo tag ao@ h rehefa k = null;") == []
    assert rows_of(numbers, "alaivo tag ao@ h rehefa k = 5 ary tag != 'int';") == [["dec"]]


def test_five_and_five_point_zero_are_one_group_one_distinct_row_one_join_key(numbers):
    groups = rows_of(numbers, "alaivo count(*) ao@ h rehefa tag != 'f' vondrona k;")
    assert groups == [[2], [1], [1]]          # {5, 5.0}, {'5'}, {NULL}
    # set operators keep the first of equal rows; NULL rows are equal there
    assert rows_of(numbers, "alaivo k ao@ h rehefa tag != 'f' ankambana alaivo k ao@ h2;") == [
        [5], ["5"], [None]]
    assert rows_of(numbers, "alaivo 5.0 atifitra alaivo 5;") == [[5.0]]
    assert rows_of(numbers, "alaivo 5 analana alaivo 5.0;") == []
    assert rows_of(numbers, "alaivo '5' analana alaivo 5;") == [["5"]]
    assert rows_of(numbers, "alaivo null atifitra alaivo null;") == [[None]]
    # joins: 5 and 5.0 match each other, never '5', and NULL matches nothing
    joined = rows_of(numbers, "alaivo h.tag, h2.other ao@ h tonona h2 ka h.k = h2.k;")
    assert joined == [["int", "x"], ["dec", "x"], ["str", "y"]]
    natural = rows_of(numbers, "alaivo tag, other ao@ h tonona:natoraly h2;")
    assert natural == joined


def test_a_folded_null_condition_is_still_a_boolean_and_cannot_be_stored(session):
    assert "booléen" in error_of(session, "manampia ao@ t (a) sanda (null = 1);")
    assert rows_of(session, "alaivo count(*) ao@ t;") == [[3]]


def test_count_counts_booleans_like_any_other_value(session):
    # grouping, ordering and set operators take booleans; count(x) only counts
    # the non-NULL values, whatever they are (sum, avg, min, max still refuse)
    assert rows_of(session, "alaivo count(a = 1), count(*) ao@ t;") == [[2, 3]]
    assert rows_of(session, "alaivo count(k) ao@ (alaivo a > 1 antso k ao@ t) d;") == [[2]]
    for function in ("sum", "avg", "min", "max"):
        assert "booléen" in error_of(session, f"alaivo {function}(a = 1) ao@ t;")


# -------------------------------------------------------------- alaharo: output columns first

@pytest.fixture(scope="module")
def marks(session):
    outcomes = session.execute(
        "manamboara tabilao m (a ISA(null,null), b ISA(null,null), g LAHATSORATRA(null,null));"
        "manampia ao@ m sanda (1, 30, 'p'), (2, 10, 'q'), (3, 20, 'p'), (null, 40, 'q');")
    assert all(o.ok for o in outcomes), [o.message for o in outcomes]
    return session


def test_names_inside_an_order_expression_resolve_against_the_output_first(marks):
    # LANGUAGE.md 4b: "alaharo keys resolve against the output columns first,
    # then the source" -- for the names inside an expression key too
    assert rows_of(marks, "alaivo a + 1 antso k ao@ m alaharo k * -1;") == [
        [None], [4], [3], [2]]
    # `a` is the output alias of b here, not the source column a
    assert rows_of(marks, "alaivo b antso a ao@ m alaharo a * -1;") == [[40], [30], [20], [10]]
    # names that are not output columns still come from the source
    assert rows_of(marks, "alaivo a ao@ m alaharo a - b;") == [[None], [1], [3], [2]]
    assert rows_of(marks, "alaivo g ao@ m alaharo b / 10 * -1;") == [["q"], ["p"], ["p"], ["q"]]


def test_order_expression_over_output_columns_of_a_grouped_query(marks):
    assert rows_of(marks, "alaivo g, count(*) antso n, sum(b) antso s ao@ m vondrona g "
                          "alaharo s * -1;") == [["p", 2, 50], ["q", 2, 50]]
    assert rows_of(marks, "alaivo g, sum(b) antso s ao@ m vondrona g alaharo s - 60, g midina;") == [
        ["q", 50], ["p", 50]]
    assert rows_of(marks, "alaivo g, min(b) antso s ao@ m vondrona g alaharo s * -1;") == [
        ["p", 20], ["q", 10]]
    # inside an aggregate's argument a name is a source column (row level)
    assert rows_of(marks, "alaivo g, count(*) antso b ao@ m vondrona g alaharo max(b) midina;") == [
        ["q", 2], ["p", 2]]


def test_an_ambiguous_output_name_in_an_order_expression_is_an_error(marks):
    assert "ambigu" in error_of(marks, "alaivo a antso k, b antso k ao@ m alaharo k + 1;")
