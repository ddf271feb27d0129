"""Write leases and membership epochs between the machines' supervisors: the I/O side.

supervisor/quorum.py holds the decisions (pure, with a given clock);
docs/REPLICATION.md, "Write leases", the invariants. `QuorumService` runs
them on the event loop of one machine's supervisor:

- every `renew_s`, one round: a `grant` request to every voter (this
  machine's own voter answered in process, the others on their control
  port, with the secret: supervisor/control.py `ask_remote`), the send time
  noted first; a majority of grants gives this machine's servers a lease
  until `sent + lease_s - margin_s`, written into their peers files by
  `on_change` (supervisor/cluster.py `write_peers_files`);
- every request and answer carries the sender's decided configuration, so
  a voter behind learns the newer one;
- then `next_change` says whether to propose an epoch (exclude a silent
  machine, join or admit this one), run as a Paxos attempt in a task of
  its own (prepare, accept, learn), one at a time, retried after a random
  pause when refused;
- a joining machine's servers are caught up (`catch_up`, the replicator's
  pass over the network) before this machine proposes its admission.

The voter's durable state is written (`atomic_write`, run/quorum.json)
before any answer that depends on it leaves. Each transition (epoch
decided, lease held or lost) is logged once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from engine.storage.atomic_files import atomic_write

from .control import NotRunning, VersionMismatch, ask_remote
from .keeper import cancel_until_done
from .quorum import (
    EXCLUDED,
    JOINING,
    MEMBER,
    Answer,
    Config,
    Durable,
    LeaseSettings,
    Proposal,
    QuorumError,
    Voter,
    ballot_of,
    lease_until,
    majority,
    next_change,
)

STATE_FILE = "quorum.json"
MIN_VOTERS = 3   # with fewer machines a majority is everyone: leases change nothing


@dataclass(frozen=True)
class Lease:
    """The write lease this machine's servers hold: its epoch, its end (monotonic, here)."""

    epoch: int
    until: float


class QuorumService:
    """This machine's voter, lease holder and proposer (see the module docstring)."""

    def __init__(self, me: str, voters: list[str], servers_by_machine: dict[str, list[str]],
                 port: int, secret: str | None, tls: ssl.SSLContext | None,
                 settings: LeaseSettings, run_dir: Path, logger: logging.Logger,
                 on_change: Callable[[], None],
                 catch_up: Callable[[], Awaitable[None]],
                 align: Callable[[list[str]], Awaitable[bool]]):
        self.me = me
        self.voters = sorted(voters)
        self.servers_by_machine = servers_by_machine
        self.port, self.secret, self.tls = port, secret, tls
        self.settings = settings
        self.path = run_dir / STATE_FILE
        self.logger = logger
        self.on_change = on_change
        self.catch_up = catch_up
        self.align = align
        self.voter = Voter(me, self._load(), settings, time.monotonic())
        self.lease: Lease | None = None
        self.heard: dict[str, float] = {}
        # The epoch in which our servers were made ready for the next step: aligned on the
        # members' copies (excluded, before join: L7), caught up (joining, before admit: L5).
        self.ready_epoch: int | None = None
        self._round = 0
        self._task: asyncio.Task | None = None
        self._proposing: asyncio.Task | None = None
        self._preparing: asyncio.Task | None = None
        self._said: dict[str, str] = {}

    # ------------------------------------------------------------ lifecycle

    def _load(self) -> Durable:
        """The voter state kept here; never guessed: a voter that forgot a promise could
        break a decision (`up` checks the same first: `voter_file_problem`)."""
        if not self.path.exists():
            return Durable(Config.first(self.voters))
        problem = voter_file_problem(self.path.parent, self.voters)
        if problem is not None:
            raise QuorumError(problem)
        return Durable.from_dict(json.loads(self.path.read_text(encoding="utf-8")))

    def _save(self) -> None:
        atomic_write(self.path, json.dumps(self.voter.durable.as_dict(), indent=1).encode())

    def start(self) -> None:
        if self._task is None:
            self._say("epoch", f"write leases: epoch {self.config.epoch} "
                               f"({self._describe(self.config)}), this machine {self.me}")
            self._task = asyncio.create_task(self._renew_loop(), name="write-leases")

    async def stop(self) -> None:
        for task in (self._task, self._proposing, self._preparing):
            if task is not None:
                await cancel_until_done(task)   # (wait_for inside may swallow one cancel)
        self._task = self._proposing = self._preparing = None

    @property
    def config(self) -> Config:
        return self.voter.config

    def snapshot(self) -> dict:
        """For `status`: the epoch, each machine's state, this machine's lease."""
        now = time.monotonic()
        lease = self.lease
        return {"epoch": self.config.epoch, "machines": dict(self.config.states),
                "me": self.me, "servers": bool(self.servers_by_machine.get(self.me)),
                "lease_left_s": None if lease is None else round(max(0.0, lease.until - now), 2),
                "lease_epoch": None if lease is None else lease.epoch}

    def server_lease(self, now: float | None = None) -> dict | None:
        """The `lease` of this machine's servers' peers files (None: no lease held)."""
        lease = self.lease
        now = time.monotonic() if now is None else now
        if lease is None or lease.until <= now or self.config.state(self.me) != MEMBER:
            return None
        return {"epoch": lease.epoch, "until": round(lease.until, 3)}

    def certified(self) -> set[str]:
        """Machines whose servers are peers now (member or joining in our decided epoch)."""
        return set(self.config.certified())

    # --------------------------------------------------- answering the others

    async def handle(self, request: dict) -> dict:
        """A `quorum` request from another machine's supervisor (or our own, in process)."""
        now = time.monotonic()
        try:
            sender = request.get("from")
            if sender not in self.voters:
                raise QuorumError(f"{sender!r} is not a voter of this topology")
            learned = self._learn(Config.from_dict(request.get("config")), now)
            op = request.get("op")
            if op == "grant":
                epoch = request.get("epoch")
                if not isinstance(epoch, int) or isinstance(epoch, bool):
                    raise QuorumError(f"not an epoch: {epoch!r}")
                answer = self.voter.grant(sender, epoch, now)
            elif op == "prepare":
                answer = self.voter.prepare(request.get("epoch"),   # type: ignore[arg-type]
                                            ballot_of(request.get("ballot")), now)
            elif op == "accept":
                answer = self.voter.accept(ballot_of(request.get("ballot")),
                                           Config.from_dict(request.get("proposal")), now)
            elif op == "learn":
                answer = Answer(True, self.config)
            else:
                raise QuorumError(f"unknown quorum op {op!r} (grant, prepare, accept, learn)")
        except QuorumError as error:
            return {"ok": False, "error": str(error)}
        if answer.changed or learned:
            self._save()   # before the answer leaves: a promise must survive a crash
        reply = {"ok": True, "yes": answer.ok, "reason": answer.reason,
                 "config": answer.config.as_dict()}
        if answer.accepted is not None:
            reply["accepted"] = {"ballot": list(answer.accepted[0]),
                                 "config": answer.accepted[1].as_dict()}
        return reply

    def _learn(self, config: Config, now: float) -> bool:
        before = self.config
        if not self.voter.learn(config, now):
            return False
        self._said.pop("proposal", None)
        self._say("epoch", f"write leases: epoch {config.epoch} decided "
                           f"({self._describe(config)}; was {before.epoch})")
        if config.state(self.me) != MEMBER and self.lease is not None:
            self.lease = None
            self._say("lease", f"write lease of {self.me}: none ({config.state(self.me)} in "
                               f"epoch {config.epoch})")
        self.on_change()
        return True

    # ------------------------------------------------------------- asking

    async def _ask(self, voter: str, request: dict) -> dict | None:
        """One request to a voter (ours in process); None when it did not answer."""
        message = {"cmd": "quorum", "from": self.me, "config": self.config.as_dict(), **request}
        if voter == self.me:
            answer = await self.handle(message)
        else:
            try:
                answer = await ask_remote(voter, self.port, message, self.secret, self.tls,
                                          max(0.2, self.settings.renew_s * 0.8))
            except (NotRunning, VersionMismatch):
                return None
        if not answer.get("ok"):
            self._say(f"refused-{voter}", f"write leases: {voter} refused: {answer.get('error')}")
            return None
        try:
            self._learn(Config.from_dict(answer.get("config")), time.monotonic())
        except QuorumError:
            return None
        self.heard[voter] = time.monotonic()
        return answer

    async def _ask_all(self, request: dict) -> dict[str, dict]:
        answers = await asyncio.gather(*(self._ask(voter, request) for voter in self.voters))
        return {voter: answer for voter, answer in zip(self.voters, answers, strict=True)
                if answer is not None}

    # -------------------------------------------------------------- leases

    async def _renew_loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.renew_once()
            except Exception as error:   # the loop must go on: leases lapse safely meanwhile
                self.logger.exception("write leases: a round failed: %s", error)
            await asyncio.sleep(max(0.05, self.settings.renew_s - (time.monotonic() - started)))

    async def renew_once(self) -> None:
        sent = time.monotonic()
        epoch = self.config.epoch
        answers = await self._ask_all({"op": "grant", "epoch": epoch})
        granted = [voter for voter, answer in answers.items() if answer.get("yes")]
        until = lease_until(sent, granted, len(self.voters), self.settings) \
            if self.config.epoch == epoch else None
        now = time.monotonic()
        if until is not None and self.config.state(self.me) == MEMBER \
                and self.servers_by_machine.get(self.me):   # a lease is for servers
            held_before = self.lease is not None and self.lease.until > now
            self.lease = Lease(epoch, until)
            if not held_before:
                self._say("lease", f"write lease of {self.me}: held (epoch {epoch}, granted by "
                                   f"{', '.join(sorted(granted))})")
        elif self.lease is not None and self.lease.until <= now:
            self.lease = None
            refused = {voter: answer.get("reason") for voter, answer in answers.items()
                       if not answer.get("yes")}
            silent = sorted(set(self.voters) - set(answers))
            self._say("lease", f"write lease of {self.me}: lapsed (granted by "
                               f"{len(granted)}/{len(self.voters)}; silent: "
                               f"{', '.join(silent) or 'none'}; refused: {refused or 'none'}): "
                               "its servers refuse writes")
        self.on_change()
        self._next_step(now)

    # ------------------------------------------------------------ proposing

    def _next_step(self, now: float) -> None:
        heard = {**self.heard, self.me: now}
        config = self.config
        alive = [m for m in config.machines
                 if now - heard.get(m, float("-inf")) < self.settings.grant_alive_s]
        if config.state(self.me) in (EXCLUDED, JOINING) and self.ready_epoch != config.epoch \
                and self._preparing is None and len(alive) >= majority(len(config.machines)):
            self._preparing = asyncio.create_task(self._prepare(config))
        change = next_change(config, self.me, heard, now, self.settings,
                             self.ready_epoch == config.epoch,
                             frozenset(m for m, servers in self.servers_by_machine.items()
                                       if servers))
        if change is None or self._proposing is not None:
            return
        self._proposing = asyncio.create_task(self._propose(*change))

    async def _prepare(self, config: Config) -> None:
        """Excluded: align our servers on the members' copies (L7); joining: catch them up
        (L5). Retried next round when it could not be done."""
        try:
            if config.state(self.me) == EXCLUDED:
                members = [m for m, state in config.states if state == MEMBER]
                if not await self.align(members):
                    return
                done = "aligned on the members' copies"
            else:
                await self.catch_up()
                done = "caught up"
            if self.config == config:
                self.ready_epoch = config.epoch
                self._say("prepared", f"write leases: {self.me}'s servers {done} "
                                      f"(epoch {config.epoch})")
        except Exception as error:   # retried next round
            self.logger.warning("write leases: preparing %s's servers failed: %s", self.me, error)
        finally:
            self._preparing = None

    async def _propose(self, step: str, machine: str) -> None:
        try:
            decided = await self.propose(step, machine)
            if not decided:
                await asyncio.sleep(random.uniform(0.2, 1.0) * self.settings.renew_s)
        except Exception as error:
            self.logger.warning("write leases: proposing to %s %s failed: %s", step, machine,
                                error)
        finally:
            self._proposing = None

    async def propose(self, step: str, machine: str) -> bool:
        """One Paxos attempt for the next epoch; True once some value is decided."""
        base = self.config
        wanted = base.step(step, machine)
        promised = self.voter.durable.promised
        self._round = max(self._round, promised[0] if promised else 0) + 1
        proposal = Proposal(base, wanted, (self._round, self.me), len(self.voters))
        self._say("proposal", f"write leases: {self.me} proposes epoch {wanted.epoch}: "
                              f"{step} {machine}")
        ballot = list(proposal.ballot)
        for voter, answer in (await self._ask_all(
                {"op": "prepare", "epoch": wanted.epoch, "ballot": ballot})).items():
            if answer.get("yes"):
                accepted = answer.get("accepted")
                proposal.promised(voter, None if accepted is None else (
                    ballot_of(accepted["ballot"]), Config.from_dict(accepted["config"])))
        if not proposal.ready() or self.config != base:
            return False
        value = proposal.value()
        for voter, answer in (await self._ask_all(
                {"op": "accept", "ballot": ballot, "proposal": value.as_dict()})).items():
            if answer.get("yes"):
                proposal.accepted_by(voter)
        if not proposal.decided():
            return False
        self._learn(value, time.monotonic())
        await self._ask_all({"op": "learn"})   # our config now carries it to everyone
        return True

    # --------------------------------------------------------------- words

    def _say(self, topic: str, text: str) -> None:
        """Log a transition once (the same sentence on a topic is not repeated)."""
        if self._said.get(topic) != text:
            self._said[topic] = text
            self.logger.info("%s", text)

    @staticmethod
    def _describe(config: Config) -> str:
        parts = [f"{machine} {state}" for machine, state in config.states]
        return ", ".join(parts)


def voter_file_problem(run_dir: Path, hosts: list[str]) -> str | None:
    """Why this machine's voter file would stop `up` (None: fine, or absent: a first start).

    Checked by `up` before anything starts, so the refusal reaches the terminal.
    """
    voters, off = quorum_voters(hosts)
    path = run_dir / STATE_FILE
    if off is not None or not path.exists():
        return None
    try:
        durable = Durable.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, QuorumError) as error:
        return (f"{path}: unreadable voter state ({error}); restore it, or remove it only "
                "with every machine's supervisor down")
    if durable.config.machines != voters:
        return (f"{path}: voters {durable.config.machines} there, {voters} in the topology "
                "(machines change with every supervisor down: remove the file on each)")
    return None


def quorum_voters(hosts: list[str]) -> tuple[list[str], str | None]:
    """The voters of a topology's node hosts, and why leases are off (None: on)."""
    voters = sorted(set(hosts))
    if len(voters) < MIN_VOTERS:
        return voters, (f"write leases off: {len(voters)} machine(s), a majority needs "
                        f"{MIN_VOTERS} or more to keep writing without one")
    return voters, None


__all__ = ["EXCLUDED", "JOINING", "MEMBER", "Lease", "QuorumService", "majority",
           "quorum_voters"]
