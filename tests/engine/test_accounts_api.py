"""The accounts API other packages use (engine/__init__.py): logins, the first administrator,
redaction of passwords and the rights generation, on real data directories."""

from __future__ import annotations

import threading

import orjson
import pytest

import engine
from engine import (
    Identity,
    Session,
    Store,
    ensure_first_admin,
    redact_secrets,
    rights_generation,
    verify_login,
)
from engine.errors import TahiryError
from engine.storage import accounts
from engine.storage import rights_generation as rights
from engine.storage.object_format import check_document
from engine.storage.peers import FixedPeers

PASSWORD = "tsiambaratelo-1"


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "data")


def account_file(store, name):
    return store.root / "@tahiry" / "accounts" / f"{name}.json"


def test_the_api_is_exported_from_the_package():
    for name in ("Identity", "verify_login", "ensure_first_admin", "redact_secrets",
                 "rights_generation"):
        assert name in engine.__all__ and getattr(engine, name) is not None


def test_the_first_admin_is_created_once_and_logs_in(store):
    assert ensure_first_admin(store, "mpampianatra", PASSWORD) is True
    assert ensure_first_admin(store, "mpampianatra", "another-password") is False
    assert ensure_first_admin(store, "other", PASSWORD) is False  # an account exists
    assert store.list_accounts() == ["mpampianatra"]
    assert verify_login(store, "mpampianatra", PASSWORD) == Identity("mpampianatra", True)
    assert verify_login(store, "mpampianatra", "another-password") is None


def test_the_account_file_holds_a_salted_scrypt_hash_never_the_password(store):
    ensure_first_admin(store, "mpampianatra", PASSWORD)
    data = account_file(store, "mpampianatra").read_bytes()
    assert PASSWORD.encode() not in data
    document = check_document(data, "x", "account", "mpampianatra")
    stored = document["password"]
    assert (stored["scheme"], stored["n"], stored["r"], stored["p"]) == ("scrypt", 2 ** 14, 8, 1)
    assert len(bytes.fromhex(stored["salt"])) == 16
    assert document["admin"] is True and document["change"] == 1


def test_two_accounts_with_one_password_have_different_salts_and_hashes():
    first, second = accounts.hash_password(PASSWORD), accounts.hash_password(PASSWORD)
    assert first["salt"] != second["salt"] and first["hash"] != second["hash"]
    assert accounts.password_matches(first, PASSWORD)
    assert not accounts.password_matches(first, PASSWORD + "x")


@pytest.mark.parametrize("name, password", [
    ("nobody", PASSWORD), ("../etc", PASSWORD), ("", PASSWORD), ("mpampianatra", ""),
    ("mpampianatra", None), (None, PASSWORD), ("mpampianatra", PASSWORD.upper()),
])
def test_a_failed_login_is_none_and_costs_one_hash_like_a_good_one(store, monkeypatch, name,
                                                                      password):
    ensure_first_admin(store, "mpampianatra", PASSWORD)
    calls = []
    real = accounts._scrypt
    monkeypatch.setattr(accounts, "_scrypt", lambda *args: calls.append(args[2:]) or real(*args))
    assert verify_login(store, name, password) is None
    # The same cost as a real check: one scrypt at the default cost (no user enumeration).
    assert calls == [(accounts.SCRYPT_N, accounts.SCRYPT_R, accounts.SCRYPT_P)]


def test_a_stored_hash_with_an_absurd_cost_is_refused_not_computed(store, monkeypatch):
    ensure_first_admin(store, "mpampianatra", PASSWORD)
    stored = dict(store.read_account("mpampianatra")["password"], n=2 ** 30)
    calls = []
    real = accounts._scrypt
    monkeypatch.setattr(accounts, "_scrypt", lambda *args: calls.append(args[2]) or real(*args))
    assert accounts.password_matches(stored, PASSWORD) is False
    assert calls == [accounts.SCRYPT_N]


@pytest.mark.parametrize("password", ["short", "x" * 1025])
def test_a_bad_first_password_is_refused_and_nothing_is_written(store, password):
    with pytest.raises(TahiryError, match="tenimiafina"):
        ensure_first_admin(store, "mpampianatra", password)
    assert store.list_accounts() == []


def test_a_bad_admin_name_is_refused(store):
    with pytest.raises(TahiryError, match="mpampiasa"):
        ensure_first_admin(store, "../x", PASSWORD)


def test_two_servers_creating_the_first_admin_at_once_end_with_one_account(tmp_path):
    """Certified: the second commit is fenced, runs again, pulls the first's account."""
    a_root, b_root = tmp_path / "a", tmp_path / "b"
    a_root.mkdir()
    b_root.mkdir()
    a = Store(a_root, peers=FixedPeers({"b": b_root}), lock_timeout_s=2)
    b = Store(b_root, peers=FixedPeers({"a": a_root}), lock_timeout_s=2)
    results = {}
    start = threading.Barrier(2)

    def run(name, store):
        start.wait()
        results[name] = ensure_first_admin(store, "mpampianatra", PASSWORD + name)

    threads = [threading.Thread(target=run, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results.values()) == [False, True]
    winner = "a" if results["a"] else "b"
    # Both directories hold the winner's account (the loser pulled it), one version.
    copies = [orjson.loads(account_file(s, "mpampianatra").read_bytes()) for s in (a, b)
              if account_file(s, "mpampianatra").exists()]
    assert len({orjson.dumps(c) for c in copies}) == 1
    for store in (a, b):
        if account_file(store, "mpampianatra").exists():
            assert verify_login(store, "mpampianatra", PASSWORD + winner) is not None


def test_a_session_has_no_identity_unless_given(store):
    assert Session(store).identity is None
    identity = Identity("rabe", False)
    assert Session(store, identity=identity).identity is identity


@pytest.mark.parametrize("text, redacted", [
    ('manamboara mpampiasa rabe tenimiafina "ab cd;ef" mpitantana;',
     'manamboara mpampiasa rabe tenimiafina "***" mpitantana;'),
    ("ovay ny tenimiafina rabe 'it''s \\' x';", 'ovay ny tenimiafina rabe "***";'),
    ('OVAY NY TeniMiafina rabe "unterminated', 'OVAY NY TeniMiafina rabe "***"'),
    ("manamboara mpampiasa rabe tenimiafina bare_word;",
     'manamboara mpampiasa rabe tenimiafina "***";'),
    ('alaivo 1; ovay ny tenimiafina a "p1"; ovay ny tenimiafina b "p2";',
     'alaivo 1; ovay ny tenimiafina a "***"; ovay ny tenimiafina b "***";'),
    ("alaivo * ao@ t rehefa a = 'x';", "alaivo * ao@ t rehefa a = 'x';"),
    ("", ""),
])
def test_redact_secrets_replaces_every_password_literal(text, redacted):
    assert redact_secrets(text) == redacted


def test_redact_secrets_returns_a_text_without_accounts_as_it_is():
    text = "manampia ao@ t sanda " + ", ".join(f"({i}, 'x')" for i in range(10_000)) + ";"
    assert redact_secrets(text) is text


def test_the_rights_generation_grows_with_accounts_grants_and_owners(store):
    seen = [rights_generation(store)]

    def moved():
        seen.append(rights_generation(store))
        return seen[-1] > seen[-2]

    ensure_first_admin(store, "mpampianatra", PASSWORD)
    assert moved()
    store.write_account("rabe", accounts.account_body(PASSWORD, admin=False))
    assert moved()
    store.create_database("sekoly", owner="rabe")
    assert moved()
    store.write("sekoly", "grant", "mpampianatra", {"right": "read"})
    assert moved()
    store.write("sekoly", "grant", "mpampianatra", {"right": "write"})
    assert moved()
    store.write("sekoly", "table", "t", {"columns": [], "rows": []})
    assert not moved()      # data is not rights
    store.drop_database("sekoly")   # the marker and the grant tombstoned
    assert moved()
    store.write_account("rabe", None)
    assert moved()
    assert rights_generation(store) == seen[-1]   # nothing changed: the same number


@pytest.mark.parametrize("watch_folders", [False, True])
def test_the_rights_generation_sees_another_process_write_at_once(tmp_path, watch_folders,
                                                                   monkeypatch):
    """A server's store answers from memory while its folders are quiet; a file that
    replication (here: another store) puts in place is counted by the very next call,
    even in a folder that did not exist when the number was last counted."""
    monkeypatch.setattr(rights, "SIGNATURE_AGE_S", 0.0)   # trust every signature at once
    reader = Store(tmp_path / "data", watch_folders=watch_folders)
    writer = Store(tmp_path / "data")
    ensure_first_admin(writer, "mpampianatra", PASSWORD)
    writer.create_database("sekoly", owner="mpampianatra")
    seen = rights_generation(reader)
    for _ in range(3):
        assert rights_generation(reader) == seen   # quiet: the same number (from memory)
    steps = [
        lambda: writer.write("sekoly", "grant", "rabe", {"right": "read"}),   # new grants folder
        lambda: writer.write("sekoly", "table", "t", {"columns": [], "rows": []}),   # not rights
        lambda: writer.write("sekoly", "grant", "rabe", {"right": "write"}),
        lambda: writer.create_database("fianarana", owner="rabe"),            # new database
        lambda: writer.write_account("rabe", accounts.account_body(PASSWORD, admin=False)),
        lambda: writer.drop_database("fianarana"),
    ]
    for number, step in enumerate(steps):
        step()
        now = rights_generation(reader)
        assert (now > seen) == (number != 1), number
        seen = now
    fresh = Store(tmp_path / "data")   # another server holding the same files: the same number
    assert rights_generation(fresh) == seen


def test_the_nodes_login_texts_are_in_the_catalogue():
    from engine.language.messages import code_of, translate
    from nodes.protocol import login

    assert code_of(login.LOGIN_REFUSED) == "login_refused"
    assert translate(login.LOGIN_REQUIRED, "en") == \
        'Error: You are not logged in: send `.login <name> "<password>";` first'

    assert translate(login.LOGIN_LOCKED.format(seconds=12), "en").endswith("try again in 12 s")
    assert code_of(login.LOGIN_BUSY) == "login_busy"
    assert translate(login.LOGIN_MALFORMED.format(why="no name"), "en") == \
        'Error: Malformed login: no name; expected `.login <name> "<password>";`'


@pytest.mark.parametrize("name, malagasy", [
    ("LOGIN_REQUIRED", 'Tsy mbola niditra ianao : alefaso aloha ny `.login <anarana> '
                       '"<tenimiafina>";`'),
    ("LOGIN_REFUSED", "Diso ny anarana na ny tenimiafina : nakatona ny fifandraisana"),
    ("LOGIN_LOCKED", "Voasakana vetivety ny fidirana : diso imbetsaka loatra ny fidirana avy "
                     "amin'ity adiresy ity ; andramo indray afaka 12 s"),
    ("LOGIN_BUSY", "Be loatra ny fanandramana fidirana amin'ity node ity izao : nakatona ny "
                   "fifandraisana, andramo indray afaka kelikely"),
    ("LOGIN_MALFORMED", 'Tsy mety ny fidirana : `.login <anarana> "<tenimiafina>";` no '
                        "andrasana"),
])
def test_the_nodes_login_texts_say_it_all_in_malagasy_then_in_english(name, malagasy):
    """"Tsy mbola niditra ianao (login required): send `.login ...` first": what to do was
    said in English only. As the nodes' other texts (`Tsy ilaina ny fidirana eto (accounts
    are off on this node: login not needed)`), the Malagasy sentence is whole and the
    English follows it in parentheses; `--lang en` shows the English alone."""
    from engine.language.messages import translate
    from nodes.protocol import login

    text = getattr(login, name).format(seconds=12, why="no name")
    assert text.startswith(f"Hadisoana : {malagasy} ("), text
    assert text.endswith(")")
    assert "Hadisoana" not in translate(text, "en") and malagasy not in translate(text, "en")


@pytest.mark.parametrize("text, redacted", [
    ('ovay ny tenimiafina rabe -- a comment\n "pw1";', 'ovay ny tenimiafina rabe -- a comment\n "***";'),
    ('ovay ny -- x\n tenimiafina rabe "pw3"', 'ovay ny -- x\n tenimiafina rabe "***"'),
    ("manamboara mpampiasa rabe tenimiafina p@ss-w0rd! mpitantana",
     'manamboara mpampiasa rabe tenimiafina "***" mpitantana'),
    ("ovay ny tenimiafina secret6", 'ovay ny tenimiafina "***"'),
    ("ovay ny tenimiafina rabe 12345678;", 'ovay ny tenimiafina rabe "***";'),
    ('manamboara mpampiasa rabe tenimiafina "a;b" mpitantana; alaivo "x";',
     'manamboara mpampiasa rabe tenimiafina "***" mpitantana; alaivo "x";'),
    ("alaivo * ao@ t rehefa a = 'tenimiafina'; -- tenimiafina 'x'",
     "alaivo * ao@ t rehefa a = 'tenimiafina'; -- tenimiafina 'x'"),
])
def test_redact_secrets_reads_tokens_as_the_lexer_does(text, redacted):
    assert redact_secrets(text) == redacted


def test_a_long_text_holding_the_word_is_cut_after_it():
    rows = ", ".join(f"({i}, 'x{i}')" for i in range(10_000))
    text = f"manampia ao@ t sanda {rows}; ovay ny tenimiafina rabe \"secret-99\";"
    redacted = redact_secrets(text)
    assert "secret-99" not in redacted and redacted.startswith(text[:1000])
    assert redacted.endswith('tenimiafina "***" (...)')
