"""Group commit in a real server process: concurrent writers, kill -9 right after the acknowledgements."""

from __future__ import annotations

import threading

import orjson

from engine.storage.object_state import current_document
from tests.integration.wire import WireClient

CONNECTIONS = 12
INSERTS_EACH = 15


def test_acknowledged_inserts_from_many_connections_survive_kill_9(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    with WireClient(server.port) as setup:
        for text in ("manamboara tahiry s;", "ampiasao s;",
                     "manamboara tabilao t (id ISA(null,null), avy ISA(null,null));",
                     "manamboara tabilao u (id ISA(null,null));"):
            assert setup.one(text).ok
    acknowledged: list[tuple[str, int]] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CONNECTIONS)

    def writer(index: int) -> None:
        try:
            with WireClient(server.port) as client:
                assert client.one("ampiasao s;").ok
                start.wait(10)
                for step in range(INSERTS_EACH):
                    row = index * 1000 + step
                    # Two tables, so batches dirty more than one file.
                    table = "t" if step % 3 else "u"
                    values = f"({row}, {index})" if table == "t" else f"({row})"
                    response = client.one(f"manampia ao@ {table} sanda {values};")
                    if not response.ok:
                        raise AssertionError(response.message)
                    with lock:
                        acknowledged.append((table, row))
        except Exception as error:  # reported below, not lost in the thread
            failures.append(repr(error))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert len(acknowledged) == CONNECTIONS * INSERTS_EACH
    with WireClient(server.port) as client:
        status = orjson.loads(client.one(".status;").message)
    server.kill9()

    data = server.workdir / "data" / "m1" / "s" / "tables"
    on_disk = {name: current_document(data / f"{name}.json") for name in ("t", "u")}
    for table, row in acknowledged:
        assert [row] == [r[0] for r in on_disk[table]["rows"] if r[0] == row]
    total = len(on_disk["t"]["rows"]) + len(on_disk["u"]["rows"])
    assert total == len(acknowledged)
    # Never more file writes than statements; every write bumped the counter.
    assert on_disk["t"]["change"] + on_disk["u"]["change"] <= 2 + len(acknowledged)
    assert status["batched_statements"] >= len(acknowledged)

    restarted = start_node("server", "m1b", "--data", "data/m1")
    with WireClient(restarted.port) as client:
        assert client.one("ampiasao s;").ok
        count_t = client.one("alaivo id ao@ t;").relation.rows
        count_u = client.one("alaivo id ao@ u;").relation.rows
    assert sorted(r[0] for r in count_t + count_u) == sorted(row for _, row in acknowledged)


def test_a_bad_statement_among_concurrent_writers_changes_nothing(start_node):
    server = start_node("server", "m1", "--data", "data/m1")
    with WireClient(server.port) as setup:
        for text in ("manamboara tahiry s;", "ampiasao s;",
                     "manamboara tabilao t (id ISA(0,1000));"):
            assert setup.one(text).ok
    results: dict[int, list[bool]] = {}
    start = threading.Barrier(6)

    def writer(index: int) -> None:
        with WireClient(server.port) as client:
            assert client.one("ampiasao s;").ok
            start.wait(10)
            outcome = []
            for step in range(10):
                # Odd writers send values outside the domain: always refused.
                value = index * 10 + step if index % 2 == 0 else 5000 + step
                outcome.append(client.one(f"manampia ao@ t sanda ({value});").ok)
            results[index] = outcome

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(all(results[i]) for i in (0, 2, 4))
    assert not any(any(results[i]) for i in (1, 3, 5))
    with WireClient(server.port) as client:
        assert client.one("ampiasao s;").ok
        rows = client.one("alaivo id ao@ t;").relation.rows
    assert sorted(r[0] for r in rows) == sorted(i * 10 + s for i in (0, 2, 4) for s in range(10))
