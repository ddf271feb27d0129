"""`python -m supervisor accounts ...` (supervisor/accounts.py) in-process.

The class file's checks, the passwords, the out-file (0600, atomic, never
replacing a file) and the create/reset flows against a stand-in connection
(the driver's place; the real cluster is tests/integration/test_accounts_class.py).
"""

from __future__ import annotations

import argparse
import csv
import stat
from pathlib import Path

import pytest

from nodes.client.driver import OperationalError, ProgrammingError
from supervisor import accounts
from supervisor.accounts import (
    ALPHABET,
    AccountsCommandError,
    PrivateFile,
    cmd_accounts,
    new_password,
    read_names,
)
from supervisor.first_admin import ADMIN_PASSWORD_ENV
from supervisor.topology import parse_topology

TOPOLOGY = """\
supervisor:
  control_port: 4947
nodes:
  m1: {kind: server, host: 127.0.0.1, port: 4948, data: data/m1}
  lb: {kind: balancer, host: 127.0.0.1, port: 4949}
"""
ADMIN_PW = "teacher's own password"


def topology(tmp_path: Path, extra: str = "accounts: {admin: rakoto}\n"):
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY + extra)
    return parse_topology(path.read_text(), path, {})


class StandIn:
    """A connection that answers like a server with accounts: it records every statement."""

    def __init__(self, existing=("rakoto",), refuse=(), lose_at=None):
        self.existing = set(existing)
        self.refuse = set(refuse)
        self.lose_at = lose_at
        self.statements: list[str] = []
        self.closed = False
        self.rows: list[tuple] = []

    def cursor(self):
        return self

    def execute(self, statement: str):
        self.statements.append(statement)
        if statement == accounts.LIST_ACCOUNTS:
            self.rows = [(name,) for name in sorted(self.existing)]
            return self
        name = statement.split()[2] if statement.startswith("manamboara") else statement.split()[3]
        if name == self.lose_at:
            raise OperationalError("the node closed the connection")
        if name in self.refuse:
            raise ProgrammingError("Hadisoana : refused")
        if statement.startswith("ovay") and name not in self.existing:
            raise ProgrammingError(f"Hadisoana : Tsy misy ny mpampiasa : {name}")
        self.existing.add(name)
        return self

    def fetchall(self):
        return self.rows

    def close(self):
        self.closed = True


@pytest.fixture
def stand_in(monkeypatch):
    made: list[tuple[str, str, StandIn]] = []
    connection = StandIn()

    def connect_as(topology, user, password):
        made.append((user, password, connection))
        return connection
    monkeypatch.setattr(accounts, "connect_as", connect_as)
    connection.made = made
    return connection


def args(action: str, **values) -> argparse.Namespace:
    return argparse.Namespace(action=action, user=None, **values)


def test_passwords_are_strong_and_different():
    seen = {new_password() for _ in range(200)}
    assert len(seen) == 200
    for password in seen:
        groups = password.split("-")
        assert [len(g) for g in groups] == [5, 5, 5] and set("".join(groups)) <= set(ALPHABET)
    assert not set("0O1lI") & set(ALPHABET)


def test_a_class_file_gives_its_names_skipping_header_comments_and_blank_lines(tmp_path):
    names = tmp_path / "names.csv"
    names.write_text("\ufeffname,full name\nrabe,Rabe Koto\n\n# absent today\nsoa\n  naivo  ,x\n")
    assert read_names(names).names == ["rabe", "soa", "naivo"]
    assert read_names(names).problems == []


def test_a_class_file_saved_by_a_spreadsheet_with_semicolons_or_tabs_gives_its_names(tmp_path):
    # A spreadsheet in a French locale (Madagascar's) saves "CSV" with ';' between columns.
    names = tmp_path / "names.csv"
    names.write_bytes("\ufeffanarana;kilasy\r\nrakoto;L3\r\nrasoa;\"L3; M1\"\r\n".encode())
    assert read_names(names) == accounts.ClassList(["rakoto", "rasoa"], [])
    names.write_text("name\tclass\nrabe\tL3\nsoa\tL3\n")
    assert read_names(names).names == ["rabe", "soa"]
    names.write_text("rabe,L3;M1\nsoa\n")   # commas first: a ';' inside a cell stays there
    assert read_names(names).names == ["rabe", "soa"]


def test_every_bad_or_repeated_name_is_reported_with_its_line(tmp_path):
    names = tmp_path / "names.csv"
    names.write_text("rabe\nra be\nsoa\nrabe\n1st\ntahiry\n")
    assert read_names(names).problems == [
        "names.csv line 2: 'ra be' is not an account name (a letter or '_', then letters, "
        "digits or '_')",
        "names.csv line 4: 'rabe' is already on line 1",
        "names.csv line 5: '1st' is not an account name (a letter or '_', then letters, "
        "digits or '_')",
        "names.csv line 6: 'tahiry' is a word of the language, not an account name"]
    (tmp_path / "empty.csv").write_text("name\n\n")
    assert read_names(tmp_path / "empty.csv").problems == [
        "empty.csv: no name in the file (one name a line)"]


def test_the_private_file_is_0600_appears_whole_and_never_replaces_one(tmp_path):
    out = tmp_path / "passwords.csv"
    target = PrivateFile(out)
    assert not out.exists()   # nothing at the final name until published
    temps = [p for p in tmp_path.iterdir()]
    assert len(temps) == 1 and stat.S_IMODE(temps[0].stat().st_mode) == 0o600
    target.publish("name,password\n")
    assert out.read_text() == "name,password\n" and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [out]
    with pytest.raises(AccountsCommandError, match="exists: it may hold passwords"):
        PrivateFile(out)
    with pytest.raises(AccountsCommandError, match="is not a folder"):
        PrivateFile(tmp_path / "nowhere" / "p.csv")


def test_create_class_creates_the_missing_accounts_and_reports_the_others(tmp_path, stand_in,
                                                                         capsys):
    (tmp_path / "names.csv").write_text("rabe\nrakoto\nsoa\n")
    out = tmp_path / "passwords.csv"
    code = cmd_accounts(topology(tmp_path), args("create-class", names=str(tmp_path / "names.csv"),
                                                 out=str(out)),
                        environ={ADMIN_PASSWORD_ENV: ADMIN_PW})
    assert code == 0
    assert stand_in.made == [("rakoto", ADMIN_PW, stand_in)] and stand_in.closed
    rows = list(csv.DictReader(out.open()))
    assert [(r["name"], r["status"]) for r in rows] == [
        ("rabe", "created"), ("rakoto", "exists (password not changed)"), ("soa", "created")]
    passwords = {r["name"]: r["password"] for r in rows}
    assert passwords["rakoto"] == "" and len(passwords["rabe"]) == 17
    assert stand_in.statements[1:] == [
        f'manamboara mpampiasa rabe tenimiafina "{passwords["rabe"]}"',
        f'manamboara mpampiasa soa tenimiafina "{passwords["soa"]}"',
        accounts.LIST_ACCOUNTS]   # (do the new accounts own databases already?)
    printed = capsys.readouterr()
    assert "2 account(s) created" in printed.out and "rakoto" in printed.out
    assert passwords["rabe"] not in printed.out + printed.err   # only in the file


def test_a_bad_class_file_changes_nothing(tmp_path, stand_in, capsys):
    (tmp_path / "names.csv").write_text("rabe\nra/be\n")
    out = tmp_path / "passwords.csv"
    code = cmd_accounts(topology(tmp_path), args("create-class", names=str(tmp_path / "names.csv"),
                                                 out=str(out)),
                        environ={ADMIN_PASSWORD_ENV: ADMIN_PW})
    assert code == 2 and stand_in.made == [] and not out.exists()
    assert "names.csv line 2: 'ra/be' is not an account name" in capsys.readouterr().err


def test_an_existing_out_file_changes_nothing(tmp_path, stand_in, capsys):
    (tmp_path / "names.csv").write_text("rabe\n")
    out = tmp_path / "passwords.csv"
    out.write_text("handed out last week\n")
    code = cmd_accounts(topology(tmp_path), args("create-class", names=str(tmp_path / "names.csv"),
                                                 out=str(out)),
                        environ={ADMIN_PASSWORD_ENV: ADMIN_PW})
    assert code == 1 and stand_in.made == [] and out.read_text() == "handed out last week\n"
    assert "choose another --out; nothing was changed." in capsys.readouterr().err


def test_a_lost_connection_keeps_the_passwords_made_before_it(tmp_path, stand_in, capsys):
    stand_in.lose_at = "soa"
    stand_in.refuse = {"naivo"}
    (tmp_path / "names.csv").write_text("naivo\nrabe\nsoa\nvola\n")
    out = tmp_path / "passwords.csv"
    code = cmd_accounts(topology(tmp_path), args("create-class", names=str(tmp_path / "names.csv"),
                                                 out=str(out)),
                        environ={ADMIN_PASSWORD_ENV: ADMIN_PW})
    assert code == 1
    rows = {r["name"]: r for r in csv.DictReader(out.open())}
    assert rows["naivo"]["status"] == "failed: Hadisoana : refused"
    assert rows["rabe"]["status"] == "created" and rows["rabe"]["password"]
    assert rows["soa"]["status"].startswith("failed: the node closed")
    assert rows["vola"]["status"] == "not tried (interrupted)"
    assert "naivo: failed" in capsys.readouterr().err


def test_reset_prints_the_new_password_once(tmp_path, stand_in, capsys):
    stand_in.existing.add("rabe")
    code = cmd_accounts(topology(tmp_path), args("reset", name="rabe"),
                        environ={ADMIN_PASSWORD_ENV: ADMIN_PW})
    assert code == 0
    statement = stand_in.statements[-1]
    password = statement.split('"')[1]
    assert statement == f'ovay ny tenimiafina rabe "{password}"'
    assert capsys.readouterr().out.count(password) == 1


def test_reset_of_an_unknown_account_says_so(tmp_path, stand_in, capsys):
    code = cmd_accounts(topology(tmp_path), args("reset", name="nobody"),
                        environ={ADMIN_PASSWORD_ENV: ADMIN_PW})
    assert code == 1 and "Tsy misy ny mpampiasa : nobody" in capsys.readouterr().err


def test_without_accounts_or_a_password_nothing_is_done(tmp_path, stand_in, capsys):
    off = topology(tmp_path, extra="")
    assert cmd_accounts(off, args("reset", name="rabe"), environ={}) == 2
    assert "accounts are off" in capsys.readouterr().err
    on = topology(tmp_path)
    assert cmd_accounts(on, args("reset", name="rabe"), environ={}) == 1
    assert (f"the password of rakoto is needed: set {ADMIN_PASSWORD_ENV} or run the command in "
            f"a terminal (it asks); nothing was changed.") in capsys.readouterr().err
    assert stand_in.made == []


def test_the_command_line_parses_both_actions():
    from supervisor.cli import build_parser
    parsed = build_parser().parse_args(["accounts", "t.yaml", "create-class", "n.csv",
                                        "--out", "p.csv"])
    assert (parsed.command, parsed.action, parsed.names, parsed.out, parsed.user) == \
        ("accounts", "create-class", "n.csv", "p.csv", None)
    parsed = build_parser().parse_args(["accounts", "t.yaml", "reset", "rabe", "--user", "x"])
    assert (parsed.action, parsed.name, parsed.user) == ("reset", "rabe", "x")


def test_a_node_that_does_not_answer_is_named_and_nothing_is_changed(tmp_path, capsys):
    from tests.conftest import free_port
    port = free_port()   # nothing listens there
    path = tmp_path / "topology.yaml"
    path.write_text(TOPOLOGY.replace("port: 4949", f"port: {port}") + "accounts: true\n")
    code = cmd_accounts(parse_topology(path.read_text(), path, {}), args("reset", name="rabe"),
                        environ={ADMIN_PASSWORD_ENV: ADMIN_PW})
    error = capsys.readouterr().err
    assert code == 1
    assert error.startswith(f"cannot log in as mpampianatra on lb (127.0.0.1:{port}): ")
    assert error.rstrip().endswith("; nothing was changed.") and ADMIN_PW not in error
