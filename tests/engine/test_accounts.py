"""The account statements and the rights checks, through sessions over one real data directory.

A teacher (administrator) and two students, as in a class: each student
owns what they create, sees and touches nothing else unless granted, and a
refused statement names the missing right and changes nothing (the files
are compared byte for byte). Without an identity everything behaves as
before accounts existed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine import Identity, Session, Store, ensure_first_admin, verify_login
from engine.evaluation.accounts import hash_ahead
from engine.language.messages import code_of, translate
from engine.storage import accounts

ADMIN = "mpampianatra"
PASSWORD = "tsiambaratelo-1"


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    # The cost is stored with each hash: a cheap one verifies like a real one.
    monkeypatch.setattr(accounts, "SCRYPT_N", 2 ** 4)


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "data")
    ensure_first_admin(store, ADMIN, PASSWORD)
    return store


@pytest.fixture
def teacher(store):
    return Session(store, identity=Identity(ADMIN, True))


def ok(session, text):
    outcomes = session.execute(text)
    assert outcomes and all(outcome.ok for outcome in outcomes), [o.message for o in outcomes]
    return outcomes[-1]


def fails(session, text, code):
    outcome = session.execute_one(text)
    assert not outcome.ok, outcome.message
    assert code_of(outcome.message) == code, outcome.message
    return outcome.message


def login(store, name, password=PASSWORD):
    identity = verify_login(store, name, password)
    assert identity is not None
    return Session(store, identity=identity)


@pytest.fixture
def students(store, teacher):
    ok(teacher, f'manamboara mpampiasa rabe tenimiafina "{PASSWORD}";'
                f'manamboara mpampiasa soa tenimiafina "{PASSWORD}";')
    rabe, soa = login(store, "rabe"), login(store, "soa")
    ok(rabe, "manamboara tahiry sekoly; ampiasao sekoly;"
             "manamboara tabilao naoty (id LAHATSORATRA(1,5), naoty ISA(0,20));"
             "manampia ao@ naoty sanda ('E1', 14), ('E2', 16);")
    ok(soa, "manamboara tahiry fianarana;")
    return rabe, soa


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


def rows(session, text):
    return ok(session, text).relation.rows


# ------------------------------------------------------------------ accounts


def test_an_account_is_created_logs_in_and_its_file_has_no_password(store, teacher):
    outcome = ok(teacher, f'manamboara mpampiasa rabe tenimiafina "{PASSWORD}";')
    assert outcome.message == "Ny mpampiasa : rabe dia voaforona soamantsara"
    assert verify_login(store, "rabe", PASSWORD) == Identity("rabe", False)
    data = (store.root / "@tahiry" / "accounts" / "rabe.json").read_bytes()
    assert PASSWORD.encode() not in data and b'"admin":false' in data


def test_an_administrator_account_and_the_account_list(store, teacher, students):
    ok(teacher, f'manamboara mpampiasa mpanampy tenimiafina "{PASSWORD}" mpitantana;')
    assert verify_login(store, "mpanampy", PASSWORD).admin is True
    ok(teacher, "omeo soa zo mamaky ao@ sekoly;")
    relation = ok(teacher, "asehoy ny mpampiasa;").relation
    assert [c.name for c in relation.columns] == ["mpampiasa", "mpitantana", "tompony", "zo"]
    assert relation.rows == [[ADMIN, "eny", "", ""], ["mpanampy", "eny", "", ""],
                             ["rabe", "tsia", "sekoly", ""],
                             ["soa", "tsia", "fianarana", "sekoly:mamaky"]]
    rabe, soa = students
    assert rows(soa, "asehoy ny mpampiasa;") == [["soa", "tsia", "fianarana", "sekoly:mamaky"]]


def test_account_statement_errors(store, teacher, students):
    fails(teacher, f'manamboara mpampiasa rabe tenimiafina "{PASSWORD}";', "account_exists")
    fails(teacher, 'manamboara mpampiasa koto tenimiafina "short";', "password_too_short")
    fails(teacher, "ravao ny mpampiasa tsisy;", "no_such_object")
    fails(teacher, f'ovay ny tenimiafina tsisy "{PASSWORD}";', "no_such_object")
    fails(teacher, "omeo tsisy zo mamaky ao@ sekoly;", "no_such_object")
    fails(teacher, "omeo rabe zo mamaky ao@ tsisy;", "no_such_database")
    fails(teacher, f"ravao ny mpampiasa {ADMIN};", "last_admin")
    fails(teacher, f'manamboara mpampiasa {"k" * 65} tenimiafina "{PASSWORD}";',
          "account_name_too_long")   # no `.login` could name it
    assert store.list_accounts() == [ADMIN, "rabe", "soa"]


def test_a_password_never_appears_in_an_error(teacher):
    for text in ['manamboara mpampiasa tenimiafina "sekret-123";',
                 "manamboara mpampiasa koto tenimiafina sekret-123;",
                 'ovay ny tenimiafina koto "sekret-123" "sekret-123";',
                 'omeo "sekret-123" zo mamaky ao@ x;',
                 'alaivo "x" "sekret-123" -- tenimiafina',
                 'manamboara mpampiasa koto tenimiafina "sekret-123" mpitantana x;']:
        outcome = teacher.execute_one(text)
        assert not outcome.ok and "sekret" not in outcome.message, outcome.message
        assert code_of(outcome.message) == "syntax", outcome.message


def test_changing_a_password(store, teacher, students):
    rabe, soa = students
    new = "vaovao-tsara-1"
    assert ok(rabe, f'ovay ny tenimiafina rabe "{new}";').message == \
        "Ny tenimiafin'ny mpampiasa : rabe dia voaova"
    assert verify_login(store, "rabe", PASSWORD) is None
    assert verify_login(store, "rabe", new) == Identity("rabe", False)
    before = snapshot(store.root)
    fails(soa, f'ovay ny tenimiafina rabe "{PASSWORD}";', "right_own_password_only")
    assert snapshot(store.root) == before
    ok(teacher, f'ovay ny tenimiafina rabe "{PASSWORD}";')  # the teacher resets it
    assert verify_login(store, "rabe", PASSWORD) is not None


def test_a_password_hashed_ahead_is_stored_as_it_is_and_only_for_its_own_statement(store, teacher):
    # What a server does: ask which password a statement sets, hash it (on another
    # thread), then run the statement with the hash.
    text = f'manamboara mpampiasa rabe tenimiafina "{PASSWORD}";'
    assert teacher.password_to_hash(text) == PASSWORD
    ahead = hash_ahead(PASSWORD)
    assert PASSWORD not in repr(ahead)
    ok_outcome = teacher.execute_one(text, ahead)
    assert ok_outcome.ok, ok_outcome.message
    assert store.read_account("rabe")["password"] == ahead.stored
    assert verify_login(store, "rabe", PASSWORD) == Identity("rabe", False)
    assert teacher.hashed_password is None   # kept for that statement only
    # A hash made for another password is not used: the statement hashes its own.
    new = "vaovao-tsara-1"
    assert teacher.execute_one(f'ovay ny tenimiafina rabe "{new}";', ahead).ok
    assert store.read_account("rabe")["password"] != ahead.stored
    assert verify_login(store, "rabe", new) is not None and verify_login(store, "rabe", PASSWORD) is None


@pytest.mark.parametrize("text", [
    "alaivo * ao@ tenimiafina;", "manamboara tabilao tenimiafina (x ISA(null,null));",
    'manamboara mpampiasa koto tenimiafina "short";', "ravao ny mpampiasa rabe;",
    'manamboara mpampiasa koto tenimiafina "sekret-123" mpitantana x;',
    f'ovay ny tenimiafina rabe "{PASSWORD}"; ovay ny tenimiafina soa "{PASSWORD}";',
    "-- " + "a long comment " * 300 + "\novay ny tenimiafina rabe 'sekret-123';"])
def test_no_password_to_hash_ahead_for_anything_else(teacher, text):
    assert teacher.password_to_hash(text) is None


def test_a_password_statement_behind_comments_is_hashed_ahead_too(teacher):
    text = "-- a comment first\n// and another\novay ny tenimiafina rabe 'sekret-123';"
    assert teacher.password_to_hash(text) == "sekret-123"


def test_no_password_to_hash_ahead_for_a_statement_the_account_may_not_run(store, students):
    rabe, _ = students
    assert rabe.password_to_hash(f'manamboara mpampiasa koto tenimiafina "{PASSWORD}";') is None
    assert rabe.password_to_hash(f'ovay ny tenimiafina soa "{PASSWORD}";') is None
    assert rabe.password_to_hash('  OVAY ny tenimiafina rabe "vaovao-tsara-1"') == "vaovao-tsara-1"
    # Without an identity (accounts off) everything is allowed, as when it runs.
    assert Session(store).password_to_hash(f'ovay ny tenimiafina soa "{PASSWORD}";') == PASSWORD


def test_only_an_administrator_creates_and_drops_accounts(store, students):
    rabe, _ = students
    before = snapshot(store.root)
    fails(rabe, f'manamboara mpampiasa koto tenimiafina "{PASSWORD}";', "right_admin_missing")
    fails(rabe, "ravao ny mpampiasa soa;", "right_admin_missing")
    fails(rabe, f'manamboara mpampiasa koto tenimiafina "{PASSWORD}" mpitantana;',
          "right_admin_missing")
    assert snapshot(store.root) == before


def test_a_dropped_account_loses_everything_at_once(store, teacher, students):
    rabe, soa = students
    ok(rabe, "omeo soa zo manoratra ao@ sekoly;")
    assert ok(teacher, "ravao ny mpampiasa soa;").message.startswith(
        "Ny mpampiasa : soa dia voafafa ; mbola eo amin'ny anarany ny tahiry : fianarana (")
    fails(soa, "alaivo 1;", "account_gone")
    assert verify_login(store, "soa", PASSWORD) is None
    assert store.read("sekoly", "grant", "soa") is None   # its grants are tombstoned
    # A new account of the same name starts with no rights.
    ok(teacher, f'manamboara mpampiasa soa tenimiafina "{PASSWORD}";')
    fails(login(store, "soa"), "ampiasao sekoly;", "right_read_missing")


def test_a_dropped_accounts_session_is_not_told_to_log_in_again_as_it(store, teacher,
                                                                       students):
    """"(midira indray)" (log in again) to a session whose account was dropped: no login
    as that name can work; it says to log in as another account, and how."""
    _, soa = students
    ok(teacher, "ravao ny mpampiasa soa;")
    message = fails(soa, "alaivo 1;", "account_gone")
    assert message == ("Hadisoana : Tsy misy intsony ny mpampiasa : soa (midira amin'ny "
                       "mpampiasa hafa : .login ANARANA \"...\"; na ./tahiry client --user "
                       "ANARANA)")
    assert translate(message, "en") == (
        "Error: The account soa no longer exists (log in as another account: .login NAME "
        "\"...\"; or ./tahiry client --user NAME)")


def test_dropping_an_account_names_the_databases_it_leaves_behind(store, teacher, students):
    """`ravao ny mpampiasa rabe;` left rabe's databases under the name without a word, for
    the next `rabe` to own: the answer now names them and what to do."""
    rabe, soa = students
    ok(rabe, "manamboara tahiry rabe_db;")
    assert ok(teacher, "ravao ny mpampiasa rabe;").message == (
        "Ny mpampiasa : rabe dia voafafa ; mbola eo amin'ny anarany ny tahiry : rabe_db, "
        "sekoly (ravao ny tahiry tsirairay raha tsy ilaina intsony ; raha tazonina, ny "
        "mpampiasa vaovao atao hoe rabe no ho tompony)")
    # An account that owns nothing: the message is as before.
    ok(teacher, f'manamboara mpampiasa koto tenimiafina "{PASSWORD}";')
    assert ok(teacher, "ravao ny mpampiasa koto;").message == "Ny mpampiasa : koto dia voafafa"


def test_a_new_password_ends_the_accounts_other_sessions(store, teacher, students):
    """A leaked password reset by the teacher must shut the intruder out, not only the
    next login; the session that changed its own password carries on."""
    rabe, _ = students
    intruder = login(store, "rabe")
    ok(rabe, 'ovay ny tenimiafina rabe "vaovao-tsara-1";')
    assert rows(rabe, "ampiasao sekoly; alaivo naoty ao@ naoty;") == [[14], [16]]
    assert fails(intruder, "alaivo 1;", "account_password_changed").startswith(
        "Hadisoana : Niova ny tenimiafin'ny mpampiasa : rabe (midira indray")
    fails(intruder, "ampiasao sekoly;", "account_password_changed")   # every statement
    ok(teacher, f'ovay ny tenimiafina rabe "{PASSWORD}";')   # the teacher resets it
    fails(rabe, "alaivo naoty ao@ naoty;", "account_password_changed")
    ok(login(store, "rabe"), "ampiasao sekoly; alaivo naoty ao@ naoty;")


def test_a_session_ended_by_a_reset_is_told_how_to_log_in_again(store, teacher, students):
    """`./tahiry accounts reset rabe` left rabe's open session with only "(midira indray)":
    the message now says how (in Malagasy; the English from the catalogue), never the
    password."""
    rabe, _ = students
    ok(teacher, 'ovay ny tenimiafina rabe "vaovao-tsara-1";')
    message = fails(rabe, "alaivo 1;", "account_password_changed")
    assert message == ("Hadisoana : Niova ny tenimiafin'ny mpampiasa : rabe (midira indray "
                       "amin'ny tenimiafina vaovao : .login rabe \"...\"; na ./tahiry client "
                       "--user rabe)")
    assert "vaovao-tsara-1" not in message and PASSWORD not in message
    assert translate(message, "en") == (
        "Error: The password of the account rabe changed (log in again with the new password: "
        ".login rabe \"...\"; or ./tahiry client --user rabe)")


def test_a_dropped_accounts_session_stays_dead_when_the_name_is_made_again(store, teacher,
                                                                            students):
    """Next term's `soa` is another person: the old `soa`'s open session must not act as
    them (it did, as an administrator when the new one was), even with the same password."""
    _, soa = students
    ok(teacher, "ravao ny mpampiasa soa;")
    fails(soa, "alaivo 1;", "account_gone")
    ok(teacher, f'manamboara mpampiasa soa tenimiafina "{PASSWORD}" mpitantana;')
    fails(soa, "asehoy ny mpampiasa;", "account_password_changed")
    fails(soa, "ampiasao sekoly;", "account_password_changed")
    assert login(store, "soa").identity.admin


# ------------------------------------------------------------------ ownership and rights


def test_each_student_sees_and_uses_only_their_own_databases(store, teacher, students):
    rabe, soa = students
    assert rows(rabe, "asehoy ny tahiry;") == [["sekoly"]]
    assert rows(soa, "asehoy ny tahiry;") == [["fianarana"]]
    assert rows(teacher, "asehoy ny tahiry;") == [["fianarana"], ["sekoly"]]
    assert store.database_owner("sekoly") == "rabe"
    before = snapshot(store.root)
    assert fails(soa, "ampiasao sekoly;", "right_read_missing") == \
        "Hadisoana : Tsy manana zo mamaky ny tahiry sekoly ianao"
    fails(soa, "ravao ny tahiry sekoly;", "right_owner_missing")
    fails(soa, "omeo soa zo manoratra ao@ sekoly;", "right_owner_missing")
    assert snapshot(store.root) == before


def test_a_session_left_in_a_database_is_refused_every_statement(store, teacher, students):
    """A session already in another's database (`ampiasao` before a revoke, or the
    balancer's replay) can neither read nor write there."""
    rabe, soa = students
    ok(rabe, "omeo soa zo manoratra ao@ sekoly;")
    ok(soa, "ampiasao sekoly;")
    ok(rabe, "esory soa zo mamaky ao@ sekoly;")
    before = snapshot(store.root)
    for text in ["alaivo * ao@ naoty;", "alaivo * ao@ naoty rehefa id = 'E1';",
                 "asehoy ny tabilao;", "asehoy ny tsanganana;", "asehoy ny jery;",
                 "asehoy ny efitra;", "asehoy ny tsanganana ao@ naoty;"]:
        fails(soa, text, "right_read_missing")
    for text in ["manampia ao@ naoty sanda ('E3', 1);", "havaozy naoty ova naoty = 0;",
                 "fafao ao@ naoty;", "manamboara tabilao t (a ISA(0,1));",
                 "manamboara jery j @ alaivo * ao@ naoty;", "ravao ny tabilao naoty;",
                 "manamboara efitra e (ISA(0,1));"]:
        fails(soa, text, "right_write_missing")
    assert snapshot(store.root) == before
    refused = soa.try_small_read("alaivo * ao@ naoty;", 100)
    assert not refused.ok and code_of(refused.message) == "right_read_missing"


def test_read_lets_read_but_not_write_and_a_revoke_counts_at_once(store, students):
    rabe, soa = students
    assert ok(rabe, "omeo soa zo mamaky ao@ sekoly;").message == \
        "Ny mpampiasa : soa dia manana zo mamaky ao amin'ny tahiry : sekoly"
    assert rows(soa, "asehoy ny tahiry;") == [["fianarana"], ["sekoly"]]
    ok(soa, "ampiasao sekoly;")
    for _ in range(3):  # the third runs by the statement's plan (engine/session.py)
        assert rows(soa, "alaivo naoty ao@ naoty rehefa id = 'E2';") == [[16]]
    assert soa.try_small_read("alaivo naoty ao@ naoty rehefa id = 'E2';", 100).relation.rows \
        == [[16]]
    before = snapshot(store.root)
    fails(soa, "manampia ao@ naoty sanda ('E3', 1);", "right_write_missing")
    fails(soa, "ravao ny tabilao naoty;", "right_write_missing")
    assert snapshot(store.root) == before
    assert ok(rabe, "esory soa zo mamaky ao@ sekoly;").message == \
        "Ny mpampiasa : soa dia tsy manana zo mamaky intsony ao amin'ny tahiry : sekoly"
    fails(soa, "alaivo naoty ao@ naoty rehefa id = 'E2';", "right_read_missing")
    refused = soa.try_small_read("alaivo naoty ao@ naoty rehefa id = 'E2';", 100)
    assert not refused.ok and code_of(refused.message) == "right_read_missing"
    assert rows(soa, "asehoy ny tahiry;") == [["fianarana"]]


def test_write_implies_read_and_taking_write_away_leaves_read(store, students):
    rabe, soa = students
    ok(rabe, "omeo soa zo manoratra ao@ sekoly;")
    ok(soa, "ampiasao sekoly; manampia ao@ naoty sanda ('E3', 11);")
    assert len(rows(soa, "alaivo * ao@ naoty;")) == 3
    ok(rabe, "omeo soa zo mamaky ao@ sekoly;")   # giving read keeps write
    assert store.read("sekoly", "grant", "soa")["right"] == "write"
    ok(rabe, "esory soa zo manoratra ao@ sekoly;")
    assert store.read("sekoly", "grant", "soa")["right"] == "read"
    fails(soa, "fafao ao@ naoty;", "right_write_missing")
    assert len(rows(soa, "alaivo * ao@ naoty;")) == 3


def test_a_grant_written_only_when_it_changes(store, students):
    rabe, _ = students
    ok(rabe, "omeo soa zo mamaky ao@ sekoly;")
    change = store.read("sekoly", "grant", "soa")["change"]
    ok(rabe, "omeo soa zo mamaky ao@ sekoly; esory soa zo manoratra ao@ sekoly;")
    assert store.read("sekoly", "grant", "soa")["change"] == change
    ok(rabe, "esory mpampianatra zo mamaky ao@ sekoly;")   # held nothing: nothing written
    assert store.read_raw("sekoly", "grant", "mpampianatra") is None


def test_the_owner_may_drop_and_the_grants_go_with_the_database(store, teacher, students):
    rabe, soa = students
    ok(rabe, "omeo soa zo mamaky ao@ sekoly;")
    ok(rabe, "ravao ny tahiry sekoly;")
    assert store.read_raw("sekoly", "grant", "soa")["dropped"] is True
    ok(soa, "manamboara tahiry sekoly;")   # now soa's, without rabe's old grants
    assert store.database_owner("sekoly") == "soa"
    fails(rabe, "ampiasao sekoly;", "right_read_missing")


def test_the_administrator_may_do_anything_anywhere(store, teacher, students):
    ok(teacher, "ampiasao sekoly; manampia ao@ naoty sanda ('E9', 9);")
    assert len(rows(teacher, "alaivo * ao@ naoty;")) == 3
    ok(teacher, "omeo soa zo mamaky ao@ sekoly; ravao ny tahiry fianarana;")
    assert rows(teacher, "asehoy ny tahiry;") == [["sekoly"]]


def test_a_database_made_without_accounts_belongs_to_nobody_but_the_admins(store, teacher):
    Session(store).execute_one("manamboara tahiry taloha;")
    assert store.database_owner("taloha") is None
    ok(teacher, f'manamboara mpampiasa rabe tenimiafina "{PASSWORD}";')
    rabe = login(store, "rabe")
    assert rows(rabe, "asehoy ny tahiry;") == []
    fails(rabe, "ampiasao taloha;", "right_read_missing")
    ok(teacher, "omeo rabe zo mamaky ao@ taloha;")
    ok(rabe, "ampiasao taloha;")


def test_a_missing_database_is_reported_as_before(students):
    rabe, _ = students
    fails(rabe, "ampiasao tsisy;", "no_such_database")
    fails(rabe, "ravao ny tahiry tsisy;", "no_such_database")


# ------------------------------------------------------------------ accounts off


def test_without_an_identity_everything_is_allowed_and_nothing_recorded(tmp_path):
    store = Store(tmp_path / "data")
    session = Session(store)
    ok(session, "manamboara tahiry s; ampiasao s; manamboara tabilao t (a ISA(0,9));"
                "manampia ao@ t sanda (1);")
    marker = (store.root / "s" / "database.json").read_bytes()
    assert b"owner" not in marker
    assert not (store.root / "@tahiry").exists()
    assert not (store.root / "s" / "grants").exists()
    # The account statements are allowed too (an operator's embedded session).
    ok(session, f'manamboara mpampiasa rabe tenimiafina "{PASSWORD}" mpitantana;')
    assert rows(session, "asehoy ny mpampiasa;") == [["rabe", "eny", "", ""]]
    assert os.path.exists(store.root / "@tahiry" / "accounts" / "rabe.json")
    assert rows(session, "asehoy ny tahiry;") == [["s"]]   # the accounts folder is no database


def test_on_a_servers_store_a_revoke_written_by_another_process_counts_at_once(tmp_path):
    """A server's store (inotify) keeps rights decisions by the rights generation: a
    grant, a revoke, a dropped account or a new owner written by another process
    (replication) is seen by the very next statement, plan and small read included."""
    root = tmp_path / "data"
    server = Store(root, watch_folders=True)
    other = Store(root)   # what replication writes through
    ensure_first_admin(server, ADMIN, PASSWORD)
    teacher = Session(other, identity=Identity(ADMIN, True))
    ok(teacher, f'manamboara mpampiasa rabe tenimiafina "{PASSWORD}";'
                f'manamboara mpampiasa soa tenimiafina "{PASSWORD}";')
    ok(Session(other, identity=Identity("rabe", False)),
       "manamboara tahiry sekoly; ampiasao sekoly; manamboara tabilao t (a ISA(0,9));"
       "manampia ao@ t sanda (1), (2); omeo soa zo mamaky ao@ sekoly;")
    soa = Session(server, identity=Identity("soa", False))
    ok(soa, "ampiasao sekoly;")
    query = "alaivo a ao@ t rehefa a = 2;"
    for _ in range(4):
        assert rows(soa, query) == [[2]]
        assert soa.try_small_read(query, 100).relation.rows == [[2]]
    ok(teacher, "esory soa zo mamaky ao@ sekoly;")
    fails(soa, query, "right_read_missing")
    assert code_of(soa.try_small_read(query, 100).message) == "right_read_missing"
    ok(teacher, "omeo soa zo mamaky ao@ sekoly;")
    assert soa.try_small_read(query, 100).relation.rows == [[2]]
    ok(teacher, "ravao ny mpampiasa soa;")
    assert code_of(soa.try_small_read(query, 100).message) == "account_gone"


def test_every_statement_kind_has_its_right_written_down_and_an_unknown_one_needs_an_admin():
    import typing

    from engine.evaluation import rights
    from engine.language import ast

    def kinds(union) -> list[type]:
        found = []
        for member in typing.get_args(union) or (union,):
            found.extend(kinds(member) if typing.get_args(member) else [member])
        return found

    for kind in kinds(ast.Statement):
        assert kind in rights.READS + rights.WRITES or kind in (
            ast.Show, ast.Use, ast.Drop, ast.Grant, ast.CreateAccount, ast.DropAccount,
            ast.SetPassword, ast.CreateDatabase, ast.ShowAccounts), kind

    class NewStatement:   # a kind added to the language and forgotten here
        pass
    assert rights.needed(NewStatement(), "db") == (rights.ADMIN_ONLY, None)


def test_a_blank_password_and_a_grant_to_the_owner_are_refused(store, teacher, students):
    rabe, _ = students
    before = snapshot(store.root)
    assert fails(teacher, 'manamboara mpampiasa hery tenimiafina "        ";', "password_blank") \
        == "Hadisoana : Tsy azo atao elanelana fotsiny ny tenimiafina"
    fails(rabe, 'ovay ny tenimiafina rabe " \t      \t";', "password_blank")
    assert fails(rabe, "omeo rabe zo manoratra ao@ sekoly;", "grant_to_owner") == \
        "Hadisoana : Ny mpampiasa : rabe no tompon'ny tahiry : sekoly (manana ny zo rehetra ao izy)"
    fails(rabe, "esory rabe zo mamaky ao@ sekoly;", "grant_to_owner")   # said it took it away
    assert snapshot(store.root) == before
