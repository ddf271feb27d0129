"""Accounts on the wire with real node processes (docs/SECURITY.md, "Accounts").

A server started with `--accounts` (the first administrator from
TAHIRY_ADMIN_USER / TAHIRY_ADMIN_PASSWORD in its environment) answers only
a login first; a wrong password is refused, closes the connection, is
rate-limited and logged without the password; the balancer logs in as the
client's account on every backend connection it opens (after a failover
too) and never as anyone else; the proxy cache keys its answers by account
and validates an account's hit with the servers' rights generation, so a
revoke made through another path (the teacher on the balancer) refuses a
cached read at once. No password appears in any node log or in `ps`.
"""

from __future__ import annotations

import json
import subprocess
import threading

import pytest

from nodes.client.connection import LoginFailed
from nodes.client.runners import RemoteRunner
from nodes.protocol import LOGIN_REFUSED, LOGIN_REQUIRED, login_request, peer
from nodes.protocol.wire import auth_request
from tests.conftest import wait_until
from tests.integration.hardening_scenarios import SECRET, WITH_SECRET
from tests.integration.wire import WireClient

TEACHER, TEACHER_PW = "mpampianatra", "Teacher-pass-7Q"
STUDENTS = {"ana": "Ana-pass-3xK9", "bob": "Bob-pass-8Lm2"}
ADMIN_ENV = {"TAHIRY_ADMIN_USER": TEACHER, "TAHIRY_ADMIN_PASSWORD": TEACHER_PW}
PASSWORDS = [TEACHER_PW, *STUDENTS.values(), "Wrong-guess-55"]
READ = "alaivo * ao@ t;"


def start_server(start_node, name: str = "m1", *args: str):
    return start_node("server", name, "--data", f"data/{name}", "--accounts", *args, env=ADMIN_ENV)


def logged_in(port: int, name: str, password: str) -> WireClient:
    client = WireClient(port)
    response = client.one(login_request(name, password).decode())
    assert response.ok, response.message
    return client


def create_students(port: int) -> None:
    with logged_in(port, TEACHER, TEACHER_PW) as teacher:
        for name, password in STUDENTS.items():
            teacher.ok(f'manamboara mpampiasa {name} tenimiafina "{password}";')


def make_anadb(ana: WireClient) -> None:
    """ana's database `anadb` with an empty table `t (id)`, selected."""
    ana.ok("manamboara tahiry anadb;")
    ana.ok("ampiasao anadb;")
    ana.ok("manamboara tabilao t (id ISA(null,null));")


def chain(start_node):
    """m1 (--accounts) behind balancer lb behind proxy px (caching 60 s, no settle delay)."""
    m1 = start_server(start_node)
    lb = start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{m1.port}",
                    "--probe-interval-ms", "100")
    px = start_node("proxycache", "px", "--upstream", f"127.0.0.1:{lb.port}",
                    "--ttl-ms", "60000", "--settle-ms", "0")
    return m1, lb, px


def backend_online(balancer, backend: str) -> bool:
    with WireClient(balancer.port) as probe:
        return probe.status()["backends"][backend]["state"] == "ONLINE"


def assert_no_password_anywhere(*nodes) -> None:
    listing = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True,
                             check=True).stdout
    for password in PASSWORDS:
        assert password not in listing
        for node in nodes:
            assert password not in node.log_text(), f"{node.name}'s log holds a password"


def test_a_server_with_accounts_answers_nothing_but_a_login_first(start_node):
    m1 = start_server(start_node)
    with WireClient(m1.port) as client:
        assert client.one(".ping;").ok and client.one(".status;").ok
        for statement in ("asehoy ny tahiry;", "manamboara tahiry x;", ".versions x t;"):
            assert client.one(statement).message == LOGIN_REQUIRED
        assert client.one(".rights;").ok   # a number: the balancer's probes ask it
        assert client.one(login_request(TEACHER, TEACHER_PW).decode()).ok
        client.ok("manamboara tahiry x;")
        status = client.status()   # logged in as the administrator: names shown
    assert status["accounts"][TEACHER] == {"logins": 1, "failures": 0, "sessions": 1}
    assert status["accounts_required"] is True
    assert "created the first administrator account mpampianatra" in m1.log_text()
    assert_no_password_anywhere(m1)


STATUS_TOKEN = "5a7e" * 16   # what the supervisor draws per run (nodes/protocol/status_token.py)


def test_account_names_in_status_only_for_an_administrator_or_the_supervisors_token(start_node):
    """`.status;` before a login listed every account name: whoever could connect learnt
    who has an account. The counts stay; the names go to a logged-in administrator, and
    to the supervisor's probe, which proves itself with the token it gave the server."""
    m1 = start_node("server", "m1", "--data", "data/m1", "--accounts",
                    env={**ADMIN_ENV, "TAHIRY_STATUS_TOKEN": STATUS_TOKEN})
    create_students(m1.port)
    with logged_in(m1.port, "ana", STUDENTS["ana"]) as ana:
        anonymous = WireClient(m1.port)
        answers = {"anonymous": anonymous.status(), "student": ana.status(),
                   "wrong token": json.loads(anonymous.ok(".status " + "0" * 64 + ";").message)}
        for who, status in answers.items():
            assert status["accounts_required"] is True and "login_failures_unknown" in status
            assert "accounts" not in status, who
            assert not any(name in json.dumps(status) for name in (TEACHER, *STUDENTS)), who
        # The supervisor's probe: no login, the token. The DirkDB framing is unchanged
        # (`;` ends the request, END the answer: WireClient reads both).
        by_token = json.loads(anonymous.ok(f".status {STATUS_TOKEN};").message)
        with logged_in(m1.port, TEACHER, TEACHER_PW) as teacher:
            by_admin = teacher.status()
        anonymous.close()
    for status in (by_token, by_admin):
        assert status["accounts"]["ana"]["sessions"] == 1
        assert set(status["accounts"]) == {TEACHER, "ana"}
    assert STATUS_TOKEN not in m1.log_text()


def test_without_accounts_a_server_needs_no_login(start_node):
    m1 = start_node("server", "m1", "--data", "data/m1")
    with WireClient(m1.port) as client:
        client.ok("manamboara tahiry x;")
        assert "not needed" in client.ok(login_request("anyone", "whatever-1").decode()).message
        client.ok("ampiasao x;")


def test_a_wrong_password_is_refused_closed_and_logged_without_it(start_node):
    m1 = start_server(start_node)
    with WireClient(m1.port) as client:
        assert client.one(login_request(TEACHER, "Wrong-guess-55").decode()).message == LOGIN_REFUSED
        assert client.closed_by_peer()
    with WireClient(m1.port) as client:
        assert client.one(login_request("nobody", "Wrong-guess-55").decode()).message == LOGIN_REFUSED
    wait_until(lambda: "refused login as mpampianatra from 127.0.0.1:" in m1.log_text(), 5,
               "the refusal's log line")
    with logged_in(m1.port, TEACHER, TEACHER_PW) as client:
        status = client.status()
    assert status["accounts"][TEACHER]["failures"] == 1
    assert status["login_failures_unknown"] == 1 and "nobody" not in json.dumps(status)
    assert_no_password_anywhere(m1)


@pytest.mark.slow
def test_wrong_passwords_in_a_burst_are_throttled(start_node):
    # (On loopback no address is locked out, tests/nodes/test_login.py shows one off it
    # is; a scrypt per login keeps a burst below the default rate, hence 2/s here.)
    m1 = start_server(start_node, "m1", "--login-failures-per-s", "2")
    refused: list[str] = []

    def guess(index: int) -> None:
        with WireClient(m1.port, timeout=30) as client:
            refused.append(client.one(login_request(TEACHER, f"Wrong-guess-{index}").decode()).message)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(refused) == 40 and all(m.startswith("Hadisoana : ") for m in refused)
    with WireClient(m1.port) as client:
        status = client.status()
    assert status["login_failures"] >= 40
    assert "login limit: failed authentications faster than 2/s" in m1.log_text()
    assert status["login_throttled"] is True
    # The right password still gets in once the burst is over.
    wait_until(lambda: not WireClient(m1.port).status()["login_throttled"], 15,
               "the throttle to end")
    logged_in(m1.port, TEACHER, TEACHER_PW).close()


def test_the_balancer_and_the_proxy_carry_the_identity_and_nothing_else(start_node):
    m1, lb, px = chain(start_node)
    # No privilege rises on the way: a connection that did not log in gets nothing.
    for port in (lb.port, px.port):
        with WireClient(port) as anonymous:
            assert anonymous.one("asehoy ny tahiry;").message == LOGIN_REQUIRED
    create_students(lb.port)
    with logged_in(px.port, "ana", STUDENTS["ana"]) as ana:
        make_anadb(ana)
        ana.ok("manampia ao@ t sanda (1);")
        assert ana.rows(READ) == [[1]]
        with logged_in(m1.port, TEACHER, TEACHER_PW) as probe:
            sessions = probe.status()["accounts"]["ana"]["sessions"]
        assert sessions >= 1   # the balancer's backend connection is ana's
    with logged_in(lb.port, "bob", STUDENTS["bob"]) as bob:
        refused = bob.one("ampiasao anadb;")
        assert not refused.ok and "anadb" in refused.message
        assert ["anadb"] not in (bob.one("asehoy ny tahiry;").relation or _NoRows()).rows
    # A wrong password through the chain: refused there too, and closed.
    with WireClient(px.port) as guesser:
        assert guesser.one(login_request("ana", "Wrong-guess-55").decode()).message == LOGIN_REFUSED
        assert guesser.closed_by_peer()
    assert_no_password_anywhere(m1, lb, px)


class _NoRows:
    rows: list = []


def test_the_proxy_never_serves_one_accounts_cached_answer_to_another(start_node):
    m1, lb, px = chain(start_node)
    create_students(lb.port)
    with logged_in(px.port, "ana", STUDENTS["ana"]) as ana, \
            logged_in(px.port, "bob", STUDENTS["bob"]) as bob:
        make_anadb(ana)
        ana.ok("manampia ao@ t sanda (42);")
        ana.ok("omeo bob zo mamaky ao@ anadb;")
        bob.ok("ampiasao anadb;")     # bob's session is in anadb, like ana's
        ana.ok("esory bob zo mamaky ao@ anadb;")
        assert ana.rows(READ) == [[42]]
        assert ana.rows(READ) == [[42]]   # a hit, for ana
        with WireClient(px.port) as probe:
            hits = probe.status()["hits"]
        assert hits >= 1
        refused = bob.one(READ)
        assert not refused.ok and "Tsy manana zo mamaky ny tahiry anadb" in refused.message


def test_a_revoke_through_the_balancer_refuses_a_cached_read_at_once(start_node):
    m1, lb, px = chain(start_node)
    create_students(lb.port)
    with logged_in(px.port, "ana", STUDENTS["ana"]) as ana:
        make_anadb(ana)
        ana.ok("manampia ao@ t sanda (7);")
        ana.ok("omeo bob zo mamaky ao@ anadb;")
    with logged_in(px.port, "bob", STUDENTS["bob"]) as bob:
        bob.ok("ampiasao anadb;")
        assert bob.rows(READ) == [[7]]
        with WireClient(px.port) as probe:
            before = probe.status()
        assert bob.rows(READ) == [[7]]          # served from the cache, validated
        with WireClient(px.port) as probe:
            after = probe.status()
        assert after["hits"] == before["hits"] + 1
        # The teacher, straight on the balancer (the proxy sees nothing of it).
        with logged_in(lb.port, TEACHER, TEACHER_PW) as teacher:
            teacher.ok("esory bob zo mamaky ao@ anadb;")
        refused = bob.one(READ)
        assert not refused.ok and "Tsy manana zo mamaky ny tahiry anadb" in refused.message
        with WireClient(px.port) as probe:
            assert probe.status()["stale_rights"] >= 1
    assert_no_password_anywhere(m1, lb, px)


@pytest.mark.slow
def test_the_balancer_logs_in_again_on_the_server_it_fails_over_to(start_node):
    m1 = start_server(start_node, "m1")
    m2 = start_server(start_node, "m2")
    lb = start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{m1.port}",
                    "--backend", f"m2=127.0.0.1:{m2.port}", "--probe-interval-ms", "100",
                    "--probe-timeout-ms", "300")
    with logged_in(lb.port, TEACHER, TEACHER_PW) as teacher:
        teacher.ok("manamboara tahiry sekoly;")     # on both servers
        teacher.ok("ampiasao sekoly;")
        teacher.ok("asehoy ny tabilao;")
        m1.stop()
        # Every later statement runs on m2, logged in as the teacher there.
        for _ in range(3):
            teacher.ok("asehoy ny tabilao;")
        with logged_in(m2.port, TEACHER, TEACHER_PW) as probe:
            counts = probe.status()["accounts"][TEACHER]
        assert counts["logins"] >= 2 and counts["sessions"] >= 2   # the balancer's and probe's
    with WireClient(lb.port) as guesser:
        assert guesser.one(login_request(TEACHER, "Wrong-guess-55").decode()).message == LOGIN_REFUSED
        assert guesser.closed_by_peer()
    assert_no_password_anywhere(m2, lb)


def test_the_proxy_logs_in_again_on_a_new_upstream_connection(start_node):
    m1, lb, px = chain(start_node)
    create_students(lb.port)
    with logged_in(px.port, "ana", STUDENTS["ana"]) as ana:
        make_anadb(ana)
        start_node.restart(lb)          # the proxy's upstream connection breaks
        # The next statement goes on a new connection, logged in as ana again
        # (and in anadb again), not as nobody and not as anyone else.
        wait_until(lambda: ana.one("manampia ao@ t sanda (5);").ok, 15,
                   "ana's insert through a new upstream connection")
        assert ana.rows(READ) == [[5]]
    with logged_in(m1.port, TEACHER, TEACHER_PW) as probe:
        assert probe.status()["accounts"]["ana"]["logins"] == 2   # the first login, then again
    assert_no_password_anywhere(m1, lb, px)


def test_the_client_and_the_driver_log_in(start_node):
    import os
    import sys

    from nodes.client import driver
    from tests.conftest import REPO_ROOT

    m1, lb, px = chain(start_node)
    create_students(lb.port)

    def client(password: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "nodes.client", "--port", str(px.port), "--user", "ana",
             "-e", "manamboara tahiry anadb; asehoy ny tahiry;"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "TAHIRY_PASSWORD": password})

    done = client(STUDENTS["ana"])
    assert done.returncode == 0, done.stderr
    assert "anadb" in done.stdout
    refused = client("Wrong-guess-55")
    assert refused.returncode == 2 and "Diso ny anarana na ny tenimiafina" in refused.stderr
    with driver.connect("127.0.0.1", px.port, user="bob", password=STUDENTS["bob"]) as connection:
        cursor = connection.cursor()
        cursor.execute("asehoy ny tahiry")
        assert ("anadb",) not in cursor.fetchall()
    with pytest.raises(driver.OperationalError, match="Diso ny anarana"):
        driver.connect("127.0.0.1", px.port, user="bob", password="Wrong-guess-55")
    assert_no_password_anywhere(m1, lb, px)


def test_peer_requests_need_the_clusters_secret_when_accounts_are_on(start_node):
    """`.peer` reads and writes objects beneath the accounts (every database, the password
    hashes): on a node that requires no secret it was let through without a login, so
    anyone on the machine could read a student's table or make themselves administrator."""
    m1 = start_server(start_node)
    create_students(m1.port)
    with WireClient(m1.port) as stranger:
        for request in (peer.hello_request(), peer.names_request(),
                        peer.fetch_request("@tahiry/accounts/ana.json", None, False)):
            assert stranger.one(request.decode()).message == LOGIN_REQUIRED
    # A logged-in student is no peer either.
    with logged_in(m1.port, "ana", STUDENTS["ana"]) as ana:
        assert not ana.one(peer.hello_request().decode()).ok


def test_peers_holding_the_secret_are_let_in_with_accounts_on(start_node):
    m1 = start_node("server", "m1", "--data", "data/m1", "--accounts", "--require-secret",
                    wait=False, env={**ADMIN_ENV, **WITH_SECRET})

    def answers_the_secret() -> bool:
        assert m1.alive(), m1.log_text()
        try:
            with WireClient(m1.port) as probe:
                return probe.one(auth_request(SECRET).decode()).ok
        except OSError:
            return False

    wait_until(answers_the_secret, 15, "m1 to answer")
    with WireClient(m1.port) as replicator:
        assert replicator.one(auth_request(SECRET).decode()).ok
        answer = peer.decode_answer(replicator.one(peer.hello_request().decode()))
        assert peer.check_hello(answer) == "m1"


def test_a_new_password_holds_through_the_chain_and_ends_the_old_sessions(start_node):
    """A student changes their own password through the proxy: the relays log in with the
    new one when they reconnect (a server or the balancer restarted: every statement of
    the session was refused as a wrong password), and a session opened with the old
    password elsewhere can do nothing more."""
    m1, lb, px = chain(start_node)
    create_students(lb.port)
    new_password = "Ana-new-pass-77"
    with logged_in(px.port, "ana", STUDENTS["ana"]) as ana, \
            logged_in(lb.port, "ana", STUDENTS["ana"]) as elsewhere:
        make_anadb(ana)
        ana.ok(f'ovay ny tenimiafina ana "{new_password}";')
        ana.ok("manampia ao@ t sanda (1);")   # the session that changed it carries on
        assert elsewhere.one("asehoy ny tahiry;").message == \
            ("Hadisoana : Niova ny tenimiafin'ny mpampiasa : ana (midira indray amin'ny "
             "tenimiafina vaovao : .login ana \"...\"; na ./tahiry client --user ana)")
        m1 = start_node.restart(m1)           # the balancer logs in to it again
        wait_until(lambda: backend_online(lb, "m1"), 15, "m1 ONLINE again")
        assert ana.rows(READ) == [[1]]
        lb = start_node.restart(lb)           # the proxy logs in to it again
        wait_until(lambda: backend_online(lb, "m1"), 15, "lb to probe m1")
        assert ana.rows(READ) == [[1]]
    with WireClient(px.port) as old:
        assert old.one(login_request("ana", STUDENTS["ana"]).decode()).message == LOGIN_REFUSED
    assert_no_password_anywhere(m1, lb, px)


def test_the_client_reconnects_with_its_new_password_and_says_when_its_login_is_void(start_node):
    """The terminal client kept the password it started with: after `ovay ny tenimiafina`
    a reconnection logged in with the old one, and the refusal ended the client with a
    traceback. Now it logs in with the new one; a password changed by the teacher gives
    a clear error, and a `.login` typed next gets through."""
    m1 = start_server(start_node)
    create_students(m1.port)
    runner = RemoteRunner("127.0.0.1", m1.port, login=("ana", STUDENTS["ana"]), restart_wait=15)
    try:
        assert runner.run('ovay ny tenimiafina ana "Ana-second-99";').ok
        m1 = start_node.restart(m1)
        assert runner.run("alaivo 1;").ok
        with logged_in(m1.port, TEACHER, TEACHER_PW) as teacher:
            teacher.ok('ovay ny tenimiafina ana "Ana-from-teacher-3";')
        assert runner.run("alaivo 1;").message == \
            ("Hadisoana : Niova ny tenimiafin'ny mpampiasa : ana (midira indray amin'ny "
             "tenimiafina vaovao : .login ana \"...\"; na ./tahiry client --user ana)")
        m1 = start_node.restart(m1)
        with pytest.raises(LoginFailed, match="type .login ana") as refused:
            runner.run("alaivo 1;")
        assert not str(refused.value).startswith("Hadisoana")   # the display adds the prefix
        assert runner.run("alaivo 1;").message == LOGIN_REQUIRED
        assert runner.run('.login ana "Ana-from-teacher-3";').ok
        assert runner.run("alaivo 1;").ok
    finally:
        runner.close()


def test_a_dead_session_gets_no_cached_answer_of_its_account(start_node):
    """The proxy cache keys an account's answers by its name and validated a hit with the
    servers' rights generation only: a session opened with the old password got what the
    account's new session had read (a leaked password reset by the teacher did not shut
    the intruder out of cached reads)."""
    m1, lb, px = chain(start_node)
    create_students(lb.port)
    with logged_in(px.port, "ana", STUDENTS["ana"]) as intruder, \
            logged_in(px.port, "ana", STUDENTS["ana"]) as ana:
        make_anadb(ana)
        intruder.ok("ampiasao anadb;")
        with logged_in(lb.port, TEACHER, TEACHER_PW) as teacher:
            teacher.ok('ovay ny tenimiafina ana "Ana-reset-by-teacher-1";')
        with logged_in(px.port, "ana", "Ana-reset-by-teacher-1") as owner:
            owner.ok("ampiasao anadb;")
            owner.ok("manampia ao@ t sanda (42);")
            assert owner.rows(READ) == [[42]]
            assert owner.rows(READ) == [[42]]   # now in the cache
        assert intruder.one(READ).message == \
            ("Hadisoana : Niova ny tenimiafin'ny mpampiasa : ana (midira indray amin'ny "
             "tenimiafina vaovao : .login ana \"...\"; na ./tahiry client --user ana)")


def test_versions_on_a_server_says_nothing_of_a_database_the_account_may_not_read(start_node):
    """`.versions` said which tables another student's database holds, and how often each
    was written."""
    m1 = start_server(start_node)
    create_students(m1.port)
    with logged_in(m1.port, "ana", STUDENTS["ana"]) as ana:
        ana.ok("manamboara tahiry anadb;")
        ana.ok("ampiasao anadb;")
        ana.ok("manamboara tabilao secret (id ISA(null,null));")
        assert ana.one(".versions anadb secret;").message == '{"secret":{"table":1}}'
    with logged_in(m1.port, "bob", STUDENTS["bob"]) as bob:
        assert bob.one(".versions anadb secret nothere;").message == \
            "Hadisoana : Tsy manana zo mamaky ny tahiry anadb ianao"


def test_a_login_as_another_account_starts_without_a_database_on_every_node(start_node):
    """A server kept the previous account's database; the balancer and the proxy then
    replayed `ampiasao` of it for the new account on their next connection, so the same
    statement was answered differently through each node."""
    m1, lb, px = chain(start_node)
    create_students(lb.port)
    with logged_in(lb.port, "ana", STUDENTS["ana"]) as ana:
        make_anadb(ana)
    for port in (m1.port, lb.port, px.port):
        with logged_in(port, "ana", STUDENTS["ana"]) as client:
            client.ok("ampiasao anadb;")
            client.ok(login_request("bob", STUDENTS["bob"]).decode())
            client.ok("asehoy ny mpampiasa;")   # refused through lb and px before
            assert client.one(READ).message == "Hadisoana : Tsy nisafidy tahiry ianao", port


def test_a_database_option_the_account_may_not_read_is_a_client_that_could_not_start(
        tmp_path, start_node):
    """`client -d DB` refused (no read right, as no such database) runs nothing: exit 2,
    "could not start" (docs/CLIENT.md), its error named; the same `ampiasao` sent as a
    statement is a refused statement among others that ran: exit 1."""
    from tests.integration.clientkit import client

    m1 = start_server(start_node)
    create_students(m1.port)
    with logged_in(m1.port, "ana", STUDENTS["ana"]) as ana:
        make_anadb(ana)
    bob = {"TAHIRY_PASSWORD": STUDENTS["bob"]}
    refused = client("--port", str(m1.port), "--user", "bob", "-d", "anadb", "-e", "alaivo 7;",
                     cwd=tmp_path, env=bob)
    assert refused.returncode == 2, refused.stderr
    assert refused.stdout == ""                                # nothing ran
    assert refused.stderr.strip() == (
        "tahiry: -d anadb: Hadisoana : Tsy manana zo mamaky ny tahiry anadb ianao"), refused.stderr
    statement = client("--port", str(m1.port), "--user", "bob", "-e", "ampiasao anadb; alaivo 7;",
                       cwd=tmp_path, env=bob)
    assert statement.returncode == 1 and "7" in statement.stdout, statement.stderr
