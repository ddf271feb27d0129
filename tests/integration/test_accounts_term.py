"""A class's accounts across terms, through the supervisor's `accounts` commands
(docs/SECURITY.md, "Running a class").

One supervised cluster with accounts on (tests/integration/test_accounts_class.py's
kit). A database's owner is a name: a new account named like a dropped one
got the former account's databases without a word; `create-class` now says so.
"""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from tests.integration.supervisorkit import all_running
from tests.integration.test_accounts_class import ADMIN, ADMIN_PW, AccountsCluster
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
    cluster = AccountsCluster(root / "cluster")
    desk = root / "desk"
    desk.mkdir()
    try:
        started = cluster.up()
        assert started.returncode == 0, f"{started.stdout}{started.stderr}{cluster.supervisor_log()}"
        cluster.wait_for(all_running, "every node RUNNING")
        yield Term(cluster, desk)
    finally:
        leftovers = cluster.down_and_reap()
        assert leftovers == [], f"processes survived `down`: {leftovers}"


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
