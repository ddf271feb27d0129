"""Crash consistency: a server SIGKILLed at 100+ points of its write path loses nothing.

The server runs under tests/integration/crashing_server.py, which kills it
at the Nth open / write / fsync / rename / folder fsync / unlink / truncate
of its data directory (before, in the middle of, or after the call),
anywhere or within one part of the store: a table's journal append, a
checkpoint, the recovery at start (torn tails cut, temp files removed), the
format 1 -> 2 upgrade. After every kill the object files must all parse and
every journal be whole up to at most a torn tail, every acknowledged
statement must be there, no failed one, and the statement in flight must be
wholly there or wholly absent; after the final clean stop every table is a
plain snapshot holding exactly what was acknowledged (see crash_sweep.py
for the model).
"""

from __future__ import annotations

import json

import pytest

from engine.storage.object_state import current_document
from tests.integration.crash_sweep import (
    FAIL_AFTER_RENAME,
    create_format_1_directory,
    create_schema,
    run_sweep,
    sweep_points,
)
from tests.integration.crashing_server import KillPoint
from tests.integration.faultkit import (
    ConnectionLost,
    WireClient,
    free_port,
    server_command,
    start_process,
    stop_process,
    temp_files,
    torn_files,
    torn_tails,
)


def test_kill_point_syntax():
    assert str(KillPoint.parse("before-replace:3")) == "before-replace:3"
    assert KillPoint.parse("mid-write:5").phase == "mid"
    assert KillPoint.parse("stall-fsync:4@journal").phase == "stall"
    assert KillPoint.parse("after-truncate:2@recover").scope == "recover"
    assert str(KillPoint.parse("before-unlink:1@checkpoint")) == "before-unlink:1@checkpoint"
    both = KillPoint.parse_all("fail-write:1@journal+before-truncate:1@journal")
    assert [str(p) for p in both] == ["fail-write:1@journal", "before-truncate:1@journal"]
    for bad in ("replace:3", "before-replace", "mid-fsync:1", "after-nothing:2", "before-write:0",
                "sometime-write:1", "before-write:1@nowhere", "before-write:1@"):
        with pytest.raises(ValueError):
            KillPoint.parse(bad)


def _run_until_killed(tmp_path, point: str, statement: str) -> tuple[int, str]:
    """One statement on a server that dies at `point`; (exit code, its log)."""
    data = tmp_path / "data"
    create_schema(data)
    port = free_port()
    child = start_process(server_command("m1", port, data, kill_at=point), tmp_path / "m1.log",
                          tmp_path, port)
    try:
        child.wait_ready()
        with WireClient(port, timeout=10) as client:
            assert client.use("crash").ok
            with pytest.raises(ConnectionLost) as lost:
                client.execute(statement)
            assert lost.value.sent
        return child.popen.wait(timeout=10), child.log_text()
    finally:
        stop_process(child)


def _restart_and_read(tmp_path, table: str) -> list:
    """A plain server on the directory (recovery runs), the table's rows, then a clean stop."""
    port = free_port()
    child = start_process(server_command("m2", port, tmp_path / "data"), tmp_path / "m2.log",
                          tmp_path, port)
    try:
        child.wait_ready()
        with WireClient(port, timeout=10) as client:
            assert client.use("crash").ok
            answer = client.execute(f"alaivo k, v ao@ {table}")
            assert answer.ok, answer.message
            return [list(row) for row in answer.relation.rows]
    finally:
        assert stop_process(child) == 0


TABLE = "crash/tables/t1.json"
INSERT = "manampia ao@ t1 sanda (1, 2)"
CREATE = "manamboara tabilao t3 (k ISA(0, null))"


def test_killed_in_the_middle_of_a_journal_append_leaves_a_torn_tail_cut_at_start(tmp_path):
    code, log = _run_until_killed(tmp_path, "mid-write:1@journal", INSERT)
    assert code == -9 and "CRASHING_SERVER KILL mid-write:1@journal [journal]" in log
    data = tmp_path / "data"
    assert torn_tails(data) == [TABLE]     # half a line: never acknowledged...
    assert torn_files(data) == []          # ... and no damage: the table reads at its version
    assert current_document(data / TABLE)["rows"] == []
    assert _restart_and_read(tmp_path, "t1") == []
    assert torn_tails(data) == []          # cut at the start, and folded at the clean stop
    assert not (data / "crash/tables/t1.journal").exists()


def test_killed_after_the_journal_fsync_keeps_the_row(tmp_path):
    code, log = _run_until_killed(tmp_path, "after-fsync:1@journal", INSERT)
    assert code == -9 and "CRASHING_SERVER KILL after-fsync:1@journal" in log
    data = tmp_path / "data"
    assert (data / "crash/tables/t1.journal").exists()
    assert json.loads((data / TABLE).read_bytes())["rows"] == []   # the snapshot is untouched
    assert current_document(data / TABLE)["rows"] == [[1, 2]]
    assert _restart_and_read(tmp_path, "t1") == [[1, 2]]


def test_killed_before_the_rename_leaves_the_old_file_and_a_whole_temp_file(tmp_path):
    code, log = _run_until_killed(tmp_path, "before-replace:1", CREATE)
    assert code == -9 and "CRASHING_SERVER KILL before-replace:1 [commit]" in log
    assert not (tmp_path / "data" / "crash" / "tables" / "t3.json").exists()
    [temp] = temp_files(tmp_path / "data")
    assert json.loads((tmp_path / "data" / temp).read_bytes())["name"] == "t3"


def test_killed_after_the_rename_leaves_the_new_file(tmp_path):
    code, log = _run_until_killed(tmp_path, "after-replace:1", CREATE)
    assert code == -9 and "CRASHING_SERVER KILL after-replace:1" in log
    table = tmp_path / "data" / "crash" / "tables" / "t3.json"
    assert json.loads(table.read_bytes())["rows"] == []
    assert temp_files(tmp_path / "data") == []


def test_killed_in_the_middle_of_a_write_leaves_a_torn_temp_file_only(tmp_path):
    code, log = _run_until_killed(tmp_path, "mid-write:1@commit", CREATE)
    assert code == -9 and "CRASHING_SERVER KILL mid-write:1@commit" in log
    [temp] = temp_files(tmp_path / "data")
    with pytest.raises(ValueError):  # the half-written document really is torn...
        json.loads((tmp_path / "data" / temp).read_bytes())
    assert torn_files(tmp_path / "data") == []  # ...but it is a temp file nobody reads


def test_an_upgrade_killed_before_its_marker_is_finished_at_the_next_start(tmp_path):
    data = tmp_path / "data"
    create_format_1_directory(data, {"t1": {5: 6}})
    port = free_port()
    child = start_process(server_command("m1", port, data, kill_at="before-replace:4@upgrade"),
                          tmp_path / "m1.log", tmp_path, port)
    assert child.popen.wait(timeout=30) == -9   # three documents rewritten, then the marker
    assert "CRASHING_SERVER KILL before-replace:4@upgrade [upgrade]" in child.log_text()
    assert not (data / ".tahiry.format").exists()
    assert json.loads((data / TABLE).read_bytes())["format"] == 2
    assert _restart_and_read(tmp_path, "t1") == [[5, 6]]
    assert json.loads((data / ".tahiry.format").read_bytes()) == {"format": 2}


def _kills(point: str) -> bool:
    """Whether a point ends in a kill (not only an injected failure)."""
    return not KillPoint.parse_all(point)[-1].phase == "fail"


@pytest.mark.slow  # a seeded sweep of kill points: tens of server starts
def test_crash_sweep_loses_nothing(tmp_path):
    points = sweep_points()
    assert len(points) >= 100
    result = run_sweep(tmp_path, points)
    report = "\n".join(result.problems)
    assert result.points_reached == len(points), \
        [k.point for k in result.kills if not k.reached]
    assert all(k.exit_code == -9 for k in result.kills if _kills(k.point))
    assert result.files_torn == 0, report
    assert result.lost_acknowledged == 0, report
    assert result.failed_present == 0, report
    assert result.partial_in_flight == 0, report
    assert result.problems == []
    # Kills landed in every part of the write path, and at start (recovery, upgrade).
    landed = result.reached_by_scope()
    assert all(landed[scope] >= 5 for scope in ("journal", "checkpoint", "recover", "upgrade",
                                                "commit")), landed
    assert result.killed_at_start >= 10
    # Torn journal tails were left, and every one was cut at the next start.
    assert result.torn_tails_left >= 3 and result.tails_not_cut == 0
    assert result.final_journals == 0
    # The sweep exercised both sides: in-flight statements that landed and that did not.
    assert result.in_flight_applied > 0 and result.in_flight_absent > 0
    assert result.acknowledged > 100 and result.failed > 10


def test_failure_after_rename_is_not_reported_as_failed(tmp_path):
    """EIO on a folder open/fsync after the rename: the write is in place, never "failed".

    The statement whose file was renamed (or journal created) but not made
    durable is answered "outcome unknown" (and is then present, or absent
    after a crash); no statement answered with a plain failure is present.
    """
    points = [f"fail-{operation}:1" for operation in FAIL_AFTER_RENAME if operation != "replace"]
    # Format 2 from the start and the default checkpoints: the first folder fsync is a
    # commit's (no upgrade, no checkpoint before it).
    result = run_sweep(tmp_path, points, start_format=2, checkpoints=None)
    assert result.points_reached == len(points)
    assert result.failed_present == 0, "\n".join(result.problems)
    assert result.lost_acknowledged == 0, "\n".join(result.problems)
    assert result.partial_in_flight == 0, "\n".join(result.problems)
    assert result.unknown >= 1  # the injected failure was reported as "unknown"
    assert result.problems == []
