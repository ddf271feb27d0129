"""Account statements and table writes through the balancer while servers are killed -9
in a burst.

Two servers with accounts, each certifying its writes against the other's
directory (`--peer`), behind a balancer. m1 is killed and started again;
before the balancer trusts it again (`--rise` good probes in a row: here 3 s
of them), perhaps before it even probed it, m2 is killed too. m1 is alive, holds every file and certifies what
it writes: an account statement, or an insert, must land there, not be refused
with "no server can write now" (148 refusals in one run of kill bursts).
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import wait_until
from tests.integration.test_accounts_wire import ADMIN_ENV, TEACHER, TEACHER_PW, logged_in
from tests.integration.wire import WireClient

pytestmark = pytest.mark.slow  # kills and health transitions


def _health(balancer, backend: str) -> dict:
    with WireClient(balancer.port) as probe:
        return probe.status()["backends"][backend]


@pytest.mark.parametrize("probed", [True, False], ids=["probed-again", "not-probed-yet"])
def test_an_account_statement_lands_on_the_survivor_the_balancer_does_not_trust_yet(
        start_node, probed):
    servers = {}
    for name, other in (("m1", "m2"), ("m2", "m1")):
        servers[name] = start_node("server", name, "--data", f"data/{name}", "--accounts",
                                   "--peer", f"{other}=data/{other}", env=ADMIN_ENV)
    m1, m2 = servers["m1"], servers["m2"]
    lb = start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{m1.port}",
                    "--backend", f"m2=127.0.0.1:{m2.port}", "--probe-interval-ms", "100",
                    "--rise", "30")
    with logged_in(lb.port, TEACHER, TEACHER_PW) as teacher:
        teacher.ok('manamboara mpampiasa ana tenimiafina "Ana-pass-3xK9";')

        m1.kill9()
        wait_until(lambda: _health(lb, "m1")["state"] == "OFFLINE", 10, "m1 OFFLINE")
        m1 = start_node.restart(m1)
        if probed:   # the balancer has seen m1 answer again, and does not trust it yet
            wait_until(lambda: _health(lb, "m1")["consecutive_successes"] >= 1, 10,
                       "a good probe of m1")
        m2.kill9()   # (not probed: m1 is OFFLINE, perhaps not asked since it came back)
        assert _health(lb, "m1")["state"] == "OFFLINE"

        answer = teacher.one('manamboara mpampiasa bob tenimiafina "Bob-pass-8Lm2";')
        assert answer.ok, answer.message
        answer = teacher.one("omeo bob zo mamaky ao@ tsymisy;")   # a grant reaches it too
        assert "Tsy misy mpizara afaka manoratra" not in answer.message, answer.message
    # Written (and durable) on the survivor.
    with logged_in(m1.port, TEACHER, TEACHER_PW) as direct:
        names = [row[0] for row in direct.rows("asehoy ny mpampiasa;")]
        assert {"ana", "bob"} <= set(names)


def test_an_account_statement_lands_on_a_server_just_made_writable_again(start_node, tmp_path):
    """The supervisor lists a restarted server read-only while it catches up, then writable;
    the balancer re-read that file once per probe interval, and meanwhile refused a write
    that server could take ("no server can write now", the other server dead)."""
    servers = {}
    for name, other in (("m1", "m2"), ("m2", "m1")):
        servers[name] = start_node("server", name, "--data", f"data/{name}", "--accounts",
                                   "--peer", f"{other}=data/{other}", env=ADMIN_ENV)
    m1, m2 = servers["m1"], servers["m2"]
    backends = tmp_path / "lb.backends.json"

    def write_backends(m1_writable: bool) -> None:
        entries = [{"id": "m1", "host": "127.0.0.1", "port": m1.port, "writable": m1_writable},
                   {"id": "m2", "host": "127.0.0.1", "port": m2.port, "writable": True}]
        temp = backends.with_suffix(".tmp")
        temp.write_text(json.dumps({"backends": entries}))
        temp.replace(backends)

    write_backends(m1_writable=False)   # m1 catching up, as the supervisor says
    # Probes (and the file's regular re-reads) far apart: only the write re-reads it.
    lb = start_node("balancer", "lb", "--backends-file", str(backends),
                    "--probe-interval-ms", "30000")
    with logged_in(lb.port, TEACHER, TEACHER_PW) as teacher:
        m2.kill9()
        write_backends(m1_writable=True)   # m1 caught up
        answer = teacher.one('manamboara mpampiasa ana tenimiafina "Ana-pass-3xK9";')
        assert answer.ok, answer.message
    with logged_in(m1.port, TEACHER, TEACHER_PW) as direct:
        assert "ana" in [row[0] for row in direct.rows("asehoy ny mpampiasa;")]


def test_a_table_write_lands_on_the_survivor_the_balancer_does_not_trust_yet(start_node):
    """The same burst for `manampia`: m1 restarted and answering its probes, not trusted
    yet, m2 killed. m1 pulls m2's copy from its directory before writing (pull on
    write): the insert must land there, not be refused with "no server can write now"."""
    servers = {}
    for name, other in (("m1", "m2"), ("m2", "m1")):
        servers[name] = start_node("server", name, "--data", f"data/{name}",
                                   "--peer", f"{other}=data/{other}")
    m1, m2 = servers["m1"], servers["m2"]
    lb = start_node("balancer", "lb", "--backend", f"m1=127.0.0.1:{m1.port}",
                    "--backend", f"m2=127.0.0.1:{m2.port}", "--probe-interval-ms", "100",
                    "--rise", "30")
    with WireClient(lb.port) as client:
        for statement in ("manamboara tahiry s;", "ampiasao s;",
                          "manamboara tabilao t (id ISA(0,1000));", "manampia ao@ t sanda (1);"):
            client.ok(statement)
        m1.kill9()
        wait_until(lambda: _health(lb, "m1")["state"] == "OFFLINE", 10, "m1 OFFLINE")
        m1 = start_node.restart(m1)
        wait_until(lambda: _health(lb, "m1")["consecutive_successes"] >= 1, 10,
                   "a good probe of m1")
        m2.kill9()
        assert _health(lb, "m1")["state"] == "OFFLINE"
        answer = client.one("manampia ao@ t sanda (2);")
        assert answer.ok, answer.message
    with WireClient(m1.port) as direct:
        direct.ok("ampiasao s;")
        assert sorted(row[0] for row in direct.rows("alaivo id ao@ t;")) == [1, 2]
