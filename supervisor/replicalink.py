"""How the cluster drives replication (supervisor/replication.py, another module).

`ReplicationLink` wraps the thread-based `Replicator` so the asyncio side
never blocks: whole-directory passes (`sync_all`, `catch_up`, `seed`) run in
a worker thread. When replication is disabled in the topology every call is
a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from .peer_link import PeerAddress
from .replication import Replicator, SyncSummary


class ReplicationLink:
    def __init__(self, servers: dict[str, Path], enabled: bool, logger: logging.Logger,
                 remote: dict[str, PeerAddress] | None = None):
        self.enabled = enabled
        self.logger = logger
        self.replicator: Replicator | None = Replicator(servers, logger, remote=remote) \
            if enabled else None

    def set_remote(self, remote: dict[str, PeerAddress]) -> None:
        """The servers of other machines changed (a hot reload)."""
        if self.replicator is not None:
            self.replicator.set_remote(remote)

    async def start(self, joining: list[str] | tuple[str, ...] = ()) -> None:
        """Align the `joining` servers on the others, reconcile every directory once, then
        watch them."""
        if self.replicator is None:
            return
        if joining:
            summary = await asyncio.to_thread(self.replicator.align_joining, list(joining))
            self.logger.info("replication: %s joining: aligned on the cluster (%d files "
                             "copied%s)", ", ".join(joining), summary.copied, _problems(summary))
        summary = await asyncio.to_thread(self.replicator.sync_all)
        self.logger.info("replication: initial sync: %d files checked, %d copied%s",
                         summary.paths, summary.copied, _problems(summary))
        self.replicator.start()

    async def settle(self, timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) until every pending copy is made."""
        if self.replicator is None:
            return True
        return await asyncio.to_thread(self.replicator.wait_idle, timeout_s)

    async def stop(self, final_pass: bool = False) -> str:
        """Stop watching; with `final_pass`, reconcile every directory once more (all quiet).

        What that pass could not do, in a few words ("" if nothing), for `down` to say.
        """
        if self.replicator is None:
            return ""
        await asyncio.to_thread(self.replicator.stop)
        if not final_pass:
            return ""
        summary = await asyncio.to_thread(self.replicator.sync_all)
        problems = _problems(summary)
        self.logger.info("replication: final pass: %d files checked, %d copied%s",
                         summary.paths, summary.copied, problems)
        if not (summary.unreachable or summary.unreadable or summary.conflicts):
            return ""
        return problems.removeprefix(", ")

    def has_peers(self, server_id: str) -> bool:
        return self.replicator is not None and (any(
            other != server_id for other in self.replicator.servers())
            or bool(self.replicator.remote_servers()))

    async def catch_up(self, server_id: str) -> None:
        """Pull from the peers everything newer than what `server_id` has."""
        if self.replicator is None or not self.has_peers(server_id):
            return
        summary = await asyncio.to_thread(self.replicator.catch_up, server_id)
        self.logger.info("replication: %s caught up (%d files copied%s)", server_id,
                         summary.copied, _problems(summary))

    async def align(self, server_id: str, sources: list[str]) -> bool:
        """`Replicator.align` off the event loop; True when every source could be read."""
        if self.replicator is None:
            return False
        summary = await asyncio.to_thread(self.replicator.align, server_id, sources)
        self.logger.info("replication: %s aligned on %s (%d objects installed%s)", server_id,
                         ", ".join(sources), summary.copied, _problems(summary))
        return not summary.unreachable

    async def seed(self, server_id: str, data: Path) -> None:
        """Add a new server and copy every object into its directory."""
        if self.replicator is None:
            return
        summary = await asyncio.to_thread(self.replicator.seed, server_id, data)
        self.logger.info("replication: %s seeded with a full copy (%d files copied%s)",
                         server_id, summary.copied, _problems(summary))

    async def remove(self, server_id: str, keep_if_undone: bool = False) -> bool:
        """A stopped server leaves: what it holds newest goes to the others first.

        With `keep_if_undone`, a hand over that left copies undone (the others' disk
        full, an unreadable file, another machine not reached) keeps the server in the
        replicator (its copies still retried) and returns False: it may hold writes it
        acknowledged that nobody else has; the caller tries again later.
        """
        if self.replicator is None:
            return True
        summary = await asyncio.to_thread(self.replicator.hand_over, server_id)
        undone = summary.unreadable or summary.unreachable
        if undone and keep_if_undone:
            self.logger.warning("replication: %s not handed over yet (%d of its files copied"
                                "%s): it stays the others' peer, tried again", server_id,
                                summary.copied, _problems(summary))
            return False
        if undone:
            # (No reload leaves so any more: a removed or moved server is kept, with
            # `keep_if_undone`.) What it alone held stays in a directory nobody replicates
            # nor certifies against: said loudly, never as if it had left whole.
            self.logger.error("replication: %s left with copies not handed over (%d of its files "
                              "copied%s): writes it alone acknowledged may be only in %s; keep "
                              "that directory (its copies above the cluster's counters are "
                              "those writes; docs/REPLICATION.md, \"Membership and "
                              "ownership\")", server_id, summary.copied, _problems(summary),
                              self.replicator.servers().get(server_id, "its old directory"))
        else:
            self.logger.info("replication: %s left; %d of its files handed over%s", server_id,
                             summary.copied, _problems(summary))
        await asyncio.to_thread(self.replicator.remove_server, server_id)
        return True

    async def rename(self, server_id: str, new_id: str) -> None:
        """`Replicator.rename_server` (a stopped server's directory, under another id)."""
        if self.replicator is not None:
            await asyncio.to_thread(self.replicator.rename_server, server_id, new_id)

    async def carry_over(self, server_id: str, data: Path) -> bool:
        """`Replicator.carry_over` off the event loop; False (logged) if it could not be done."""
        if self.replicator is None:
            return True
        try:
            summary = await asyncio.to_thread(self.replicator.carry_over, server_id, data)
        except Exception as error:   # (its old directory keeps its files: said, not lost)
            self.logger.error("replication: %s could not start from its old directory (%s): "
                              "what it alone held stays there", server_id, error)
            return False
        self.logger.info("replication: %s moved to %s, starting from its old directory "
                         "(%d files copied%s)", server_id, data, summary.copied, _problems(summary))
        return True

    def known(self, server_id: str) -> bool:
        return self.replicator is not None and server_id in self.replicator.servers()

    def stats(self) -> dict:
        if self.replicator is None:
            return {}
        try:
            return self.replicator.stats()
        except Exception as error:  # reporting must never break `status`
            self.logger.warning("replication stats failed: %s", error)
            return {}


def _problems(summary: SyncSummary) -> str:
    """What a whole-directory pass found besides copies (each is also logged on its own)."""
    found = [(f"{what}: {', '.join(paths)}" if len(paths) <= 5
              else f"{what}: {len(paths)} objects") for what, paths in (
        ("repaired", summary.healed), ("conflicts", summary.conflicts),
        ("diverged from the cluster's, replaced and kept in .diverged/", summary.diverged),
        ("still failing or corrupt", summary.unreadable),
        ("symlinks not followed", summary.refused),
        ("other machines not reached", summary.unreachable)) if paths]
    return "".join(f", {part}" for part in found)
