"""The end of a term, through the supervisor's `accounts` commands (docs/SECURITY.md,
"Running a class", step 7).

One supervised cluster with accounts on (tests/integration/test_accounts_class.py's
kit). The teacher makes a class with `create-class`; the students build
databases (tables of several domains, a view, a row with a NULL and a quote);
then `remove-class names.csv --keep DIR`:

- keeps a copy of each student's databases (one `.tah` script per database,
  0600 in a 0700 folder per student) that recreates them, rows included;
- drops those databases and the accounts; the course database the teacher
  owns, and the students left out of the list, are untouched;
- refuses to remove an administrator, reports a name with no account, and
  never writes into a `--keep` folder that exists;
- and a teacher who forgot the administrator's password sets a new one as
  docs/SECURITY.md says: `down`, the embedded client on one server's
  directory, `up`.

And a defect found on the way: a new account named like a removed one got
the former account's databases without a word (their owner is a name);
`create-class` now says so.
"""

from __future__ import annotations

import csv
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, wait_until
from tests.integration.supervisorkit import all_running
from tests.integration.test_accounts_class import ADMIN, ADMIN_PW, AccountsCluster, running_cluster
from tests.integration.wire import WireClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DEADLINE_S = 20.0


class Term:
    def __init__(self, cluster: AccountsCluster, desk: Path):
        self.cluster = cluster
        self.desk = desk            # the teacher's own folder, outside the cluster's
        self.passwords: dict[str, str] = {}

    def accounts(self, *args: str) -> subprocess.CompletedProcess:
        return self.cluster.cli("accounts", str(self.cluster.topology), *args)

    def names_file(self, stem: str, names: list[str]) -> Path:
        path = self.desk / f"{stem}.csv"
        path.write_text("anarana\n" + "\n".join(names) + "\n")
        return path

    def create_class(self, stem: str, names: list[str]) -> subprocess.CompletedProcess:
        out = self.desk / f"{stem}.passwords.csv"
        result = self.accounts("create-class", str(self.names_file(stem, names)), "--out", str(out))
        assert out.exists(), f"{result.stdout}{result.stderr}"
        for row in csv.DictReader(out.open()):
            if row["password"]:
                self.passwords[row["name"]] = row["password"]
        return result

    def login(self, name: str) -> WireClient:
        client = WireClient(self.cluster.ports["proxy"])
        password = ADMIN_PW if name == ADMIN else self.passwords[name]
        answer = client.one(f'.login {name} "{password}";')
        assert answer.ok, f"login of {name}: {answer.message}"
        return client


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    root = tmp_path_factory.mktemp("accounts-term")
    desk = root / "desk"
    desk.mkdir()
    with running_cluster(root) as cluster:
        yield Term(cluster, desk)


def databases(client: WireClient) -> set[str]:
    return {row[0] for row in client.rows("asehoy ny tahiry;")}


def test_a_new_account_named_like_a_removed_one_is_told_it_owns_its_databases(term):
    result = term.create_class("last-year", ["naivo"])
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
    with term.login("naivo") as naivo:
        naivo.ok("manamboara tahiry naivo_taloha;")
    with term.login(ADMIN) as teacher:   # the README's "an account leaves"
        teacher.ok("ravao ny mpampiasa naivo;")
    result = term.create_class("this-year", ["naivo"])
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
    # The new naivo owns last year's database: the teacher must hear of it, by name.
    assert "naivo_taloha" in result.stdout + result.stderr, result.stdout + result.stderr


def test_remove_class_keeps_a_copy_then_drops_databases_and_accounts(term):
    result = term.create_class("class", ["rabe", "soa", "vola"])
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
    with term.login(ADMIN) as teacher:
        teacher.ok("manamboara tahiry fampianarana;")
        teacher.ok("omeo rabe zo mamaky ao@ fampianarana;")
    with term.login("rabe") as rabe:
        rabe.ok("manamboara tahiry rabe_db;")
        rabe.ok("ampiasao rabe_db;")
        rabe.ok("manamboara efitra kilasy ( TANISA('L3','M1') );")
        rabe.ok("manamboara tabilao naoty (id LAHATSORATRA(2,5), kilasy kilasy, "
                "naoty ISA(0,20):TANISA('ABS'), daty DATY, fanamarihana LAHATSORATRA(null,null));")
        rabe.ok("manampia ao@ naoty sanda ('E1','L3',12.5,'2026-01-02','tsara'), "
                "('E2','M1','ABS',null,'it''s \\\\ \"ok\"');")
        rabe.ok("manamboara jery tsara @ alaivo * ao@ naoty rehefa naoty >= 10;")
        rabe.ok("manamboara tahiry rabe_faharoa;")
        rabe.ok("ampiasao rabe_faharoa;")
        rabe.ok("manamboara tabilao foana (x ISA(null,null));")
        rabe.ok("omeo soa zo mamaky ao@ rabe_db;")
    with term.login("soa") as soa:
        soa.ok("manamboara tahiry soa_db;")
    with term.login("vola") as vola:
        vola.ok("manamboara tahiry vola_db;")

    keep = term.desk / "kept"
    names = term.names_file("leaving", ["rabe", "soa"])
    result = term.accounts("remove-class", str(names), "--keep", str(keep))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"

    assert stat.S_IMODE(keep.stat().st_mode) == 0o700
    assert sorted(p.name for p in keep.iterdir()) == ["rabe", "soa"]
    kept = sorted(p.name for p in (keep / "rabe").iterdir())
    assert kept == ["rabe_db.tah", "rabe_faharoa.tah"]
    assert stat.S_IMODE((keep / "rabe").stat().st_mode) == 0o700
    assert stat.S_IMODE((keep / "rabe" / "rabe_db.tah").stat().st_mode) == 0o600
    assert "tsara" in (keep / "rabe" / "rabe_db.tah").read_text()   # the view is named

    with term.login(ADMIN) as teacher:
        left = databases(teacher)
        assert {"rabe_db", "rabe_faharoa", "soa_db"}.isdisjoint(left)
        assert {"fampianarana", "vola_db"} <= left
        accounts = {row[0] for row in teacher.rows("asehoy ny mpampiasa;")}
        assert "rabe" not in accounts and "soa" not in accounts and "vola" in accounts
    with WireClient(term.cluster.ports["proxy"]) as gone:
        assert not gone.one(f'.login rabe "{term.passwords["rabe"]}";').ok

    # The copy recreates the database, rows exactly, in an engine of its own.
    loaded = term.desk / "loaded"
    run = subprocess.run([sys.executable, "-m", "engine", "--data", str(loaded), "-f",
                          str(keep / "rabe" / "rabe_db.tah")], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, f"{run.stdout}{run.stderr}"
    check = subprocess.run([sys.executable, "-m", "engine", "--data", str(loaded), "-f", "-"],
                           input="ampiasao rabe_db;\nalaivo * ao@ naoty alaharo id;\n"
                                 "asehoy ny tsanganana ao@ naoty;\n",
                           cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, f"{check.stdout}{check.stderr}"
    for text in ("12.5", "2026-01-02", "ABS", "it's \\\\ \"ok\"", 'TANISA("L3","M1")',
                 'ISA(0,20):TANISA("ABS")'):
        assert text in check.stdout, f"{text!r} not in {check.stdout}"


def test_remove_class_refuses_an_administrator_and_reports_an_unknown_name(term):
    keep = term.desk / "kept-admin"
    names = term.names_file("odd", [ADMIN, "tsisy"])
    result = term.accounts("remove-class", str(names), "--keep", str(keep))
    assert result.returncode == 1, f"{result.stdout}{result.stderr}"
    assert f"{ADMIN}: an administrator" in result.stderr, result.stderr
    assert "tsisy: no such account" in result.stdout + result.stderr
    with term.login(ADMIN) as teacher:
        assert "fampianarana" in databases(teacher)


def test_remove_class_never_writes_into_a_keep_folder_that_exists(term):
    keep = term.desk / "already"
    keep.mkdir()
    names = term.names_file("again", ["vola"])
    result = term.accounts("remove-class", str(names), "--keep", str(keep))
    assert result.returncode != 0 and "exists" in result.stderr, f"{result.stdout}{result.stderr}"
    assert list(keep.iterdir()) == []

    def vola_still_there() -> bool:
        with term.login("vola") as vola:
            return "vola_db" in databases(vola)
    wait_until(vola_still_there, DEADLINE_S, "vola and vola_db left as they were")


def test_remove_class_drops_nothing_while_a_server_lacks_the_students_last_row(term):
    """Replication is asynchronous: a row written on m2 a moment before the end of term may
    not be on m1 yet, and a copy read from m1 missed it; the database was dropped anyway.
    With replication stopped (the supervisor paused), the servers' copies differ: nothing
    is copied nor dropped, the account stays, and the command says why; run again once
    replication runs, it removes the student and the copy holds the row. (Before, the
    database was dropped: the row survived only if the copy's reads happened to reach m2.)"""
    result = term.create_class("late", ["lahy"])
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
    with term.login("lahy") as lahy:
        lahy.ok("manamboara tahiry lahy_db;")
        lahy.ok("ampiasao lahy_db;")
        lahy.ok("manamboara tabilao t (x ISA(null,null));")
        lahy.ok("manampia ao@ t sanda (1);")

    def rows_on(server: str) -> list:
        with WireClient(term.cluster.ports[server]) as client:
            assert client.one(f'.login {ADMIN} "{ADMIN_PW}";').ok
            client.ok("ampiasao lahy_db;")
            return sorted(row[0] for row in client.rows("alaivo x ao@ t;"))
    wait_until(lambda: rows_on("m1") == [1] == rows_on("m2"), DEADLINE_S, "row 1 everywhere")
    supervisor = term.cluster.status()["supervisor"]["pid"]
    keep = term.desk / "kept-late"
    os.kill(supervisor, signal.SIGSTOP)   # replication stops; the nodes go on
    try:
        with WireClient(term.cluster.ports["m2"]) as lahy:
            assert lahy.one(f'.login lahy "{term.passwords["lahy"]}";').ok
            lahy.ok("ampiasao lahy_db;")
            lahy.ok("manampia ao@ t sanda (2);")   # acknowledged by m2 alone
        assert rows_on("m1") == [1]
        result = term.accounts("remove-class", str(term.names_file("late", ["lahy"])),
                               "--keep", str(keep))
    finally:
        os.kill(supervisor, signal.SIGCONT)
    assert result.returncode == 1, f"{result.stdout}{result.stderr}"
    assert "still differ" in result.stderr, result.stderr
    assert "lahy: nothing removed" in result.stderr, result.stderr
    assert not (keep / "lahy" / "lahy_db.tah").exists()
    wait_until(lambda: rows_on("m1") == [1, 2] == rows_on("m2"), DEADLINE_S,
               "both rows everywhere once replication runs again")
    # Nothing of lahy was removed, so the same command finishes the job now. (Before, the
    # account was dropped first: the run again said "no such account", and lahy_db was
    # left for the teacher to copy by hand.)
    with WireClient(term.cluster.ports["proxy"]) as lahy:
        assert lahy.one(f'.login lahy "{term.passwords["lahy"]}";').ok
    again = term.desk / "kept-late-again"
    result = term.accounts("remove-class", str(term.names_file("late", ["lahy"])),
                           "--keep", str(again))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
    kept = (again / "lahy" / "lahy_db.tah").read_text()
    assert "(1)" in kept and "(2)" in kept, kept


def test_a_teacher_who_forgot_the_password_sets_a_new_one_with_the_cluster_stopped(term):
    # The procedure of docs/SECURITY.md ("Running a class", the teacher's own password):
    # `down`, one statement on one server's directory with the embedded engine, `up`.
    cluster = term.cluster
    cluster.down()
    new = "remembered-" + ADMIN_PW[-8:]
    changed = subprocess.run([sys.executable, "-m", "nodes.client", "--embedded",
                              str(cluster.workdir / "data" / "m1"), "-e",
                              f'ovay ny tenimiafina {ADMIN} "{new}";'],
                             cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert changed.returncode == 0, f"{changed.stdout}{changed.stderr}"
    started = cluster.up()
    assert started.returncode == 0, f"{started.stdout}{started.stderr}{cluster.supervisor_log()}"
    cluster.wait_for(all_running, "every node RUNNING again")

    def logs_in_everywhere() -> bool:
        for node in ("m1", "m2", "proxy"):
            with WireClient(cluster.ports[node]) as client:
                if not client.one(f'.login {ADMIN} "{new}";').ok:
                    return False
        return True
    wait_until(logs_in_everywhere, DEADLINE_S, "the new password on both servers")
    with WireClient(cluster.ports["m2"]) as old:
        assert not old.one(f'.login {ADMIN} "{ADMIN_PW}";').ok
    with WireClient(cluster.ports["proxy"]) as teacher:
        assert teacher.one(f'.login {ADMIN} "{new}";').ok
        assert "vola_db" in databases(teacher)   # nothing else changed
