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


def test_a_broken_connection_names_the_way_it_was_reached(tmp_path):
    """Over the node's Unix socket an error names the socket beside the node's address
    (before: the TCP address alone, which the connection never used: an operator would
    look for a TCP problem); over TCP, the address alone."""
    path = str(tmp_path / "lb.sock")

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b";")
        writer.close()

    async def broken(unix_socket: str | None, port: int) -> str:
        connection = UpstreamConnection("127.0.0.1", port, unix_socket=unix_socket)
        with pytest.raises(UpstreamError) as raised:
            await connection.request(b"alaivo 1;")
        return str(raised.value)

    async def scenario() -> tuple[str, str]:
        over_socket = await asyncio.start_unix_server(hang_up, path)
        over_tcp = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = over_tcp.sockets[0].getsockname()[1]
        try:
            return await broken(path, 9), await broken(None, port)
        finally:
            over_socket.close()
            over_tcp.close()

    via_socket, via_tcp = asyncio.run(scenario())
    assert f"amin'ny 127.0.0.1:9 (unix socket {path}) (connection closed)" in via_socket, \
        via_socket
    assert "tapaka ny fifandraisana amin'ny 127.0.0.1:" in via_tcp, via_tcp
    assert "unix socket" not in via_tcp, via_tcp
