"""engine.language.statement_cache: a statement parsed by shape is exactly what the parser gives."""

import random
import re

import pytest

from engine.errors import TahirySyntaxError
from engine.language import statement_cache
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


# The scan as it was written first, one match per word: the reference for the
# faster one (a run of words and punctuation taken in the literal's match).
_REFERENCE_SCAN = re.compile(
    r"""(?P<comment>(?:--|//)[^\n]*)"""
    r"""|(?P<string>'[^'\\]*+(?:(?:''|\\.)[^'\\]*+)*+'|"[^"\\]*+(?:(?:""|\\.)[^"\\]*+)*+")"""
    r"""|(?P<word>[^\W\d]\w*(?:\.[^\W\d]\w*)?)"""
    r"""|(?P<number>[0-9]+(?:\.[0-9]+)?)""", re.DOTALL)


def _reference_shape(text):
    """(shape key, literals) as the first scan made them; `\\0` texts are refused by both."""
    parts, pieces, position = [], [], 0
    for match in _REFERENCE_SCAN.finditer(text):
        kind = match.lastgroup
        if kind in ("comment", "word"):
            continue
        source = match.group()
        kind = ("float" if "." in source else "int") if kind == "number" else "string" + source[0]
        parts += [text[position:match.start()], f"\0{kind}\0"]
        pieces.append((kind, source))
        position = match.end()
    parts.append(text[position:])
    return "".join(parts), pieces


FRAGMENTS = ["alaivo", " ", "*", "ao@", "t2", "a1", "_x9", ".", "5", "12", "3.25", "=", "-", "--",
             "/", "//", "'", '"', "''", "\\", "\n", "é", "٣", "²", "x٣", "(", ")", ",", ";", "a.b",
             "t.5", "'s;1'", '"q"', "0", "\t", "@", "!", "<", ">="]


def test_the_scan_finds_the_literals_the_reference_finds():
    rng = random.Random(12)
    for _ in range(20_000):
        text = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(0, 14)))
        assert statement_cache._shape_of(text) == _reference_shape(text), repr(text)


def test_the_same_text_looked_up_twice_in_a_row_gives_its_own_values_each_time():
    """The last hit is remembered (a server looks a write up twice); its values are never shared."""
    parser, cache = StatementParser(), StatementCache()
    for _ in range(2):
        cache.parse(parser, "manampia ao@ t sanda (1, 'a')")
    text = "manampia ao@ t sanda (2, 'b')"
    first = cache.lookup(text)
    assert first is not None and first[1] == [2, "b"]
    first[1][0] = 99   # a caller's change stays its own
    second = cache.lookup(text)
    assert second is not None and second[0] is first[0] and second[1] == [2, "b"]
    third = cache.lookup("manampia ao@ t sanda (3, 'c')")
    assert third is not None and third[1] == [3, "c"]
    assert third[0].build(third[1]) == parser.parse("manampia ao@ t sanda (3, 'c')")
