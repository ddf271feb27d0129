"""`accounts:` in the topology, the first administrator's password at `up`, what nodes are given.

Unit tests of supervisor/topology.py (the section), supervisor/first_admin.py
(password from the environment or a prompt; the environment of each node),
supervisor/cluster.py `node_command` (`--accounts`) and supervisor/reload.py
(an edit of the section is refused and changes nothing).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from supervisor.cluster import Cluster, node_command
from supervisor.first_admin import (
    ADMIN_PASSWORD_ENV,
    ADMIN_USER_ENV,
    AdminPasswordMissing,
    accounts_exist,
    admin_password_for_up,
    node_environment,
)
from supervisor.topology import DEFAULT_ADMIN, AccountSettings, TopologyError, parse_topology
from tests.supervisor.topologykit import refused_edit

BASE = """\
supervisor:
  control_port: 4947
nodes:
  m1: {kind: server, host: 127.0.0.1, port: 4948, data: data/m1}
  m2: {kind: server, host: 127.0.0.1, port: 4950, data: data/m2}
  lb: {kind: balancer, host: 127.0.0.1, port: 4949, backends: [m1, m2]}
  proxy: {kind: proxycache, host: 127.0.0.1, port: 4951, upstream: lb, ttl_ms: 3000,
          max_entries: 200}
"""
PATH = Path("/tmp/cluster/topology.yaml")
PASSWORD = "correct horse battery"


def parse(extra: str = ""):
    return parse_topology(BASE + extra, PATH, {})


def errors_of(extra: str) -> list[str]:
    with pytest.raises(TopologyError) as caught:
        parse(extra)
    return caught.value.messages


# -- the topology section

def test_accounts_are_off_unless_the_topology_says_so():
    assert parse().accounts == AccountSettings(enabled=False)
    assert parse("accounts: false\n").accounts.enabled is False


def test_accounts_true_uses_the_default_administrator():
    assert parse("accounts: true\n").accounts == AccountSettings(True, DEFAULT_ADMIN)


def test_accounts_mapping_names_the_administrator():
    assert parse("accounts: {admin: rakoto}\n").accounts == AccountSettings(True, "rakoto")
    assert parse("accounts:\n  admin: rakoto\n  enabled: false\n").accounts == \
        AccountSettings(False, "rakoto")


@pytest.mark.parametrize("extra, message", [
    ("accounts: yes please\n", "topology.yaml line 9: accounts: must be true, false or a "
     "mapping such as {admin: mpampianatra}, not the string 'yes please'"),
    ("accounts: 1\n", "topology.yaml line 9: accounts: must be true, false or a mapping such "
     "as {admin: mpampianatra}, not the integer 1"),
    ("accounts: {admin: 'ra koto'}\n", "topology.yaml line 9: accounts.admin: 'ra koto' is not "
     "an account name (a letter or '_', then letters, digits or '_')"),
    ("accounts: {admin: tahiry}\n", "topology.yaml line 9: accounts.admin: 'tahiry' is a word "
     "of the language, not an account name"),
    ("accounts: {admin: ''}\n", "topology.yaml line 9: accounts.admin: must be a non-empty "
     "string, not the string ''"),
    ("accounts: {admin: x, teacher: y}\n", "topology.yaml line 9: accounts.teacher: unknown "
     "key (expected one of: admin, enabled)"),
    ("accounts: {enabled: maybe}\n", "topology.yaml line 9: accounts.enabled: must be true or "
     "false, not the string 'maybe'"),
])
def test_a_bad_accounts_section_is_refused_naming_key_and_line(extra, message):
    assert errors_of(extra) == [message]


# -- what the nodes are started with

def test_servers_get_the_accounts_flag_and_nothing_on_their_command_line():
    topology = parse("accounts: true\n")
    run = Path("/tmp/cluster/run")
    assert "--accounts" in node_command(topology, "m1", run)
    assert "--accounts" not in node_command(topology, "lb", run)
    assert "--accounts" not in node_command(topology, "proxy", run)
    assert "--accounts" not in node_command(parse(), "m1", run)
    assert not any(PASSWORD in arg for node in topology.nodes
                   for arg in node_command(topology, node, run))


def test_only_servers_get_the_administrator_in_their_environment():
    topology = parse("accounts: {admin: rakoto}\n")
    leaked = {"PATH": "/bin", ADMIN_PASSWORD_ENV: "from the operator's shell",
              ADMIN_USER_ENV: "someone"}
    server = node_environment(topology, topology.nodes["m1"], leaked, PASSWORD)
    assert server[ADMIN_USER_ENV] == "rakoto" and server[ADMIN_PASSWORD_ENV] == PASSWORD
    for relay in ("lb", "proxy"):
        env = node_environment(topology, topology.nodes[relay], leaked, PASSWORD)
        assert env == {"PATH": "/bin"}
    # Accounts off: the operator's variables reach no node.
    off = parse()
    assert node_environment(off, off.nodes["m1"], leaked, None) == {"PATH": "/bin"}
    # No password needed (accounts exist): neither (the server wants both or none).
    assert node_environment(topology, topology.nodes["m1"], leaked, None) == {"PATH": "/bin"}


def test_the_cluster_starts_servers_with_the_password_in_the_environment_only(tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text(BASE + "accounts: true\n")
    topology = parse_topology(path.read_text(), path, {})
    cluster = Cluster(topology, logging.getLogger("test"), admin_password=PASSWORD)
    server, proxy = (cluster._make_keeper(topology.nodes[n]) for n in ("m1", "proxy"))
    assert server.argv[-1] == "--accounts" and PASSWORD not in " ".join(server.argv)
    assert server.env is not None and server.env[ADMIN_PASSWORD_ENV] == PASSWORD
    assert proxy.env is not None and ADMIN_PASSWORD_ENV not in proxy.env
    for log in cluster.node_logs.values():
        log.close()


# -- the password at `up`

def never_asked(text: str) -> str:
    raise AssertionError(f"asked: {text}")


def test_no_password_is_needed_with_accounts_off():
    assert admin_password_for_up(parse(), {}, interactive=True, prompt=never_asked) is None


def test_the_password_comes_from_the_environment_first():
    got = admin_password_for_up(parse("accounts: true\n"), {ADMIN_PASSWORD_ENV: PASSWORD},
                                interactive=True, prompt=never_asked)
    assert got == PASSWORD


def test_a_weak_password_in_the_environment_is_refused_without_showing_it():
    with pytest.raises(AdminPasswordMissing) as caught:
        admin_password_for_up(parse("accounts: true\n"), {ADMIN_PASSWORD_ENV: "abc12"},
                              interactive=False)
    assert str(caught.value) == (f"{ADMIN_PASSWORD_ENV}: too short: 5 character(s), an "
                                 f"administrator's password needs at least 8")
    assert "abc12" not in str(caught.value)


def test_without_a_terminal_or_the_variable_up_refuses():
    with pytest.raises(AdminPasswordMissing) as caught:
        admin_password_for_up(parse("accounts: true\n"), {}, interactive=False)
    assert str(caught.value) == (
        "accounts are on and no account exists yet: the first administrator (mpampianatra) "
        f"needs a password: set {ADMIN_PASSWORD_ENV} in the environment, or run `up` in a "
        "terminal (it asks)")


def test_the_prompt_asks_twice_and_refuses_two_different_answers():
    answers = iter([PASSWORD, PASSWORD])
    questions: list[str] = []

    def prompt(text: str) -> str:
        questions.append(text)
        return next(answers)
    topology = parse("accounts: {admin: rakoto}\n")
    assert admin_password_for_up(topology, {}, interactive=True, prompt=prompt) == PASSWORD
    assert len(questions) == 2 and "rakoto" in questions[0]
    answers = iter([PASSWORD, PASSWORD + "x"])
    with pytest.raises(AdminPasswordMissing, match="the two passwords differ"):
        admin_password_for_up(topology, {}, interactive=True, prompt=prompt)


def test_a_machine_that_runs_no_server_needs_no_password():
    topology = parse("accounts: true\n")
    from dataclasses import replace
    elsewhere = replace(topology, remote=frozenset({"m1", "m2"}))
    assert admin_password_for_up(elsewhere, {}, interactive=False) is None


# -- hot reload

@pytest.mark.parametrize("before, after, what", [
    ("", "accounts: true\n", "turns accounts on"),
    ("accounts: true\n", "accounts: false\n", "turns accounts off"),
    ("accounts: true\n", "accounts: {admin: rakoto}\n",
     "changes the administrator (mpampianatra -> rakoto)"),
])
def test_an_edit_of_the_accounts_section_is_refused_and_changes_nothing(tmp_path, before, after,
                                                                        what):
    message = refused_edit(tmp_path / "topology.yaml", BASE + before, BASE + after)
    assert message == (f"topology.yaml: accounts: the edit {what}; that is applied only by a "
                       f"new start of the cluster (`python -m supervisor down`, then `up`), so "
                       f"nothing was changed")


# -- whether accounts exist already (then `up` needs no password)

def test_accounts_exist_once_a_data_directory_holds_a_live_account(tmp_path):
    from engine import Session, Store, ensure_first_admin, verify_login

    m1, m2 = tmp_path / "data" / "m1", tmp_path / "data" / "m2"
    m1.mkdir(parents=True)
    m2.mkdir(parents=True)
    path = tmp_path / "topology.yaml"
    path.write_text(BASE + "accounts: {admin: rakoto}\n")
    topology = parse_topology(path.read_text(), path, {})
    with pytest.raises(AdminPasswordMissing):
        admin_password_for_up(topology, {}, interactive=False)
    store = Store(m2, durable=False)
    assert ensure_first_admin(store, "rakoto", PASSWORD)
    assert accounts_exist([m1, m2]) and not accounts_exist([m1])
    # No password, no terminal: `up` goes on, and the servers are given none.
    assert admin_password_for_up(topology, {}, interactive=False, prompt=never_asked) is None
    # One given is passed and ignored (SECURITY.md): a short one no longer stops `up`.
    assert admin_password_for_up(topology, {ADMIN_PASSWORD_ENV: "abc12"},
                                 interactive=False) == "abc12"
    # A dropped account is a tombstone, not an account.
    admin = verify_login(store, "rakoto", PASSWORD)
    session = Session(store, identity=admin)
    assert all(o.ok for o in session.execute('manamboara mpampiasa rabe tenimiafina "x1234567y";'
                                             'ravao ny mpampiasa rabe;'))
    (m2 / "@tahiry" / "accounts" / "rakoto.json").unlink()
    assert (m2 / "@tahiry" / "accounts" / "rabe.json").exists()
    assert not accounts_exist([m1, m2])


def test_up_and_check_say_how_to_log_in():
    from supervisor.cli import connect_line
    assert "--user" not in connect_line(parse())
    line = connect_line(parse("accounts: {admin: rakoto}\n"))
    assert line.startswith("connect with: ./tahiry client --port 4951 --user rakoto   (")
