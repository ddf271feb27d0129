"""`backup` while a client writes, then `down`, `restore`, `up`: real processes, real files.

A writer inserts 1, 2, 3, ... into table `a` (owned by m1) and then the
same number into table `b` (owned by m2), each insert acknowledged before
the next is sent, all through the balancer, while `backup` runs. A point
in time of the cluster holds `a` = 1..A and `b` = 1..B with no gap and
B <= A <= B + 1; every number acknowledged before the backup started is in
it. A copy of the files made without the commit locks can break any of
these (a checkpoint between a snapshot's and a journal's copy gives a
gap; copying `a` before `b` gives B > A).

Restoring refuses, changing nothing, while the cluster runs and for an
archive that is corrupt, truncated or not ours; a good one comes back on
every server, and the rows written after the backup stay gone (newest
wins cannot bring them back from another directory).
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from engine.storage.object_state import version_of
from supervisor.backup_archive import check_archive
from tests.conftest import wait_until
from tests.integration.supervisorkit import all_running
from tests.integration.wire import WireClient, create_and_use, tables_owned_by

pytestmark = pytest.mark.slow

DATABASE = "banky"
A, B = tables_owned_by("m1", DATABASE)[0], tables_owned_by("m2", DATABASE)[0]


class Writer:
    """Inserts n into A then into B, n = 1, 2, ...; `acknowledged` is the last n both took."""

    def __init__(self, port: int):
        self.client = WireClient(port)
        self.client.ok(f"ampiasao {DATABASE};")
        self.acknowledged = 0
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            for table in (A, B):
                answer = self.client.one(f"manampia ao@ {table} sanda ({n});")
                if not answer.ok:
                    self.errors.append(answer.message)
                    return
            self.acknowledged = n

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(20)
        self.client.close()


def _ids(port: int, table: str) -> list[int]:
    with WireClient(port) as client:
        client.ok(f"ampiasao {DATABASE};")
        return sorted(row[0] for row in client.rows(f"alaivo id ao@ {table};"))


def _tree(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its SHA-256 (the runtime lock files' bytes too)."""
    found = {}
    for place, _, files in os.walk(folder):
        for name in files:
            path = Path(place) / name
            found[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _start(cluster) -> None:
    result = cluster.up()
    assert result.returncode == 0, result.stderr
    cluster.wait_for(all_running, "every node RUNNING")


def _set_up_tables(cluster) -> None:
    with WireClient(cluster.ports["lb"]) as client:
        create_and_use(client, DATABASE)
        for table in (A, B):
            client.ok(f"manamboara tabilao {table} ( id ISA(0,null) );")


def test_backup_under_writes_restores_a_point_in_time(cluster, tmp_path):
    _start(cluster)
    _set_up_tables(cluster)
    archive = tmp_path / "class.tar.gz"
    with Writer(cluster.ports["lb"]) as writer:
        wait_until(lambda: writer.acknowledged >= 200 or writer.errors, 30, "200 writes")
        acknowledged_before = writer.acknowledged
        result = cluster.cli("backup", str(cluster.topology), "--to", str(archive))
        assert result.returncode == 0, result.stdout + result.stderr
        # Writes went on during the backup and after it.
        seen = writer.acknowledged
        wait_until(lambda: writer.acknowledged >= seen + 50 or writer.errors, 30,
                   "writes after the backup")
    assert not writer.errors, writer.errors
    assert "backup written and checked" in result.stdout and "writes paused" in result.stdout
    manifest = check_archive(archive).manifest
    assert {item.rel for item in manifest.objects} >= {
        f"{DATABASE}/database.json", f"{DATABASE}/tables/{A}.json", f"{DATABASE}/tables/{B}.json"}
    assert set(manifest.servers) == {"m1", "m2"}
    last_written = writer.acknowledged

    cluster.down()
    restored = cluster.cli("restore", str(archive), str(cluster.topology))
    assert restored.returncode == 0, restored.stdout + restored.stderr
    kept = sorted(cluster.workdir.joinpath("data").glob("m*.before-restore-*"))
    assert [path.name.split(".")[0] for path in kept] == ["m1", "m2"], "old directories kept"
    # Each server's files are at the manifest's point, object by object.
    for server in ("m1", "m2"):
        for item in manifest.objects:
            found = version_of(cluster.workdir / "data" / server, item.rel)
            assert found is not None and found.change == item.version, (server, item)
    print(result.stdout, f"acknowledged before: {acknowledged_before}, after: {last_written}")
    _start(cluster)

    a_ids = _ids(cluster.ports["m1"], A)
    b_ids = _ids(cluster.ports["m1"], B)
    count_a, count_b = len(a_ids), len(b_ids)
    assert a_ids == list(range(1, count_a + 1)), f"{A} has a gap"
    assert b_ids == list(range(1, count_b + 1)), f"{B} has a gap"
    assert count_b <= count_a <= count_b + 1, \
        f"not one point in time: {A} holds 1..{count_a}, {B} 1..{count_b}"
    assert count_b >= acknowledged_before, \
        f"writes acknowledged before the backup are missing ({count_b} < {acknowledged_before})"
    assert count_a < last_written, "the rows written after the backup came back"
    # Every server serves the restored copy, not its own newer one.
    for server in ("m1", "m2"):
        assert _ids(cluster.ports[server], A) == a_ids
        assert _ids(cluster.ports[server], B) == b_ids


def test_restore_refuses_bad_archives_and_a_running_cluster_changing_nothing(cluster, tmp_path):
    _start(cluster)
    _set_up_tables(cluster)
    with WireClient(cluster.ports["lb"]) as client:
        client.ok(f"ampiasao {DATABASE};")
        client.ok(f"manampia ao@ {A} sanda (1), (2);")
    archive = tmp_path / "good.tar.gz"
    made = cluster.cli("backup", str(cluster.topology), "--to", str(archive))
    assert made.returncode == 0, made.stderr
    again = cluster.cli("backup", str(cluster.topology), "--to", str(archive))
    assert again.returncode == 1 and "already exists" in again.stderr

    running = cluster.cli("restore", str(archive), str(cluster.topology))
    assert running.returncode == 1
    assert "nothing restored" in running.stderr and "stop the cluster first" in running.stderr
    with WireClient(cluster.ports["lb"]) as client:
        client.ok(f"ampiasao {DATABASE};")
        client.ok(f"manampia ao@ {A} sanda (3);")   # after the backup: gone once restored
    cluster.down()

    data = cluster.workdir / "data"
    before = {server: _tree(data / server) for server in ("m1", "m2")}
    good = archive.read_bytes()
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x01
    bad = {"truncated.tar.gz": good[:len(good) // 2], "corrupt.tar.gz": bytes(flipped),
           "notes.tar.gz": b"not an archive at all\n"}
    for name, data_bytes in bad.items():
        (tmp_path / name).write_bytes(data_bytes)
    for name in [*bad, "missing.tar.gz"]:
        refused = cluster.cli("restore", str(tmp_path / name), str(cluster.topology))
        assert refused.returncode == 1, (name, refused.stdout)
        assert refused.stderr.startswith("nothing restored: ") and \
            refused.stderr.count("\n") == 1, (name, refused.stderr)
        assert {server: _tree(data / server) for server in ("m1", "m2")} == before, name
        assert sorted(path.name for path in data.iterdir()) == ["m1", "m2"], name

    restored = cluster.cli("restore", str(archive), str(cluster.topology))
    assert restored.returncode == 0, restored.stderr
    _start(cluster)
    for server in ("m1", "m2"):
        assert _ids(cluster.ports[server], A) == [1, 2]


def test_backup_without_a_running_cluster_says_so(cluster, tmp_path):
    result = cluster.cli("backup", str(cluster.topology), "--to", str(tmp_path / "b.tar.gz"))
    assert result.returncode == 3 and "not running" in result.stderr
    assert not (tmp_path / "b.tar.gz").exists()


class _Zeros:
    """`size` zero bytes read in chunks (a member's data, never held whole)."""

    def __init__(self, size: int):
        self.left = size

    def read(self, size: int = -1) -> bytes:
        chunk = min(self.left, 1 << 20 if size is None or size < 0 else size, 1 << 20)
        self.left -= chunk
        return bytes(chunk)


def test_an_archive_with_a_huge_member_is_refused_not_read_into_memory(cluster, tmp_path):
    """A few MB of gzip'ed zeros that a tar header calls a 640 MB table: the restore (its
    address space limited to 1 GiB, as a small machine's memory) refuses it in one line
    before reading it, changing nothing; before, it read the member whole and died of a
    MemoryError traceback (without a limit: the OOM killer)."""
    import resource
    import subprocess
    import sys
    import tarfile

    from supervisor.backup_archive import DATA_PREFIX

    archive = tmp_path / "huge.tar.gz"
    size = 640 << 20
    with tarfile.open(archive, "w:gz", compresslevel=1) as writing:
        info = tarfile.TarInfo(DATA_PREFIX + "school/database.json")
        info.size = size
        writing.addfile(info, _Zeros(size))
    assert archive.stat().st_size < 8 << 20

    def small_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    refused = subprocess.run(
        [sys.executable, "-m", "supervisor", "restore", str(archive), str(cluster.topology)],
        cwd=cluster.workdir, capture_output=True, text=True, timeout=60,
        env=cluster.cli_environment(), preexec_fn=small_memory)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.startswith("nothing restored: ") and "Traceback" not in refused.stderr \
        and refused.stderr.count("\n") == 1, refused.stderr
    assert "school/database.json" in refused.stderr and "bytes" in refused.stderr
    assert not (cluster.workdir / "data").exists() or not any(
        (cluster.workdir / "data").iterdir()), "nothing written"


def test_a_supervisor_killed_while_it_writes_an_archive_leaves_no_temp_archive(cluster,
                                                                               tmp_path):
    """kill -9 of the supervisor while `backup` writes its temp archive: the servers go on
    (writes resume), and the next supervisor's start removes the unfinished archive (a part
    of every table and the password hashes, 0600, beside the target); before, it stayed
    there for good, one more at every such kill. The next backup is whole."""
    import signal
    import subprocess
    import sys

    _start(cluster)
    _set_up_tables(cluster)
    with WireClient(cluster.ports["lb"]) as client:   # enough rows to catch the write
        client.ok(f"ampiasao {DATABASE};")
        client.ok("manamboara tabilao lehibe ( id ISA(0,null), label LAHATSORATRA(null,null) );")
        for chunk in range(12):
            client.ok("manampia ao@ lehibe sanda " + ", ".join(
                f"({chunk * 5000 + j}, 'row {chunk * 5000 + j} of a big table')"
                for j in range(5000)) + ";")
    archive = tmp_path / "killed.tar.gz"
    supervisor = int((cluster.workdir / "run" / "supervisor.pid").read_text())
    with Writer(cluster.ports["lb"]) as writer:
        wait_until(lambda: writer.acknowledged >= 20 or writer.errors, 30, "writes")
        backup = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "backup", str(cluster.topology), "--to",
             str(archive)], cwd=cluster.workdir, env=cluster.cli_environment(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            temps = wait_until(lambda: list(tmp_path.glob(".killed.tar.gz.*.tmp")), 30,
                               "the temp archive being written", interval_s=0.001)
            os.kill(supervisor, signal.SIGKILL)
        finally:
            _, stderr = backup.communicate(timeout=60)
        assert backup.returncode != 0 and not archive.exists(), stderr
        seen = writer.acknowledged   # the servers and the balancer outlive the supervisor
        wait_until(lambda: writer.acknowledged >= seen + 20 or writer.errors, 30,
                   "writes with the supervisor dead")
    assert not writer.errors, writer.errors
    assert [path.exists() for path in temps] == [True], "as the kill left it"
    # (`up` stops the nodes a dead supervisor left and starts them again: clients reconnect.)
    again = cluster.cli("up", "-d", str(cluster.topology))
    assert again.returncode == 0, again.stdout + again.stderr
    cluster.remember_pids()
    wait_until(lambda: not any(path.exists() for path in temps), 20,
               "the unfinished archive removed by the next supervisor")
    assert "unfinished archive" in cluster.supervisor_log()
    cluster.wait_for(all_running, "every node RUNNING again")
    with WireClient(cluster.ports["lb"]) as client:
        client.ok(f"ampiasao {DATABASE};")
        client.ok(f"manampia ao@ {A} sanda (1000000);")
    whole = cluster.cli("backup", str(cluster.topology), "--to", str(tmp_path / "b.tar.gz"))
    assert whole.returncode == 0, whole.stdout + whole.stderr
    assert list(tmp_path.glob(".*.tmp")) == []
    assert not (cluster.workdir / "run" / "backup.json").exists()
    assert check_archive(tmp_path / "b.tar.gz").manifest.objects
