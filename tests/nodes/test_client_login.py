"""The client's side of accounts: --user, where the password comes from, a history without it."""

from __future__ import annotations

import pytest

from nodes.client import driver
from nodes.client.cli import CannotStart, account_password, build_parser
from nodes.client.repl import _file_history


def test_a_password_is_never_taken_from_the_command_line(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--user", "ana", "--password", "hunter2-secret"])
    err = capsys.readouterr().err
    assert "never given on the command line" in err and "hunter2-secret" not in err
    assert build_parser().parse_args(["--user", "ana"]).user == "ana"


def test_the_password_comes_from_the_environment_else_from_a_prompt():
    asked = []

    def prompt(text):
        asked.append(text)
        return "typed-pass"

    assert account_password("ana", {"TAHIRY_PASSWORD": "env-pass"}, prompt) == "env-pass"
    assert asked == []
    assert account_password("ana", {}, prompt) == "typed-pass" and "ana" in asked[0]
    with pytest.raises(CannotStart, match="no password for ana"):
        account_password("ana", {}, lambda text: "")


def test_the_history_file_never_holds_a_password(tmp_path):
    path = tmp_path / "history"
    history = _file_history(path)
    history.append_string('manamboara mpampiasa bob tenimiafina "hunter2-secret" mpitantana;')
    history.append_string('.login bob "hunter2-secret";')
    history.append_string("alaivo * ao@ t;")
    text = path.read_text()
    assert "hunter2-secret" not in text and text.count('"***"') == 2
    assert "alaivo * ao@ t;" in text
    assert path.stat().st_mode & 0o077 == 0
    assert all("hunter2" not in line for line in history.get_strings())


def test_the_driver_wants_a_password_with_a_user(monkeypatch):
    monkeypatch.delenv("TAHIRY_PASSWORD", raising=False)
    with pytest.raises(driver.ProgrammingError, match="password"):
        driver.connect("127.0.0.1", 1, user="ana")
    with pytest.raises(driver.NotSupportedError):
        driver.connect(user="ana", password="x" * 8, embedded="/nonexistent")
