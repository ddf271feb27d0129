"""A lone writer's small inserts run on the server's event loop, durably; writers that overlap share commits.

nodes/server/node.py `_lone_write`: an insert of a few literal rows that
came alone to an idle connection, with no other connection writing, skips
the hand-over to the engine thread and back. What must hold: each one is
durable when acknowledged (a kill -9 right after loses none), pipelined or
overlapping writers still go to the engine thread in shared group commits,
and a big insert or a write behind a running statement never runs there.
"""

from __future__ import annotations

import threading
from time import monotonic

from engine.storage.peers import DirectoryLock
from nodes.client.connection import ServerConnection
from tests.conftest import wait_until
from tests.integration.faultkit import free_port, server_command, start_process, stop_process
from tests.integration.hardening_scenarios import LONG_QUERY, make_tables
from tests.integration.wire import WireClient, start_balanced_pair

SETUP = ("manamboara tahiry db;", "ampiasao db;",
         "manamboara tabilao t (id ISA(0,null), anarana LAHATSORATRA(null,null));")


def _set_up(port: int) -> None:
    with WireClient(port) as setup:
        for statement in SETUP:
            setup.ok(statement)


def _run_one_by_one(port: int, statements: list[str]) -> int:
    """Run `statements` on one connection, each answered before the next; how many ran alone."""
    with WireClient(port) as writer:
        writer.ok("ampiasao db;")
        before = writer.status()["lone_writes"]
        for statement in statements:
            writer.ok(statement)
        return writer.status()["lone_writes"] - before


def test_a_lone_writers_inserts_run_on_the_loop_and_survive_a_kill(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    _set_up(server.port)
    ran_alone = _run_one_by_one(server.port, [f"manampia ao@ t sanda ({key}, 'anarana {key}');"
                                              for key in range(40)])
    # The first two of a shape are parsed and learnt on the engine thread.
    assert ran_alone >= 35, ran_alone
    server.kill9()
    restarted = start_node("server", "m1", "--data", "data/m1", port=server.port)
    with WireClient(restarted.port) as reader:
        reader.ok("ampiasao db;")
        assert reader.rows("alaivo count(*), sum(id) ao@ t;") == [[40, sum(range(40))]]


def test_pipelined_and_overlapping_writers_share_group_commits(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    _set_up(server.port)
    before = WireClient(server.port).status()
    errors: list[str] = []

    def pipeline(first: int) -> None:
        with WireClient(server.port, timeout=60) as writer:
            writer.ok("ampiasao db;")
            statements = "".join(f"manampia ao@ t sanda ({key}, 'x');"
                                 for key in range(first, first + 300))
            errors.extend(answer.message for answer in writer.run(statements, 300) if not answer.ok)

    threads = [threading.Thread(target=pipeline, args=(first,)) for first in (0, 1000, 2000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    after = WireClient(server.port).status()
    statements = after["batched_statements"] - before["batched_statements"]
    batches = after["batches"] - before["batches"]
    assert statements >= 900 and batches < statements / 4, (statements, batches)
    assert after["lone_writes"] - before["lone_writes"] < 50, after["lone_writes"]
    with WireClient(server.port) as reader:
        reader.ok("ampiasao db;")
        assert reader.rows("alaivo count(*) ao@ t;") == [[900]]


def test_a_big_insert_never_runs_on_the_loop(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    _set_up(server.port)
    big = []
    for batch in range(4):
        rows = ", ".join(f"({batch * 1000 + key}, 'b')" for key in range(150))
        big.append(f"manampia ao@ t sanda {rows};")
    assert _run_one_by_one(server.port, big) == 0
    with WireClient(server.port) as reader:
        reader.ok("ampiasao db;")
        assert reader.rows("alaivo count(*) ao@ t;") == [[600]]


def test_a_lone_insert_behind_a_running_statement_waits_its_turn_and_the_loop_stays_free(start_node):
    """The engine thread holds the write lock through a long statement: a lone insert
    then goes to the engine thread (it never waits on the loop), and `.ping` is answered."""
    server = start_node("server", "m1", "--data", "data/m1")
    with WireClient(server.port, timeout=60) as setup:
        make_tables(setup, 2000, 2000)
        setup.ok("manamboara tabilao t (id ISA(0,null), anarana LAHATSORATRA(null,null));")
    busy = ServerConnection("127.0.0.1", server.port)
    with WireClient(server.port, timeout=60) as writer, WireClient(server.port, timeout=5) as prober:
        writer.ok("ampiasao db;")
        for key in range(3):   # the shape learnt: the next one may run alone
            writer.ok(f"manampia ao@ t sanda ({key}, 'a');")
        lone_before = prober.status()["lone_writes"]
        assert busy.request("ampiasao db;").ok
        busy.send_some(LONG_QUERY.encode())   # minutes of work, until its client leaves
        wait_until(lambda: _engine_running(prober), 10, "the long query running")
        writer.send(b"manampia ao@ t sanda (9, 'behind');")
        wait_until(lambda: _statements_waiting(prober) >= 2, 10, "the insert queued")
        assert "PONG" in prober.one(".ping;").message   # the loop is free
        busy.abort()   # a reset: the query stops at its next time test
        assert writer.read()[0].ok
        assert prober.status()["lone_writes"] == lone_before
        assert writer.rows("alaivo anarana ao@ t rehefa id = 9;") == [["behind"]]


def _statements_waiting(prober: WireClient) -> int:
    """Statements received and not yet answered by a batch (small reads and lone
    writes are answered at once; `batched_statements` counts lone writes too)."""
    status = prober.status()
    return status["statements"] - status["batched_statements"] - status["small_reads"]


def _engine_running(prober: WireClient) -> bool:
    return _statements_waiting(prober) >= 1


def test_a_lone_insert_never_waits_on_the_loop_for_a_commit_lock_held_elsewhere(start_node, tmp_path):
    """A peer's directory lock held (a replication copy in progress, or frozen): the
    insert waits for it on the engine thread, and the loop answers `.ping` meanwhile."""
    m1_dir, m2_dir = tmp_path / "m1", tmp_path / "m2"
    m2_dir.mkdir()
    server = start_node("server", "m1", "--data", str(m1_dir), "--peer", f"m2={m2_dir}")
    _set_up(server.port)
    with WireClient(server.port, timeout=30) as writer, WireClient(server.port, timeout=5) as prober:
        writer.ok("ampiasao db;")
        for key in range(3):   # the shape learnt: the next one may run alone
            writer.ok(f"manampia ao@ t sanda ({key}, 'a');")
        lone_before = prober.status()["lone_writes"]
        held = DirectoryLock(m2_dir)
        assert held.try_acquire()
        try:
            writer.send(b"manampia ao@ t sanda (9, 'behind');")
            wait_until(lambda: _statements_waiting(prober) >= 1, 10, "the insert queued")
            assert "PONG" in prober.one(".ping;").message   # the loop is free
        finally:
            held.release()
        assert writer.read()[0].ok
        assert prober.status()["lone_writes"] == lone_before
        writer.ok("manampia ao@ t sanda (10, 'alone again');")
        assert prober.status()["lone_writes"] == lone_before + 1


def test_a_lone_writer_through_the_balancer_runs_alone_on_the_owner(start_node):
    """With two servers the balancer sends `.versions` right behind each write (its
    read-your-writes check): an admin request behind a write leaves it alone."""
    m1, m2, lb = start_balanced_pair(start_node)
    with WireClient(lb.port) as writer:
        for statement in SETUP:
            writer.ok(statement)
        before = _lone_writes(m1, m2)
        for key in range(30):
            writer.ok(f"manampia ao@ t sanda ({key}, 'anarana {key}');")
        assert writer.rows("alaivo count(*) ao@ t;") == [[30]]
    ran_alone = _lone_writes(m1, m2) - before
    assert ran_alone >= 25, ran_alone


def _lone_writes(*servers) -> int:
    total = 0
    for server in servers:
        with WireClient(server.port) as probe:
            total += probe.status()["lone_writes"]
    return total


STALL_S = 3.0


def test_after_a_stalled_fsync_lone_inserts_go_to_the_engine_thread_until_a_commit_is_quick(tmp_path):
    """A disk whose fsync hangs (tests/integration/crashing_server.py `stall`): after the
    insert that met it (on the loop or not), the next one waits on the engine thread while
    `.ping` is answered, and inserts run alone again once a commit was quick."""
    port = free_port()
    command = server_command("m1", port, tmp_path / "data",
                             kill_at="stall-fsync:4@journal+stall-fsync:5@journal",
                             # (no idle checkpoint taking the write lock meanwhile)
                             server_args=("--checkpoint-idle-s", "600"),
                             harness_args=("--stall-s", str(STALL_S)))
    child = start_process(command, tmp_path / "m1.log", tmp_path, port)
    try:
        child.wait_ready()
        _set_up(port)
        with WireClient(port, timeout=30) as writer, WireClient(port, timeout=30) as prober:
            writer.ok("ampiasao db;")
            for key in range(1, 4):   # journal fsyncs 1-3; the shape learnt by the third
                writer.ok(f"manampia ao@ t sanda ({key}, 'a');")
            writer.ok("manampia ao@ t sanda (4, 'stalled');")   # fsync 4 stalls: a slow commit
            lone = prober.status()["lone_writes"]
            writer.send(b"manampia ao@ t sanda (5, 'stalled on the engine thread');")
            wait_until(lambda: "STALL stall-fsync:5@journal" in child.log_text(), 10,
                       "the fifth journal fsync stalling")
            started = monotonic()
            assert "PONG" in prober.one(".ping;").message
            assert monotonic() - started < STALL_S / 2   # not behind the stalled fsync
            assert writer.read()[0].ok
            assert prober.status()["lone_writes"] == lone
            # Quick commits again (on the engine thread): a lone insert runs alone again.
            key = 5
            while prober.status()["lone_writes"] == lone:
                key += 1
                assert key < 40, "inserts never ran alone again after quick commits"
                writer.ok(f"manampia ao@ t sanda ({key}, 'after');")
            assert writer.rows("alaivo count(*), sum(id) ao@ t;") == [[key, sum(range(key + 1))]]
    finally:
        stop_process(child)
