"""What the students run now, and stopping it: `status` and `accounts stop` (docs/SECURITY.md,
"Running a class", step 8).

A statement runs on its server's engine thread, one at a time: a student's
slow join (here about 49 million row pairs, seconds) holds every other
statement of that server behind it, up to the 30 s time limit, and again
for each such statement of a script. On one supervised cluster with
accounts on (tests/integration/test_accounts_class.py's kit):

- `status` (and `--json`) shows the statement running for a second or
  more, with its account, database, server and time; a student's own
  `.status;` shows none of it, nor does the control port's `status` asked
  without the run's token (any local user), nor the status page;
- `accounts stop rabe` stops rabe's running statement within a second
  (rabe is told an administrator stopped it), and rabe's next statement
  runs as usual; a student cannot stop anyone (`.stop` is refused).
"""

from __future__ import annotations

import csv
import json
import threading
import time
import urllib.request

import pytest

from supervisor.control import send_command
from tests.conftest import wait_until
from tests.integration.test_accounts_class import ADMIN, ADMIN_PW, running_cluster
from tests.integration.wire import WireClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DEADLINE_S = 20.0
ROWS = 7000   # a self-join without '=' tests ROWS * ROWS pairs: just under the 50M cap
SLOW_JOIN = ("alaivo count(*) ao@ lehibe a tonona lehibe b "
             "ka a.x + b.y > b.x * a.y ary a.x != b.x;")
STOPPED = "Najanon'ny mpitantana ny fangatahana"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("accounts-activity")
    desk = root / "desk"
    desk.mkdir()
    with running_cluster(root) as cluster:
        names = desk / "names.csv"
        names.write_text("rabe\nsoa\n")
        out = desk / "passwords.csv"
        made = cluster.cli("accounts", str(cluster.topology), "create-class", str(names),
                           "--out", str(out))
        assert made.returncode == 0, f"{made.stdout}{made.stderr}"
        passwords = {row["name"]: row["password"] for row in csv.DictReader(out.open())}
        yield cluster, passwords


def login(port: int, name: str, password: str) -> WireClient:
    client = WireClient(port, timeout=60.0)
    answer = client.one(f'.login {name} "{password}";')
    assert answer.ok, answer.message
    return client


def test_the_teacher_sees_a_slow_statement_and_stops_it(lab):
    cluster, passwords = lab
    m1 = cluster.ports["m1"]
    with login(m1, "rabe", passwords["rabe"]) as rabe:
        rabe.ok("manamboara tahiry rabe_db;")
        rabe.ok("ampiasao rabe_db;")
        rabe.ok("manamboara tabilao lehibe (x ISA(null,null), y ISA(null,null));")
        rabe.ok("manampia ao@ lehibe sanda "
                + ", ".join(f"({i}, {i % 97})" for i in range(ROWS)) + ";")
        answers: list = []
        started = time.monotonic()
        runner = threading.Thread(target=lambda: answers.append(rabe.one(SLOW_JOIN)))
        runner.start()
        try:
            def running() -> list | None:
                status = cluster.status()
                shown = [entry for row in status["nodes"]
                         for entry in row.get("running_statements") or []]
                return shown or None
            shown = wait_until(running, DEADLINE_S, "rabe's join in `status --json`")
            assert shown[0]["account"] == "rabe" and shown[0]["database"] == "rabe_db"
            assert shown[0]["server"] == "m1" and "tonona lehibe b" in shown[0]["statement"]
            assert shown[0]["seconds"] >= 1
            table = cluster.cli("status", str(cluster.topology))
            assert "running now" in table.stdout and "tonona lehibe b" in table.stdout, table.stdout
            # Another user of the machine reaches the control port and the page, not the run
            # folder's token: the students' statements are not theirs to read.
            open_status = send_command(cluster.ports["control"], {"cmd": "status"})
            assert open_status["ok"] and "tonona" not in json.dumps(open_status)
            page = f"http://127.0.0.1:{cluster.http_port}/api/status"
            with urllib.request.urlopen(page, timeout=10) as answer:
                assert "tonona" not in answer.read().decode()

            with login(m1, "soa", passwords["soa"]) as soa:   # a student sees nobody's
                assert "tonona" not in json.dumps(soa.status())
                refused = soa.one(".stop rabe;")
                assert not refused.ok and "mpitantana" in refused.message
            assert runner.is_alive()

            stop = cluster.cli("accounts", str(cluster.topology), "stop", "rabe")
            stopped_at = time.monotonic()
            assert stop.returncode == 0, f"{stop.stdout}{stop.stderr}"
            assert "m1: 1 statement(s) of rabe stopped" in stop.stdout, stop.stdout
        finally:
            runner.join(timeout=60)
        assert answers and not answers[0].ok, answers
        assert STOPPED in answers[0].message, answers[0].message
        assert time.monotonic() - stopped_at < 5, "the join went on after the stop"
        assert stopped_at - started < 25, "the join was not running long enough to be stopped"
        # Stopping is for the statement running then, not the session: the next one runs.
        assert rabe.rows("alaivo count(*) ao@ lehibe;") == [[ROWS]]


def test_stop_names_an_account_with_nothing_running(lab):
    cluster, _ = lab
    stop = cluster.cli("accounts", str(cluster.topology), "stop", "soa")
    assert stop.returncode == 0, f"{stop.stdout}{stop.stderr}"
    assert "nothing of soa was running" in stop.stdout, stop.stdout
    with WireClient(cluster.ports["m1"]) as teacher:
        assert teacher.one(f'.login {ADMIN} "{ADMIN_PW}";').ok
        # An account that does not exist: nothing to stop, and said so (`accounts stop` with
        # a misspelled name read "nothing was running").
        unknown = teacher.one(".stop tsisy;")
        assert not unknown.ok and unknown.message == "Hadisoana : Tsy misy ny mpampiasa : tsisy"



def test_stop_of_a_misspelled_name_says_there_is_no_such_account(lab):
    # A teacher stopping a runaway query types the name wrong: "nothing of rabee was
    # running" (exit 0) told them the student's statement had ended while it ran on.
    cluster, _ = lab
    stop = cluster.cli("accounts", str(cluster.topology), "stop", "rabee")
    assert stop.returncode == 1, f"{stop.stdout}{stop.stderr}"
    assert "was running" not in stop.stdout, stop.stdout
    assert "Hadisoana : Tsy misy ny mpampiasa : rabee" in stop.stderr, stop.stderr
