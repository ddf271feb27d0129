"""Write leases and membership epochs (supervisor/quorum.py): the pure decisions, a fake clock.

Three voters a, b, c (machines); the clock is a number passed to each call.
The tables list transitions as data: (state before, step) -> state after or
refusal; the scenarios run Paxos by hand between Voter objects, including
the races that must stay safe (docs/REPLICATION.md, "Write leases", L1-L5).
"""

from __future__ import annotations

import pytest

from supervisor.quorum import (
    EXCLUDED,
    JOINING,
    MEMBER,
    Config,
    Durable,
    LeaseSettings,
    Proposal,
    QuorumError,
    Voter,
    lease_until,
    majority,
    next_change,
)

S = LeaseSettings(enabled=True, lease_s=3.0, renew_s=1.0, margin_s=1.0)   # grants alive 4 s
MACHINES = ("a", "b", "c")
SERVERS = frozenset({"a", "b"})   # c runs only a balancer: a voter without servers


def voters(now: float = 0.0, config: Config | None = None) -> dict[str, Voter]:
    config = config or Config.first(MACHINES)
    return {name: Voter(name, Durable(config), S, now) for name in MACHINES}


# ------------------------------------------------------------- the step table

STEP_TABLE = [
    # (state before, step, state after; None: refused)
    (MEMBER, "exclude", EXCLUDED),
    (JOINING, "exclude", EXCLUDED),
    (EXCLUDED, "exclude", None),
    (EXCLUDED, "join", JOINING),
    (MEMBER, "join", None),
    (JOINING, "join", None),
    (JOINING, "admit", MEMBER),
    (MEMBER, "admit", None),
    (EXCLUDED, "admit", None),   # never straight from excluded to writing
]


@pytest.mark.parametrize(("before", "step", "after"), STEP_TABLE)
def test_one_step_per_epoch_follows_the_table(before, step, after):
    config = Config(4, (("a", MEMBER), ("b", before), ("c", MEMBER)))
    if after is None:
        with pytest.raises(QuorumError):
            config.step(step, "b")
        return
    moved = config.step(step, "b")
    assert moved.epoch == 5 and moved.state("b") == after
    assert moved.change_from(config) == (step, "b")
    assert moved.state("a") == MEMBER


def test_a_config_that_moves_two_machines_or_skips_an_epoch_is_not_a_step():
    base = Config.first(MACHINES)
    two = Config(1, (("a", EXCLUDED), ("b", EXCLUDED), ("c", MEMBER)))
    skipped = Config(2, (("a", EXCLUDED), ("b", MEMBER), ("c", MEMBER)))
    assert two.change_from(base) is None and skipped.change_from(base) is None


def test_a_config_round_trips_and_bad_ones_are_refused():
    config = Config.first(MACHINES).step("exclude", "b")
    assert Config.from_dict(config.as_dict()) == config
    for bad in (None, {"epoch": -1, "states": {"a": MEMBER}}, {"epoch": True, "states": {}},
                {"epoch": 1, "states": {"a": "asleep"}}):
        with pytest.raises(QuorumError):
            Config.from_dict(bad)


def test_the_durable_state_round_trips():
    durable = Durable(Config.first(MACHINES), (3, "a"),
                      ((3, "a"), Config.first(MACHINES).step("exclude", "b")))
    assert Durable.from_dict(durable.as_dict()) == durable


# ----------------------------------------------------------------- grants (L2)

def test_a_member_is_granted_at_the_voters_epoch_only():
    voter = voters()["a"]
    assert voter.grant("b", 0, now=10).ok
    assert not voter.grant("b", 1, now=10).ok          # another epoch
    excluded = Voter("a", Durable(Config.first(MACHINES).step("exclude", "b")), S, 0)
    answer = excluded.grant("b", 1, now=10)
    assert not answer.ok and "excluded" in answer.reason


def test_the_holder_lease_ends_before_any_grant_is_counted_dead():
    # The holder notes its clock before asking: its lease ends lease - margin later;
    # each granter counts its grant alive lease + margin after it granted (later still).
    sent = 100.0
    until = lease_until(sent, ["a", "c"], 3, S)
    assert until == 102.0
    granted_at = sent + 0.3
    assert until + 2 * S.margin_s <= granted_at + S.grant_alive_s
    assert lease_until(sent, ["a"], 3, S) is None      # no majority, no lease
    assert lease_until(sent, ["a", "a"], 3, S) is None  # one voter counted once


def test_majorities():
    assert [majority(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


# --------------------------------------------------------------- Paxos by hand

def run_paxos(voters_asked: list[Voter], base: Config, wanted: Config, ballot, now: float):
    """One attempt through the given voters; the decided config or None."""
    proposal = Proposal(base, wanted, ballot, len(MACHINES))
    for voter in voters_asked:
        answer = voter.prepare(wanted.epoch, ballot, now)
        if answer.ok:
            proposal.promised(voter.name, answer.accepted)
    if not proposal.ready():
        return None
    value = proposal.value()
    for voter in voters_asked:
        if voter.accept(ballot, value, now).ok:
            proposal.accepted_by(voter.name)
    return value if proposal.decided() else None


def test_exclusion_waits_until_every_grant_to_the_machine_is_dead_L3():
    group = voters(now=0)
    base = Config.first(MACHINES)
    wanted = base.step("exclude", "b")
    group["a"].grant("b", 0, now=5.0)
    group["c"].grant("b", 0, now=5.5)
    # 4 s after c's last grant is 9.5: before that, c refuses to accept.
    assert run_paxos([group["a"], group["c"]], base, wanted, (1, "a"), now=9.4) is None
    decided = run_paxos([group["a"], group["c"]], base, wanted, (2, "a"), now=9.6)
    assert decided == wanted


def test_a_restarted_voter_counts_a_grant_at_its_start():
    group = voters(now=0)
    restarted = Voter("c", Durable(Config.first(MACHINES)), S, now=50.0)
    base = Config.first(MACHINES)
    wanted = base.step("exclude", "b")
    assert run_paxos([group["a"], restarted], base, wanted, (1, "a"), now=53.0) is None
    assert run_paxos([group["a"], restarted], base, wanted, (2, "a"), now=54.1) == wanted


def test_after_accepting_an_exclusion_a_voter_grants_nothing_to_that_machine():
    group = voters(now=0)
    base = Config.first(MACHINES)
    wanted = base.step("exclude", "b")
    assert group["c"].prepare(1, (1, "a"), now=10).ok
    assert group["c"].accept((1, "a"), wanted, now=10).ok
    answer = group["c"].grant("b", 0, now=10.1)
    assert not answer.ok and "accepted excluding b" in answer.reason
    assert group["c"].grant("a", 0, now=10.1).ok   # the others are still granted


def test_no_lease_of_the_excluded_machine_outlives_the_decision():
    """The heart (L2 + L3): whatever majority granted b's last lease meets the majority that
    excludes it; b's lease ends before the decision, on every schedule tried."""
    for granters in (("a", "b"), ("a", "c"), ("b", "c"), ("a", "b", "c")):
        for deciders in (("a", "c"), ("b", "c"), ("a", "b")):
            group = voters(now=0)
            sent = 20.0
            for name in granters:
                assert group[name].grant("b", 0, now=sent + 0.1).ok
            lease_end = lease_until(sent, granters, 3, S)
            assert lease_end is not None
            base = Config.first(MACHINES)
            wanted = base.step("exclude", "b")
            decided_at = None
            for step in range(200):
                now = sent + step * 0.05
                if run_paxos([group[n] for n in deciders], base, wanted, (step + 1, "a"), now):
                    decided_at = now
                    break
            assert decided_at is not None
            assert lease_end + 2 * S.margin_s <= decided_at + 1e-9, (granters, deciders)


def test_a_value_accepted_before_is_the_one_a_later_proposer_carries():
    group = voters(now=0)
    base = Config.first(MACHINES)
    exclude_b = base.step("exclude", "b")
    # a's attempt reached only c's acceptance, then a vanished.
    assert group["c"].prepare(1, (1, "a"), now=10).ok
    assert group["c"].accept((1, "a"), exclude_b, now=10).ok
    # b (cut from a) proposes excluding a through b and c: Paxos makes it carry c's value.
    exclude_a = base.step("exclude", "a")
    decided = run_paxos([group["b"], group["c"]], base, exclude_a, (2, "b"), now=10)
    assert decided is None or decided == exclude_b


def test_a_lower_ballot_is_refused_after_a_higher_promise():
    group = voters(now=0)
    wanted = Config.first(MACHINES).step("exclude", "b")
    assert group["a"].prepare(1, (5, "c"), now=10).ok
    assert not group["a"].prepare(1, (4, "a"), now=10).ok
    assert not group["a"].accept((4, "a"), wanted, now=10).ok


def test_learning_adopts_a_newer_decided_epoch_and_forgets_the_old_vote():
    group = voters(now=0)
    decided = Config.first(MACHINES).step("exclude", "b")
    assert group["b"].prepare(1, (1, "b"), now=1).ok
    assert group["b"].learn(decided, now=2)
    assert group["b"].config == decided and group["b"].durable.promised is None
    assert not group["b"].learn(Config.first(MACHINES), now=3)   # never backwards


# --------------------------------------------------------------- return (L4)

def test_admission_waits_until_the_older_epochs_grants_are_dead_L4():
    excluded = Config.first(MACHINES).step("exclude", "b")
    joining = excluded.step("join", "b")
    group = voters(now=0, config=excluded)
    for voter in group.values():
        assert voter.learn(joining, now=30.0)
    admitted = joining.step("admit", "b")
    assert run_paxos([group["a"], group["b"]], joining, admitted, (1, "b"), now=33.9) is None
    assert run_paxos([group["a"], group["b"]], joining, admitted, (2, "b"), now=34.1) == admitted
    assert admitted.state("b") == MEMBER and "b" in joining.certified()


def test_a_joining_machine_is_certified_against_but_not_granted():
    joining = Config.first(MACHINES).step("exclude", "b").step("join", "b")
    voter = Voter("a", Durable(joining), S, 0)
    assert "b" in joining.certified()
    assert not voter.grant("b", joining.epoch, now=10).ok


# ------------------------------------------------------------ who proposes what

NEXT_TABLE = [
    # (config states, heard (voter -> seconds ago; None: never), me, ready, expected)
    ({"a": MEMBER, "b": MEMBER, "c": MEMBER}, {"b": 0.5, "c": 0.5}, "a", False, None),
    ({"a": MEMBER, "b": MEMBER, "c": MEMBER}, {"b": 4.5, "c": 0.5}, "a", False,
     ("exclude", "b")),
    ({"a": MEMBER, "b": MEMBER, "c": MEMBER}, {"b": 4.5, "a": 0.5}, "c", False, None),
    ({"a": MEMBER, "b": MEMBER, "c": MEMBER}, {"b": None, "c": None}, "a", False, None),
    ({"a": MEMBER, "b": MEMBER, "c": MEMBER}, {"a": 0.5, "b": 0.5, "c": 9.0}, "a", False, None),
    ({"a": MEMBER, "b": EXCLUDED, "c": MEMBER}, {"b": 9.0, "c": 0.5}, "a", False, None),
    ({"a": MEMBER, "b": EXCLUDED, "c": MEMBER}, {"a": 0.5, "c": 0.5}, "b", False, None),
    ({"a": MEMBER, "b": EXCLUDED, "c": MEMBER}, {"a": 0.5, "c": 0.5}, "b", True, ("join", "b")),
    ({"a": MEMBER, "b": EXCLUDED, "c": MEMBER}, {"a": None, "c": None}, "b", True, None),
    ({"a": MEMBER, "b": JOINING, "c": MEMBER}, {"a": 0.5, "c": 0.5}, "b", False, None),
    ({"a": MEMBER, "b": JOINING, "c": MEMBER}, {"a": 0.5, "c": 0.5}, "b", True, ("admit", "b")),
    ({"a": MEMBER, "b": JOINING, "c": MEMBER}, {"b": 9.0, "c": 0.5}, "a", False,
     ("exclude", "b")),
]


@pytest.mark.parametrize(("states", "heard", "me", "ready", "expected"), NEXT_TABLE)
def test_what_a_voter_proposes(states, heard, me, ready, expected):
    config = Config(7, tuple(sorted(states.items())))
    now = 100.0
    seen = {voter: now - ago for voter, ago in heard.items() if ago is not None}
    assert next_change(config, me, seen, now, S, ready, SERVERS) == expected
