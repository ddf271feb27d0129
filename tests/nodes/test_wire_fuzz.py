"""Fuzzing the wire protocol: the pure framer and decoder, then one live server.

Pure part: `RequestFramer` and `ResponseDecoder` fed hostile bytes in random
chunkings never raise anything but the documented `ProtocolError` (decoder
only) and never hold more than their limits. Live part: a bounded number of
random byte streams sent to one real server process, each on its own
connection; every answer is well-formed, every message is a success or a
`Hadisoana : ` error, and the server keeps serving.
"""

from __future__ import annotations

import itertools
import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import ERROR_PREFIX
from engine.evaluation.outcome import Column, Outcome, Relation
from nodes.protocol.wire import (
    ADMIN_AUTH,
    ProtocolError,
    RequestFramer,
    ResponseDecoder,
    auth_request,
    auth_secret,
    encode_outcome,
    secret_problem,
)

LIMIT = 64  # a small request limit so the fuzzer crosses it often

# Bytes that matter to framing: terminators, quotes, escapes, comment starts,
# line breaks, admin words, and bytes that are not UTF-8.
INTERESTING = [b";", b"'", b'"', b"\\", b"-", b"--", b"/", b"//", b"\n", b"\r", b" ", b"a",
               b"\xc3", b"\xa9", b"\xff", b"\x00", b".ping", b".auth", b"alaivo 1", b"\xe2\x82"]
hostile_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(INTERESTING), max_size=120).map(b"".join),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# --------------------------------------------------------------------------
# RequestFramer


@settings(max_examples=400, deadline=None)
@given(hostile_bytes, st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_framer_never_raises_and_stays_bounded(data, cuts):
    framer = RequestFramer(max_request_bytes=LIMIT)
    for chunk in chunked(data, cuts):
        for request in framer.feed(chunk):
            if request.error is not None:
                assert request.error.startswith(ERROR_PREFIX)
                assert request.text == "" and request.admin is None
            else:
                assert 0 < len(request.text) <= LIMIT
                assert "\udcff" not in request.text  # undecodable bytes never reach a handler
        # The unfinished statement held is never beyond the limit.
        assert framer._splitter.pending_length() <= LIMIT


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=LIMIT + 1, max_value=20 * LIMIT), st.integers(min_value=1, max_value=97))
def test_over_long_statement_gives_exactly_one_error_in_any_chunking(size, step):
    framer = RequestFramer(max_request_bytes=LIMIT)
    data = b"x" * size + b"; alaivo 1;"
    requests = []
    for start in range(0, len(data), step):
        requests.extend(framer.feed(data[start:start + step]))
    assert [r.error is not None for r in requests] == [True, False]
    assert requests[1].text == "alaivo 1"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1,
               max_size=80))
def test_any_usable_secret_frames_back_to_itself(secret):
    if secret_problem(secret) is not None:
        return
    requests = RequestFramer().feed(auth_request(secret))
    assert len(requests) == 1 and requests[0].admin == ADMIN_AUTH
    assert auth_secret(requests[0]) == secret


def test_unusable_secrets_are_refused_with_a_reason():
    for bad in ["", "two words", "semi;colon", "quo'te", 'dq"', "a--b", "a//b", "tab\tx",
                "é", "x" * 300]:
        assert secret_problem(bad) is not None, bad


def test_auth_word_needs_a_separator():
    (authorise,) = RequestFramer().feed(b".authorise x;")
    assert authorise.admin is None
    (bare,) = RequestFramer().feed(b".AUTH;")
    assert bare.admin == ADMIN_AUTH and auth_secret(bare) == ""


# --------------------------------------------------------------------------
# ResponseDecoder


def _check_decoder(decoder: ResponseDecoder, chunks: list[bytes]) -> list:
    responses = []
    try:
        for chunk in chunks:
            responses.extend(decoder.feed(chunk))
            assert len(decoder._buffer) <= decoder.max_response_bytes
    except ProtocolError:
        pass
    return responses


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=400),
                 st.lists(st.sampled_from([b"RESULT_MESSAGE\n", b"END\n", b"RELATION_JSON_END\n",
                                           b"RELATION_JSON_PAGE 1/1\n", b"RELATION_JSON_PAGE x\n",
                                           b"{}\n", b'{"rows":5}\n', b'{"columns":[1]}\n',
                                           b"[]\n", b"ok\n", b"\xff\n", b"\n"]),
                          max_size=40).map(b"".join)),
       st.lists(st.integers(min_value=0, max_value=400), max_size=10), st.booleans())
def test_decoder_raises_only_protocol_error(data, cuts, decode_relations):
    decoder = ResponseDecoder(decode_relations=decode_relations, max_response_bytes=256)
    for response in _check_decoder(decoder, chunked(data, cuts)):
        assert response.raw.endswith(b"END\n")


values = st.one_of(st.none(), st.integers(), st.text(max_size=20),
                   st.floats(allow_nan=False, allow_infinity=False))
outcomes = st.builds(
    lambda ok, message, rows, relation: Outcome(
        ok, message if ok else ERROR_PREFIX + message,
        Relation("r", [Column("a", None), Column("b", "t")], rows) if relation else None),
    st.booleans(), st.text(max_size=30), st.lists(st.lists(values, min_size=2, max_size=2),
                                                   max_size=7), st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(outcomes, min_size=1, max_size=4), st.data())
def test_truncated_or_corrupted_valid_streams(outcome_list, data):
    stream = b"".join(encode_outcome(o, page_rows=3) for o in outcome_list)
    cut = data.draw(st.integers(min_value=0, max_value=len(stream)))
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=8))
    # Truncated: a prefix of the real responses comes out, nothing invented.
    decoder = ResponseDecoder()
    got = _check_decoder(decoder, chunked(stream[:cut], cuts))
    expected = [encode_outcome(o, page_rows=3) for o in outcome_list]
    assert [r.raw for r in got] == expected[:len(got)]
    assert decoder.pending == (cut != sum(len(e) for e in expected[:len(got)]))
    # One byte changed: well-formed responses or ProtocolError, nothing else.
    if stream:
        at = data.draw(st.integers(min_value=0, max_value=len(stream) - 1))
        byte = data.draw(st.integers(min_value=0, max_value=255))
        corrupted = stream[:at] + bytes([byte]) + stream[at + 1:]
        _check_decoder(ResponseDecoder(max_response_bytes=len(stream)), chunked(corrupted, cuts))


# --------------------------------------------------------------------------
# Live: one real server process


def _exchange(port: int, chunks: list[bytes]) -> bytes:
    """Send the chunks, half-close, read everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = b""
        while True:
            try:
                data = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
        return received


LIVE_EXAMPLES = 200


def test_live_server_survives_random_streams(start_node):
    server = start_node("server", "fuzz", "--data", "data/fuzz", "--max-request-bytes", "256")
    seen = {"examples": 0, "responses": 0}

    @settings(max_examples=LIVE_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(hostile_bytes, st.lists(st.integers(min_value=0, max_value=400), max_size=6))
    def one_stream(data, cuts):
        received = _exchange(server.port, chunked(data, cuts))
        decoder = ResponseDecoder()
        responses = decoder.feed(received)
        assert not decoder.pending, received[-200:]
        for response in responses:
            assert response.ok or response.message.startswith(ERROR_PREFIX)
            assert "Traceback" not in response.message
        seen["examples"] += 1
        seen["responses"] += len(responses)

    one_stream()
    assert server.alive()
    assert seen["examples"] >= LIVE_EXAMPLES // 2
    ping = ResponseDecoder().feed(_exchange(server.port, [b".ping;alaivo 1 + 1;"]))
    assert ping[0].message == "PONG fuzz server"
    assert ping[1].relation is not None and ping[1].relation.rows == [[2]]
    assert "Traceback" not in server.log_text()
