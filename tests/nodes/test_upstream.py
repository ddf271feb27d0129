"""nodes.runtime.upstream: an `UpstreamConnection` that is not open sends nothing."""

from __future__ import annotations

import asyncio

import pytest

from nodes.runtime.upstream import UpstreamConnection, UpstreamError


def test_send_on_a_connection_not_open_fails_as_not_sent():
    # `send` requires an open connection; one forgotten meanwhile (another
    # request on it failed) must fail like a closed one, not with a bug.
    async def scenario():
        connection = UpstreamConnection("127.0.0.1", 9)
        answer = connection.send(b"alaivo 1;")
        with pytest.raises(UpstreamError, match="not connected"):
            await answer
        return connection.connected

    assert asyncio.run(scenario()) is False
