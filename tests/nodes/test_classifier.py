"""nodes.classifier: the shape-memoised routing class is exactly what parsing gives."""

from __future__ import annotations

import pytest

from engine.errors import TahiryError
from engine.language.parser import StatementParser
from nodes.balancer.classifier import DROPPED, TABLE, VIEW, StatementClassifier, routed

SHAPES = [
    "alaivo * ao@ t rehefa id = {n}",
    "alaivo a, b ao@ t1 tonona t2 ka t1.a = t2.a rehefa t1.b > {n}",
    "alaivo * ao@ (alaivo a ao@ u rehefa a < {n}) antso x",
    "alaivo a ao@ t rehefa a = {n} ary b = 'x{n}'",
    "manampia ao@ t sanda ({n}, 'anarana {n}')",
    "manampia ao@ t alaivo a ao@ u rehefa a = {n}",
    "havaozy t ova a = {n} rehefa b = {n}",
    "alaivo a ao@ t ankambana alaivo a ao@ u rehefa a = {n}",
    "fafao ao@ t rehefa a = {n}",
    "alaivo a ao@ t fetra {n}",
]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_text_of_a_shape_gets_the_class_parsing_gives(shape):
    classifier = StatementClassifier()
    parser = StatementParser()
    for n in range(6):
        text = shape.format(n=n)
        try:
            expected = routed(parser.parse(text))
        except TahiryError:
            with pytest.raises(TahiryError):
                classifier.classify_text(text)
            continue
        assert classifier.classify_text(text) == expected
        assert classifier.classify_text(text) == expected   # (a read: by its text now)


def test_reads_are_remembered_by_text_writes_are_not_and_the_memory_is_bounded():
    from nodes.balancer import classifier as module

    classifier = StatementClassifier()
    read, write = "alaivo * ao@ t rehefa id = 1", "manampia ao@ t sanda (1)"
    assert classifier.classify_text(read) is classifier.classify_text(read)
    classifier.classify_text(write)
    assert list(classifier.known_reads) == [read]
    for n in range(module.MAX_KNOWN_READS + 10):
        classifier.classify_text(f"alaivo * ao@ t rehefa id = {n}")
    assert len(classifier.known_reads) <= module.MAX_KNOWN_READS


def test_learnt_shapes_are_answered_without_parsing():
    classifier = StatementClassifier()
    for n in range(10):
        classifier.classify_text(f"alaivo * ao@ t rehefa id = {n}")
    assert classifier.shape_hits >= 5


def test_write_targets():
    classifier = StatementClassifier()
    assert classifier.classify_text("manampia ao@ t sanda (1)").target == TABLE
    assert classifier.classify_text("manamboara jery v @ alaivo a ao@ t").target == VIEW
    assert classifier.classify_text("ravao ny tabilao t").target == DROPPED
    ddl = classifier.classify_text("ravao ny tahiry db")
    assert ddl.kind == "database" and ddl.drops_database and ddl.database == "db"
    assert not classifier.classify_text("manamboara tahiry db").drops_database
    assert classifier.classify_text("-- only a comment") is None


def test_syntax_errors_are_raised_every_time():
    classifier = StatementClassifier()
    for n in range(4):
        classifier.classify_text(f"alaivo * ao@ t rehefa id = {n}")
    for n in range(3):
        with pytest.raises(TahiryError):
            classifier.classify_text(f"alaivo * ao@ t rehefa id = = {n}")


def test_a_huge_number_is_left_to_the_parser():
    classifier = StatementClassifier()
    for n in range(4):
        classifier.classify_text(f"alaivo * ao@ t rehefa id = {n}")
    text = "alaivo * ao@ t rehefa id = " + "9" * 5000
    try:
        expected = routed(StatementParser().parse(text))
    except (TahiryError, ValueError) as error:
        with pytest.raises(type(error)):
            classifier.classify_text(text)
    else:
        assert classifier.classify_text(text) == expected


def test_a_table_or_domain_names_the_domains_it_uses():
    """Creating a table that uses a domain reads the domain: the balancer must
    run it where the session's CREATE of that domain already is."""
    classifier = StatementClassifier()
    table = classifier.classify_text(
        "manamboara tabilao t (a kilasy, b ISA(0,9):taona, c kilasy)")
    assert table.objects == ("t", "kilasy", "taona") and table.target == TABLE
    domain = classifier.classify_text("manamboara efitra d (kilasy:TANISA('x'))")
    assert domain.objects == ("d", "kilasy")
    plain = classifier.classify_text("manamboara tabilao u (a ISA(0,9))")
    assert plain.objects == ("u",)


# Pieces that meet at every edge of the shape scan when glued at random: words
# with digits, numbers against words and dots, strings (empty, doubled quotes,
# escapes, comment markers inside), lone quotes, comments, non-ASCII letters and
# digits, NUL, numbers too long to convert.
SHAPE_PIECES = ["alaivo", "manampia", " ", "  ", "\n", "\t", "t1", "x_2", "_3", "E", "e5", "12", "0",
                "007", "3.25", "7.", ".5", ".", "1.2.3", "'", "'a b'", "''", "'it''s'", "'a\\'b'",
                "'x -- y'", "'u // v'", '"', '"q"', "\\", "--", "-- c\n", "-", "/", "//", "(", ")",
                ",", "=", "<", "*", ";", "@", "ao@", "\u0663", "é", "\0", "9" * 310,
                "1" + "0" * 299 + ".5"]


def test_the_shape_key_is_the_statement_caches_own():
    import random

    from engine.language.statement_cache import shape_key_of
    from nodes.balancer import shape_keys

    rng = random.Random(2026)
    plain = 0
    for _ in range(40_000):
        text = "".join(rng.choice(SHAPE_PIECES) for _ in range(rng.randint(0, 14)))
        assert shape_keys.shape_key(text) == shape_key_of(text), repr(text)
        plain += text.isascii() and not any(c in text for c in ('"', "\\", "--", "//", "''"))
    assert plain > 5_000   # the C passes were what got checked, not only the fallback


def test_usual_statements_are_keyed_without_the_engines_scan(monkeypatch):
    from engine.language.statement_cache import shape_key_of
    from nodes.balancer import shape_keys

    texts = ["manampia ao@ t sanda (10000417, 30001251, 'n10000417', 0, 'fanamarihana 10000417')",
             "alaivo * ao@ t rehefa id = 417", "havaozy t ova a = 2.5 rehefa b = 'x'",
             "alaivo a ao@ t1 rehefa a1 = 3", "alaivo * ao@ t"]
    expected = [shape_key_of(text) for text in texts]
    monkeypatch.setattr(shape_keys, "shape_key_of", None)   # never called for these
    assert [shape_keys.shape_key(text) for text in texts] == expected
    assert expected[-1] is None   # no literal: the parser's own cache serves it
