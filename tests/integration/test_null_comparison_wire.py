"""A comparison with `null` on the wire: the note rides in RESULT_MESSAGE, nothing else moves.

Real processes: a server, a proxy cache in front of it, and the terminal
client. The relation, the framing (pages, `RELATION_JSON_END`,
`RESULT_MESSAGE`, one message line, `END`) and what tells a success from a
failure (no `Hadisoana : ` at the start of the message) stay those of any
query; the message is `N andalana` and then the note, which the DirkDB Java
client prints as it prints every message.
"""

from __future__ import annotations

import orjson

from nodes.protocol.wire import response_is_error
from tests.integration.clientkit import client
from tests.integration.wire import WireClient, setup_school

NOTE = (" Tsy marina mihitsy ny 'anarana = null', na dia null aza ny sanda : 'anarana dia null' "
        "no manamarina ny null.")


def _fill(wire: WireClient) -> None:
    setup_school(wire)
    wire.ok("manampia ao@ t sanda (1, 'Rabe'), (2, null), (3, null);")


def test_the_note_is_the_message_line_of_an_unchanged_response(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    with WireClient(server.port) as wire:
        _fill(wire)
        # Different values, one shape: the first answers are the general path's, the later
        # ones the learnt shape's plan (and a small read's, on the event loop).
        for key in range(6):
            [response] = wire.run(f"alaivo id, anarana ao@ t rehefa id > {key} ary anarana = null;")
            assert response.ok and not response_is_error(response.raw)
            assert response.relation.rows == []
            page = orjson.dumps({"type": "relation", "name": "t", "page": 1, "totalPages": 1,
                                 "columns": [{"name": "id", "origin": "t"},
                                             {"name": "anarana", "origin": "t"}], "rows": []})
            assert response.raw == (b"RELATION_JSON_PAGE 1/1\n" + page + b"\nRELATION_JSON_END\n"
                                    b"RESULT_MESSAGE\n" + ("0 andalana" + NOTE).encode()
                                    + b"\nEND\n")
        # The same rows as the test that finds NULLs would not give: none, said so.
        assert wire.rows("alaivo id ao@ t rehefa anarana dia null;") == [[2], [3]]
        assert wire.one("alaivo id ao@ t rehefa anarana dia null;").message == "2 andalana"
        written = wire.one("fafao ao@ t rehefa anarana = null;")
        assert written.ok and written.relation is None
        assert written.message == "Tafinditra ny fiovana ny tabilao (0 andalana)" + NOTE


def test_a_proxy_cache_keeps_and_serves_the_noted_answer_as_a_success(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    proxy = start_node("proxycache", "proxy", "--upstream", f"127.0.0.1:{server.port}",
                       "--ttl-ms", "60000")
    with WireClient(proxy.port) as wire:
        _fill(wire)
        statement = "alaivo * ao@ t rehefa anarana = null;"
        first, second = wire.one(statement), wire.one(statement)
        counters = wire.status()
    assert first.raw == second.raw and second.message == "0 andalana" + NOTE
    assert counters["hits"] == 1   # cached: a success like any other


def test_the_terminal_client_shows_the_note_under_the_rows(tmp_path, start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    with WireClient(server.port) as wire:
        _fill(wire)
    done = client("--port", str(server.port), "-e",
                  "ampiasao sekoly; alaivo * ao@ t rehefa anarana = null;", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("+----+---------+\n| id | anarana |\n+----+---------+\n"
                                "(0 andalana)\n" + NOTE.strip() + "\n")
