"""The wire protocol without sockets: framing, encoding, decoding, limits."""

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.evaluation.outcome import Column, Outcome, Relation
from nodes.protocol.wire import (
    ADMIN_PING,
    ADMIN_STATUS,
    ProtocolError,
    RequestFramer,
    ResponseDecoder,
    decode_responses,
    encode_error,
    encode_message,
    encode_outcome,
    response_is_error,
)


def frame(data: bytes, **kwargs) -> list:
    return RequestFramer(**kwargs).feed(data)


def frame_bytewise(data: bytes, **kwargs) -> list:
    framer = RequestFramer(**kwargs)
    requests = []
    for index in range(len(data)):
        requests.extend(framer.feed(data[index:index + 1]))
    return requests


# ---------------------------------------------------------------- framing


def test_statements_split_at_semicolons_and_stripped():
    requests = frame(b"alaivo 1;  alaivo 2 ;\nalaivo 3;")
    assert [r.text for r in requests] == ["alaivo 1", "alaivo 2", "alaivo 3"]
    assert all(r.is_statement for r in requests)


def test_semicolon_inside_strings_and_comments_does_not_split():
    data = b"alaivo 'a;b', \"c;d\", 'it''s;' -- no; split\n ao@ t;"
    requests = frame(data)
    assert len(requests) == 1
    assert requests[0].text == "alaivo 'a;b', \"c;d\", 'it''s;' -- no; split\n ao@ t"
    assert requests[0].wire() == data


def test_backslash_escaped_quote_inside_string():
    requests = frame(b"alaivo 'a\\';b'; alaivo 2;")
    assert [r.text for r in requests] == ["alaivo 'a\\';b'", "alaivo 2"]


def test_byte_by_byte_feeding_gives_the_same_requests():
    data = "alaivo 'é;ñ' // x;\n; ampiasao db; .ping; manampia ao@ t sanda ('a--b;');".encode()
    assert frame_bytewise(data) == frame(data)
    assert [r.text for r in frame(data)][-1] == "manampia ao@ t sanda ('a--b;')"


def test_unfinished_statement_is_held_not_returned():
    framer = RequestFramer()
    assert framer.feed(b"alaivo 'x;") == []
    assert framer.pending
    assert [r.text for r in framer.feed(b"';")] == ["alaivo 'x;'"]
    assert not framer.pending


def test_blank_and_comment_only_statements_yield_nothing():
    assert frame(b";  ; -- only a comment;\n; // c\n;") == []


def test_admin_requests_are_recognised():
    requests = frame(b".ping; .STATUS ;alaivo 1;")
    assert [r.admin for r in requests] == [ADMIN_PING, ADMIN_STATUS, None]
    assert not requests[0].is_statement


def test_invalid_utf8_is_an_error_for_that_statement_only():
    requests = frame(b"alaivo '\xff\xfe'; alaivo 2;")
    assert requests[0].error.startswith("Hadisoana : ")
    assert requests[0].text == ""
    assert requests[1].text == "alaivo 2"


def test_utf8_split_across_chunks_is_fine():
    data = "alaivo 'Malagasy é';".encode()
    framer = RequestFramer()
    cut = data.index(b"\xc3") + 1
    assert framer.feed(data[:cut]) == []
    assert [r.text for r in framer.feed(data[cut:])] == ["alaivo 'Malagasy é'"]


def test_over_long_request_gives_one_error_and_is_discarded():
    framer = RequestFramer(max_request_bytes=100)
    first = framer.feed(b"alaivo '" + b"x" * 150)
    assert len(first) == 1 and first[0].error.startswith("Hadisoana : ")
    # The rest is discarded as it arrives, keeping the string state: the ';'
    # inside the string does not end the statement.
    for _ in range(100):
        assert framer.feed(b"y;" * 50) == []
    assert framer._splitter.pending_length() < 10  # bounded, not accumulated
    assert [r.text for r in framer.feed(b"'; alaivo 2;")] == ["alaivo 2"]


def test_over_long_request_ending_right_at_the_limit_boundary():
    framer = RequestFramer(max_request_bytes=50)
    assert len(framer.feed(b"x" * 80)) == 1
    assert [r.text for r in framer.feed(b";alaivo 3;")] == ["alaivo 3"]


def test_over_long_complete_statement_in_one_chunk():
    requests = frame(b"alaivo '" + b"z" * 200 + b"'; alaivo 1;", max_request_bytes=100)
    assert requests[0].error is not None
    assert requests[1].text == "alaivo 1"


def test_the_limit_counts_bytes_not_characters():
    """`李` is three bytes: 40 of them (120 bytes) are over a 100-byte limit, in one chunk
    or arriving in pieces (they were let through as 40 characters)."""
    statement = "alaivo '" + "李" * 40 + "'"
    for chunks in ([statement.encode() + b";"], [statement.encode()[:50], statement.encode()[50:],
                                                  b"; alaivo 1;"]):
        framer = RequestFramer(max_request_bytes=100)
        requests = [request for chunk in chunks for request in framer.feed(chunk)]
        assert requests[0].error == "Hadisoana : Lava loatra ny fangatahana (mihoatra ny 100 octets)"
    assert requests[1].text == "alaivo 1"
    # At the limit exactly, it passes.
    fits = "alaivo 'x" + "李" * 30 + "'"
    assert len(fits.encode()) == 100
    assert [r.text for r in RequestFramer(max_request_bytes=100).feed(fits.encode() + b";")] == [fits]


def test_binary_garbage_never_raises():
    garbage = bytes(range(256)) * 40
    requests = frame(garbage + b"';\n;alaivo 1;\"';alaivo 1;", max_request_bytes=1000)
    assert all(r.error is not None or r.text for r in requests)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_any_bytes_in_any_chunking_frame_the_same(data, step):
    whole = RequestFramer(max_request_bytes=10_000).feed(data)
    framer = RequestFramer(max_request_bytes=10_000)
    chunked = []
    for index in range(0, len(data), step):
        chunked.extend(framer.feed(data[index:index + step]))
    assert chunked == whole


# Texts rich in what decides where a statement ends: quotes (doubled, escaped),
# `;` inside and outside strings, comment markers, line breaks, UTF-8.
statement_texts = st.text(alphabet=list("ab ;'\"\\-/\né"), max_size=40).map(
    lambda text: (text + ";").encode())


@settings(max_examples=400, deadline=None)
@given(statement_texts)
def test_a_chunk_ending_in_semicolon_frames_as_the_splitter_cuts_it(data):
    """Whole (the one-statement fast path, quotes and all) and byte by byte (the splitter)."""
    assert RequestFramer().feed(data) == frame_bytewise(data)


@pytest.mark.parametrize("data", [
    b"manampia ao@ t sanda (1, 'Rakoto', 'n''y', \"x;y\");",
    b"alaivo * ao@ t rehefa anarana = 'Rabe\\'s';",
])
def test_a_statement_with_strings_takes_the_fast_path(data):
    """The fast path hands back its request again for the same chunk (it is immutable)."""
    framer = RequestFramer()
    first = framer.feed(data)
    assert len(first) == 1 and first[0].text == data[:-1].decode()
    assert framer.feed(data)[0] is first[0]


@pytest.mark.parametrize("data", [b"alaivo 1 -- ;", b"alaivo 'a;", b"alaivo 'a\\';", b"alaivo 1; alaivo 2;"])
def test_chunks_that_are_not_one_statement_keep_the_splitter(data):
    framer = RequestFramer()
    assert framer.feed(data) == frame_bytewise(data)
    assert framer.pending == (not data.endswith(b"2;"))


# ---------------------------------------------------------------- encoding


def relation(rows, name="t"):
    return Relation(name, [Column("a", "t"), Column("b", None)], rows)


def test_message_response_is_exactly_the_design_format():
    assert encode_message("Ny tahiry : x dia miasa ankehitriny") == (
        b"RESULT_MESSAGE\nNy tahiry : x dia miasa ankehitriny\nEND\n")


def test_message_with_line_breaks_stays_on_one_line():
    data = encode_message("Hadisoana : a\nb\r\nc\rd")
    assert data == b"RESULT_MESSAGE\nHadisoana : a b c d\nEND\n"


def test_encode_error_adds_the_prefix_once():
    assert encode_error("x") == encode_error("Hadisoana : x") == b"RESULT_MESSAGE\nHadisoana : x\nEND\n"


def test_relation_response_is_exactly_the_design_format():
    data = encode_outcome(Outcome.success("", relation([[1, "x"], [2.5, None]])))
    lines = data.decode().split("\n")
    assert lines[0] == "RELATION_JSON_PAGE 1/1"
    assert orjson.loads(lines[1]) == {
        "type": "relation", "name": "t", "page": 1, "totalPages": 1,
        "columns": [{"name": "a", "origin": "t"}, {"name": "b", "origin": None}],
        "rows": [[1, "x"], [2.5, None]]}
    assert lines[1].startswith('{"type":"relation","name":"t","page":1,"totalPages":1,"columns":')
    assert lines[2:] == ["RELATION_JSON_END", "RESULT_MESSAGE", "", "END", ""]


def test_empty_relation_is_one_page():
    data = encode_outcome(Outcome.success("ok", relation([])))
    assert data.startswith(b"RELATION_JSON_PAGE 1/1\n")
    assert decode_responses(data)[0].relation.rows == []


def test_pages_split_and_merge_back():
    rows = [[i, f"r{i}"] for i in range(25)]
    data = encode_outcome(Outcome.success("", relation(rows)), page_rows=10)
    assert data.count(b"RELATION_JSON_PAGE") == 3
    assert b"RELATION_JSON_PAGE 3/3\n" in data
    [response] = decode_responses(data)
    assert response.ok and response.has_relation
    assert response.relation.rows == rows
    assert response.relation.columns == [Column("a", "t"), Column("b", None)]
    assert response.raw == data


def test_huge_integers_are_encoded_and_decoded_exactly():
    # orjson reads an integer beyond 64 bits as the nearest float: 2 ** 80 + 1
    # would come back as 2 ** 80, 12345678901234567891234 as 12345678901234568000000.
    huge = [2 ** 80 + 1, -(2 ** 64) - 3, 12345678901234567891234, 2 ** 64 - 1, -(2 ** 63)]
    data = encode_outcome(Outcome.success("", relation([[*huge, "x"], [1.5, 2 ** 63, -1, None, 0, "y"]])))
    rows = decode_responses(data)[0].relation.rows
    assert rows == [[*huge, "x"], [1.5, 2 ** 63, -1, None, 0, "y"]]
    assert [type(value) for value in rows[0][:-1]] == [int] * len(huge)


def test_a_string_of_digits_beside_a_float_keeps_both():
    rows = [["12345678901234567890123", 1e300, 0.1]]
    data = encode_outcome(Outcome.success("", relation(rows)))
    assert decode_responses(data)[0].relation.rows == rows


def test_strings_with_newlines_and_unicode_round_trip():
    rows = [["a\nEND\nb", "é ñ 日本"], ["RESULT_MESSAGE", "\u2028"]]
    data = encode_outcome(Outcome.success("", relation(rows)))
    assert decode_responses(data)[0].relation.rows == rows


# ---------------------------------------------------------------- decoding


def test_decoder_byte_by_byte_over_several_responses():
    stream = (encode_outcome(Outcome.success("", relation([[1, 2]] * 7)), page_rows=3)
              + encode_message("Tafinditra ny fiovana ny tabilao")
              + encode_error("Tsy nisafidy tahiry ianao"))
    decoder = ResponseDecoder()
    responses = []
    for index in range(len(stream)):
        responses.extend(decoder.feed(stream[index:index + 1]))
    assert [r.ok for r in responses] == [True, True, False]
    assert responses[0].relation.rows == [[1, 2]] * 7
    assert responses[2].message == "Hadisoana : Tsy nisafidy tahiry ianao"
    assert b"".join(r.raw for r in responses) == stream
    assert not decoder.pending


def test_decoder_without_relations_keeps_raw_and_flag():
    data = encode_outcome(Outcome.success("", relation([[1, 2]])))
    [response] = ResponseDecoder(decode_relations=False).feed(data)
    assert response.relation is None and response.has_relation and response.raw == data


def test_decoder_rejects_garbage():
    with pytest.raises(ProtocolError):
        ResponseDecoder().feed(b"HELLO\n")
    with pytest.raises(ProtocolError):
        ResponseDecoder().feed(b"RELATION_JSON_PAGE 1/1\nnot json\n")
    with pytest.raises(ProtocolError):
        ResponseDecoder().feed(b"RESULT_MESSAGE\nok\nNOT_END\n")


@pytest.mark.parametrize("headers", [
    [b"0/1"], [b"2/2"], [b"1/2", b"1/2"], [b"1/2", b"3/2"], [b"2/1"], [b"1/0"], [b"-1/1"],
    [b"1/2"],            # ends after page 1 of 2
    [b"1/2", b"2/3"],    # the page count changed
], ids=lambda headers: ",".join(h.decode() for h in headers))
@pytest.mark.parametrize("decode_relations", [True, False])
def test_decoder_checks_page_numbers(headers, decode_relations):
    page = b'{"name":"r","columns":[],"rows":[]}\n'
    data = b"".join(b"RELATION_JSON_PAGE " + h + b"\n" + page for h in headers)
    with pytest.raises(ProtocolError, match="page"):
        ResponseDecoder(decode_relations).feed(data + b"RELATION_JSON_END\nRESULT_MESSAGE\nok\nEND\n")


def test_decoder_bounds_its_buffer():
    decoder = ResponseDecoder(max_response_bytes=1000)
    with pytest.raises(ProtocolError):
        decoder.feed(b"RELATION_JSON_PAGE 1/1\n" + b"x" * 2000)


def test_decode_responses_refuses_truncated_input():
    with pytest.raises(ProtocolError):
        decode_responses(b"RESULT_MESSAGE\nok\n")


def test_response_is_error():
    assert response_is_error(encode_error("x"))
    assert not response_is_error(encode_message("ok"))
    assert not response_is_error(encode_outcome(Outcome.success("", relation([["Hadisoana : "]]))))


def test_status_with_a_token_is_a_status_request_and_the_token_is_checked():
    from nodes.protocol import ADMIN_STATUS, RequestFramer
    from nodes.protocol.status_token import carries_token, new_status_token, status_request
    token = new_status_token()
    assert len(token) == 64 and status_request(None) == b".status;"
    [bare, with_token] = RequestFramer().feed(b".status;" + status_request(token))
    assert bare.admin == with_token.admin == ADMIN_STATUS
    assert carries_token(with_token.text, token)
    assert not carries_token(bare.text, token) and not carries_token(with_token.text, None)
    assert not carries_token(with_token.text, new_status_token())
