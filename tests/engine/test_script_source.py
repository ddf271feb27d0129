"""engine/language/script_source.py: scripts read in chunks, over-long statements, positions."""

from __future__ import annotations

import os

import pytest

from engine.language import script_source
from engine.language.script import StatementSplitter
from engine.language.script_source import PENDING, ScriptSource


def test_discarding_keeps_lines_and_the_string_state():
    splitter = StatementSplitter()
    assert [p.text for p in splitter.feed("alaivo 1;\n\n  alaivo 'a;b\nc")] == ["alaivo 1"]
    assert splitter.pending_start() == (3, 3)
    assert splitter.discard_pending() == len("alaivo 'a;b\nc")
    pieces = splitter.feed("d;e';\nalaivo 2;")
    assert pieces[0].text.startswith("\0") and pieces[0].text.endswith("d;e'")
    assert (pieces[1].text, pieces[1].line, pieces[1].column) == ("alaivo 2", 5, 1)


def test_a_file_is_read_in_chunks_with_positions_across_them(tmp_path, monkeypatch):
    monkeypatch.setattr(script_source, "CHUNK_BYTES", 7)
    path = tmp_path / "s.tah"
    path.write_bytes("\ufeffalaivo 'é;';\r\n-- x;\r\nalaivo\r\n 2".encode("utf-8"))
    with ScriptSource.open(str(path)) as source:
        pieces = list(source)
    assert [(p.text, p.line, p.column) for p in pieces] == [
        ("alaivo 'é;'", 1, 1), ("-- x;\nalaivo\n 2", 2, 1)]
    assert source.bytes_read == path.stat().st_size and source.estimated_total() == 2


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("errors", ["strict", "replace"])
def test_a_utf16_file_with_its_byte_order_mark_is_read(tmp_path, monkeypatch, encoding, errors):
    """Windows Notepad's "Unicode" and Windows PowerShell's `>` save UTF-16 with a byte order
    mark: the client ran each character as garbage (`marika tsy fantatra U+0000`, one error
    a line) and `python -m engine` refused the file as not UTF-8."""
    monkeypatch.setattr(script_source, "CHUNK_BYTES", 7)   # a character cut between chunks
    path = tmp_path / "s.tah"
    bom = {"utf-16": b"", "utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}[encoding]
    path.write_bytes(bom + "alaivo 'é;';\r\nalaivo 2;".encode(encoding))
    with ScriptSource.open(str(path), errors=errors) as source:
        pieces = list(source)
    assert [(p.text, p.line, p.column) for p in pieces] == [("alaivo 'é;'", 1, 1),
                                                             ("alaivo 2", 2, 1)]


def test_an_overlong_statement_is_dropped_as_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(script_source, "CHUNK_BYTES", 100)
    path = tmp_path / "s.tah"
    path.write_text("alaivo 1;\n  alaivo '" + "x" * 5000 + "';\nalaivo 3;")
    with ScriptSource.open(str(path), max_chars=1000) as source:
        first = source.poll()
        assert first.text == "alaivo 1"
        long = source.poll()
        assert source._splitter.pending_length() <= 1100   # never the whole statement
        last = source.poll()
    assert (long.line, long.column, long.overlong) == (2, 3, 5009)
    assert (last.text, last.line) == ("alaivo 3", 3)


def test_a_pipe_is_polled_without_blocking():
    read_end, write_end = os.pipe()
    try:
        source = ScriptSource(read_end, name="stdin")
        assert source.fileno() == read_end
        assert source.poll(block=False) is PENDING
        os.write(write_end, b"alaivo 1; alaivo")
        assert source.poll(block=False).text == "alaivo 1"
        assert source.poll(block=False) is PENDING
        os.write(write_end, b" 2;")
        os.close(write_end)
        write_end = None
        assert source.poll().text == "alaivo 2"
        assert source.poll() is None
    finally:
        os.close(read_end)
        if write_end is not None:
            os.close(write_end)


def test_bytes_that_are_not_utf8_raise_when_reached_or_are_replaced(tmp_path):
    path = tmp_path / "s.tah"
    path.write_bytes(b"alaivo 1; alaivo '\xff';")
    with ScriptSource.open(str(path)) as source, pytest.raises(UnicodeDecodeError):
        list(source)
    with ScriptSource.open(str(path), errors="replace") as source:
        assert [p.text for p in source] == ["alaivo 1", "alaivo '\ufffd'"]
