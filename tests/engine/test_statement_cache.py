"""engine.language.statement_cache: a statement parsed by shape is exactly what the parser gives."""

import pytest

from engine.errors import TahirySyntaxError
from engine.language.parser import StatementParser
from engine.language.statement_cache import StatementCache

# Each template is filled with several value sets; {0}, {1}, ... are literal sources.
TEMPLATES = [
    ("alaivo * ao@ t rehefa id = {0}", [["1"], ["42"], ["7.5"], ["0"]]),
    ("alaivo * ao@ t rehefa id = {0} ary {1} = {1}", [["1", "2"], ["3", "4"], ["5", "6.25"]]),
    ("alaivo a, b ao@ t rehefa a > {0} na b = {1}", [["1", "'x'"], ["2", "'it''s'"],
                                                     ["3", '"dq\\"x"'], ["4", "'a\\nb'"]]),
    ("alaivo a + {0} ao@ t", [["1"], ["2"], ["30"]]),                 # names a column: never cached
    ("alaivo a ao@ t rehefa a = -{0}", [["1"], ["2"], ["3.5"]]),      # folded negative
    ("alaivo a ao@ t fetra {0}", [["1"], ["2"], ["3"]]),              # a bound, not a Literal
    ("alaivo a ao@ t alaharo a midina fetra {0} {1}", [["1", "5"], ["2", "9"], ["0", "3"]]),
    ("manampia ao@ t sanda ({0}, {1}), ({2}, {3})",
     [["1", "'a'", "2", "'b'"], ["3", "'c'", "4", "'d'"], ["5.5", "'e''f'", "6", "\"g\""]]),
    ("manampia ao@ t (b, a) sanda ({0}, {1})", [["'x'", "1"], ["'y'", "2"], ["'z'", "3"]]),
    ("havaozy t ova b = {0} rehefa a = {1}", [["'x'", "1"], ["'y'", "2"], ["3", "4"]]),
    ("fafao ao@ t rehefa a = {0} -- comment 123 'not a literal'", [["1"], ["2"], ["3"]]),
    ("alaivo t2.a ao@ t2 rehefa t2.a1 = {0}", [["1"], ["2"], ["3"]]),
    ("alaivo * ao@ t rehefa a = {0} ary b = {0}", [["1"], ["2"], ["3"]]),
    ("alaivo * ao@ t rehefa a = {0} ary b = {1}", [["1", "1"], ["2", "2"], ["1", "2"]]),
    ("alaivo * ao@ (alaivo a ao@ t rehefa a = {0}) antso x rehefa x.a != {1}",
     [["1", "2"], ["3", "4"], ["5", "6"]]),
    ("alaivo a, COUNT(*) ao@ t rehefa a < {0} vondrona a", [["1"], ["2"], ["3"]]),
]


@pytest.mark.parametrize("template, value_sets", TEMPLATES)
def test_cached_shapes_parse_exactly_like_the_parser(template, value_sets):
    parser, cache = StatementParser(), StatementCache()
    for _ in range(2):
        for values in value_sets:
            text = template.format(*values)
            expected = StatementParser().parse(text)
            got = cache.parse(parser, text)
            assert repr(got) == repr(expected), text


def test_repeated_shapes_skip_the_parser():
    parser, cache = StatementParser(), StatementCache()
    for key in range(10):
        statement = cache.parse(parser, f"alaivo * ao@ t rehefa id = {key}")
        assert statement.select.where.right.value == key
    assert cache.hits == 8  # learnt at the second sighting


def test_ints_and_floats_and_quotes_are_different_shapes():
    parser, cache = StatementParser(), StatementCache()
    for text in ["alaivo * ao@ t rehefa a = 1", "alaivo * ao@ t rehefa a = 2",
                 "alaivo * ao@ t rehefa a = 3"]:
        cache.parse(parser, text)
    floating = cache.parse(parser, "alaivo * ao@ t rehefa a = 2.0")
    assert type(floating.select.where.right.value) is float
    text = cache.parse(parser, "alaivo * ao@ t rehefa a = '2'")
    assert text.select.where.right.value == "2"


def test_syntax_errors_still_come_from_the_parser():
    parser, cache = StatementParser(), StatementCache()
    for key in range(3):
        cache.parse(parser, f"alaivo * ao@ t rehefa id = {key}")
    with pytest.raises(TahirySyntaxError):
        cache.parse(parser, "alaivo * ao@ t rehefa id = 12abc")
    with pytest.raises(TahirySyntaxError):
        cache.parse(parser, "alaivo * ao@ t rehefa id = " + "9" * 400 + ".5")
    huge = "9" * 5000  # beyond Python's int conversion: the lexer's error, not a crash
    with pytest.raises(TahirySyntaxError):
        cache.parse(parser, f"alaivo * ao@ t rehefa id = {huge}")
