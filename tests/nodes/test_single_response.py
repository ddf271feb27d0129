"""nodes.upstream.single_raw_response: the fast path agrees with ResponseDecoder exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.evaluation.outcome import Column, Outcome, Relation
from nodes.protocol.wire import ProtocolError, ResponseDecoder, encode_message, encode_outcome
from nodes.runtime.upstream import single_raw_response


def decoded(data: bytes):
    decoder = ResponseDecoder(decode_relations=False)
    try:
        responses = decoder.feed(data)
    except ProtocolError:
        return "error"
    return responses, decoder.pending


def agrees(data: bytes) -> None:
    fast = single_raw_response(data)
    if fast is None:
        return  # the decoder handles it
    responses, pending = decoded(data)
    assert len(responses) == 1 and not pending, data
    assert vars(fast) == vars(responses[0]), data


def test_common_responses_take_the_fast_path():
    relation = Relation("t", [Column("a", "t")], [[1], [2]])
    for data in (encode_message("ok"), encode_message("Hadisoana : tsy misy"),
                 encode_outcome(Outcome(True, "2 andalana", relation))):
        fast = single_raw_response(data)
        assert fast is not None
        agrees(data)
    assert not single_raw_response(encode_message("Hadisoana : x")).ok
    assert single_raw_response(encode_outcome(Outcome(True, "x", relation))).has_relation


def test_other_shapes_are_left_to_the_decoder():
    relation = Relation("t", [Column("a", "t")], [[i] for i in range(5)])
    two_pages = encode_outcome(Outcome(True, "ok", relation), page_rows=2)
    assert single_raw_response(two_pages) is None
    assert single_raw_response(encode_message("a") + encode_message("b")) is None
    assert single_raw_response(encode_message("a")[:-1]) is None
    assert single_raw_response(b"RESULT_MESSAGE\r\nok\r\nEND\r\n") is None
    assert single_raw_response(b"RESULT_MESSAGE\nEND\n") is None  # "END" is the message here


LINES = st.sampled_from([b"RESULT_MESSAGE", b"END", b"RELATION_JSON_PAGE 1/1",
                         b"RELATION_JSON_PAGE 1/2", b"RELATION_JSON_END", b"{}", b"ok",
                         b"Hadisoana : x", b"", b"ok\r", b"[1]"])


@settings(max_examples=400, deadline=None)
@given(st.lists(LINES, min_size=1, max_size=8))
def test_any_line_sequence_agrees_with_the_decoder(lines):
    agrees(b"\n".join(lines) + b"\n")
