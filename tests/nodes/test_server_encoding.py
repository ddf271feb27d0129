"""nodes/server/encoding.py: `ResponseEncoder` gives exactly `encode_outcome`'s bytes."""

import random

import pytest

from engine.evaluation.outcome import Column, Outcome, Relation
from nodes.protocol import encode_outcome
from nodes.server.encoding import MAX_SHAPES, ResponseEncoder

VALUES = [0, -1, 7, 2**63 - 1, 1.5, -0.0, 1e300, float("nan"), float("inf"), "", "a",
          "é ß 漢字 \U0001f600", 'quote " and \\ back', "line\nbreak\u2028", "\x00\x1f",
          None, True, False, "2026-12-02", '"rows":[]}']


def _outcomes(rng: random.Random, columns: list[Column], name: str) -> list[Outcome]:
    outcomes = []
    for count in (0, 1, 2, 3, 4, 7):
        rows = [[rng.choice(VALUES) for _ in columns] for _ in range(count)]
        outcomes.append(Outcome.success(f"{count} andalana", Relation(name, list(columns), rows)))
    return outcomes


@pytest.mark.parametrize("page_rows", [1, 3, 1000])
def test_the_bytes_are_encode_outcomes(page_rows):
    rng = random.Random(page_rows)
    encoder = ResponseEncoder(page_rows)
    shapes = [
        ("t", [Column("id", "t"), Column("a", "t"), Column("b", "t")]),
        ("t", [Column("id", "t")]),
        ("u", [Column("x", None), Column("x", "u")]),
        ('we"ird\n', [Column('"rows":[]}', "o\u2028"), Column("é", None)]),
        ("", []),
    ]
    for _ in range(3):   # the second and third time from the cache
        for name, columns in shapes:
            for outcome in _outcomes(rng, columns, name):
                assert encoder.encode(outcome) == encode_outcome(outcome, page_rows)


def test_messages_errors_and_wide_integers():
    encoder = ResponseEncoder(1000)
    columns = [Column("n", "t")]
    for outcome in [Outcome.success("ok"), Outcome.failure("Hadisoana : tsy misy\nline"),
                    Outcome.failure("Hadisoana : " + "x" * 500), Outcome.success("1 andalana voampy"),
                    Outcome.success("1 andalana", Relation("t", columns, [[2**70]])),
                    Outcome.success("1 andalana", Relation("t", columns, [[-(2**64)]])),
                    Outcome.success("2 andalana", Relation("t", columns, [[1], [2]]))]:
        for _ in range(2):
            assert encoder.encode(outcome) == encode_outcome(outcome, 1000)


def test_the_same_columns_other_rows_and_a_full_cache():
    encoder = ResponseEncoder(10)
    columns = [Column("id", "t"), Column("b", "t")]
    for key in range(3 * MAX_SHAPES):
        # New column objects each time (the executor's way): the cache starts over when full.
        fresh = [Column(f"c{key % 5}", "t")]
        for outcome in (Outcome.success("1 andalana", Relation("t", columns, [[key, f"s{key}"]])),
                        Outcome.success("0 andalana", Relation("t", fresh, []))):
            assert encoder.encode(outcome) == encode_outcome(outcome, 10)
