"""A request that cannot complete still gets an answer (issue 15 bug 7; docs/LANGUAGE.md, wire).

The original DirkDB Java client joins a statement's lines with spaces and
never sends a newline: a `--` comment, `alaivo 5--3;` or an unterminated
quote swallowed the final `;` and the client waited forever. Raw socket
bytes exactly as that client sends them, against a real server.
"""

from __future__ import annotations

import socket
import time

import pytest

from nodes.protocol.wire import ResponseDecoder

JAVA_REQUESTS = [
    b"alaivo 5--3;",
    b"alaivo 1 -- the first one;",
    b"alaivo 'tsy mifarana;",
    b'alaivo "tsy mifarana;',
    b"alaivo 2 // comment;",
]


def java_exchange(port: int, request: bytes, timeout: float = 10.0):
    """One request as the Java client sends it (no newline), its one response, and the socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(request)
    decoder = ResponseDecoder()
    started = time.monotonic()
    while True:
        chunk = sock.recv(1 << 16)
        assert chunk, "the node closed the connection instead of answering"
        responses = decoder.feed(chunk)
        if responses:
            return responses, time.monotonic() - started, sock


@pytest.mark.parametrize("request_bytes", JAVA_REQUESTS)
def test_a_request_cut_off_inside_a_comment_or_string_is_answered(start_node, request_bytes):
    server = start_node("server", "m1", "--data", "data/m1")
    responses, waited, sock = java_exchange(server.port, request_bytes)
    with sock:
        assert len(responses) == 1
        assert not responses[0].ok and "syntax error" in responses[0].message
        assert waited < 5
        # The framing starts afresh: the same connection goes on.
        sock.sendall(b"alaivo 6 * 7;")
        decoder = ResponseDecoder()
        answers: list = []
        while not answers:
            answers = decoder.feed(sock.recv(1 << 16))
        assert answers[0].ok and answers[0].relation.rows == [[42]]


def test_a_complete_request_and_a_comment_ended_by_a_newline_are_untouched(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        # A comment ended by its newline holds no statement: no answer for it.
        sock.sendall(b"alaivo 1; -- note;\nalaivo 'a;b';")
        decoder, answers = ResponseDecoder(), []
        while len(answers) < 2:
            answers.extend(decoder.feed(sock.recv(1 << 16)))
        assert [a.relation.rows for a in answers] == [[[1]], [["a;b"]]]
        sock.settimeout(2.5)   # longer than the quiet time: nothing more comes
        with pytest.raises(TimeoutError):
            sock.recv(1 << 16)
        # A statement split inside a string, its rest sent soon after, runs whole.
        sock.settimeout(10)
        sock.sendall(b"alaivo 'x;")
        time.sleep(0.3)
        sock.sendall(b"y';")
        answers = []
        while not answers:
            answers = decoder.feed(sock.recv(1 << 16))
        assert answers[0].relation.rows == [["x;y"]]


def test_a_statement_ending_in_a_comment_is_relayed_whole(start_node):
    # `alaivo 1 -- c` then a newline and `;`: the relays strip the newline
    # with the blanks; forwarded as `alaivo 1 -- c;` the `;` fell inside the
    # comment and the balancer waited 30 s for an answer that never came.
    server = start_node("server", "m1", "--data", "data/m1")
    balancer = start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{server.port}")
    proxy = start_node("proxycache", "p1", "--upstream", f"127.0.0.1:{balancer.port}")
    for node in (server, balancer, proxy):
        responses, waited, sock = java_exchange(node.port, b"alaivo 1 -- c\n;")
        with sock:
            assert responses[0].ok and responses[0].relation.rows == [[1]], node.name
            assert waited < 1.0, node.name
