"""nodes.server group commit, in process: one batch's outcomes, savepoints, disk failures."""


import pytest

from engine.session import Session
from engine.storage import group_commit, journal
from engine.storage.object_state import current_document
from tests.faults import disk_full
from tests.nodes.serverkit import prepared_server, run, session


@pytest.fixture
def server(tmp_path):
    return prepared_server(tmp_path / "data", "manamboara tahiry s", "ampiasao s",
                           "manamboara tabilao t (id ISA(0,100), anarana LAHATSORATRA(null,null))")


def table_file(server):
    return current_document(server.store.root / "s" / "tables" / "t.json")


def test_a_failing_statement_does_not_affect_the_others(server):
    a, b, c = session(server), session(server), session(server)
    before = table_file(server)["change"]
    responses = run(server, (a, "manampia ao@ t sanda (1, 'a')"),
                    (b, "manampia ao@ t sanda (500, 'out of domain')"),
                    (c, "manampia ao@ t sanda (3, 'c')"),
                    (b, "alaivo * ao@ tsy_misy"))
    assert [r.ok for r in responses] == [True, False, True, False]
    assert responses[1].message.startswith("Hadisoana : ")
    document = table_file(server)
    assert document["rows"] == [[1, "a"], [3, "c"]]
    assert document["change"] == before + 1  # one file write for the whole batch


def test_reads_in_a_batch_see_earlier_writes_of_the_batch(server):
    a, b = session(server), session(server)
    responses = run(server, (a, "manampia ao@ t sanda (7, 'fito')"),
                    (b, "alaivo anarana ao@ t rehefa id = 7"),
                    (a, "havaozy t ova anarana = 'FITO' rehefa id = 7"),
                    (b, "alaivo anarana ao@ t"),
                    (a, "manamboara tabilao u (x ISA(null,null))"),
                    (b, "manampia ao@ u sanda (1)"),
                    (a, "alaivo x ao@ u"))
    assert all(r.ok for r in responses), [r.message for r in responses]
    assert responses[1].relation.rows == [["fito"]]
    assert responses[3].relation.rows == [["FITO"]]
    assert responses[6].relation.rows == [[1]]
    assert table_file(server)["rows"] == [[7, "FITO"]]


def test_use_and_drop_database_in_one_batch(server):
    a, b = session(server), Session(server.store)
    responses = run(server, (b, "ampiasao s"), (b, "alaivo * ao@ t"),
                    (a, "ravao ny tahiry s"), (b, "alaivo * ao@ t"))
    assert [r.ok for r in responses] == [True, True, True, False]
    assert a.current_database is None
    assert server.store.list_databases() == []


def test_when_the_disk_refuses_the_batch_each_statement_gets_its_own_answer(server, monkeypatch):
    a, b = session(server), session(server)

    def no_space(path, data, durable=True):
        raise disk_full()

    monkeypatch.setattr(journal, "append_entry", lambda *args, **kwargs: no_space(None, None))
    monkeypatch.setattr(group_commit, "write_durable_temp", no_space)  # the batch
    responses = run(server, (a, "manampia ao@ t sanda (1, 'a')"),
                    (b, "alaivo * ao@ t"),
                    (b, "manampia ao@ t sanda (2, 'b')"))
    assert [r.ok for r in responses] == [False, True, False]
    assert "Tsy voasoratra" in responses[0].message
    assert responses[1].relation.rows == []  # never saw the write that failed
    monkeypatch.undo()
    assert table_file(server)["rows"] == []
    assert run(server, (a, "manampia ao@ t sanda (1, 'a')"))[0].ok
    assert table_file(server)["rows"] == [[1, "a"]]
