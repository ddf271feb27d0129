"""The owner lock and cluster record of a data directory (engine/storage/data_owner.py), on real files.

flock conflicts between two open file descriptions even inside one process,
so one test process can play both the holder and the newcomer.
"""

from __future__ import annotations

import errno
import os
import shutil

import pytest

from engine.session import Session
from engine.storage.data_owner import (
    CLUSTER_FILE,
    OWNER_FILE,
    DirectoryOfAnotherCluster,
    DirectoryTaken,
    OwnerLock,
    OwnerRecord,
    join_cluster,
    live_owner,
    read_cluster,
    write_cluster,
)
from engine.storage.store import Store
from supervisor.objectfiles import list_object_files


def record(node: str = "m1", cluster: str | None = "/c/topology.yaml") -> OwnerRecord:
    return OwnerRecord(node=node, pid=os.getpid(), host="127.0.0.1", port=3948, cluster=cluster,
                       started=1.0)


def test_a_held_directory_is_refused_naming_its_holder(tmp_path):
    data = tmp_path / "data" / "m1"
    held = OwnerLock.acquire(data, record())
    try:
        with pytest.raises(DirectoryTaken) as refused:
            OwnerLock.acquire(data, record("m9", cluster="/other/topology.yaml"), retry_s=0.05)
        message = str(refused.value)
        assert f"node m1 (pid {os.getpid()}, 127.0.0.1:3948) of cluster /c/topology.yaml" in message
        assert live_owner(data) == record()
    finally:
        held.release()
    assert live_owner(data) is None  # the record stays as history; only the lock says "live"
    again = OwnerLock.acquire(data, record("m9", cluster=None))
    assert live_owner(data).describe().endswith("run by hand outside any cluster")
    again.release()


def test_a_cluster_record_is_kept_refuses_others_and_does_not_follow_a_copy(tmp_path):
    data = tmp_path / "m1"
    assert read_cluster(data) is None
    join_cluster(data, "/a/topology.yaml")               # a new directory becomes ours
    assert read_cluster(data).cluster == "/a/topology.yaml"
    join_cluster(data, "/a/topology.yaml")
    with pytest.raises(DirectoryOfAnotherCluster, match="belongs to cluster /a/topology.yaml"):
        join_cluster(data, "/b/topology.yaml")
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    assert read_cluster(copy) is None                   # a copy is a new directory
    (data / CLUSTER_FILE).write_text("not json")
    assert "unreadable" in read_cluster(data).cluster   # never guessed to be ours
    write_cluster(data, "/b/topology.yaml", supervisor_pid=7)
    assert read_cluster(data).supervisor_pid == 7


def test_listings_and_replication_ignore_the_ownership_files(tmp_path):
    store = Store(tmp_path)
    Session(store).execute("manamboara tahiry db; ampiasao db; manamboara tabilao t (x ISA(0,9));")
    held = OwnerLock.acquire(tmp_path, record())
    write_cluster(tmp_path, "/c/topology.yaml")
    try:
        assert {p.name for p in tmp_path.iterdir()} >= {OWNER_FILE, CLUSTER_FILE}
        assert store.list_databases() == ["db"]
        assert list_object_files(tmp_path) == {"db/database.json", "db/tables/t.json"}
        assert store.remove_stale_temp_files() == 0
        assert (tmp_path / OWNER_FILE).exists() and (tmp_path / CLUSTER_FILE).exists()
    finally:
        held.release()


def test_a_directory_that_cannot_be_written_is_still_held(tmp_path, monkeypatch):
    data = tmp_path / "m1"
    OwnerLock.acquire(data, record("old")).release()   # a lock file from an earlier run
    real_open = os.open

    def read_only_open(path, flags, *args, **kwargs):  # as on a read-only file system
        if flags & (os.O_RDWR | os.O_WRONLY):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr("engine.storage.data_owner.os.open", read_only_open)
    held = OwnerLock.acquire(data, record("m1"))
    monkeypatch.undo()
    try:
        assert held.record_error is not None                # could not say who it is...
        with pytest.raises(DirectoryTaken):                 # ...but holds the directory
            OwnerLock.acquire(data, record("m9"), retry_s=0.05)
    finally:
        held.release()
