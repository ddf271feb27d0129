"""Accounts and grants between two servers' data directories: certified, pulled, copied.

The store's pull on write and commit fence (docs/STORAGE.md, "Peers") and
the replicator's shipping (engine/storage/object_copy.py, what
supervisor/replication.py calls) treat account and grant files like any
object: a statement on one server lands on top of the other's newer copy,
never beside it.
"""

from __future__ import annotations

import pytest

from engine import Identity, Session, Store, verify_login
from engine.language.messages import code_of
from engine.storage import accounts
from engine.storage.object_copy import bring_up_to_date
from engine.storage.object_format import kind_and_name, object_relpath
from engine.storage.object_state import version_of
from engine.storage.peers import DirectoryLock, FixedPeers

PASSWORD = "tsiambaratelo-1"
ADMIN = Identity("mpampianatra", True)


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    monkeypatch.setattr(accounts, "SCRYPT_N", 2 ** 4)


@pytest.fixture
def pair(tmp_path):
    a_root, b_root = tmp_path / "a", tmp_path / "b"
    a_root.mkdir()
    b_root.mkdir()
    a = Store(a_root, peers=FixedPeers({"b": b_root}), lock_timeout_s=0.5)
    b = Store(b_root, peers=FixedPeers({"a": a_root}), lock_timeout_s=0.5)
    assert accounts.ensure_first_admin(a, ADMIN.name, PASSWORD)
    # b pulls a's accounts before deciding that none exists: it creates nothing.
    assert not accounts.ensure_first_admin(b, ADMIN.name, "another-password")
    assert (b.root / "@tahiry" / "accounts" / "mpampianatra.json").read_bytes() == \
        (a.root / "@tahiry" / "accounts" / "mpampianatra.json").read_bytes()
    return a, b


def ok(session, text):
    outcome = session.execute_one(text)
    assert outcome.ok, outcome.message
    return outcome


def test_the_object_paths_of_accounts_and_grants():
    assert object_relpath(["@tahiry", "accounts", "rabe.json"]) == "@tahiry/accounts/rabe.json"
    assert object_relpath(["db", "grants", "rabe.json"]) == "db/grants/rabe.json"
    assert kind_and_name("@tahiry/accounts/rabe.json") == ("account", "rabe")
    assert kind_and_name("db/grants/rabe.json") == ("grant", "rabe")
    # Accounts live in the system folder only, and nothing else lives there.
    assert object_relpath(["db", "accounts", "rabe.json"]) is None
    assert object_relpath(["@tahiry", "tables", "t.json"]) is None
    assert object_relpath(["@tahiry", "database.json"]) is None


def test_a_password_changed_on_the_other_server_lands_on_top_of_the_newest_copy(pair):
    a, b = pair
    ok(Session(a, identity=ADMIN), f'manamboara mpampiasa rabe tenimiafina "{PASSWORD}";')
    # b never saw rabe (no replication here): its statement pulls a's copy first.
    assert b.read_account("rabe") is None
    ok(Session(b, identity=ADMIN), 'ovay ny tenimiafina rabe "vaovao-tsara";')
    assert b.read_account("rabe")["change"] == 2
    assert verify_login(b, "rabe", "vaovao-tsara") == Identity("rabe", False)
    # And creating it again on b sees it exists.
    outcome = Session(b, identity=ADMIN).execute_one(
        f'manamboara mpampiasa rabe tenimiafina "{PASSWORD}";')
    assert code_of(outcome.message) == "account_exists"


def test_a_grant_on_the_other_server_continues_the_counter(pair):
    a, b = pair
    teacher_a, teacher_b = Session(a, identity=ADMIN), Session(b, identity=ADMIN)
    ok(teacher_a, f'manamboara mpampiasa rabe tenimiafina "{PASSWORD}";')
    for store in (a, b):   # the balancer sends it to every server
        ok(Session(store, identity=ADMIN), "manamboara tahiry sekoly;")
    ok(teacher_a, "omeo rabe zo manoratra ao@ sekoly;")
    ok(teacher_b, "esory rabe zo manoratra ao@ sekoly;")
    grant = b.read("sekoly", "grant", "rabe")
    assert (grant["right"], grant["change"]) == ("read", 2)
    # The marker written on both sides is one version (the same bytes).
    assert (a.root / "sekoly" / "database.json").read_bytes() == \
        (b.root / "sekoly" / "database.json").read_bytes()


def test_the_replicator_ships_accounts_and_grants_like_any_object(pair):
    a, b = pair
    teacher = Session(a, identity=ADMIN)
    ok(teacher, f'manamboara mpampiasa rabe tenimiafina "{PASSWORD}"; manamboara tahiry sekoly;'
                "omeo rabe zo mamaky ao@ sekoly;")
    lock = DirectoryLock(b.root)
    try:
        for rel in ("@tahiry/accounts/rabe.json", "sekoly/database.json",
                    "sekoly/grants/rabe.json"):
            assert bring_up_to_date(a.root, b.root, rel, lock, durable=False)
            assert version_of(b.root, rel) == version_of(a.root, rel)
        # Never backwards: b already holds the administrator's version.
        assert not bring_up_to_date(a.root, b.root, "@tahiry/accounts/mpampianatra.json", lock,
                                    durable=False)
    finally:
        lock.close()
    rabe = Identity("rabe", False)
    assert verify_login(b, "rabe", PASSWORD) == rabe
    assert accounts.access(b, rabe, "sekoly") == "read"
    assert Session(b, identity=rabe).execute_one("asehoy ny tahiry;").relation.rows == \
        [["sekoly"]]
