"""The account statements' syntax (engine/language/account_syntax.py, docs/LANGUAGE.md 2).

Their words are not reserved, and every other statement parses, and fails,
exactly as before they existed.
"""

from __future__ import annotations

import pytest

from engine import Session, Store
from engine.errors import TahirySyntaxError
from engine.language import ast
from engine.language.account_syntax import may_set_password
from engine.language.parser import StatementParser
from engine.language.secrets import redact_secrets


@pytest.fixture
def parser():
    return StatementParser()


@pytest.mark.parametrize("text, expected", [
    ('manamboara mpampiasa rabe tenimiafina "tsiambaratelo";',
     ast.CreateAccount("rabe", "tsiambaratelo", False)),
    ("MANAMBOARA Mpampiasa Rabe TENIMIAFINA 'a''b\\\"c' MPITANTANA",
     ast.CreateAccount("Rabe", "a'b\"c", True)),
    ("ravao ny mpampiasa rabe;", ast.DropAccount("rabe")),
    ("Ovay NY tenimiafina rabe 'vaovao'", ast.SetPassword("rabe", "vaovao")),
    ("omeo rabe zo mamaky ao@ sekoly;", ast.Grant("rabe", "read", "sekoly", True)),
    ("omeo rabe zo MANORATRA #ao @ sekoly", ast.Grant("rabe", "write", "sekoly", True)),
    ("esory rabe zo manoratra ao sekoly -- comment\n;", ast.Grant("rabe", "write", "sekoly", False)),
    ("asehoy ny mpampiasa", ast.ShowAccounts()),
    ("-- first a comment\n  asehoy\nny\tmpampiasa ;", ast.ShowAccounts()),
])
def test_the_account_statements_parse(parser, text, expected):
    assert parser.parse(text) == expected


def test_the_password_is_not_in_the_repr(parser):
    assert "tsiambaratelo" not in repr(parser.parse('ovay ny tenimiafina rabe "tsiambaratelo"'))


def test_the_words_stay_names_of_tables_and_columns(tmp_path):
    session = Session(Store(tmp_path / "data"))
    for text in ["manamboara tahiry mpampiasa", "ampiasao mpampiasa",
                 "manamboara tabilao mpampiasa (zo ISA(0,9), tenimiafina LAHATSORATRA(null,null),"
                 " omeo ISA(0,9), esory ISA(0,9), ovay ISA(0,9), mamaky ISA(0,9))",
                 "manampia ao@ mpampiasa sanda (1, 'x', 2, 3, 4, 5)",
                 "havaozy mpampiasa ova zo = 2 rehefa omeo = 2",
                 "manamboara jery mpitantana @ alaivo zo, tenimiafina ao@ mpampiasa",
                 "ravao ny jery mpitantana"]:
        outcome = session.execute_one(text)
        assert outcome.ok, (text, outcome.message)
    assert session.execute_one("alaivo zo, esory ao@ mpampiasa;").relation.rows == [[2, 3]]
    assert session.execute_one("ravao ny tabilao mpampiasa;").ok


@pytest.mark.parametrize("text, message", [
    # Other statements fail exactly as before accounts existed.
    ("manamboara foo", "nandrasana 'efitra', 'jery', 'tabilao' na 'tahiry' fa 'foo' no hita"),
    ("ravao ny foo x", "nandrasana 'efitra', 'jery', 'tabilao' na 'tahiry' fa 'foo' no hita"),
    ("asehoy ny foo",
     "nandrasana 'efitra', 'jery', 'tabilao', 'tahiry' na 'tsanganana' fa 'foo' no hita"),
    ("ravao foo", "nandrasana 'ny' fa 'foo' no hita"),
    # The account statements' own.
    ("omeo rabe zo mamakyy ao@ db", "nandrasana 'mamaky' na 'manoratra' fa 'mamakyy' no hita "
                                    "Angamba 'mamaky' no tianao hosoratana (fa tsy 'mamakyy')?"),
    ("omeo rabe mamaky ao@ db", "nandrasana 'zo' fa 'mamaky' no hita"),
    ("esory rabe zo mamaky db", "nandrasana 'ao@' fa 'db' no hita Hadino angamba ny 'ao@' "
     "teo alohan'ny 'db'? (esory rabe zo mamaky ao@ db)"),
    ("omeo rabe zo mamaky ao@", "nandrasana anarana fa tapitra ny fanambarana"),
    ("ovay tenimiafina rabe 'x'", "nandrasana 'ny' fa 'tenimiafina' no hita"),
    ("ovay ny tenimiafina 'x'", "nandrasana anarana fa lahatsoratra no hita"),
    ("manamboara mpampiasa rabe 'x'", "nandrasana 'tenimiafina' fa lahatsoratra no hita"),
    ("manamboara mpampiasa rabe tenimiafina", "nandrasana tenimiafina (lahatsoratra) fa tapitra "
                                              "ny fanambarana"),
    ("manamboara mpampiasa rabe tenimiafina x1y2z3",
     "ny tenimiafina dia lahatsoratra eo anelanelan'ny marika \" na ' (ohatra tenimiafina \"...\")"),
    # The English word a teacher types (`admin`, `password`, `read`): said the word
    # expected only; now also which Tahiry word it is.
    ("manamboara mpampiasa rabe tenimiafina 'x' admin",
     "nandrasana 'mpitantana' na ';' fa 'admin' no hita "
     "Amin'ny Tahiry, 'mpitantana' no ilazana ny 'admin'."),
    ("manamboara mpampiasa rabe password 'x'",
     "nandrasana 'tenimiafina' fa 'password' no hita "
     "Amin'ny Tahiry, 'tenimiafina' no ilazana ny 'password'."),
    ("omeo rabe zo read ao@ db", "nandrasana 'mamaky' na 'manoratra' fa 'read' no hita "
                                 "Amin'ny Tahiry, 'mamaky' no ilazana ny 'read'."),
    ("esory rabe zo WRITE ao@ db", "nandrasana 'mamaky' na 'manoratra' fa 'WRITE' no hita "
                                   "Amin'ny Tahiry, 'manoratra' no ilazana ny 'WRITE'."),
    ("asehoy ny mpampiasa rabe", "nandrasana ';' fa 'rabe' no hita"),
    ("ravao ny mpampiasa rabe; ravao", "fanambarana iray ihany no azo atao eto"),
])
def test_syntax_errors(parser, text, message):
    with pytest.raises(TahirySyntaxError) as raised:
        parser.parse(text)
    assert raised.value.sentence.split(" : ", 1)[1] == message


def test_an_error_position_counts_from_the_statement_start(parser):
    with pytest.raises(TahirySyntaxError) as raised:
        parser.parse("omeo rabe\n  zo mamaky ao@ 'db'", line=3, column=5)
    assert (raised.value.line, raised.value.column) == (4, 17)


def test_a_grammar_error_on_a_string_of_a_statement_with_a_password_hides_it(parser):
    with pytest.raises(TahirySyntaxError) as raised:
        parser.parse("alaivo 'x' 'sekret' -- tenimiafina")
    assert "sekret" not in raised.value.sentence and '"***"' in raised.value.sentence
    with pytest.raises(TahirySyntaxError) as raised:   # no password word: shown as before
        parser.parse("alaivo 'x' 'hita'")
    assert "'hita'" in raised.value.sentence


@pytest.mark.parametrize("text", ["ovay ny tenimiafina rabe 12abc34;",
                                  "manamboara mpampiasa rabe tenimiafina 1.2.3x",
                                  "ovay ny tenimiafina rabe pa$$word",
                                  # no name, the password's opening quote lost (found by fuzzing)
                                  "ovay ny tenimiafina 12abc34'"])
def test_a_lexer_error_inside_a_bare_password_does_not_repeat_it(parser, text):
    with pytest.raises(TahirySyntaxError) as raised:
        parser.parse(text)
    assert raised.value.sentence.split(" : ", 1)[1].startswith("ny tenimiafina dia lahatsoratra")
    assert "12abc34" not in redact_secrets(text)
    for secret in ("12abc34", "1.2.3x", "pa$$", "word"):
        assert secret not in raised.value.sentence


@pytest.mark.parametrize("text, expected", [
    ('ovay ny tenimiafina rabe "x1234567"', True),
    ('-- a note\novay ny tenimiafina rabe "x1234567"', True),
    ('  // one\n  -- two\n manamboara mpampiasa a tenimiafina "x1234567"', True),
    ("-- ovay ny tenimiafina rabe", False),            # all comment
    ("-- c\nalaivo * ao@ tenimiafina", False),         # another statement
    ("alaivo 1", False),
    ("-- " + "x" * 5000 + '\novay ny tenimiafina a "x1234567"', False),   # past the scan
])
def test_a_password_statement_is_found_behind_comments(text, expected):
    assert may_set_password(text) is expected
