"""The directories other machines still hold for servers a reload removed or moved away.

When an edit removes server S from machine A, or moves it to another
machine, and S's newest copies cannot all be handed over, A keeps S's
directory (as `S`, or `S~old` when S's id now names its new incarnation)
and serves it peer-only at S's old address (supervisor/cluster.py
`serve_old_directory`). Every other machine's servers must certify against
it meanwhile, or they would commit counters it already used and S's
acknowledged rows would be lost when the hand over lands
(docs/REPLICATION.md, "Moving a server to another machine").

`HeldElsewhere` is this machine's list of such directories: leaving peers
in the peers files (pulled from on write, fenced against) and remote peers
of the replicator, each until its machine's supervisor no longer names it.
What A holds is asked on A's control port (`holding`, `ask`):

- at a reload (`still_held`): a directory is waited for only if A answers
  and names S or `S~old`; a machine that does not answer is taken for dead
  (an operator moving a server off a dead machine would otherwise see
  every write refused) and asked again every RETRY_S until it does;
- at `up` (`learn`): each other machine names the directories it serves,
  by address; one that does not answer is asked again the same way;
- then (`_watch`) every RETRY_S, until A names it no more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from nodes.server.membership import parse_address

from .replication import OLD_DIRECTORY_SUFFIX
from .topology import NodeSpec

RETRY_S = 2.0        # how often a machine is asked again
ANSWER_S = 1.0       # how long an answer is waited for at a reload or at `up`

# `ask(host, timeout_s)`: that machine's supervisor's `holding` answer, None if it is silent.
Ask = Callable[[str, float], Awaitable[dict | None]]


def names(holding: dict, server_id: str, old_id: str) -> bool:
    """Whether a `holding` answer names the server or its old directory (a malformed
    answer names it: kept, the safe side)."""
    servers = holding.get("servers")
    return not isinstance(servers, list) or server_id in servers or old_id in servers


class HeldElsewhere:
    """The directories other machines hold for servers removed or moved away from them."""

    def __init__(self, ask: Ask, in_topology: Callable[[str], bool],
                 changed: Callable[[], None], logger: logging.Logger):
        """`in_topology(id)`: a server the topology names (added back: itself again, not a
        leaving peer); `changed()`: called when the list changed after a wait."""
        self.specs: dict[str, NodeSpec] = {}   # by `S` or `S~old`, at S's old address
        self._ask = ask
        self._in_topology = in_topology
        self._changed = changed
        self._logger = logger
        self._silent: set[str] = set()          # hosts asked again until they answer
        self._learning: asyncio.Task | None = None
        self._watching: asyncio.Task | None = None

    def peers(self) -> list[NodeSpec]:
        """The leaving peers to list (not a server the topology names again)."""
        return [spec for spec in self.specs.values() if not self._in_topology(spec.id)]

    async def still_held(self, moved: dict[str, NodeSpec]) -> None:
        """A reload removed or moved these servers of other machines (`moved`, by `S` or
        `S~old`, at S's old address): those their machine answers it still holds are
        waited for from now on."""
        hosts = sorted({spec.host for spec in moved.values()})
        answers = dict(zip(hosts, await asyncio.gather(
            *(self._ask(host, ANSWER_S) for host in hosts)), strict=True))
        for old_id, spec in moved.items():
            answer = answers[spec.host]
            server_id = old_id.removesuffix(OLD_DIRECTORY_SUFFIX)
            if answer is None:
                self._logger.warning("%s: its old machine's supervisor (%s) does not answer: "
                                     "its old directory is not waited for (what only it "
                                     "holds is lost if that machine does not come back)",
                                     server_id, spec.host)
            elif names(answer, server_id, old_id):
                self.specs[old_id] = spec
        # A machine back later (its supervisor restarted) may serve it then: asked again.
        self._ask_again(host for host, answer in answers.items() if answer is None)
        self.watch()

    async def learn(self, hosts: list[str]) -> None:
        """At `up`: the directories the other machines (`hosts`) serve, by address."""
        if not hosts:
            return
        answers = await asyncio.gather(*(self._ask(host, ANSWER_S) for host in hosts))
        for answer in answers:
            self._learn_from(answer)
        self._ask_again(host for host, answer in zip(hosts, answers, strict=True)
                        if answer is None)
        self.watch()

    def cancel(self) -> None:
        for task in (self._learning, self._watching):
            if task is not None:
                task.cancel()

    def _learn_from(self, answer: dict | None) -> bool:
        """Take the directories a `holding` answer serves; True if one was new here."""
        found = answer.get("old_directories") if answer is not None else None
        learnt = False
        for old_id, address in (found.items() if isinstance(found, dict) else ()):
            try:
                host, port = parse_address(str(address))
            except ValueError:
                continue   # (another machine's damaged answer: not ours to crash on)
            if isinstance(old_id, str) and not self._in_topology(old_id) \
                    and old_id not in self.specs:
                self.specs[old_id] = NodeSpec(old_id, "server", host, port)
                self._logger.warning("%s: still handed over on its machine, at %s: a "
                                     "leaving peer here until it is done", old_id, address)
                learnt = True
        return learnt

    def _ask_again(self, hosts: Iterable[str]) -> None:
        self._silent.update(hosts)
        if self._silent and (self._learning is None or self._learning.done()):
            self._learning = asyncio.create_task(self._learn_later(),
                                                 name="old directories to learn")

    async def _learn_later(self) -> None:
        """A machine back (or reachable again) may serve a directory meanwhile: what it
        names becomes a leaving peer here."""
        while self._silent:
            await asyncio.sleep(RETRY_S)
            hosts = sorted(self._silent)
            answers = await asyncio.gather(*(self._ask(host, ANSWER_S) for host in hosts))
            learnt = False
            for host, answer in zip(hosts, answers, strict=True):
                if answer is not None:
                    self._silent.discard(host)
                    learnt = self._learn_from(answer) or learnt
            if learnt:
                self._changed()
                self.watch()

    def watch(self) -> None:
        """Ask, every RETRY_S, the machines holding the listed directories whether they
        still do."""
        if self.specs and (self._watching is None or self._watching.done()):
            self._watching = asyncio.create_task(self._watch(),
                                                 name="old directories elsewhere")

    async def _watch(self) -> None:
        while self.specs:
            await asyncio.sleep(RETRY_S)
            hosts = sorted({spec.host for spec in self.specs.values()})   # each asked once
            answers = dict(zip(hosts, await asyncio.gather(
                *(self._ask(host, RETRY_S) for host in hosts)), strict=True))
            # Not answering: still certified against (writes wait if need be).
            gone = [old_id for old_id, spec in list(self.specs.items())
                    if (answer := answers.get(spec.host)) is not None
                    and not names(answer, old_id.removesuffix(OLD_DIRECTORY_SUFFIX), old_id)]
            for old_id in gone:
                self.specs.pop(old_id, None)
                self._logger.info("%s: handed over on its machine: no longer a peer here",
                                  old_id)
            if gone:
                self._changed()
