"""Unit tests of nodes.balancer.routing: rendezvous ownership and read spreading."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from nodes.balancer.routing import ReadSelector, owner_of, rank_owners, rendezvous_score

BACKENDS = ["m1", "m2", "m3"]


def test_owner_is_deterministic_and_independent_of_candidate_order():
    for obj in ("t", "mpianatra", "naoty", "x1"):
        assert owner_of("db", obj, BACKENDS) == owner_of("db", obj, list(reversed(BACKENDS)))


def test_owner_is_stable_across_processes():
    # Python's str hash is randomised per process; ours must not be.
    code = ("from nodes.balancer.routing import owner_of;"
            "print([owner_of('db', f't{i}', ['m1','m2','m3']) for i in range(40)])")
    repo = Path(__file__).resolve().parents[2]
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True, timeout=30, cwd=repo,
                              env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(repo)}).stdout
               for seed in ("1", "2")}
    assert len(outputs) == 1
    assert outputs.pop().strip() == str([owner_of("db", f"t{i}", BACKENDS) for i in range(40)])


def test_ownership_spreads_over_backends():
    owners = Counter(owner_of("db", f"table{i}", BACKENDS) for i in range(600))
    assert set(owners) == set(BACKENDS)
    assert min(owners.values()) > 120  # roughly a third each


def test_database_is_part_of_the_key():
    owners = {owner_of(f"db{i}", "t", BACKENDS) for i in range(50)}
    assert owners == set(BACKENDS)


def test_removing_a_backend_moves_only_its_objects_to_the_second_choice():
    objects = [f"t{i}" for i in range(300)]
    for obj in objects:
        ranked = rank_owners("db", obj, BACKENDS)
        survivors = [b for b in BACKENDS if b != "m2"]
        new_owner = owner_of("db", obj, survivors)
        if ranked[0] != "m2":
            assert new_owner == ranked[0]
        else:
            assert new_owner == ranked[1]


def test_no_candidates():
    assert owner_of("db", "t", []) is None
    assert rank_owners("db", "t", []) == []


def test_separator_keeps_keys_apart():
    assert rendezvous_score("m1", "ab", "c") != rendezvous_score("m1", "a", "bc")


def test_reads_round_robin_when_idle():
    selector = ReadSelector()
    picks = [selector.pick(BACKENDS, {}) for _ in range(6)]
    assert Counter(picks) == Counter({"m1": 2, "m2": 2, "m3": 2})


def test_reads_prefer_least_outstanding():
    selector = ReadSelector()
    outstanding = {"m1": 3, "m2": 0, "m3": 1}
    assert [selector.pick(BACKENDS, outstanding) for _ in range(3)] == ["m2"] * 3


def test_reads_exclude_backends_already_tried():
    selector = ReadSelector()
    assert selector.pick(BACKENDS, {}, exclude=["m1", "m3"]) == "m2"
    assert selector.pick(BACKENDS, {}, exclude=BACKENDS) is None
    assert selector.pick([], {}) is None


def test_choose_is_pick_without_exclusions_and_refuses_no_candidates():
    chosen, picked = ReadSelector(), ReadSelector()
    outstanding = {"m1": 1, "m2": 0, "m3": 0}
    assert [chosen.choose(BACKENDS, outstanding) for _ in range(4)] \
        == [picked.pick(BACKENDS, outstanding) for _ in range(4)]
    with pytest.raises(ValueError):
        chosen.choose([], {})


def test_advance_is_choosing_again_and_one_candidate_is_chosen_as_before():
    import random

    rng = random.Random(5)
    for _ in range(300):
        candidates = rng.sample(["m1", "m2", "m3", "m4"], rng.randint(1, 4))
        outstanding = {c: rng.randint(0, 2) for c in candidates}
        again, advanced = ReadSelector(), ReadSelector()
        for _ in range(rng.randint(0, 5)):
            again.choose(candidates, outstanding)
            advanced.choose(candidates, outstanding)
        first = advanced.choose(candidates, outstanding, advance=False)
        advanced.advance()
        assert again.choose(candidates, outstanding, advance=False) == first
        assert again.choose(candidates, outstanding) == first
        assert [advanced.choose(candidates, outstanding) for _ in range(6)] == \
            [again.choose(candidates, outstanding) for _ in range(6)]
    with pytest.raises(ValueError):
        ReadSelector().choose([], {})


def test_owner_ranks_are_rank_owners_remembered():
    from nodes.balancer.routing import OwnerRanks

    ranks = OwnerRanks(max_kept=3)
    for _ in range(3):
        for backends in (["m1"], ["m1", "m2"], ["m2", "m1"], ["m1", "m2", "m3"], []):
            for obj in ("t", "u", ""):
                ranked = ranks.rank("db", obj, backends)
                assert ranked == rank_owners("db", obj, backends)
                ranked.append("junk")   # the caller's own list
    assert len(ranks._kept) <= 3
