"""Lexical rules of LANGUAGE.md sections 1 and 4b, through the lexer and the parser."""

from __future__ import annotations

import pytest

from engine.errors import TahirySyntaxError
from engine.language import ast
from engine.language.lexer import TahiryLexer
from engine.language.parser import StatementParser

PARSER = StatementParser()


def parse(text: str):
    return PARSER.parse(text)


def item_expr(text: str) -> ast.Expr:
    """The expression of the single select item of `alaivo <text>`."""
    return parse(f"alaivo {text}").select.items[0].expr


def error(text: str, line: int = 1, column: int = 1) -> TahirySyntaxError:
    with pytest.raises(TahirySyntaxError) as caught:
        PARSER.parse(text, line, column)
    return caught.value


def token_types(text: str) -> list[str]:
    return [token.type for token in TahiryLexer().tokenize(text)]


# ---------------------------------------------------------------- keywords


@pytest.mark.parametrize("word", ["ALAIVO", "alaivo", "Alaivo", "aLaIvO"])
def test_keywords_are_case_insensitive(word):
    assert parse(f"{word} 1 AO@ t REHEFA a = 1").select.where == ast.Binary(
        "=", ast.ColumnRef("a"), ast.Literal(1))


def test_keyword_after_table_starts_a_clause_not_an_alias():
    core = parse("alaivo * ao@ t rehefa a = 1").select
    assert core.source == ast.TableSource("t")
    assert core.where is not None


def test_keyword_prefix_is_a_name():
    core = parse("alaivo alaivox ao@ aox").select
    assert core.items[0].expr == ast.ColumnRef("alaivox")
    assert core.source == ast.TableSource("aox")


def test_alaivo_star_glued_is_not_split_on_prefixes():
    err = error("alaivo*aot")  # the original read this as `alaivo * ao@ t`
    assert err.column == 8 and "'aot'" in err.sentence


@pytest.mark.parametrize("statement", [
    "alaivo rehefa ao@ t",
    "alaivo a ao@ fetra",
    "manamboara tabilao alaivo ( a ISA(1,2) )",
    "manamboara tabilao t ( rehefa ISA(1,2) )",
    "alaivo a antso ka ao@ t",
    "alaivo t.rehefa ao@ t",
    "havaozy t ova na = 1",
])
def test_reserved_words_cannot_be_names(statement):
    assert "Diso ny fanoratana" in error(statement).sentence


def test_reserved_word_error_says_so():
    assert "teny voatokana" in error("alaivo a ao@ fetra").sentence


@pytest.mark.parametrize("word", ["isa", "lahatsoratra", "Daty", "TANISA"])
def test_type_words_are_names_outside_domains(word):
    core = parse(f"alaivo {word} antso {word} ao@ {word} rehefa {word}.{word} = 1").select
    assert core.items[0] == ast.SelectItem(ast.ColumnRef(word), word, word)
    assert core.source == ast.TableSource(word)


# ---------------------------------------------------------------- # and @


@pytest.mark.parametrize("statement", [
    "alaivo a #antso b #ao@ t #tonona u #ka a = 1 #ary b = 2 #na c = 3 "
    "#rehefa a = 1 #vondrona a #alaharo a #fetra 1 #ankambana@ alaivo 1 #analana alaivo 2 #atifitra alaivo 3",
    "alaivo a # antso b #   ao@ t #\ttonona:avia@ u #  ka a = 1",
])
def test_hash_before_clause_keywords_is_ignored(statement):
    assert isinstance(parse(statement), ast.Query)


def test_hash_before_sanda():
    assert parse("manampia ao@ t #sanda (1)") == ast.Insert("t", None, ((ast.Literal(1),),))


def test_hash_forms_parse_to_the_same_ast_as_plain_forms():
    hashed = parse("alaivo a ao@ t #tonona:avia@ u #ka a = b #rehefa a > 1 #alaharo a #fetra 3")
    plain = parse("alaivo a ao@ t tonona:avia@ u ka a = b rehefa a > 1 alaharo a fetra 3")
    assert hashed == plain


@pytest.mark.parametrize("statement, column", [
    ("# alaivo 1", 1),
    ("alaivo #a ao@ t", 8),
    ("alaivo a ao@ #t", 14),
    ("alaivo a ao@ t #miakatra", 16),
    ("alaivo 1 #", 10),
    ("alaivo 1 #;", 10),
    ("alaivo 1 #+ alaivo 2", 10),
    ("manamboara #tabilao t (a ISA(1,2))", 12),
])
def test_hash_elsewhere_is_an_error_at_the_hash(statement, column):
    err = error(statement)
    assert (err.line, err.column) == (1, column)
    assert "'#'" in err.sentence


@pytest.mark.parametrize("from_clause", ["ao@t", "ao @ t", "ao@ t", "ao @t", "ao t", "AO@ t"])
def test_at_after_ao_with_free_spaces(from_clause):
    assert parse(f"alaivo * {from_clause}").select.source == ast.TableSource("t")


@pytest.mark.parametrize("join", ["tonona@", "tonona @", "tonona", "tonona:@", "tonona:anatiny@",
                                  "tonona:anatiny", "TONONA:ANATINY @"])
def test_at_after_inner_join_forms(join):
    core = parse(f"alaivo * ao@ t {join} u ka t.a = u.a").select
    assert core.joins == (ast.Join("inner", ast.TableSource("u"),
                                   ast.Binary("=", ast.ColumnRef("a", "t"), ast.ColumnRef("a", "u"))),)


@pytest.mark.parametrize("op, name", [("ankambana", "union"), ("analana", "except"),
                                      ("atifitra", "intersect"), ("+", "union"), ("-", "except"),
                                      ("^", "intersect")])
@pytest.mark.parametrize("at", ["", "@", " @", "@ "])
def test_at_after_set_operators(op, name, at):
    expr = parse(f"alaivo a ao@ t {op}{at} alaivo b ao@ u").select
    assert isinstance(expr, ast.SetOperation) and expr.op == name


@pytest.mark.parametrize("statement", [
    "alaivo @ a ao@ t",
    "alaivo a ao@ t rehefa@ a = 1",
    "alaivo a ao@ t @",
    "manamboara jery v alaivo 1",
    "alaivo a ao@ t tonona: u",
    "alaivo a ao@ t tonona : avia u ka 1 = 1",
    "alaivo a ao@ t tonona: avia u ka 1 = 1",
])
def test_at_and_colon_elsewhere_are_errors(statement):
    error(statement)


def test_unknown_join_kind_is_an_error_at_the_kind():
    err = error("alaivo * ao@ t tonona:ankoatra u")
    assert err.column == 23 and "ankoatra" in err.sentence


# ---------------------------------------------------------------- names


def test_unicode_identifiers():
    core = parse("alaivo été, _x1 ao@ mpianatra_ñ").select
    assert [item.expr for item in core.items] == [ast.ColumnRef("été"), ast.ColumnRef("_x1")]
    assert core.source == ast.TableSource("mpianatra_ñ")


def test_names_keep_their_case():
    assert item_expr("Anarana") == ast.ColumnRef("Anarana")


def test_qualified_name():
    assert item_expr("T.Col") == ast.ColumnRef("Col", "T")


@pytest.mark.parametrize("text, column", [("t . a", 10), ("t. a", 8), ("t .a", 10),
                                          ("a.b.c", 8), ("t.5", 8), (".a", 8)])
def test_malformed_qualified_names(text, column):
    err = error(f"alaivo {text}")
    assert err.column == column


def test_a_qualified_star_says_tahiry_has_none():
    """`alaivo n.*, m.anarana ...` (SQL's `t.*`) said "invalid name 'n.' (table.column
    only, without spaces)": there was no space."""
    from engine.language.messages import translate
    err = error("alaivo n.*, m.anarana ao@ naoty n tonona mpianatra m ka n.id = m.id")
    assert err.column == 8
    assert "'n.*'" in str(err) and "elanelana" not in str(err), str(err)
    english = translate("Hadisoana : " + str(err), "en")
    assert "Tahiry has no 'n.*'" in english, english


def test_identifier_cannot_start_with_digit():
    error("alaivo 1abc")


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize("text, value", [("12", 12), ("12.5", 12.5), ("007", 7), ("0", 0),
                                         ("0.25", 0.25), ("10.0", 10.0),
                                         ("123456789012345678901234567890", 123456789012345678901234567890)])
def test_numbers(text, value):
    literal = item_expr(text)
    assert literal == ast.Literal(value) and type(literal.value) is type(value)


@pytest.mark.parametrize("text", [".5", "1.", "1e3", "1E3", "12.5.3", "1_000", "12abc", "1.e3"])
def test_malformed_numbers_are_errors_at_their_start(text):
    err = error(f"alaivo {text}")
    assert (err.line, err.column) == (1, 8)


def test_negative_numbers_everywhere():
    assert item_expr("-3") == ast.Literal(-3)
    assert item_expr("- 2.5") == ast.Literal(-2.5)
    insert = parse("manampia ao@ t sanda (-1, -2.5, - 3)")
    assert insert.rows == ((ast.Literal(-1), ast.Literal(-2.5), ast.Literal(-3)),)


# ---------------------------------------------------------------- strings


@pytest.mark.parametrize("text, value", [
    ("'abc'", "abc"),
    ('"abc"', "abc"),
    ("''", ""),
    ("'it''s'", "it's"),
    ('"say ""hi"""', 'say "hi"'),
    ("'a\"b'", 'a"b'),
    ("'say \"\"hi\"\"'", 'say ""hi""'),
    ('"it\'\'s"', "it''s"),
    (r"'a\\'", "a\\"),
    ('"a\'b"', "a'b"),
    (r"'a\nb'", "a\nb"),
    (r"'a\tb'", "a\tb"),
    (r"'a\rb'", "a\rb"),
    (r"'a\\b'", "a\\b"),
    (r"'a\'b'", "a'b"),
    (r'"a\"b"', 'a"b'),
    (r"'\q'", "q"),
    ("'line\nbreak'", "line\nbreak"),
    ("'--not a comment'", "--not a comment"),
    ("'é ñ 日本'", "é ñ 日本"),
])
def test_strings(text, value):
    assert item_expr(text) == ast.Literal(value)


def test_string_that_looks_like_a_number_stays_a_string():
    assert item_expr("'1'") == ast.Literal("1")


@pytest.mark.parametrize("text, line, column", [
    ("alaivo 'abc", 1, 8),
    ("alaivo \"abc", 1, 8),
    ("alaivo 1,\n  'ab''", 2, 3),
    ("alaivo 'ab\\'", 1, 8),
])
def test_unterminated_string_is_an_error_at_its_start(text, line, column):
    err = error(text)
    assert (err.line, err.column) == (line, column)
    assert "lahatsoratra" in err.sentence


# ---------------------------------------------------------------- null, comments, whitespace


@pytest.mark.parametrize("word", ["null", "NULL", "Null"])
def test_null_literal(word):
    assert item_expr(word) == ast.Literal(None)


def test_comments_are_ignored():
    statement = parse("alaivo a -- first\n , b // second\n ao@ t -- end")
    assert [item.expr for item in statement.select.items] == [ast.ColumnRef("a"), ast.ColumnRef("b")]


def test_comment_markers_inside_expressions():
    assert item_expr("4 - -1") == ast.Binary("-", ast.Literal(4), ast.Literal(-1))
    assert item_expr("4 --1\n+ 2") == ast.Binary("+", ast.Literal(4), ast.Literal(2))
    assert item_expr("4 //2\n/ 2") == ast.Binary("/", ast.Literal(4), ast.Literal(2))


@pytest.mark.parametrize("text", ["", "   ", "\n\t\r ", "-- just a comment", "// one\n-- two\n"])
def test_empty_and_comment_only_statements_parse_to_none(text):
    assert PARSER.parse(text) is None


def test_carriage_return_and_tabs_are_whitespace():
    assert parse("alaivo\r\n1\t+\r2").select.items[0].expr == ast.Binary("+", ast.Literal(1), ast.Literal(2))


@pytest.mark.parametrize("char, column", [("%", 10), ("$", 10), ("\u00a0", 10), ("?", 10), ("&", 10)])
def test_unknown_characters_are_errors_at_their_position(char, column):
    err = error(f"alaivo 1 {char} 2")
    assert err.column == column


# ---------------------------------------------------------------- operators


def test_operator_tokens():
    assert token_types("= != < <= > >= + - * / ! ( ) , ; @ :") == [
        "=", "CMP", "CMP", "CMP", "CMP", "CMP", "+", "-", "*", "/", "!", "(", ")", ",", ";", "@", ":"]


def test_minus_before_select_is_a_set_operator():
    assert token_types("1 - alaivo") == ["NUMBER", "SETOP", "ALAIVO"]
    assert token_types("1 - (\n (alaivo") == ["NUMBER", "SETOP", "(", "(", "ALAIVO"]
    assert token_types("1 - @") == ["NUMBER", "SETOP", "@"]
    assert token_types("1 - (a)") == ["NUMBER", "-", "(", "ID", ")"]
    assert token_types("1 ^ 2") == ["NUMBER", "SETOP", "NUMBER"]


# ---------------------------------------------------------------- positions


def test_error_positions_are_relative_to_the_statement_start():
    err = error("alaivo 1 %", line=5, column=10)
    assert (err.line, err.column) == (5, 19)
    err = error("alaivo 1,\n  2 %", line=5, column=10)
    assert (err.line, err.column) == (6, 5)


def test_error_message_shape():
    err = error("alaivo * ao@ t xyz abc")
    assert err.sentence.startswith("Diso ny fanoratana (syntax) amin'ny andalana 1, tsanganana 20 : ")
    assert "'abc' no hita" in err.sentence
    assert err.message.startswith("Hadisoana : Diso ny fanoratana")
