"""A store that trusts its cache while nothing changed in its folders (engine/storage/cached_reads.py).

Another store on the same directory stands for another process (the
replicator, a peer's pull, a server of the same set): whatever it writes,
renames or removes, the watching store's next read gives what a store that
`stat`s every read gives.
"""

import os
import random
import shutil
import struct

import pytest

from engine.session import Session
from engine.storage import cached_reads
from engine.storage.cached_reads import FolderWatch
from engine.storage.store import Store

pytestmark = pytest.mark.skipif(FolderWatch.open() is None, reason="no inotify here")


def _session(store: Store) -> Session:
    session = Session(store)
    session.current_database = "db"
    return session


@pytest.fixture
def stores(tmp_path):
    root = tmp_path / "data"
    writer = Session(Store(root, durable=False))
    for text in ("manamboara tahiry db", "ampiasao db",
                 "manamboara tabilao t (id ISA(0,null), b LAHATSORATRA(null,null))",
                 "manampia ao@ t sanda (1, 'a'), (2, 'b')"):
        assert writer.execute_one(text).ok, text
    watching = Store(root, durable=False, watch_folders=True)
    plain = Store(root, durable=False)
    return root, writer, watching, plain


def _rows(store: Store) -> object:
    document = store.read("db", "table", "t")
    return None if document is None else (document["change"], document["rows"])


def _same(watching: Store, plain: Store) -> None:
    assert _rows(watching) == _rows(plain)
    assert watching.database_exists("db") == plain.database_exists("db")
    assert watching.list_objects("db", "table") == plain.list_objects("db", "table")


def test_reads_while_nothing_changes_skip_the_stat(stores, monkeypatch):
    _, _, watching, plain = stores
    _same(watching, plain)
    _same(watching, plain)   # checked once: from now on trusted
    calls = []
    real_stat = os.stat

    def counting(path, *args, **kwargs):
        calls.append(path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(cached_reads.os, "stat", counting)
    for _ in range(5):
        assert watching.read("db", "table", "t") is not None
        assert watching.database_exists("db")
    assert calls == []


def test_another_writer_is_seen_by_the_next_read(stores):
    root, writer, watching, plain = stores
    rng = random.Random(7)
    statements = ["manampia ao@ t sanda ({k}, 'x')", "fafao ao@ t rehefa id = {k}",
                  "havaozy t ova b = 'y{k}' rehefa id = {k}"]
    for step in range(60):
        _same(watching, plain)
        _same(watching, plain)
        assert writer.execute_one(rng.choice(statements).format(k=rng.randrange(20))).ok
        if step % 10 == 9:
            assert writer.store.checkpoint_all() >= 0   # snapshot renamed in, journal removed
    _same(watching, plain)
    assert writer.execute_one("ravao ny tabilao t").ok
    _same(watching, plain)
    assert writer.execute_one("manamboara tabilao t (z ISA(null,null))").ok
    _same(watching, plain)
    assert writer.execute_one("ravao ny tahiry db").ok
    _same(watching, plain)


def test_folders_moved_and_replaced(stores):
    root, writer, watching, plain = stores
    _same(watching, plain)
    _same(watching, plain)
    # The whole database folder moved away, then an older copy put in its place.
    saved = root.parent / "saved"
    shutil.copytree(root / "db", saved)
    assert writer.execute_one("manampia ao@ t sanda (3, 'c')").ok
    _same(watching, plain)
    os.rename(root / "db", root.parent / "gone")
    _same(watching, plain)
    assert _rows(watching) is None
    shutil.copytree(saved, root / "db")
    _same(watching, plain)
    _same(watching, plain)
    # Then only its tables folder replaced.
    shutil.rmtree(root / "db" / "tables")
    _same(watching, plain)
    shutil.copytree(root.parent / "gone" / "tables", root / "db" / "tables")
    _same(watching, plain)
    assert _rows(watching)[1][-1] == [3, "c"]
    # A file written in place (same inode), as a careless copy would.
    document = (root / "db" / "tables" / "t.json").read_bytes()
    (root / "db" / "tables" / "t.json").write_bytes(document.replace(b'"c"', b'"d"'))
    _same(watching, plain)


class _Overflowed:
    """The descriptor's side of a lost event queue: one IN_Q_OVERFLOW event, then nothing."""

    def __init__(self, real):
        self.real = real
        self.events = [struct.pack("iIII", -1, 0x4000, 0, 0)]

    def read(self, size):
        return self.events.pop() if self.events else self.real.read(size)

    def fileno(self):
        return self.real.fileno()


def test_a_lost_event_queue_trusts_nothing(stores, monkeypatch):
    _, _, watching, plain = stores
    _same(watching, plain)
    _same(watching, plain)
    watch = watching._reader._watch
    assert watch._folders
    before = watch.generation()
    monkeypatch.setattr(watch, "_file", _Overflowed(watch._file))
    monkeypatch.setattr(watch, "_poll", type("Ready", (), {"poll": lambda self, timeout: [1]})())
    assert watch.generation() > before
    assert watch._folders == {} and watch._current == set()
    monkeypatch.undo()
    calls = []
    real_stat = os.stat
    monkeypatch.setattr(cached_reads.os, "stat", lambda path, *a, **k: calls.append(path) or real_stat(path))
    _same(watching, plain)
    assert calls   # checked again
