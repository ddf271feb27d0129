"""supervisor/restore.py: a restore killed among its renames is finished, never left half done.

The renames that put each server's new directory in place come after every
new directory is complete; killed between two of them (here: an exception
that nothing catches, as kill -9 leaves things), some servers had the
restored data and the others their old, newer copies, which `up` would
replicate over the restored ones. run/restore.json lists the renames until
they are all done, and `finish_interrupted` (run by `up`) completes them.
"""

from __future__ import annotations

import json
import os

import pytest

import supervisor.restore as restore_module
from supervisor.restore import PENDING_FILE, RestoreRefused, finish_interrupted, restore
from supervisor.topology import parse_topology
from tests.supervisor.test_backup_archive import TABLE, _write
from tests.supervisor.test_topology import GOOD


class Killed(BaseException):
    """What kill -9 leaves: nothing after the point runs (no `except OSError` either)."""


@pytest.fixture
def cluster(tmp_path):
    topology = parse_topology(GOOD, tmp_path / "topology.yaml", {})
    for server in ("m1", "m2"):
        data = tmp_path / "data" / server
        data.mkdir(parents=True)
        (data / "old.txt").write_text(f"{server}'s own, newer data\n")
    archive = tmp_path / "backup.tar.gz"
    _write(archive)
    return topology, archive


def _restored(data) -> bool:
    return (data / TABLE).is_file() and not (data / "old.txt").exists()


def test_a_restore_killed_between_two_renames_is_finished_by_up(cluster, tmp_path, monkeypatch):
    topology, archive = cluster
    rename, calls = os.rename, []

    def dying_rename(source, target):
        calls.append(target)
        if len(calls) == 4:   # m2's old directory aside, its new one not yet in
            raise Killed
        rename(source, target)
    monkeypatch.setattr(restore_module.os, "rename", dying_rename)
    with pytest.raises(Killed):
        restore(topology, archive)
    monkeypatch.setattr(restore_module.os, "rename", rename)
    m1, m2 = tmp_path / "data" / "m1", tmp_path / "data" / "m2"
    assert _restored(m1) and not m2.exists()   # half done, as a kill leaves it
    assert (topology.supervisor.run / PENDING_FILE).exists()

    lines = finish_interrupted(topology)   # what `up` runs first
    assert _restored(m1) and _restored(m2)
    assert [line.split(":")[0] for line in lines] == ["m2"]
    kept = sorted(path.name for path in (tmp_path / "data").iterdir())
    assert [name.split("-")[0] for name in kept] == [
        "m1", "m1.before", "m2", "m2.before"], kept
    for name in kept[1::2]:
        assert (tmp_path / "data" / name / "old.txt").exists()
    assert not (topology.supervisor.run / PENDING_FILE).exists()
    assert finish_interrupted(topology) == []


def test_a_damaged_list_of_renames_is_refused_changing_nothing(cluster, tmp_path):
    topology, _ = cluster
    pending = topology.supervisor.run / PENDING_FILE
    pending.parent.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    elsewhere = json.dumps({"renames": [{  # a rename out of the servers' folder
        "server": "m1", "data": str(tmp_path / "data" / "m1"),
        "staged": str(outside / ".m1.restoring-x"), "kept": None}]})
    for text in ("{not json", '{"renames": [{"server": "m1"}]}', elsewhere):
        pending.write_text(text)
        with pytest.raises(RestoreRefused, match="not a restore's list of renames"):
            finish_interrupted(topology)
        assert pending.read_text() == text
        assert (tmp_path / "data" / "m1" / "old.txt").exists()


def test_a_restore_killed_while_it_extracts_leaves_nothing_for_long(cluster, tmp_path,
                                                                      monkeypatch):
    """Killed while it writes the new directories (before run/restore.json: nothing
    renamed, the old directories in force), a restore left each `.<dir>.restoring-*`
    folder, a whole copy of the data, beside the servers' directories for good: every
    attempt another copy. The next restore (or `up`) removes them once no run/restore.json
    lists them."""
    topology, archive = cluster
    import supervisor.backup_archive as archive_module
    write_file, calls = archive_module._write_file, []

    def dying_write(into, rel, data):
        calls.append(rel)
        if len(calls) == 6:   # m2's new directory half written
            raise Killed
        write_file(into, rel, data)
    monkeypatch.setattr(archive_module, "_write_file", dying_write)
    rmtree = restore_module.shutil.rmtree   # (kill -9 runs no clean-up: none here either)
    monkeypatch.setattr(restore_module.shutil, "rmtree", lambda *args, **kwargs: None)
    with pytest.raises(Killed):
        restore(topology, archive)
    monkeypatch.setattr(archive_module, "_write_file", write_file)
    monkeypatch.setattr(restore_module.shutil, "rmtree", rmtree)
    data = tmp_path / "data"
    assert len(list(data.glob(".m*.restoring-*"))) == 2   # as a kill leaves them
    assert not (topology.supervisor.run / PENDING_FILE).exists()
    assert (data / "m1" / "old.txt").exists() and (data / "m2" / "old.txt").exists()

    lines = finish_interrupted(topology)   # what `up` runs first
    assert [line.split(":")[0] for line in lines] == ["m1", "m2"], lines
    assert all("left by a restore interrupted" in line for line in lines)
    assert list(data.glob(".m*.restoring-*")) == []
    assert (data / "m1" / "old.txt").exists() and (data / "m2" / "old.txt").exists()
    restore(topology, archive)
    assert _restored(data / "m1") and _restored(data / "m2")
    assert list(data.glob(".m*.restoring-*")) == []


def test_up_and_a_server_are_refused_while_a_restore_runs(cluster, tmp_path, monkeypatch):
    """A restore holds every server's directory (their owner locks) from its start to its
    last rename: a server `up` starts meanwhile is refused, and so is `up`'s own finishing
    of interrupted restores (which would remove the folders this one is writing).
    Before, nothing stopped them: servers started on directories about to be renamed
    aside, their acknowledged writes then in `*.before-restore-*`."""
    from engine.storage.data_owner import DirectoryTaken, OwnerLock, OwnerRecord

    topology, archive = cluster
    m1 = tmp_path / "data" / "m1"
    server = OwnerRecord(node="m1", pid=os.getpid(), host="127.0.0.1", port=4948)
    seen: list[str] = []
    extract = restore_module.extract_archive

    def extract_while_up_tries(path, into):
        with pytest.raises(DirectoryTaken):
            OwnerLock.acquire(m1, server, retry_s=0)
        with pytest.raises(RestoreRefused, match="in use by node restore"):
            finish_interrupted(topology)
        seen.append(into.name)
        return extract(path, into)
    monkeypatch.setattr(restore_module, "extract_archive", extract_while_up_tries)
    import shutil
    shutil.rmtree(tmp_path / "data" / "m2")   # a server with no directory yet
    result = restore(topology, archive)
    assert len(seen) == 2 and all(name.startswith(".m") for name in seen)
    assert _restored(m1) and _restored(tmp_path / "data" / "m2")
    assert {placed.server: placed.kept is not None for placed in result.placed} == {
        "m1": True, "m2": False}   # (m2's was made only to be held: not kept)
    assert sorted(path.name.split("-")[0] for path in (tmp_path / "data").iterdir()) == [
        "m1", "m1.before", "m2"]
    OwnerLock.acquire(m1, server, retry_s=0).release()   # free once it is done
