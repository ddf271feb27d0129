"""nodes/protocol/peer.py: the `.peer` requests and answers, without sockets."""

from __future__ import annotations

import os

import pytest

from engine.storage.object_copy import Shipment
from engine.storage.object_state import CopyDigest
from nodes.protocol.peer import (
    PART_MARK,
    PEER_PROTOCOL_VERSION,
    PartBuffer,
    PeerRefused,
    RemoteDigest,
    check_arguments,
    check_hello,
    check_requests,
    decode_answer,
    decode_payload,
    decode_shipment,
    digest_arguments,
    digest_entry,
    digest_of,
    digest_request,
    encode_answer,
    encode_payload,
    encode_refusal,
    encode_shipment,
    fence_arguments,
    fence_request,
    fetch_arguments,
    fetch_request,
    hello_problem,
    hello_request,
    parse_request,
    request_bytes,
    requests_with_payload,
    ship_requests,
    shipment_answer,
    shipment_of,
)
from nodes.protocol.wire import ADMIN_PEER, RequestFramer, decode_responses


def framed(data: bytes) -> list:
    """What a server's framer makes of request bytes."""
    return RequestFramer(1 << 20).feed(data)


def test_a_payload_of_any_bytes_frames_as_one_plain_word():
    for data in (bytes(range(256)) * 8, b"\xff\xfe" * 1000, b";--//'\"", os.urandom(5000), b""):
        text = encode_payload(data)
        assert not {";", "'", '"', " "} & set(text)
        assert "--" not in text and "//" not in text
        assert decode_payload(text) == data
        [request] = framed(request_bytes("ship", "s/tables/t.json", text or "x"))
        assert request.admin == ADMIN_PEER and request.error is None


def test_a_bad_payload_is_a_clear_error():
    with pytest.raises(ValueError, match="not base64"):
        decode_payload("abc;")
    with pytest.raises(ValueError, match="not base64"):
        decode_payload("é")


def test_requests_parse_back_to_their_verb_and_arguments():
    [request] = framed(fetch_request("s/tables/t.json", 4, False))
    parsed = parse_request(request.text)
    assert (parsed.verb, parsed.args) == ("fetch", ("s/tables/t.json", "4", "0"))
    assert fetch_arguments(parsed) == ("s/tables/t.json", 4, False)
    assert fetch_arguments(parse_request(fetch_request("s/database.json", None, True)
                                         .decode()[:-1])) == ("s/database.json", None, True)
    assert fence_arguments(parse_request(fence_request(2.5, 40).decode()[:-1])) == (2.5, 40)
    [hello] = framed(hello_request())
    assert hello_problem(parse_request(hello.text)) is None


@pytest.mark.parametrize("text, error", [
    (".peer", "expects one of"),
    (".peer dance", "unknown peer request 'dance'"),
    (".peer fetch s/tables/t.json", "takes 3 arguments, not 1"),
    (".peer fence 0 10", "not between 0 and 600"),
    (".peer fence x 10", "not a number of seconds"),
    (".peer fetch s/tables/t.json -1 0", "below 0"),
    (".peer fetch s/tables/t.json 3 yes", "neither 0 nor 1"),
    (".peer release now", "takes 0 arguments"),
])
def test_malformed_requests_say_what_is_wrong(text, error):
    with pytest.raises(ValueError, match=error):
        request = parse_request(text)
        if request.verb == "fence":
            fence_arguments(request)
        if request.verb == "fetch":
            fetch_arguments(request)


def test_another_protocol_version_is_refused_by_both_ends():
    assert "peer protocol 99 is not spoken here" in hello_problem(parse_request(".peer hello 99"))
    assert check_hello({"protocol": PEER_PROTOCOL_VERSION, "node": "m2"}) == "m2"
    # Version 1 (no `.peer digest`) is another version now: refused, never half spoken.
    assert PEER_PROTOCOL_VERSION == 2
    assert "peer protocol 1 is not spoken here" in hello_problem(parse_request(".peer hello 1"))
    with pytest.raises(PeerRefused, match="speaks peer protocol 1"):
        check_hello({"protocol": 1, "node": "m2"})


def test_a_digest_request_and_its_answer_round_trip():
    request = parse_request(digest_request(["s/tables/t.json", "s/database.json"], False)
                            .decode()[:-1])
    assert digest_arguments(request) == (False, ["s/tables/t.json", "s/database.json"])
    assert digest_arguments(parse_request(digest_request(["s/tables/t.json"], True)
                                          .decode()[:-1])) == (True, ["s/tables/t.json"])
    line = CopyDigest(7, b"\x01" * 16, b"\x02" * 16)
    snapshot_only = CopyDigest(3, None, b"\x03" * 16)
    answer = decode_answer(decode_responses(encode_answer({
        "a": digest_entry(line, None), "b": digest_entry(snapshot_only, b"\x04" * 16),
        "c": digest_entry(None, None), "d": {"error": "not a document"}}))[0])
    assert digest_of(answer["a"]) == RemoteDigest(line)
    assert digest_of(answer["b"]) == RemoteDigest(snapshot_only, b"\x04" * 16)
    assert digest_of(answer["c"]) == RemoteDigest(None)
    assert digest_of(answer["d"]) == RemoteDigest(None, error="not a document")


def test_a_malformed_digest_request_or_answer_is_a_clear_error():
    with pytest.raises(ValueError, match="content flag 'x' is neither 0 nor 1"):
        digest_arguments(parse_request(".peer digest x s/tables/t.json"))
    with pytest.raises(ValueError, match="takes 2 or more arguments, not 1"):
        parse_request(".peer digest 0")
    for bad in ([1], {"change": "7", "line": None, "snapshot": "00", "content": None},
                {"change": 7, "line": "zz", "snapshot": "00", "content": None},
                {"change": 7, "line": None}, {"change": True, "line": None, "snapshot": "00",
                                              "content": None}):
        with pytest.raises(PeerRefused, match="not a digest"):
            digest_of(bad)


def test_an_argument_that_would_not_frame_as_one_word_is_refused():
    for bad in ("a b", "a;b", "x--y", "'", ""):
        with pytest.raises(ValueError):
            request_bytes("versions", bad)
    with pytest.raises(ValueError, match="unknown peer request"):
        request_bytes("dance")


def test_a_big_payload_goes_in_parts_each_under_the_request_limit():
    payload = os.urandom(300_000)
    limit = 64 * 1024
    requests = requests_with_payload("ship", ("s/tables/t.json",), payload, limit)
    assert len(requests) > 3
    assert all(len(request) <= limit for request in requests)
    buffer = PartBuffer()
    framer = RequestFramer(limit)
    *parts, last = [request for data in requests for request in framer.feed(data)]
    assert all(request.error is None for request in (*parts, last))
    for part in parts:
        buffer.add(parse_request(part.text).args[0])
    final = parse_request(last.text)
    assert final.args == ("s/tables/t.json", PART_MARK)
    assert buffer.payload(final.args[1]) == payload
    assert buffer.payload(PART_MARK) == b""   # taken: the next request starts afresh


def test_parts_beyond_the_limit_are_refused_and_forgotten():
    buffer = PartBuffer(limit=10)
    buffer.add(encode_payload(b"12345678"))
    with pytest.raises(ValueError, match="may not exceed 10 bytes"):
        buffer.add(encode_payload(b"123"))
    assert buffer.payload(PART_MARK) == b""


@pytest.mark.parametrize("shipment", [
    Shipment(7, b"line6\nline7\n", 5, None, b"line5\n"),
    Shipment(3, b"", None, b'{"format":2}', None),
    Shipment(9, b"l8\nl9\n", None, b"{}", None),
    Shipment(2, b"l2\n", 1, None, None),
])
def test_a_shipment_survives_the_trip(shipment):
    assert decode_shipment(encode_shipment(shipment)) == shipment
    [response] = decode_responses(encode_answer(shipment_answer(shipment)))
    assert shipment_of(decode_answer(response)) == shipment


def test_a_damaged_shipment_is_refused():
    data = encode_shipment(Shipment(7, b"line6\nline7\n", 5, None, b"line5\n"))
    with pytest.raises(ValueError, match="do not add up"):
        decode_shipment(data[:-1])
    with pytest.raises(ValueError, match="bad header"):
        decode_shipment(b"nothing")
    with pytest.raises(ValueError, match="an install carries a snapshot"):
        decode_shipment(encode_shipment(Shipment(3, b"", None, b"x", None)).replace(
            b'"base":null', b'"base":2  '))


def test_the_fence_question_carries_documents_only_when_given():
    requests = check_requests([("s/tables/t.json", 5, None),
                               ("s/database.json", 2, b'{"change":2,"kind":"database"}')])
    [request] = requests
    parsed = parse_request(request.decode()[:-1])
    files = check_arguments(PartBuffer().payload(parsed.args[0]))
    assert files == [("s/tables/t.json", 5, None),
                     ("s/database.json", 2, b'{"change":2,"kind":"database"}')]
    with pytest.raises(ValueError, match="expects"):
        check_arguments(b'{"no": 1}')


def test_answers_and_refusals_decode_as_such():
    [answer, refusal, garbage] = decode_responses(
        encode_answer({"held": True}) + encode_refusal("`.peer`: no") +
        encode_answer({"x": 1}).replace(b'{"x":1}', b"[1]"))
    assert decode_answer(answer) == {"held": True}
    with pytest.raises(PeerRefused, match="`.peer`: no"):
        decode_answer(refusal)
    with pytest.raises(PeerRefused, match="not a peer answer"):
        decode_answer(garbage)
    assert ship_requests("s/tables/t.json", Shipment(2, b"l2\n", 1, None, None))[0].startswith(
        b".peer ship s/tables/t.json ")
