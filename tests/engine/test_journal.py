"""engine/storage/journal.py: entry lines, torn tails, the chain of versions, applying ops."""

from __future__ import annotations

import pytest

from engine.storage import journal
from engine.storage.journal import JournalError, apply, chained, decode_line, encode_entry, parse


def test_an_entry_round_trips_and_a_flipped_byte_is_refused():
    line = encode_entry(7, [["append", [[1, "a"]]]])
    entry = decode_line(line)
    assert (entry.change, entry.ops, entry.line) == (7, [["append", [[1, "a"]]]], line)
    broken = line.replace(b'"a"', b'"b"')
    assert decode_line(broken) is None, "the checksum catches a changed byte"
    assert decode_line(line[:-1]) is None, "a line without its newline is torn"


def test_parsing_stops_at_a_torn_tail_and_says_where_the_valid_part_ends():
    data = encode_entry(1, [["append", [[1]]]]) + encode_entry(2, [["append", [[2]]]])
    torn = data + encode_entry(3, [["append", [[3]]]])[:-5]
    reading = parse(torn, offset=100)
    assert [e.change for e in reading.entries] == [1, 2]
    assert reading.end == 100 + len(data) and reading.torn
    assert not parse(data).torn


def test_the_chain_skips_what_the_snapshot_holds_and_stops_at_a_gap():
    entries = parse(b"".join(encode_entry(n, []) for n in (3, 4, 5, 7))).entries
    assert [e.change for e in chained(entries, 3)] == [4, 5]
    assert [e.change for e in chained(entries, 1)] == []     # 2 is missing: nothing applies


def test_ops_apply_to_a_copy_in_order():
    rows = [[1], [2], [3]]
    result = apply(rows, [["set", [[0, [10]]]], ["remove", [1]], ["append", [[4]]]], 1)
    assert result == [[10], [3], [4]] and rows == [[1], [2], [3]]


@pytest.mark.parametrize("ops", [
    [["append", [[1, 2]]]],            # wrong width
    [["set", [[5, [1]]]]],             # index out of range
    [["remove", [1, 0]]],              # not ascending
    [["rename", []]],                  # unknown op
    ["append"],                        # not an op
])
def test_an_op_that_does_not_fit_the_table_is_refused(ops):
    with pytest.raises(JournalError):
        apply([[1], [2]], ops, 1)


def test_a_failed_append_leaves_no_torn_line_and_a_torn_tail_is_cut(tmp_path, monkeypatch):
    path = tmp_path / "t.journal"
    size, created = journal.append_line(path, encode_entry(1, []), durable=False)
    assert created and size == path.stat().st_size
    real_write = journal.os.write

    def half_then_fail(descriptor, data):
        real_write(descriptor, data[:5])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal.os, "write", half_then_fail)
    with pytest.raises(OSError):
        journal.append_line(path, encode_entry(2, []), durable=False)
    monkeypatch.undo()
    assert path.stat().st_size == size
    with open(path, "ab") as handle:
        handle.write(b"0000")
    assert journal.cut_torn_tail(path) == 4 and path.stat().st_size == size
    assert journal.cut_torn_tail(path) == 0
