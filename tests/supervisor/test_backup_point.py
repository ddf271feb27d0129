"""supervisor/backup_point.py: the point is taken under the commit locks and copied after them.

Two stores that certify against each other (as two supervised servers do)
write tables through real sessions; the point must hold exactly what was
committed before it, whatever happens to the files afterwards (a
checkpoint folding the journal away, more appends), and each object at the
newest version any directory holds.
"""

from __future__ import annotations

import threading

import pytest

from engine.session import Session
from engine.storage import journal
from engine.storage.object_format import decode_document
from engine.storage.object_state import check_copy
from engine.storage.peer_sync import commit_lock_order
from engine.storage.peers import DirectoryLock, FixedPeers, holding
from engine.storage.store import Store
from supervisor.backup_point import STAGING_FOLDER, PointNotTaken, Source, take_point

TABLE = "school/tables/t.json"


def _stores(tmp_path):
    m1, m2 = tmp_path / "m1", tmp_path / "m2"
    first = Store(m1, peers=FixedPeers({"m2": m2}), node_id="m1", durable=False)
    second = Store(m2, peers=FixedPeers({"m1": m1}), node_id="m2", durable=False)
    return (m1, Session(first)), (m2, Session(second))


def _run(session: Session, *statements: str) -> None:
    for statement in statements:
        outcome = session.execute(statement)[-1]
        assert outcome.ok, outcome.message


def _rows(copy) -> list:
    """The table's rows at the copy's version (its snapshot, then its journal's entries)."""
    document = decode_document(copy.snapshot, copy.rel)
    rows = list(document["rows"])
    for entry in journal.chained(journal.parse(copy.journal).entries, document["change"]):
        rows = list(journal.apply(rows, entry.ops, len(document["columns"])))
    return rows


def _create(session: Session) -> None:
    _run(session, "manamboara tahiry school;", "ampiasao school;",
         "manamboara tabilao t ( id ISA(0,null) );")


def test_the_point_holds_what_was_committed_before_it_not_after(tmp_path):
    (m1, one), (m2, _) = _stores(tmp_path)
    _create(one)
    for value in range(1, 6):
        _run(one, f"manampia ao@ t sanda ({value});")
    point = take_point([Source("m1", m1), Source("m2", m2)])
    try:
        # After the point: more rows, then the journal folded into a new snapshot and
        # removed, as a checkpoint does while a plain copy would be reading the files.
        for value in range(6, 9):
            _run(one, f"manampia ao@ t sanda ({value});")
        assert one.store.checkpoint(m1 / TABLE)
        assert not (m1 / "school/tables/t.journal").exists()
        copies = {copy.rel: copy for copy in point.copies()}
    finally:
        point.discard()
    table = copies[TABLE]
    assert table.journal, "the table had a journal at the point"
    assert _rows(table) == [[value] for value in range(1, 6)]
    assert check_copy(TABLE, table.snapshot, table.journal).version == table.version
    assert set(copies) == {"school/database.json", TABLE}
    assert not (m1 / STAGING_FOLDER).exists() and not (m2 / STAGING_FOLDER).exists()


def test_each_object_comes_from_the_directory_holding_its_newest_version(tmp_path):
    (m1, one), (m2, two) = _stores(tmp_path)
    _create(one)
    _run(one, "manamboara tabilao u ( id ISA(0,null) );", "manampia ao@ t sanda (1);")
    # m2 writes u (pulling m1's copy first; the balancer sends a database's creation to
    # every server); no replication carries it back to m1.
    _run(two, "manamboara tahiry school;", "ampiasao school;", "manampia ao@ u sanda (7);")
    point = take_point([Source("m1", m1), Source("m2", m2)])
    try:
        copies = {copy.rel: copy for copy in point.copies()}
    finally:
        point.discard()
    assert point.server == "m1"
    assert copies["school/tables/u.json"].source == "m2"
    assert _rows(copies["school/tables/u.json"]) == [[7]]
    assert copies[TABLE].source == "m1" and _rows(copies[TABLE]) == [[1]]


def test_writes_wait_for_the_point_and_land_after_it(tmp_path):
    (m1, one), (m2, _) = _stores(tmp_path)
    _create(one)
    _run(one, "manampia ao@ t sanda (1);")
    blocker = DirectoryLock(m2, order=commit_lock_order("m2", m2))
    landed = threading.Event()
    with holding([blocker]):
        # The point cannot be taken while a commit (here: its lock) holds m2.
        with pytest.raises(PointNotTaken, match="commit locks"):
            take_point([Source("m1", m1), Source("m2", m2)], lock_timeout_s=0.2)
    assert not (m1 / STAGING_FOLDER).exists(), "a point not taken leaves no links"
    point = take_point([Source("m1", m1), Source("m2", m2)])
    writer = threading.Thread(target=lambda: (_run(one, "manampia ao@ t sanda (2);"),
                                              landed.set()))
    writer.start()
    writer.join(10)
    assert landed.is_set()
    try:
        copies = {copy.rel: copy for copy in point.copies()}
    finally:
        point.discard()
    assert _rows(copies[TABLE]) == [[1]]
    assert point.paused_s < 5


def test_a_torn_tail_at_the_point_is_left_out(tmp_path):
    (m1, one), (m2, _) = _stores(tmp_path)
    _create(one)
    _run(one, "manampia ao@ t sanda (1);", "manampia ao@ t sanda (2);")
    with open(m1 / "school/tables/t.journal", "ab") as handle:
        handle.write(b'0000abcd {"change":9,"op')   # a crash in the middle of an append
    point = take_point([Source("m1", m1), Source("m2", m2)])
    try:
        table = next(copy for copy in point.copies() if copy.rel == TABLE)
    finally:
        point.discard()
    assert table.journal.endswith(b"\n")
    assert _rows(table) == [[1], [2]]


def test_a_copy_made_file_by_file_without_the_locks_has_a_gap(tmp_path):
    """Why the locks: the snapshot copied, then a checkpoint and more rows, then the journal
    copied. The result does not read as a table (its journal chains from a snapshot the copy
    does not have), and read as the store would, rows acknowledged before the copy began are
    missing: what the integration test's "no gap" check would catch."""
    (m1, one), _ = _stores(tmp_path)
    _create(one)
    _run(one, "manampia ao@ t sanda (1);", "manampia ao@ t sanda (2);")
    snapshot = (m1 / TABLE).read_bytes()            # the naive copy's first file
    assert one.store.checkpoint(m1 / TABLE)         # folded meanwhile: the journal removed
    _run(one, "manampia ao@ t sanda (3);", "manampia ao@ t sanda (4);")
    lines = (m1 / "school/tables/t.journal").read_bytes()   # ... and its second
    naive = _check_copy_or_none(snapshot, lines)
    assert naive is None, "the two files do not chain: a gap"
    base = decode_document(snapshot, TABLE)
    readable = journal.chained(journal.parse(lines).entries, base["change"])
    assert readable == [] and base["rows"] == [], "rows 1 and 2 are in neither file read"
    # The point taken under the locks at the same moment holds all four.
    point = take_point([Source("m1", m1)])
    try:
        table = next(copy for copy in point.copies() if copy.rel == TABLE)
    finally:
        point.discard()
    assert _rows(table) == [[1], [2], [3], [4]]


def _check_copy_or_none(snapshot: bytes, lines: bytes):
    from engine.storage.object_format import InvalidDocument
    try:
        return check_copy(TABLE, snapshot, lines)
    except InvalidDocument:
        return None
