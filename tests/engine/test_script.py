"""Statement splitting (engine/language/script.py): boundaries, positions, chunked feeding."""

from __future__ import annotations

import random

import pytest

from engine.language.script import Piece, StatementSplitter, normalise_statement, split_statements


def texts(script: str) -> list[str]:
    return [piece.text for piece in split_statements(script)]


def fed_in_chunks(script: str, size: int) -> list[Piece]:
    splitter = StatementSplitter()
    pieces: list[Piece] = []
    for start in range(0, len(script), size):
        pieces += splitter.feed(script[start:start + size])
    last = splitter.finish()
    if last is not None:
        pieces.append(last)
    return pieces


def test_splits_at_semicolons_and_strips_whitespace():
    assert texts("alaivo 1;  alaivo 2 ;\nalaivo 3;") == ["alaivo 1", "alaivo 2", "alaivo 3"]


def test_semicolon_inside_single_and_double_quoted_strings_does_not_split():
    assert texts("alaivo 'a;b'; alaivo \"c;d\";") == ["alaivo 'a;b'", 'alaivo "c;d"']


def test_doubled_quotes_stay_inside_the_string():
    assert texts("alaivo 'it''s;x'; alaivo \"say \"\";\"\"\";") == [
        "alaivo 'it''s;x'", 'alaivo "say "";"""']


def test_backslash_escaped_quote_stays_inside_the_string():
    assert texts(r"alaivo 'a\';b'; alaivo 2;") == [r"alaivo 'a\';b'", "alaivo 2"]


def test_escaped_backslash_before_closing_quote_ends_the_string():
    assert texts(r"alaivo 'a\\'; alaivo 2;") == [r"alaivo 'a\\'", "alaivo 2"]


def test_other_quote_kind_inside_a_string_is_plain_text():
    assert texts("alaivo \"it's;\"; alaivo 'say \";';") == ["alaivo \"it's;\"", "alaivo 'say \";'"]


@pytest.mark.parametrize("marker", ["--", "//"])
def test_semicolon_inside_line_comment_does_not_split(marker):
    script = f"alaivo 1 {marker} not; the end\n, 2; alaivo 3;"
    assert texts(script) == [f"alaivo 1 {marker} not; the end\n, 2", "alaivo 3"]


def test_quote_inside_comment_does_not_open_a_string():
    assert texts("alaivo 1 -- it's\n; alaivo 2;") == ["alaivo 1 -- it's", "alaivo 2"]


def test_comment_marker_inside_string_is_text():
    assert texts("alaivo '--;//'; alaivo 2;") == ["alaivo '--;//'", "alaivo 2"]


def test_minus_and_slash_alone_are_not_comments():
    assert texts("alaivo 4 - -1; alaivo 4 / 2;") == ["alaivo 4 - -1", "alaivo 4 / 2"]


def test_text_after_last_semicolon_is_a_statement():
    assert texts("alaivo 1; alaivo 2") == ["alaivo 1", "alaivo 2"]


def test_blank_statements_are_dropped_comment_only_ones_kept():
    assert texts(";; \n ; -- only a comment\n; alaivo 1;  \n ") == ["-- only a comment", "alaivo 1"]


def test_unterminated_string_runs_to_the_end():
    assert texts("alaivo 1; alaivo 'abc; def") == ["alaivo 1", "alaivo 'abc; def"]


def test_positions_are_where_each_statement_text_starts():
    script = "alaivo 1;  alaivo 2;\n\n   alaivo 'x\ny'; alaivo\n3"
    assert split_statements(script) == [
        Piece("alaivo 1", 1, 1),
        Piece("alaivo 2", 1, 12),
        Piece("alaivo 'x\ny'", 3, 4),
        Piece("alaivo\n3", 4, 5),
    ]


def test_positions_count_code_points():
    assert split_statements("alaivo 'é';  alaivo 2;")[1] == Piece("alaivo 2", 1, 14)


SCRIPT = (
    "manamboara tabilao t ( a ISA(null,null) );\n"
    "manampia ao@ t sanda (1), ('x;''y'), (\"a\\\";\"); -- c;'\n"
    "alaivo * ao@ t // z;\"\n ; alaivo 'a\\\\'; alaivo 4 - -1 / 2;"
    "alaivo 'tail;"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_chunked_feeding_gives_the_same_pieces(size):
    assert fed_in_chunks(SCRIPT, size) == split_statements(SCRIPT)


def test_a_text_without_semicolon_is_split_as_the_splitter_would():
    """The shortcut for one framed statement (no `;`) gives exactly the splitter's piece."""
    rng = random.Random(12)
    alphabet = ["alaivo", " ", "  ", "\n", "\t", "'", '"', "--", "//", "x", "\\", "é", "\r\n", "1"]
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        splitter = StatementSplitter()
        assert splitter.feed(text) == []
        last = splitter.finish()
        assert split_statements(text) == ([last] if last is not None else []), repr(text)


def test_feed_returns_statements_as_soon_as_they_end():
    splitter = StatementSplitter()
    assert splitter.feed("alaivo 'a") == []
    assert splitter.feed("';") == [Piece("alaivo 'a'", 1, 1)]
    assert splitter.feed(" alaivo -") == []
    assert splitter.feed("- x;\n;") == [Piece("alaivo -- x;", 1, 13)]
    assert splitter.finish() is None


def test_pending_quote_at_chunk_end_can_be_doubled_by_next_chunk():
    splitter = StatementSplitter()
    assert splitter.feed("alaivo 'a'") == []
    assert splitter.feed("';'") == []
    assert splitter.feed(";") == [Piece("alaivo 'a'';'", 1, 1)]


def test_pending_backslash_at_chunk_end_escapes_next_chunk():
    splitter = StatementSplitter()
    assert splitter.feed("alaivo 'a\\") == []
    assert splitter.feed("';';") == [Piece("alaivo 'a\\';'", 1, 1)]


def test_finish_resets_for_reuse():
    splitter = StatementSplitter()
    splitter.feed("alaivo 'open")
    assert splitter.finish() == Piece("alaivo 'open", 1, 1)
    assert splitter.feed("alaivo 1;") == [Piece("alaivo 1", 1, 1)]
    assert splitter.finish() is None


def test_many_statements_in_one_chunk():
    script = "alaivo 1;" * 5000
    pieces = split_statements(script)
    assert len(pieces) == 5000
    assert pieces[-1] == Piece("alaivo 1", 1, 9 * 4999 + 1)


def test_normalise_collapses_whitespace_outside_literals_and_drops_comments():
    text = "alaivo   'a  b' ,\n\t\"c  --d\"  -- note\n ao@ t // x\n rehefa a = 1"
    assert normalise_statement(text) == "alaivo 'a  b' , \"c  --d\" ao@ t rehefa a = 1"


def test_normalise_of_comment_only_text_is_empty():
    assert normalise_statement("  -- a\n // b\n") == ""


def test_normalise_keeps_escapes_and_unterminated_literals():
    assert normalise_statement(r"alaivo  'a\'  b'  ,  'open   end") == r"alaivo 'a\'  b' , 'open   end"
