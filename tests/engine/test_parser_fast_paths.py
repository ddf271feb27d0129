"""The parser's fast paths give exactly what the plain SLY machinery gives.

Two shortcuts are checked against a reference on generated statements:
- the literal-rows INSERT fast path (`engine.language.literal_rows`) against the
  grammar (`StatementParser.parse_with_grammar`): same AST (compared by
  `repr`, so `1` and `1.0`, `0.0` and `-0.0` differ) or, when the fast path
  declines, the same error text, line and column through `parse`;
- the lean LALR driver (`engine.language.parse_loop`) against SLY's own
  `Parser.parse` on the same tables: same AST or the same error;
- the lexer's `tokens_of` against SLY's `tokenize`: the same tokens (type,
  value, index, end) and the same error.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sly import Parser

from engine.errors import TahirySyntaxError
from engine.language import ast
from engine.language import parser as parser_module
from engine.language.lexer import KEYWORDS, SyntaxProblem, TahiryLexer
from engine.language.literal_rows import parse_literal_insert
from engine.language.parser import StatementParser

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(parse, text: str):
    """What parsing `text` gives: the AST's repr, or the error's sentence and position."""
    try:
        return "ast", repr(parse(text))
    except TahirySyntaxError as error:
        return "error", error.sentence, error.line, error.column


def grammar_outcome(text: str):
    return outcome(StatementParser().parse_with_grammar, text)


def check_agrees(text: str) -> bool:
    """Fast path and grammar agree on `text`; True when the fast path took it."""
    reference = grammar_outcome(text)
    fast = parse_literal_insert(text)
    if fast is not None:
        assert reference == ("ast", repr(fast)), text
    # The per-row tier alone (the JSON tier takes canonical rows first).
    general = parse_literal_insert(text, json_tier=False)
    assert (general is not None) == (fast is not None), text
    if general is not None:
        assert repr(general) == repr(fast), text
    # Through the public entry point, whichever path it takes.
    assert outcome(StatementParser(cache_size=0).parse, text) == reference, text
    return fast is not None


# ---------------------------------------------------------------- literal rows: fixed cases

TAKEN = [
    "manampia ao@ t sanda (1)",
    "manampia ao@ t sanda (1, 'x''y', \"a\"\"b\", null, NULL, -2.5, - 3, -0, -0.0, 007)",
    "MANAMPIA AO @ T (a, B) SANDA (1, 2), (3, 4);",
    "manampia ao t ( ) sanda ('')",
    "manampia ao t () sanda (\"\")",
    "manampia ao@ t sanda ('a\\nb\\t\\'c\\\\', 'multi\nline')",
    "\n\tmanampia\x0bao@t\fsanda(1,'a');  \n",
    "manampia ao@ mpianatra (id, anarana, taona) sanda " + ", ".join(
        f"({i}, 'anarana{i}', {-i}.5)" for i in range(200)),
]

DECLINED = [
    "manampia ao@ t sanda (1 + 2)",          # an expression
    "manampia ao@ t sanda (a)",              # a column name
    "manampia ao@ t sanda (- -1)",           # nested minus
    "manampia ao@ t sanda (1) -- comment",
    "manampia ao@ t #sanda (1)",
    "manampia ao@ tsanda (1)",               # one word, not `t sanda`
    "manampia aot sanda (1)",
    "manampia ao@ sanda sanda (1)",          # keyword as a table name
    "manampia ao@ t (a, sanda) sanda (1)",
    "manampia ao@ t (a,) sanda (1)",
    "manampia ao@ t.x sanda (1)",
    "manampia ao@ t sanda (1.)",
    "manampia ao@ t sanda (1.5.2)",
    "manampia ao@ t sanda (2x)",
    "manampia ao@ t sanda (null.x)",
    "manampia ao@ t sanda ('a'b)",
    "manampia ao@ t sanda ('open)",
    "manampia ao@ t sanda ()",
    "manampia ao@ t sanda (1),",
    "manampia ao@ t sanda (1); (2)",
    "manampia ao@ t sanda (1)\xa0",          # not a character the lexer skips
    "manampia ao@ t sanda (" + "9" * 5000 + ")",  # too many digits
    "manampia ao@ t sanda (" + "9" * 400 + ".5)",  # float overflows
    "manampia ao@ t alaivo 1",
]


def test_fast_path_takes_plain_literal_rows():
    for text in TAKEN:
        assert check_agrees(text), text


def test_fast_path_declines_everything_else_and_the_grammar_decides():
    for text in DECLINED:
        assert not check_agrees(text), text


def test_canonical_rows_take_the_json_tier_and_others_the_row_tier():
    from engine.language.literal_rows import _json_rows
    for text, json_shaped in [
        ("manampia ao@ t sanda (1, -2.5, 'a b', \"c\", null), (0, -0, 0.0)", True),
        ("manampia ao@ t sanda (1) ;", True),
        ("manampia ao@ t sanda (007)", False),
        ("manampia ao@ t sanda (- 1)", False),
        ("manampia ao@ t sanda ('it''s')", False),
        ("manampia ao@ t sanda ('a\\n')", False),
        ("manampia ao@ t sanda ('(x)')", False),
        ("manampia ao@ t sanda ('tab\tin')", False),
        ("manampia ao@ t sanda (NULL)", False),
        ("manampia ao@ t sanda (1)\x0b", False),
        ("manampia ao@ t sanda (" + "1" * 150 + ")", False),
    ]:
        start = len("manampia ao@ t sanda")
        assert (_json_rows(text, start) is not None) == json_shaped, text
        assert check_agrees(text), text


def test_fast_path_values_have_the_grammar_types():
    insert = parse_literal_insert("manampia ao@ t sanda (1, 1.0, -0.0, 'a', null)")
    assert [type(v.value) for v in insert.rows[0]] == [int, float, float, str, type(None)]
    assert repr(insert.rows[0][2].value) == "-0.0"
    assert insert == ast.Insert("t", None, rows=((
        ast.Literal(1), ast.Literal(1.0), ast.Literal(-0.0), ast.Literal("a"), ast.Literal(None)),))


def test_declined_error_keeps_the_script_position():
    text = "manampia ao@ t sanda (1), (2 +)"
    error = None
    try:
        StatementParser().parse(text, line=4, column=7)
    except TahirySyntaxError as caught:
        error = caught
    assert error is not None and (error.line, error.column) == (4, 7 + text.index(")", 28))


# ---------------------------------------------------------------- literal rows: generated

SPACES = [" ", "", "  ", "\n", "\t", "\x0b", "\f", "\r\n"]
ODD_SPACES = ["\xa0", " -- c\n", "//x\n", "\u2028"]
NUMBERS = [st.integers(0, 10**12).map(str),
           st.tuples(st.integers(0, 999), st.integers(0, 999)).map(lambda p: f"{p[0]}.{p[1]}"),
           st.sampled_from(["0", "007", "0.0", "00.50"])]
ODD_NUMBERS = ["1.", "1.5.2", "2x", "1_0", "9" * 320, "9" * 5000, "1e5", "1\u00b2"]
STRING_PIECES = ["a", "b", " ", "é", "\n", "n", "\\n", "\\t", "\\\\", "\\'", '\\"', "\\x"]
ODD_STRINGS = ["'open", "'a\\'", "'a''", "\"b", "'a'b'"]


def pick(draw, good, odd, odd_chance=8):
    """Mostly one of `good` (strategies or values), now and then one of `odd`."""
    if odd and draw(st.integers(0, odd_chance)) == odd_chance // 2 + 1:
        return draw(st.sampled_from(odd))
    chosen = draw(st.sampled_from(good))
    return draw(chosen) if isinstance(chosen, st.SearchStrategy) else chosen


@st.composite
def values(draw):
    kind = pick(draw, ["number", "negative", "string", "null"], ["odd"], odd_chance=12)
    if kind == "number":
        return pick(draw, NUMBERS, ODD_NUMBERS, odd_chance=20)
    if kind == "negative":
        minus = pick(draw, ["-", "- ", "-\n  "], ["--", "- -", "-(", "-- "], odd_chance=20)
        return minus + pick(draw, NUMBERS, ODD_NUMBERS, odd_chance=20)
    if kind == "string":
        quote = draw(st.sampled_from(["'", '"']))
        pieces = draw(st.lists(st.sampled_from(STRING_PIECES + [quote * 2]), max_size=5))
        return pick(draw, [quote + "".join(pieces) + quote], ODD_STRINGS, odd_chance=30)
    if kind == "null":
        return pick(draw, ["null", "NULL", "Null"], ["nullx", "null.x", "nul"], odd_chance=20)
    return pick(draw, ["1", "'a'", "null"], [
        "a", "t.a", "1 + 2", "-a", "(1)", "f(1)", "count(*)", "1 * -2", "'a' 'b'", "sanda",
        "-- c\n1", "alaivo 1", "!1", "1 dia null", "", "1,", "'open", "(", ")",
    ], odd_chance=1)


@st.composite
def insert_statements(draw):
    def space():
        return pick(draw, SPACES, ODD_SPACES, odd_chance=30)

    keyword = pick(draw, ["manampia", "MANAMPIA", "Manampia"], ["manampiana", "#manampia"])
    into = pick(draw, ["ao@", "ao @", "ao", "AO@", "ao@ "], ["#ao@", "ao@@", "aot", "ao.@"])
    table = pick(draw, ["t", "mpianatra", "T_2", "été"], ["sanda", "null", "t.x", "2t", "Ao"])
    names = pick(draw, ["", "", "()", "( )", "(a)", "(a, b)", "(a,b,c)", "(é,\nb)"],
                 ["(a,)", "(sanda)", "(a b)", "(t.a)", "(a -- c\n)", "(", "(1)"])
    sanda = pick(draw, ["sanda", "SANDA", "Sanda"], ["#sanda", "sandana", "alaivo"])
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        items = draw(st.lists(values(), min_size=1, max_size=4))
        inner = ("," + space()).join(items)
        rows.append("(" + space() + inner + space() + ")")
    body = ("," + space()).join(rows)
    tail = pick(draw, ["", ";", " ;", "; ", ";\n"], [",", ";;", " -- c", ") ", "; 1"])
    return (space() + keyword + " " + space() + into + space() + table + " " + space()
            + names + space() + sanda + space() + body + tail)


@FUZZ
@given(insert_statements())
def test_fast_path_agrees_with_the_grammar_on_generated_inserts(text):
    check_agrees(text)


@FUZZ
@given(st.lists(st.lists(st.sampled_from(
    ["1", "-2", "3.25", "- 4", "'x'", "'it''s'", '"q"', "null", "''", "'\\n'"]),
    min_size=1, max_size=5), min_size=1, max_size=6), st.sampled_from(["", " ", "\n  "]))
def test_well_formed_literal_inserts_take_the_fast_path(rows, space):
    body = ("," + space).join("(" + ("," + space).join(row) + ")" for row in rows)
    assert check_agrees(f"manampia ao@ t sanda{space} {body}")


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("(),'\"\\-0123456789.nulNUL \n\t\xa0#;a/")),
               max_size=40))
def test_fast_path_agrees_with_the_grammar_on_character_soup(body):
    check_agrees("manampia ao@ t sanda (" + body)
    check_agrees("manampia ao@ t sanda " + body)


# ---------------------------------------------------------------- the lean LALR driver


def sly_outcome(text: str):
    """The outcome with SLY's own `Parser.parse` driving the same grammar."""
    lean = parser_module.run_parser

    def sly_parse(grammar, tokens):
        def watched():
            # What the lean driver keeps for error(): the states when SLY asks for a token.
            for token in tokens:
                grammar.states_before_lookahead = list(grammar.statestack)
                yield token
            grammar.states_before_lookahead = list(grammar.statestack)
        return Parser.parse(grammar, watched())

    parser_module.run_parser = sly_parse
    try:
        return outcome(StatementParser().parse_with_grammar, text)
    finally:
        parser_module.run_parser = lean


STATEMENTS = [
    "alaivo * ao@ t rehefa id = 123",
    "alaivo m.anarana antso anarana, count(n.taranja) isa, avg(n.naoty) ao@ mpianatra m "
    "tonona naoty n ka m.id = n.mid tonona:avia@ kilasy k ka k.id = m.kid "
    "rehefa n.naoty >= 10 ary (m.taona > 2000 na m.anarana != 'Rabe') ary k.x dia tsy null "
    "vondrona m.anarana, k.anarana alaharo isa midina, anarana miakatra fetra 10 20",
    "alaivo id ao@ mpianatra #analana@ alaivo id ao@ naoty #rehefa naoty < 10",
    "alaivo * ao@ (alaivo a ao@ t fetra 1 3) x tonona:natoraly@ u",
    "manamboara jery v @ alaivo a + 1 ao@ t -- c\n rehefa -a < 2",
    "havaozy naoty ova naoty = naoty + 1, b = -(2 * c) rehefa taranja = \"BD\"",
    "fafao ao@ naoty rehefa naoty dia null na !(x = 1)",
    "manampia ao@ t (a, b) sanda (1 + 2, 'x''y'), (-2.5, null)",
    "manampia ao@ t alaivo * ao@ u",
    "manamboara tabilao t ( a ISA(0,20):DATY, b LAHATSORATRA(null,5), c TANISA('a', -1) )",
    "manamboara efitra d (ISA(-1, 2.5))",
    "ampiasao db", "asehoy ny tabilao", "ravao ny jery v", "manamboara tahiry x",
]
PIECES = [" ", "(", ")", ",", "1", "a", "*", "-", "=", "<", "ary", "na", "ao@", "'s'",
          "alaivo", "rehefa", "fetra", "tonona", "ka", "dia", "null", "#", ";", "@", "sanda"]


@FUZZ
@given(st.sampled_from(STATEMENTS), st.data())
def test_lean_driver_agrees_with_sly_on_mutated_statements(text, data):
    position = data.draw(st.integers(0, len(text)))
    cut = data.draw(st.integers(0, 4))
    inserted = data.draw(st.sampled_from(PIECES + [""]))
    mutated = text[:position] + inserted + text[position + cut:]
    assert outcome(StatementParser().parse_with_grammar, mutated) == sly_outcome(mutated)


def test_lean_driver_agrees_with_sly_on_valid_statements():
    for text in STATEMENTS:
        lean = outcome(StatementParser().parse_with_grammar, text)
        assert lean[0] == "ast", text
        assert lean == sly_outcome(text)


def test_lean_driver_agrees_with_sly_on_errors():
    for text in ["alaivo", "alaivo * ao@", "alaivo 1 < 2 < 3", "alaivo a ao@ t;;",
                 "manamboara tabilao t (a ISA(1))", "alaivo * ao@ (alaivo 1)", "(" * 60,
                 "alaivo " + "(" * 51 + "a" + ")" * 51, "alaivo " + " + ".join(["a"] * 300)]:
        lean = outcome(StatementParser().parse_with_grammar, text)
        assert lean[0] == "error", text
        assert lean == sly_outcome(text)


# ---------------------------------------------------------------- the inline tokenizer


def token_stream(tokenize, text: str) -> list[tuple]:
    stream = []
    try:
        for token in tokenize(text):
            stream.append((token.type, token.value, token.index, token.end, token.lineno))
    except SyntaxProblem as problem:
        stream.append(("error", problem.detail, problem.index))
    return stream


def check_same_tokens(text: str) -> None:
    lexer = TahiryLexer()
    reference = token_stream(lexer.tokenize, text)
    assert token_stream(TahiryLexer().tokens_of, text) == reference, text
    # A lexer object is reused from one statement to the next (the parser
    # resets its parenthesis depth first).
    lexer.paren_depth = 0
    assert token_stream(lexer.tokens_of, text) == reference, text


LEXER_WORDS = sorted(KEYWORDS) + [
    "ALAIVO", "Tonona:Avia@", "tonona:", "tonona:x", "a.b", "a.", "a.alaivo", "x.y.z", "12", "1.5",
    "1.", "2x", "'s'", "'it''s", "\"q\"", "'", "#", "# rehefa", "#x", "-", "+", "^", "- alaivo",
    "(", ")", "--c\n", "//c\n", "!=", "<=", "<", "=", "!", "@", ",", ";", ":", "*", "/", "é", "€",
    "\xa0", "\n", "\t", " ",
]


@FUZZ
@given(st.lists(st.sampled_from(LEXER_WORDS), max_size=25), st.sampled_from([" ", "", "\n"]))
def test_inline_tokenizer_agrees_with_sly_on_token_soup(words, glue):
    check_same_tokens(glue.join(words))


@FUZZ
@given(st.text(max_size=80))
def test_inline_tokenizer_agrees_with_sly_on_random_text(text):
    check_same_tokens(text)


def test_inline_tokenizer_agrees_with_sly_on_statements():
    for text in STATEMENTS + TAKEN + DECLINED:
        check_same_tokens(text)
