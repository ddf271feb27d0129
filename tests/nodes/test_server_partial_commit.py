"""nodes.server outcomes when a group commit fails after its first rename, or is fenced by a peer.

The server writes whole files here (journal writes off): the rename path
that creates, drops, views, domains and format 1 tables still take.
In process, real files: a statement whose file is in place and durable
succeeded; one whose file is in place but not confirmed durable is "outcome
unknown"; one whose file was never renamed failed; a batch fenced by a
peer's newer copy runs again one by one on top of that copy.
"""

import os
import shutil

import pytest

from engine.session import Session
from engine.storage import group_commit, journal
from engine.storage.peers import FixedPeers
from engine.storage.store import Store
from tests.faults import fail_on_call, io_error
from tests.nodes.serverkit import make_server, prepared_server, run, session, table_rows


@pytest.fixture
def server(tmp_path):
    return prepared_server(tmp_path / "data", "manamboara tahiry s", "ampiasao s",
                           "manamboara tabilao t (id ISA(0,100))",
                           "manamboara tabilao u (id ISA(0,100))", journal_writes=False)


def rows(server, table="t"):
    return [row[0] for row in table_rows(server.store.root, table)]


def test_folder_fsync_failing_after_the_rename_is_outcome_unknown_never_failed(server, monkeypatch):
    a, b = session(server), session(server)
    real = group_commit.fsync_folder
    monkeypatch.setattr(group_commit, "fsync_folder", lambda folder: (_ for _ in ()).throw(
        io_error()) if str(folder).endswith("tables") else real(folder))
    responses = run(server, (b, "alaivo * ao@ t"), (a, "manampia ao@ t sanda (1)"),
                    (b, "alaivo * ao@ t"), (b, "manampia ao@ t sanda (500)"))
    monkeypatch.undo()
    assert responses[0].ok and responses[0].relation.rows == []   # before any write: fine
    assert not responses[1].ok and "outcome unknown" in responses[1].message
    assert not responses[2].ok and "unknown" not in responses[2].message  # a read: no effect
    assert not responses[3].ok and "unknown" not in responses[3].message  # its own error
    assert rows(server) == [1]                                     # the write is in place
    assert run(server, (a, "alaivo * ao@ t"))[0].relation.rows == [[1]]


def test_a_second_rename_failing_splits_the_batch_by_file(server, monkeypatch):
    a, b = session(server), session(server)
    monkeypatch.setattr(os, "replace", fail_on_call(os.replace, 2, io_error()))
    responses = run(server, (a, "manampia ao@ t sanda (1)"), (b, "manampia ao@ u sanda (2)"),
                    (a, "manampia ao@ t sanda (3)"))
    monkeypatch.undo()
    assert [r.ok for r in responses] == [True, False, True]       # t renamed and durable
    assert "unknown" not in responses[1].message and "Tsy voasoratra" in responses[1].message
    assert rows(server) == [1, 3] and rows(server, "u") == []
    assert list(server.store.root.rglob(".*.tmp")) == []



def test_a_statement_that_read_a_write_whose_rename_failed_is_outcome_unknown(server, monkeypatch):
    """Whole files (renames cannot be taken back): statement 3 copied u's rows, the row of
    statement 2 among them, into t; t was renamed, u's rename failed. Statement 3 was
    answered done, though t held a row of a write answered as failed (the durability
    hunt, journal writes off). It read a write that did not land: outcome unknown."""
    a, b = session(server), session(server)
    monkeypatch.setattr(os, "replace", fail_on_call(os.replace, 2, io_error()))
    responses = run(server, (a, "manampia ao@ t sanda (1)"), (b, "manampia ao@ u sanda (2)"),
                    (a, "manampia ao@ t alaivo * ao@ u"), (b, "manampia ao@ t sanda (4)"))
    monkeypatch.undo()
    assert responses[0].ok and responses[3].ok                    # they read nothing of u
    assert not responses[1].ok and "unknown" not in responses[1].message
    assert not responses[2].ok and "outcome unknown" in responses[2].message
    assert rows(server) == [1, 2, 4] and rows(server, "u") == []

def test_a_journal_append_failing_after_another_leaves_no_write_of_the_batch_behind(
        tmp_path, monkeypatch):
    # A batch of three statements on two tables: t's journal entry (statements 1
    # and 3) is appended, then u's fails (a disk that refuses u's journal).
    # Statement 3 copied u's rows, the row of statement 2 included: left in
    # place, t held a row of a write answered as failed. The appended entry is
    # cut back instead, and the statements run again one by one.
    server = prepared_server(tmp_path / "data", "manamboara tahiry s", "ampiasao s",
                             "manamboara tabilao t (id ISA(0,100))",
                             "manamboara tabilao u (id ISA(0,100))",
                             "manampia ao@ t sanda (0)", "manampia ao@ u sanda (0)")
    a, b = session(server), session(server)
    real = journal.append_entry

    def refusing_u(path, line, applied=None):
        if path.name == "u.journal":
            raise io_error()
        return real(path, line, applied)

    monkeypatch.setattr(journal, "append_entry", refusing_u)
    responses = run(server, (a, "manampia ao@ t sanda (1)"), (b, "manampia ao@ u sanda (2)"),
                    (a, "manampia ao@ t alaivo * ao@ u rehefa id > 0"))
    monkeypatch.undo()
    assert not responses[1].ok and "unknown" not in responses[1].message
    assert rows(server, "u") == [0]                      # statement 2 did not happen ...
    assert 2 not in rows(server)                         # ... and nothing read it
    assert [r.ok for r in responses] == [True, False, True]
    assert rows(server) == [0, 1]
    assert run(server, (a, "alaivo * ao@ t"))[0].relation.rows == [[0], [1]]


def test_the_first_rename_failing_runs_the_statements_again_one_by_one(server, monkeypatch):
    a = session(server)
    monkeypatch.setattr(os, "replace", fail_on_call(os.replace, 1, io_error()))
    responses = run(server, (a, "manampia ao@ t sanda (1)"), (a, "manampia ao@ t sanda (2)"))
    monkeypatch.undo()
    assert [r.ok for r in responses] == [True, True]
    assert rows(server) == [1, 2]


def test_a_fenced_batch_runs_again_on_top_of_the_peers_copy(server, tmp_path):
    peer_root = tmp_path / "peer"
    shutil.copytree(server.store.root, peer_root)
    fenced = make_server(server.store.root, FixedPeers({"m2": peer_root}), journal_writes=False)
    peer = Session(Store(peer_root, peers=FixedPeers({"m1": server.store.root})))
    peer.current_database = "s"
    a = session(fenced)
    original_pull = fenced.store.pull_newer
    written_meanwhile = []

    def pull_then_peer_commits(*args):
        # The peer commits t between this server's pull and its commit.
        result = original_pull(*args)
        if args[1] == "table" and not written_meanwhile:
            written_meanwhile.append(peer.execute_one("manampia ao@ t sanda (2)"))
        return result

    fenced.store.pull_newer = pull_then_peer_commits
    responses = run(fenced, (a, "manampia ao@ t sanda (1)"))
    assert written_meanwhile[0].ok and responses[0].ok, responses[0].message
    assert rows(fenced) == [2, 1]                  # applied on top of the peer's write
    assert [row[0] for row in table_rows(peer_root)] == [2]
