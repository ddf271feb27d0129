"""Name resolution and expression compilation (engine/evaluation/expressions.py)."""

import functools

import pytest

from engine.errors import TahiryError
from engine.evaluation.expressions import (
    ANY,
    BOOL,
    VALUE,
    RowContext,
    Scope,
    ScopeColumn,
    compile_condition,
    compile_expression,
    expression_text,
)
from engine.language.ast import Binary, ColumnRef, Literal
from tests.engine.querykit import parse

SCOPE = Scope([ScopeColumn("a", ("t",)), ScopeColumn("b", ("t",)),
               ScopeColumn("a", ("u", "x")), ScopeColumn("c", ("u",)),
               ScopeColumn("f", ("u",), ANY)])
CONTEXT = RowContext(SCOPE, "rehefa")


def expr(text):
    """The first select item of `alaivo TEXT` as an Expr."""
    return parse(f"alaivo {text}").items[0].expr


def value(text, row=(1, 2, 3, "s", None)):
    return compile_expression(expr(text), CONTEXT).function(list(row))


def holds(text, row=(1, 2, 3, "s", None)):
    return compile_condition(expr(text), CONTEXT, "rehefa")(list(row))


def error(call):
    with pytest.raises(TahiryError) as caught:
        call()
    return caught.value.sentence


def test_unqualified_name_must_match_exactly_one_column():
    assert SCOPE.resolve(ColumnRef("b")) == 1
    assert error(lambda: SCOPE.resolve(ColumnRef("zz"))) == \
        "Le champ 'zz' n'existe pas dans la relation."
    # (The hint says how to name each: its table's name first.)
    assert error(lambda: SCOPE.resolve(ColumnRef("a"))) == \
        "Le champ 'a' est ambigu. Il apparaît 2 fois dans la relation." \
        " Soraty miaraka amin'ny anaran'ny tabilao misy azy : t.a, u.a."


def test_qualified_names_use_the_table_or_alias():
    assert SCOPE.resolve(ColumnRef("a", "t")) == 0
    assert SCOPE.resolve(ColumnRef("a", "x")) == 2
    assert SCOPE.resolve(ColumnRef("a", "u")) == 2
    assert error(lambda: SCOPE.resolve(ColumnRef("b", "u"))) == \
        "Le champ 'u.b' n'existe pas dans la relation."


def test_arithmetic_and_precedence():
    assert value("t.a + b * 3") == 7
    assert value("(t.a + b) * 3") == 9
    assert value("7 / 2") == 3.5
    assert value("x.a / t.a") == 3 and type(value("x.a / t.a")) is int
    assert value("-b - 1") == -3
    assert value("f + 1") is None


def test_constants_are_folded_once():
    compiled = compile_expression(expr("1 + 2 * 3"), CONTEXT)
    assert compiled.constant and compiled.value == 7
    assert compiled.function([]) == 7


def test_comparisons_inline_and_general_paths():
    assert holds("b > 1") and holds("1 < b") and holds("b = 2.0")
    assert not holds("b > 2") and not holds("b != 2")
    assert holds("x.a >= t.a") and holds("u.c = 's'")
    assert holds("b < 2.5")              # int column against a float constant
    assert holds("u.c != 1")             # string against number: != is true
    assert not holds("u.c = 1")


def test_ordering_a_string_against_a_number_is_unknown_like_null():
    # LANGUAGE.md 4, "Mixed domains": not true, and its negation not true either.
    for condition in ("u.c > 1", "u.c <= 1", "1 < u.c", "!(u.c > 1)", "u.c >= 1 na u.c < 1"):
        assert not holds(condition), condition
    assert holds("u.c > 1 na b = 2")


def test_null_logic_in_conditions():
    assert not holds("f = 1") and not holds("f != 1")
    assert not holds("!(f = 1)")
    assert holds("f dia null") and not holds("f dia tsy null")
    assert holds("f = 1 na b = 2")
    assert not holds("f = 1 ary b = 2")
    assert holds("!(f = 1 ary b = 3)")   # NULL and false is false; not false is true


def test_a_condition_must_be_boolean():
    assert error(lambda: holds("1")) == \
        "Ny fepetra ao amin'ny 'rehefa' dia tsy maintsy booléen, fa tsy booléen ny 1."
    assert "booléen" in error(lambda: holds("b + 1"))
    assert "tsy booléen ny b" in error(lambda: holds("b ary b > 1"))
    assert "'ary'" in error(lambda: value("(b ary b > 1) dia null"))
    assert "'!'" in error(lambda: holds("!b"))
    # a column of unknown kind is checked row by row
    assert holds("f", (1, 2, 3, "s", True))
    assert "booléen" in error(lambda: holds("f", (1, 2, 3, "s", 7)))


def test_booleans_and_values_do_not_mix():
    assert "booléen" in error(lambda: value("(b > 1) + 1"))
    assert "booléen" in error(lambda: holds("(b > 1) = 1"))
    assert "booléen" in error(lambda: holds("(1 < 2) < 3"))
    assert holds("(b > 1) = (x.a > 1)")


def test_names_are_resolved_before_any_row():
    with pytest.raises(TahiryError):
        compile_condition(expr("nope = 1"), CONTEXT, "rehefa")


def test_aggregates_are_refused_in_a_row_context():
    message = error(lambda: compile_condition(expr("count(b) > 1"), CONTEXT, "rehefa"))
    assert "count(b)" in message and "rehefa" in message
    assert "foo" in error(lambda: compile_expression(expr("foo(b)"), CONTEXT))


def test_division_by_zero_in_a_constant_fails_at_compile_time():
    assert "aotra" in error(lambda: compile_expression(expr("1 / 0"), CONTEXT))


def test_very_deep_expressions_still_compile():
    deep = functools.reduce(lambda e, _: Binary("+", e, ColumnRef("b")), range(300),
                            ColumnRef("b"))
    assert compile_expression(deep, CONTEXT).function([1, 2, 3, "s", None]) == 602


@pytest.mark.parametrize("word", ["na", "ary"])
@pytest.mark.parametrize("terms", [150, 199, 300])
def test_very_long_conditions_still_compile(word, terms):
    """A condition's `na`/`ary` chain short-circuits in generated code: once deeper
    than CPython's parser takes (~200 parentheses) it used to fail as an internal error."""
    chain = functools.reduce(
        lambda e, n: Binary(word, e, Binary("=", ColumnRef("b"), Literal(n))), range(1, terms),
        Binary("=", ColumnRef("b"), Literal(0)))
    condition = compile_condition(chain, CONTEXT, "rehefa")
    assert condition([1, 2, 3, "s", None]) is (word == "na")
    assert condition([1, 0, 3, "s", None]) is (word == "na" or terms == 1)


def test_kinds():
    assert compile_expression(expr("b + 1"), CONTEXT).kind == VALUE
    assert compile_expression(expr("b > 1"), CONTEXT).kind == BOOL
    assert compile_expression(Literal(None), CONTEXT).kind == ANY


def test_expression_text():
    assert expression_text(expr("a - (b - 1)")) == "a - (b - 1)"
    assert expression_text(expr("(a + b) * 2")) == "(a + b) * 2"
    assert expression_text(expr("count(*)")) == "count(*)"
    assert expression_text(expr("'x' = t.b")) == "'x' = t.b"
