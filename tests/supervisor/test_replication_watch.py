"""Which file-system events become object paths to reconcile (supervisor/replication_watch.py)."""

from __future__ import annotations

from watchdog.events import FileClosedEvent, FileCreatedEvent, FileModifiedEvent, FileMovedEvent

from supervisor.replication_watch import DirectoryHandler

ROOT = "/data/m1"


def paths_of(*events) -> list[str]:
    seen: list[str] = []
    errors: list[str] = []
    handler = DirectoryHandler(ROOT, seen.append, errors.append)
    for event in events:
        handler.on_any_event(event)
    assert errors == []
    return seen


def test_a_journal_append_is_taken_at_its_write_only():
    """The copy starts at the write, while the writer fsyncs (as a snapshot's
    starts at its rename); the creation and the close after the fsync would
    only make more jobs per write."""
    journal = f"{ROOT}/school/tables/t.journal"
    assert paths_of(FileModifiedEvent(journal)) == ["school/tables/t.json"]
    assert paths_of(FileCreatedEvent(journal), FileClosedEvent(journal)) == []


def test_a_snapshot_is_taken_at_its_rename_and_at_a_write_in_place():
    temp, snapshot = f"{ROOT}/school/tables/.t.json.tmp", f"{ROOT}/school/tables/t.json"
    assert paths_of(FileCreatedEvent(temp), FileModifiedEvent(temp)) == []
    assert paths_of(FileMovedEvent(temp, snapshot)) == ["school/tables/t.json"]
    assert paths_of(FileModifiedEvent(snapshot)) == ["school/tables/t.json"]
