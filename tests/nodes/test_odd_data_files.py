"""A real server whose data directory holds odd files where a table's should be: a FIFO,
a symlink loop, a directory; a FIFO as a table's journal. Each is that table's read
fault; the other tables and the connection go on (nothing blocks the engine's thread,
nothing closes the connection)."""

from __future__ import annotations

import os
import socket

from engine.errors import storage_fault_operation
from nodes.protocol.wire import ResponseDecoder
from tests.conftest import read_response


def answers(port: int, *statements: str) -> list[str]:
    """Each statement's answer on one connection (a 10 s deadline for each)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        decoder, found = ResponseDecoder(), []
        for statement in statements:
            sock.sendall(statement.encode() + b";\n")
            found.append(read_response(sock, decoder).raw.decode("utf-8", "replace"))
        return found


def test_a_fifo_or_a_symlink_loop_as_a_table_is_a_read_fault_not_a_hang(start_node, tmp_path):
    """Bug: a FIFO at s/tables/f.json blocked the engine's thread on opening it (every
    statement of every client hung after `asehoy ny tabilao`); a symlink loop raised
    ELOOP through the read (an internal error, the client's connection closed)."""
    data = tmp_path / "data"
    node = start_node("server", "m1", "--data", str(data))
    created = answers(node.port, "manamboara tahiry s", "ampiasao s",
                      "manamboara tabilao t (id ISA(0,100))", "manampia ao@ t sanda (1)",
                      "manamboara tabilao j (id ISA(0,100))")
    assert all("Hadisoana" not in answer for answer in created), created
    tables = data / "s" / "tables"
    os.mkfifo(tables / "f.json")
    (tables / "loop.json").symlink_to("loop.json")
    (tables / "d.json").mkdir()
    (tables / "j.journal").unlink(missing_ok=True)
    os.mkfifo(tables / "j.journal")   # a FIFO where table j's journal goes
    try:
        _, listed, fifo, loop, folder, journal, good = answers(
            node.port, "ampiasao s", "asehoy ny tabilao", "alaivo * ao@ f",
            "alaivo * ao@ loop", "alaivo * ao@ d", "alaivo * ao@ j", "alaivo * ao@ t")
    finally:
        for fifo_path in (tables / "f.json", tables / "j.journal"):
            try:  # a reader blocked on the FIFO (the bug) gets its end of file
                os.close(os.open(fifo_path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
    for answer in (fifo, loop, folder, journal):
        assert storage_fault_operation(answer.splitlines()[1]) == "read", answer
    assert '["t"]' in listed and '"rows":[[1]]' in good, (listed, good)
    assert node.popen.poll() is None


HEADER = '"format":2,"kind":"table","name":"{}","change":2,"dropped":false'
COLUMN = '{"name":"a","domain":[{"type":"ISA","min":0,"max":100}]}'
WRONG_SHAPES = {   # valid JSON, no checksum (a hand-made file is read), the wrong shape
    "bare": '{"format":2}',
    "nocolumns": '{%s,"columns":5,"rows":[[1]]}',
    "rowsdict": '{%s,"columns":[' + COLUMN + '],"rows":{"a":1}}',
    "wide": '{%s,"columns":[' + COLUMN + '],"rows":[[1,2,3]]}',
    "nodomain": '{%s,"columns":[{"name":"a","domain":"ISA"}],"rows":[["x"]]}',
    "noname": '{%s,"columns":[{"nom":"a"}],"rows":[[1]]}',
}


def test_a_table_file_of_valid_json_in_the_wrong_shape_is_a_read_fault(start_node, tmp_path):
    """Bug: such a table was read as it was: an internal error for most, wrong rows for
    some (`{"a": 1}` answered the row `a`, a row of three values in a one-column
    table), and `{"format": 2}` alone closed the client's connection (the small-read path)."""
    data = tmp_path / "data"
    node = start_node("server", "m1", "--data", str(data))
    created = answers(node.port, "manamboara tahiry s", "ampiasao s",
                      "manamboara tabilao t (id ISA(0,100))", "manampia ao@ t sanda (1)")
    assert all("Hadisoana" not in answer for answer in created), created
    for name, text in WRONG_SHAPES.items():
        (data / "s" / "tables" / f"{name}.json").write_text(
            text % HEADER.format(name) if "%s" in text else text)
    found = answers(node.port, "ampiasao s", *(f"alaivo * ao@ {name}" for name in WRONG_SHAPES),
                    "manampia ao@ wide sanda (4)", "alaivo * ao@ t")
    for answer in found[1:-1]:
        assert storage_fault_operation(answer.splitlines()[1]) == "read", answer
    assert '"rows":[[1]]' in found[-1], found[-1]
    assert (data / "s" / "tables" / "wide.json").read_text().endswith("[[1,2,3]]}")
