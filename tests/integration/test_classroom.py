"""A class at work: the default topology under the supervisor, many students at once.

One supervised cluster (a copy of the repository's topology.yaml on free
ports: m1, m2, the balancer, the proxy cache) serves every test of this
module, each in its own databases; students are threads, each with its own
connection to the proxy cache, as `./tahiry client` and `nodes.client.connect`
would open them. What a class expects:

- a student alone in a database gets exactly what the embedded engine gives;
- a student's own session always sees its own DDL and DML, even when other
  students share the database and the proxy cache;
- a write through the proxy is seen by every connection of that proxy: no
  cached answer older than an acknowledged write is served, to anyone;
- a dropped database gives the other sessions a clean error and stays
  dropped, tables included, on both servers;
- two students creating the same table at once: one wins, the other is told
  it exists, and both servers hold the winner's table (also right after the
  table's owner was killed); the same for creating or dropping a database;
- adding a server by editing topology.yaml costs the students nothing, and
  `supervisor status` (table and --json) shows it meanwhile.

Another session's write is visible after replication (milliseconds), not at
once: where a test reads what another session just wrote it polls
(`eventually`); a session's own writes must show on the very next read.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from nodes.balancer.routing import owner_of
from nodes.client import connect
from tests.conftest import REPO_ROOT, free_port, wait_until
from tests.integration.cluster_scenario import SupervisedCluster
from tests.integration.faultkit import wait_converged
from tests.integration.wire import WireClient

STUDENTS = 10
TIMEOUT_S = 10.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]  # a classroom on supervised clusters


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    cluster = SupervisedCluster(tmp_path_factory.mktemp("classroom"))
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()
        leftovers = cluster.kill_leftovers()
        assert leftovers == [], f"processes survived `down`: {leftovers}"


def proxy_port(cluster: SupervisedCluster) -> int:
    return cluster.ports["proxy"]


def student(cluster: SupervisedCluster) -> WireClient:
    return WireClient(proxy_port(cluster), timeout=TIMEOUT_S)


def run_threads(count: int, work) -> list:
    """work(index) in `count` threads started together; their results (exceptions re-raised)."""
    results: list = [None] * count
    errors: list = []
    barrier = threading.Barrier(count)

    def body(index: int) -> None:
        try:
            barrier.wait(timeout=TIMEOUT_S)
            results[index] = work(index)
        except BaseException as error:  # noqa: BLE001 (reported below)
            errors.append((index, error))

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a student thread hung"
    if errors:
        index, error = errors[0]
        raise AssertionError(f"student {index}: {error!r}") from error
    return results


def rows_on(cluster: SupervisedCluster, server: str, database: str, statement: str):
    """A statement's rows read directly on one server (None: it failed; then the message)."""
    with WireClient(cluster.ports[server], timeout=TIMEOUT_S) as client:
        used = client.one(f"ampiasao {database};")
        if not used.ok:
            return None, used.message
        answer = client.one(statement)
        return (answer.relation.rows if answer.ok and answer.relation else None), answer.message


def eventually(client: WireClient, statement: str, expected, seconds: float = 3.0):
    """Another session's write shows within replication lag: poll for `expected` rows.

    The rows seen last (or the error message) are returned either way: the
    caller's assertion shows them.
    """
    seen = []

    def shows_expected() -> bool:
        answer = client.one(statement)
        seen.append(answer.relation.rows if answer.ok and answer.relation else answer.message)
        return seen[-1] == expected
    try:
        wait_until(shows_expected, seconds, f"{expected} from {statement!r}", interval_s=0.005)
    except AssertionError:
        pass
    return seen[-1]


def converge(cluster: SupervisedCluster) -> None:
    first, second = (cluster.data_dir(s) for s in cluster.servers[:2])
    converged, differences = wait_converged(first, second, deadline_s=15)
    assert converged is not None, f"the servers did not converge: {differences[:5]}"


# --------------------------------------------------------------------------
# (1) ten students, each in their own database, the same answers as the engine


SCRIPT = """
manamboara efitra kilasy ( TANISA("L3","M1","L2") );
manamboara tabilao mpianatra ( id LAHATSORATRA(2,5), anarana LAHATSORATRA(null,null), kilasy kilasy );
manamboara tabilao naoty ( id LAHATSORATRA(2,5), taranja LAHATSORATRA(null,null), naoty ISA(0,20) );
manampia ao@ mpianatra (id, anarana, kilasy) sanda ("E1","Alice","L3"), ("E2","Bob","M1"), ("E3","Carl","L2");
manampia ao@ naoty sanda ("E1","Algo",14), ("E1","BD",9), ("E2","Algo",16), ("E3","BD",11);
manampia ao@ naoty sanda ("E9","BD",25);
manampia ao@ mpianatra sanda ("E4","Dina","L1");
alaivo * ao@ naoty rehefa naoty >= 10 alaharo naoty midina fetra 2;
alaivo anarana, count(taranja) antso isa, avg(naoty) ao@ mpianatra
  #tonona:natoraly@ naoty #rehefa naoty >= 10 #vondrona (anarana);
alaivo m.anarana, n.naoty ao@ mpianatra m tonona:avia@ naoty n ka m.id = n.id;
alaivo id ao@ mpianatra #analana@ alaivo id ao@ naoty #rehefa naoty < 10;
manamboara jery tsara @ alaivo * ao@ naoty #rehefa naoty >= 15;
alaivo * ao@ tsara;
havaozy naoty ova naoty = naoty + 1 rehefa taranja = "BD";
alaivo * ao@ tsara;
alaivo * ao@ naoty;
manampia ao@ naoty sanda ("E3","Algo",19);
alaivo * ao@ tsara alaharo naoty;
fafao ao@ naoty rehefa naoty < 11;
alaivo kilasy, count(id) ao@ mpianatra vondrona kilasy;
asehoy ny tabilao;
asehoy ny jery;
manamboara tabilao naoty ( x ISA(0,1) );
alaivo * ao@ tsy_misy;
ravao ny jery tsara;
alaivo * ao@ tsara;
alaivo count(*) ao@ naoty;
"""


def run_script(connection, database: str) -> list[tuple]:
    """Every statement of SCRIPT through a DB-API connection: what the student saw."""
    seen = []
    cursor = connection.cursor()
    for statement in [f"manamboara tahiry {database}", f"ampiasao {database}",
                      *(s.strip() for s in SCRIPT.strip().split(";\n") if s.strip())]:
        statement = statement.rstrip(";")
        shown = statement.replace(database, "DB")
        try:
            cursor.execute(statement)
        except Exception as error:  # noqa: BLE001 (the message is what is compared)
            seen.append((shown, "error", str(error).replace(database, "DB")))
            continue
        rows = cursor.fetchall() if cursor.description else None
        columns = [d[0] for d in cursor.description] if cursor.description else None
        seen.append((shown, "ok", columns, rows, cursor.rowcount))
    return seen


def test_students_alone_get_what_the_engine_gives(classroom, tmp_path):
    with connect(embedded=str(tmp_path / "solo")) as embedded:
        expected = run_script(embedded, "sekoly")
    assert sum(1 for entry in expected if entry[1] == "error") == 5  # the script's own mistakes

    def work(index: int):
        with connect("127.0.0.1", proxy_port(classroom), timeout=TIMEOUT_S) as connection:
            return run_script(connection, f"kilasy{index}")

    # Two more students use `./tahiry client -f script.sql --format json`.
    clients, wanted = [], []
    for index in range(2):
        script = tmp_path / f"cli{index}.sql"
        script.write_text(f"manamboara tahiry cli{index};\nampiasao cli{index};\n{SCRIPT}")
        wanted.append(subprocess.run(
            [sys.executable, "-m", "engine", "--data", str(tmp_path / f"solo{index}"), "-f",
             str(script), "--format", "json"], capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}).stdout)
        clients.append(subprocess.Popen(
            [sys.executable, "-m", "nodes.client", "--port", str(proxy_port(classroom)), "-f",
             str(script), "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}))
    for index, seen in enumerate(run_threads(STUDENTS, work)):
        assert seen == expected, index
    for client, expected_output in zip(clients, wanted, strict=True):
        output, errors = client.communicate(timeout=60)
        assert client.returncode == 1, errors  # the script's own mistakes
        # The client adds where a failure is in its file (issue 15); the rest is the engine's.
        answers = [json.loads(line) for line in output.splitlines()]
        assert all({"file", "line", "column"} <= set(answer) for answer in answers
                   if not answer["ok"])
        assert [{key: value for key, value in answer.items()
                 if key not in ("file", "line", "column")} for answer in answers] \
            == [json.loads(line) for line in expected_output.splitlines()]
        assert len(answers) == len(expected) and output.count('"ok":false') == 5


# --------------------------------------------------------------------------
# (2) students sharing one database: everyone always sees their own writes


def test_shared_database_each_student_sees_their_own_writes(classroom):
    with student(classroom) as teacher:
        teacher.ok("manamboara tahiry iraisana;")
        teacher.ok("ampiasao iraisana;")
        teacher.ok("manamboara tabilao valiny (mpianatra ISA(0,100), laharana ISA(0,100));")

    def work(index: int):
        problems = []
        with student(classroom) as me:
            me.ok("ampiasao iraisana;")
            for turn in range(8):
                # The table was created by another session a moment ago: the
                # insert goes to its owner, which has it.
                me.ok(f"manampia ao@ valiny sanda ({index}, {turn});")
                mine = [row for row in me.rows("alaivo * ao@ valiny;") if row[0] == index]
                if sorted(mine) != [[index, t] for t in range(turn + 1)]:
                    problems.append(f"turn {turn}: saw {sorted(mine)}")
                count = me.rows(f"alaivo count(*) ao@ valiny rehefa mpianatra = {index};")
                if count != [[turn + 1]]:
                    problems.append(f"turn {turn}: count {count}")
        return problems

    problems = run_threads(8, work)
    assert problems == [[]] * 8, problems
    converge(classroom)
    for server in classroom.servers:
        rows, message = rows_on(classroom, server, "iraisana", "alaivo * ao@ valiny;")
        assert rows is not None and len(rows) == 64, (server, message)


def test_a_table_created_by_the_teacher_is_soon_readable_by_every_student(classroom):
    """Right after another session's CREATE, a read may briefly miss the table
    (replication takes milliseconds); it must never fail for longer, and a
    student's own DDL is visible to that student at once."""
    with student(classroom) as teacher:
        teacher.ok("manamboara tahiry fampianarana;")
        teacher.ok("ampiasao fampianarana;")
        teacher.ok("manamboara tabilao fanontaniana (id ISA(0,100));")
        teacher.ok("manampia ao@ fanontaniana sanda (1), (2);")

    def work(index: int):
        with student(classroom) as me:
            me.ok("ampiasao fampianarana;")
            answers = []   # the table reaches this student's server within replication lag

            def readable() -> bool:
                answers.append(me.one("alaivo * ao@ fanontaniana;"))
                return answers[-1].ok
            try:
                wait_until(readable, 2.0, "the teacher's table", interval_s=0.005)
            except AssertionError:
                pass
            answer = answers[-1]
            assert answer.ok and sorted(answer.relation.rows) == [[1], [2]], answer.message
            me.ok(f"manamboara tabilao anjara{index} (id ISA(0,100));")
            assert me.rows(f"alaivo * ao@ anjara{index};") == []
            assert [f"anjara{index}"] in me.rows("asehoy ny tabilao;")
        return True

    assert run_threads(6, work) == [True] * 6


# --------------------------------------------------------------------------
# (3) a database dropped while others use it


def test_dropped_database_gives_clean_errors_and_stays_dropped(classroom):
    others = [student(classroom) for _ in range(3)]
    try:
        with student(classroom) as teacher:
            teacher.ok("manamboara tahiry vonjimaika;")
            teacher.ok("ampiasao vonjimaika;")
            teacher.ok("manamboara tabilao t (id ISA(0,100));")
            teacher.ok("manamboara jery v @ alaivo * ao@ t;")
            teacher.ok("manampia ao@ t sanda (1), (2);")
            for other in others:
                other.ok("ampiasao vonjimaika;")
                assert eventually(other, "alaivo * ao@ t;", [[1], [2]]) == [[1], [2]]
            assert teacher.ok("ravao ny tahiry vonjimaika;")
            for other in others:
                for statement in ("alaivo * ao@ t;", "alaivo * ao@ v;",
                                  "manampia ao@ t sanda (3);", "asehoy ny tabilao;"):
                    answer = other.one(statement)
                    assert not answer.ok, (statement, answer.message)
                    assert answer.message.startswith("Hadisoana : ")
                    assert "internal" not in answer.message.lower(), answer.message
            # Re-created: empty, the old table and view stay dropped everywhere.
            teacher.ok("manamboara tahiry vonjimaika;")
            teacher.ok("ampiasao vonjimaika;")
            assert teacher.rows("asehoy ny tabilao;") == []
            for other in others:
                answer = other.one("alaivo * ao@ t;")
                assert not answer.ok and "Hadisoana" in answer.message, answer.message
                other.ok("ampiasao vonjimaika;")
                assert other.rows("asehoy ny tabilao;") == []
                assert other.rows("asehoy ny jery;") == []
                assert not other.one("manampia ao@ t sanda (3);").ok
            teacher.ok("manamboara tabilao t (anarana LAHATSORATRA(null,null));")
            teacher.ok("manampia ao@ t sanda ('vaovao');")
            for other in others:
                assert eventually(other, "alaivo * ao@ t;", [["vaovao"]]) == [["vaovao"]]
        converge(classroom)
        for server in classroom.servers:
            rows, message = rows_on(classroom, server, "vonjimaika", "alaivo * ao@ t;")
            assert rows == [["vaovao"]], (server, message)
            rows, message = rows_on(classroom, server, "vonjimaika", "asehoy ny jery;")
            assert rows == [], (server, message)
    finally:
        for other in others:
            other.close()


# --------------------------------------------------------------------------
# (4) a view over tables that different servers own


def names_owned_apart(database: str, servers: list[str]) -> tuple[str, str]:
    """Two table names whose owners differ (rendezvous hashing over `servers`)."""
    first = "ta0"
    owner = owner_of(database, first, servers)
    for number in range(1, 100):
        name = f"tb{number}"
        if owner_of(database, name, servers) != owner:
            return first, name
    raise AssertionError("no second owner")


def test_view_over_tables_of_both_servers(classroom):
    left, right = names_owned_apart("jerena", classroom.servers)
    with student(classroom) as creator:
        creator.ok("manamboara tahiry jerena;")
        creator.ok("ampiasao jerena;")
        creator.ok(f"manamboara tabilao {left} (id ISA(0,100), anarana LAHATSORATRA(null,null));")
        creator.ok(f"manamboara tabilao {right} (id ISA(0,100), naoty ISA(0,20));")
        creator.ok(f"manampia ao@ {left} sanda (1, 'Alice'), (2, 'Bob');")
        creator.ok(f"manampia ao@ {right} sanda (1, 12), (2, 8), (1, 17);")
        for view in ("va", "vb", "vc", "vd"):  # owners spread over both servers
            creator.ok(f"manamboara jery {view} @ alaivo anarana, naoty ao@ {left} "
                       f"#tonona:natoraly@ {right} #rehefa naoty >= 10;")
            assert sorted(creator.rows(f"alaivo * ao@ {view};")) == [["Alice", 12], ["Alice", 17]]
        creator.ok(f"manampia ao@ {right} sanda (2, 19);")
        assert sorted(creator.rows("alaivo * ao@ vc;")) == [["Alice", 12], ["Alice", 17],
                                                           ["Bob", 19]]
    converge(classroom)
    for _ in range(4):
        with student(classroom) as reader:
            reader.ok("ampiasao jerena;")
            assert sorted(reader.rows("alaivo * ao@ va;")) == [["Alice", 12], ["Alice", 17],
                                                              ["Bob", 19]]
    for server in classroom.servers:
        rows, message = rows_on(classroom, server, "jerena", "alaivo * ao@ vd;")
        assert rows is not None and len(rows) == 3, (server, message)


# --------------------------------------------------------------------------
# (5) the proxy cache is shared by the class


def test_a_write_through_the_proxy_is_seen_by_every_connection(classroom):
    with student(classroom) as writer, student(classroom) as reader, \
            student(classroom) as bystander:
        writer.ok("manamboara tahiry tahiry5;")
        for client in (writer, reader, bystander):
            client.ok("ampiasao tahiry5;")
        writer.ok("manamboara tabilao t (id ISA(0,1000));")
        for client in (reader, bystander):  # created by another session: replication
            assert eventually(client, "alaivo * ao@ t;", []) == []
        for turn in range(25):
            assert len(reader.rows("alaivo * ao@ t;")) == turn   # cached for the class
            assert len(bystander.rows("alaivo * ao@ t;")) == turn
            writer.ok(f"manampia ao@ t sanda ({turn});")
            # Another connection reads at once: it may see the row or not
            # (replication), but what it gets must not be served from the
            # cache afterwards as if it were current.
            reader.one("alaivo * ao@ t;")
            assert len(writer.rows("alaivo * ao@ t;")) == turn + 1, f"turn {turn}: the writer"
            assert len(reader.rows("alaivo * ao@ t;")) == turn + 1, f"turn {turn}: the reader"


# --------------------------------------------------------------------------
# (6) two students create the same table at the same time


def race_creates(cluster: SupervisedCluster, database: str, table: str) -> list:
    definitions = [f"manamboara tabilao {table} (isa ISA(0,9));",
                   f"manamboara tabilao {table} (soratra LAHATSORATRA(null,null));"]
    clients = [student(cluster) for _ in definitions]
    try:
        for client in clients:
            client.ok(f"ampiasao {database};")
        return run_threads(2, lambda i: clients[i].one(definitions[i]))
    finally:
        for client in clients:
            client.close()


def check_one_winner(cluster: SupervisedCluster, database: str, table: str, answers) -> None:
    assert sorted(a.ok for a in answers) == [False, True], [a.message for a in answers]
    loser = next(a for a in answers if not a.ok)
    assert "efa misy" in loser.message, loser.message
    winner_column = "isa" if answers[0].ok else "soratra"
    converge(cluster)
    for server in cluster.servers:
        document = json.loads((cluster.data_dir(server) / database / "tables" /
                               f"{table}.json").read_text())
        assert [c["name"] for c in document["columns"]] == [winner_column], server


def test_two_students_create_the_same_table(classroom):
    with student(classroom) as teacher:
        teacher.ok("manamboara tahiry hazakazaka;")
    for round_ in range(5):
        table = f"t{round_}"
        check_one_winner(classroom, "hazakazaka", table,
                         race_creates(classroom, "hazakazaka", table))


def test_same_table_race_right_after_the_owner_failed(classroom):
    with student(classroom) as teacher:
        teacher.ok("manamboara tahiry lavo;")
    owner = owner_of("lavo", "lavo_t", classroom.servers)
    old = classroom.pid(owner)
    os.kill(old, signal.SIGKILL)
    try:
        check_one_winner(classroom, "lavo", "lavo_t", race_creates(classroom, "lavo", "lavo_t"))
    finally:
        classroom.wait_whole({owner: old})
    # Once the owner is back it takes the table's writes again, from its own copy.
    check_one_winner(classroom, "lavo", "lavo_u", race_creates(classroom, "lavo", "lavo_u"))
    with student(classroom) as teacher:
        teacher.ok("ampiasao lavo;")
        assert not teacher.one("manamboara tabilao lavo_t (x ISA(0,1));").ok


def test_students_create_and_drop_the_same_database_at_once(classroom):
    """"Everyone: create the database sekoly": one student creates it, every
    other one is told it exists (not a partial failure); likewise for drops."""
    for round_ in range(3):
        name = f"miaraka{round_}"
        clients = [student(classroom) for _ in range(4)]
        try:
            created = run_threads(4, lambda i, clients=clients, name=name:
                                  clients[i].one(f"manamboara tahiry {name};"))
            assert sum(a.ok for a in created) == 1, [a.message for a in created]
            for answer in created:
                assert answer.ok or answer.message == f"Hadisoana : Ny tahiry ({name}) dia efa misy", \
                    answer.message
            for client in clients:
                client.ok(f"ampiasao {name};")
            dropped = run_threads(4, lambda i, clients=clients, name=name:
                                  clients[i].one(f"ravao ny tahiry {name};"))
            assert sum(a.ok for a in dropped) == 1, [a.message for a in dropped]
            for answer in dropped:
                assert answer.ok or answer.message == f"Hadisoana : Tsy misy ny tahiry : {name}", \
                    answer.message
        finally:
            for client in clients:
                client.close()
    for server in classroom.servers:
        rows, message = rows_on(classroom, server, "miaraka0", "asehoy ny tabilao;")
        assert rows is None and "Tsy misy ny tahiry" in message, (server, message)


# --------------------------------------------------------------------------
# (7) + (8) a server added while the class works; status meanwhile


def status_json(cluster: SupervisedCluster) -> dict:
    result = subprocess.run([sys.executable, "-m", "supervisor", "status",
                             str(cluster.topology), "--json"], cwd=cluster.workdir,
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_adding_a_server_while_students_work(classroom):
    stop = threading.Event()
    students = 6
    with student(classroom) as teacher:
        teacher.ok("manamboara tahiry miasa;")
        teacher.ok("ampiasao miasa;")
        teacher.ok("manamboara tabilao iraisana (mpianatra ISA(0,100), laharana ISA(0,100000));")

    def work(index: int):
        problems, turn = [], 0
        with student(classroom) as me:
            me.ok(f"manamboara tahiry miasa_{index};")
            me.ok(f"ampiasao miasa_{index};")
            me.ok("manamboara tabilao t (laharana ISA(0,100000));")
            while not stop.is_set() or turn < 5:
                turn += 1
                answer = me.one(f"manampia ao@ t sanda ({turn});")
                if not answer.ok:
                    problems.append(f"insert {turn}: {answer.message}")
                answer = me.one("alaivo count(*) ao@ t;")
                if not answer.ok or answer.relation.rows != [[turn]]:
                    rows = answer.relation and answer.relation.rows
                    problems.append(f"turn {turn}: {answer.message} {rows}")
                if turn % 5 == 0:
                    fresh = me.one(f"manamboara tabilao t{turn} (x ISA(0,1));")
                    if not fresh.ok:
                        problems.append(f"create t{turn}: {fresh.message}")
                if turn % 7 == 0:  # a new database, used at once, then back
                    for statement in (f"manamboara tahiry vaovao_{index}_{turn};",
                                      f"ampiasao vaovao_{index}_{turn};",
                                      "manamboara tabilao u (x ISA(0,100));",
                                      "manampia ao@ u sanda (1), (2);",
                                      "alaivo count(*) ao@ u;",
                                      f"ampiasao miasa_{index};"):
                        answer = me.one(statement)
                        if not answer.ok or (answer.relation and answer.relation.rows != [[2]]):
                            problems.append(f"{statement} -> {answer.message}")
        return problems, turn

    results: list = []
    runner = threading.Thread(target=lambda: results.extend(run_threads(students, work)),
                              daemon=True)
    runner.start()
    try:
        time.sleep(0.5)  # the class is at work before the topology changes: that is the point
        statuses = [status_json(classroom)]
        document = classroom.document
        document["nodes"]["m3"] = {"kind": "server", "host": "127.0.0.1", "port": free_port(),
                                   "data": "data/m3"}
        lb = classroom.node_of_kind("balancer")
        document["nodes"][lb]["backends"] = ["m1", "m2", "m3"]
        # The balancer after m3 in the file does not matter: keep the order readable.
        classroom.topology.write_text(yaml.safe_dump(document, sort_keys=False))
        def m3_writable() -> bool:
            statuses.append(status_json(classroom))
            nodes = {row["node"]: row for row in statuses[-1]["nodes"]}
            return nodes.get("m3", {}).get("state") == "RUNNING" and nodes["m3"].get("writable")
        try:
            wait_until(m3_writable, 20.0, "m3 running and writable", interval_s=0.2)
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}: {statuses[-1]}") from None
        time.sleep(1.0)  # the class goes on with three servers: the point of the test
        statuses.append(status_json(classroom))
        table = subprocess.run([sys.executable, "-m", "supervisor", "status",
                                str(classroom.topology)], cwd=classroom.workdir,
                               capture_output=True, text=True, timeout=30,
                               env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    finally:
        stop.set()
        runner.join(timeout=60)
    assert len(results) == students
    for index, (problems, turns) in enumerate(results):
        assert problems == [], (index, problems[:5])
        assert turns >= 5
    final = {row["node"]: row for row in statuses[-1]["nodes"]}
    assert set(final) >= {"m1", "m2", "m3", "lb", "proxy"}
    assert all(row["state"] == "RUNNING" for row in final.values()), final
    for status in statuses:
        assert status["running"] is True
    assert table.returncode == 0, table.stdout + table.stderr
    print(table.stdout)
    lines = {line.split()[0]: line for line in table.stdout.splitlines() if line.strip()}
    assert all(node in lines and "RUNNING" in lines[node]
               for node in ("m1", "m2", "m3", "lb", "proxy")), table.stdout
    assert "hit ratio" in lines["proxy"], table.stdout
    print(json.dumps(statuses[-1], indent=1)[:3000])
    with WireClient(classroom.ports[lb], timeout=TIMEOUT_S) as client:
        backends = client.status()["backends"]
    assert backends["m3"]["reads"] > 0 and backends["m3"]["writes"] > 0, backends

