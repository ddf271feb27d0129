"""Write leases and membership epochs decided by a majority of the machines: the pure logic.

docs/REPLICATION.md, "Write leases", states the invariants (L1-L5) and why
they keep two sides from both writing; this module is their decision
logic, with no I/O and no clock of its own (every call is given `now`, a
monotonic time of this machine), so that tests drive it with a fake clock:

- `Config`: a decided epoch: each machine `member`, `joining` or
  `excluded`; `STEPS` is the table of the one change an epoch may make.
- `Voter`: one machine supervisor's vote: it grants write leases (L2), and
  is a Paxos acceptor for the next epoch (promise, accept with L3 and L4
  as preconditions, learn). Its `durable()` state must be written before
  an answer leaves (supervisor/quorum_service.py does it).
- `Proposal`: one Paxos attempt by a proposer (prepare, then accept), fed
  with the answers as they come.
- `next_change`: what this machine should propose now, if anything.
- `lease_until`: what a round of grant answers gives the asker.

Machines are named by their host in the topology (one voter per distinct
host). Ballots are (round, voter name): unique per proposer, ordered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .errors import SupervisorError

MEMBER, JOINING, EXCLUDED = "member", "joining", "excluded"
STATES = (MEMBER, JOINING, EXCLUDED)

# The one change an epoch may make to one machine: step -> (states it may leave, state it gets).
STEPS: dict[str, tuple[frozenset[str], str]] = {
    "exclude": (frozenset({MEMBER, JOINING}), EXCLUDED),
    "join": (frozenset({EXCLUDED}), JOINING),
    "admit": (frozenset({JOINING}), MEMBER),
}

Ballot = tuple[int, str]   # (round, proposer's voter name)


class QuorumError(SupervisorError, ValueError):
    """A message or a stored state that does not make sense (a sentence says what)."""


@dataclass(frozen=True)
class LeaseSettings:
    """`write_leases:` switch and timings, in seconds (docs/REPLICATION.md, "Write leases")."""

    enabled: bool = False   # off by default: writes need every peer, as without leases
    lease_s: float = 3.0
    renew_s: float = 1.0
    margin_s: float = 1.0

    @property
    def grant_alive_s(self) -> float:
        """How long a grant counts as alive on its granter's clock (L2)."""
        return self.lease_s + self.margin_s


@dataclass(frozen=True)
class Config:
    """A decided epoch: which machines may hold write leases, which are certified against."""

    epoch: int
    states: tuple[tuple[str, str], ...]   # (machine, state), sorted; every voter listed

    @classmethod
    def first(cls, machines: Iterable[str]) -> Config:
        """Epoch 0: every machine a member (the cluster as it starts)."""
        return cls(0, tuple((machine, MEMBER) for machine in sorted(set(machines))))

    def state(self, machine: str) -> str:
        return dict(self.states).get(machine, EXCLUDED)

    @property
    def machines(self) -> list[str]:
        return [machine for machine, _ in self.states]

    def certified(self) -> list[str]:
        """Machines whose servers are peers in this epoch (member or joining)."""
        return [machine for machine, state in self.states if state != EXCLUDED]

    def step(self, step: str, machine: str) -> Config:
        """The next epoch with `machine` moved by `step`; QuorumError if STEPS forbids it."""
        if step not in STEPS:
            raise QuorumError(f"unknown step {step!r} (expected {', '.join(STEPS)})")
        allowed, target = STEPS[step]
        if machine not in self.machines:
            raise QuorumError(f"machine {machine!r} is not a voter of this cluster")
        if self.state(machine) not in allowed:
            raise QuorumError(f"cannot {step} {machine}: it is {self.state(machine)}")
        return Config(self.epoch + 1, tuple((m, target if m == machine else s)
                                            for m, s in self.states))

    def change_from(self, before: Config) -> tuple[str, str] | None:
        """(step, machine) if this config is one legal step from `before`, else None."""
        if self.epoch != before.epoch + 1 or self.machines != before.machines:
            return None
        moved = [(m, before.state(m), s) for m, s in self.states if s != before.state(m)]
        if len(moved) != 1:
            return None
        machine, old, new = moved[0]
        for step, (allowed, target) in STEPS.items():
            if old in allowed and new == target:
                return step, machine
        return None

    def as_dict(self) -> dict:
        return {"epoch": self.epoch, "states": dict(self.states)}

    @classmethod
    def from_dict(cls, value: object) -> Config:
        if not isinstance(value, dict) or isinstance(value.get("epoch"), bool) \
                or not isinstance(value.get("epoch"), int) or value["epoch"] < 0 \
                or not isinstance(value.get("states"), dict) or not value["states"]:
            raise QuorumError(f"not a configuration: {value!r}")
        states = value["states"]
        for machine, state in states.items():
            if not isinstance(machine, str) or state not in STATES:
                raise QuorumError(f"not a machine state: {machine!r}: {state!r}")
        return cls(value["epoch"], tuple(sorted(states.items())))


def ballot_of(value: object) -> Ballot:
    if not isinstance(value, list) or len(value) != 2 or isinstance(value[0], bool) \
            or not isinstance(value[0], int) or not isinstance(value[1], str):
        raise QuorumError(f"not a ballot: {value!r}")
    return value[0], value[1]


def majority(voters: int) -> int:
    return voters // 2 + 1


@dataclass
class Durable:
    """What a voter must keep across restarts (run/quorum.json)."""

    config: Config
    promised: Ballot | None = None                    # for epoch config.epoch + 1
    accepted: tuple[Ballot, Config] | None = None     # ditto

    def as_dict(self) -> dict:
        return {"config": self.config.as_dict(),
                "promised": list(self.promised) if self.promised else None,
                "accepted": None if self.accepted is None
                else {"ballot": list(self.accepted[0]), "config": self.accepted[1].as_dict()}}

    @classmethod
    def from_dict(cls, value: object) -> Durable:
        if not isinstance(value, dict):
            raise QuorumError(f"not a voter state: {value!r}")
        config = Config.from_dict(value.get("config"))
        promised = None if value.get("promised") is None else ballot_of(value["promised"])
        accepted = value.get("accepted")
        if accepted is not None:
            if not isinstance(accepted, dict):
                raise QuorumError(f"not an accepted proposal: {accepted!r}")
            accepted = (ballot_of(accepted.get("ballot")), Config.from_dict(accepted.get("config")))
        return cls(config, promised, accepted)


@dataclass(frozen=True)
class Answer:
    """A voter's answer: `ok`, why not, its decided config (the asker learns a newer one)."""

    ok: bool
    config: Config
    reason: str = ""
    accepted: tuple[Ballot, Config] | None = None   # a promise's previously accepted proposal
    changed: bool = False   # the durable state changed: write it before answering


class Voter:
    """One machine supervisor's vote (see the module docstring). Not thread-safe."""

    def __init__(self, name: str, durable: Durable, settings: LeaseSettings, now: float):
        if name not in durable.config.machines:
            raise QuorumError(f"voter {name!r} is not one of {durable.config.machines}")
        self.name = name
        self.durable = durable
        self.settings = settings
        # L2 after a restart: a grant may have been made just before it; count one now.
        self.granted_at: dict[str, float] = {m: now for m in durable.config.machines}
        self.epoch_since = now   # L4: when this voter reached its epoch (or started)

    @property
    def config(self) -> Config:
        return self.durable.config

    # --------------------------------------------------------------- leases

    def grant(self, machine: str, epoch: int, now: float) -> Answer:
        """A write lease grant to `machine` at `epoch` (L2, L3: see the docs)."""
        config = self.config
        if epoch != config.epoch:
            return Answer(False, config, f"epoch {epoch} asked, this voter is at {config.epoch}")
        if config.state(machine) != MEMBER:
            return Answer(False, config, f"{machine} is {config.state(machine)} in epoch "
                                         f"{config.epoch}")
        accepted = self.durable.accepted
        if accepted is not None and accepted[1].state(machine) == EXCLUDED:
            return Answer(False, config, f"this voter accepted excluding {machine} "
                                         f"(epoch {accepted[1].epoch} undecided)")
        self.granted_at[machine] = now
        return Answer(True, config)

    def grants_dead(self, machine: str, now: float) -> bool:
        return now - self.granted_at.get(machine, now) >= self.settings.grant_alive_s

    # ---------------------------------------------------------------- Paxos

    def learn(self, config: Config, now: float) -> bool:
        """Adopt a decided config newer than ours (decided is final); True if adopted."""
        if config.epoch <= self.config.epoch or config.machines != self.config.machines:
            return False
        self.durable = Durable(config)
        self.epoch_since = now
        return True

    def prepare(self, epoch: int, ballot: Ballot, now: float) -> Answer:
        """Phase 1 for `epoch` (= our epoch + 1): promise `ballot` unless a higher one was."""
        state = self.durable
        if epoch != state.config.epoch + 1:
            return Answer(False, state.config, f"epoch {epoch} asked, this voter decides "
                                               f"{state.config.epoch + 1}")
        if state.promised is not None and state.promised >= ballot:
            return Answer(False, state.config, f"promised ballot {list(state.promised)}")
        state.promised = ballot
        return Answer(True, state.config, accepted=state.accepted, changed=True)

    def accept(self, ballot: Ballot, proposal: Config, now: float) -> Answer:
        """Phase 2: accept `proposal` at `ballot` if promised nothing higher and L3/L4 hold."""
        state = self.durable
        change = proposal.change_from(state.config)
        if change is None:
            return Answer(False, state.config, f"epoch {proposal.epoch} is not one step from "
                                               f"this voter's epoch {state.config.epoch}")
        if state.promised is not None and state.promised > ballot:
            return Answer(False, state.config, f"promised ballot {list(state.promised)}")
        step, machine = change
        if step == "exclude" and not self.grants_dead(machine, now):
            left = self.settings.grant_alive_s - (now - self.granted_at[machine])
            return Answer(False, state.config, f"a grant to {machine} is alive {left:.1f} s more")
        if step == "admit" and now - self.epoch_since < self.settings.grant_alive_s:
            left = self.settings.grant_alive_s - (now - self.epoch_since)
            return Answer(False, state.config, f"grants of older epochs alive {left:.1f} s more")
        state.promised = ballot
        state.accepted = (ballot, proposal)
        return Answer(True, state.config, changed=True)


@dataclass
class Proposal:
    """One Paxos attempt for the epoch after `base` (sans-IO: feed it the answers)."""

    base: Config
    wanted: Config
    ballot: Ballot
    voters: int
    promises: dict[str, tuple[Ballot, Config] | None] = field(default_factory=dict)
    accepts: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.wanted.change_from(self.base) is None:
            raise QuorumError(f"epoch {self.wanted.epoch} is not one step from {self.base.epoch}")

    def promised(self, voter: str, accepted: tuple[Ballot, Config] | None) -> None:
        self.promises[voter] = accepted

    def ready(self) -> bool:
        return len(self.promises) >= majority(self.voters)

    def value(self) -> Config:
        """What phase 2 must propose: the highest-ballot accepted value seen, else ours."""
        seen = [accepted for accepted in self.promises.values()
                if accepted is not None and accepted[1].epoch == self.wanted.epoch]
        return max(seen, key=lambda pair: pair[0])[1] if seen else self.wanted

    def accepted_by(self, voter: str) -> None:
        self.accepts.add(voter)

    def decided(self) -> bool:
        return len(self.accepts) >= majority(self.voters)


def next_change(config: Config, me: str, heard: Mapping[str, float], now: float,
                settings: LeaseSettings, ready: bool,
                with_servers: frozenset[str]) -> tuple[str, str] | None:
    """(step, machine) this voter should propose now, or None.

    `heard`: voter -> when it last answered us (ourselves included, at
    `now`). Our own machine, once a majority hears us and our servers are
    `ready` for the step (excluded: aligned on the members' copies, L7;
    joining: caught up, L5): join, then admit. Another machine with servers (`with_servers`: excluding a
    machine without any changes nothing) silent for `grant_alive_s` is
    excluded, by the lowest-named voter we hear (so proposers rarely duel).
    """
    alive = sorted(m for m in config.machines
                   if m == me or now - heard.get(m, float("-inf")) < settings.grant_alive_s)
    if len(alive) < majority(len(config.machines)):
        return None
    mine = config.state(me)
    if mine in (EXCLUDED, JOINING):
        return (("join" if mine == EXCLUDED else "admit"), me) if ready else None
    if alive[0] != me:
        return None
    for machine in config.machines:
        if machine not in alive and machine in with_servers \
                and config.state(machine) != EXCLUDED:
            return "exclude", machine
    return None


def lease_until(sent_at: float, granted: Iterable[str], voters: int,
                settings: LeaseSettings) -> float | None:
    """The lease a round of grants gives (asked at `sent_at`): its end, or None (no majority)."""
    if len(set(granted)) < majority(voters):
        return None
    return sent_at + settings.lease_s - settings.margin_s
