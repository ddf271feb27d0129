"""`Turn`: a pipelined statement's place in its balancer session's order.

The futures a statement behind awaits are made only when one waits; these
tests pin down that the order rules stay those of the futures: a statement
waits for the one before it to be done, or, a write allowed to follow, only
for it to be sent ahead.
"""

from __future__ import annotations

import asyncio

from nodes.balancer.backends import Timeouts
from nodes.balancer.session import ClientSession, Turn


def run(coroutine):
    return asyncio.run(coroutine)


def test_an_idle_session_starts_a_statement_at_once_without_futures():
    async def main():
        session = ClientSession(Timeouts())
        assert session.idle
        first = session.take_turn()
        assert not session.idle and first.previous is None
        assert await first.wait() is None
        first.settle()
        assert session.idle and first.finished and first.signalled
        second = session.take_turn()
        assert second.previous is None   # the one before is done: nothing to wait for
        assert first._done is None and first._signal is None

    run(main())


def test_a_statement_waits_until_the_one_before_is_done():
    async def main():
        session = ClientSession(Timeouts())
        first = session.take_turn()
        second = session.take_turn()
        assert second.previous is first
        waiting = asyncio.ensure_future(second.wait())
        await asyncio.sleep(0)
        first.sent_ahead("m1", "db")       # sent, not done: a plain wait goes on
        await asyncio.sleep(0)
        assert not waiting.done()
        first.answered()
        await first.finish()
        assert await waiting is None
        assert first.finished

    run(main())


def test_a_write_may_follow_one_sent_ahead_and_no_other_is_let_through():
    async def main():
        session = ClientSession(Timeouts())
        first = session.take_turn()
        second = session.take_turn()
        asked = []
        following = asyncio.ensure_future(second.wait(lambda previous: asked.append(previous) or True))
        await asyncio.sleep(0)
        assert not following.done()        # not sent yet
        first.sent_ahead("m1", "db")
        assert await following is first and asked == [first]
        third = session.take_turn()
        refused = asyncio.ensure_future(third.wait(lambda previous: False))
        second.sent_ahead("m1", "db")
        await asyncio.sleep(0.01)
        assert not refused.done()          # may not follow: waits for second to be done
        first.settle()
        await second.finish()
        assert await refused is None

    run(main())


def test_a_turn_settled_before_anyone_waits_releases_a_later_waiter():
    async def main():
        first = Turn(None)
        second = Turn(first)
        first.settle()
        assert await second.wait(lambda previous: True) is None
        assert first._done is None         # never waited on: never made

    run(main())
