"""A class with accounts, end to end, through the supervisor (issue 17).

One supervised cluster (m1, m2, the balancer, the proxy cache; the status
page on) with `accounts: {admin: mpampianatra}` in its topology, started
by `python -m supervisor up -d` with the teacher's password in
TAHIRY_ADMIN_PASSWORD only. The teacher makes the students' accounts with
`python -m supervisor accounts ... create-class names.csv --out FILE`; then
two students (rabe, soa) and the teacher work as a class does, every
session logged in over the wire (`.login NAME "PASSWORD";`):

- a connection that has not logged in can only log in (and `.ping`);
- each student creates a database; the other cannot read, write, drop or
  list it; a grant of read lets the other read but not write; its revoke
  takes effect at once, through the proxy cache too (a cached answer never
  reaches an account that may no longer read it), also when the revoke
  went through another path than the proxy, and while replication has not
  carried it to the other server yet (through the balancer too);
- the administrator sees and reads everything;
- `status` and /metrics count logins, failures and sessions per account;
- a login works on either server, and through the balancer while one
  server is killed;
- no password is in any file under the cluster's folder, in any log, on
  any command line, nor in the environment of a balancer or proxy;
- an edit of `accounts:` while the cluster runs is refused and changes nothing;
- the accounts survive `down` and `up` (no password needed the second time);
- and, on a cluster of its own, `up` in a terminal asks for the first
  password (twice, not echoed) when no environment variable gives it.

The tests run in this order on the one cluster (each builds on the one before).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO_ROOT, free_port, wait_until
from tests.integration.supervisorkit import Cluster, all_running, cluster_yaml
from tests.integration.wire import WireClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ADMIN = "mpampianatra"
ADMIN_PASSWORD_ENV = "TAHIRY_ADMIN_PASSWORD"
# Unique to this run, so that finding one anywhere means it leaked.
ADMIN_PW = "teacher-" + secrets.token_hex(10)
WRONG_PW = "guess-" + secrets.token_hex(10)
DEADLINE_S = 20.0
# What a refusal names (docs/LANGUAGE.md, "Accounts"): the right that is missing.
READ_RIGHT = "Tsy manana zo mamaky ny tahiry rabe_db"
WRITE_RIGHT = "Tsy manana zo manoratra ny tahiry rabe_db"


class AccountsCluster(Cluster):
    """The kit's cluster with accounts on and the status page on a free port; the CLI is
    run with the teacher's password in its environment (or, `with_password` False, without)."""

    def __init__(self, workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir)
        self.http_port = free_port()
        self.with_password = True
        self.write(text=cluster_yaml(self.ports, http=f"  host: 127.0.0.1\n  port: "
                                                      f"{self.http_port}\n")
                   + f"accounts: {{admin: {ADMIN}}}\n")

    def cli_environment(self) -> dict[str, str]:
        env = {key: value for key, value in super().cli_environment().items()
               if key != ADMIN_PASSWORD_ENV}
        if self.with_password:
            env[ADMIN_PASSWORD_ENV] = ADMIN_PW
        return env


@dataclass
class School:
    cluster: AccountsCluster
    handouts: Path                       # outside the cluster's folder, as a teacher keeps it
    passwords: dict[str, str] = field(default_factory=dict)

    def port(self, node: str = "proxy") -> int:
        return self.cluster.ports[node]

    def login(self, name: str, node: str = "proxy", password: str | None = None) -> WireClient:
        client = WireClient(self.port(node))
        password = password if password is not None else (
            ADMIN_PW if name == ADMIN else self.passwords[name])
        response = client.one(f'.login {name} "{password}";')
        assert response.ok, f"login of {name} on {node}: {response.message}"
        return client

    def every_secret(self) -> list[str]:
        return [ADMIN_PW, WRONG_PW, *self.passwords.values()]


@contextlib.contextmanager
def running_cluster(root: Path) -> Iterator[AccountsCluster]:
    """An AccountsCluster in `root / "cluster"`, every node RUNNING; stopped after, no
    process left (the module fixtures of the accounts tests)."""
    cluster = AccountsCluster(root / "cluster")
    try:
        started = cluster.up()
        assert started.returncode == 0, f"{started.stdout}{started.stderr}{cluster.supervisor_log()}"
        cluster.wait_for(all_running, "every node RUNNING")
        yield cluster
    finally:
        leftovers = cluster.down_and_reap()
        assert leftovers == [], f"processes survived `down`: {leftovers}"


@pytest.fixture(scope="module")
def school(tmp_path_factory):
    root = tmp_path_factory.mktemp("accounts-class")
    handouts = root / "handouts"
    handouts.mkdir()
    with running_cluster(root) as cluster:
        yield School(cluster, handouts)


def create_class(school: School, names: list[str], out_name: str) -> tuple[subprocess.CompletedProcess,
                                                                           dict[str, dict]]:
    names_file = school.handouts / f"{out_name}.names.csv"
    names_file.write_text("name\n" + "\n".join(names) + "\n")
    out = school.handouts / out_name
    result = school.cluster.cli("accounts", str(school.cluster.topology), "create-class",
                                str(names_file), "--out", str(out))
    rows = {row["name"]: row for row in csv.DictReader(out.open())} if out.exists() else {}
    return result, rows


def proxy_hits(school: School) -> int:
    with WireClient(school.port()) as probe:   # `.status;` needs no login
        return int(probe.status().get("hits", 0))


def cached_read(school: School, client: WireClient,
                statement: str = "alaivo * ao@ naoty_rabe;") -> bool:
    """`statement` reads rabe's row, and the proxy answered it from its cache."""
    hits = proxy_hits(school)
    answer = client.one(statement)
    assert answer.ok and answer.relation is not None \
        and answer.relation.rows == [[1, "rabe"]], answer.message
    return proxy_hits(school) > hits


def refused(response, right_word: str | None = None) -> bool:
    """An error answer (naming the missing right when asked)."""
    return not response.ok and (right_word is None or right_word in response.message)


# ---------------------------------------------------------------- the accounts

def test_the_teacher_creates_the_class_accounts_into_a_private_file(school):
    result, rows = create_class(school, ["rabe", "soa"], "passwords.csv")
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
    out = school.handouts / "passwords.csv"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert {name: row["status"] for name, row in rows.items()} == {"rabe": "created",
                                                                   "soa": "created"}
    school.passwords = {name: row["password"] for name, row in rows.items()}
    assert len(set(school.passwords.values())) == 2
    for password in school.passwords.values():
        assert password not in result.stdout + result.stderr
    for name in ("rabe", "soa", ADMIN):
        school.login(name).close()


def test_an_existing_account_is_reported_and_left_as_it_is(school):
    result, rows = create_class(school, ["rabe", "vola"], "second-batch.csv")
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
    assert rows["rabe"]["status"] == "exists (password not changed)" and rows["rabe"]["password"] == ""
    assert rows["vola"]["status"] == "created"
    assert "rabe" in result.stdout
    school.login("rabe").close()     # the password handed out first still works
    school.passwords["vola"] = rows["vola"]["password"]


def test_reset_gives_a_new_password_printed_once_and_the_old_one_stops(school):
    old = school.passwords["vola"]
    result = school.cluster.cli("accounts", str(school.cluster.topology), "reset", "vola")
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
    new = result.stdout.split("new password of vola: ")[1].split()[0]
    assert new != old and result.stdout.count(new) == 1
    with WireClient(school.port()) as stale:
        assert not stale.one(f'.login vola "{old}";').ok
    school.passwords["vola"] = new
    school.login("vola").close()
    school.passwords["vola (old)"] = old   # still a secret: it must not leak either


def test_a_connection_that_has_not_logged_in_can_only_log_in(school):
    with WireClient(school.port()) as anonymous:
        assert anonymous.one(".ping;").ok
        answer = anonymous.one("asehoy ny tahiry;")
        assert not answer.ok and "login" in answer.message
    with WireClient(school.port()) as guessing:
        answer = guessing.one(f'.login rabe "{WRONG_PW}";')
        assert not answer.ok and WRONG_PW not in answer.message
        assert guessing.closed_by_peer()


# ---------------------------------------------------------------- ownership and rights

def test_each_student_owns_a_database_the_other_cannot_read_write_drop_or_list(school):
    with school.login("rabe") as rabe, school.login("soa") as soa:
        rabe.ok("manamboara tahiry rabe_db;")
        rabe.ok("ampiasao rabe_db;")
        rabe.ok("manamboara tabilao naoty_rabe (id ISA(null,null), anarana LAHATSORATRA(null,null));")
        rabe.ok("manampia ao@ naoty_rabe sanda (1, 'rabe');")
        soa.ok("manamboara tahiry soa_db;")
        soa.ok("ampiasao soa_db;")
        soa.ok("manamboara tabilao naoty_soa (id ISA(null,null), anarana LAHATSORATRA(null,null));")
        soa.ok("manampia ao@ naoty_soa sanda (1, 'soa');")

        listed = [row[0] for row in soa.rows("asehoy ny tahiry;")]
        assert "soa_db" in listed and "rabe_db" not in listed
    with school.login("soa") as soa:   # a session with no current database
        assert refused(soa.one("ampiasao rabe_db;"), READ_RIGHT)
        assert refused(soa.one("alaivo * ao@ naoty_rabe;"))
        assert refused(soa.one("manampia ao@ naoty_rabe sanda (2, 'soa');"))
        assert refused(soa.one("ravao ny tahiry rabe_db;"), "tompon'ny tahiry rabe_db")
    with school.login("rabe") as rabe:
        rabe.ok("ampiasao rabe_db;")
        assert rabe.rows("alaivo * ao@ naoty_rabe;") == [[1, "rabe"]]


def test_a_grant_of_read_lets_a_student_read_not_write_and_its_revoke_is_immediate(school):
    with school.login("rabe") as rabe, school.login("soa") as soa:
        rabe.ok("omeo soa zo mamaky ao@ rabe_db;")
        soa.ok("ampiasao rabe_db;")
        assert soa.rows("alaivo * ao@ naoty_rabe;") == [[1, "rabe"]]
        # The proxy caches an account's reads once every server holds the same rights (the
        # grant replicated: milliseconds); from then on this read is answered from the cache.
        wait_until(lambda: cached_read(school, soa), DEADLINE_S,
                   "soa's read of rabe_db answered from the proxy cache")
        assert refused(soa.one("manampia ao@ naoty_rabe sanda (2, 'soa');"), WRITE_RIGHT)
        rabe.ok("esory soa zo mamaky ao@ rabe_db;")
        # At once: not after a TTL, not after a retry; the cached answer is not served.
        assert refused(soa.one("alaivo * ao@ naoty_rabe;"), READ_RIGHT)


def test_a_revoke_made_around_the_proxy_stops_its_cached_answers_at_once(school):
    with school.login("rabe", node="m1") as rabe_direct, school.login("soa") as soa:
        rabe_direct.ok("omeo soa zo mamaky ao@ rabe_db;")   # on m1 itself, not via the proxy

        def reads() -> bool:
            soa.one("ampiasao rabe_db;")
            answer = soa.one("alaivo * ao@ naoty_rabe;")
            return answer.ok
        wait_until(reads, DEADLINE_S, "soa reads rabe_db once the grant replicated")
        wait_until(lambda: cached_read(school, soa), DEADLINE_S,
                   "soa's read of rabe_db answered from the proxy cache")
        rabe_direct.ok("esory soa zo mamaky ao@ rabe_db;")   # around the proxy again
        assert refused(soa.one("alaivo * ao@ naoty_rabe;"), READ_RIGHT)


def rights_agree(client: WireClient) -> bool:
    """Every server gives the same rights generation (`.rights;`, merged by the balancer)."""
    generations = json.loads(client.one(".rights;").message)
    return len(generations) == 2 and len(set(generations.values())) == 1


def test_a_revoke_replication_has_not_carried_is_never_answered_by_the_server_behind(school):
    """Replication held (the supervisor copies between the data folders: frozen), a revoke
    acknowledged by one server is refused at once through the balancer and the proxy: neither
    lets the account's statements reach the server the revoke has not reached."""
    supervisor_pid = int((school.cluster.workdir / "run" / "supervisor.pid").read_text())
    with school.login("rabe", node="lb") as rabe, school.login("soa") as soa_proxied, \
            school.login("soa", node="lb") as soa_direct:
        rabe.ok("omeo soa zo mamaky ao@ rabe_db;")
        wait_until(lambda: rights_agree(soa_proxied), DEADLINE_S, "the grant on both servers")
        soa_direct.ok("ampiasao rabe_db;")
        soa_proxied.ok("ampiasao rabe_db;")
        for _ in range(4):   # reads go to both servers
            assert soa_direct.rows("alaivo * ao@ naoty_rabe;") == [[1, "rabe"]]
        os.kill(supervisor_pid, signal.SIGSTOP)
        try:
            rabe.ok("esory soa zo mamaky ao@ rabe_db;")
            assert not rights_agree(soa_proxied), "replication carried the revoke while held"
            for _ in range(6):
                assert refused(soa_direct.one("alaivo * ao@ naoty_rabe;"), READ_RIGHT)
                assert refused(soa_proxied.one("alaivo * ao@ naoty_rabe;"), READ_RIGHT)
            with school.login("soa", node="lb") as soa_again:
                for _ in range(4):
                    assert refused(soa_again.one("ampiasao rabe_db;"), READ_RIGHT)
        finally:
            os.kill(supervisor_pid, signal.SIGCONT)
        wait_until(lambda: rights_agree(soa_proxied), DEADLINE_S, "the revoke on both servers")
        assert refused(soa_direct.one("alaivo * ao@ naoty_rabe;"), READ_RIGHT)


def test_the_administrator_sees_and_reads_everything(school):
    with school.login(ADMIN) as teacher:
        listed = [row[0] for row in teacher.rows("asehoy ny tahiry;")]
        assert {"rabe_db", "soa_db"} <= set(listed)
        teacher.ok("ampiasao soa_db;")
        assert teacher.rows("alaivo * ao@ naoty_soa;") == [[1, "soa"]]
        teacher.ok("ampiasao rabe_db;")
        assert teacher.rows("alaivo * ao@ naoty_rabe;") == [[1, "rabe"]]


# ---------------------------------------------------------------- what the operator sees

def test_status_and_metrics_count_logins_failures_and_sessions_per_account(school):
    with school.login("soa"), WireClient(school.port()) as guessing:
        guessing.one(f'.login soa "{WRONG_PW}";')

        def counted() -> dict | None:
            answer = json.loads(school.cluster.cli("status", str(school.cluster.topology),
                                                   "--json").stdout)
            totals: dict[str, dict[str, int]] = {}
            for row in answer["nodes"]:
                for name, figures in (row.get("accounts") or {}).items():
                    total = totals.setdefault(name, {"logins": 0, "failures": 0, "sessions": 0})
                    for key in total:
                        total[key] += figures[key]
            soa = totals.get("soa")
            return totals if soa and soa["failures"] >= 1 and soa["sessions"] >= 1 else None
        totals = wait_until(counted, DEADLINE_S, "status counts soa's session and failure")
        assert totals["rabe"]["logins"] >= 1 and totals[ADMIN]["logins"] >= 1
        table = school.cluster.cli("status", str(school.cluster.topology)).stdout
        assert "ACCOUNT" in table and "soa" in table
        # The supervisor's probe names them; whoever connects without logging in does not
        # learn who has an account (`.status;` answers before a login).
        with WireClient(school.port("m1")) as anonymous:
            status = json.loads(anonymous.ok(".status;").message)
        assert "accounts" not in status and status["login_failures_unknown"] >= 0
        assert not any(f'"{name}"' in json.dumps(status) for name in totals), status

        def scraped() -> str | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{school.cluster.http_port}/metrics",
                                        timeout=5) as page:
                text = page.read().decode()
            return text if 'tahiry_account_login_failures_total{account="soa"' in text else None
        metrics = wait_until(scraped, DEADLINE_S, "/metrics counts soa's failed login")
        assert 'tahiry_account_sessions{account="soa"' in metrics
        for secret in school.every_secret():
            assert secret not in metrics and secret not in table


def test_no_password_is_in_a_command_line_or_a_relay_environment(school):
    secrets_seen = school.every_secret()
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        assert not any(secret in command for secret in secrets_seen), command
    rows = school.cluster.nodes()
    for node in ("lb", "proxy"):
        environ = psutil.Process(rows[node]["pid"]).environ()
        assert ADMIN_PASSWORD_ENV not in environ and ADMIN_PW not in "".join(environ.values())


# ---------------------------------------------------------------- replication and failover

def test_a_login_works_on_either_server_and_through_the_balancer_with_one_killed(school):
    for server in ("m1", "m2"):
        with school.login("soa", node=server) as soa:
            soa.ok("ampiasao soa_db;")
            assert soa.rows("alaivo * ao@ naoty_soa;") == [[1, "soa"]]
    rows = school.cluster.nodes()
    os.kill(rows["m1"]["pid"], signal.SIGKILL)

    def through_the_balancer() -> bool:
        try:
            with school.login("vola", node="lb") as vola:
                return vola.one("asehoy ny tahiry;").ok
        except (OSError, AssertionError):
            return False
    started = time.monotonic()
    wait_until(through_the_balancer, DEADLINE_S, "a login through the balancer with m1 killed")
    assert time.monotonic() - started < DEADLINE_S
    school.cluster.wait_for(lambda nodes: all_running(nodes) and nodes["m1"]["pid"] != rows["m1"]["pid"],
                            "m1 restarted by the supervisor")


# ---------------------------------------------------------------- leaks, restarts

def test_no_password_is_in_any_file_of_the_cluster_or_its_logs(school):
    secrets_seen = [secret.encode() for secret in school.every_secret()]
    checked = 0
    for path in school.cluster.workdir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            for secret in secrets_seen:
                assert secret not in data, f"a password is in {path}"
            checked += 1
    logs = list((school.cluster.workdir / "logs").glob("*.log"))
    assert checked > 10 and {p.name for p in logs} >= {"supervisor.log", "m1.log", "proxy.log"}


def test_an_edit_of_accounts_while_running_is_refused_and_changes_nothing(school):
    cluster = school.cluster
    text = cluster.topology.read_text()
    cluster.topology.write_text(text.replace(f"accounts: {{admin: {ADMIN}}}", "accounts: false"))
    try:
        result = cluster.cli("reload", str(cluster.topology))
        assert result.returncode == 1
        assert "accounts: the edit turns accounts off; that is applied only by a new start" \
            in result.stderr
    finally:
        cluster.topology.write_text(text)
    with WireClient(school.port()) as anonymous:   # still closed to who has not logged in
        assert not anonymous.one("asehoy ny tahiry;").ok


def test_accounts_survive_down_and_up_and_no_password_is_needed_again(school):
    cluster = school.cluster
    assert cluster.cli("down", str(cluster.topology)).returncode == 0
    cluster.with_password = False    # the accounts exist: `up` must not ask
    started = cluster.up()
    assert started.returncode == 0, f"{started.stdout}{started.stderr}{cluster.supervisor_log()}"
    cluster.wait_for(all_running, "every node RUNNING again")
    for server in ("m1", "m2"):
        with school.login("rabe", node=server) as rabe:
            rabe.ok("ampiasao rabe_db;")
            assert rabe.rows("alaivo * ao@ naoty_rabe;") == [[1, "rabe"]]
    with school.login("soa") as soa:   # the revoke survived too
        assert refused(soa.one("ampiasao rabe_db;"), READ_RIGHT)
    with school.login(ADMIN) as teacher:
        assert teacher.one("asehoy ny tahiry;").ok


def test_up_in_a_terminal_asks_for_the_first_password_twice(cluster):
    """A new cluster, no TAHIRY_ADMIN_PASSWORD: `up` asks (not echoed), and that account works."""
    import pexpect

    cluster.write(text=cluster_yaml(cluster.ports) + "accounts: true\n")
    env = {key: value for key, value in os.environ.items() if key != ADMIN_PASSWORD_ENV}
    env["PYTHONPATH"] = str(REPO_ROOT)
    child = pexpect.spawn(sys.executable, ["-m", "supervisor", "up", "-d", str(cluster.topology)],
                          cwd=str(cluster.workdir), env=env, encoding="utf-8", timeout=60)
    try:
        child.expect("password of the administrator mpampianatra")
        child.sendline(ADMIN_PW)
        child.expect("the same password again: ")
        child.sendline(ADMIN_PW)
        child.expect(pexpect.EOF)
    finally:
        child.close()
        cluster.remember_pids()
    assert child.exitstatus == 0, child.before
    assert ADMIN_PW not in (child.before or "")   # not echoed
    assert "--user mpampianatra" in (child.before or "")
    with WireClient(cluster.ports["proxy"]) as teacher:
        assert teacher.one(f'.login {ADMIN} "{ADMIN_PW}";').ok
        assert teacher.one("asehoy ny tahiry;").ok
