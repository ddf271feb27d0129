"""Fuzzing the account statements: passwords round-trip and never leak; rights never leak.

- any password, quoted as the language quotes, parses back exactly and is
  gone from the statement once `redact_secrets` went over it;
- mutated account statements parse or fail cleanly, and no error repeats
  the password;
- random sequences of account statements and data statements from random
  accounts: every outcome is a success or a catalogued error (never an
  internal one), a refused statement leaves every file as it was, and what
  an account can read is exactly what the rules give.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Session, Store, ensure_first_admin, redact_secrets, verify_login
from engine.errors import TahiryError
from engine.language import ast
from engine.language.messages import code_of
from engine.language.parser import StatementParser
from engine.storage import accounts

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SENTINEL = "Zq7"   # starts every generated password: easy to find in a text


def quoted(value: str, quote: str) -> str:
    return quote + value.replace("\\", "\\\\").replace(quote, quote + quote) + quote


passwords = st.text(min_size=0, max_size=40).map(lambda text: SENTINEL + text)


@FUZZ
@given(passwords, st.sampled_from(["'", '"']), st.booleans())
def test_any_password_round_trips_and_is_redacted(password, quote, create):
    if "\x00" in password or any("\ud800" <= c <= "\udfff" for c in password):
        return
    literal = quoted(password, quote)
    text = (f"manamboara mpampiasa rabe tenimiafina {literal} mpitantana;" if create
            else f"ovay ny tenimiafina rabe {literal};")
    statement = StatementParser().parse(text)
    assert isinstance(statement, (ast.CreateAccount, ast.SetPassword))
    assert statement.password == password
    assert SENTINEL not in repr(statement)
    redacted = redact_secrets(text)
    assert SENTINEL not in redacted and '"***"' in redacted
    assert redact_secrets("alaivo 1; " + text + " alaivo 2;").count('"***"') == 1


ACCOUNT_TEXTS = [
    'manamboara mpampiasa rabe tenimiafina "Zq7secret" mpitantana',
    "ovay ny tenimiafina rabe 'Zq7secret'",
    "omeo rabe zo manoratra ao@ sekoly",
    "esory rabe zo mamaky ao sekoly",
]
NOISE = ["", " ", ";", "'", '"', "ny", "mpampiasa", "tenimiafina", "zo", "ao@", "Qx",
         "'yy'", "mpitantana", "12", "--", "\n", "#", "@", "omeo", "x.y"]


@FUZZ
@given(st.sampled_from(ACCOUNT_TEXTS), st.data())
def test_mutated_account_statements_fail_cleanly_without_the_password(text, data):
    position = data.draw(st.integers(0, len(text)))
    span = data.draw(st.integers(0, 6))
    mutated = text[:position] + data.draw(st.sampled_from(NOISE)) + text[position + span:]
    try:
        StatementParser().parse(mutated)
    except TahiryError as error:
        assert SENTINEL not in error.message, (mutated, error.message)
        assert code_of(error.message) is not None, error.message


# ------------------------------------------------------------------ sessions

PASSWORD = "tsiambaratelo-1"
STUDENTS = ("rabe", "soa")
DATABASES = ("sekoly", "fianarana")


@pytest.fixture
def class_store(tmp_path, monkeypatch):
    monkeypatch.setattr(accounts, "SCRYPT_N", 2 ** 4)
    return tmp_path


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


ACTORS = ("mpampianatra", *STUDENTS)
STEPS = st.one_of(
    st.tuples(st.sampled_from(ACTORS), st.sampled_from(["omeo", "esory"]),
              st.sampled_from(STUDENTS), st.sampled_from(["mamaky", "manoratra"]),
              st.sampled_from(DATABASES)).map(
        lambda s: (s[0], f"{s[1]} {s[2]} zo {s[3]} ao@ {s[4]};")),
    st.tuples(st.sampled_from(ACTORS), st.sampled_from(DATABASES)).map(
        lambda s: (s[0], f"ampiasao {s[1]};")),
    st.tuples(st.sampled_from(ACTORS), st.sampled_from([
        "alaivo * ao@ t;", "manampia ao@ t sanda (1);", "fafao ao@ t;", "asehoy ny tabilao;",
        "asehoy ny tahiry;", "asehoy ny mpampiasa;", "ravao ny tabilao t;",
        "manamboara tabilao t (a ISA(0,9));", "alaivo count(*) ao@ t rehefa a = 1;"])),
    st.tuples(st.sampled_from(ACTORS), st.sampled_from(STUDENTS)).map(
        lambda s: (s[0], f'ovay ny tenimiafina {s[1]} "{PASSWORD}";')),
    st.tuples(st.sampled_from(ACTORS), st.sampled_from(DATABASES)).map(
        lambda s: (s[0], f"ravao ny tahiry {s[1]};")),
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(STEPS, max_size=25), st.integers(0, 10 ** 9))
def test_random_class_sessions_follow_the_rules(class_store, steps, seed):
    store = Store(class_store / f"data{seed}")
    ensure_first_admin(store, "mpampianatra", PASSWORD)
    teacher = Session(store, identity=verify_login(store, "mpampianatra", PASSWORD))
    for name in STUDENTS:
        teacher.execute(f'manamboara mpampiasa {name} tenimiafina "{PASSWORD}";')
    sessions = {"mpampianatra": teacher}
    for name, database in zip(STUDENTS, DATABASES, strict=True):
        sessions[name] = Session(store, identity=verify_login(store, name, PASSWORD))
        sessions[name].execute(f"manamboara tahiry {database}; ampiasao {database};"
                               "manamboara tabilao t (a ISA(0,9));")
    for actor, text in steps:
        session = sessions[actor]
        before = snapshot(store.root)
        outcome = session.execute_one(text)
        if not outcome.ok:
            code = code_of(outcome.message)
            assert code is not None and code != "internal_error", outcome.message
            if code.startswith("right_"):
                assert snapshot(store.root) == before, (actor, text)
        assert PASSWORD not in outcome.message
        changed = text.split()[3] if text.startswith("ovay ny tenimiafina") else None
        if outcome.ok and changed is not None and changed != actor:
            # Another's new password voids the account's session: the student logs in again.
            old = sessions[changed]
            assert code_of(old.execute_one("alaivo 1;").message) == "account_password_changed"
            sessions[changed] = Session(store, identity=verify_login(store, changed, PASSWORD))
        # What the account may see is what the rules say, after every step.
        if actor != "mpampianatra":
            seen = session.execute_one("asehoy ny tahiry;").relation.rows
            expected = [[db] for db in store.list_databases()
                        if store.database_owner(db) == actor
                        or store.read(db, "grant", actor) is not None]
            assert seen == expected


SEPARATORS = st.sampled_from([" ", "\n", "  ", "\t", " -- tenimiafina 'no'\n", " // c\n", "\n-- x\n"])


def _cased(word: str, flips: list[bool]) -> str:
    flips = (flips + [False] * len(word))[:len(word)]
    return "".join(c.upper() if flip else c for c, flip in zip(word, flips, strict=True))


@FUZZ
@given(passwords, st.sampled_from(["'", '"']), st.booleans(), st.lists(SEPARATORS, min_size=8,
       max_size=8), st.lists(st.booleans(), max_size=11))
def test_a_parsed_password_never_survives_redaction(password, quote, create, gaps, flips):
    """Whatever spaces and comments stand between the words, and whatever their case:
    when the statement parses, its password is gone from the redacted text."""
    if "\x00" in password or any("\ud800" <= c <= "\udfff" for c in password):
        return
    literal = quoted(password, quote)
    word = _cased("tenimiafina", flips)
    words = (["manamboara", "mpampiasa", "rabe", word, literal, "mpitantana"] if create
             else ["ovay", "ny", word, "rabe", literal])
    text = "".join(w + g for w, g in zip(words, gaps, strict=False)) + ";"
    statement = StatementParser().parse(text)
    assert statement.password == password
    assert SENTINEL not in redact_secrets(text)
