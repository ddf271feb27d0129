"""Fuzzing the splitter and parser: they return or raise TahiryError, nothing else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import TahiryError, TahirySyntaxError
from engine.language import ast
from engine.language.lexer import KEYWORDS
from engine.language.parser import StatementParser
from engine.language.script import StatementSplitter, normalise_statement, split_statements

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

STATEMENT_TYPES = (ast.Use, ast.Show, ast.CreateDatabase, ast.CreateTable, ast.CreateDomain,
                   ast.CreateView, ast.Drop, ast.Insert, ast.Update, ast.Delete, ast.Query,
                   ast.Describe, ast.CreateAccount, ast.DropAccount, ast.SetPassword, ast.Grant,
                   ast.ShowAccounts)

VALID = [
    "alaivo anarana, count(taranja) antso isa, avg(naoty) ao@ mpianatra "
    "#tonona:natoraly@ naoty #rehefa naoty >= 10 #vondrona (anarana) alaharo anarana",
    "alaivo id ao@ mpianatra #analana@ alaivo id ao@ naoty #rehefa naoty < 10",
    "manamboara jery tsara @ alaivo * ao@ naoty #rehefa naoty >= 15",
    "havaozy naoty ova naoty = naoty + 1 rehefa taranja = \"BD\"",
    "fafao ao@ naoty rehefa naoty dia tsy null",
    "manampia ao@ t (a, b) sanda (1, 'x''y'), (-2.5, null)",
    "manamboara tabilao t ( a ISA(0,20):DATY, b LAHATSORATRA(null,5), c TANISA('a', 1) )",
    "alaivo * ao@ (alaivo a ao@ t fetra 1 3) x tonona:avia@ u ka x.a = u.b na !(u.c = 2)",
    # the account statements (engine/language/account_syntax.py)
    "manamboara mpampiasa rabe tenimiafina \"tsiambaratelo\" mpitantana",
    "ovay ny tenimiafina rabe 'it''s_a_secret'",
    "omeo rabe zo manoratra ao@ sekoly",
    "esory rabe zo mamaky #ao sekoly",
    "ravao ny mpampiasa rabe",
    "asehoy ny mpampiasa",
]

WORDS = sorted(KEYWORDS) + [
    "#", "@", "(", ")", ",", ";", ":", "*", "+", "-", "/", "^", "=", "!=", "<", "<=", ">", ">=",
    "!", ".", "'", '"', "'s'", "12", "1.5", "007", "x", "t.a", "count", "tonona:avia", "tonona:",
    "isa", "ISA(1,2)", "daty", "--", "//", "\n", "\\",
    "mpampiasa", "tenimiafina", "mpitantana", "zo", "mamaky", "manoratra", "omeo", "esory", "ovay",
]


def check_parse(parser: StatementParser, text: str) -> None:
    try:
        result = parser.parse(text)
    except TahirySyntaxError as error:
        assert error.line >= 1 and error.column >= 1
        assert "Traceback" not in error.sentence
        return
    except TahiryError:
        return
    assert result is None or isinstance(result, STATEMENT_TYPES)


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text):
    check_parse(StatementParser(), text)


@FUZZ
@given(st.lists(st.sampled_from(WORDS), max_size=30), st.sampled_from([" ", "", "  \n"]))
def test_token_soup(words, glue):
    check_parse(StatementParser(), glue.join(words))


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_mutated_valid_statements(text, data):
    position = data.draw(st.integers(0, len(text)))
    span = data.draw(st.integers(0, 6))
    insert = data.draw(st.sampled_from(WORDS + ["", " "]))
    mutated = text[:position] + insert + text[position + span:]
    parser = StatementParser()
    check_parse(parser, mutated)
    # The parser still works after whatever happened.
    assert isinstance(parser.parse(text), STATEMENT_TYPES)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("ab;'\"\\-/\n #")), max_size=60), st.data())
def test_chunked_splitting_matches_whole_splitting(script, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(script)), max_size=8)))
    splitter = StatementSplitter()
    pieces = []
    previous = 0
    for cut in cuts + [len(script)]:
        pieces += splitter.feed(script[previous:cut])
        previous = cut
    last = splitter.finish()
    if last is not None:
        pieces.append(last)
    assert pieces == split_statements(script)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("ab1;'\"\\-/\n #=")), max_size=60))
def test_splitter_and_lexer_agree_on_statement_ends(script):
    # Every piece the splitter cuts either parses or fails cleanly, and the
    # pieces joined back with ';' cover every non-blank character.
    parser = StatementParser()
    for piece in split_statements(script):
        check_parse(parser, piece.text)
        assert script.splitlines()[piece.line - 1][piece.column - 1:].startswith(
            piece.text.split("\n")[0])


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_normalised_text_parses_to_the_same_ast(text, data):
    noisy = text.replace(" ", data.draw(st.sampled_from(["  ", "\n", " -- c\n ", "\t"])))
    parser = StatementParser()
    assert parser.parse(normalise_statement(noisy)) == parser.parse(text)
