"""A copy's version and content, read from real snapshots and journals (engine/storage/object_state.py)."""

from __future__ import annotations

import orjson
import pytest

from engine.storage import journal
from engine.storage.nofollow import ObjectRefused
from engine.storage.object_format import InvalidDocument
from engine.storage.object_state import (
    CopyDigest,
    CorruptObject,
    ObjectVersion,
    check_copy,
    content_digest,
    journal_rel,
    materialize,
    object_of_journal,
    probe,
    read_state,
    same_by_digest,
    same_content,
    version_of,
)
from tests.objectkit import TABLE, append_entries, appended_rows, document, write_object, write_raw


def table_rows(root, rel=TABLE):
    return materialize(root, rel).document["rows"]


def test_paths_of_journals():
    assert journal_rel(TABLE) == "school/tables/t.journal"
    assert journal_rel("school/views/v.json") is None
    assert journal_rel("school/database.json") is None
    assert object_of_journal(["school", "tables", "t.journal"]) == ["school", "tables", "t.json"]
    for parts in (["school", "views", "v.journal"], ["school", "tables", ".t.journal"],
                  ["school", "tables", "t.json"], ["school", "tables", ".journal"]):
        assert object_of_journal(parts) is None, parts


def test_version_of_a_snapshot_alone_and_of_no_file(tmp_path):
    assert version_of(tmp_path, TABLE) is None
    write_object(tmp_path, TABLE, 4)
    assert version_of(tmp_path, TABLE) == ObjectVersion(4, 4, False)
    write_object(tmp_path, "school/views/v.json", 2)
    assert version_of(tmp_path, "school/views/v.json") == ObjectVersion(2, 2, False)


def test_version_of_counts_the_chained_journal_entries(tmp_path):
    write_object(tmp_path, TABLE, 3, rows=[[1]])
    append_entries(tmp_path, TABLE, 4, appended_rows(4, 3))
    assert version_of(tmp_path, TABLE) == ObjectVersion(6, 3, False)
    state = read_state(tmp_path, TABLE)
    assert (state.version, state.snapshot_change, state.rows, state.damaged) == (6, 3, 4, None)
    assert table_rows(tmp_path) == [[1], [4], [5], [6]]
    assert materialize(tmp_path, TABLE).document["change"] == 6


def test_stale_entries_below_the_snapshot_are_skipped(tmp_path):
    # A checkpoint wrote the snapshot at 5 and has not removed the journal yet.
    write_object(tmp_path, TABLE, 1, rows=[])
    append_entries(tmp_path, TABLE, 2, appended_rows(2, 4))
    write_object(tmp_path, TABLE, 5, rows=[[2], [3], [4], [5]])
    assert version_of(tmp_path, TABLE) == ObjectVersion(5, 5, False)
    assert read_state(tmp_path, TABLE).version == 5
    assert table_rows(tmp_path) == [[2], [3], [4], [5]]


def test_a_tombstone_ignores_its_journal(tmp_path):
    write_object(tmp_path, TABLE, 1)
    append_entries(tmp_path, TABLE, 2, appended_rows(2, 2))
    write_object(tmp_path, TABLE, 4, dropped=True)
    append_entries(tmp_path, TABLE, 5, appended_rows(5, 1))   # never written by a store
    assert version_of(tmp_path, TABLE) == ObjectVersion(4, 4, True)
    state = read_state(tmp_path, TABLE)
    assert (state.version, state.dropped, state.damaged) == (4, True, None)


def test_a_torn_tail_is_not_counted_nor_damage(tmp_path):
    write_object(tmp_path, TABLE, 1)
    append_entries(tmp_path, TABLE, 2, appended_rows(2, 2))
    path = tmp_path / journal_rel(TABLE)
    whole = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(journal.encode_entry(4, appended_rows(4, 1)[0])[:-7])   # a crash mid-append
    assert version_of(tmp_path, TABLE).change == 3
    state = read_state(tmp_path, TABLE)
    assert (state.version, state.torn, state.damaged, state.journal_end) == (
        3, True, None, len(whole))


@pytest.mark.parametrize("how", ["bad line", "gap", "misfit"])
def test_damage_after_the_version_is_found_and_where_to_cut(tmp_path, how):
    write_object(tmp_path, TABLE, 1, rows=[[1]])
    lines = append_entries(tmp_path, TABLE, 2, appended_rows(2, 2))
    path = tmp_path / journal_rel(TABLE)
    if how == "bad line":
        second = lines.index(b"\n") + 1
        corrupt = bytearray(lines)
        corrupt[second + 20] ^= 0x01            # entry 3's body: its checksum no longer matches
        path.write_bytes(bytes(corrupt) + journal.encode_entry(4, appended_rows(4, 1)[0]))
        expected_version, end = 2, second
    elif how == "gap":
        append_entries(tmp_path, TABLE, 5, appended_rows(5, 1))   # 4 is missing
        expected_version, end = 3, len(lines)
    else:
        append_entries(tmp_path, TABLE, 4, [[["remove", [7]]]])   # no row 7
        expected_version, end = 3, len(lines)
    state = read_state(tmp_path, TABLE)
    assert state.version == expected_version and state.damaged and not state.torn
    assert state.journal_end == end
    # The cheap version reads the last valid line only: never less than the copy holds.
    assert version_of(tmp_path, TABLE).change >= state.version


def test_an_appended_journal_is_read_from_where_the_last_state_ended(tmp_path, monkeypatch):
    write_object(tmp_path, TABLE, 1, rows=[[n] for n in range(1000)])
    append_entries(tmp_path, TABLE, 2, appended_rows(2, 3))
    first = read_state(tmp_path, TABLE)
    assert read_state(tmp_path, TABLE, first) is first          # nothing changed: nothing read
    append_entries(tmp_path, TABLE, 5, [[["set", [[0, [-1]]]], ["remove", [1, 2]]]])
    reads = []
    real_pread = __import__("os").pread

    def counting_pread(descriptor, size, offset):
        reads.append((size, offset))
        return real_pread(descriptor, size, offset)

    monkeypatch.setattr("engine.storage.object_state.os.pread", counting_pread)
    extended = read_state(tmp_path, TABLE, first)
    monkeypatch.undo()
    assert reads == [(reads[0][0], first.journal_end)]           # only the new line was read
    whole = read_state(tmp_path, TABLE)
    assert extended == whole
    assert (whole.version, whole.rows) == (5, 1001)


@pytest.fixture
def decoded(tmp_path, monkeypatch) -> list[bytes]:
    """A table at version 2001 (2,000 journal lines), and the lines decoded from then on."""
    write_object(tmp_path, TABLE, 1, rows=[])
    append_entries(tmp_path, TABLE, 2, appended_rows(2, 2000))
    lines: list[bytes] = []
    real_decode = journal.decode_line
    monkeypatch.setattr(journal, "decode_line", lambda line: lines.append(line) or
                        real_decode(line))
    return lines


def test_version_of_reads_the_last_line_only(tmp_path, decoded):
    assert version_of(tmp_path, TABLE) == ObjectVersion(2001, 1, False)
    assert decoded == []                          # its ops were not decoded, nothing else read


def test_a_probe_parses_a_few_lines_and_reads_back_only_as_far_as_asked(tmp_path, decoded):
    """Replication probes a copy three times per copy: parsing a 4 KiB window
    of lines each time once doubled its lag (issue 9's figure)."""
    found = probe(tmp_path, TABLE)
    assert found.version == ObjectVersion(2001, 1, False)
    assert 0 < len(decoded) <= 16
    decoded.clear()
    found = probe(tmp_path, TABLE, reaching=1900)   # a copy 100 versions behind
    assert found.tail.entries[0].change <= 1900 and found.tail.chain[-1].change == 2001
    assert len(decoded) < 2000                    # read back far enough, not the whole journal


def test_a_long_last_line_and_a_long_journal(tmp_path):
    write_object(tmp_path, TABLE, 1, rows=[])
    append_entries(tmp_path, TABLE, 2, appended_rows(2, 3000))        # ~100 KiB of lines
    append_entries(tmp_path, TABLE, 3002, [[["append", [[n] for n in range(20000)]]]])
    assert version_of(tmp_path, TABLE) == ObjectVersion(3002, 1, False)
    assert read_state(tmp_path, TABLE).rows == 23000


def test_a_header_in_another_layout_is_read_whole(tmp_path):
    doc = document(TABLE, 7)
    write_raw(tmp_path, TABLE, orjson.dumps(dict(reversed(list(doc.items())))))
    assert version_of(tmp_path, TABLE) == ObjectVersion(7, 7, False)
    write_raw(tmp_path, TABLE, b'{"format":1,"kind":"table"')
    with pytest.raises(InvalidDocument):
        version_of(tmp_path, TABLE)
    with pytest.raises(CorruptObject):
        read_state(tmp_path, TABLE)


def test_symlinks_are_refused(tmp_path):
    outside = tmp_path / "outside"
    write_object(outside, TABLE, 9)
    root = tmp_path / "root"
    (root / "school" / "tables").mkdir(parents=True)
    (root / TABLE).symlink_to(outside / TABLE)
    with pytest.raises(ObjectRefused):
        version_of(root, TABLE)
    (root / TABLE).unlink()
    write_object(root, TABLE, 1)
    (root / journal_rel(TABLE)).symlink_to(tmp_path / "elsewhere.journal")
    with pytest.raises(ObjectRefused):
        version_of(root, TABLE)
    with pytest.raises(ObjectRefused):
        read_state(root, TABLE)


def test_same_content_compares_lines_or_documents(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        write_object(root, TABLE, 1, rows=[[1]])
        append_entries(root, TABLE, 2, appended_rows(2, 2))
    first, second = read_state(a, TABLE), read_state(b, TABLE)
    assert first.identity == second.identity and same_content(a, first, b, second, TABLE)
    # b checkpointed: the same version as a snapshot, in format 2.
    write_object(b, TABLE, 3, rows=[[1], [2], [3]], format=2)
    (b / journal_rel(TABLE)).unlink()
    second = read_state(b, TABLE)
    assert first.identity != second.identity
    assert same_content(a, first, b, second, TABLE) is True
    # Another row at version 3: a conflict.
    write_object(b, TABLE, 3, rows=[[1], [2], [99]])
    second = read_state(b, TABLE)
    assert same_content(a, first, b, second, TABLE) is False
    # The same version as different lines: a conflict too, found from the lines.
    write_object(b, TABLE, 1, rows=[[1]])
    append_entries(b, TABLE, 2, [appended_rows(2, 1)[0], [["append", [[42]]]]])
    assert same_content(a, first, b, read_state(b, TABLE), TABLE) is False


def test_digests_tell_what_they_can_and_content_digests_the_rest(tmp_path):
    """The two halves of `same_content` for copies on two machines (`.peer digest`)."""
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        write_object(root, TABLE, 1, rows=[[1]])
        append_entries(root, TABLE, 2, appended_rows(2, 2))
    first = CopyDigest.of(read_state(a, TABLE))
    assert same_by_digest(first, CopyDigest.of(read_state(b, TABLE))) is True
    # b checkpointed: the digests cannot tell; the contents are the same.
    write_object(b, TABLE, 3, rows=[[1], [2], [3]], format=2)
    (b / journal_rel(TABLE)).unlink()
    assert same_by_digest(first, CopyDigest.of(read_state(b, TABLE))) is None
    assert content_digest(a, TABLE, 3) == content_digest(b, TABLE, 3) is not None
    assert content_digest(a, TABLE, 2) is None   # not at that version (any more)
    # Another row at version 3: another content.
    write_object(b, TABLE, 3, rows=[[1], [2], [99]])
    assert content_digest(a, TABLE, 3) != content_digest(b, TABLE, 3)
    # Two snapshots alone: equal bytes tell; other versions never compare equal.
    only = CopyDigest(3, None, b"x" * 16)
    assert same_by_digest(only, CopyDigest(3, None, b"x" * 16)) is True
    assert same_by_digest(only, CopyDigest(3, None, b"y" * 16)) is None
    assert same_by_digest(only, CopyDigest(4, None, b"x" * 16)) is False


def test_a_copy_received_as_bytes_is_checked_as_one_on_disk(tmp_path):
    write_object(tmp_path, TABLE, 1, rows=[[1]])
    lines = append_entries(tmp_path, TABLE, 2, appended_rows(2, 2))
    snapshot = (tmp_path / TABLE).read_bytes()
    assert check_copy(TABLE, snapshot, lines).version == 3
    assert check_copy(TABLE, snapshot, b"").version == 1
    with pytest.raises(InvalidDocument):
        check_copy(TABLE, snapshot[:-5], lines)          # a truncated snapshot
    with pytest.raises(InvalidDocument, match="do not all apply"):
        check_copy(TABLE, snapshot, lines[:-3])          # a torn last line
    skipping = journal.encode_entry(5, [["append", [[5]]]])
    with pytest.raises(InvalidDocument, match="do not all apply"):
        check_copy(TABLE, snapshot, lines + skipping)    # a line that does not chain


def test_an_append_read_half_done_is_read_again_from_its_start(tmp_path):
    write_object(tmp_path, TABLE, 1, rows=[])
    lines = append_entries(tmp_path, TABLE, 2, appended_rows(2, 2))
    line = journal.encode_entry(4, appended_rows(4, 1)[0])
    path = tmp_path / journal_rel(TABLE)
    with open(path, "ab") as handle:
        handle.write(line[:10])                   # the append as a reader may catch it
    half = read_state(tmp_path, TABLE)
    assert (half.version, half.torn, half.journal_end) == (3, True, len(lines))
    with open(path, "ab") as handle:
        handle.write(line[10:])
    done = read_state(tmp_path, TABLE, half)
    assert done == read_state(tmp_path, TABLE) and (done.version, done.torn) == (4, False)
